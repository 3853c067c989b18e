"""`[gateway]` in unitune.toml: keys (by env reference or literal), per-key caps and the model
mapping; command-line options over it; `unitune serve --fine-tuning` as the same server as
`unitune gateway`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from pydantic import SecretStr  # noqa: E402
from typer.testing import CliRunner, Result  # noqa: E402

import unitune.cli._gateway_cmds  # noqa: E402  (registers `gateway`)
import unitune.cli._serve_cmds  # noqa: E402, F401  (registers `serve`)
from unitune.cli import app  # noqa: E402
from unitune.cli._gateway_cmds import gateway_settings  # noqa: E402
from unitune.config import GatewayKeySettings, load_config  # noqa: E402
from unitune.errors import ConfigurationError  # noqa: E402
from unitune.gateway import GatewayServer  # noqa: E402
from unitune.testing import FakeClock, FakeProvider, FakeSettings, override_provider  # noqa: E402

KEY_A = "sk-config-tenant-a-0123456789"
KEY_B = "sk-config-tenant-b-9876543210"
LITERAL = "sk-config-literal-key-5555555"
MAPPED = "gpt-4o-mini-2024-07-18"
TRAIN = b"".join(
    b'{"messages": [{"role": "user", "content": "Q%d?"}, {"role": "assistant", "content": "A%d."}]}\n'
    % (i, i)
    for i in range(12)
)

CONFIG = f"""
provider = "fake"

[gateway]
provider = "fake"
host = "127.0.0.1"
port = 0
max_cost_usd = 100

[gateway.models]
"{MAPPED}" = "fake:gpt-4o-mini"

[[gateway.keys]]
name = "team-a"
key_env = "TEAM_A_KEY"
max_cost_usd = 0.01

