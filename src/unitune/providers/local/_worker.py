"""The detached training process: `python -m unitune.providers.local._worker JOB_DIR`.

It owns the job's state from start to end: running → succeeded / failed (with the error) /
cancelled (SIGTERM or the job's `cancel` file). The client only reads what it writes.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

from unitune.providers.local._store import JobDir
from unitune.types import utcnow


def _follow(job: JobDir) -> int:
    """Run a non-zero rank of a multi-process job.

    A non-zero rank of a multi-process job: wait for rank 0 to resolve the base model, then train
    alongside it. It writes nothing: rank 0 owns the job's files and decides when to stop.
    """
    import time

    from unitune.providers.local._train import Cancelled, train

    deadline = time.monotonic() + 3600
    while True:
        state = job.state()
        if state.status not in ("queued", "running"):
            return 0
        if state.base_path:
            break
        if time.monotonic() > deadline:
            print("rank 0 did not resolve the base model within an hour", file=sys.stderr)
            return 1
        time.sleep(0.5)
    try:
        train(job, Path(state.base_path), lambda: False, main=False)
    except Cancelled:
        return 0
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _against_estimate(job: JobDir) -> None:
    """Log how long the job took against its estimate.

    Log how long the job took against create_job's estimate: the figure a user (and the next
    calibration of the estimate) can check it by.
    """
    import datetime as dt

    from unitune.providers.local._estimate import format_duration

    estimated = (job.spec().get("estimate") or {}).get("seconds")
    took = (utcnow() - dt.datetime.fromisoformat(job.state().created_at)).total_seconds()
    versus = f"; estimated about {format_duration(estimated)}" if isinstance(estimated, int | float) else ""
    job.event(
        f"took {format_duration(took)} from creation{versus}", seconds=took, estimated_seconds=estimated
    )


def main(argv: list[str]) -> int:
    job = JobDir(Path(argv[1]))
    if int(os.environ.get("RANK", "0")) != 0:
        return _follow(job)
    stop = {"requested": False}

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop["requested"] = True  # checked between steps, so the state files stay consistent

    signal.signal(signal.SIGTERM, on_term)

    def should_stop() -> bool:
        return stop["requested"] or job.cancel_path.exists()

    active = frozenset({"queued", "running", "cancelling"})
    state = job.update(only_if=frozenset({"queued"}), status="running", started_at=utcnow().isoformat())
    if state.status != "running" or should_stop():  # cancelled before this process got going
        job.update(only_if=active, status="cancelled", finished_at=utcnow().isoformat())
        job.event("job cancelled before training started", level="warning", type="status")
        return 0
    job.event("worker started", pid=os.getpid())
    try:
        from unitune.providers.local._models import resolve_model_path
        from unitune.providers.local._train import Cancelled, train

        spec = job.spec()

        def progress(message: str) -> None:
            job.event(message)
            if should_stop():
                raise Cancelled  # a cancel during a long download or conversion takes effect here

        base = resolve_model_path(spec["model"], progress=progress)
        job.update(base_path=str(base))
        train(job, base, should_stop)
    except Cancelled:
        job.update(only_if=active, status="cancelled", finished_at=utcnow().isoformat())
        job.event("job cancelled", level="warning", type="status")
        return 0
    except BaseException as e:
        traceback.print_exc()  # into worker.log, which get_job quotes if this process dies
        message = f"{type(e).__name__}: {e}"
        if should_stop():
            job.update(only_if=active, status="cancelled", finished_at=utcnow().isoformat())
            job.event(f"job cancelled ({message})", level="warning", type="status")
            return 0
        job.update(only_if=active, status="failed", finished_at=utcnow().isoformat(), error=message)
        job.event(f"job failed: {message}", level="error", type="status")
        return 1
    _against_estimate(job)
    job.update(
        only_if=active, status="succeeded", finished_at=utcnow().isoformat(), progress=1.0,
        fine_tuned_model=f"local:{job.id}",
    )  # fmt: skip
    job.event("job succeeded", type="status")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
