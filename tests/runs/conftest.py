"""Shared pieces of the runs tests: a ticket dataset, a job file, and a fake whose tuned models know
the answers (so a run can reach every verdict without a real model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unitune.demo.tickets import write_jsonl
from unitune.providers.fake import FakeProvider
from unitune.types import Message


@pytest.fixture
def tickets(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "tickets.jsonl", 100)


@pytest.fixture
def fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tickets: Path, unitune_fake: FakeProvider
) -> FakeProvider:
    """The test's fake (`unitune_fake`), working in `tmp_path`, its tuned models knowing the answers."""
    monkeypatch.chdir(tmp_path)
    knowing_tuned_models(unitune_fake, tickets)
    return unitune_fake


def job_toml(folder: Path, body: str = "", *, name: str = "job.toml") -> Path:
    """A job file on `tickets.jsonl` in `folder`, with `body` appended (more keys or tables)."""
    path = folder / name
    path.write_text(
        'name = "tickets"\n'
        'model = "llama-3.1-8b-instruct"\n'
        "[data]\n"
        'training = "tickets.jsonl"\n'
        "validation_split = 0.25\n"
        "[hyperparameters]\n"
        "epochs = 2\n"
        "[evaluate]\n"
        'candidates = ["base", "base:few-shot=2"]\n' + body
    )
    return path


def knowing_tuned_models(fake: FakeProvider, data: Path) -> None:
    """Tuned models (ids starting `ft:`) answer every example's reference; base models answer
    with something else, so a tuned run is a clear `ship`."""
    answers: dict[str, str] = {}
    for line in data.read_text().splitlines():
        messages = json.loads(line)["messages"]
        answers[messages[-2]["content"]] = messages[-1]["content"]

    def reply(model: str, messages: list[Message]) -> str:
        if model.startswith("ft:"):
            return answers.get(str(messages[-1].content), "{}")
        return "I am not sure."

    fake.set_reply(reply)
