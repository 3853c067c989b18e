"""How fast `client.evaluate` gets its answers (issue 19, "Fast enough to use").

Two measurements, each side by side in one run:

1. hosted: N examples × 3 candidates through the OpenAI adapter (the real `openai` SDK) against a
   loopback server that answers every chat completion after a fixed delay (100 ms). The ideal wall
   time is requests × delay / concurrency; the target is within 1.3× of it.
2. local: the demo model (SmolLM2-135M-Instruct, CPU) answering the same prompts one at a time
   (`batch_size=1`) and in batches (`batch_size=8`), alternating order over rounds; the target is
   batched ≥ 3× faster.

    python bench/bench_evaluate.py                      # both, defaults below
    python bench/bench_evaluate.py --only hosted --examples 500 --concurrency 8 16 32
    python bench/bench_evaluate.py --only local --local-prompts 32 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from unitune import FineTuneClient
from unitune.data import Dataset
from unitune.demo.tickets import generate


class _Handler(BaseHTTPRequestHandler):
    delay = 0.1
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK reuses its connections, as it would in use
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's
    # delayed ACK (40 ms on Linux) and the benchmark would measure that instead of unitune.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        time.sleep(self.delay)
        text = body["messages"][-1]["content"][:40]
        payload = json.dumps({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _records(n: int) -> list[dict[str, Any]]:
    return [{"messages": t["messages"]} for t in generate(n, seed=11)]


def _serve(delay: float, ports: Any) -> None:
    """The loopback server, in a process of its own: the vendor's time must not share our GIL."""
    _Handler.delay = delay
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    ports.put(server.server_port)
    server.serve_forever()


def hosted(examples: int, concurrency: int, delay: float) -> dict[str, Any]:
    """Wall time of one evaluation of `examples` × 3 candidates against the delayed loopback server."""
    import multiprocessing

    ports: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(delay, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        data = Dataset.from_records(_records(examples))
        url = f"http://127.0.0.1:{port}/v1"
        with FineTuneClient(
            "openai", api_key="sk-bench", base_url=url, ledger=False, max_retries=0
        ) as client:
            started = time.perf_counter()
            report = client.evaluate(
                data, candidates=["a=gpt-4.1-mini", "b=gpt-4.1-nano", "c=gpt-4o-mini"],
                metrics=["exact_match"], concurrency=concurrency,
            )  # fmt: skip
            wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.join()
    requests = examples * 3
    ideal = requests * delay / concurrency
    assert all(c.answered == examples for c in report.candidates), "every request must be answered"
    return {"examples": examples, "requests": requests, "concurrency": concurrency, "delay_s": delay,
            "wall_s": round(wall, 2), "ideal_s": round(ideal, 2), "ratio": round(wall / ideal, 3)}  # fmt: skip


def local(prompts: int, rounds: int, max_new_tokens: int) -> dict[str, Any]:
    """Seconds for the demo model to answer `prompts` prompts one at a time and in batches of 8."""
    from unitune.providers.local import LocalProvider
    from unitune.types import Message

    provider = LocalProvider()
    model = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the demo's model (its alias resolves to this)
    convs = [
        [Message(role=m["role"], content=m["content"]) for m in r["messages"] if m["role"] != "assistant"]
        for r in _records(prompts)
    ]
    provider.chat_batch(model, convs[:2], max_new_tokens=4, batch_size=2)  # load the model once, untimed
    times: dict[int, list[float]] = {1: [], 8: []}
    for r in range(rounds):
        for bs in (1, 8) if r % 2 == 0 else (8, 1):  # alternate the order: the VM's noise drifts
            started = time.perf_counter()
            out = provider.chat_batch(
                model, convs, max_new_tokens=max_new_tokens, temperature=0, batch_size=bs
            )
            times[bs].append(time.perf_counter() - started)
            assert len(out) == prompts
    one, batched = statistics.median(times[1]), statistics.median(times[8])
    return {"prompts": prompts, "rounds": rounds, "max_new_tokens": max_new_tokens,
            "one_at_a_time_s": round(one, 2), "batch_8_s": round(batched, 2), "speedup": round(one / batched, 2),
            "all_s": {str(k): [round(x, 2) for x in v] for k, v in times.items()}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["hosted", "local"], default=None)
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--local-prompts", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.only in (None, "hosted"):
        results["hosted"] = [hosted(args.examples, c, args.delay) for c in args.concurrency]
        for row in results["hosted"]:
            print(f"hosted: {row['requests']} requests, concurrency {row['concurrency']}: {row['wall_s']} s "
                  f"(ideal {row['ideal_s']} s, ratio {row['ratio']})")  # fmt: skip
    if args.only in (None, "local"):
        results["local"] = local(args.local_prompts, args.rounds, args.max_new_tokens)
        row = results["local"]
        print(f"local: {row['prompts']} prompts, one at a time {row['one_at_a_time_s']} s, batches of 8 "
              f"{row['batch_8_s']} s: {row['speedup']}x")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
