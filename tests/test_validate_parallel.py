"""validate() over worker processes (byte ranges of the file) reports exactly what one process does.

Workers are forked (Linux, from a process with one thread: they inherit the loaded tokenizer) or
spawned (elsewhere, or when threads are running); the tests that start workers run both ways.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from unitune.data import Dataset, ValidationReport, validate
from unitune.data import _validate as V

from .test_validate import CASES, WordCounter

U = {"role": "user", "content": "Where is my order #4521? It was due on Monday."}
A = {"role": "assistant", "content": "Sorry about that! It ships tomorrow, tracking follows by email."}
S = {"role": "system", "content": "You are a helpful support agent for Acme."}


def messy_lines(seed: int = 3, n: int = 400) -> list[str]:
    """Good examples, every bad line of test_validate.CASES, duplicates far apart, near duplicates,
    personal data, long examples and non-ASCII text, shuffled with a seed."""
    rng = random.Random(seed)
    words = [
        "order",
        "refund",
        "ship",
        "email",
        "café",
        "naïve",
        "東京",
        "спасибо",
        "🙂",
        "the",
        "a",
        "to",
        "is",
    ]
    good = []
    for i in range(60):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 60)))
        good.append(
            json.dumps(
                {"messages": [S, {**U, "content": f"{text} #{i}"}, {**A, "content": text.upper() or "ok"}]},
                ensure_ascii=rng.random() < 0.5,
            )
        )
    bad = [c[3] if isinstance(c[3], str) else json.dumps(c[3]) for c in CASES]
    extra = [
        json.dumps({"messages": [U, {**A, "content": "word " * 800}]}),  # over a small token limit
        json.dumps({"messages": [{**U, "content": "call +1 415 555 0134, card 4111 1111 1111 1111"}, A]}),
        json.dumps({"messages": [{**U, "content": "IBAN DE89 3704 0044 0532 0130 00, mail bo@x.io"}, A]}),
        json.dumps({"messages": [{**U, "content": "HELLO,  world!! The_End"}, A]}),
        json.dumps({"messages": [{**U, "content": "hello world the end"}, A]}),
        json.dumps({"input": {"messages": [U]}, "preferred_output": [A], "non_preferred_output": [A]}),
        '{"messages": [{"role": "user", "content": "bad \xff utf8"}]}',
        "",
    ]
    lines = []
    for _ in range(n):
        r = rng.random()
        pool = good if r < 0.55 else bad if r < 0.8 else extra if r < 0.95 else lines or good
        lines.append(rng.choice(pool))
    return lines


def write(path: Path, lines: list[str], *, bom: bool = True) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8").replace("\xff".encode(), b"\xff")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def dump(report: ValidationReport) -> str:
    # Order-sensitive: the issue list, and the counts and severities in the order codes first appeared.
    return json.dumps(report.model_dump(mode="json"))


@pytest.fixture(params=["fork", "spawn"])
def small_chunks(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """Small byte ranges, and workers started one way (fork / spawn): the test runs with each."""
    monkeypatch.setattr(V, "_CHUNK_BYTES", 1500)
    monkeypatch.setattr(V, "_MIN_CHUNK_BYTES", 1)
    method: str = request.param
    monkeypatch.setattr(V.pool, "_can_fork", lambda: method == "fork")
    return method


@pytest.fixture
def in_process_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the parts scanned in this process (workers import their own copy of the module)."""
    calls = [0]
    scan = V._scan

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return scan(*args, **kwargs)

    monkeypatch.setattr(V, "_scan", counting)
    return calls


@pytest.mark.usefixtures("small_chunks")
def test_two_workers_report_what_one_does(tmp_path: Path, in_process_scans: list[int]) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines())
    kw: dict[str, Any] = {"provider": "openai", "model": "gpt-4o-mini", "token_limit": 300}
    one = validate(path, workers=1, **kw)
    assert in_process_scans == [1]
    two = validate(path, workers=2, **kw)
    assert in_process_scans == [1], "the two-worker run fell back to this process"
    assert dump(two) == dump(one)
    # The file exercises what crosses ranges: renumbered lines, duplicates of earlier ranges,
    # the pinned format, the BOM on line 1 only, and many codes.
    assert {"duplicate_example", "near_duplicate", "mixed_formats", "invalid_utf8", "too_many_tokens"} <= set(
        one.counts
    )
    assert len(V.line_boundaries(path, path.stat().st_size, 1500)) > 20
    assert (one.issues[-1].line or 0) > 300


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("max_issues", [7, 2000])
def test_issue_cap_and_leakage_match(tmp_path: Path, max_issues: int) -> None:
    train = write(tmp_path / "train.jsonl", messy_lines(seed=1))
    valid = write(tmp_path / "valid.jsonl", messy_lines(seed=2, n=150), bom=False)
    kw: dict[str, Any] = {"provider": "together", "counter": WordCounter(), "max_issues": max_issues}
    one = validate(train, validation=valid, workers=1, **kw)
    two = validate(train, validation=valid, workers=2, **kw)
    assert dump(two) == dump(one)
    assert one.counts["train_validation_leakage"] > 0
    assert one.truncated == (max_issues < sum(one.counts.values()))


@pytest.mark.usefixtures("small_chunks")
def test_explicit_format_and_another_provider(tmp_path: Path) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines(seed=4), bom=False)
    kw: dict[str, Any] = {"provider": "mistral", "counter": WordCounter()}
    one = validate(Dataset.from_jsonl(path, format="chat"), workers=1, **kw)
    two = validate(Dataset.from_jsonl(path, format="chat"), workers=2, **kw)
    assert dump(two) == dump(one)


