"""Issue 16, parts 2 and 4: a client built like a vendor SDK, job defaults from config, and bad input
that ends in a one-line `UnituneError` (never a raw TypeError, pydantic or sqlite error), before
anything is uploaded."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest

from unitune import (
    ConfigurationError,
    DatasetError,
    FineTuneClient,
    Hyperparameters,
    UnituneError,
)
from unitune.config import UnituneConfig, load_config
from unitune.testing import FakeClock, FakeProvider
from unitune.types import Job

CHAT = {
    "messages": [
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "On its way."},
    ]
}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"Where is order {i}?"},
                {"role": "assistant", "content": "On its way."},
            ]
        }
        for i in range(20)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(clock=FakeClock())


@pytest.fixture
def client(fake: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FineTuneClient:
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    return FineTuneClient(fake, config=UnituneConfig())


def _one_line(e: BaseException) -> None:
    assert isinstance(e, UnituneError)
    assert "\n" not in str(e)


# -- 4: nothing escapes the error tree -----------------------------------------------------------------


@pytest.mark.parametrize("job", ["", "  ", None, 42])
def test_a_job_id_must_be_a_string(client: FineTuneClient, job: Any) -> None:
    for call in (client.get_job, client.cancel_job, client.events, client.metrics, client.wait):
        with pytest.raises(ConfigurationError, match="job id must be a non-empty string") as info:
            call(job)
        _one_line(info.value)


def test_bad_create_arguments_fail_before_any_upload(
    client: FineTuneClient, fake: FakeProvider, data: Path
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": 123}, "model must be a non-empty string"),
        ({"model": ""}, "model must be a non-empty string"),
        ({"metadata": {"team": 1}}, "metadata values must be strings; 'team' is a int"),
        ({"metadata": ["team"]}, "metadata must be a dict"),
        ({"hyperparameters": {"epochs": -3}}, "Invalid hyperparameters"),
        ({"hyperparameters": {"epoch": 3}}, "Invalid hyperparameters"),
        ({"hyperparameters": 3}, "hyperparameters must be"),
        ({"idempotency_key": ""}, "idempotency_key must be a non-empty string"),
        ({"method": "rlhf"}, "method must be 'sft' or 'dpo'"),
        ({"max_cost_usd": -1}, "max_cost_usd must be"),
        ({"training_data": 3.5}, "data must be a path"),
        ({"training_data": ""}, "data path is empty"),
    ]
    for kwargs, message in cases:
        args: dict[str, Any] = {"model": "gpt-4o-mini", "training_data": data, **kwargs}
        with pytest.raises(ConfigurationError, match=message) as info:
            client.create_job(**args)
        _one_line(info.value)
    assert fake.calls == []  # nothing was uploaded, no job was made


def test_hyperparameters_may_be_a_dict(client: FineTuneClient, data: Path) -> None:
    job = client.create_job(model="gpt-4o-mini", training_data=data, hyperparameters={"epochs": 2})
    assert job.hyperparameters["epochs"] == 2


def test_chat_input_is_checked(client: FineTuneClient) -> None:
    for messages, message in [
        ([{"role": "bogus", "content": "hi"}], "Message 1 is not a valid chat message"),
        ([{"role": "user", "content": "hi"}, "hello"], "Message 2 is a str"),
        ([], "non-empty list of messages"),
        ({"role": "user", "content": "hi"}, "non-empty list of messages"),
        ("", "prompt is empty"),
    ]:
        with pytest.raises(ConfigurationError, match=message) as info:
            client.chat("gpt-4o-mini", messages)  # type: ignore[arg-type]
        _one_line(info.value)
    with pytest.raises(ConfigurationError, match="model must be"):
        client.chat("", "hi")


def test_list_jobs_limit_is_checked(client: FineTuneClient) -> None:
    for limit in ("ten", 0, -1, True, 2.5):
        with pytest.raises(ConfigurationError, match="limit must be a whole number"):
            client.list_jobs(limit=limit)  # type: ignore[arg-type]
    assert client.list_jobs(limit=1) == []


def test_config_must_be_a_config_or_a_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        FineTuneClient("fake", config="x")
    with pytest.raises(ConfigurationError, match="config must be a UnituneConfig or the path"):
        FineTuneClient("fake", config=3)  # type: ignore[arg-type]
    (tmp_path / "u.toml").write_text('provider = "fake"\n')
    assert FineTuneClient(config=tmp_path / "u.toml").provider_name == "fake"
    with pytest.raises(ConfigurationError, match="provider must be a provider name"):
        FineTuneClient(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="provider name must be a non-empty string"):
        FineTuneClient("")


def test_a_corrupt_ledger_is_a_configuration_error(tmp_path: Path, data: Path) -> None:
    class Durable(FakeProvider):
        ephemeral = False

    ledger = tmp_path / "ledger.sqlite3"
    ledger.write_bytes(b"this is not a database" * 100)
    client = FineTuneClient(Durable(clock=FakeClock()), config=UnituneConfig(), ledger=ledger)
    with pytest.raises(ConfigurationError, match=r"ledger .* cannot be used .*Move the file aside") as info:
        client.create_job(model="gpt-4o-mini", training_data=data, idempotency_key="k1")
    _one_line(info.value)
    # Without a key the ledger is only written after the job exists: a warning, not a failure.
    job = client.create_job(model="gpt-4o-mini", training_data=data)
    assert job.id


def test_a_home_that_is_a_file_is_a_configuration_error(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    monkeypatch.setenv("UNITUNE_HOME", str(home))
    client = FineTuneClient(FakeProvider(clock=FakeClock()), config=UnituneConfig())
    with pytest.raises(ConfigurationError, match=r"Cannot use the unitune home .*UNITUNE_HOME"):
        client.create_job(model="gpt-4o-mini", training_data=data)


def test_data_that_is_a_directory_or_unreadable(
    client: FineTuneClient, tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DatasetError, match="is a directory, not a data file"):
        client.validate(tmp_path)
    with pytest.raises(DatasetError, match="file not found"):
        client.validate(tmp_path / "missing.jsonl")
    real_open = Path.open

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == data:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    # Tests run as root in CI, where chmod cannot make a file unreadable: refuse the open instead.
    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(DatasetError, match="cannot be read \\(Permission denied\\); check its permissions"):
        client.validate(data)


# -- 2: a client built like a vendor SDK ---------------------------------------------------------------


def test_keyword_settings_reach_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNITUNE_PROVIDER", raising=False)
    client = FineTuneClient(
        "openai", api_key="sk-canary-7f3a9c", base_url="http://127.0.0.1:9/v1", timeout=5, max_retries=2
    )
    settings = client.provider.settings
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-canary-7f3a9c"
    assert settings.base_url == "http://127.0.0.1:9/v1"
    assert settings.timeout == 5
    assert client.config.retry.max_attempts == 3
    assert "sk-canary" not in repr(client.provider)
    assert "sk-canary" not in repr(client.config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bogus": 1}, "has no setting 'bogus'"),
        ({"base_url": "api.openai.com"}, "is not an http\\(s\\) URL"),
        ({"base_url": "ftp://example.com"}, "is not an http\\(s\\) URL"),
        ({"timeout": -1}, "timeout"),
        ({"max_retries": -1}, "max_retries must be"),
        ({"max_retries": "3"}, "max_retries must be"),
    ],
)
def test_bad_keyword_settings_are_refused_when_the_client_is_built(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        FineTuneClient("openai", **kwargs)
    _one_line(info.value)


def test_settings_cannot_change_a_built_provider() -> None:
    with pytest.raises(ConfigurationError, match="api_key cannot change a provider that is already built"):
        FineTuneClient(FakeProvider(), api_key="sk-x")


# -- 2: switch vendor by config ------------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> UnituneConfig:
    path = tmp_path / "unitune.toml"
    path.write_text(text)
    return load_config(path)


def test_job_defaults_come_from_config(tmp_path: Path, data: Path, fake: FakeProvider) -> None:
    config = _config(
        tmp_path,
        """
