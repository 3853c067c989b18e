"""validate()'s fast paths report exactly what its plain paths do.

Three things make a clean line cheap: the file is decoded a block at a time with msgspec
(`_loaders.iter_jsonl_blocks`), the text is scanned by the compiled `_textscan`, and an example
whose shape (`_validate._shape`) was already checked clean skips the structural checks. Each has a
plain counterpart, which these tests switch to and compare with, on messy and on random data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unitune.data import _loaders as L
from unitune.data import _textscan_py as T
from unitune.data import _validate as V
from unitune.data import validate

from .test_validate import WordCounter
from .test_validate_parallel import dump, messy_lines, write


def plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fast path off: line-by-line json.loads, the Python scanner, every example checked."""
    monkeypatch.setattr(L, "_chat_block", lambda block, n: None)
    monkeypatch.setattr(V, "scan", T.scan_py)
    monkeypatch.setattr(V, "keys", T.keys_py)
    monkeypatch.setattr(V, "lane", None)
    monkeypatch.setattr(V, "_MAX_SHAPES", 0)


def both(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[str, str]:
    fast = dump(validate(path, counter=WordCounter(), workers=1, **kw))
    with monkeypatch.context() as m:
        plain(m)
        slow = dump(validate(path, counter=WordCounter(), workers=1, **kw))
    return fast, slow


@pytest.mark.parametrize("provider", ["openai", "together", "mistral", "bedrock"])
def test_messy_file_same_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines(n=600))
    fast, slow = both(path, monkeypatch, provider=provider, token_limit=50)
    assert fast == slow


def test_blocks_give_the_records_lines_give(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "BLOCK_BYTES", 256)  # many blocks, some with a bad line in them
    path = write(tmp_path / "messy.jsonl", messy_lines(n=300))
    with path.open("rb") as fh:
        lines = list(L.iter_jsonl_lines(fh))
    with path.open("rb") as fh:
        blocks = list(L.iter_jsonl_blocks(L.read_blocks(fh)))
    assert blocks == lines
    size = path.stat().st_size
    assert sum(r.size for r in blocks) == size


def test_a_range_ends_where_it_should(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "BLOCK_BYTES", 100)
    path = write(tmp_path / "clean.jsonl", [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) for i in range(50)], bom=False)  # fmt: skip
    size = path.stat().st_size
    (_, mid), *_ = L.line_boundaries(path, size, size // 3)
    first = list(L.read_jsonl_range(path, 0, mid, fmt="chat"))
    rest = list(L.read_jsonl_range(path, mid, size, fmt="chat"))
    assert len(first) + len(rest) == 50
    assert rest[0].data == {"messages": [{"role": "user", "content": f"q{len(first)}"}]}
    assert sum(r.size for r in first) == mid


# --- random examples -------------------------------------------------------------------------------

_text = st.sampled_from(
    ["hi", "", "  ", "Hello <|im_start|> there", "mail a@b.io", "call 415 555 0134 now", "4111 1111 1111 1111",
     "DE89 3704 0044 0532 0130 00", "Straße", "ΣΟΦΙΑ", "[INST]", "東京", "ok"]
)  # fmt: skip
_id = st.sampled_from(["call_1", "call_2", "abcDEF123", "xyz789ABC", "", "bad id!", "c" * 41])
_name = st.sampled_from(["lookup", "bad name", "", "x" * 70])
_args = st.sampled_from(['{"a": 1}', "{not json", "[]", ""])
_value = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.floats(allow_nan=False), _text)
_call = st.fixed_dictionaries(
    {
        "id": st.one_of(_id, _value),
        "type": st.just("function"),
        "function": st.one_of(
            st.fixed_dictionaries({"name": st.one_of(_name, _value), "arguments": st.one_of(_args, _value)}),
            _value,
        ),
    },
)
_message = st.fixed_dictionaries(
    {
        "role": st.one_of(
            st.sampled_from(["system", "user", "assistant", "tool", "function", "robot"]), _value
        )
    },
    optional={
        "content": st.one_of(_text, st.none(), _value, st.just([{"type": "text", "text": "hi"}])),
        "weight": st.one_of(st.sampled_from([0, 1]), _value),
        "tool_calls": st.one_of(st.lists(_call, max_size=2), _value),
        "tool_call_id": st.one_of(_id, _value),
        "name": st.one_of(_name, _value),
        "function_call": st.just({"name": "f", "arguments": "{}"}),
        "extra": _value,
    },
)
_tool = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function", "other"]),
            "function": st.fixed_dictionaries(
                {"name": _name}, optional={"parameters": st.one_of(st.just({"type": "object"}), _value)}
            ),
        }
    ),
    _value,
)
_example = st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(_message, max_size=6), _value)},
    optional={
        "tools": st.one_of(st.lists(_tool, max_size=2), _value),
        "parallel_tool_calls": st.booleans(),
        "functions": st.just([]),
    },
)


