"""Candidates: spec parsing, labels, jobs, few-shot drawing and prompts, and how the client resolves them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from unitune import FineTuneClient, Job, JobStatus
from unitune.data import ChatExample, Dataset
from unitune.errors import ConfigurationError
from unitune.evaluate import Candidate
from unitune.evaluate._candidates import Item, build_prompt, draw_shots, slugify
from unitune.evaluate._evaluate import read_items
from unitune.testing import FakeClock, FakeProvider
from unitune.types import Message

PROVIDERS = ("openai", "together", "fake")


# -- parsing ------------------------------------------------------------------------------------------


def test_base_and_base_few_shot() -> None:
    base = Candidate.parse("base", PROVIDERS)
    assert (base.base, base.model, base.few_shot, base.provider) == (True, None, 0, None)
    assert base.inferred_role == "baseline"
    assert base.label == "base"

    few = Candidate.parse("  base:few-shot=5 ", PROVIDERS)
    assert (few.base, few.model, few.few_shot) == (True, None, 5)
    assert few.inferred_role == "baseline"
    assert few.label == "base+5-shot"


def test_provider_prefix_only_for_a_registered_provider() -> None:
    on_together = Candidate.parse("together:ft-abc123", PROVIDERS)
    assert (on_together.provider, on_together.model) == ("together", "ft-abc123")
    assert on_together.inferred_role == "tuned"
    assert on_together.label == "ft-abc123"

    unknown = Candidate.parse("nosuch:ft-abc123", PROVIDERS)
    assert (unknown.provider, unknown.model) == (None, "nosuch:ft-abc123")
    # Without the list of providers nothing is a provider prefix.
    bare = Candidate.parse("together:ft-abc123")
    assert (bare.provider, bare.model) == (None, "together:ft-abc123")


@pytest.mark.parametrize(
    ("spec", "provider", "model", "few_shot"),
    [
        ("ft:gpt-4o-mini:org::abc", None, "ft:gpt-4o-mini:org::abc", 0),
        ("ft:gpt-4o-mini:org::abc:few-shot=2", None, "ft:gpt-4o-mini:org::abc", 2),
        ("openai:ft:gpt-4o-mini:org::abc", "openai", "ft:gpt-4o-mini:org::abc", 0),
        ("together:meta-llama/Llama-3-8b:few-shot=3", "together", "meta-llama/Llama-3-8b", 3),
        ("gpt-4.1-mini", None, "gpt-4.1-mini", 0),
    ],
)
def test_model_ids_with_colons_stay_whole(spec: str, provider: str | None, model: str, few_shot: int) -> None:
    c = Candidate.parse(spec, PROVIDERS)
    assert (c.provider, c.model, c.few_shot, c.base) == (provider, model, few_shot, False)


def test_a_name_of_its_own() -> None:
    mine = Candidate.parse("mine=together:ft-abc123", PROVIDERS)
    assert (mine.name, mine.provider, mine.model, mine.label) == ("mine", "together", "ft-abc123", "mine")
    shots = Candidate.parse("prompted=base:few-shot=3", PROVIDERS)
    assert (shots.name, shots.base, shots.few_shot, shots.label) == ("prompted", True, 3, "prompted")


@pytest.mark.parametrize(
    "spec", ["base:few-shot=x", "base:few-shot=", "base:few-shot=-1", "base:few-shot=2.5", "m:few-shot=two"]
)
def test_a_bad_few_shot_number_is_refused(spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"few-shot must be a whole number.*base:few-shot=5"):
        Candidate.parse(spec, PROVIDERS)


@pytest.mark.parametrize("spec", ["", "   ", None, 5])
def test_an_empty_or_non_text_spec_is_refused(spec: object) -> None:
    with pytest.raises(ConfigurationError, match="A candidate spec must be text"):
        Candidate.parse(spec, PROVIDERS)  # type: ignore[arg-type]


def test_a_spec_with_only_few_shot_names_no_model() -> None:
    with pytest.raises(ConfigurationError, match="names no model"):
        Candidate.parse(":few-shot=3", PROVIDERS)


# -- the dataclass itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "label", "role"),
    [
        (Candidate(model="m"), "m", "tuned"),
        (Candidate(model="m", few_shot=3), "m+3-shot", "baseline"),
        (Candidate(model="m", role="baseline"), "m", "baseline"),
        (Candidate(model="m", few_shot=2, role="tuned"), "m+2-shot", "tuned"),
        (Candidate(base=True), "base", "baseline"),
        (Candidate(base=True, few_shot=2), "base+2-shot", "baseline"),
        (Candidate(model="m", name="x", few_shot=4), "x", "baseline"),
    ],
)
def test_labels_and_roles(candidate: Candidate, label: str, role: str) -> None:
    assert candidate.label == label
    assert candidate.inferred_role == role


def test_with_name_changes_only_the_label() -> None:
    c = Candidate(model="m", few_shot=2, system="s").with_name("renamed")
    assert (c.label, c.model, c.few_shot, c.system) == ("renamed", "m", 2, "s")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "m", "few_shot": -1}, "few_shot must be a whole number"),
        ({"model": "m", "few_shot": True}, "few_shot must be a whole number"),
        ({"model": "m", "few_shot": 2.0}, "few_shot must be a whole number"),
        ({}, "A candidate needs a model"),
        ({"model": "  "}, "must be a model id"),
        ({"model": "m", "role": "judge"}, "role must be 'tuned' or 'baseline'"),
        ({"model": "m", "training_usd": -1.0}, "training_usd must be a cost"),
        ({"model": "m", "chat_params": [("temperature", 0)]}, "chat_params must be a dict"),
    ],
)
def test_bad_candidates_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Candidate(**kwargs)  # type: ignore[arg-type]


def _job(status: JobStatus, fine_tuned_model: str | None) -> Job:
    return Job(
        id="job-7",
        provider="together",
        status=status,
        raw_status=status.value,
        model="meta-llama/Llama-3-8b",
        fine_tuned_model=fine_tuned_model,
    )


def test_from_job_takes_the_tuned_model_its_base_and_its_provider() -> None:
    c = Candidate.from_job(_job(JobStatus.SUCCEEDED, "ft-llama-7"), training_usd=2.5)
    assert (c.model, c.provider, c.base_model, c.role, c.training_usd) == (
        "ft-llama-7",
        "together",
        "meta-llama/Llama-3-8b",
        "tuned",
        2.5,
    )
    assert c.label == "tuned"
    assert Candidate.from_job(_job(JobStatus.SUCCEEDED, "ft-llama-7"), name="v2").label == "v2"


def test_from_job_needs_a_tuned_model() -> None:
    with pytest.raises(
        ConfigurationError, match=r"Job job-7 has no tuned model yet \(status running\).*wait"
    ):
        Candidate.from_job(_job(JobStatus.RUNNING, None))


def test_slugify_is_file_safe_and_unique() -> None:
    assert slugify("base+5-shot") == "base-5-shot"
    assert slugify("ft:gpt-4o-mini:org::abc") == "ft-gpt-4o-mini-org-abc"
    assert slugify("../..") == "candidate"
    assert slugify("tuned", {"tuned", "tuned-2"}) == "tuned-3"
    assert len(slugify("x" * 500)) == 80


# -- few-shot drawing and prompts ---------------------------------------------------------------------


def item(index: int, question: str, answer: str, system: str | None = None) -> Item:
    prompt = ([Message(role="system", content=system)] if system else []) + [
        Message(role="user", content=question)
    ]
    return Item(index=index, prompt=prompt, reference=answer)


POOL = [item(i, f"train question {i}", f"train answer {i}", system="train system") for i in range(20)]


def test_draw_shots_is_deterministic_per_seed() -> None:
    first = draw_shots(POOL, 5, [], seed=1)
    assert len(first) == 5
    assert len({s.index for s in first}) == 5  # without replacement
    assert draw_shots(POOL, 5, [], seed=1) == first
    others = [draw_shots(POOL, 5, [], seed=s) for s in range(2, 8)]
    assert any(o != first for o in others)
    assert draw_shots(POOL, 0, [], seed=1) == []


def test_draw_shots_never_draws_a_prompt_of_the_evaluation_set() -> None:
    evaluation = [
        item(0, "train   question 3", "x", system="another system"),
        item(1, "train question 7", "y"),
    ]
    # The same questions, whitespace and system prompt aside: they must never be shots.
    for seed in range(30):
        drawn = draw_shots(POOL, 18, evaluation, seed=seed)
        assert {s.index for s in drawn} == set(range(20)) - {3, 7}


def test_draw_shots_errors_when_too_few_are_left() -> None:
    evaluation = [item(0, "train question 3", "x")]
    assert len(draw_shots(POOL, 19, evaluation, seed=0)) == 19
    with pytest.raises(ConfigurationError, match=r"A 20-shot candidate needs 20 .* the training data has 19"):
        draw_shots(POOL, 20, evaluation, seed=0)
    with pytest.raises(ConfigurationError, match="Pass more training data"):
        draw_shots([], 1, [], seed=0)


def test_build_prompt_keeps_the_examples_system_prompt_or_replaces_it() -> None:
    it = item(0, "q", "a", system="sys")
    assert build_prompt(it, [], None) == it.prompt
    assert build_prompt(it, [], "new") == [
        Message(role="system", content="new"),
        Message(role="user", content="q"),
    ]
    without = item(1, "q", "a")
    assert build_prompt(without, [], None) == without.prompt
    assert build_prompt(without, [], "new")[0] == Message(role="system", content="new")


def test_build_prompt_puts_the_shots_as_turns_after_the_system_prompt() -> None:
    it = item(0, "q", "a", system="sys")
    shots = [POOL[4], POOL[9]]

    messages = build_prompt(it, shots, None)

    assert [(m.role, m.text) for m in messages] == [
        ("system", "sys"),  # the shots' own system prompt is dropped
        ("user", "train question 4"),
        ("assistant", "train answer 4"),
        ("user", "train question 9"),
        ("assistant", "train answer 9"),
        ("user", "q"),
    ]


def test_build_prompt_moves_only_the_leading_system_messages() -> None:
    it = Item(
        index=0,
        prompt=[
            Message(role="system", content="one"),
            Message(role="system", content="two"),
            Message(role="user", content="first"),
            Message(role="assistant", content="reply"),
            Message(role="system", content="mid-conversation note"),
            Message(role="user", content="second"),
        ],
        reference="final",
    )
    kept = build_prompt(it, [POOL[0]], None)
    assert [m.text for m in kept] == [
        "one",
        "two",
        "train question 0",
        "train answer 0",
        "first",
        "reply",
        "mid-conversation note",
        "second",
    ]
    replaced = build_prompt(it, [], "only")
    assert [m.text for m in replaced] == ["only", "first", "reply", "mid-conversation note", "second"]


# -- through the client -------------------------------------------------------------------------------


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(clock=FakeClock())


@pytest.fixture
def client(fake: FakeProvider, tmp_path: Path) -> Iterator[FineTuneClient]:
    with FineTuneClient(fake, ledger=tmp_path / "ledger.sqlite3") as c:
        yield c


def chats(prefix: str, n: int, system: str = "You answer briefly.") -> Dataset:
    return Dataset.from_records(
        [
            ChatExample(
                messages=[
                    Message(role="system", content=system),
                    Message(role="user", content=f"{prefix} {i}"),
                    Message(role="assistant", content=f"{prefix} answer {i}"),
                ]
            )
            for i in range(n)
        ]
    )


class Recorder:
    """A reply function that keeps every conversation it was sent, by model."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[Message]]] = []
        self._lock = threading.Lock()

    def __call__(self, model: str, messages: list[Message]) -> str:
        with self._lock:
            self.seen.append((model, list(messages)))
        return "whatever"

    def of(self, model: str) -> list[list[Message]]:
        return [m for name, m in self.seen if name == model]