def test_gzip_and_unpicklable_counters_stay_in_process(
    tmp_path: Path, in_process_scans: list[int], small_chunks: str
) -> None:
    lines = messy_lines(n=120)
    plain = write(tmp_path / "messy.jsonl", lines)
    packed = tmp_path / "messy.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))

    class Local(WordCounter):  # defined in a function: pickle cannot send it to a worker
        pass

    assert dump(validate(packed, counter=WordCounter(), workers=2)).replace(".gz", "") == dump(
        validate(plain, counter=WordCounter(), workers=1)
    )
    # A forked worker has the counter already; a spawned one would need it pickled.
    assert dump(validate(plain, counter=Local(), workers=2)) == dump(
        validate(plain, counter=Local(), workers=1)
    )
    assert in_process_scans == ([3] if small_chunks == "fork" else [4])


def test_workers_are_forked_only_from_a_process_with_one_thread() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not V.pool._can_fork()  # a second thread could hold a lock the child would need
    finally:
        stop.set()
        thread.join()


def test_forked_workers_in_a_fresh_process_report_what_one_does(tmp_path: Path) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines(n=600))
    code = (
        "import json, sys\n"
        "from unitune.data import _validate as V, validate\n"
        "V.pool._FORK_MIN_BYTES = 1\n"  # automatic workers for this small file
        "V._CHUNK_BYTES = 4000; V._MIN_CHUNK_BYTES = 1\n"
        "forked = []\n"
        "run = V.passes._run_parallel\n"
        "def tracked(plan, job):\n"
        "    forked.append(plan.fork)\n"
        "    yield from run(plan, job)\n"
        "V.passes._run_parallel = tracked\n"
        "r = validate(sys.argv[1], provider='openai', model='gpt-4o-mini', token_limit=300)\n"
        "assert forked == [True], forked\n"
        "print(json.dumps(r.model_dump(mode='json')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    one = validate(path, provider="openai", model="gpt-4o-mini", token_limit=300, workers=1)
    assert out.stdout.strip() == dump(one)


class Exploding(WordCounter):
    def count_messages(self, messages: Any, *, tools: Any = None) -> int:
        raise ValueError("boom")


@pytest.mark.usefixtures("small_chunks")
def test_a_worker_error_is_raised_not_hidden(tmp_path: Path) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines(n=200))
    for workers in (1, 2):
        with pytest.raises(ValueError, match="boom"):
            validate(path, counter=Exploding(), workers=workers)


def test_auto_workers_only_for_big_files(tmp_path: Path, in_process_scans: list[int]) -> None:
    path = write(tmp_path / "small.jsonl", messy_lines(n=50))
    validate(path, counter=WordCounter())  # far below _PARALLEL_MIN_BYTES
    assert in_process_scans == [1]
    with pytest.raises(ValueError, match="workers"):
        validate(path, counter=WordCounter(), workers=0)


def test_without_numpy_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines(n=300))
    monkeypatch.setattr(V.passes, "_NUMPY_FROM", 0)  # numpy's sort even for a few keys
    with_numpy = dump(validate(path, counter=WordCounter(), token_limit=50))
    monkeypatch.setitem(sys.modules, "numpy", None)  # `import numpy` now raises ImportError
    assert dump(validate(path, counter=WordCounter(), token_limit=50)) == with_numpy


def test_fingerprints_match_the_regex_definition() -> None:
    rng = random.Random(0)
    alphabet = [*"abcXYZ019 .,-_!?\n\t\x1f\x1e", "é", "Σ", "İ", "ß", "—", "，", "٣", "🙂", "\u0307", "K", "ǅ"]
    texts = [
        "",
        " ",
        "__",
        *("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(2000)),
    ]
    got = V._fingerprints(texts)
    for text, (exact, near) in zip(texts, got, strict=True):
        # Lower-cased character by character: "Σ" is "σ" even at a word's end (no final-sigma rule).
        want = re.sub(r"[\W_]+", " ", text.replace("Σ", "σ").lower()).strip()
        assert near == V.hashlib.blake2b(want.encode(), digest_size=8).digest(), repr(text)
        assert exact == V.hashlib.blake2b(text.encode(), digest_size=8).digest()


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"),
        ("together", "llama-3.1-8b-instruct"),
        ("together", "qwen2.5-7b-instruct"),
        ("mistral", "open-mistral-7b"),
        ("openai", "unknown-model"),
    ],
)
def test_count_conversations_is_count_messages_plus_assistant_text(provider: str, model: str) -> None:
    from unitune.data.tokens import counter_for
    from unitune.types import Message, content_text

    counter = counter_for(provider, model)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    conversations: list[tuple[list[Any], list[Any] | None]] = [
        ([S, U, A], None),
        (
            [
                U,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "{}"},
                A,
            ],
            tools,
        ),
        ([{**U, "name": "ana"}, {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}], None),
        ([U, {"role": "assistant", "content": 7}], None),
        ([Message(role="user", content="hi"), Message(role="assistant", content="hello there")], None),
    ]
    batch = counter.count_conversations(conversations)
    for (messages, tools_), got in zip(conversations, batch, strict=True):
        assistant = [
            m.text if isinstance(m, Message) else content_text(m.get("content"))
            for m in messages
            if (m.role if isinstance(m, Message) else m.get("role")) == "assistant"
        ]
        want = (counter.count_messages(messages, tools=tools_), sum(counter.count_texts(assistant)))
        assert got == want
        assert counter.count_conversation(messages, tools=tools_) == want
