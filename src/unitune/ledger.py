"""The ledger: one SQLite row per job this machine created, on any provider.

It makes `create_job(..., idempotency_key=...)` safe to call twice (even from a fresh process) and
lets `unitune jobs` list work across providers. It stores no secrets and no dataset content: only
ids, the idempotency key, a hash of the spec, the last status seen, and the path and sha256 of the
local files a job was created from (so `unitune migrate` can retrain it elsewhere from checked data).

Each operation opens its own short-lived connection, so one ledger file can be shared by threads
and processes; WAL mode lets readers run while a writer commits.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from unitune.errors import ConfigurationError
from unitune.types import Job, JobStatus, utcnow

__all__ = ["DataFiles", "Ledger", "LedgerEntry", "RunRecord", "sha256_file"]

# 2: the local data files a job was created from (path and sha256), so a job can be retrained
# elsewhere from the same data (`unitune migrate`) after the vendor stops returning its files.
# 3: runs (`unitune train`): a job with its spec, data fingerprint, evaluation and parent run.
_SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    provider          TEXT NOT NULL,
    job_id            TEXT NOT NULL,
    idempotency_key   TEXT,
    spec_hash         TEXT,
    model             TEXT NOT NULL,
    status            TEXT NOT NULL,
    raw_status        TEXT NOT NULL,
    fine_tuned_model  TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    training_path     TEXT,
    training_sha256   TEXT,
    validation_path   TEXT,
    validation_sha256 TEXT,
    PRIMARY KEY (provider, job_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency
    ON jobs (provider, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE TABLE IF NOT EXISTS runs (
    run_id            TEXT PRIMARY KEY,
    key               TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    parent_id         TEXT,
    sweep_id          TEXT,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    status            TEXT NOT NULL,
    job_id            TEXT,
    fine_tuned_model  TEXT,
    spec_json         TEXT NOT NULL,
    spec_hash         TEXT NOT NULL,
    data_sha256       TEXT NOT NULL,
    training_path     TEXT,
    training_sha256   TEXT,
    validation_path   TEXT,
    validation_sha256 TEXT,
    quote_usd         REAL,
    primary_metric    TEXT,
    score             REAL,
    score_low         REAL,
    score_high        REAL,
    cost_per_1k_usd   REAL,
    decision          TEXT,
    verdict           TEXT,
    run_dir           TEXT,
    tracking          TEXT,
    error             TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
"""


_DATA_COLUMNS = ("training_path", "training_sha256", "validation_path", "validation_sha256")

_INIT_LOCK = threading.Lock()


class DataFiles(BaseModel):
    """The local files a job was created from, with the sha256 of each as it was then."""

    model_config = ConfigDict(frozen=True)

    training_path: str | None = None
    training_sha256: str | None = None
    validation_path: str | None = None
    validation_sha256: str | None = None


class LedgerEntry(BaseModel):
    """What the ledger knows of one job."""

    model_config = ConfigDict(frozen=True)

    provider: str
    job_id: str
    idempotency_key: str | None
    spec_hash: str | None
    model: str
    status: JobStatus
    raw_status: str
    fine_tuned_model: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    training_path: str | None = None
    training_sha256: str | None = None
    validation_path: str | None = None
    validation_sha256: str | None = None


RunStatus = Literal["started", "training", "evaluating", "succeeded", "failed", "interrupted", "cancelled"]


