"""How fast `unitune serve` answers (issue 20, "Serve").

Three measurements, each against a server on 127.0.0.1 started in this process:

1. overhead: what the HTTP server adds to one non-streaming request. The backend answers at once
   (`_Instant`), so what is left is the server: reading and checking the body, routing, the
   answer's JSON, uvicorn and the loopback socket. Compared with calling the same backend
   in-process (`prepare` + `complete`), per request, medians; with raw httpx (the server's share)
   and with the `openai` SDK (what an application sees: the SDK's own work included), with the
   request log off and on. Target: ≤ 5 ms over in-process, plus serialisation.
2. concurrency: the demo model (SmolLM2-135M-Instruct, CPU) answering the same prompts from one
   client at a time, then from 8 concurrent clients (the server batches them into one `generate`
   call each); rounds alternate the order; medians. Target: ≥ 3× the throughput.
3. time to first token: streamed answers from the demo model, one at a time: the first content
   chunk's arrival against the whole answer's.

    HF_HUB_OFFLINE=1 python bench/bench_serve.py
    HF_HUB_OFFLINE=1 python bench/bench_serve.py --only overhead --calls 2000
    HF_HUB_OFFLINE=1 python bench/bench_serve.py --only concurrency --prompts 16 --max-tokens 32 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from unitune.demo.tickets import generate
from unitune.serve._app import ServeConfig, start_server
from unitune.serve._backends import ChatRequest, Completion, ServedModels, StreamHandle

DEMO = "HuggingFaceTB/SmolLM2-135M-Instruct"


class _Instant:
    """A backend that answers at once (the server's overhead is then all that is measured)."""

    def prepare(self, model: str, request: ChatRequest) -> tuple[ChatRequest, int | None]:
        return request, 12

    def complete(self, model: str, request: ChatRequest) -> Future[Completion]:
        future: Future[Completion] = Future()
        future.set_result(Completion("Your order ships tomorrow.", 12, 6, "stop"))
        return future

    def stream(self, model: str, request: ChatRequest, notify: Callable[[], None]) -> StreamHandle:
        handle = StreamHandle((), notify)
        handle.push("Your order ships tomorrow.")
        handle.finish(Completion("Your order ships tomorrow.", 12, 6, "stop"))
        return handle

    def close(self) -> None:
        pass


def _prompts(n: int) -> list[Any]:
    """`n` support-ticket conversations (the user's turns) from the demo's generator."""
    return [[m for m in ex["messages"] if m["role"] != "assistant"] for ex in generate(n, seed=3)]


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def overhead(calls: int, rounds: int) -> dict[str, Any]:
    """Median ms per non-streaming request: in-process, raw httpx and the openai SDK, log off and on."""
    import httpx
    import openai

    backend = _Instant()
    messages = _prompts(1)[0]
    request = ChatRequest(messages=messages, max_tokens=32)
    body = {"model": "instant", "messages": messages, "max_tokens": 32}
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "log off": start_server(ServeConfig(port=0), models=ServedModels.of(backend, ["instant"])),
            "log on": start_server(
                ServeConfig(port=0, log_path=Path(tmp) / "log.sqlite"),
                models=ServedModels.of(backend, ["instant"]),
            ),
        }
        try:

            def in_process() -> None:
                wanted, _ = backend.prepare("instant", request)
                backend.complete("instant", wanted).result()

            runs: dict[str, Callable[[], Any]] = {"in-process": in_process}
            for name, server in servers.items():
                http = httpx.Client(base_url=server.url)
                sdk = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)

                def raw(http: httpx.Client = http) -> Any:
                    return http.post("/chat/completions", json=body).json()

                def via_sdk(sdk: openai.OpenAI = sdk) -> Any:
                    return sdk.chat.completions.create(model="instant", messages=messages, max_tokens=32)

                runs[f"httpx, {name}"], runs[f"openai SDK, {name}"] = raw, via_sdk
            for run in runs.values():  # warm up: connections, imports, caches
                for _ in range(50):
                    run()
            for r in range(rounds):
                order = list(runs.items()) if r % 2 == 0 else list(reversed(runs.items()))
                for name, run in order:
                    for _ in range(calls // rounds):
                        started = time.perf_counter()
                        run()
                        times.setdefault(name, []).append(time.perf_counter() - started)
        finally:
            for server in servers.values():
                server.stop()
    medians = {name: _ms(v) for name, v in times.items()}
    base = medians["in-process"]
    return {
        "calls": calls,
        "median_ms": medians,
        "over_in_process_ms": {
            name: round(m - base, 3) for name, m in medians.items() if name != "in-process"
        },
    }


_SDK: Any = None


def _ask(url: str, conv: Any, max_tokens: int) -> int:
    """One request from a client process (its SDK client made once per process)."""
    global _SDK
    import openai

    if _SDK is None:
        _SDK = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
    reply = _SDK.chat.completions.create(model=DEMO, messages=conv, max_tokens=max_tokens)
    assert reply.usage is not None
    return int(reply.usage.completion_tokens)


def concurrency(
    prompts: int, max_tokens: int, rounds: int, clients: int, batch_wait_ms: float
) -> dict[str, Any]:
    """Requests per second from one client at a time and from `clients` concurrent clients.

    The clients are processes of their own, as an application's would be: client threads in the
    server's process would share its GIL, and their requests would trickle in further apart than
    those of real clients do.
    """
    import multiprocessing

    served = ServedModels.load([DEMO], max_batch_size=clients, batch_wait_ms=batch_wait_ms)
    convs = _prompts(prompts)
    walls: dict[str, list[float]] = {"sequential": [], "concurrent": []}
    tokens: dict[str, list[int]] = {"sequential": [], "concurrent": []}
    # spawn: forking a process that holds torch's threads is not safe.
    pool = multiprocessing.get_context("spawn").Pool(clients)
    try:
        with start_server(ServeConfig(port=0, max_batch_size=clients), models=served) as server:
            jobs = [(server.url, c, max_tokens) for c in convs]
            pool.starmap(
                _ask, [(server.url, convs[0], 2)] * clients, chunksize=1
            )  # warm: imports, one-off costs
            backend = served.routes[DEMO]
            sizes: list[int] = []
            for r in range(rounds):
                for mode in ("sequential", "concurrent") if r % 2 == 0 else ("concurrent", "sequential"):
                    before = len(getattr(backend, "batch_sizes", []))
                    started = time.perf_counter()
                    if mode == "sequential":
                        done = [pool.apply(_ask, job) for job in jobs]
                    else:
                        done = pool.starmap(_ask, jobs, chunksize=1)
                    walls[mode].append(time.perf_counter() - started)
                    tokens[mode].append(sum(done))
                    if mode == "concurrent":
                        sizes += list(getattr(backend, "batch_sizes", []))[before:]
    finally:
        pool.terminate()
        served.close()
    seq, conc = statistics.median(walls["sequential"]), statistics.median(walls["concurrent"])
    return {
        "prompts": prompts,
        "max_tokens": max_tokens,
        "clients": clients,
        "rounds": rounds,
        "sequential_s": round(seq, 2),
        "concurrent_s": round(conc, 2),
        "sequential_req_per_s": round(prompts / seq, 2),
        "concurrent_req_per_s": round(prompts / conc, 2),
        "speedup": round(seq / conc, 2),
        "completion_tokens": tokens,
        "all_s": {k: [round(x, 2) for x in v] for k, v in walls.items()},
        "batch_wait_ms": batch_wait_ms,
        "concurrent_batch_sizes": sizes,
    }


def first_token(prompts: int, max_tokens: int) -> dict[str, Any]:
    """Median time to the first content chunk and to the end of the streamed answer."""
    import openai

    served = ServedModels.load([DEMO])
    first: list[float] = []
    total: list[float] = []
    try:
        with start_server(ServeConfig(port=0), models=served) as server:
            sdk = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=600)
            convs = _prompts(prompts + 1)
            sdk.chat.completions.create(model=DEMO, messages=convs[0], max_tokens=4)  # warm-up
            for conv in convs[1:]:
                started = time.perf_counter()
                seen: float | None = None
                stream = sdk.chat.completions.create(
                    model=DEMO, messages=conv, max_tokens=max_tokens, stream=True
                )
                for chunk in stream:
                    if seen is None and chunk.choices and chunk.choices[0].delta.content:
                        seen = time.perf_counter() - started
                total.append(time.perf_counter() - started)
                first.append(seen if seen is not None else total[-1])
    finally:
        served.close()
    return {"prompts": prompts, "max_tokens": max_tokens, "ttft_ms": _ms(first), "total_ms": _ms(total)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["overhead", "concurrency", "ttft"], default=None)
    parser.add_argument("--calls", type=int, default=1200, help="requests per way of calling (overhead)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-wait-ms", type=float, default=ServeConfig.batch_wait_ms)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, Any] = {}
    if args.only in (None, "overhead"):
        results["overhead"] = row = overhead(args.calls, args.rounds)
        for name, ms in row["median_ms"].items():
            extra = row["over_in_process_ms"].get(name)
            print(f"overhead: {name}: {ms} ms" + (f" (+{extra} ms)" if extra is not None else ""))
    if args.only in (None, "concurrency"):
        results["concurrency"] = row = concurrency(
            args.prompts, args.max_tokens, args.rounds, args.clients, args.batch_wait_ms
        )
        print(
            f"concurrency: {row['prompts']} prompts × {row['max_tokens']} tokens: one client "
            f"{row['sequential_s']} s, {row['clients']} clients {row['concurrent_s']} s: {row['speedup']}x "
            f"(batch sizes: {row['concurrent_batch_sizes']})"
        )
    if args.only in (None, "ttft"):
        results["ttft"] = row = first_token(args.prompts // 2 or 1, args.max_tokens)
        print(f"ttft: first token {row['ttft_ms']} ms, whole answer {row['total_ms']} ms (medians)")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
