"""`unitune evaluate` through Typer's test runner, every client routed to one `FakeProvider`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from unitune.cli import app
from unitune.evaluate import EvaluationReport
from unitune.testing import FakeClock, FakeProvider, override_provider
from unitune.types import Message


def chat_rows(n: int, *, user: str = "q", answer: str = "a") -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"{user}{i}"},
                {"role": "assistant", "content": f"{answer}{i}"},
            ]
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def reply(model: str, messages: list[Message]) -> str:
    """The tuned model is always right; the base model on even examples only."""
    prompt = next(m.text for m in reversed(messages) if m.role == "user")
    i = int(prompt[1:])
    return f"a{i}" if model == "tuned-model" or i % 2 == 0 else "no idea"


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider(clock=FakeClock())
    provider.set_reply(reply)
    with override_provider(provider):
        yield provider


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "valid.jsonl", chat_rows(24))


@pytest.fixture
def train(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", chat_rows(8, user="t", answer="b"))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def candidates(train: Path) -> list[str]:
    return [
        "-c",
        "base-model",
        "-c",
        "shots=base-model:few-shot=3",
        "-c",
        "tuned=tuned-model",
        "--train",
        str(train),
    ]


def test_evaluate_json_writes_the_report_directory(
    fake: FakeProvider, valid: Path, train: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"

    result = invoke("evaluate", str(valid), *candidates(train), "-o", str(out), "--json", "-p", "fake")

    assert result.exit_code == 0, result.output
    report = EvaluationReport.model_validate_json(result.stdout)
    assert [c.name for c in report.candidates] == ["base-model", "shots", "tuned"]
    assert report.candidate("shots").few_shot == 3
    assert report.candidate("shots").role == "baseline"
    assert report.candidate("tuned").metrics["exact_match"].mean == 1.0
    assert report.candidate("base-model").metrics["exact_match"].mean == 0.5
    assert report.verdict.candidate == "tuned"
    assert report.verdict.baseline is not None
    assert len(fake.calls_to("chat")) == 3 * 24
    assert {p.name for p in out.iterdir()} >= {
        "report.html",
        "report.md",
        "report.json",
        "answers",
        "examples.jsonl",
    }
    assert sorted(p.name for p in (out / "answers").iterdir()) == [
        "base-model.jsonl",
        "shots.jsonl",
        "tuned.jsonl",
    ]
    assert EvaluationReport.model_validate_json((out / "report.json").read_text(encoding="utf-8")) == report
    assert "<html" in (out / "report.html").read_text(encoding="utf-8").lower()


def test_evaluate_prints_the_table_the_verdict_and_where_the_report_is(
    fake: FakeProvider, valid: Path, train: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"

    result = invoke("evaluate", str(valid), *candidates(train), "-o", str(out), "-p", "fake")

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("verdict:"))
    report = EvaluationReport.model_validate_json((out / "report.json").read_text(encoding="utf-8"))
    assert lines[verdict] == f"verdict: {report.verdict}"
    assert all(not line.startswith("verdict") for line in lines[verdict + 1 :])
    assert any(str(out / "report.html") in line for line in lines[verdict + 1 :])
    assert any(name in result.stdout for name in ("tuned", "shots", "base-model"))
    assert "Traceback" not in result.output


def test_without_a_directory_the_output_ends_with_the_verdict(
    fake: FakeProvider, valid: Path, train: Path
) -> None:
    result = invoke("evaluate", str(valid), *candidates(train), "-p", "fake")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("verdict: ")
    assert "report.html" not in result.stdout


def test_a_rerun_of_the_command_resumes(fake: FakeProvider, valid: Path, train: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    first = invoke("evaluate", str(valid), *candidates(train), "-o", str(out), "--json", "-p", "fake")
    asked = len(fake.calls_to("chat"))

    again = invoke("evaluate", str(valid), *candidates(train), "-o", str(out), "--json", "-p", "fake")

    assert again.exit_code == 0, again.output
    assert len(fake.calls_to("chat")) == asked
    assert EvaluationReport.model_validate_json(again.stdout) == EvaluationReport.model_validate_json(
        first.stdout
    )


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["-c", "base:few-shot=x"], "few-shot must be a whole number"),
        (["-c", "base-model:few-shot=3", "-c", "tuned=tuned-model"], "--train"),
        (["-c", "base:few-shot=3", "-c", "tuned=tuned-model"], "base"),
        (["-c", "tuned-model", "-c", "tuned-model"], "Two candidates"),
        (["-c", "   "], "candidate"),
    ],
    ids=["bad-few-shot", "few-shot-without-train", "base-without-tuned-base", "duplicate", "blank"],
)
def test_a_bad_candidate_is_one_error_line_and_exit_1(
    fake: FakeProvider, valid: Path, specs: list[str], message: str
) -> None:
    result = invoke("evaluate", str(valid), *specs, "-p", "fake")

    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: ")
    assert message in errors[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert fake.calls_to("chat") == []


def test_a_bad_candidate_with_json_is_a_json_error(fake: FakeProvider, valid: Path) -> None:
    result = invoke("evaluate", str(valid), "-c", "base:few-shot=x", "--json", "-p", "fake")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["type"] == "ConfigurationError"


def test_a_named_base_model_is_a_baseline_as_the_error_advises(fake: FakeProvider, valid: Path) -> None:
    result = invoke(
        "evaluate",
        str(valid),
        "-c",
        "base-model:role=baseline",
        "-c",
        "tuned=tuned-model",
        "--json",
        "-p",
        "fake",
    )

    assert result.exit_code == 0, result.output
    report = EvaluationReport.model_validate_json(result.stdout)
    assert report.verdict.baseline == "base-model"
    assert report.verdict.candidate == "tuned"


def test_review_puts_the_ratings_given_into_the_report(
    fake: FakeProvider, valid: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report"
    first = invoke("evaluate", str(valid), "-c", "base-model:role=baseline", "-c", "tuned=tuned-model",
                   "-o", str(out), "--json", "-p", "fake")  # fmt: skip
    assert first.exit_code == 0, first.output
    assert EvaluationReport.model_validate_json((out / "report.json").read_text()).human is None

    from unitune.evaluate import _review

    def a_reviewer(report_dir: Path, **_: Any) -> None:
        # The page's part, through the real session: the first three examples, the tuned answer
        # preferred twice and a tie once.
        session = _review.ReviewSession(report_dir)
        for position, side in ((0, "tuned"), (1, "tuned"), (2, "tie")):
            item = session.item(position)
            choice = "tie" if side == "tie" else ("left" if item.left == "tuned" else "right")
            session.rate(position, choice)

    monkeypatch.setattr(_review, "review_main", a_reviewer)
    result = invoke("review", str(out))

    assert result.exit_code == 0, result.output
    report = EvaluationReport.model_validate_json((out / "report.json").read_text())
    assert report.human is not None
    assert (report.human.a, report.human.b) == ("tuned", "base-model")
    assert (report.human.a_wins, report.human.b_wins, report.human.ties) == (2, 0, 1)
    assert report.human.win_rate == pytest.approx(2.5 / 3)
    assert "Human ratings" in (out / "report.md").read_text()