def test_a_few_shot_candidate_is_sent_its_shots(client: FineTuneClient, fake: FakeProvider) -> None:
    recorder = Recorder()
    fake.set_reply(recorder)
    data = chats("q", 6)
    # Ten training examples, two of them the evaluation's own questions under another system prompt.
    train = Dataset.from_records([*chats("t", 8, system="Training system."), *chats("q", 2, system="Other.")])

    report = client.evaluate(
        data, candidates=["tuned-model", "base-model:few-shot=3"], train_data=train, metrics=["exact_match"]
    )

    assert report.candidate("base-model+3-shot").few_shot == 3
    expected = draw_shots(read_items(train)[0], 3, read_items(data)[0], seed=0)
    expected_turns = [
        (m.role, m.text)
        for s in expected
        for m in [*s.prompt, Message(role="assistant", content=s.reference)]
        if m.role != "system"  # a shot's own system prompt is not repeated
    ]
    assert len(expected_turns) == 6
    assert all(role == "user" and text.startswith("t ") for role, text in expected_turns[::2])
    few = recorder.of("base-model")
    assert len(few) == 6
    for messages in few:
        assert len(messages) == 1 + 2 * 3 + 1
        assert (messages[0].role, messages[0].text) == ("system", "You answer briefly.")
        assert [(m.role, m.text) for m in messages[1:7]] == expected_turns  # the same shots every time
        assert messages[-1].role == "user"
        assert messages[-1].text.startswith("q ")
    assert sorted(m[-1].text for m in few) == [f"q {i}" for i in range(6)]
    zero = recorder.of("tuned-model")
    assert len(zero) == 6
    assert all(len(m) == 2 for m in zero)  # system and question only


