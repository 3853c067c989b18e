"""The gateway's state: files, uploads and job mappings, in SQLite under `<home>/gateway/`.

Every row carries its owner: a hash of the API key that made it (never the key itself), so one key
cannot list, read or change another's objects, and a file of keys can be rotated without a
migration. File bytes live next to the database (`files/<id>`), written to a temporary name and
renamed into place before the row is inserted, so a failed upload leaves neither a row nor bytes.

As in the ledger, each operation opens its own short-lived autocommit connection: the store is
shared by the server's worker threads and survives `kill -9` (WAL mode; a statement either
committed or did not).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitune.errors import ConfigurationError

__all__ = ["FileRow", "GatewayStore", "JobRow", "PartRow", "UploadRow", "new_id"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    n           INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    filename    TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    n                INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    owner            TEXT NOT NULL,
    provider         TEXT NOT NULL,
    provider_job_id  TEXT NOT NULL,
    idempotency_key  TEXT,
    request          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    result_file      TEXT,
    last_seen        TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency
    ON jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS uploads (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    filename    TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    mime_type   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    file_id     TEXT
);
CREATE TABLE IF NOT EXISTS parts (
    id          TEXT PRIMARY KEY,
    upload_id   TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
"""


def new_id(prefix: str) -> str:
    """A fresh object id in OpenAI's style (`file-…`, `ftjob-…`): a prefix and 24 random characters."""
    return f"{prefix}{secrets.token_hex(12)}"


@dataclass(frozen=True)
class FileRow:
    """A stored file: OpenAI's fields plus its owner."""

    id: str
    owner: str
    purpose: str
    filename: str
    bytes: int
    created_at: int


@dataclass(frozen=True)
class JobRow:
    """A gateway job: its OpenAI-style id mapped to the provider's job, with the request it came from."""

    n: int
    id: str
    owner: str
    provider: str
    provider_job_id: str
    idempotency_key: str | None
    request: dict[str, Any]
    created_at: int
    result_file: str | None
    last_seen: dict[str, Any] | None


@dataclass(frozen=True)
class UploadRow:
    """An upload in progress (or ended): OpenAI's Upload fields plus its owner."""

    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    mime_type: str
    created_at: int
    expires_at: int
    status: str
    file_id: str | None


@dataclass(frozen=True)
class PartRow:
    """One part of an upload."""

    id: str
    upload_id: str
    bytes: int
    created_at: int


