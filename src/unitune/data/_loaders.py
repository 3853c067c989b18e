"""Streaming readers: any supported input → records in the canonical (OpenAI) dict shape, with lines.

A record is `(line, data, problem)`: `data` is a dict in OpenAI chat (`{"messages": ...}`) or DPO
(`{"input": ..., "preferred_output": ..., "non_preferred_output": ...}`) shape, or None when the line
could not be read, in which case `problem` says why (code, message, column). Nothing here holds more
than one block of a file (about a MiB, see `iter_jsonl_blocks`) at a time.

Over ~700 lines on purpose: the shape adapters that bring every accepted format (ShareGPT, Alpaca,
prompt/completion, Bedrock's two, Cohere's, Gemini's two, TRL preference pairs, legacy function calls)
to the canonical dict, and the streaming JSONL/gzip/CSV readers that feed them, share the record type and
the line/column bookkeeping.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

__all__ = [
    "FORMATS", "Format", "JsonlFile", "Problem", "Record", "detect_format", "normalize", "read_csv", "read_jsonl",
]  # fmt: skip

Format = Literal[
    "auto", "chat", "preference", "prompt_completion", "sharegpt", "alpaca", "text",
    "bedrock_conversation", "bedrock_claude", "cohere", "trl_preference", "gemini", "gemini_preference",
]  # fmt: skip
FORMATS: tuple[str, ...] = (
    "chat", "preference", "prompt_completion", "sharegpt", "alpaca", "text",
    "bedrock_conversation", "bedrock_claude", "cohere", "trl_preference", "gemini", "gemini_preference",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str
    column: int | None = None


@dataclass(slots=True)
class Record:
    line: int
    data: dict[str, Any] | None
    problem: Problem | None = None
    format: str | None = None
    size: int = 0  # bytes of the source line
    bom: bool = False  # the line began with a UTF-8 byte-order mark (skipped)


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading, transparently un-gzipping it (by magic number, not by name)."""
    fh = path.open("rb")
    magic = fh.read(2)
    fh.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


#: The keys each kind of example is made of; any other is the source's own (an id, a language, ...),
#: which `validate` tallies, `Dataset` keeps in `extra` and no wire file holds.
OWN_KEYS: dict[str, frozenset[str]] = {
    "chat": frozenset({"messages", "tools", "parallel_tool_calls", "functions"}),
    "preference": frozenset({"input", "preferred_output", "non_preferred_output"}),
    "text": frozenset({"text"}),
}
#: The message keys the canonical `Message` carries; any other is left out of every wire file.
MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "weight"})
#: An image Together takes: a base64 data URL of a JPEG, PNG or WebP.
DATA_URL_IMAGE = re.compile(r"data:image/(jpeg|png|webp);base64,")
_KINDS = {
    "preference": "preference",
    "trl_preference": "preference",
    "gemini_preference": "preference",
    "text": "text",
}


def kind_of(fmt: str | None) -> str:
    """The kind of example a record format holds: "chat", "preference" or "text"."""
    return _KINDS.get(fmt or "", "chat")


_COHERE_ROLES = frozenset({"System", "User", "Chatbot"})
#: Conversation formats one file may mix line by line: a Bedrock line has `system` only where it has a
#: system prompt (and `schemaVersion` is optional), so its lines without one read as plain chat.
CHAT_FORMATS = frozenset({"chat", "bedrock_conversation", "bedrock_claude", "cohere"})


def _is_block(content: Any) -> bool:
    """A Bedrock Converse content list: blocks keyed by kind ({"text": ...}), not OpenAI's typed parts."""
    first = content[0] if isinstance(content, list) and content else None
    return isinstance(first, dict) and "type" not in first and bool(first.keys() & {"text", "image", "video"})


