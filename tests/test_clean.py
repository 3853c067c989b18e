"""`unitune._clean`: what `unitune clean` would remove, and removing it. Job folders, uploads and
cache entries are written by hand under a private home, aged with explicit times, so nothing here
trains or waits."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from unitune._clean import CleanItem, find_cleanable, human_size, remove
from unitune.errors import ConfigurationError
from unitune.providers.local import _proc_start
from unitune.providers.local._store import JobState, Store

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.timezone.utc)
OLD = NOW - dt.timedelta(days=40)
RECENT = NOW - dt.timedelta(days=3)


def _age(path: Path, when: dt.datetime) -> Path:
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def _write(path: Path, text: str, when: dt.datetime) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return _age(path, when)


def _upload(store: Store, digest: str, when: dt.datetime) -> str:
    file_id = f"file-local-{digest:0>16}"
    _write(store.files / f"{file_id}.jsonl", "{}\n", when)
    return file_id


def _job(store: Store, job_id: str, status: str, *, ended: dt.datetime | None, training: str = "f") -> Path:
    job = store.job(job_id)
    job.path.mkdir(parents=True)
    spec = {"model": "smollm2-135m-instruct", "training_file": training, "validation_file": None,
            "hyperparameters": {}}  # fmt: skip
    job.spec_path.write_text(json.dumps(spec))
    (job.path / "adapter").mkdir()
    (job.path / "adapter" / "weights.bin").write_bytes(b"x" * 2048)
    finished = ended.isoformat() if ended else None
    tuned = f"local:{job_id}" if status == "succeeded" else None
    created = (ended or NOW).isoformat()
    job.write_state(JobState(status=status, created_at=created, finished_at=finished, fine_tuned_model=tuned))
    if status == "running":  # a live worker: this process, with its real start time
        (job.path / "pid").write_text(f"{os.getpid()} {_proc_start(os.getpid()) or ''}")
    return job.path


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    return {"home": tmp_path / "home", "local_home": tmp_path / "home" / "local", "cache": tmp_path / "cache"}


def _find(places: dict[str, Path], days: float = 30, include_models: bool = True) -> list[CleanItem]:
    return find_cleanable(older_than_days=days, now=NOW, include_models=include_models, **places)


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 512, 1536, 20 * 1024**2, 3 * 1024**3)] == [
        "0 B", "512 B", "1.5 KB", "20.0 MB", "3.0 GB",
    ]  # fmt: skip


def test_nothing_to_clean_in_an_empty_home(places: dict[str, Path]) -> None:
    assert _find(places) == []


def test_old_finished_jobs_go_running_and_recent_ones_stay(places: dict[str, Path]) -> None:
    store = Store(places["local_home"])
    done = _job(store, "ftjob-local-old-ok", "succeeded", ended=OLD)
    failed = _job(store, "ftjob-local-old-failed", "failed", ended=OLD)
    _job(store, "ftjob-local-new", "succeeded", ended=RECENT)
    _job(store, "ftjob-local-running", "running", ended=None)

    items = {i.path: i for i in _find(places)}

    assert set(items) == {done, failed}
    assert items[done].bytes >= 2048
    assert "succeeded 40 days ago" in items[done].why
    assert "local:ftjob-local-old-ok" in items[done].why  # the adapter goes too, and it says so
    assert "failed 40 days ago" in items[failed].why
    # By default a succeeded job (a trained model: nothing rebuilds it) stays.
    assert {i.path for i in _find(places, include_models=False)} == {failed}
    # Older than 0 days: every finished job, never the running one.
    assert {i.path.name for i in _find(places, days=0)} == {
        "ftjob-local-old-ok", "ftjob-local-old-failed", "ftjob-local-new",
    }  # fmt: skip


def test_a_job_whose_worker_died_counts_as_finished(places: dict[str, Path]) -> None:
    store = Store(places["local_home"])
    path = _job(store, "ftjob-local-dead", "running", ended=None)
    (path / "pid").write_text("999999999 1")  # no such process
    _age(path / "state.json", OLD)
    # The provider marks it failed now (the real now): not old yet, so it stays until later.
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    assert find_cleanable(older_than_days=1, now=later, **places) == []
    assert json.loads((path / "state.json").read_text())["status"] == "failed"
    assert [i.path for i in find_cleanable(older_than_days=0, now=later, **places)] == [path]


def test_uploads_a_running_job_reads_are_kept(places: dict[str, Path]) -> None:
    store = Store(places["local_home"])
    used = _upload(store, "aa", OLD)
    unused = _upload(store, "bb", OLD)
    _upload(store, "cc", RECENT)
    _job(store, "ftjob-local-running", "running", ended=None, training=used)
    partial = _write(store.files / "file-local-00000000000000dd.partial", "half", OLD)

    items = {i.path.name: i for i in _find(places)}

    assert set(items) == {f"{unused}.jsonl", "file-local-00000000000000dd.partial"}
    assert "uploaded file for the local trainer, from 40 days ago" in items[f"{unused}.jsonl"].why
    assert "interrupted upload" in items[partial.name].why


def test_prepared_leftovers_and_cache(places: dict[str, Path]) -> None:
    prepared = places["home"] / "prepared" / "tmpabc"
    prepared.mkdir(parents=True)
    (prepared / "train.jsonl").write_text("x" * 100)
    _age(prepared, OLD)
    model = places["cache"] / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"x" * 4096)
    _age(model, OLD)
    catalog = _write(places["cache"] / "catalog-1234.json", "{}", OLD)
    _age(places["cache"] / "models", OLD)

    items = {i.path: i for i in _find(places)}

    assert set(items) == {prepared, model, catalog}
    assert items[model].bytes == 4096
    assert "fetched again when needed" in items[model].why


def test_cached_models_stay_while_a_local_job_is_unfinished(places: dict[str, Path]) -> None:
    model = places["cache"] / "models" / "m"
    model.mkdir(parents=True)
    _age(model, OLD)
    _job(Store(places["local_home"]), "ftjob-local-running", "running", ended=None)
    assert _find(places) == []


def test_remove_frees_what_it_was_given(places: dict[str, Path]) -> None:
    store = Store(places["local_home"])
    done = _job(store, "ftjob-local-old-ok", "succeeded", ended=OLD)
    unused = store.files / f"{_upload(store, 'bb', OLD)}.jsonl"
    items = _find(places)

    freed, failed = remove(items)

    assert failed == []
    assert freed == sum(i.bytes for i in items)
    assert not done.exists()
    assert not unused.exists()
    assert _find(places) == []


def test_a_negative_age_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="older_than_days"):
        find_cleanable(older_than_days=-1)
