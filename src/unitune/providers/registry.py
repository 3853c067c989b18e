"""Provider names → where their code lives, what they need installed, and how to get it.

The built-in table is data, not imports: looking a provider up imports nothing until it is used,
so `unitune providers` can tell what is installed without loading any vendor SDK. Third-party
providers register under the entry-point group `unitune.providers` (`name = "pkg.module:Class"`).

Tests (and the `unitune_fake` fixture) can route every lookup to one provider instance with
`override_provider()`, so application code that calls `FineTuneClient.from_config()` runs unchanged.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitune.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    # Imported where a class is loaded or checked: looking a name up (`provider_info`, the CLI's
    # check of --provider) then needs neither the contract nor the pydantic types it builds on.
    from unitune.providers.base import Provider

__all__ = [
    "BUILTIN_PROVIDERS",
    "ENTRY_POINT_GROUP",
    "ProviderInfo",
    "build_provider",
    "get_provider_class",
    "import_sdk",
    "list_providers",
    "load_provider_class",
    "override_provider",
    "provider_info",
]

ENTRY_POINT_GROUP = "unitune.providers"


@dataclass(frozen=True)
class ProviderInfo:
    """Where a provider lives and what it needs.

    `requires` are the importable modules its extra installs; `available=False` marks a vendor whose
    adapter is not in this release yet (so the name is known, and the error says so plainly).
    """

    name: str
    import_path: str
    extra: str | None
    requires: tuple[str, ...]
    description: str
    available: bool = True

    def missing_module(self) -> str | None:
        """The first required module that is not installed, without importing any of them."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return module
        return None

    @property
    def installed(self) -> bool:
        """Whether the provider is available and every module it requires is installed."""
        return self.available and self.missing_module() is None


def _info(
    name: str, path: str, extra: str | None, requires: tuple[str, ...], description: str, *, available: bool
) -> ProviderInfo:
    return ProviderInfo(name, path, extra, requires, description, available)


BUILTIN_PROVIDERS: dict[str, ProviderInfo] = {
    i.name: i
    for i in (
        _info(
            "fake",
            "unitune.providers.fake:FakeProvider",
            None,
            (),
            "In-process, deterministic provider for tests and demos",
            available=True,
        ),
        _info(
            "local",
            "unitune.providers.local:LocalProvider",
            "local",
            ("torch", "transformers", "peft", "safetensors", "gguf"),
            "LoRA on Hugging Face models, on this machine (CPU or GPU)",
            available=True,
        ),
        _info(
            "openai",
            "unitune.providers.openai:OpenAIProvider",
            "openai",
            ("openai",),
            "OpenAI fine-tuning (new jobs accepted until 2027-01-06)",
            available=True,
        ),
        _info(
            "together",
            "unitune.providers.together:TogetherProvider",
            "together",
            ("together",),
            "Together AI fine-tuning (LoRA/full, SFT/DPO)",
            available=True,
        ),
        _info(
            "bedrock",
            "unitune.providers.bedrock:BedrockProvider",
            "bedrock",
            ("boto3",),
            "AWS Bedrock model customization",
            available=True,
        ),
        _info(
            "vertex",
            "unitune.providers.vertex:VertexProvider",
            "vertex",
            ("google.genai", "google.cloud.storage"),
            "Google Vertex AI tuning (Gemini and open models), data in Cloud Storage",
            available=True,
        ),
        _info(
            "mistral",
            "unitune.providers.mistral:MistralProvider",
            "mistral",
            ("mistralai", "httpx"),
            "Mistral tuned models (training API retired)",
            available=True,
        ),
        _info(
            "cohere",
            "unitune.providers.cohere:CohereProvider",
            "cohere",
            ("cohere",),
            "Cohere tuned models (fine-tuning deprecated 2025-09-15)",
            available=True,
        ),
    )
}

_override: ContextVar[Provider | None] = ContextVar("unitune_provider_override", default=None)
#: The process-wide override: seen by threads that do not inherit the caller's context.
_process_override: list[Provider] = []


@contextlib.contextmanager
def override_provider(provider: Provider, *, process_wide: bool = False) -> Iterator[Provider]:
    """Route every provider lookup to `provider` (for tests).

    By default only in this context (and tasks started from it), so concurrent async tests can
    each have their own; `process_wide=True` also covers threads started by the code under test,
    which do not inherit context variables (the `unitune_fake` fixture uses it).

    Args:
        provider: the provider every lookup returns (a `FakeProvider`, say).
        process_wide: whether threads that do not inherit this context are covered too.

    Yields:
        `provider`, until the block ends and the lookups are restored.
    """
    token = _override.set(provider)
    if process_wide:
        _process_override.append(provider)
    try:
        yield provider
    finally:
        _override.reset(token)
        if process_wide:
            _process_override.remove(provider)