def detect_format(obj: Mapping[str, Any]) -> str | None:
    """The format one JSON object is in, judged by its keys; None if it matches none.

    Every wire format unitune writes reads back: Bedrock's conversation (`schemaVersion`, a `system`
    list of text blocks) and Claude (`system` string) formats, Cohere's System/User/Chatbot roles,
    Vertex AI's Gemini `contents` (with `completions`: a preference pair), TRL's prompt/chosen/rejected
    pairs and Together's plain `{"text": ...}`.
    """
    if "messages" in obj:
        system = obj.get("system")
        if "schemaVersion" in obj or isinstance(system, list):
            return "bedrock_conversation"
        if isinstance(system, str):
            return "bedrock_claude"
        messages = obj["messages"]
        first = messages[0] if isinstance(messages, list) and messages else None
        if isinstance(first, dict):
            role = first.get("role")
            if isinstance(role, str) and role in _COHERE_ROLES:
                return "cohere"
            if _is_block(first.get("content")):
                return "bedrock_conversation"
        return "chat"
    if "contents" in obj:
        return "gemini_preference" if "completions" in obj else "gemini"
    if "preferred_output" in obj or "non_preferred_output" in obj:
        return "preference"
    if "chosen" in obj and "rejected" in obj:
        return "trl_preference"
    if "conversations" in obj:
        return "sharegpt"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if "prompt" in obj and "completion" in obj:
        return "prompt_completion"
    if "text" in obj:
        return "text"
    return None


_SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
    "model": "assistant", "bard": "assistant", "bing": "assistant", "system": "system",
    "tool": "tool", "observation": "tool", "function_response": "tool",
}  # fmt: skip


def _from_sharegpt(obj: Mapping[str, Any]) -> dict[str, Any]:
    turns = obj.get("conversations")
    if not isinstance(turns, list):
        return {"messages": turns}  # the chat checks report the bad shape
    messages: list[Any] = []
    if isinstance(obj.get("system"), str) and obj["system"]:
        messages.append({"role": "system", "content": obj["system"]})
    for turn in turns:
        if isinstance(turn, dict) and "from" in turn:
            role = _SHAREGPT_ROLES.get(str(turn["from"]).lower(), str(turn["from"]))
            messages.append({"role": role, "content": turn.get("value")})
        else:
            messages.append(turn)
    out: dict[str, Any] = {**_own(obj, "conversations", "system"), "messages": messages}
    return out


def _from_alpaca(obj: Mapping[str, Any]) -> dict[str, Any]:
    instruction = obj.get("instruction")
    extra = obj.get("input")
    prompt = instruction
    if isinstance(instruction, str) and isinstance(extra, str) and extra.strip():
        prompt = f"{instruction}\n\n{extra}"
    messages: list[dict[str, Any]] = []
    if isinstance(obj.get("system"), str) and obj["system"]:
        messages.append({"role": "system", "content": obj["system"]})
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": obj.get("output")}]
    return {**_own(obj, "instruction", "input", "output", "system"), "messages": messages}


def _from_prompt_completion(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_own(obj, "prompt", "completion"),
        "messages": [
            {"role": "user", "content": obj.get("prompt")},
            {"role": "assistant", "content": obj.get("completion")},
        ],
    }


def _own(obj: Mapping[str, Any], *theirs: str) -> dict[str, Any]:
    """The source's own keys beside a format's.

    The source's own keys beside a format's (an id, a language): carried into the chat form, where
    `validate` reports them once and they stay out of every wire file.
    """
    return {k: v for k, v in obj.items() if k not in theirs and k != "messages"}


def _blocks_text(blocks: Any) -> Any:
    """Bedrock Converse content blocks as canonical content.

    One text block is its string; several, or images (S3 locations), a list of OpenAI-style parts.
    """
    if not isinstance(blocks, list):
        return blocks  # the chat checks report the bad shape
    parts: list[Any] = []
    for block in blocks:
        if isinstance(block, dict) and isinstance(block.get("text"), str) and len(block) == 1:
            parts.append({"type": "text", "text": block["text"]})
        elif isinstance(block, dict) and isinstance(block.get("image"), dict):
            source = block["image"].get("source")
            location = source.get("s3Location") if isinstance(source, dict) else None
            uri = location.get("uri") if isinstance(location, dict) else None
            parts.append({"type": "image_url", "image_url": {"url": uri}})
        else:
            parts.append(block)
    if len(parts) == 1 and isinstance(parts[0], dict) and parts[0].get("type") == "text":
        return parts[0]["text"]
    return parts


