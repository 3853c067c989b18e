from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from unitune import Job, JobStatus, Ledger
from unitune.ledger import DataFiles


def _job(job_id: str, status: JobStatus = JobStatus.QUEUED, provider: str = "fake") -> Job:
    return Job(id=job_id, provider=provider, status=status, raw_status=status.value, model="m")


def test_record_find_update_list(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "deep" / "ledger.sqlite3")
    ledger.record(_job("a"), spec_hash="h1", idempotency_key="k1")
    ledger.record(_job("b", provider="other"), spec_hash="h2", idempotency_key="k1")  # keys are per provider
    entry = ledger.find_by_key("fake", "k1")
    assert entry is not None
    assert entry.job_id == "a"
    assert ledger.find_by_key("fake", "k2") is None
    ledger.update(_job("a", JobStatus.SUCCEEDED).model_copy(update={"fine_tuned_model": "ft:x"}))
    entry = ledger.get("fake", "a")
    assert entry is not None
    assert entry.status is JobStatus.SUCCEEDED
    assert entry.fine_tuned_model == "ft:x"
    assert [e.job_id for e in ledger.list(provider="other")] == ["b"]
    assert len(ledger.list()) == 2
    assert [e.provider for e in ledger.find_job("a")] == ["fake"]


def test_wal_mode_and_no_secrets_columns(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.record(_job("a"), spec_hash=None, idempotency_key=None)
    conn = sqlite3.connect(tmp_path / "l.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
    assert not any("key" in c and c != "idempotency_key" for c in columns)


def test_duplicate_key_for_another_job_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.record(_job("a"), spec_hash="h", idempotency_key="k")
    with pytest.raises(sqlite3.IntegrityError):
        ledger.record(_job("b"), spec_hash="h", idempotency_key="k")


def test_concurrent_writers(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                ledger.record(_job(f"{n}-{i}"), spec_hash=None, idempotency_key=f"{n}-{i}")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ledger.list(limit=1000)) == 100


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    from unitune import ConfigurationError

    with pytest.raises(ConfigurationError, match="newer unitune"):
        Ledger(path).list()


def test_processes_racing_to_create_the_ledger(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "fresh" / "ledger.sqlite3"
    script = (
        "import sys; from unitune import Job, JobStatus, Ledger; l = Ledger(sys.argv[1]); "
        "[l.record(Job(id=f'{sys.argv[2]}-{i}', provider='p', status=JobStatus.QUEUED, raw_status='q', "
        "model='m'), spec_hash=None, idempotency_key=None) for i in range(10)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(n)]) for n in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert len(Ledger(path).list(limit=100)) == 40


V1_SCHEMA = """
CREATE TABLE jobs (
    provider TEXT NOT NULL, job_id TEXT NOT NULL, idempotency_key TEXT, spec_hash TEXT, model TEXT NOT NULL,
    status TEXT NOT NULL, raw_status TEXT NOT NULL, fine_tuned_model TEXT, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (provider, job_id)
);
INSERT INTO jobs VALUES ('fake', 'old', 'k', 'h', 'm', 'succeeded', 'succeeded', 'ft:old',
                         '2026-11-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00');
PRAGMA user_version=1;
"""


def test_a_version_1_ledger_gains_the_data_columns_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.close()

    ledger = Ledger(path)
    old = ledger.get("fake", "old")
    assert old is not None
    assert (old.fine_tuned_model, old.training_path) == ("ft:old", None)
    ledger.record(_job("new"), spec_hash=None, idempotency_key=None,
                  data=DataFiles(training_path="/d/train.jsonl", training_sha256="ab" * 32))  # fmt: skip
    new = ledger.get("fake", "new")
    assert new is not None
    assert (new.training_path, new.training_sha256) == ("/d/train.jsonl", "ab" * 32)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3
    assert ledger.list_runs() == []  # and the runs table of schema 3


def test_create_job_records_the_local_data_file_and_its_sha256(tmp_path: Path) -> None:
    import hashlib
    import json

    from unitune import FineTuneClient
    from unitune.testing import FakeClock, FakeProvider

    train = tmp_path / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(12)
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ledger = Ledger(tmp_path / "l.sqlite3")
    with FineTuneClient(FakeProvider(clock=FakeClock()), ledger=ledger) as client:
        job = client.create_job(model="gpt-4o-mini", training_data=train)
    entry = ledger.get(job.provider, job.id)
    assert entry is not None
    assert entry.training_path == str(train.resolve())
    assert entry.training_sha256 == hashlib.sha256(train.read_bytes()).hexdigest()
    assert entry.validation_path is None