def test_a_candidate_system_prompt_replaces_the_examples(client: FineTuneClient, fake: FakeProvider) -> None:
    recorder = Recorder()
    fake.set_reply(recorder)

    client.evaluate(
        chats("q", 3),
        candidates=["tuned-model", Candidate(model="base-model", few_shot=1, system="Be terse.")],
        train_data=chats("t", 4),
        metrics=["exact_match"],
    )

    for messages in recorder.of("base-model"):
        assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
        assert messages[0].text == "Be terse."


def test_a_few_shot_candidate_without_train_data_is_refused_before_any_chat(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    with pytest.raises(ConfigurationError, match=r"few-shot candidate needs training examples.*train_data="):
        client.evaluate(
            chats("q", 3), candidates=["tuned-model", "base-model:few-shot=2"], metrics=["exact_match"]
        )
    assert fake.calls_to("chat") == []


def test_too_little_train_data_is_refused_before_any_chat(client: FineTuneClient, fake: FakeProvider) -> None:
    with pytest.raises(ConfigurationError, match=r"needs 3 training examples .* the training data has 2"):
        client.evaluate(
            chats("q", 3),
            candidates=["tuned-model", "base-model:few-shot=3"],
            train_data=chats("t", 2),
            metrics=["exact_match"],
        )
    assert fake.calls_to("chat") == []


@pytest.mark.parametrize(
    "candidates",
    [
        ["model-a", "model-a"],
        [Candidate(model="model-a", name="x"), Candidate(model="model-b", name="x")],
        ["x=model-a", Candidate(model="model-b", name="x")],
    ],
)
def test_duplicate_names_are_refused(
    client: FineTuneClient, fake: FakeProvider, candidates: list[str | Candidate]
) -> None:
    with pytest.raises(ConfigurationError, match=r"Two candidates are both called .*Name them"):
        client.evaluate(chats("q", 2), candidates=candidates, metrics=["exact_match"])
    assert fake.calls_to("chat") == []


def test_base_without_a_tuned_candidate_with_a_known_base_names_the_fix(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    with pytest.raises(ConfigurationError) as info:
        client.evaluate(chats("q", 2), candidates=["base", "tuned-model"], metrics=["exact_match"])
    assert "'base' needs exactly one tuned candidate with a known base model (found: none)" in str(info.value)
    assert info.value.fix is not None
    assert "Name the base model instead" in info.value.fix
    assert fake.calls_to("chat") == []


def test_base_with_two_tuned_candidates_on_different_bases_is_ambiguous(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    candidates = [
        "base",
        Candidate(model="ft-one", base_model="model-a", name="one"),
        Candidate(model="ft-two", base_model="model-b", name="two"),
    ]
    with pytest.raises(ConfigurationError, match=r"found: fake:model-a, fake:model-b"):
        client.evaluate(chats("q", 2), candidates=candidates, metrics=["exact_match"])


def test_base_binds_to_the_base_model_of_a_tuned_candidate(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    recorder = Recorder()
    fake.set_reply(recorder)
    report = client.evaluate(
        chats("q", 2),
        candidates=["base", "base:few-shot=1", Candidate(model="ft-one", base_model="model-a", name="one")],
        train_data=chats("t", 3),
        metrics=["exact_match"],
    )
    assert [(c.name, c.model, c.role, c.few_shot) for c in report.candidates] == [
        ("base", "model-a", "baseline", 0),
        ("base+1-shot", "model-a", "baseline", 1),
        ("one", "ft-one", "tuned", 0),
    ]
    assert len(recorder.of("model-a")) == 4
    assert len(recorder.of("ft-one")) == 2


def test_base_binds_when_two_tuned_candidates_share_a_base_on_the_same_provider(
    client: FineTuneClient, fake: FakeProvider, train_file: Path
) -> None:
    job = client.wait(client.create_job(model="m", training_data=train_file))
    fake.set_reply("x")

    report = client.evaluate(
        chats("q", 2),
        candidates=["base", job, Candidate(model="ft-other", base_model=job.model, name="other")],
        metrics=["exact_match"],
    )

    assert report.candidate("base").model == job.model


def test_a_job_candidate_binds_base_to_the_jobs_model(
    client: FineTuneClient, fake: FakeProvider, train_file: Path
) -> None:
    job = client.wait(client.create_job(model="m", training_data=train_file))
    assert job.fine_tuned_model is not None
    recorder = Recorder()
    fake.set_reply(recorder)

    report = client.evaluate(chats("q", 3), candidates=["base", job], metrics=["exact_match"])

    assert [(c.name, c.model, c.role, c.provider) for c in report.candidates] == [
        ("base", job.model, "baseline", "fake"),
        ("tuned", job.fine_tuned_model, "tuned", "fake"),
    ]
    assert {model for model, _ in recorder.seen} == {job.model, job.fine_tuned_model}
    assert len(recorder.seen) == 6


def test_an_unfinished_job_is_refused(client: FineTuneClient, fake: FakeProvider, train_file: Path) -> None:
    job = client.create_job(model="m", training_data=train_file)
    with pytest.raises(ConfigurationError, match=rf"Job {job.id} has no tuned model yet"):
        client.evaluate(chats("q", 2), candidates=["base", job], metrics=["exact_match"])
    assert fake.calls_to("chat") == []


def test_a_provider_prefix_names_the_provider(client: FineTuneClient, fake: FakeProvider) -> None:
    recorder = Recorder()
    fake.set_reply(recorder)
    report = client.evaluate(
        chats("q", 2), candidates=["fake:other-model", "nosuch:model"], metrics=["exact_match"]
    )
    assert [(c.name, c.provider, c.model) for c in report.candidates] == [
        ("other-model", "fake", "other-model"),
        ("nosuch:model", "fake", "nosuch:model"),  # not a provider: the whole spec is the model id
    ]


def test_a_candidate_on_an_unconfigured_provider_is_refused_before_any_chat(
    client: FineTuneClient, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    fake.set_reply("x")
    with pytest.raises(
        ConfigurationError, match=r"is on 'together', which is not configured.*TOGETHER_API_KEY"
    ):
        client.evaluate(
            chats("q", 4), candidates=["tuned-model", "together:some-model"], metrics=["exact_match"]
        )
    assert fake.calls_to("chat") == []


# -- roles said outright, or read from the catalog ------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "model", "few_shot", "role"),
    [
        ("my-model:role=baseline", "my-model", 0, "baseline"),
        ("base:role=tuned", None, 0, "tuned"),
        ("m:few-shot=2:role=tuned", "m", 2, "tuned"),
        ("m:role=baseline:few-shot=2", "m", 2, "baseline"),
        ("ft:gpt-4o-mini:org::abc:role=baseline", "ft:gpt-4o-mini:org::abc", 0, "baseline"),
    ],
)
def test_a_spec_can_say_its_role(spec: str, model: str | None, few_shot: int, role: str) -> None:
    candidate = Candidate.parse(spec, PROVIDERS)
    assert (candidate.model, candidate.few_shot, candidate.role) == (model, few_shot, role)
    assert candidate.inferred_role == role


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("m:role=judge", "role must be 'tuned' or 'baseline'"),
        ("m:role=tuned:role=baseline", "sets role twice"),
        ("m:few-shot=1:few-shot=2", "sets few-shot twice"),
    ],
)
def test_a_bad_role_option_is_refused(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Candidate.parse(spec, PROVIDERS)


def test_a_catalog_base_model_is_a_baseline_and_an_unknown_model_is_tuned() -> None:
    fake = FakeProvider(clock=FakeClock()).as_provider("openai")
    fake.set_reply(lambda model, messages: "x")
    data = Dataset.from_records(
        [
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "x"}]}
            for i in range(4)
        ]
    )
    with FineTuneClient(fake, ledger=False) as client:
        report = client.evaluate(
            data, candidates=["gpt-4.1-mini", "acme-tuned-model"], metrics=["exact_match"]
        )
    roles = {c.name: c.role for c in report.candidates}
    assert roles == {"gpt-4.1-mini": "baseline", "acme-tuned-model": "tuned"}
    assert (report.verdict.candidate, report.verdict.baseline) == ("acme-tuned-model", "gpt-4.1-mini")