def _entry_points() -> dict[str, ProviderInfo]:
    from importlib.metadata import entry_points

    found: dict[str, ProviderInfo] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "a third-party package"
        found[ep.name] = ProviderInfo(
            ep.name, ep.value, None, (), f"third-party provider from {dist}", available=True
        )
    return found


def list_providers() -> list[ProviderInfo]:
    """Every provider unitune knows: built-ins first, then third-party entry points."""
    third_party = {n: i for n, i in _entry_points().items() if n not in BUILTIN_PROVIDERS}
    return [*BUILTIN_PROVIDERS.values(), *sorted(third_party.values(), key=lambda i: i.name)]


def provider_info(name: str) -> ProviderInfo:
    """What the registry knows of `name`; `ConfigurationError` with the closest names if nothing."""
    info = BUILTIN_PROVIDERS.get(name)
    if info is not None:
        return info
    third_party = _entry_points()
    if name in third_party:
        return third_party[name]
    known = sorted({*BUILTIN_PROVIDERS, *third_party})
    close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.5)
    hint = f"Did you mean {' or '.join(map(repr, close))}? " if close else ""
    raise ConfigurationError(
        f"Unknown provider {name!r}.",
        fix=f"{hint}Known providers: {', '.join(known)}.",
    )


def get_provider_class(name: str) -> type[Provider]:
    """The provider class registered under `name`, imported now.

    Raises `ConfigurationError` for an unknown name (with the closest names) or a vendor whose
    adapter is not in this release, and `MissingDependencyError` naming the extra to install.
    """
    info = provider_info(name)
    if not info.available:
        usable = [i.name for i in BUILTIN_PROVIDERS.values() if i.available]
        raise ConfigurationError(
            f"The {name!r} adapter is not part of unitune {_version()} yet.",
            fix=f"Providers available in this release: {', '.join(usable)}.",
        )
    missing = info.missing_module()
    if missing is not None and info.extra is not None:
        raise MissingDependencyError(provider=name, extra=info.extra, module=missing)
    module_name, _, attr = info.import_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if info.extra is not None and e.name and not e.name.startswith("unitune"):
            raise MissingDependencyError(provider=name, extra=info.extra, module=e.name) from e
        raise
    from unitune.providers.base import Provider

    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigurationError(
            f"Provider {name!r} points at {info.import_path!r}, which is not a unitune Provider class."
        )
    return cls


def build_provider(
    name: str, section: Mapping[str, Any] | None = None, *, home: Path | None = None
) -> Provider:
    """A ready provider for `name` built from its config section (or the test override, if set).

    `home` is the unitune home the caller's config names: a provider that keeps its own files
    (its settings have a `home` field, like the local trainer) keeps them in `<home>/<name>` unless
    its section says otherwise, so its jobs live where the ledger does.
    """
    override = _override.get() or (_process_override[-1] if _process_override else None)
    if override is not None:
        # A stand-in may take on the provider the code asked for (the fake impersonates it).
        adopt = getattr(override, "adopt_provider", None)
        if callable(adopt):
            from unitune.providers.base import Provider

            chosen = adopt(name, dict(section or {}))
            if isinstance(chosen, Provider):
                return chosen
        return override
    cls = get_provider_class(name)
    section = dict(section or {})
    if home is not None and "home" in cls.settings_class.model_fields and "home" not in section:
        section["home"] = home / name
    return cls.from_config(section)


def load_provider_class(name: str) -> type[Provider]:
    """The adapter class for `name`, without requiring its vendor SDK (adapters import it lazily).

    For reading what the provider is (its capabilities, data rules, statuses), not for calling it.
    """
    info = provider_info(name)
    module_name, _, attr = info.import_path.partition(":")
    cls = getattr(importlib.import_module(module_name), attr, None)
    from unitune.providers.base import Provider

    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigurationError(
            f"Provider {name!r} points at {info.import_path!r}, which is not a unitune Provider class."
        )
    return cls


def _version() -> str:
    from unitune import __version__

    return __version__


def import_sdk(provider: str, module: str) -> Any:
    """Import a vendor SDK module for an adapter, or raise `MissingDependencyError` naming the extra.

    Adapters call this inside their methods, so the SDK loads only when the provider is used.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        info = BUILTIN_PROVIDERS.get(provider)
        if info is not None and info.extra is not None and e.name and module.startswith(e.name.split(".")[0]):
            raise MissingDependencyError(provider=provider, extra=info.extra, module=e.name) from e
        raise
