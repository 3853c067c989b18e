from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from unitune import ConfigurationError, FineTuneClient, MissingDependencyError
from unitune.providers import registry
from unitune.providers.fake import FakeProvider
from unitune.providers.registry import ProviderInfo, get_provider_class, list_providers


def test_fake_resolves_like_any_provider() -> None:
    assert get_provider_class("fake") is FakeProvider
    assert FineTuneClient("fake", ledger=False).provider.name == "fake"


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_provider_class("togther")
    message = str(info.value)
    assert "Unknown provider 'togther'" in message
    assert "Did you mean 'together'" in message
    assert "fake" in message  # the full list follows


def test_planned_vendor_is_named_not_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    info = ProviderInfo("acme", "acme_unitune:AcmeProvider", "acme", ("acme_sdk",), "Acme", available=False)
    monkeypatch.setitem(registry.BUILTIN_PROVIDERS, "acme", info)
    with pytest.raises(ConfigurationError, match="not part of unitune") as info:
        get_provider_class("acme")
    assert "fake" in str(info.value)


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    info = ProviderInfo(
        "acme", "unitune.providers.fake:FakeProvider", "acme", ("acme_sdk_that_is_not_installed",),
        "test", available=True,
    )  # fmt: skip
    monkeypatch.setitem(registry.BUILTIN_PROVIDERS, "acme", info)
    assert not info.installed
    with pytest.raises(MissingDependencyError) as err:
        FineTuneClient("acme", ledger=False)
    assert 'pip install "unitune[acme]"' in str(err.value)
    assert err.value.module == "acme_sdk_that_is_not_installed"
    assert "acme_sdk_that_is_not_installed" not in sys.modules


def test_registry_lookup_imports_no_provider_module() -> None:
    rows = {i.name: i for i in list_providers()}
    assert rows["fake"].installed
    assert rows["cohere"].extra == "cohere"
    assert rows["cohere"].available
    import subprocess

    code = (
        "import sys; from unitune.providers.registry import list_providers; "
        "[i.installed for i in list_providers()]; "
        "print(sorted(m for m in sys.modules if m.startswith('unitune.providers.') and m not in "
        "('unitune.providers.base', 'unitune.providers._answers', 'unitune.providers.registry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_entry_point_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pkg = tmp_path / "acme_unitune.py"
    pkg.write_text(
        "from typing import ClassVar\n"
        "from unitune.providers.fake import FakeProvider\n"
        "class AcmeProvider(FakeProvider):\n"
        "    name: ClassVar[str] = 'acme'\n"
        "class NotAProvider:\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        EntryPoint("acme", "acme_unitune:AcmeProvider", registry.ENTRY_POINT_GROUP),
        EntryPoint("broken", "acme_unitune:NotAProvider", registry.ENTRY_POINT_GROUP),
    ]

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        assert group == registry.ENTRY_POINT_GROUP
        return eps

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)
    assert get_provider_class("acme").__name__ == "AcmeProvider"
    assert "acme" in {i.name for i in list_providers()}
    with pytest.raises(ConfigurationError, match="not a unitune Provider"):
        get_provider_class("broken")


def test_override_routes_every_lookup(fake: FakeProvider) -> None:
    from unitune.testing import override_provider

    with override_provider(fake):
        assert FineTuneClient("fake", ledger=False).provider is fake
        # Another provider's name gets a view of the same fake as that provider (shared calls, jobs).
        local = FineTuneClient.from_config(ledger=False).provider
        assert isinstance(local, FakeProvider)
        assert local.name == "local"
        assert local.calls is fake.calls
    # Outside the override the default provider is the real one again: the local trainer.
    assert FineTuneClient.from_config(ledger=False).provider.name == "local"


def test_provider_settings_are_checked(fake: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        FakeProvider.from_config({"seconds_per_step": -1})
    assert "[providers.fake] seconds_per_step" in str(info.value)
