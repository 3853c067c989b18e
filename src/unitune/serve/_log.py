"""The request log: one SQLite row per request the server answered (or refused), for `unitune monitor`.

What is kept by default says how the model is used without keeping what users wrote: time, model,
A/B arm, tokens, latency, status, and two sketches that drift can be measured on:

- `input_sketch`: the prompt's words hashed into `SKETCH_BUCKETS` buckets (counts per bucket). The
  vocabulary's shift is measured on these histograms; no word can be read back from them.
- `output_fields`: for a JSON object answer, each top-level field with a short scalar value, the
  value hashed (`field -> 12 hex digits`), so the distribution of labels can be compared day to day.

The prompt and completion text are stored only when text logging is on (`log_text`), after
redaction when `redact_pii` is on. The user id sent in the A/B header is stored hashed.

One short-lived connection per operation, WAL mode: the server's threads write while `unitune
monitor` reads, as with the ledger.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unitune.errors import ConfigurationError

__all__ = [
    "SKETCH_BUCKETS",
    "RequestLog",
    "RequestRecord",
    "hash_value",
    "output_fields",
    "sketch",
]

#: Buckets of the hashed-word histogram: enough that distinct vocabularies separate, few enough
#: that a row stays small (a sparse dict of the buckets hit).
SKETCH_BUCKETS = 512

_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_FIELD_VALUE = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id                TEXT PRIMARY KEY,
    ts                TEXT NOT NULL,
    day               TEXT NOT NULL,
    model             TEXT NOT NULL,
    requested_model   TEXT NOT NULL,
    arm               TEXT,
    user_hash         TEXT,
    status            INTEGER NOT NULL,
    error_type        TEXT,
    stream            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms        REAL NOT NULL,
    ttft_ms           REAL,
    finish_reason     TEXT,
    input_words       INTEGER NOT NULL,
    input_sketch      TEXT NOT NULL,
    output_json_valid INTEGER,
    output_fields     TEXT,
    prompt_text       TEXT,
    completion_text   TEXT
);
CREATE INDEX IF NOT EXISTS requests_day ON requests (day, model);
"""


def hash_value(value: str) -> str:
    """A short stable hash (12 hex digits) of a value that must be compared but not kept."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


def sketch(text: str, buckets: int = SKETCH_BUCKETS) -> tuple[int, dict[int, int]]:
    """(word count, {bucket: count}) of `text`'s lower-cased words hashed into `buckets` buckets."""
    counts: dict[int, int] = {}
    words = 0
    for match in _WORD.finditer(text.lower()):
        words += 1
        digest = hashlib.blake2b(match.group(0).encode("utf-8"), digest_size=4).digest()
        bucket = int.from_bytes(digest, "big") % buckets
        counts[bucket] = counts.get(bucket, 0) + 1
    return words, counts


def output_fields(text: str) -> tuple[bool | None, dict[str, str] | None]:
    """(is the answer a JSON object?, {field: hashed short scalar value}) of a model's answer.

    (None, None) when the answer does not look like JSON at all (it does not start with `{` or
    `[`): free text has no validity to track. A JSON array is valid with no fields.
    """
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None, None
    try:
        value = json.loads(stripped)
    except ValueError:
        return False, None
    if not isinstance(value, dict):
        return True, {}
    fields = {
        str(k): hash_value(json.dumps(v, sort_keys=True))
        for k, v in value.items()
        if isinstance(v, (str, int, float, bool)) and len(str(v)) <= _MAX_FIELD_VALUE
    }
    return True, fields


@dataclass(frozen=True)
class RequestRecord:
    """One request as the log keeps it (see the module docstring for what is and is not kept)."""

    id: str
    ts: dt.datetime
    model: str
    requested_model: str
    status: int
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    arm: str | None = None
    user_hash: str | None = None
    input_words: int = 0
    input_sketch: dict[int, int] = field(default_factory=dict)
    output_json_valid: bool | None = None
    output_fields: dict[str, str] | None = None
    prompt_text: str | None = None
    completion_text: str | None = None

    @property
    def day(self) -> str:
        """The UTC date of the request, as the monitor groups by."""
        return self.ts.astimezone(dt.timezone.utc).date().isoformat()


class RequestLog:
    """The SQLite file of served requests; safe to share between threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False
        self._init_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RequestLog({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise ConfigurationError(
                f"Cannot open the request log {str(self.path)!r}: {e}.",
                fix="Pass a writable path (--log) or set UNITUNE_HOME to a writable directory.",
            ) from None
        conn.row_factory = sqlite3.Row
        try:
            if not self._ready:
                with self._init_lock:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(_SCHEMA)
                    self._ready = True
            yield conn
        except sqlite3.DatabaseError as e:
            if type(e) is not sqlite3.DatabaseError:
                raise
            raise ConfigurationError(
                f"The request log {str(self.path)!r} is not a readable SQLite file: {e}.",
                fix="Move it aside; the server starts a new one.",
            ) from None
        finally:
            conn.close()

    def record(self, r: RequestRecord) -> None:
        """Append one request."""
        row = asdict(r)
        row["ts"] = r.ts.astimezone(dt.timezone.utc).isoformat()
        row["day"] = r.day
        row["stream"] = int(r.stream)
        row["input_sketch"] = json.dumps({str(k): v for k, v in sorted(r.input_sketch.items())})
        row["output_json_valid"] = None if r.output_json_valid is None else int(r.output_json_valid)
        row["output_fields"] = (
            None if r.output_fields is None else json.dumps(r.output_fields, sort_keys=True)
        )
        columns = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self._connect() as conn:
            conn.execute(
                f"INSERT INTO requests ({columns}) VALUES ({marks})", row
            )  # the column names are the dataclass fields, never input

    def records(
        self, *, since: dt.date | None = None, until: dt.date | None = None, model: str | None = None
    ) -> Iterator[RequestRecord]:
        """Requests in time order, optionally from `since` to `until` (UTC dates, inclusive) and for one model."""
        where, args = [], []
        if since is not None:
            where.append("day >= ?")
            args.append(since.isoformat())
        if until is not None:
            where.append("day <= ?")
            args.append(until.isoformat())
        if model is not None:
            where.append("model = ?")
            args.append(model)
        sql = "SELECT * FROM requests" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY ts"
        if not self.path.is_file():
            return
        with self._connect() as conn:
            for row in conn.execute(sql, args):
                yield _from_row(row)


def _from_row(row: sqlite3.Row) -> RequestRecord:
    data: dict[str, Any] = dict(row)
    data.pop("day")
    data["ts"] = dt.datetime.fromisoformat(data["ts"])
    data["stream"] = bool(data["stream"])
    data["input_sketch"] = {int(k): int(v) for k, v in json.loads(data["input_sketch"]).items()}
    valid = data["output_json_valid"]
    data["output_json_valid"] = None if valid is None else bool(valid)
    fields = data["output_fields"]
    data["output_fields"] = None if fields is None else json.loads(fields)
    return RequestRecord(**data)
