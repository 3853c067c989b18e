"""Two fakes, one impersonating OpenAI with finished fine-tunes and one as the target, on one clock."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from unitune import FineTuneClient
from unitune.testing import FakeClock, FakeProvider
from unitune.types import Job, Message

#: Before OpenAI's 2027-01-06 close: its jobs could still be made, as the source's were.
TODAY = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)


def rows(n: int) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(n)
    ]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def answer(right: Callable[[str], bool]) -> Callable[[str, list[Message]], str]:
    """A reply function: the right answer ("a<i>" for "q<i>") for models `right` accepts."""

    def reply(model: str, messages: list[Message]) -> str:
        prompt = next(m.text for m in reversed(messages) if m.role == "user")
        return f"a{prompt[1:]}" if right(model) else "no idea"

    return reply


@dataclass
class World:
    source_fake: FakeProvider
    target_fake: FakeProvider
    source: FineTuneClient
    target: FineTuneClient
    train: Path
    job: Job


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FakeClock(start=TODAY)
    source_fake = FakeProvider(clock=clock, reply=answer(lambda m: True)).as_provider("openai")
    target_fake = FakeProvider(clock=clock, reply=answer(lambda m: True)).as_provider("together")
    train = write_jsonl(tmp_path / "train.jsonl", rows(100))
    with (
        FineTuneClient(source_fake, ledger=False) as source,
        FineTuneClient(target_fake, ledger=False) as target,
    ):
        job = source.create_job(
            model="gpt-4o-mini", training_data=train, suffix="support",
            hyperparameters={"epochs": 3, "learning_rate_multiplier": 2.0, "batch_size": 8},
        )  # fmt: skip
        yield World(source_fake, target_fake, source, target, train, source.wait(job))
