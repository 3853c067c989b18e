"""Shared test set-up: every test runs in its own unitune home and working directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from unitune import FineTuneClient
from unitune.testing import FakeClock, FakeProvider


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's config or writes to their ledger."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("UNITUNE_HOME", str(home))
    monkeypatch.setenv("UNITUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("UNITUNE_PROVIDER", raising=False)
    monkeypatch.delenv("UNITUNE_CONFIG", raising=False)
    monkeypatch.chdir(work)


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    """A tiny valid chat JSONL file."""
    path = tmp_path / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "hello"}]}
        for i in range(12)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(clock=FakeClock())


@pytest.fixture
def client(fake: FakeProvider, tmp_path: Path) -> Iterator[FineTuneClient]:
    with FineTuneClient(fake, ledger=tmp_path / "ledger.sqlite3") as c:
        yield c
