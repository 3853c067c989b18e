"""Conformance: what every built-in provider must satisfy, checked once for all of them.

Each test is parametrized over `CASES`, one line per built-in provider (a new adapter adds its line;
`test_every_builtin_provider_has_a_case` fails until it does). A real mismatch found here is not
fixed in the test: it is marked `xfail(strict=True)` with the reason, so fixing the adapter turns
the test red until the mark is removed.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

from unitune.catalog import load_catalog
from unitune.data.convert import formats
from unitune.data.profiles import get_profile
from unitune.errors import (
    ConfigurationError,
    JobSpecRefused,
    UnituneError,
    UnknownStatusError,
    UnsupportedFeatureError,
)
from unitune.providers.base import Provider, map_status
from unitune.providers.registry import BUILTIN_PROVIDERS, load_provider_class
from unitune.types import FileRef, Hyperparameters, JobSpec, JobStatus

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@dataclass(frozen=True)
class Case:
    name: str
    #: Settings `check_job` needs besides the defaults (it must refuse an option without a request).
    settings: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "bedrock",
        {"bucket": "unitune-test", "role_arn": "arn:aws:iam::123456789012:role/t", "region": "us-east-1"},
    ),
    Case("cohere"),
    Case("fake"),
    Case("local"),
    Case("mistral"),
    Case("openai"),
    Case("together"),
    Case("vertex", {"project": "unitune-test", "location": "us-central1", "bucket": "unitune-test"}),
]
BY_NAME = {c.name: c for c in CASES}
NAMES = sorted(BUILTIN_PROVIDERS)

#: Capability flag → the `Provider` methods an adapter overrides to offer it.
CAPABILITY_METHODS = {
    "cancel": ("cancel_job",),
    "pause": ("pause_job", "resume_job"),
    "events": ("list_events",),
    "metrics": ("list_metrics",),
    "checkpoints": ("list_checkpoints",),
    "chat": ("chat",),
    "files": ("list_files", "delete_file"),
}

#: Overrides that legitimately exist while the flag is False, and why.
ALLOWED_EXTRA_OVERRIDES = {
    # Mistral cannot pause a job, but holds a validated job for a manual start when auto_start is
    # false (reported `paused`); resume_job starts it (docs/mistral.md).
    ("mistral", "resume_job"),
}


def params(names: list[str] | None = None, *, xfail: dict[str, str] | None = None) -> list[Any]:
    """The providers as parameters, with a strict xfail on each named in `xfail` (name → reason)."""
    xfail = xfail or {}
    return [
        pytest.param(n, id=n, marks=[pytest.mark.xfail(strict=True, reason=xfail[n])] if n in xfail else [])
        for n in (NAMES if names is None else names)
    ]


def module_of(name: str) -> Any:
    return sys.modules[load_provider_class(name).__module__]


def build(name: str) -> Provider:
    return load_provider_class(name).from_config(dict(BY_NAME[name].settings))


# -- the table itself ------------------------------------------------------------------------------


def test_every_builtin_provider_has_a_case() -> None:
    assert [c.name for c in CASES] == NAMES


# -- data, catalog, packaging ----------------------------------------------------------------------


@pytest.mark.parametrize("name", params())
def test_dataset_profile_and_wire_formats_are_known(name: str) -> None:
    cls = load_provider_class(name)
    get_profile(cls.dataset_profile)  # raises ConfigurationError when the profile is not in profiles.toml
    known = formats()
    assert cls.wire_format in known
    # A preference format exactly when the provider trains on preference pairs.
    assert (cls.preference_wire_format is not None) == cls.capabilities.dpo
    if cls.capabilities.dpo:
        assert cls.preference_wire_format in known


@pytest.mark.parametrize("name", params())
def test_every_catalog_model_has_known_rules_and_format(name: str) -> None:
    provider = build(name)
    models = load_catalog().models(name)
    assert models, f"no catalog models for {name}"
    problems = []
    for _, entry in models:
        try:
            profile = provider.profile_for(entry.id)
            wire = provider.wire_format_for("sft", entry.id)
        except ConfigurationError as e:
            # The catalog leaves data_format unset where the vendor's format is not among unitune's
            # yet (Bedrock's vision Llama models); the adapter must then refuse by name, clearly.
            if entry.data_format is not None or entry.id not in str(e):
                problems.append(f"{entry.id}: {e}")
            continue
        get_profile(profile)
        if wire not in formats():
            problems.append(f"{entry.id}: unknown wire format {wire!r}")
    assert not problems


@pytest.mark.parametrize("name", params())
def test_catalog_has_the_provider(name: str) -> None:
    assert name in load_catalog().providers


@pytest.mark.parametrize("name", params())
def test_extra_installs_what_the_registry_requires(name: str) -> None:
    info = BUILTIN_PROVIDERS[name]
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    if info.extra is None:
        # Nothing to install (the fake): then nothing may be required either.
        assert info.requires == ()
        assert name not in extras
        return
    assert info.extra in extras, f"pyproject.toml has no extra {info.extra!r}"
    declared = {
        re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-") for req in extras[info.extra]
    }
    for module in info.requires:
        # A namespace package's distribution is its dotted name with dashes (google.genai: google-genai).
        dist = module.lower().replace("_", "-").replace(".", "-")
        assert dist in declared, f"{module} is not in the {info.extra!r} extra"


@pytest.mark.parametrize("name", params())
def test_importing_the_adapter_loads_no_vendor_sdk(name: str) -> None:
    info = BUILTIN_PROVIDERS[name]
    # Every vendor's SDK, not just this adapter's: no adapter may drag in another's either.
    sdks = sorted({m for i in BUILTIN_PROVIDERS.values() for m in i.requires})
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({info.import_path.partition(':')[0]!r})\n"
        "from unitune.providers.registry import load_provider_class\n"
        f"p = load_provider_class({name!r}).from_config({BY_NAME[name].settings!r}); p.close()\n"
        f"print(','.join(m for m in {sdks!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"loaded at import: {out.stdout.strip()}"


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", params())
def test_settings_refuse_an_unknown_key_in_one_line(name: str) -> None:
    with pytest.raises(ConfigurationError) as e:
        load_provider_class(name).from_config({"nope": 1})
    assert "nope" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", params())
@pytest.mark.parametrize("url", ["ftp://example.com/v1", "api.example.com", "file:///tmp/x"])
def test_settings_refuse_a_non_http_base_url(name: str, url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        load_provider_class(name).from_config({"base_url": url})


KEYED = [n for n in NAMES if load_provider_class(n).settings_class.api_key_env]


def test_vendors_with_keys_name_their_variable() -> None:
    # Guards the parameter list below from shrinking silently.
    assert {"openai", "together", "mistral", "cohere"} <= set(KEYED)


@pytest.mark.parametrize("name", params(KEYED))
def test_missing_api_key_names_the_variable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = load_provider_class(name)
    env = cls.settings_class.api_key_env
    assert env
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(ConfigurationError, match=re.escape(env)):
        cls.settings_class().require_api_key(name)


# -- statuses --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", params())
def test_status_map(name: str) -> None:
    table = getattr(module_of(name), "STATUS_MAP", None)
    if name == "fake":
        # The fake has no vendor words of its own: it reports unitune's statuses, or those of the
        # provider it impersonates (read from that adapter's STATUS_MAP, checked on its own line).
        assert table is None
        pytest.skip("the fake reports unitune's own statuses")
    assert isinstance(table, dict)
    assert table
    assert all(isinstance(v, JobStatus) for v in table.values())
    caps = load_provider_class(name).capabilities
    implied = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RUNNING}
    if caps.cancel:
        implied.add(JobStatus.CANCELLED)
    if caps.pause:
        implied.add(JobStatus.PAUSED)
    missing = implied - set(table.values())
    assert not missing, f"no vendor word for {sorted(s.value for s in missing)}"


@pytest.mark.parametrize("name", params())
def test_unknown_status_raises_in_strict_mode(name: str) -> None:
    import os

    assert os.environ.get("UNITUNE_STRICT_STATUS") == "1"  # set by unitune's pytest plugin
    table = getattr(module_of(name), "STATUS_MAP", None) or {s.value: s for s in JobStatus}
    with pytest.raises(UnknownStatusError, match="unitune_no_such_status"):
        map_status(name, "unitune_no_such_status", table)


# -- capabilities ----------------------------------------------------------------------------------


@pytest.mark.parametrize("capability", sorted(CAPABILITY_METHODS))
@pytest.mark.parametrize("name", params())
def test_capability_matches_overridden_methods(name: str, capability: str) -> None:
    cls = load_provider_class(name)
    flag = getattr(cls.capabilities, capability)
    for method in CAPABILITY_METHODS[capability]:
        overridden = getattr(cls, method) is not getattr(Provider, method)
        if flag:
            assert overridden, f"{capability}=True but {method} is Provider's default"
        elif overridden and (name, method) not in ALLOWED_EXTRA_OVERRIDES:
            # An override of a missing capability may only refuse it more helpfully (Cohere's
            # cancel_job points at delete_model): it must still raise UnsupportedFeatureError.
            with pytest.raises(UnsupportedFeatureError):
                getattr(build(name), method)("unitune-check")


# -- check_job and close ---------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network used: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", params())
def test_check_job_refuses_an_unknown_option_by_name(name: str, no_network: None) -> None:
    models = load_catalog().models(name)
    spec = JobSpec(
        model=models[0][1].id,
        training_file=FileRef(id="unitune-check", provider=name),
        hyperparameters=Hyperparameters(provider_options={"unitune_no_such_option": 1}),
    )
    provider = build(name)
    try:
        # One error class for every adapter's refusal of a job spec, whatever the vendor.
        with pytest.raises(JobSpecRefused, match="unitune_no_such_option"):
            provider.check_job(spec)
    finally:
        provider.close()


@pytest.mark.parametrize("name", params())
@pytest.mark.parametrize("field", ["learning_rate", "learning_rate_multiplier"])
def test_a_hyperparameter_the_vendor_lacks_is_refused_as_a_spec(
    name: str, field: str, no_network: None
) -> None:
    """Each vendor takes one of an absolute rate and a multiplier (Bedrock: per family; the fake,
    both): the other is refused with `JobSpecRefused` naming it, never sent or dropped."""
    provider = build(name)
    models = load_catalog().models(name)
    spec = JobSpec(
        model=models[0][1].id,
        training_file=FileRef(id="unitune-check", provider=name),
        hyperparameters=Hyperparameters(**{field: 0.5}),
    )
    refused: UnituneError | None = None
    try:
        provider.check_job(spec)
    except UnituneError as e:
        refused = e
    finally:
        provider.close()
    if refused is not None:  # taking it is fine; refusing it must say so in the one class
        assert isinstance(refused, JobSpecRefused), f"{name} refused {field} with {type(refused).__name__}"
        assert field in str(refused)


@pytest.mark.parametrize(
    "name",
    params(),
)
def test_close_releases_an_owned_client_and_is_idempotent(name: str) -> None:
    provider = build(name)
    if hasattr(provider, "_owned"):
        # It builds its own vendor client, so it must close it (not the base class's no-op).
        assert type(provider).close is not Provider.close
    provider.close()
    provider.close()