def _from_bedrock_conversation(obj: Mapping[str, Any]) -> dict[str, Any]:
    messages: list[Any] = []
    system = obj.get("system")
    if isinstance(system, list) and system:
        texts = [b.get("text") if isinstance(b, dict) else b for b in system]
        strings = [t for t in texts if isinstance(t, str)]
        if len(strings) == len(texts):
            messages.append({"role": "system", "content": "\n\n".join(strings)})
        else:
            messages.append({"role": "system", "content": system})  # the chat checks report it
    turns = obj.get("messages")
    if not isinstance(turns, list):
        return {**_own(obj, "schemaVersion", "system"), "messages": turns}
    for turn in turns:
        if isinstance(turn, dict) and "content" in turn:
            turn = {**turn, "content": _blocks_text(turn["content"])}
        messages.append(turn)
    return {**_own(obj, "schemaVersion", "system"), "messages": messages}


def _from_bedrock_claude(obj: Mapping[str, Any]) -> dict[str, Any]:
    turns = obj.get("messages")
    if not isinstance(turns, list):
        return {**_own(obj, "system"), "messages": turns}
    system = obj.get("system")
    lead = [{"role": "system", "content": system}] if isinstance(system, str) and system else []
    return {**_own(obj, "system"), "messages": [*lead, *turns]}


# Vertex AI's Gemini tuning lines (src/unitune/data/formats/gemini.py has the sources): `contents` of
# {"role": "user" | "model", "parts": [...]}, an optional system instruction (spelled `systemInstruction`
# on the supervised page, `system_instruction` on the preference page: both are read), and for a
# preference pair `completions`, one scored 1 (preferred) and one scored 0.
_GEMINI_KEYS = ("contents", "systemInstruction", "system_instruction", "completions")
_GEMINI_TO_ROLE = {"user": "user", "model": "assistant"}


def _gemini_part(part: Any) -> Any:
    """One Gemini part as an OpenAI-style content part.

    Text, or an image from `fileData` (its URI) or `inlineData` (a base64 data URL); anything else (a
    function call, audio) as it is, for the chat checks to report.
    """
    if not isinstance(part, dict):
        return part
    if isinstance(part.get("text"), str) and len(part) == 1:
        return {"type": "text", "text": part["text"]}
    data = part.get("fileData") or part.get("inlineData")
    mime = data.get("mimeType") if isinstance(data, dict) else None
    if len(part) == 1 and isinstance(mime, str) and mime.startswith("image/"):
        assert isinstance(data, dict)
        url = data.get("fileUri") if "fileData" in part else f"data:{mime};base64,{data.get('data')}"
        return {"type": "image_url", "image_url": {"url": url}}
    return part


def _gemini_content(parts: Any) -> Any:
    """Gemini parts as canonical content: one text part is its string; several, or images, a list."""
    if not isinstance(parts, list):
        return parts  # the chat checks report the bad shape
    out = [_gemini_part(p) for p in parts]
    if len(out) == 1 and isinstance(out[0], dict) and out[0].get("type") == "text":
        return out[0]["text"]
    return out


def _gemini_turn(turn: Any) -> Any:
    if not isinstance(turn, dict):
        return turn
    out = {k: v for k, v in turn.items() if k not in ("role", "parts")}
    if "role" in turn:
        role = turn["role"]
        out["role"] = _GEMINI_TO_ROLE.get(role, role) if isinstance(role, str) else role
    if "parts" in turn:
        out["content"] = _gemini_content(turn["parts"])
    return out


def _texts(parts: Any) -> list[str] | None:
    """The texts of a list of text-only parts; None if `parts` is anything else."""
    if not isinstance(parts, list):
        return None
    texts = [
        p["text"] for p in parts if isinstance(p, dict) and len(p) == 1 and isinstance(p.get("text"), str)
    ]
    return texts if len(texts) == len(parts) else None


def _gemini_messages(obj: Mapping[str, Any]) -> Any:
    """Gemini's system instruction and `contents` as canonical messages.

    The system instruction and `contents` as canonical messages (or `contents` as it is when it is
    not a list, for the chat checks to report).
    """
    turns = obj.get("contents")
    if not isinstance(turns, list):
        return turns
    system = obj.get("systemInstruction", obj.get("system_instruction"))
    lead: list[Any] = []
    if isinstance(system, str) and system:
        lead = [{"role": "system", "content": system}]
    elif isinstance(system, dict):
        parts = system.get("parts")
        texts = _texts(parts)
        # Text parts joined as the writer joins them; no parts, or other parts, for the chat checks.
        content = "\n\n".join(texts) if texts is not None else _gemini_content(parts)
        lead = [{"role": "system", "content": content}]
    return [*lead, *(_gemini_turn(t) for t in turns)]