provider = "fake"
[job]
suffix = "support"
hyperparameters = { epochs = 2, learning_rate_multiplier = 0.5 }
[providers.fake]
model = "llama-3.1-8b-instruct"
hyperparameters = { epochs = 4 }
""",
    )
    client = FineTuneClient(fake, config=config)
    job = client.create_job(training_data=data)  # no model in code: the config names it
    assert job.model == "llama-3.1-8b-instruct"
    assert job.hyperparameters == {"epochs": 4, "learning_rate_multiplier": 0.5, "provider_options": {}}
    assert job.raw["metadata"] == {}
    assert fake.calls_to("create_job")[0].args["model"] == "llama-3.1-8b-instruct"
    # The call's own arguments win, field by field.
    job = client.create_job(
        training_data=data, model="gpt-4o-mini", hyperparameters=Hyperparameters(epochs=1)
    )
    assert job.model == "gpt-4o-mini"
    assert job.hyperparameters["epochs"] == 1
    assert job.hyperparameters["learning_rate_multiplier"] == 0.5
    assert client.estimate(data).model == "llama-3.1-8b-instruct"


def test_no_model_anywhere_names_the_setting(client: FineTuneClient, data: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"set model under \[providers.fake\]"):
        client.create_job(training_data=data)


def test_job_keys_in_a_provider_section_are_not_provider_settings(tmp_path: Path) -> None:
    config = _config(tmp_path, '[providers.openai]\nmodel = "gpt-4o-mini"\nmethod = "sft"\ntimeout = 9\n')
    assert config.section("openai") == {"timeout": 9}
    assert config.job_defaults("openai").model == "gpt-4o-mini"
    assert FineTuneClient("openai", config=config).provider.settings.timeout == 9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[job]\nvalidation_split = 1.5\n", "validation_split"),
        ("[job]\nhyperparameters = { epochz = 1 }\n", "hyperparameters"),
        ('[job]\nmethod = "rl"\n', "method"),
        ("[providers.fake]\nvalidation_split = 0\n", "validation_split"),
    ],
)
def test_bad_job_defaults_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    def read() -> None:
        _config(tmp_path, text).job_defaults("fake")

    with pytest.raises(ConfigurationError, match=message):
        read()


def test_validation_split_holds_out_part_of_the_training_file(
    tmp_path: Path, data: Path, fake: FakeProvider
) -> None:
    config = _config(tmp_path, '[job]\nmodel = "gpt-4o-mini"\nvalidation_split = 0.25\n')
    job = FineTuneClient(fake, config=config).create_job(training_data=data)
    assert job.validation_file is not None
    sizes = {c.args["filename"]: c for c in fake.calls_to("upload")}
    assert sorted(sizes) == ["train.jsonl", "validation.jsonl"]


def test_config_home_reaches_the_local_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNITUNE_HOME", raising=False)
    config = _config(tmp_path, 'provider = "local"\nhome = "state"\n')
    client = FineTuneClient(config=config, ledger=False)
    assert client.provider.settings.home == tmp_path / "state" / "local"  # type: ignore[attr-defined]


# -- 5: a lost create is looked up over a window before creating again ---------------------------------


class LaggingFake(FakeProvider):
    """A vendor whose job list shows a new job only `lag` seconds after it was made."""

    list_lags: ClassVar[bool] = True
    lag = 12.0

    def list_jobs(self, *, limit: int = 20) -> list[Job]:
        jobs = super().list_jobs(limit=limit)
        now = self.clock.now()
        return [
            j for j in jobs if j.created_at is not None and (now - j.created_at).total_seconds() >= self.lag
        ]


@pytest.mark.parametrize(("window", "jobs"), [(30.0, 1), (0.0, 2)])
def test_a_lost_create_is_found_in_a_lagging_list(
    tmp_path: Path, data: Path, window: float, jobs: int, caplog: pytest.LogCaptureFixture
) -> None:
    fake = LaggingFake(clock=FakeClock())
    fake.unavailable("create_job", commit=True)  # the job is made; the answer is lost
    config = UnituneConfig.model_validate({"retry": {"find_window": window}})
    client = FineTuneClient(fake, config=config)
    with caplog.at_level(logging.WARNING):
        job = client.create_job(model="gpt-4o-mini", training_data=data, idempotency_key="once")
    assert job.idempotency_key == "once"
    assert len(fake._jobs) == jobs  # with no window, the lagging list hid the job: a duplicate


# -- every public method, every kind of bad value --------------------------------------------------------

BAD_VALUES: list[Any] = [None, "", " ", 123, -1, 0, 2.5, float("nan"), [], {}, object(), "x", True, b"bytes",
                         Path("/nonexistent/x.jsonl"), {"a": 1}]  # fmt: skip


def _calls(client: FineTuneClient, job: Job, data: Path) -> list[tuple[str, Any, list[Any], dict[str, Any]]]:
    """(method, param, args, kwargs) for each public method, each parameter set to each bad value,
    the other parameters good."""
    import inspect

    good = {"job": job.id, "model": "gpt-4o-mini", "data": data, "training_data": data, "messages": "hi",
            "model_id": "ft:x", "providers": ["fake"]}  # fmt: skip
    out = []
    for name, fn in inspect.getmembers(client, predicate=inspect.ismethod):
        if name.startswith("_") or name in ("close", "from_config"):
            continue
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        for p in params:
            for bad in BAD_VALUES:
                args, kwargs = [], {}
                for q in params:
                    value = (
                        bad
                        if q is p
                        else good.get(q.name, None if q.default is inspect.Parameter.empty else q.default)
                    )
                    if q.default is inspect.Parameter.empty and q.kind is q.POSITIONAL_OR_KEYWORD:
                        args.append(value)
                    else:
                        kwargs[q.name] = value
                out.append((name, p.name, args, kwargs))
    return out


def test_no_bad_argument_escapes_the_error_tree(client: FineTuneClient, data: Path) -> None:
    job = client.create_job(model="gpt-4o-mini", training_data=data)
    calls = _calls(client, job, data)
    assert len(calls) > 500
    escapes = []
    for name, param, args, kwargs in calls:
        try:
            getattr(client, name)(*args, **kwargs)
        except UnituneError as e:
            if "\n" in str(e):
                escapes.append(f"{name}({param}=...): a message of several lines: {str(e)[:120]!r}")
        except Exception as e:  # what this test looks for
            escapes.append(f"{name}({param}={kwargs.get(param, args)!r}): {type(e).__name__}: {e}")
    assert escapes == []


def test_the_async_client_refuses_the_same_way(client: FineTuneClient, data: Path) -> None:
    import asyncio

    from unitune import AsyncFineTuneClient

    aclient = AsyncFineTuneClient(client=client)

    async def run() -> None:
        with pytest.raises(ConfigurationError, match="job id must be"):
            await aclient.get_job("")
        with pytest.raises(ConfigurationError, match="poll_interval must be"):
            await aclient.wait("x", poll_interval=0)
        with pytest.raises(ConfigurationError, match="metadata values must be strings"):
            await aclient.create_job(model="gpt-4o-mini", training_data=data, metadata={"team": 1})  # type: ignore[dict-item]

    asyncio.run(run())


def test_more_edges_the_review_found(client: FineTuneClient, data: Path, tmp_path: Path) -> None:
    import asyncio

    from unitune import AsyncFineTuneClient

    with pytest.raises(ConfigurationError, match="poll_interval must be a positive number"):
        client.wait("x", poll_interval=float("inf"))
    assert client.list_jobs() == []  # the fake clock is intact
    with pytest.raises(ConfigurationError, match="client must be a FineTuneClient"):
        AsyncFineTuneClient(client=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cwd must be a directory path"):
        load_config(cwd=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="env must be a mapping"):
        load_config(env=3)  # type: ignore[arg-type]
    aclient = AsyncFineTuneClient(client=client)
    assert aclient.resolve_model("gpt-4o-mini") == "gpt-4o-mini"
    quotes = asyncio.run(aclient.compare(data, model="gpt-4o-mini", providers=["fake"]))
    assert quotes[0].provider == "fake"


def test_a_validation_split_that_leaves_a_side_empty_names_the_setting(
    tmp_path: Path, fake: FakeProvider
) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text(
        json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
        + "\n"
    )
    config = _config(tmp_path, '[job]\nmodel = "gpt-4o-mini"\nvalidation_split = 0.2\n')
    with pytest.raises(
        ConfigurationError, match=r"validation_split = 0.2 leaves 1 training and 0 validation"
    ):
        FineTuneClient(fake, config=config).create_job(training_data=small)
    assert fake.calls == []


def test_the_fakes_scripting_refuses_what_would_script_nothing() -> None:
    from unitune.testing import FakeSettings

    fake = FakeProvider()
    for call, message in [
        (lambda: fake.rate_limit("create"), "no operation 'create'. Did you mean 'create_job'"),
        (lambda: fake.set_reply(5), "reply must be a string or a function"),  # type: ignore[arg-type]
        (lambda: fake.inject_error("get_job", "boom"), "error must be a ProviderError"),  # type: ignore[arg-type]
        (lambda: fake.unavailable("get_job", status_code=200), "status_code must be a 5xx"),
        (lambda: fake.rate_limit("get_job", times=-3), "times must be a whole number"),
        (lambda: fake.rate_limit("get_job", retry_after=-1), "retry_after must be"),
        (lambda: fake.fail_next_job(5), "message must be a non-empty string"),  # type: ignore[arg-type]
        (lambda: fake.calls_to(5), "no operation 5"),  # type: ignore[arg-type]
        (lambda: FakeSettings(progression=("nope",)), "Invalid setting progression.0 for FakeSettings"),  # type: ignore[arg-type]
        (lambda: FakeSettings(advance="x"), "Invalid setting advance"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(ConfigurationError, match=message) as info:
            call()
        _one_line(info.value)


def test_from_config_and_validation_split_arguments(data: Path, fake: FakeProvider) -> None:
    with pytest.raises(ConfigurationError, match="from_config reads provider from the config file"):
        FineTuneClient.from_config(provider="openai")
    client = FineTuneClient(fake, config=UnituneConfig())
    job = client.create_job(model="gpt-4o-mini", training_data=data, validation_split=0.25)
    assert job.validation_file is not None
    with pytest.raises(ConfigurationError, match="validation_split must be a fraction"):
        client.create_job(model="gpt-4o-mini", training_data=data, validation_split=1.5)


def test_the_async_client_has_every_method_of_the_sync_one() -> None:
    import inspect

    from unitune import AsyncFineTuneClient

    def public(cls: type) -> set[str]:
        return {n for n, v in inspect.getmembers(cls) if not n.startswith("_") and callable(v)}

    assert public(FineTuneClient) - public(AsyncFineTuneClient) == set()


def test_evaluate_goes_through_the_retry_policy(
    client: FineTuneClient, fake: FakeProvider, data: Path
) -> None:
    fake.rate_limit("chat", retry_after=2, times=2)  # two 429s: retried like every other provider call
    report = client.evaluate("gpt-4o-mini", data, max_examples=3, metrics=["exact_match"])
    assert report.examples == 3
    assert len(fake.calls_to("chat")) == 3 + 2
    assert sum(fake.clock.sleeps) >= 4  # waited out both Retry-Afters, on the fake clock
