"""What `unitune gateway` costs (issue 21): "≤ 2 ms per call over calling the same provider through
`FineTuneClient` directly (the fake provider, 1,000 calls), and 100 clients polling 100 jobs at once
without errors."

The gateway runs in a process of its own (`--serve`, started by this script), as it would in use:
in a thread of this process its request handling would share the clients' GIL, so every client
call would also wait for the server's Python and the server for the clients'. The fake provider is
built from the same settings on both sides: jobs that stay `running` (the state a poller sees) and
the default ledger under a home of their own, exactly as the gateway builds its `FineTuneClient`.

1. overhead: 1,000 `client.fine_tuning.jobs.retrieve` through the gateway with the `openai` SDK
   against 1,000 `FineTuneClient.get_job` in this process, in blocks that alternate which goes
   first (the machine's drift falls on both alike); per-call medians and their difference. Also
   raw httpx for the same request (the gateway's share without the SDK's), `jobs.list` (20 jobs a
   page) against `FineTuneClient.list_jobs(limit=20)`, and `files.retrieve` (no provider call: the
   gateway's own floor).
2. polling: 100 threads, each with its own `openai.OpenAI` client (its own connection), start
   together and each polls its own job of 100 `--rounds` times; every error is counted; latency
   p50 / p95 / p99 / max and the total time.

    python bench/bench_gateway.py
    python bench/bench_gateway.py --calls 2000 --clients 100 --rounds 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pydantic import SecretStr

from unitune import FineTuneClient
from unitune.config import UnituneConfig

KEY = "sk-bench-gateway-0123456789"
# Jobs that stay running: every poll reads the same state, on both sides, for the whole run.
FAKE = {"advance": "clock", "progression": ["running"]}


def _config(home: Path) -> UnituneConfig:
    return UnituneConfig(home=home, providers={"fake": FAKE})


def _train_file(path: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"Question number {i}?"},
                          {"role": "assistant", "content": f"Answer number {i}."}]} for i in range(12)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


# -- the server process --------------------------------------------------------------------------------


def _gateway_config(home: Path) -> Any:
    from unitune.gateway import GatewayConfig

    return GatewayConfig(provider="fake", port=0, api_keys=(SecretStr(KEY),), home=home,
                         unitune_config=_config(home))  # fmt: skip


def serve(home: Path) -> None:
    """Serve the gateway on the fake provider and print its URL; run until killed."""
    from unitune.gateway import start_gateway

    with start_gateway(_gateway_config(home)) as server:
        print(server.url, flush=True)
        server.wait()


def _start_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(home)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        raise SystemExit(f"the gateway did not start (exit {process.wait()})")
    return process, url


# -- measuring -----------------------------------------------------------------------------------------


def _timed(call: Callable[[int], Any], n: int) -> list[float]:
    """Seconds each of `n` calls took (`call(i)`)."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def side_by_side(ways: dict[str, Callable[[int], Any]], calls: int, blocks: int) -> dict[str, list[float]]:
    """`calls` timed calls of each way, in `blocks` blocks; each block runs the ways in an order
    rotated by one from the last, so no way is always first (or last) after a pause."""
    names = list(ways)
    times: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # warm-up: connections open, code paths and caches hot
        _timed(ways[name], 50)
    per_block = calls // blocks
    for b in range(blocks):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            times[name] += _timed(ways[name], per_block)
    return times