[[gateway.keys]]
name = "team-b"
key = "{LITERAL}"
"""


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    # process_wide: the gateway's worker threads do not inherit the test's context.
    provider = FakeProvider(FakeSettings(advance="clock"), clock=FakeClock())
    with override_provider(provider, process_wide=True):
        assert isinstance(provider, FakeProvider)
        yield provider


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """`toml(text)`: writes a unitune.toml that the commands (via $UNITUNE_CONFIG) then read."""

    def write(text: str) -> Path:
        path = tmp_path / "unitune.toml"
        path.write_text(text, "utf-8")
        monkeypatch.setenv("UNITUNE_CONFIG", str(path))
        return path

    return write


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(app, args)


def _while_serving(monkeypatch: pytest.MonkeyPatch, body: Callable[[GatewayServer], None]) -> None:
    """The command's `server.wait()` runs `body` against the live server, then stops as Ctrl-C does."""

    def run_then_stop(self: GatewayServer) -> None:
        body(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(GatewayServer, "wait", run_then_stop)


# -- parsing -------------------------------------------------------------------------------------------


def test_the_section_reads_keys_by_env_and_literal_caps_and_the_mapping(
    toml: Callable[[str], Path],
) -> None:
    config = load_config(toml(CONFIG))
    section = config.gateway
    assert (section.provider, section.host, section.port, section.max_cost_usd) == (
        "fake",
        "127.0.0.1",
        0,
        100,
    )
    assert section.models == {MAPPED: "fake:gpt-4o-mini"}
    team_a, team_b = section.keys
    assert (team_a.name, team_a.key_env, team_a.key, team_a.max_cost_usd) == (
        "team-a",
        "TEAM_A_KEY",
        None,
        0.01,
    )
    assert isinstance(team_b.key, SecretStr)
    assert team_b.max_cost_usd is None
    assert LITERAL not in repr(config)  # a key written in the file never shows in a repr or a dump
    assert LITERAL not in config.model_dump_json()
    # The variable is read when the gateway starts, from the environment given.
    assert team_a.secret({"TEAM_A_KEY": KEY_A}).get_secret_value() == KEY_A
    assert team_b.secret({}).get_secret_value() == LITERAL
    with pytest.raises(ConfigurationError, match="TEAM_A_KEY, which is not set") as caught:
        team_a.secret({})
    assert caught.value.fix
    assert "Set TEAM_A_KEY" in caught.value.fix
    # A config without [gateway] still loads, and other commands need no key variable set.
    assert load_config(toml('provider = "fake"\n')).gateway.keys == []


@pytest.mark.parametrize(
    ("section", "where", "says"),
    [
        ('[[gateway.keys]]\nname = "a"\n', "gateway.keys.0", "exactly one of them"),
        (f'[[gateway.keys]]\nkey = "{LITERAL}"\nkey_env = "A"\n', "gateway.keys.0", "exactly one of them"),
        ('[[gateway.keys]]\nkey = "  "\n', "gateway.keys.0", "key is empty"),
        ('[[gateway.keys]]\nkey_env = "not a name"\n', "gateway.keys.0.key_env", "should match"),
        (
            f'[[gateway.keys]]\nkey = "{LITERAL}"\nmax_cost_usd = -1\n',
            "gateway.keys.0.max_cost_usd",
            "greater than or equal to 0",
        ),
        (f'[gateway.models]\n"{MAPPED}" = "llama"\n', "gateway.models", "PROVIDER:MODEL"),
        ("[gateway]\nport = 70000\n", "gateway.port", "65535"),
        ("[gateway]\napi_key = 'x'\n", "gateway.api_key", "Extra inputs"),
    ],
)
def test_a_bad_section_is_one_line_naming_the_file_the_key_and_the_fix(
    toml: Callable[[str], Path], section: str, where: str, says: str
) -> None:
    path = toml(section)
    with pytest.raises(ConfigurationError) as caught:
        load_config()
    message = str(caught.value)
    assert "\n" not in message
    assert f"{path}: invalid setting {where!r}" in message
    assert says in message
    assert "Value error" not in message
    assert caught.value.fix == f"Edit {where!r} in {path}."
    assert LITERAL not in message


def test_a_key_entry_built_in_code_is_checked_the_same() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one"):
        GatewayKeySettings()
    assert GatewayKeySettings(key_env="X").secret({"X": " k "}).get_secret_value() == "k"


# -- precedence ----------------------------------------------------------------------------------------


def test_command_line_options_win_over_the_section(toml: Callable[[str], Path]) -> None:
    config = load_config(toml(CONFIG))
    env = {"TEAM_A_KEY": KEY_A}
    from_file = gateway_settings(config, env=env)
    assert (from_file.provider, from_file.host, from_file.port, from_file.max_cost_usd) == (
        "fake", "127.0.0.1", 0, 100
    )  # fmt: skip
    assert [(k.key.get_secret_value(), k.max_cost_usd) for k in from_file.keys] == [
        (KEY_A, 0.01),
        (LITERAL, None),
    ]
    assert dict(from_file.models) == {MAPPED: "fake:gpt-4o-mini"}
    assert from_file.unitune_config is config

    given = gateway_settings(
        config, provider="together", host="0.0.0.0", port=9123, api_keys=[KEY_B],
        mapping={MAPPED: "fake:other", "gpt-3.5-turbo": "fake:small"}, max_cost_usd=5, env={},
    )  # fmt: skip
    assert (given.provider, given.host, given.port, given.max_cost_usd) == ("together", "0.0.0.0", 9123, 5)
    # Keys on the command line replace the file's (TEAM_A_KEY need not even be set); maps merge by name.
    assert [(k.key.get_secret_value(), k.max_cost_usd) for k in given.keys] == [(KEY_B, None)]
    assert dict(given.models) == {MAPPED: "fake:other", "gpt-3.5-turbo": "fake:small"}
    assert KEY_B not in repr(given)
    # $UNITUNE_PROVIDER overrides the provider named in any file, [gateway]'s too.
    assert gateway_settings(config, env={**env, "UNITUNE_PROVIDER": "local"}).provider == "local"
    # Nothing anywhere: the command's own defaults.
    bare = gateway_settings(load_config(toml("")), env={})
    assert (bare.provider, bare.host, bare.port, bare.keys, bare.max_cost_usd) == (
        None,
        "127.0.0.1",
        8000,
        (),
        None,
    )


def test_the_command_takes_the_sections_host_unless_given(
    toml: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNITUNE_GATEWAY_API_KEY", raising=False)
    toml('[gateway]\nhost = "0.0.0.0"\nport = 0\n')
    refused = _invoke(["gateway", "--provider", "fake"])
    assert refused.exit_code == 1
    assert "'0.0.0.0' would answer other machines without an API key" in refused.output
    urls: list[str] = []
    _while_serving(monkeypatch, lambda server: urls.append(server.url))
    served = _invoke(["gateway", "--provider", "fake", "--host", "127.0.0.1"])
    assert served.exit_code == 0, served.output
    assert urls[0].startswith("http://127.0.0.1:")
    assert ":8000/" not in urls[0]  # port 0 from the file


def test_an_unset_key_variable_stops_the_command_naming_it(
    toml: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNITUNE_GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("TEAM_A_KEY", raising=False)
    toml(CONFIG)
    result = _invoke(["gateway"])
    assert result.exit_code == 1
    assert "ConfigurationError" in result.output
    assert "TEAM_A_KEY, which is not set" in result.output
    assert LITERAL not in result.output


# -- the caps, through the SDK ---------------------------------------------------------------------------


def test_a_keys_cap_from_the_config_refuses_a_dear_job(
    fake: FakeProvider, toml: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # team-a is capped at a cent a job; team-b (the literal key) only by [gateway]'s $100.
    monkeypatch.delenv("UNITUNE_GATEWAY_API_KEY", raising=False)
    monkeypatch.setenv("TEAM_A_KEY", KEY_A)
    toml(CONFIG)
    made: list[str] = []

    def as_tenants(server: GatewayServer) -> None:
        team_a = openai.OpenAI(base_url=server.url, api_key=KEY_A, max_retries=0, timeout=30)
        file_id = team_a.files.create(file=("train.jsonl", TRAIN), purpose="fine-tune").id
        with pytest.raises(openai.BadRequestError) as caught:
            team_a.fine_tuning.jobs.create(model=MAPPED, training_file=file_id)
        assert caught.value.code == "budget_exceeded"
        assert "max_cost_usd" in caught.value.message
        assert not fake.calls_to("upload")
        team_b = openai.OpenAI(base_url=server.url, api_key=LITERAL, max_retries=0, timeout=30)
        own = team_b.files.create(file=("train.jsonl", TRAIN), purpose="fine-tune").id
        made.append(team_b.fine_tuning.jobs.create(model=MAPPED, training_file=own).id)
        assert [j.id for j in team_a.fine_tuning.jobs.list()] == []  # each key its own jobs

    _while_serving(monkeypatch, as_tenants)
    result = _invoke(["gateway"])
    assert result.exit_code == 0, result.output
    assert len(made) == 1
    assert "over fake" in result.output
    assert f"{MAPPED} -> fake:gpt-4o-mini" in result.output
    assert "2 API key(s)" in result.output
    assert KEY_A not in result.output
    assert LITERAL not in result.output


# -- unitune serve --fine-tuning -----------------------------------------------------------------------


def test_serve_fine_tuning_is_the_gateway(
    fake: FakeProvider, toml: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNITUNE_SERVE_API_KEY", raising=False)
    toml(f'[gateway]\nport = 0\n[gateway.models]\n"{MAPPED}" = "fake:gpt-4o-mini"\n')
    seen: list[Any] = []

    def use(server: GatewayServer) -> None:
        client = openai.OpenAI(base_url=server.url, api_key=KEY_B, max_retries=0, timeout=30)
        file_id = client.files.create(file=("train.jsonl", TRAIN), purpose="fine-tune").id
        seen.append(client.fine_tuning.jobs.create(model=MAPPED, training_file=file_id))
        seen.append(server.state.provider)
        unkeyed = openai.OpenAI(base_url=server.url, api_key="wrong-key", max_retries=0, timeout=30)
        with pytest.raises(openai.AuthenticationError):
            unkeyed.files.list()

    _while_serving(monkeypatch, use)
    # serve's own --api-key and --provider; host and port (0) from [gateway].
    result = _invoke(["serve", "--fine-tuning", "--provider", "fake", "--api-key", KEY_B])
    assert result.exit_code == 0, result.output
    assert "OpenAI fine-tuning API on http://127.0.0.1:" in result.output
    job, provider = seen
    assert job.object == "fine_tuning.job"
    assert job.model == MAPPED
    assert provider == "fake"
    assert KEY_B not in result.output


def test_serve_fine_tuning_refuses_models_and_model_options() -> None:
    models = _invoke(["serve", "--fine-tuning", "fake:echo"])
    assert models.exit_code == 2
    assert "--fine-tuning serves no MODEL" in models.output
    backend = _invoke(["serve", "--fine-tuning", "--backend", "transformers"])
    assert backend.exit_code == 2
    assert "--backend is for serving models" in backend.output
    provider = _invoke(["serve", "fake:echo", "--provider", "fake"])
    assert provider.exit_code == 2
    assert "--provider is for --fine-tuning" in provider.output


def test_both_commands_say_they_are_the_same_server() -> None:
    serve_help = " ".join(_invoke(["serve", "--help"]).output.split())
    gateway_help = " ".join(_invoke(["gateway", "--help"]).output.split())
    assert "--fine-tuning" in serve_help
    assert "unitune gateway" in serve_help
    assert "unitune serve --fine-tuning" in gateway_help
    assert "[gateway]" in gateway_help