def _gemini_tools(tools: Any) -> Any:
    """Gemini's `tools` ({"functionDeclarations": [...]}) as OpenAI function tools; others as they are."""
    if not isinstance(tools, list):
        return tools
    out: list[Any] = []
    for tool in tools:
        declared = tool.get("functionDeclarations") if isinstance(tool, dict) else None
        if isinstance(declared, list) and len(tool) == 1:
            out += [{"type": "function", "function": d} for d in declared]
        else:
            out.append(tool)
    return out


def _from_gemini(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {**_own(obj, *_GEMINI_KEYS), "messages": _gemini_messages(obj)}
    if "tools" in obj:
        out["tools"] = _gemini_tools(obj["tools"])
    return out


def _from_gemini_preference(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Gemini preference pair: the completion scored 1 is preferred, the one scored 0 not.

    Anything but exactly one of each is kept as the list it is, which the preference checks report.
    """
    completions = obj.get("completions")
    chosen: dict[Any, list[Any]] = {}
    for c in completions if isinstance(completions, list) else []:
        score = c.get("score") if isinstance(c, dict) else None
        if isinstance(score, (int, float)) and not isinstance(score, bool) and score in (0, 1):
            chosen.setdefault(int(score), []).append(_gemini_turn(c.get("completion")))
    whole = (
        isinstance(completions, list)
        and len(completions) == 2
        and [len(chosen.get(s, [])) for s in (1, 0)] == [1, 1]
    )
    return {
        **_own(obj, *_GEMINI_KEYS),
        "input": {"messages": _gemini_messages(obj)},
        "preferred_output": chosen[1] if whole else completions,
        "non_preferred_output": chosen[0] if whole else completions,
    }


_COHERE_TO_ROLE = {"System": "system", "User": "user", "Chatbot": "assistant"}


def _from_cohere(obj: Mapping[str, Any]) -> dict[str, Any]:
    turns = obj.get("messages")
    if not isinstance(turns, list):
        return {**_own(obj), "messages": turns}
    return {
        **_own(obj),
        "messages": [
            {**t, "role": _COHERE_TO_ROLE.get(str(t.get("role")), t.get("role"))}
            if isinstance(t, dict)
            else t
            for t in turns
        ],
    }


def _from_trl_preference(obj: Mapping[str, Any]) -> dict[str, Any]:
    prompt = obj.get("prompt")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]

    def output(value: Any) -> Any:
        if isinstance(value, str):
            return [{"role": "assistant", "content": value}]
        return value

    return {
        "input": {"messages": prompt},
        "preferred_output": output(obj.get("chosen")),
        "non_preferred_output": output(obj.get("rejected")),
    }


_NORMALIZERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "sharegpt": _from_sharegpt,
    "alpaca": _from_alpaca,
    "prompt_completion": _from_prompt_completion,
    "bedrock_conversation": _from_bedrock_conversation,
    "bedrock_claude": _from_bedrock_claude,
    "cohere": _from_cohere,
    "trl_preference": _from_trl_preference,
    "gemini": _from_gemini,
    "gemini_preference": _from_gemini_preference,
}


def normalize(obj: dict[str, Any], fmt: str) -> dict[str, Any]:
    """Bring an object in format `fmt` to the canonical chat/preference shape (chat is returned as is)."""
    convert = _NORMALIZERS.get(fmt)
    return convert(obj) if convert is not None else obj


#: A JSON escape of a UTF-16 surrogate (\ud800-\udfff): the only way a line of valid UTF-8 parses to
#: text that is not valid Unicode. The bytes are searched for it first (cheap, and almost never found:
#: msgspec's block reader refuses lone surrogates, so only such blocks come here), and only a line that
#: has one has its strings checked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: A run of backslashes then `u` and a surrogate's 4 hex digits, for the column of the lone one.
_SURROGATE_TEXT = re.compile(r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")
_LOW_SURROGATE = re.compile(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def valid_unicode(value: Any) -> bool:
    """Whether every string in `value` can be written as UTF-8.

    Whether every string in `value` (a JSON value: dict keys too, and tuples) can be written as
    UTF-8, i.e. holds no lone UTF-16 surrogate. Iterative, so deep nesting cannot overflow the stack.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return True


def surrogate_problem(text: str | None = None) -> Problem:
    """The `invalid_unicode` problem of a line (its JSON `text`, for the column) or of an object."""
    column = None
    escape = "\\ud800-\\udfff"
    pos = 0
    while text is not None and (m := _SURROGATE_TEXT.search(text, pos)) is not None:
        pos = m.end()
        if len(m.group(1)) % 2 == 0:
            continue  # an escaped backslash, then the letters "u" and "d8..": text, not an escape
        if m.group(2)[1] in "89abAB" and _LOW_SURROGATE.match(text, pos):
            pos += 6  # a high surrogate and its low one: a whole character (an emoji)
            continue
        column, escape = m.start(2) - 1, "\\u" + m.group(2).lower()
        break
    return Problem(
        "invalid_unicode",
        f"text that is not valid Unicode: a lone UTF-16 surrogate ({escape}, often half of an emoji cut in "
        "two), which no UTF-8 file can hold; remove it or write the whole character",
        column,
    )


def _parse_line(raw: bytes, line: int, fmt: str | None, *, bom: bool = False) -> tuple[Record, str | None]:
    """One JSONL line → a record; returns the format seen (to pin it for the lines after).

    `bom`: the line is the first of the file, where a UTF-8 byte-order mark is skipped.
    """
    size = len(raw)
    if bom and raw.startswith(_BOM):
        raw = raw[3:]
    try:
        # Without the line's end, so that an error at the end (a truncated line) is reported in
        # this line's last column, not in column 1 of the "next" one.
        text = raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError as e:
        problem = Problem("invalid_utf8", f"invalid UTF-8 byte {raw[e.start]:#04x}; save the file as UTF-8",
                          e.start + 1)  # fmt: skip
        return Record(line, None, problem, size=size), fmt
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return Record(
            line, None, Problem("invalid_json", f"not valid JSON: {e.msg}", e.colno), size=size
        ), fmt
    except RecursionError:
        problem = Problem(
            "invalid_json", "not valid JSON here: nested too deeply; flatten the line's arrays and objects", 1
        )
        return Record(line, None, problem, size=size), fmt
    if _SURROGATE_ESCAPE.search(raw) is not None and not valid_unicode(obj):
        return Record(line, None, surrogate_problem(text), size=size), fmt
    if not isinstance(obj, dict):
        problem = Problem("not_an_object", f"each line must be a JSON object, got {type(obj).__name__}", 1)
        return Record(line, None, problem, size=size), fmt
    seen = detect_format(obj)
    if seen is None:
        keys = ", ".join(sorted(obj)[:6]) or "no keys"
        problem = Problem(
            "unknown_format",
            f"cannot tell the format from keys ({keys}); expected messages, prompt/completion, "
            "conversations, instruction/output, text or input/preferred_output/non_preferred_output",
            1,
        )
        return Record(line, None, problem, size=size), fmt
    if fmt is not None and seen != fmt and not (seen in CHAT_FORMATS and fmt in CHAT_FORMATS):
        problem = Problem(
            "mixed_formats", f"this line is {seen} but the file is {fmt}; use one format per file", 1
        )
        return Record(line, None, problem, size=size), fmt
    data = normalize(obj, seen) if seen in _NORMALIZERS else obj
    return Record(line, data, None, seen, size), seen


#: How much of a file `iter_jsonl_blocks` decodes at once (rounded up to a whole line).
BLOCK_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
_decode_lines = msgspec.json.Decoder().decode_lines


def read_blocks(fh: IO[bytes], limit: int | None = None) -> Iterator[bytes]:
    """Read `fh` in blocks of whole lines.

    `fh` in blocks of whole lines, about `BLOCK_BYTES` each (only the last may lack its newline);
    at most `limit` bytes in all, which must end at a line end or at the end of the file.
    """
    if isinstance(fh, gzip.GzipFile):
        yield from _gzip_blocks(fh)
        return
    left = limit
    while left is None or left > 0:
        block = fh.read(BLOCK_BYTES if left is None else min(BLOCK_BYTES, left))
        if not block:
            return
        if not block.endswith(b"\n") and (left is None or len(block) < left):
            block += fh.readline() if left is None else fh.readline(left - len(block))
        if left is not None:
            left -= len(block)
        yield block


def _gzip_blocks(fh: gzip.GzipFile) -> Iterator[bytes]:
    # Line by line, so that the lines before corrupt or truncated data still arrive (the error
    # follows them): `read(n)` would take them down with it.
    lines: list[bytes] = []
    size = 0
    it = iter(fh)
    while True:
        try:
            raw = next(it)
        except StopIteration:
            break
        except Exception:
            if lines:
                yield b"".join(lines)
            raise
        lines.append(raw)
        size += len(raw)
        if size >= BLOCK_BYTES:
            yield b"".join(lines)
            lines.clear()
            size = 0
    if lines:
        yield b"".join(lines)


def _chat_block(block: bytes, n_lines: int) -> list[Any] | None:
    """The objects of a block of `n_lines` lines if each line is one chat object, else None.

    msgspec parses 1.5-2x faster than `json.loads` line by line, and gives the same objects wherever
    it succeeds (tests/test_loaders_blocks.py); where it refuses a line `json.loads` might accept
    (NaN, a lone surrogate, 1e400) or the block holds anything else, the caller goes line by line.
    """
    try:
        objs = _decode_lines(block)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    # A blank line yields no object: then the numbering would be off. A line in another format that
    # also has "messages" (Bedrock's, Cohere's) is read line by line, where it is normalised.
    if len(objs) != n_lines or not all(map(_plain_chat, objs)):
        return None
    return objs


def _plain_chat(o: Any) -> bool:
    """Whether `o` is plain chat, for the block reader.

    `detect_format(o) == "chat"`, for the block reader (what other formats with "messages" have
    that plain chat has not: a `system`, a `schemaVersion`, Cohere's roles, Converse content blocks).
    """
    if type(o) is not dict or "messages" not in o or "system" in o or "schemaVersion" in o:
        return False
    messages = o["messages"]
    first = messages[0] if type(messages) is list and messages else None
    if type(first) is not dict:
        return True
    role = first.get("role")
    if type(role) is str and role in _COHERE_ROLES:
        return False
    content = first.get("content")
    return type(content) is not list or not _is_block(content)


def iter_jsonl_blocks(
    blocks: Iterable[bytes], *, fmt: Format | str = "auto", file_start: bool = True
) -> Iterator[Record]:
    """The records `iter_jsonl_lines` makes of the same bytes, given in blocks of whole lines.

    A block whose lines are all chat objects (the common case, while the format is chat) is
    decoded in one call; any other block line by line, exactly as `iter_jsonl_lines` does.
    """
    pinned: str | None = None if fmt == "auto" else fmt
    line = 0
    for block in blocks:
        lines = block.split(b"\n")
        if lines[-1]:
            sizes = [len(raw) + 1 for raw in lines]
            sizes[-1] -= 1
        else:
            lines.pop()
            sizes = [len(raw) + 1 for raw in lines]
        objs = None
        if pinned in (None, "chat") and not (file_start and line == 0 and block.startswith(_BOM)):
            objs = _chat_block(block, len(lines))
        if objs is not None:
            pinned = "chat"
            for obj, size in zip(objs, sizes, strict=True):
                line += 1
                yield Record(line, obj, None, "chat", size)
            continue
        # Line by line, each with its newline (as a file iterator gives it).
        raws = [raw + b"\n" if size > len(raw) else raw for raw, size in zip(lines, sizes, strict=True)]
        pinned = yield from _line_records(raws, pinned, line, file_start)
        line += len(raws)


def _line_records(
    lines: Iterable[bytes], pinned: str | None, line: int, file_start: bool
) -> Generator[Record, None, str | None]:
    """Records of JSONL byte lines numbered from `line + 1`; returns the format pinned after them."""
    for raw in lines:
        line += 1
        first = line == 1 and file_start
        bom = first and raw.startswith(_BOM)
        if not (raw[3:] if bom else raw).strip():
            yield Record(line, None, Problem("blank_line", "blank line", 1), size=len(raw), bom=bom)
            continue
        record, seen = _parse_line(raw, line, pinned, bom=first)
        record.bom = bom
        pinned = pinned or seen
        yield record
    return pinned


def iter_jsonl_lines(
    lines: Iterable[bytes], *, fmt: Format | str = "auto", file_start: bool = True
) -> Iterator[Record]:
    """Records from JSONL byte lines. Blank lines yield a `blank_line` problem with data None.

    `file_start=False` reads lines from the middle of a file (a chunk): numbering still starts at 1,
    but the first line is not the file's, so no byte-order mark is skipped there.
    """
    yield from _line_records(lines, None if fmt == "auto" else fmt, 0, file_start)


class JsonlFile(Iterator[Record]):
    """What `read_jsonl` returns: the records of a JSONL file, read lazily on first use.

    It also says which file and format it reads (`path`, `fmt`), so `validate()` can split a large
    plain file into byte ranges for worker processes instead of reading it through this iterator.
    """

    def __init__(self, path: Path, fmt: Format) -> None:
        self.path = path
        self.fmt = fmt
        self._it: Iterator[Record] | None = None

    def __iter__(self) -> JsonlFile:
        return self

    def __next__(self) -> Record:
        if self._it is None:
            self._it = _read_jsonl(self.path, self.fmt)
        return next(self._it)

    def close(self) -> None:
        """Close the file if reading started (as closing the generator it wraps would)."""
        if self._it is not None:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()


def read_jsonl(path: Path, *, fmt: Format = "auto") -> JsonlFile:
    """Stream a JSONL file (optionally gzipped).

    Corrupt gzip data ends the stream with an `invalid_gzip` record rather than an exception, so
    validation still reports everything before it.
    """
    return JsonlFile(path, fmt)


def _read_jsonl(path: Path, fmt: Format) -> Iterator[Record]:
    import zlib

    line = 0
    with open_binary(path) as fh:
        try:
            for record in iter_jsonl_blocks(read_blocks(fh), fmt=fmt):
                line = record.line
                yield record
        except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            yield Record(
                line + 1, None, Problem("invalid_gzip", f"the gzip data is corrupt or truncated ({e})")
            )


def is_gzip(path: Path) -> bool:
    """Whether `path` starts with the gzip magic number (what `open_binary` decompresses)."""
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def line_boundaries(path: Path, size: int, chunk: int) -> list[tuple[int, int]]:
    """Split a plain file into byte ranges of about `chunk` bytes, each starting at a line start."""
    bounds = [0]
    with path.open("rb") as fh:
        while bounds[-1] + chunk < size:
            fh.seek(bounds[-1] + chunk - 1)
            fh.readline()  # to the end of the line that straddles the cut (or is cut right after)
            at = fh.tell()
            if at >= size:
                break
            bounds.append(at)
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def read_jsonl_range(path: Path, start: int, end: int, *, fmt: str) -> Iterator[Record]:
    """The records of bytes [start, end) of a plain JSONL file, with lines numbered from 1 there.

    `start` and `end` are line starts (see `line_boundaries`); `fmt` is the format pinned for the
    whole file (by its first readable line, or given), so each range checks against the same one.
    """
    with path.open("rb") as fh:
        fh.seek(start)
        yield from iter_jsonl_blocks(read_blocks(fh, end - start), fmt=fmt, file_start=start == 0)


def read_csv(
    path: Path, *, prompt: str, completion: str, system: str | None = None, encoding: str = "utf-8"
) -> Iterator[Record]:
    """Stream a CSV file with a header, mapping the named columns to a user/assistant exchange."""
    with open_binary(path) as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in (prompt, completion, system) if c is not None and c not in header]
        if missing:
            yield Record(
                1, None, Problem("missing_column", f"no column {missing[0]!r}; columns are {header}")
            )
            return
        try:
            for row in reader:
                messages = []
                if system is not None and row.get(system):
                    messages.append({"role": "system", "content": row[system]})
                messages += [
                    {"role": "user", "content": row.get(prompt)},
                    {"role": "assistant", "content": row.get(completion)},
                ]
                yield Record(reader.line_num, {"messages": messages}, None, "chat")
        except UnicodeDecodeError as e:
            yield Record(reader.line_num + 1, None, Problem("invalid_utf8", f"invalid UTF-8: {e.reason}"))
        except csv.Error as e:
            yield Record(reader.line_num, None, Problem("invalid_csv", str(e)))


def iter_objects(items: Iterable[Any], *, fmt: Format = "auto") -> Iterator[Record]:
    """Records from in-memory objects (dicts, or unitune examples); `line` is the 1-based index."""
    from pydantic import BaseModel

    pinned: str | None = None if fmt == "auto" else fmt
    for line, item in enumerate(items, 1):
        if isinstance(item, BaseModel):
            # An example's own keys (`extra`) go back beside the format's, as in the file it came from.
            obj = {
                **item.model_dump(exclude_none=True, exclude={"line", "extra"}),
                **(getattr(item, "extra", None) or {}),
            }
        else:
            obj = item
        if isinstance(obj, dict) and "preferred" in obj and "input" in obj:
            pair = dict(obj)  # a PreferenceExample (its own keys, from `extra`, stay at the top)
            preferred, rejected = pair.pop("preferred"), pair.pop("non_preferred")
            asked = {"messages": pair.pop("input")}
            for key in ("tools", "parallel_tool_calls"):
                if key in pair:
                    asked[key] = pair.pop(key)
            obj = {
                **pair,
                "input": asked,
                "preferred_output": [preferred],
                "non_preferred_output": [rejected],
            }
        if not isinstance(obj, dict):
            yield Record(line, None, Problem("not_an_object", f"expected a dict, got {type(obj).__name__}"))
            continue
        if not valid_unicode(obj):
            yield Record(line, None, surrogate_problem())
            continue
        seen = detect_format(obj)
        if seen is None:
            yield Record(
                line, None, Problem("unknown_format", f"cannot tell the format from keys {sorted(obj)}")
            )
            continue
        if pinned is not None and seen != pinned and not (seen in CHAT_FORMATS and pinned in CHAT_FORMATS):
            yield Record(
                line, None, Problem("mixed_formats", f"this item is {seen} but the data is {pinned}")
            )
            continue
        pinned = pinned or seen
        yield Record(line, normalize(obj, seen), None, seen)


def _has_legacy_calls(obj: Mapping[str, Any]) -> bool:
    messages = obj.get("messages")
    return "functions" in obj or (
        isinstance(messages, list)
        and any(
            isinstance(m, dict) and ("function_call" in m or m.get("role") == "function") for m in messages
        )
    )


def from_legacy_functions(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """OpenAI's legacy function calling as tools.

    OpenAI's legacy function calling (`functions`, `function_call`, role `function`) as tools, or
    None when `obj` has none of it. As mistral-finetune's reformat_data does: each call gets an id
    (`fc` and its message's index, 9 letters and digits), and each function message answers the
    earliest unanswered call of its name.
    """
    if not _has_legacy_calls(obj):
        return None
    out = dict(obj)
    functions = out.pop("functions", None)
    if isinstance(functions, list) and "tools" not in out:
        out["tools"] = [{"type": "function", "function": f} for f in functions]
    messages = obj.get("messages")
    if not isinstance(messages, list):
        return out
    waiting: dict[Any, list[str]] = {}
    converted: list[Any] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            converted.append(m)
            continue
        if "function_call" in m:
            m = {k: v for k, v in m.items() if k != "function_call"}
            call = obj["messages"][i]["function_call"]
            call_id = f"fc{i:07d}"
            name = call.get("name") if isinstance(call, dict) else None
            waiting.setdefault(name if isinstance(name, str) else None, []).append(call_id)
            earlier = m.get("tool_calls")
            calls: list[Any] = earlier if isinstance(earlier, list) else []
            m["tool_calls"] = [*calls, {"id": call_id, "type": "function", "function": call}]
        elif m.get("role") == "function":
            name = m.get("name")
            ids = waiting.get(name if isinstance(name, str) else None)
            m = {**m, "role": "tool", "tool_call_id": ids.pop(0) if ids else f"fc{i:07d}"}
        converted.append(m)
    out["messages"] = converted
    return out


def weight_value(w: Any) -> int | None:
    """A weight as the 0 or 1 it means (true, 1.0 and "1" included), or None when it is neither."""
    if isinstance(w, bool):
        return int(w)
    if isinstance(w, (int, float)) and w in (0, 1):
        return int(w)
    if isinstance(w, str):
        try:
            f = float(w)
        except ValueError:
            return None
        return int(f) if f in (0, 1) else None
    return None