def overhead(url: str, direct: FineTuneClient, gw_jobs: list[str], direct_jobs: list[str],
             file_id: str, calls: int, blocks: int) -> dict[str, Any]:  # fmt: skip
    import httpx
    import openai

    sdk = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=30)
    raw = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    n = len(gw_jobs)

    def raw_get(i: int) -> None:
        raw.get(f"/fine_tuning/jobs/{gw_jobs[i % n]}").raise_for_status()

    retrieve = side_by_side({
        "direct FineTuneClient.get_job": lambda i: direct.get_job(direct_jobs[i % n]),
        "gateway, openai SDK jobs.retrieve": lambda i: sdk.fine_tuning.jobs.retrieve(gw_jobs[i % n]),
        "gateway, raw httpx GET": raw_get,
    }, calls, blocks)  # fmt: skip
    listing = side_by_side({
        "direct FineTuneClient.list_jobs(limit=20)": lambda i: direct.list_jobs(limit=20),
        "gateway, openai SDK jobs.list(limit=20)": lambda i: sdk.fine_tuning.jobs.list(limit=20),
    }, max(calls // 5, blocks), blocks)  # fmt: skip
    files = side_by_side(
        {"gateway, openai SDK files.retrieve": lambda i: sdk.files.retrieve(file_id)}, calls, 1
    )
    sdk.close()
    raw.close()
    medians = {
        name: statistics.median(t) for group in (retrieve, listing, files) for name, t in group.items()
    }
    return {
        "calls": {name: len(t) for group in (retrieve, listing, files) for name, t in group.items()},
        "median_ms": {name: _ms(m) for name, m in medians.items()},
        "p95_ms": {
            name: _ms(_pct(t, 0.95)) for group in (retrieve, listing, files) for name, t in group.items()
        },
        "overhead_ms": {
            "jobs.retrieve (openai SDK)": _ms(
                medians["gateway, openai SDK jobs.retrieve"] - medians["direct FineTuneClient.get_job"]
            ),
            "jobs.retrieve (raw httpx)": _ms(
                medians["gateway, raw httpx GET"] - medians["direct FineTuneClient.get_job"]
            ),
            "jobs.list, 20 a page (openai SDK)": _ms(
                medians["gateway, openai SDK jobs.list(limit=20)"]
                - medians["direct FineTuneClient.list_jobs(limit=20)"]
            ),
        },
    }


def polling(url: str, jobs: list[str], clients: int, rounds: int) -> dict[str, Any]:
    """`clients` threads, each with its own SDK client, poll their own job `rounds` times at once."""
    import openai

    sdks = [openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=60) for _ in range(clients)]
    for i, sdk in enumerate(sdks):  # each opens its connection before the clock starts
        sdk.fine_tuning.jobs.retrieve(jobs[i % len(jobs)])
    barrier = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    wrong: list[str] = []

    def poll(i: int) -> None:
        job = jobs[i % len(jobs)]
        barrier.wait()
        for _ in range(rounds):
            start = time.perf_counter()
            try:
                got = sdks[i].fine_tuning.jobs.retrieve(job)
            except Exception as e:  # every failure counts, whatever it is
                errors.append(f"{type(e).__name__}: {e}")
                continue
            latencies[i].append(time.perf_counter() - start)
            if got.id != job or got.status != "running":
                wrong.append(f"{job}: {got.id} {got.status}")

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    total = time.perf_counter() - start
    for sdk in sdks:
        sdk.close()
    flat = [x for per in latencies for x in per]
    return {
        "clients": clients, "jobs": len({jobs[i % len(jobs)] for i in range(clients)}), "rounds": rounds,
        "calls": clients * rounds, "ok": len(flat), "errors": len(errors), "wrong_answers": len(wrong),
        "first_errors": errors[:5], "total_s": round(total, 2), "calls_per_s": round(len(flat) / total, 1),
        "p50_ms": _ms(_pct(flat, 0.50)), "p95_ms": _ms(_pct(flat, 0.95)), "p99_ms": _ms(_pct(flat, 0.99)),
        "max_ms": _ms(max(flat)) if flat else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per way of calling (overhead)")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks the calls are split into")
    parser.add_argument("--clients", type=int, default=100, help="concurrent polling clients")
    parser.add_argument("--jobs", type=int, default=100, help="jobs created on each side")
    parser.add_argument("--rounds", type=int, default=20, help="polls per client")
    parser.add_argument("--only", choices=["overhead", "polling"])
    parser.add_argument("--in-thread", action="store_true",
                        help="serve from a thread of this process instead (shows what sharing the GIL costs)")  # fmt: skip
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server process's home
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    import openai

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        root = Path(tmp)
        os.environ["UNITUNE_HOME"] = str(root / "direct")  # nothing reaches the user's own home or ledger
        if args.in_thread:
            from unitune.gateway import start_gateway

            in_thread = start_gateway(_gateway_config(root / "gateway"))
            url = in_thread.url
        else:
            server, url = _start_server(root / "gateway")
        try:
            train = _train_file(root / "train.jsonl")
            sdk = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=60)
            file_id = sdk.files.create(file=("train.jsonl", train.read_bytes()), purpose="fine-tune").id
            gw_jobs = [sdk.fine_tuning.jobs.create(model="fake:gpt-4o-mini", training_file=file_id).id
                       for _ in range(args.jobs)]  # fmt: skip
            sdk.close()
            direct = FineTuneClient("fake", config=_config(root / "direct"))
            direct_jobs = [
                direct.create_job(model="gpt-4o-mini", training_data=train).id for _ in range(args.jobs)
            ]
            where = "a thread of the client's process" if args.in_thread else "separate process"
            result: dict[str, Any] = {"gateway": where, "cpus": os.cpu_count()}
            if args.only in (None, "overhead"):
                result["overhead"] = overhead(
                    url, direct, gw_jobs, direct_jobs, file_id, args.calls, args.blocks
                )
            if args.only in (None, "polling"):
                result["polling"] = polling(url, gw_jobs, args.clients, args.rounds)
            result["load_average"] = [round(x, 2) for x in os.getloadavg()]
            direct.close()
        finally:
            if args.in_thread:
                in_thread.stop()
            else:
                server.terminate()
                server.wait(10)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
