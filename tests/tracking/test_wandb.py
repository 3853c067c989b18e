"""Runs logged to Weights & Biases in offline mode with the real library (no account, no network),
read back from the run's own `.wandb` file."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("wandb")

from wandb.proto import wandb_internal_pb2

from unitune.tracking import TrackingSettings, open_tracker
from unitune.types import StepMetric

pytestmark = pytest.mark.unitune_block_network

_BLOCK = 32 * 1024  # the .wandb file is a LevelDB-style log of 32 KiB blocks


def _records(path: Path) -> list[Any]:
    """The protobuf records of a `.wandb` file: a 7-byte W&B header, then LevelDB log records
    (checksum, length, type: full, or first/middle/last pieces of one split across blocks)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records: list[Any] = []
    pos, pieces = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces + chunk)
            records.append(record)
            pieces = b""
        elif kind in (2, 3):  # first, middle
            pieces += chunk
    return records


def _key(item: Any) -> str:
    return str(item.key or "/".join(item.nested_key))


def _read_run(run_dir: Path) -> dict[str, Any]:
    (path,) = run_dir.glob("run-*.wandb")
    # `finish()` returns before W&B's service process has flushed the whole file: wait for its end.
    deadline = time.monotonic() + 30
    while not any(r.WhichOneof("record_type") == "exit" for r in _records(path)):
        assert time.monotonic() < deadline, f"{path} has no exit record"
        time.sleep(0.1)
    out: dict[str, Any] = {"history": {}, "summary": {}, "config": {}, "run": None, "exit": None}
    for record in _records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            out["history"][row["_step"]] = row
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "run":
            out["run"] = record.run
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "exit":
            out["exit"] = record.exit.exit_code
    return out


def test_an_offline_run_is_written_to_disk(tmp_path: Path) -> None:
    warnings: list[str] = []
    settings = TrackingSettings(backend="wandb", experiment="triage")
    tracker = open_tracker(settings, warn=warnings.append)
    tracker.start("triage-run", params={"model": "gpt-4o-mini", "epochs": 3}, tags={"provider": "fake"})
    tracker.log_metrics([StepMetric(step=1, train_loss=2.0, learning_rate=1e-4),
                         StepMetric(step=2, train_loss=1.5, valid_loss=1.8, extra={"tokens/s": 900.0})])  # fmt: skip
    tracker.log_metrics([StepMetric(step=3, train_loss=1.0, valid_loss=1.2)])
    tracker.log_values({"accuracy": 0.91, "cost_usd": 1.25})
    report = tmp_path / "report.json"
    report.write_text('{"verdict": "ship"}')
    tracker.log_artifact(report)
    report.unlink()  # the run keeps its own copy
    tracker.finish("finished")
    assert warnings == []

    assert tracker.location is not None
    assert tracker.run_id is not None
    run_dir = Path(tracker.location)
    assert run_dir.parent == Path.cwd() / "wandb"
    assert run_dir.name.startswith("offline-run-")
    assert run_dir.name.endswith(tracker.run_id)
    assert (run_dir / "files" / "report.json").read_text() == '{"verdict": "ship"}'

    run = _read_run(run_dir)
    assert (run["run"].project, run["run"].display_name, list(run["run"].tags)) == (
        "triage", "triage-run", ["provider=fake"],
    )  # fmt: skip
    assert (run["config"]["model"], run["config"]["epochs"]) == ("gpt-4o-mini", 3)
    assert {step: row["train_loss"] for step, row in run["history"].items()} == {1: 2.0, 2: 1.5, 3: 1.0}
    assert run["history"][2]["tokens/s"] == 900.0
    assert run["history"][3]["valid_loss"] == 1.2
    assert (run["summary"]["accuracy"], run["summary"]["cost_usd"]) == (0.91, 1.25)
    assert run["summary"]["unitune_status"] == "finished"
    assert run["exit"] == 0


def test_a_failed_run_exits_non_zero_and_two_runs_stay_apart() -> None:
    settings = TrackingSettings(backend="wandb")
    first = open_tracker(settings, warn=pytest.fail)
    second = open_tracker(settings, warn=pytest.fail)
    first.start("a", params={}, tags={})
    second.start("b", params={}, tags={})
    first.log_metrics([StepMetric(step=1, train_loss=1.0)])
    second.log_metrics([StepMetric(step=1, train_loss=9.0)])
    first.finish("failed")
    second.finish("finished")
    a, b = (_read_run(Path(t.location)) for t in (first, second))  # type: ignore[arg-type]
    assert (a["history"][1]["train_loss"], a["exit"]) == (1.0, 1)
    assert (b["history"][1]["train_loss"], b["exit"]) == (9.0, 0)
