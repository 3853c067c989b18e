"""The LLM judge: reading its verdicts, cancelling position bias, and a judged evaluation end to end."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator

import pytest

from unitune import FineTuneClient
from unitune.data import ChatExample, Dataset
from unitune.errors import ConfigurationError
from unitune.evaluate import DEFAULT_RUBRIC, Candidate, EvaluationReport, Judge
from unitune.evaluate._judge import combine, judge_prompt, parse_verdict
from unitune.testing import FakeClock, FakeProvider
from unitune.types import Message

# -- reading a verdict --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"winner": "A", "reason": "It matches the reference."}', ("A", "It matches the reference.")),
        ('{"winner": "b", "reason": "Shorter."}', ("B", "Shorter.")),
        ('{"winner": " Tie ", "reason": "Both fine."}', ("tie", "Both fine.")),
        ('{"winner": "A"}', ("A", "")),
        ('{"winner": "A", "reason": null}', ("A", "")),
        ('{"reason": "A is right", "winner": "B", "scores": {"A": 1, "B": 2}}', ("B", "A is right")),
        (
            'Here is my verdict:\n```json\n{"winner": "B", "reason": "B is correct."}\n```',
            ("B", "B is correct."),
        ),
        ('After comparing both, {"winner": "tie", "reason": "Equal."} is my answer.', ("tie", "Equal.")),
    ],
)
def test_parse_verdict_reads_json_bare_or_in_prose(text: str, expected: tuple[str, str]) -> None:
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        ("Winner: B\nB follows the format.", "B"),
        ("winner = A", "A"),
        ('I think the WINNER: "tie" here.', "tie"),
        ('{"winner": "neither"}\nWinner: A', "A"),  # JSON without a usable winner, then a line
    ],
)
def test_parse_verdict_accepts_a_winner_line(text: str, winner: str) -> None:
    read = parse_verdict(text)
    assert read is not None
    assert read[0] == winner
    assert read[1] == text.strip()  # the whole reply is the reason


def test_parse_verdict_keeps_at_most_500_characters_of_a_winner_line_reason() -> None:
    text = "Winner: A " + "because " * 200
    read = parse_verdict(text)
    assert read is not None
    assert len(read[1]) == 500


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I cannot decide between these.",
        '{"winner": "C", "reason": "?"}',
        '{"winner": "A", "reason": "unterminated"',  # broken JSON, and no winner line either
        "Answer A is better.",  # no winner field or line
        "Winner: Alice",  # \b: not the letter A
        "[1, 2, 3]",
    ],
)
def test_parse_verdict_returns_none_for_garbage(text: str) -> None:
    assert parse_verdict(text) is None


def test_parse_verdict_reads_the_verdict_after_a_quoted_json_answer() -> None:
    text = 'Answer B returns {"category": "bug"}, which is wrong.\n{"winner": "A", "reason": "A is right."}'
    assert parse_verdict(text) == ("A", "A is right.")


# -- both orders --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate_first", "baseline_first", "outcome"),
    [
        ("A", "B", "candidate"),  # the candidate wins in both orders
        ("B", "A", "baseline"),  # the baseline wins in both orders
        ("A", "A", "tie"),  # always the first answer: position bias, not a preference
        ("B", "B", "tie"),  # always the second answer
        ("tie", "B", "tie"),
        ("A", "tie", "tie"),
        ("tie", "tie", "tie"),
    ],
)
def test_combine_counts_a_win_only_when_both_orders_agree(
    candidate_first: str, baseline_first: str, outcome: str
) -> None:
    assert combine(candidate_first, baseline_first) == outcome  # type: ignore[arg-type]


# -- the prompt ---------------------------------------------------------------------------------------

QUESTION = [
    Message(role="system", content="SECRET SYSTEM PROMPT"),
    Message(role="user", content="Where is my order?"),
    Message(role="assistant", content="Which order?"),
    Message(role="user", content="Number 42."),
]


def test_judge_prompt_shows_the_rubric_conversation_reference_and_both_answers_in_order() -> None:
    judge = Judge(model="judge-model")
    messages = judge_prompt(judge, QUESTION, "It ships today.", "FIRST ANSWER", "SECOND ANSWER")

    assert [m.role for m in messages] == ["system", "user"]
    body = messages[1].text
    assert f"Rubric: {DEFAULT_RUBRIC}" in body
    assert "[user] Where is my order?\n[assistant] Which order?\n[user] Number 42." in body
    assert "SECRET SYSTEM PROMPT" not in body  # the candidates' system prompt is not the judge's business
    assert "Reference answer:\nIt ships today." in body
    assert body.index("Answer A:\nFIRST ANSWER") < body.index("Answer B:\nSECOND ANSWER")
    assert '"winner"' in body


def test_judge_prompt_leaves_the_reference_out_when_asked() -> None:
    judge = Judge(model="judge-model", show_reference=False, rubric="Prefer the polite answer.")
    body = judge_prompt(judge, QUESTION, "It ships today.", "a", "b")[1].text
    assert "Reference answer" not in body
    assert "It ships today." not in body
    assert "Rubric: Prefer the polite answer." in body


def test_judge_settings_are_checked_and_specs_parsed() -> None:
    with pytest.raises(ConfigurationError, match="A judge needs a model id"):
        Judge(model=" ")
    with pytest.raises(ConfigurationError, match="rubric is empty"):
        Judge(model="j", rubric="  ")
    assert Judge.parse("together:meta-llama/Llama-3.3-70B", ("together",)) == Judge(
        model="meta-llama/Llama-3.3-70B", provider="together"
    )
    assert Judge.parse("ft:gpt-4o:org::x", ("together",)) == Judge(model="ft:gpt-4o:org::x")


# -- end to end ---------------------------------------------------------------------------------------

N = 10
JUDGE = "judge-model"
# Which examples each candidate answers right (the others get "no idea").
TUNED_RIGHT = set(range(6))  # 0..5
BASE_RIGHT = {4, 5, 6, 7}
GARBAGE = {8, 9}  # the judge's reply for these cannot be read

_ANSWERS = re.compile(
    r"\[user\] q(?P<q>\d+)\n.*Reference answer:\n(?P<ref>.*?)\n\nAnswer A:\n(?P<a>.*?)\n\nAnswer B:\n(?P<b>.*?)\n\n",
    re.DOTALL,
)


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(clock=FakeClock())


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[FineTuneClient]:
    with FineTuneClient(fake, ledger=False) as c:
        yield c


def data() -> Dataset:
    return Dataset.from_records(
        [
            ChatExample(
                messages=[
                    Message(role="user", content=f"q{i}"),
                    Message(role="assistant", content=f"answer {i}"),
                ]
            )
            for i in range(N)
        ]
    )


class Replies:
    """Candidates answer from their sets; the judge prefers the answer equal to the reference."""

    def __init__(self, judge: str = "reference") -> None:
        self.judge = judge
        self.judged: list[tuple[int, str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, model: str, messages: list[Message]) -> str:
        if model != JUDGE:
            q = int(messages[-1].text[1:])
            right = TUNED_RIGHT if model == "tuned-model" else BASE_RIGHT
            return f"answer {q}" if q in right else "no idea"
        match = _ANSWERS.search(messages[-1].text)
        assert match is not None, messages[-1].text
        q, ref, a, b = int(match["q"]), match["ref"], match["a"], match["b"]
        with self._lock:
            self.judged.append((q, a, b))
        if self.judge == "always-a":
            return '{"winner": "A", "reason": "The first answer is better."}'
        if q in GARBAGE:
            return "Hmm, hard to say."
        if a == ref:
            return json.dumps({"winner": "A", "reason": f"A matches the reference ({a} first)"})
        if b == ref:
            return json.dumps({"winner": "B", "reason": f"B matches the reference ({a} first)"})
        return json.dumps({"winner": "tie", "reason": "Neither matches."})


def evaluate(client: FineTuneClient, judge: Judge) -> EvaluationReport:
    return client.evaluate(
        data(),
        candidates=[
            Candidate(model="tuned-model", name="tuned"),
            Candidate(model="base-model", name="base", role="baseline"),
        ],
        metrics=["exact_match"],
        judge=judge,
    )


def test_a_judged_evaluation_counts_wins_losses_ties_and_unreadable(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    replies = Replies()
    fake.set_reply(replies)

    report = evaluate(client, Judge(model=JUDGE))

    assert len(report.judge) == 1
    j = report.judge[0]
    assert (j.judge, j.candidate, j.baseline) == (f"fake:{JUDGE}", "tuned", "base")
    # 0..3: only the tuned answer is right: wins. 4, 5: both right, the judge picks the first in each
    # order: ties. 6, 7: only the base is right: losses. 8, 9: unreadable verdicts: skipped.
    assert (j.wins, j.losses, j.ties, j.skipped) == (4, 2, 2, 2)
    assert j.win_rate == pytest.approx((4 + 2 / 2) / 8)
    assert j.low is not None
    assert j.high is not None
    assert j.low < j.win_rate < j.high
    # Every example was judged twice, once in each order.
    assert len(replies.judged) == 2 * N
    assert sorted(q for q, _, _ in replies.judged) == sorted([*range(N), *range(N)])
    # Rows for the readable ones, in example order, with the reasons of both orders.
    assert [(r.index, r.winner) for r in j.rows] == [
        (0, "candidate"),
        (1, "candidate"),
        (2, "candidate"),
        (3, "candidate"),
        (4, "tie"),
        (5, "tie"),
        (6, "baseline"),
        (7, "baseline"),
    ]
    assert j.rows[0].reasons == [
        "A matches the reference (answer 0 first)",
        "B matches the reference (no idea first)",
    ]
    assert "judge: fake:judge-model: tuned vs base: 4 wins, 2 losses, 2 ties" in str(report)


def test_a_judge_that_always_prefers_the_first_answer_gives_only_ties(
    client: FineTuneClient, fake: FakeProvider
) -> None:
    fake.set_reply(Replies(judge="always-a"))

    j = evaluate(client, Judge(model=JUDGE)).judge[0]

    assert (j.wins, j.losses, j.ties, j.skipped) == (0, 0, N, 0)
    assert j.win_rate == 0.5
    assert all(r.winner == "tie" for r in j.rows)


def test_the_judge_sees_the_reference_only_when_shown(client: FineTuneClient, fake: FakeProvider) -> None:
    sent: list[str] = []
    lock = threading.Lock()

    def reply(model: str, messages: list[Message]) -> str:
        if model == JUDGE:
            with lock:
                sent.append(messages[-1].text)
            return '{"winner": "tie", "reason": "-"}'
        return "no idea"

    fake.set_reply(reply)
    evaluate(client, Judge(model=JUDGE, show_reference=False))

    assert len(sent) == 2 * N
    assert not any("Reference answer" in body for body in sent)


def test_no_judge_means_no_judge_calls(client: FineTuneClient, fake: FakeProvider) -> None:
    fake.set_reply(Replies())
    report = client.evaluate(
        data(),
        candidates=[
            Candidate(model="tuned-model", name="tuned"),
            Candidate(model="base-model", name="base", role="baseline"),
        ],
        metrics=["exact_match"],
    )
    assert report.judge == []
    assert JUDGE not in {c.args["model"] for c in fake.calls_to("chat")}