class GatewayStore:
    """The gateway's SQLite database and file bytes under `root` (`<unitune home>/gateway`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "state.sqlite"
        self.files_dir = root / "files"
        self.parts_dir = root / "parts"
        try:
            for folder in (self.files_dir, self.parts_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigurationError(
                f"Cannot use the gateway directory {str(root)!r}: {e.strerror or e}.",
                fix="Set UNITUNE_HOME (or `home` in unitune.toml) to a writable directory.",
            ) from None
        self._init_lock = threading.Lock()
        self._ready = False

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            if not self._ready:
                with self._init_lock:
                    if not self._ready:
                        conn.execute("PRAGMA journal_mode=WAL")
                        conn.executescript(_SCHEMA)
                        self._ready = True
            yield conn
        finally:
            conn.close()

    # -- files ------------------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        """Where a file's bytes are kept (ids are generated here, so they are safe as names)."""
        return self.files_dir / file_id

    def add_file(self, owner: str, purpose: str, filename: str, data: bytes | Path) -> FileRow:
        """Store bytes (or move a finished temporary file) as a new file of `owner`.

        The bytes are in place before the row exists: a crash in between leaves an orphan file
        that nothing lists, never a row without bytes.
        """
        file_id = new_id("file-")
        final = self.file_path(file_id)
        if isinstance(data, Path):
            os.replace(data, final)
        else:
            partial = final.with_name(final.name + ".partial")
            partial.write_bytes(data)
            os.replace(partial, final)
        row = FileRow(file_id, owner, purpose, filename, final.stat().st_size, int(time.time()))
        try:
            with self._connect() as conn:
                conn.execute(
                    "INSERT INTO files (id, owner, purpose, filename, bytes, created_at) VALUES (?,?,?,?,?,?)",
                    (row.id, row.owner, row.purpose, row.filename, row.bytes, row.created_at),
                )
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return row

    def get_file(self, owner: str, file_id: str) -> FileRow | None:
        """The file if `owner` has it."""
        with self._connect() as conn:
            found = conn.execute(
                "SELECT id, owner, purpose, filename, bytes, created_at FROM files WHERE id = ? AND owner = ?",
                (file_id, owner),
            ).fetchone()
        return FileRow(**dict(found)) if found is not None else None

    def list_files(
        self, owner: str, *, purpose: str | None, after: str | None, limit: int, newest_first: bool
    ) -> tuple[list[FileRow], bool]:
        """One page of `owner`'s files and whether more follow (`after`: the last id of the page before)."""
        where, args = ["owner = ?"], [owner]
        if purpose is not None:
            where.append("purpose = ?")
            args.append(purpose)
        op, order = ("<", "DESC") if newest_first else (">", "ASC")
        if after is not None:
            # An id this owner does not have compares with NULL: an empty page, whichever the order.
            where.append(f"n {op} (SELECT n FROM files WHERE id = ? AND owner = ?)")
            args += [after, owner]
        sql = (
            "SELECT id, owner, purpose, filename, bytes, created_at FROM files WHERE "
            f"{' AND '.join(where)} ORDER BY n {order} LIMIT ?"
        )
        with self._connect() as conn:
            rows = [FileRow(**dict(r)) for r in conn.execute(sql, (*args, limit + 1))]
        return rows[:limit], len(rows) > limit

    def delete_file(self, owner: str, file_id: str) -> bool:
        """Delete `owner`'s file and its bytes; False if there was none."""
        with self._connect() as conn:
            deleted = conn.execute("DELETE FROM files WHERE id = ? AND owner = ?", (file_id, owner)).rowcount
        if deleted:
            self.file_path(file_id).unlink(missing_ok=True)
        return bool(deleted)

    # -- jobs -------------------------------------------------------------------------------------

    def add_job(
        self,
        *,
        owner: str,
        provider: str,
        provider_job_id: str,
        idempotency_key: str | None,
        request: dict[str, Any],
        created_at: int,
        last_seen: dict[str, Any],
    ) -> JobRow:
        """Record a job the provider created.

        With an idempotency key already recorded for `owner` (a concurrent create won), the job recorded
        first is returned.
        """
        job_id = new_id("ftjob-")
        try:
            with self._connect() as conn:
                conn.execute(
                    "INSERT INTO jobs (id, owner, provider, provider_job_id, idempotency_key, request, "
                    "created_at, last_seen) VALUES (?,?,?,?,?,?,?,?)",
                    (job_id, owner, provider, provider_job_id, idempotency_key, json.dumps(request),
                     created_at, json.dumps(last_seen)),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            if idempotency_key is None:
                raise
            existing = self.job_by_key(owner, idempotency_key)
            assert existing is not None
            return existing
        found = self.get_job(owner, job_id)
        assert found is not None
        return found

    @staticmethod
    def _job(row: sqlite3.Row) -> JobRow:
        data = dict(row)
        data["request"] = json.loads(data["request"])
        data["last_seen"] = json.loads(data["last_seen"]) if data["last_seen"] else None
        return JobRow(**data)

    def get_job(self, owner: str, job_id: str) -> JobRow | None:
        """The job if `owner` has it."""
        with self._connect() as conn:
            found = conn.execute("SELECT * FROM jobs WHERE id = ? AND owner = ?", (job_id, owner)).fetchone()
        return self._job(found) if found is not None else None

    def job_by_key(self, owner: str, key: str) -> JobRow | None:
        """The job `owner` created with idempotency key `key`, if any."""
        with self._connect() as conn:
            found = conn.execute(
                "SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, key)
            ).fetchone()
        return self._job(found) if found is not None else None

    def list_jobs(self, owner: str, *, after: str | None, limit: int | None = None) -> Iterator[JobRow]:
        """List `owner`'s jobs, newest first, a page at a time.

        `owner`'s jobs, newest first, starting after the job `after`, at most `limit` of them
        (None: all, decoded one by one as the caller filters them).
        """
        sql, args = "SELECT * FROM jobs WHERE owner = ?", [owner]
        if after is not None:
            sql += " AND n < (SELECT n FROM jobs WHERE id = ? AND owner = ?)"
            args += [after, owner]
        sql += " ORDER BY n DESC" + (f" LIMIT {int(limit)}" if limit is not None else "")
        with self._connect() as conn:
            rows = conn.execute(sql, args).fetchall()
        return (self._job(r) for r in rows)

    def set_seen(self, job_id: str, seen: dict[str, Any]) -> None:
        """Keep the job's last known OpenAI view (answered when the provider cannot be read)."""
        with self._connect() as conn:
            conn.execute("UPDATE jobs SET last_seen = ? WHERE id = ?", (json.dumps(seen), job_id))

    def set_result_file(self, job_id: str, file_id: str) -> bool:
        """Attach the result file, unless one is attached already (False then)."""
        with self._connect() as conn:
            changed = conn.execute(
                "UPDATE jobs SET result_file = ? WHERE id = ? AND result_file IS NULL", (file_id, job_id)
            ).rowcount
        return bool(changed)

    # -- uploads ----------------------------------------------------------------------------------

    def add_upload(self, owner: str, filename: str, purpose: str, size: int, mime_type: str) -> UploadRow:
        """Start an upload; it expires an hour later, as OpenAI's do."""
        now = int(time.time())
        row = UploadRow(new_id("upload_"), owner, filename, purpose, size, mime_type, now, now + 3600,
                        "pending", None)  # fmt: skip
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO uploads VALUES (?,?,?,?,?,?,?,?,?,?)",
                (row.id, row.owner, row.filename, row.purpose, row.bytes, row.mime_type, row.created_at,
                 row.expires_at, row.status, row.file_id),
            )  # fmt: skip
        return row

    def get_upload(self, owner: str, upload_id: str) -> UploadRow | None:
        """The upload if `owner` has it."""
        with self._connect() as conn:
            found = conn.execute(
                "SELECT * FROM uploads WHERE id = ? AND owner = ?", (upload_id, owner)
            ).fetchone()
        return UploadRow(**dict(found)) if found is not None else None

    def part_path(self, part_id: str) -> Path:
        """Where a part's bytes are kept."""
        return self.parts_dir / part_id

    def add_part(self, upload_id: str, data: bytes) -> PartRow:
        """Store one part's bytes, then its row."""
        row = PartRow(new_id("part_"), upload_id, len(data), int(time.time()))
        path = self.part_path(row.id)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, path)
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO parts VALUES (?,?,?,?)", (row.id, row.upload_id, row.bytes, row.created_at)
            )
        return row

    def parts(self, upload_id: str) -> dict[str, PartRow]:
        """The upload's parts by id."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM parts WHERE upload_id = ?", (upload_id,)).fetchall()
        return {r["id"]: PartRow(**dict(r)) for r in rows}

    def end_upload(self, upload_id: str, status: str, file_id: str | None = None) -> bool:
        """Mark a pending upload completed or cancelled and drop its parts; False if it was not pending."""
        with self._connect() as conn:
            changed = conn.execute(
                "UPDATE uploads SET status = ?, file_id = ? WHERE id = ? AND status = 'pending'",
                (status, file_id, upload_id),
            ).rowcount
            parts = [r["id"] for r in conn.execute("SELECT id FROM parts WHERE upload_id = ?", (upload_id,))]
            conn.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
        for part in parts:
            self.part_path(part).unlink(missing_ok=True)
        return bool(changed)