_clean = st.sampled_from(["hi", "ok", "Straße", "ΣΟΦΙΑ", "東京", "thanks a lot", "order 42"])


@st.composite
def _valid_example(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed conversation (so that shapes are found clean), sometimes with tool calls, now
    and then with personal data or a special token in a text."""
    text = st.one_of(*[_clean] * 6, _text)
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    messages.append({"role": "user", "content": draw(text)})
    example: dict[str, Any] = {"messages": messages}
    if draw(st.booleans()):
        call_id, answer = (
            draw(st.one_of(*[st.sampled_from(["call_1", "abcDEF123", "xyz789ABC"])] * 3, _id)),
            draw(st.one_of(st.just(None), _id)),
        )
        call = {
            "id": call_id,
            "type": "function",
            "function": {
                "name": draw(st.one_of(*[st.just("lookup")] * 3, _name)),
                "arguments": draw(st.one_of(*[st.just('{"a": 1}')] * 3, _args)),
            },
        }
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": answer if answer is not None else call_id,
                "content": draw(text),
            },
        ]
        if draw(st.booleans()):
            example["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": draw(st.one_of(*[st.just("lookup")] * 3, _name)),
                        "parameters": {"type": "object"},
                    },
                }
            ]
    reply: dict[str, Any] = {"role": "assistant", "content": draw(text)}
    if draw(st.booleans()):
        reply["weight"] = draw(st.sampled_from([0, 1, 1, 2]))
    messages.append(reply)
    return example


# Shapes repeat: a pool of examples, drawn from with repeats, the way a real file repeats shapes.
_file = st.lists(st.one_of(_valid_example(), _valid_example(), _example), min_size=1, max_size=12).flatmap(
    lambda pool: st.lists(st.sampled_from(pool), min_size=1, max_size=40)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(examples=_file, provider=st.sampled_from(["openai", "together", "mistral", "cohere", "bedrock"]))
def test_random_files_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, examples: list[dict[str, Any]], provider: str
) -> None:
    path = tmp_path / "random.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))
    fast, slow = both(path, monkeypatch, provider=provider)
    assert fast == slow


@settings(max_examples=300, deadline=None)
@given(st.one_of(_example, _valid_example()))
def test_shape_walk_builds_the_turns_text(example: dict[str, Any]) -> None:
    shape, text = V._shape(example, None)
    assert text == V._turns_text(example)
    if shape is not None:
        hash(shape)


_plain_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "x"]), "content": st.one_of(st.text(max_size=8), _text)}
)  # fmt: skip


@pytest.mark.skipif(T.lane is None, reason="the C extension was not built")
@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.fixed_dictionaries({"messages": st.lists(_plain_message, max_size=6)}),
        st.fixed_dictionaries({"messages": st.lists(st.one_of(_plain_message, _message), max_size=4)}),
        _example,
    )
)
def test_compiled_lane_walks_as_python_does(example: dict[str, Any]) -> None:
    assert T.lane is not None
    walked = T.lane(example)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(V, "lane", None)
        python = V._shape(example, None)
    if walked is not None:
        assert walked == python
        assert type(walked[1]) is str


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_same_records(data: bytes) -> None:
    # Whatever the bytes, the block reader gives what the line reader gives.
    lines = list(L.iter_jsonl_lines(_nl_lines(data)))
    blocks = list(L.iter_jsonl_blocks([data] if data else []))
    assert blocks == lines


def _nl_lines(data: bytes) -> list[bytes]:
    # What reading a file line by line gives: split after each b"\n" only.
    parts = data.split(b"\n")
    out = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_example, st.just("NaN-line"), st.just("")), max_size=8))
def test_json_edge_cases_same_records(items: list[Any]) -> None:
    raw = b"".join(
        (b'{"messages": [{"role": "user", "content": NaN}]}' if i == "NaN-line" else b"" if i == "" else json.dumps(i).encode()) + b"\n"
        for i in items
    )  # fmt: skip
    assert list(L.iter_jsonl_blocks([raw] if raw else [])) == list(L.iter_jsonl_lines(_nl_lines(raw)))


def _tool_example(call_id: str = "call_1", answer: str | None = None, name: str = "lookup",
                  args: str = '{"a": 1}', **top: Any) -> dict[str, Any]:  # fmt: skip
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
    return {
        "messages": [
            {"role": "user", "content": "where is my order?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": answer or call_id, "content": "shipped"},
            {"role": "assistant", "content": "It shipped."},
        ],
        **top,
    }


def _chat(*contents: Any, **message: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": contents[0]}, {"role": "assistant", "content": contents[1], **message}]}  # fmt: skip


_TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}

# (provider, a clean example, one that differs from it only where a check looks)
LOOKALIKES = [
    ("mistral", _tool_example("abcDEF123"), _tool_example("call_1")),  # id pattern
    ("openai", _tool_example("call_1"), _tool_example("call_1", answer="call_2")),  # pairing
    ("openai", _tool_example(), _tool_example(args="{not json")),
    ("openai", _tool_example(), _tool_example(name="bad name")),
    ("openai", _tool_example(tools=[_TOOL]), _tool_example(tools=[{**_TOOL, "type": "other"}])),
    (
        "openai",
        _tool_example(tools=[_TOOL]),
        _tool_example(tools=[{"type": "function", "function": {"name": "bad name"}}]),
    ),
    (
        "openai",
        _tool_example(tools=[_TOOL]),
        _tool_example(
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]
        ),
    ),
    ("openai", _chat("hi", "ok", weight=1), _chat("hi", "ok", weight=2)),
    (
        "openai",
        _chat("hi", "ok", weight=1),
        {"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "ok", "weight": 1}]},
    ),
    ("openai", _chat("hi", "ok", weight=1), _chat("hi", "ok", weight=0)),
    ("openai", _chat("hi", "ok"), _chat("hi", "  ")),
    ("openai", _chat("hi", "ok"), _chat("hi", "ok", refusal=None, extra=1)),
    ("openai", _chat("hi", "ok"), _chat("mail me at jo@example.com", "ok")),
    ("openai", _chat("hi", "ok"), _chat("hi <|im_start|> there", "ok")),
    ("openai", _chat("hi", "ok"), _chat("call 415 555 0134", "ok")),
    ("openai", _chat("hi", "ok"), {**_chat("hi", "ok"), "extra": True}),
    (
        "openai",
        _tool_example(),
        {
            "messages": [
                *_tool_example()["messages"][:2],
                {"role": "tool", "content": "x"},
                _tool_example()["messages"][3],
            ]
        },
    ),
]


@pytest.mark.parametrize(("provider", "clean", "other"), LOOKALIKES)
def test_lookalike_after_a_clean_example(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    clean: dict[str, Any],
    other: dict[str, Any],
) -> None:
    """A clean example, then one like it but for what one check looks at: the second is reported."""
    path = tmp_path / "pair.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [clean, clean, other, clean]))
    fast, slow = both(path, monkeypatch, provider=provider)
    assert fast == slow
    clean_only = tmp_path / "clean.jsonl"
    clean_only.write_text(json.dumps(clean) + "\n")
    first = validate(clean_only, provider=provider, counter=WordCounter())
    assert [i.code for i in first.issues if i.line is not None] == [], "the clean example is not clean"
    assert {i["line"] for i in json.loads(fast)["issues"]} >= {3}, "the look-alike was not reported"
