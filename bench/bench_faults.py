"""Fault tolerance benchmark (issue 16, "Faults"): full lifecycles per provider through
`FineTuneClient` against each vendor's fake with seeded faults on every request.

    .venv/bin/python bench/bench_faults.py                          # 30 lifecycles per provider, rate and budget
    .venv/bin/python bench/bench_faults.py --lifecycles 200 --providers openai,together
    .venv/bin/python bench/bench_faults.py --rates 0.3 --max-attempts 5,10 --json out.json

A lifecycle is validate → upload → create (with an idempotency key) → wait → events → metrics →
chat (`tests/faults/harness.py`): OpenAI, Together, Mistral and Cohere on their stateful fakes served
to the real SDKs through MockTransport, Bedrock on moto in-process. OpenAI and Together upload in
parts (their Uploads and multipart protocols: create, 3 parts, complete). The faults
(`tests/faults/plan.py`, seeded, so a run is reproducible): 429 with Retry-After 1 s, 500, 502
(an HTML page), 503, a hang past the timeout (10 s of the fake clock), a dropped or refused
connection, a 200 whose JSON is cut short (after the request took effect), and a request that took
effect before its answer was lost (dropped, 502, or too late); each job shows in the vendor's list
20 s after its create. The client waits on a `FakeClock`: backoff, Retry-After and polling take no
wall time.

Per provider, fault rate and retry budget (`max_attempts`; the rest is `RetrySettings()`):

  completed     lifecycles that got to the end, of those run
  jobs/key      the most jobs the vendor holds for one idempotency key (1: no duplicate)
  escaped       exceptions outside unitune's error tree (must be 0)
  requests      HTTP requests the fake received, in all and per lifecycle
  wall, sim     wall-clock seconds of the run, and seconds of the fake clock it spent
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fakes and the harness live in tests/

SEED = 16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lifecycles", type=int, default=30, help="lifecycles per provider, rate and budget")
    parser.add_argument("--providers", default="openai,together,mistral,cohere,bedrock")
    parser.add_argument("--rates", default="0,0.1,0.3", help="fault rates, comma-separated")
    parser.add_argument(
        "--max-attempts", default="8,5", help="retry budgets, comma-separated (8 is the default)"
    )
    parser.add_argument(
        "--list-lag", type=float, default=20.0, help="seconds a new job takes to show in lists"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("unitune").setLevel(logging.ERROR)  # the retries' warnings, by the thousand

    from tests.faults.harness import soak

    from unitune.config import RetrySettings

    for provider in args.providers.split(","):  # imports and first calls, outside the timings
        with tempfile.TemporaryDirectory() as tmp:
            soak(provider, 0.0, 1, Path(tmp), seed=args.seed)
    rows: list[dict[str, Any]] = []
    header = (f"{'provider':<9} {'rate':>5} {'attempts':>8} {'completed':>13} {'jobs/key':>8} {'escaped':>7} "
              f"{'requests':>8} {'req/lc':>6} {'wall s':>7} {'sim s':>8}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for provider in args.providers.split(","):
        for attempts in (int(a) for a in args.max_attempts.split(",")):
            for rate in (float(r) for r in args.rates.split(",")):
                with tempfile.TemporaryDirectory() as tmp:
                    run = soak(provider, rate, args.lifecycles, Path(tmp), seed=args.seed, list_lag=args.list_lag,
                               retry=RetrySettings(max_attempts=attempts))  # fmt: skip
                n = len(run.outcomes)
                row = {
                    "provider": provider, "rate": rate, "max_attempts": attempts, "lifecycles": n,
                    "completed": run.completed, "max_jobs_per_key": run.max_jobs_per_key,
                    "escaped": len(run.escaped), "requests": run.requests, "faults": run.faults,
                    "wall_s": round(run.wall_s, 2), "simulated_s": round(run.simulated_s),
                    "failures": [f"{o.stage}: {type(o.error).__name__}" for o in run.outcomes if not o.completed],
                }  # fmt: skip
                rows.append(row)
                print(f"{provider:<9} {rate:>5.0%} {attempts:>8} {run.completed:>5}/{n:<3} {run.completed / n:>4.0%} "
                      f"{run.max_jobs_per_key:>8} {len(run.escaped):>7} {run.requests:>8} {run.requests / n:>6.1f} "
                      f"{run.wall_s:>7.2f} {run.simulated_s:>8.0f}")  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps({"seed": args.seed, "list_lag": args.list_lag, "rows": rows}, indent=1)
        )
    bad = [r for r in rows if r["escaped"] or r["max_jobs_per_key"] > 1]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
