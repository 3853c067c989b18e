from __future__ import annotations

from pathlib import Path

import pytest

from unitune import ConfigurationError, FineTuneClient
from unitune.config import home_dir, load_config


def test_defaults_without_any_file() -> None:
    config = load_config()
    assert config.provider == "local"
    assert config.source is None


def test_unitune_toml_in_working_directory() -> None:
    Path("unitune.toml").write_text(
        'provider = "fake"\n[providers.fake]\nsteps_per_epoch = 4\n[wait]\npoll_interval = 2\n'
    )
    config = load_config()
    assert config.provider == "fake"
    assert config.section("fake") == {"steps_per_epoch": 4}
    assert config.wait.poll_interval == 2
    assert config.source is not None
    assert config.source.name == "unitune.toml"
    client = FineTuneClient.from_config(ledger=False)
    assert client.provider.settings.steps_per_epoch == 4  # type: ignore[attr-defined]


def test_pyproject_tool_table() -> None:
    Path("pyproject.toml").write_text('[project]\nname = "x"\n[tool.unitune]\nprovider = "fake"\n')
    assert load_config().provider == "fake"


def test_pyproject_without_table_is_ignored() -> None:
    Path("pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_config().source is None


def test_unitune_toml_wins_over_pyproject() -> None:
    Path("pyproject.toml").write_text('[tool.unitune]\nprovider = "together"\n')
    Path("unitune.toml").write_text('provider = "fake"\n')
    assert load_config().provider == "fake"


def test_env_config_path_and_provider_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('provider = "together"\n')
    monkeypatch.setenv("UNITUNE_CONFIG", str(other))
    assert load_config().provider == "together"
    monkeypatch.setenv("UNITUNE_PROVIDER", "fake")
    config = load_config()
    assert config.provider == "fake"
    assert config.source == other


def test_env_config_pointing_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNITUNE_CONFIG", "/nonexistent/unitune.toml")
    with pytest.raises(ConfigurationError, match="UNITUNE_CONFIG"):
        load_config()


def test_malformed_toml_names_file_and_line() -> None:
    Path("unitune.toml").write_text('provider = "fake"\n[wait\n')
    with pytest.raises(ConfigurationError) as info:
        load_config()
    assert "unitune.toml" in str(info.value)
    assert "line 2" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("provder = 'fake'\n", "provder"),
        ("[wait]\npoll_interval = -1\n", "wait.poll_interval"),
        ("[retry]\nmax_attempts = 'many'\n", "retry.max_attempts"),
        ("providers = 3\n", "providers"),
    ],
)
def test_bad_key_is_named(text: str, key: str) -> None:
    Path("unitune.toml").write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_config()
    assert repr(key) in str(info.value)
    assert "unitune.toml" in str(info.value)


def test_bad_key_in_pyproject_is_named() -> None:
    Path("pyproject.toml").write_text("[tool.unitune]\nwaiting = 1\n")
    with pytest.raises(ConfigurationError, match=r"pyproject.toml.*\[tool.unitune\] 'waiting'"):
        load_config()


def test_home_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "a"))
    assert home_dir() == tmp_path / "a"
    monkeypatch.delenv("UNITUNE_HOME")
    Path("unitune.toml").write_text(f"home = '{tmp_path / 'b'}'\n")
    assert home_dir(load_config()) == tmp_path / "b"
    assert "unitune" in str(home_dir())


def test_relative_home_is_next_to_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "proj" / "unitune.toml"
    conf.parent.mkdir()
    conf.write_text('home = "state"\n')
    assert load_config(conf).home == (tmp_path / "proj" / "state").resolve()


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"provider = '\xff'\n", "not UTF-8"), (None, "is a directory")],
)
def test_unreadable_config_is_a_configuration_error(
    tmp_path: Path, content: bytes | None, match: str
) -> None:
    path = tmp_path / "conf.toml"
    if content is None:
        path.mkdir()  # a directory where a file should be
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=match):
        load_config(path)


def test_pyproject_with_odd_tool_value() -> None:
    Path("pyproject.toml").write_text('tool = "x"\n')
    assert load_config().source is None