class RunRecord(BaseModel):
    """One recorded run (`unitune train`).

    One run (`unitune train`): what was asked (the job file's spec, as JSON), from what data,
    the job it made, how it scored, and the run it was retrained from. No secrets, no data.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    key: str = Field(description="The job's idempotency key: the spec's hash and the data's fingerprint.")
    name: str
    parent_id: str | None = None
    sweep_id: str | None = None
    provider: str
    model: str
    status: RunStatus
    job_id: str | None = None
    fine_tuned_model: str | None = None
    spec_json: str
    spec_hash: str
    data_sha256: str
    training_path: str | None = None
    training_sha256: str | None = None
    validation_path: str | None = None
    validation_sha256: str | None = None
    quote_usd: float | None = None
    primary_metric: str | None = None
    score: float | None = None
    score_low: float | None = None
    score_high: float | None = None
    cost_per_1k_usd: float | None = None
    decision: str | None = None
    verdict: str | None = None
    run_dir: str | None = None
    tracking: str | None = None
    error: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class Ledger:
    """A SQLite ledger at `path` (created on first use, with its directory)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # Autocommit: every write here is one statement, atomic on its own, so no transaction is
        # held open across a read and a write (the lock upgrade that makes SQLite report "locked").
        if not self._ready:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigurationError(
                    f"Cannot create the ledger directory {str(self.path.parent)!r}: {e.strerror or e}.",
                    fix="Set UNITUNE_HOME (or `home` in unitune.toml) to a writable directory.",
                ) from None
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise self._unusable(e) from None
        conn.row_factory = sqlite3.Row
        try:
            if not self._ready:
                self._initialise(conn)
            yield conn
        except sqlite3.DatabaseError as e:
            # Exactly DatabaseError is "not a database" / "malformed": the file is unusable. Its
            # subclasses (a constraint, a lock timeout) mean something else and are handled by callers.
            if type(e) is not sqlite3.DatabaseError:
                raise
            raise self._unusable(e) from None
        finally:
            conn.close()

    def _unusable(self, e: sqlite3.Error) -> ConfigurationError:
        return ConfigurationError(
            f"The ledger {str(self.path)!r} cannot be used ({e}).",
            fix="Move the file aside (unitune starts a new, empty ledger) or set UNITUNE_HOME to another directory.",
        )

    def _initialise(self, conn: sqlite3.Connection) -> None:
        with _INIT_LOCK:  # threads of this process; BEGIN IMMEDIATE orders other processes
            if self._ready:
                return
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > _SCHEMA_VERSION:
                    raise ConfigurationError(
                        f"{self.path} was written by a newer unitune (ledger schema {version}).",
                        fix="Upgrade unitune (pip install -U unitune) or point UNITUNE_HOME elsewhere.",
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if version == 1:  # a version-1 file: its table lacks the data columns
                    for column in _DATA_COLUMNS:
                        conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._ready = True

    def record(
        self, job: Job, *, spec_hash: str | None, idempotency_key: str | None, data: DataFiles | None = None
    ) -> LedgerEntry:
        """Remember a job this machine created (and, with `data`, the local files it came from).

        Recording the same job again updates its status; the data first recorded stays.

        Args:
            job: the job as the provider reported it.
            spec_hash: the hash of the job's spec, or None when unknown.
            idempotency_key: the key the job was created with, or None for none.
            data: the local training and validation files and their checksums; None for none.

        Returns:
            The job's entry as now stored.

        Raises:
            ConfigurationError: the ledger file or its directory cannot be created, or the file is
                not a usable ledger.
        """
        now = utcnow().isoformat()
        created = (job.created_at or utcnow()).isoformat()
        files = data or DataFiles()
        with self._connect() as conn:
            conn.execute(
                """INSERT INTO jobs (provider, job_id, idempotency_key, spec_hash, model, status,
                                     raw_status, fine_tuned_model, created_at, updated_at,
                                     training_path, training_sha256, validation_path, validation_sha256)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (provider, job_id) DO UPDATE SET
                       status = excluded.status, raw_status = excluded.raw_status,
                       fine_tuned_model = excluded.fine_tuned_model, updated_at = excluded.updated_at""",
                (
                    job.provider,
                    job.id,
                    idempotency_key,
                    spec_hash,
                    job.model,
                    job.status.value,
                    job.raw_status,
                    job.fine_tuned_model,
                    created,
                    now,
                    files.training_path,
                    files.training_sha256,
                    files.validation_path,
                    files.validation_sha256,
                ),
            )
        entry = self.get(job.provider, job.id)
        assert entry is not None  # just written in this process
        return entry

    def update(self, job: Job) -> None:
        """Store a job's latest status, if the ledger knows the job (jobs made elsewhere are ignored)."""
        with self._connect() as conn:
            conn.execute(
                """UPDATE jobs SET status = ?, raw_status = ?, fine_tuned_model = ?, updated_at = ?
                   WHERE provider = ? AND job_id = ?""",
                (
                    job.status.value,
                    job.raw_status,
                    job.fine_tuned_model,
                    utcnow().isoformat(),
                    job.provider,
                    job.id,
                ),
            )

    def find_by_key(self, provider: str, idempotency_key: str) -> LedgerEntry | None:
        """The job created on `provider` with this idempotency key, if any.

        Args:
            provider: the provider's name.
            idempotency_key: the key the job was created with.
        """
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM jobs WHERE provider = ? AND idempotency_key = ?",
                (provider, idempotency_key),
            ).fetchone()
        return _entry(row) if row else None

    def get(self, provider: str, job_id: str) -> LedgerEntry | None:
        """One job by provider and id.

        Args:
            provider: the provider's name.
            job_id: the provider's job id.

        Returns:
            The job's entry, or None when the ledger has no such job.
        """
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM jobs WHERE provider = ? AND job_id = ?", (provider, job_id)
            ).fetchone()
        return _entry(row) if row else None

    def find_job(self, job_id: str) -> list[LedgerEntry]:
        """Every recorded job with this id (normally one; ids are unique per provider only)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchall()
        return [_entry(r) for r in rows]

    def list(self, *, provider: str | None = None, limit: int = 50) -> list[LedgerEntry]:
        """Recorded jobs, newest first, optionally for one provider.

        Args:
            provider: only this provider's jobs; None for every provider's.
            limit: the most jobs returned.
        """
        query = "SELECT * FROM jobs"
        args: tuple[object, ...] = ()
        if provider is not None:
            query += " WHERE provider = ?"
            args = (provider,)
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(query, (*args, limit)).fetchall()
        return [_entry(r) for r in rows]

    # -- runs ---------------------------------------------------------------------------------------

    def save_run(self, run: RunRecord) -> RunRecord:
        """Write a run whole (insert, or replace the row with the same id), stamped with the time."""
        row = run.model_copy(update={"updated_at": utcnow()}).model_dump(mode="json")
        columns = ", ".join(row)
        with self._connect() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO runs ({columns}) VALUES ({', '.join('?' for _ in row)})",
                tuple(row.values()),
            )
        return RunRecord.model_validate(row)

    def get_run(self, run_id: str) -> RunRecord | None:
        """A run by its id, or by a prefix of it that names exactly one run."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE substr(run_id, 1, length(?)) = ? ORDER BY run_id = ? DESC LIMIT 3",
                (run_id, run_id, run_id),
            ).fetchall()
        exact = [r for r in rows if r["run_id"] == run_id]
        if exact:
            return RunRecord.model_validate(dict(exact[0]))
        return RunRecord.model_validate(dict(rows[0])) if len(rows) == 1 else None

    def find_run_by_key(self, key: str) -> RunRecord | None:
        """The run started with this idempotency key (a rerun of the same spec on the same data)."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE key = ?", (key,)).fetchone()
        return RunRecord.model_validate(dict(row)) if row else None

    def list_runs(
        self,
        *,
        name: str | None = None,
        provider: str | None = None,
        status: str | None = None,
        sweep_id: str | None = None,
        limit: int = 50,
    ) -> builtins.list[RunRecord]:
        """Runs, newest first, filtered by name, provider, status or sweep.

        Args:
            name: only runs of this name; None for any.
            provider: only runs on this provider; None for any.
            status: only runs in this status ("succeeded", "failed", ...); None for any.
            sweep_id: only the runs of this sweep; None for any.
            limit: the most runs returned.
        """
        where: builtins.list[str] = []
        args: builtins.list[object] = []
        for column, value in (
            ("name", name),
            ("provider", provider),
            ("status", status),
            ("sweep_id", sweep_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        query = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(query, (*args, limit)).fetchall()
        return [RunRecord.model_validate(dict(r)) for r in rows]


def sha256_file(path: str | Path) -> str:
    """The file's sha256, read in 1 MiB blocks (a training file may be gigabytes)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry.model_validate(dict(row))
