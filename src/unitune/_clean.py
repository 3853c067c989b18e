"""`unitune clean`: what unitune left on this machine that can go, and removing it.

Looked at, each only once it is older than the cut-off:

- the local trainer's job folders (`<local home>/jobs/<id>`) of jobs that finished (succeeded, failed,
  cancelled) — its status is read through the local provider, which also notices a worker that died,
  so a queued or running job is never touched; a succeeded job's folder is its trained adapter, so it
  goes only with `include_models=True` (`--include-models`), and the `why` says so;
- the local trainer's uploaded files (`<local home>/files`) no unfinished job still reads;
- converted copies the client left in `<unitune home>/prepared` when an upload was interrupted;
- the cache (`cache_dir()`): converted models and parsed catalogs, fetched or rebuilt when needed.
  Models are kept while any local job is unfinished (it may not have loaded its model yet).

Never touched: the ledger, the served models' request log, the gateway's store, anything else.
`find_cleanable` only looks; `remove` deletes what it is given and says how much was freed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from unitune.config import UnituneConfig, cache_dir, home_dir, load_config
from unitune.errors import ConfigurationError

if TYPE_CHECKING:
    from unitune.providers.local import LocalProvider

__all__ = ["CleanItem", "find_cleanable", "human_size", "remove"]


class CleanItem(NamedTuple):
    """One thing `unitune clean` would remove: where, how many bytes, and why it may go."""

    path: Path
    bytes: int
    why: str


def human_size(n: int) -> str:
    """`n` bytes the way people read disk space: 512 B, 1.5 KB, 20.0 MB, 3.2 GB (powers of 1024)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _size(path: Path) -> int:
    """Bytes under `path` (a file or a folder), links not followed, unreadable entries skipped."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
    except OSError:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # gone or unreadable meanwhile: nothing to free
                total += (Path(root) / name).lstat().st_size
    return total


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.lstat().st_mtime, dt.timezone.utc)


def _days(age: dt.timedelta) -> str:
    days = age.days
    return "today" if days < 1 else ("1 day ago" if days == 1 else f"{days} days ago")


def find_cleanable(
    *,
    older_than_days: float = 30,
    config: UnituneConfig | None = None,
    home: Path | None = None,
    local_home: Path | None = None,
    cache: Path | None = None,
    now: dt.datetime | None = None,
    include_models: bool = False,
) -> list[CleanItem]:
    """List what `unitune clean` could remove, removing nothing.

    What can be removed: finished local jobs, unused uploads, leftover converted copies and cached
    models older than `older_than_days` (see the module docstring). Removes nothing.

    The places default to the config's (`home`, `[providers.local] home`, the cache directory); pass
    them to look elsewhere.
    """
    if (
        isinstance(older_than_days, bool)
        or not isinstance(older_than_days, (int, float))
        or older_than_days < 0
    ):
        raise ConfigurationError(
            f"older_than_days must be a number of days (0 or more), not {older_than_days!r}.",
            fix="Pass e.g. --older-than 30.",
        )
    # Imported here: the local provider is only needed once something is cleaned.
    from unitune.providers.local import LocalProvider, LocalSettings

    if config is None and (home is None or local_home is None):
        config = load_config()
    home = home if home is not None else home_dir(config)
    if local_home is None:
        assert config is not None
        local_home = LocalSettings.model_validate(config.section("local")).home or home / "local"
    cache = cache if cache is not None else cache_dir()
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = now - dt.timedelta(days=older_than_days)

    local = LocalProvider(LocalSettings(home=local_home))
    items, needed, unfinished = _local_jobs(local, now, cutoff, include_models)
    items += _local_files(local.store.files, needed, now, cutoff)
    items += _old_entries(
        home / "prepared", now, cutoff, "converted data left by an interrupted upload, from {age}"
    )
    # The cache can always be rebuilt; a model is kept while a job may still be about to load it.
    if not unfinished:
        items += _old_entries(
            cache / "models", now, cutoff, "converted model, cached {age} (fetched again when needed)"
        )
    items += _old_entries(
        cache, now, cutoff, "parsed catalog, from {age} (rebuilt when needed)", "catalog-*.json"
    )
    return items


def _local_jobs(
    local: LocalProvider, now: dt.datetime, cutoff: dt.datetime, include_models: bool
) -> tuple[list[CleanItem], set[str], int]:
    """Find the local jobs to clean, the files unfinished jobs still read, and how many are unfinished.

    Finished local jobs older than `cutoff` (a succeeded one only with `include_models`: its
    folder is the trained model, which nothing rebuilds); the files unfinished jobs still read; how
    many jobs are unfinished. Each status is read through the provider, which notices a dead worker.
    """
    items: list[CleanItem] = []
    needed: set[str] = set()
    unfinished = 0
    for job_dir in local.store.all_jobs():
        try:
            job = local.get_job(job_dir.id)
        except Exception:  # a folder unitune cannot read is not one it decides about
            continue
        if not job.status.is_terminal:
            unfinished += 1
            needed.update(f for f in (job.training_file, job.validation_file) if f)
            continue
        ended = job.finished_at or _mtime(job_dir.state_path if job_dir.state_path.exists() else job_dir.path)
        if ended > cutoff or (job.fine_tuned_model and not include_models):
            continue
        why = f"local job, {job.status.value} {_days(now - ended)}"
        if job.fine_tuned_model:
            why += f"; its trained adapter ({job.fine_tuned_model}) goes with it"
        items.append(CleanItem(job_dir.path, _size(job_dir.path), why))
    return items, needed, unfinished


def _local_files(files: Path, needed: set[str], now: dt.datetime, cutoff: dt.datetime) -> list[CleanItem]:
    """The local trainer's uploads (and interrupted ones) older than `cutoff` no unfinished job reads."""
    items: list[CleanItem] = []
    if not files.is_dir():
        return items
    for path in sorted(files.iterdir()):
        if not path.is_file() or path.name.split(".")[0] in needed or _mtime(path) > cutoff:
            continue
        what = "an interrupted upload" if path.suffix == ".partial" else "uploaded file for the local trainer"
        items.append(CleanItem(path, _size(path), f"{what}, from {_days(now - _mtime(path))}"))
    return items


def _old_entries(
    folder: Path, now: dt.datetime, cutoff: dt.datetime, why: str, pattern: str = "*"
) -> list[CleanItem]:
    """The entries of `folder` matching `pattern` last changed before `cutoff` (`why` with `{age}`)."""
    if not folder.is_dir():
        return []
    return [
        CleanItem(path, _size(path), why.format(age=_days(now - _mtime(path))))
        for path in sorted(folder.glob(pattern))
        if _mtime(path) <= cutoff
    ]


def remove(items: Iterable[CleanItem]) -> tuple[int, list[tuple[Path, str]]]:
    """Delete each cleanable item and report the bytes freed and the failures.

    Delete each item; returns the bytes freed and, for each that could not be removed, its path and
    the reason (the others are still removed).
    """
    freed = 0
    failed: list[tuple[Path, str]] = []
    for item in items:
        try:
            if item.path.is_dir() and not item.path.is_symlink():
                shutil.rmtree(item.path)
            else:
                item.path.unlink(missing_ok=True)
        except OSError as e:
            failed.append((item.path, e.strerror or str(e)))
            continue
        freed += item.bytes
    return freed, failed
