# The worker processes of a pass: whether and how to split a plain JSONL file into byte ranges at line
# starts (`_plan`), and the spawned pool whose workers each check a range with `part._scan`.
"""Worker processes for `validate`: a file's byte ranges, each checked in its own process."""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import signal
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitune._fork import FORK_MIN_BYTES, can_fork, usable_cpus
from unitune.data._loaders import JsonlFile, Record, is_gzip, line_boundaries, read_jsonl, read_jsonl_range
from unitune.data._validate.part import _counter, _Job, _Part, _scan
from unitune.data.profiles import Profile, get_profile

#: Files from this size get worker processes when each must start an interpreter (spawn: ~0.3 s of
#: imports and its own tokenizer, ~0.4 s more, per worker)...
_PARALLEL_MIN_BYTES = 32 << 20
#: ... and from this size when workers are forked from this process after it loaded the tokenizer
#: (~10 ms each, the vocabulary shared copy-on-write). Measured in bench/README.md (issue 24).
_FORK_MIN_BYTES = FORK_MIN_BYTES
#: At most this many processes when `workers` is None: each holds its own tokenizer (o200k: ~65 MB).
_MAX_AUTO_WORKERS = 4
#: Byte ranges are at most this big (and about 8 per worker), so the last ones finish together: a
#: worker left alone with a big last range idles the other cores (8 MiB: ~0.2 s here)...
_CHUNK_BYTES = 8 << 20
#: ... and at least this big, so a range is worth a task.
_MIN_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class _Plan:
    path: Path
    fmt: str
    ranges: list[tuple[int, int]]
    workers: int
    counter: bytes | None  # a caller's counter, pickled (spawned workers only)
    fork: bool  # workers are forked from this process (else spawned)


def _can_fork() -> bool:
    """Whether workers may be forked (see `unitune._fork.can_fork`) by multiprocessing here."""
    return "fork" in multiprocessing.get_all_start_methods() and can_fork()


def _plan(records: Iterable[Record], workers: int | None, job: _Job) -> _Plan | None:
    """How to split the pass over processes, or None to run it in this one."""
    if workers == 1 or not isinstance(records, JsonlFile) or multiprocessing.current_process().daemon:
        return None  # (a daemonic process, e.g. a multiprocessing.Pool worker, may not start any)
    path = records.path
    try:
        size = path.stat().st_size
        if size == 0 or is_gzip(path):
            return None  # a gzip stream cannot be entered in the middle
    except OSError:
        return None  # the sequential reader reports it
    fork = _can_fork()
    if fork:
        # Load the tokenizer first: the workers are forked with it. Loading some starts threads
        # (mistral-common's numpy, a Hugging Face tokenizer), and then fork is no longer safe.
        job.tokens()
        fork = _can_fork()
    if workers is None:
        if size < (_FORK_MIN_BYTES if fork else _PARALLEL_MIN_BYTES) or usable_cpus() < 2:
            return None
        workers = min(usable_cpus(), _MAX_AUTO_WORKERS)
    chunk = min(_CHUNK_BYTES, max(_MIN_CHUNK_BYTES, size // (8 * workers)))
    ranges = line_boundaries(path, size, chunk)
    workers = min(workers, len(ranges))
    if workers < 2:
        return None
    counter = None
    if job.counter is not None and not fork:
        try:
            counter = pickle.dumps(job.counter)
        except Exception:  # a counter that cannot travel to another process: stay in this one
            return None
    return _Plan(path, _pinned_format(records), ranges, workers, counter, fork)


def _pinned_format(records: JsonlFile) -> str:
    """The format every line is checked against: the given one, or that of the first readable line."""
    if records.fmt != "auto":
        return records.fmt
    reader = read_jsonl(records.path)
    try:
        for record in reader:
            if record.format is not None:
                return record.format
    finally:
        reader.close()
    return "auto"  # no line is readable: nothing to pin


def _run_parallel(plan: _Plan, job: _Job) -> Iterator[_Part]:
    global _WORKER
    tasks = [(plan.path, start, end, plan.fmt) for start, end in plan.ranges]
    if plan.fork:
        # fork (one thread, see `_can_fork`): the tokenizer is loaded here once and every worker
        # starts with it, shared copy-on-write, in ~10 ms instead of loading its own.
        _WORKER = (job.profile, job.tokens(), job.limit, job.max_issues, job.method)
        pool = ProcessPoolExecutor(
            plan.workers, mp_context=multiprocessing.get_context("fork"), initializer=_forked_worker
        )
    else:
        # spawn: each worker is a fresh interpreter (fork would copy whatever threads and state the
        # caller has; forkserver costs one more process, ~13 MB, and starts workers no faster here).
        spec = (job.provider, job.model, plan.counter, job.limit, job.max_issues, job.method)
        pool = ProcessPoolExecutor(
            plan.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(spec,),
        )
    try:
        yield from pool.map(_scan_range, tasks)
    finally:
        # On an error or an interrupt, do not wait for the ranges not started yet.
        pool.shutdown(wait=True, cancel_futures=True)
        if plan.fork:
            _WORKER = None


_WORKER: tuple[Profile, Any, int | None, int, str | None] | None = None


def _forked_worker() -> None:
    # A forked worker inherits the caller's signal handlers and, in an asyncio program, its wakeup
    # fd: a signal to the worker (the pool's terminate, a Ctrl-C to the group) must end the worker,
    # not run the application's handler or wake its event loop.
    with contextlib.suppress(ValueError):  # (only the main thread may; a worker's only thread is)
        signal.set_wakeup_fd(-1)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _init_worker(spec: tuple[str, str | None, bytes | None, int | None, int, str | None]) -> None:
    global _WORKER
    provider, model, counter, limit, max_issues, method = spec
    profile = get_profile(provider, model)
    tokens = pickle.loads(counter) if counter is not None else _counter(provider, model, profile)
    _WORKER = (profile, tokens, limit, max_issues, method)


def _scan_range(task: tuple[Path, int, int, str]) -> _Part:
    assert _WORKER is not None, "the worker was not initialised"
    profile, tokens, limit, max_issues, method = _WORKER
    path, start, end, fmt = task
    return _scan(read_jsonl_range(path, start, end, fmt=fmt), profile, tokens, limit, max_issues, method)
