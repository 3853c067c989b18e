"""What waiting on a sweep costs (issue 22): "waiting on 100 jobs costs < 5% of one core".

100 jobs on the fake provider, moving in real time (`advance="clock"` with the system clock: each
job moves one state of validating → queued → running … → succeeded every `--seconds-per-step`), are
waited on two ways, one after the other in the same process:

1. `unitune.runs.wait_all`: one thread, one poll per job per interval, each job backing off on its
   own (what `unitune train --grid` uses);
2. the naive way: one thread per job, each calling `FineTuneClient.wait` (the same poll policy).

For each: the process CPU time (user + system, `time.process_time`) over the wall time of the wait,
as a share of one core, and the number of polls. The fake answers a poll in microseconds, so the
figure is the waiting machinery's own cost; a real provider adds its HTTP client's.

    python bench/bench_wait.py
    python bench/bench_wait.py --jobs 100 --poll-interval 1 --seconds-per-step 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from unitune import FineTuneClient
from unitune._clock import SystemClock
from unitune.demo.tickets import write_jsonl
from unitune.providers.fake import FakeProvider, FakeSettings
from unitune.runs import wait_all
from unitune.types import Job


def _start(args: argparse.Namespace, data: Path) -> tuple[FineTuneClient, list[Job]]:
    fake = FakeProvider(
        FakeSettings(advance="clock", seconds_per_step=args.seconds_per_step),
        clock=SystemClock(),
    )
    client = FineTuneClient(fake, ledger=False)
    jobs = [
        client.create_job(
            model="gpt-4o-mini", training_data=data, hyperparameters={"epochs": 1}, suffix=f"b{i}"
        )
        for i in range(args.jobs)
    ]
    return client, jobs


def _measure(label: str, run: Any) -> dict[str, Any]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    polls = run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    row = {"way": label, "wall_s": round(wall, 1), "cpu_s": round(cpu, 3), "share_of_one_core": cpu / wall,
           "polls": polls}  # fmt: skip
    print(f"{label:<34} wall {wall:6.1f} s  cpu {cpu:7.3f} s  = {100 * cpu / wall:5.2f}% of one core  "
          f"({polls} polls)", flush=True)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--poll-interval", type=float, default=1.0, help="the first interval (it backs off)")
    parser.add_argument("--seconds-per-step", type=float, default=10.0, help="how fast each job moves")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("UNITUNE_HOME", tempfile.mkdtemp(prefix="unitune-bench-wait-"))
    data = write_jsonl(Path(tempfile.mkdtemp()) / "tickets.jsonl", 20)
    print(f"{args.jobs} fake jobs, one state every {args.seconds_per_step} s, "
          f"first poll interval {args.poll_interval} s; {os.cpu_count()} cores", flush=True)  # fmt: skip
    rows = []

    client, jobs = _start(args, data)
    fake = client.provider
    assert isinstance(fake, FakeProvider)

    def together() -> int:
        outcomes = wait_all([(client, j) for j in jobs], poll_interval=args.poll_interval)
        assert all(isinstance(o, Job) for o in outcomes), outcomes
        return len(fake.calls_to("get_job"))

    rows.append(_measure("wait_all (one thread)", together))

    client2, jobs2 = _start(args, data)
    fake2 = client2.provider
    assert isinstance(fake2, FakeProvider)

    def threads() -> int:
        workers = [threading.Thread(target=client2.wait, args=(j,), kwargs={"poll_interval": args.poll_interval})
                   for j in jobs2]  # fmt: skip
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return len(fake2.calls_to("get_job"))

    rows.append(_measure("client.wait × one thread per job", threads))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
