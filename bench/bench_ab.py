"""Two source trees of unitune, measured in turn with bench_dataset.py: old against new, same file.

    git worktree add /tmp/old <commit>        # the code before (plus its compiled text scanner:
    cp src/unitune/data/_textscan*.so /tmp/old/src/unitune/data/    # the same C source, so the same .so)
    python bench/bench_ab.py --old /tmp/old/src --size-mb 1024 --only validate,validate-1 --rounds 5

Each measurement is one fresh process running bench_dataset.py's own measurement (`run_child`: the same
code and the same timing), with PYTHONPATH set to one tree's `src`; in each round every measurement runs
for both trees back to back, the order of the two swapped every round, so that the machine's drift falls
on both alike. Besides bench_dataset's time (wall clock), the child reports the CPU time the operation
took in all its processes (workers included), which other load on a shared machine disturbs less.
Prints each tree's rounds and medians and the change of the medians; fails if the two trees' reports
differ (examples, tokens, summary).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_dataset  # noqa: E402  (beside this file)


def _cpu() -> float:
    """CPU seconds (user and system) of this process and its waited-for children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child(name: str, path: Path) -> dict[str, Any]:
    """bench_dataset's measurement `name`, plus the CPU seconds it took (imports before it excluded)."""
    import unitune
    import unitune.data._validate  # imported before the clock starts, as in the measurement

    cpu = _cpu()
    out = bench_dataset.run_child(name, path)
    out["cpu_seconds"] = _cpu() - cpu
    out["unitune"] = str(Path(unitune.__file__).resolve().parents[1])
    return out


def _run(name: str, path: Path, src: Path) -> dict[str, Any]:
    """One measurement in a fresh process on the tree `src`, its memory watched as bench_dataset does."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--file", str(path)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(src)}
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, bench_dataset._tree_rss_kb(proc.pid))
        time.sleep(0.05)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if Path(result["unitune"]) != src:
        raise SystemExit(f"{name} ran {result['unitune']}, not {src}")
    result["peak_tree_kb"] = max(peak, result["largest_kb"])
    return result


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("summary", "examples", "tokens", "tokens_p5_p50_p95")
    return all(a.get(k) == b.get(k) for k in keys)


def main(argv: list[str] | None = None) -> int:
    """Measure both trees in turn (or, with --child, run one measurement in this process)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, help="the old tree's src folder (required)")
    ap.add_argument(
        "--new", type=Path, default=HERE.parent / "src", help="the new tree's (default: this one)"
    )
    ap.add_argument("--size-mb", type=float, default=1024.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--file", type=Path, help="benchmark this file instead of a generated one")
    ap.add_argument("--only", default="validate,validate-1", help="measurements (bench_dataset.py's names)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write every round's results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.file)))
        return 0
    if args.old is None:
        ap.error("--old is required")

    path = args.file or bench_dataset.ensure_data(args.size_mb, HERE / "data", args.seed)
    mib = path.stat().st_size / 2**20
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    names = args.only.split(",")
    print(f"{path} ({mib:,.1f} MiB); old {trees['old']}; new {trees['new']}", file=sys.stderr)
    seconds: dict[str, dict[str, list[float]]] = {n: {"old": [], "new": []} for n in names}
    cpu: dict[str, dict[str, list[float]]] = {n: {"old": [], "new": []} for n in names}
    results: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for name in names:
            got = {}
            for tree in order:
                got[tree] = _run(name, path, trees[tree])
                seconds[name][tree].append(got[tree]["seconds"])
                cpu[name][tree].append(got[tree]["cpu_seconds"])
                print(
                    f"round {r + 1} {name:12s} {tree}: {got[tree]['seconds']:6.2f} s "
                    f"{mib / got[tree]['seconds']:6.1f} MB/s, CPU {got[tree]['cpu_seconds']:6.2f} s, "
                    f"peak {got[tree]['peak_tree_kb'] / 1024:4.0f} MB",
                    file=sys.stderr,
                )
            if not _same(got["old"], got["new"]):
                raise SystemExit(f"{name}: the two trees' reports differ: {got['old']} / {got['new']}")
            results.append({"round": r + 1, "name": name, **got})

    print(
        "| measurement | tree | rounds: time (s) | median time (s) | MB/s | rounds: CPU (s) | median CPU (s) |"
    )
    print("|---|---|---|---:|---:|---|---:|")
    for name in names:
        med: dict[str, tuple[float, float]] = {}
        for tree in ("old", "new"):
            wall, used = seconds[name][tree], cpu[name][tree]
            med[tree] = (statistics.median(wall), statistics.median(used))
            print(
                f"| {name} | {tree} | {', '.join(f'{v:.1f}' for v in wall)} | {med[tree][0]:.2f} | "
                f"{mib / med[tree][0]:.1f} | {', '.join(f'{v:.1f}' for v in used)} | {med[tree][1]:.2f} |"
            )
        print(
            f"| {name} | new / old - 1 | | {med['new'][0] / med['old'][0] - 1:+.1%} | | | "
            f"{med['new'][1] / med['old'][1] - 1:+.1%} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "file": str(path),
                    "mib": mib,
                    "trees": {k: str(v) for k, v in trees.items()},
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
