"""`validate()`: every check in one streaming pass, against the target provider's profile.

Checks work on the raw dicts (not pydantic models) because they run once per line of files that can
be gigabytes long; each problem gets a stable code, a severity, a message that says how to fix it,
and the line (and column where the reader knows it). The severity is the profile's
(`Profile.severity`): an error only where a vendor rule refuses the data and the wire file keeps it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import itertools
import json
import multiprocessing
import os
import pickle
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from unitune.data import _pii
from unitune.data._args import as_date, data_arg, int_arg, optional_str, provider_arg
from unitune.data._checks import CODES
from unitune.data._dataset import Dataset
from unitune.data._loaders import (
    DATA_URL_IMAGE,
    MESSAGE_KEYS,
    OWN_KEYS,
    JsonlFile,
    Record,
    from_legacy_functions,
    is_gzip,
    kind_of,
    line_boundaries,
    read_jsonl,
    read_jsonl_range,
    weight_value,
)
from unitune.data._report import Distribution, Issue, IssueCollector, Severity, Stats, ValidationReport
from unitune.data._textscan_py import F_AT, F_CARD, F_IBAN, F_PHONE, F_SPECIAL, keys, lane, scan
from unitune.data.profiles import ROLES, Profile, get_profile
from unitune.errors import ConfigurationError
from unitune.types import content_text

if TYPE_CHECKING:
    from unitune.catalog import Catalog

__all__ = ["example_keys", "validate"]

DataSource = Dataset | str | os.PathLike[str]

#: The message keys unitune reads (`function_call` as a tool call); any other is tallied and left out of
#: the wire file.
_MESSAGE_KEYS = MESSAGE_KEYS | {"function_call"}
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

SMALL_DATASET = 50
RECOMMENDED_DATASET = 100


def pii_findings(text: str, flags: int | None = None) -> list[tuple[str, str]]:
    """Likely personal data in `text`: (code, what) pairs, one per kind. Heuristic: a warning, never an
    error (see `unitune.data._pii`).

    `flags`: what `scan` found in `text` or in any text that contains it, if known (the patterns
    it rules out are not searched for).
    """
    if flags is None:
        flags = scan(text, "")[1]
    if not flags & _PII_FLAGS:
        return []
    return [(f.code, f.what) for f in _pii.find(text, scan_flags=flags, first_only=True)]


def _blake2b8(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


def _fingerprints(
    exacts: Sequence[str], digest: Callable[[bytes], bytes] = _blake2b8
) -> list[tuple[bytes, bytes]]:
    """(exact, near) keys of examples' turn texts (see `example_keys`), 8 bytes each.

    The near text is the text lower-cased with every run of non-word characters one space
    (`unitune.data._textscan_py.scan`, which gives it in one pass).
    """
    return [(digest(e.encode("utf-8", "surrogatepass")), digest(scan(e, "")[0])) for e in exacts]


def _listed(value: Any) -> list[Any]:
    # Malformed data (split and fix fingerprint lines validate would reject): a non-list has no turns.
    return value if isinstance(value, list) else []


def example_keys(data: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(exact, near) fingerprints of an example: same turns; same words ignoring case and punctuation.

    Blake2b, 8 bytes: `split` ranks examples by the exact one, so it must not change.
    """
    return _fingerprints([_turns_text(data)])[0]


def _turns_text(data: Mapping[str, Any]) -> str:
    """An example's turns as one string: what its exact fingerprint hashes."""
    if "messages" in data:
        turns = _listed(data.get("messages"))
    elif "input" not in data and "text" in data:
        text = data["text"]
        return f"text\x1f{text if isinstance(text, str) else ''}\x1f"
    else:
        inp = data.get("input")
        turns = [
            *(_listed(inp.get("messages")) if isinstance(inp, dict) else []),
            *_listed(data.get("preferred_output")),
            *_listed(data.get("non_preferred_output")),
        ]
    parts = []
    for m in turns:
        if isinstance(m, dict):
            content = m.get("content")
            if type(content) is str:
                text = content
            else:
                text = content_text(content) if not isinstance(content, (int, float)) else ""
            calls = json.dumps(m["tool_calls"], sort_keys=True) if m.get("tool_calls") else ""
            parts.append(f"{m.get('role')}\x1f{text}\x1f{calls}")
    return "\x1e".join(parts)


_PII_FLAGS = F_AT | F_IBAN | F_PHONE | F_CARD
_TEXT_FLAGS = _PII_FLAGS | F_SPECIAL
#: The codes whose findings depend on the text, not on an example's structure (see `_shape`).
_TEXT_CODES = frozenset(
    {"special_token", "reserved_keyword", "pii_email", "pii_card", "pii_iban", "pii_phone", "pii_national_id"}
)
_ABSENT = object()  # in a shape: the key is not there


def _jsonable(value: Any) -> Any:
    """`value` as JSON would give it back, anything JSON cannot write as its `str`."""
    return json.loads(json.dumps(value, default=str))


def _json_ok(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _shape(data: Mapping[str, Any], tool_id: re.Pattern[str] | None) -> tuple[tuple[Any, ...] | None, str]:
    """(shape, turns): everything the structural checks of a chat example read (`_Checker.chat`)
    without its text, and its `_turns_text` (built in the same walk, as that is half the work).

    Two examples of one shape get the same structural findings; so once an example of a shape was
    checked and found clean, the next ones need no checking (most files have a few dozen shapes).
    Each part mirrors the check it stands for: a role as it is, content as absent/blank/text, a
    weight as it is, tool call ids as the order they first appear in (pairing depends only on which
    are equal), names, arguments and tool definitions as valid or not. None where a value has a
    type the shape does not describe: such an example is checked in full.

    The commonest example, {"messages": [...]} of plain {role, content} messages, is walked by the
    compiled scanner (`lane`) when it is built: the same result, ~8x faster.
    """
    if lane is not None:
        walked = lane(data)
        if walked is not None:
            return walked
    messages = data.get("messages")
    if type(messages) is not list:
        return None, _turns_text(data)
    tools = data.get("tools")
    # (Keys beside the format's own are tallied for every example in `_scan`, outside the structural
    # checks, so they are not part of the shape; `parallel_tool_calls` is, as valid or not.)
    shape: list[Any] = [
        type(data.get("parallel_tool_calls", False)) is bool,
        "functions" in data,
        tools is None,
    ]
    if tools is not None:
        if type(tools) is not list:
            return None, _turns_text(data)
        for tool in tools:
            fn = tool.get("function") if type(tool) is dict else None
            if type(fn) is not dict:
                return None, _turns_text(data)
            name, params = fn.get("name"), fn.get("parameters")
            shape.append(
                (
                    tool.get("type") == "function",
                    type(name) is str and _FUNCTION_NAME.match(name) is not None,
                    0
                    if params is None
                    else type(params) is dict and params.get("type", "object") == "object",
                    type(fn.get("description")) is str,
                )
            )
    ids: dict[str, int] = {}
    parts = []
    for m in messages:
        if type(m) is not dict:
            return None, _turns_text(data)
        role = m.get("role")
        content = m.get("content")
        if type(role) is not str or (content is not None and type(content) is not str):
            return None, _turns_text(data)
        if len(m) == 2 and content is not None and role != "tool":
            # The common message, {"role": ..., "content": "..."}: nothing else to look at.
            parts.append(f"{role}\x1f{content}\x1f")
            shape.append((role, 1 if not content or content.isspace() else 2))
            continue
        if "function_call" in m:
            return None, _turns_text(data)
        weight = m.get("weight", _ABSENT)
        if weight is not _ABSENT and type(weight) is not int:
            return None, _turns_text(data)
        calls = m.get("tool_calls")
        call_shapes: tuple[Any, ...] | None = None
        if calls is not None:
            if type(calls) is not list:
                return None, _turns_text(data)
            call_parts = []
            for call in calls:
                fn = call.get("function") if type(call) is dict else None
                call_id = call.get("id") if fn is not None else None
                if type(fn) is not dict or type(call_id) is not str or not call_id:
                    return None, _turns_text(data)
                name, args = fn.get("name"), fn.get("arguments")
                call_parts.append(
                    (
                        ids.setdefault(call_id, len(ids)),
                        tool_id is None or tool_id.match(call_id) is not None,
                        type(name) is str and _FUNCTION_NAME.match(name) is not None,
                        type(args) is str and _json_ok(args),
                    )
                )
            call_shapes = tuple(call_parts)
        answers: int | None = None
        if role == "tool":
            call_id = m.get("tool_call_id")
            answers = ids.setdefault(call_id, len(ids)) if type(call_id) is str and call_id else -1
        parts.append(f"{role}\x1f{content or ''}\x1f{json.dumps(calls, sort_keys=True) if calls else ''}")
        shape.append(
            (
                role,
                0 if content is None else 1 if not content or content.isspace() else 2,
                weight,
                _MESSAGE_KEYS.issuperset(m),
                call_shapes,
                answers,
                type(m.get("name", "")) is str,
            )
        )
    return tuple(shape), "\x1e".join(parts)


#: Shapes remembered per pass, at most (a file of ever-new shapes is simply checked in full).
_MAX_SHAPES = 1 << 16


class _IssueSink(Protocol):
    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None: ...


class _Checker:
    """The per-example checks for one profile; reports into an `IssueCollector` (or a `_Collector`).

    A finding's severity comes from the profile (`Profile.severity`): an error only where a vendor
    rule refuses the data and the wire file keeps it. Keys the format does not take are tallied
    (`extra_keys`, `message_extra_keys`) and reported once for the whole file by `validate`.
    """

    def __init__(self, profile: Profile, issues: _IssueSink) -> None:
        self.p = profile
        self.issues = issues
        self.severity = {code: profile.severity(code) for code in CODES}
        tokens = [t for t in profile.forbidden_tokens if t]
        self.special = re.compile("|".join(re.escape(t) for t in tokens)) if tokens else None
        # Every forbidden token starts with one of these characters ("<" or "["): the scanner flags
        # a text with any of them; a text without any of their first two characters needs no regex.
        self.special_starts = "".join(sorted({t[0] for t in tokens}))
        self.special_prefixes = sorted({t[:2] for t in tokens})
        self.reserved = profile.reserved_keywords
        # Whether the current example's text may hold a special token / personal data at all (see
        # `prescan`); while True, every message is scanned.
        self.scan_special = True
        self.scan_pii = True
        self.flags: int | None = None
        self.tool_id = re.compile(profile.tool_call_id_pattern) if profile.tool_call_id_pattern else None
        self.without_system = 0
        self.without_user = 0
        self.structural = 0  # issues found so far that do not depend on the text (see `_TEXT_CODES`)
        self.message_extra_keys: Counter[str] = Counter()  # unknown message keys: examples with each
        self.message_extra_first: int | None = None

    def add(self, code: str, message: str, line: int) -> None:
        if code not in _TEXT_CODES:
            self.structural += 1
        self.issues.add(code, self.severity[code], message, line=line)

    def listed(self, code: str) -> bool:
        """Whether the profile names a vendor rule for `code` (checks that only some vendors have)."""
        return code in self.p.checks

    def prescan(self, flags: int | None) -> None:
        """Look at the whole example once (`flags`: what `scan` found in all its turns, see
        `_turns_text`; None: unknown).

        Each message's text is part of the whole, so where that can hold no special token or
        personal data, neither can any message: the per-message scans are skipped, with the same
        findings.
        """
        self.flags = flags
        if flags is None:
            self.scan_special = self.scan_pii = True
            return
        self.scan_special = bool(flags & F_SPECIAL)
        self.scan_pii = bool(flags & _PII_FLAGS)

    def text_findings(self, text: str, flags: int) -> bool:
        """Whether the checks of the text (special tokens, reserved keywords, personal data) could
        report anything in an example whose turns are `text` (`flags`: what `scan` found in it).
        False is certain: a finding in one message is a finding in the whole; True may be a finding
        only the whole has (a special token in a tool call's arguments, which are not content)."""
        if flags & F_SPECIAL and self._special_in(text) is not None:
            return True
        if self.reserved and any(k in text for k in self.reserved):
            return True
        return bool(flags & _PII_FLAGS) and bool(pii_findings(text, flags))

    def texts(self, messages: list[dict[str, Any]], line: int) -> None:
        """The text checks alone (`_text`) of a chat example whose structure is known to be clean:
        what `chat` would report for it (`prescan` first)."""
        for i, m in enumerate(messages, 1):
            content = m.get("content")
            # Blank content has nothing to find (and is the structure's business).
            if content and not content.isspace():
                self._text(content, m["role"], f"message {i}", line)

    # -- chat -------------------------------------------------------------------------------------

    def chat(self, data: Mapping[str, Any], line: int) -> list[dict[str, Any]] | None:
        """Check a chat example; the messages if they are well-formed enough to count, else None."""
        legacy = from_legacy_functions(data)
        if legacy is not None:
            if "functions" in data:
                self.add(
                    "deprecated_functions",
                    "'functions' is OpenAI's legacy form of 'tools'; "
                    + (
                        "'tools' is given too, so 'functions' is left out of the wire file"
                        if "tools" in data or not isinstance(data["functions"], list)
                        else "unitune writes it as tools"
                    ),
                    line,
                )
            if legacy.get("messages") is not data.get("messages"):
                self.add(
                    "deprecated_function_call",
                    "'function_call' / role 'function' are OpenAI's legacy tool calls; unitune writes them "
                    "as tool_calls and tool messages",
                    line,
                )
            data = legacy
        tools = data.get("tools")
        if tools is not None:
            self._tools(tools, line)
        if "parallel_tool_calls" in data and not isinstance(data["parallel_tool_calls"], bool):
            self.add(
                "invalid_parallel_tool_calls",
                "parallel_tool_calls must be true or false; it is left out of the wire file",
                line,
            )
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            self.add("missing_messages", "'messages' must be a non-empty list of messages", line)
            return None
        if not self.messages(messages, line, require_assistant=True):
            return None
        return messages

    def messages(self, messages: list[Any], line: int, *, require_assistant: bool) -> bool:
        """Check a message list; False when its structure is too broken for the order checks."""
        p = self.p
        allowed = p.roles
        ok = True
        roles: list[str] = []
        open_calls: dict[str, int] = {}
        # Whether a message's text will be joined to the one before it in the wire file (a second
        # system prompt; a turn merged where the format needs turns to alternate): the join puts a
        # blank line before it, which can make a reserved keyword ("\nHuman:") of its start.
        turn_role: str | None = None
        seen_system = False
        for i, m in enumerate(messages, 1):
            at = f"message {i}"
            if not isinstance(m, dict):
                self.add("message_not_object", f"{at} must be an object with role and content", line)
                ok = False
                continue
            role = m.get("role")
            if role is None:
                self.add("message_missing_role", f"{at} has no 'role'", line)
                ok = False
                continue
            if role not in ROLES:
                self.add(
                    "unrecognized_role",
                    f"{at} has role {role!r}; use system, user, assistant or tool (lower case)",
                    line,
                )
                ok = False
                continue
            if role == "tool" and not p.tools:
                self.add(
                    "tools_unsupported", f"{at} is a tool result: {p.name} cannot train on tool use", line
                )
            elif role not in allowed:
                self.add("role_not_allowed", f"{at}: {p.name} does not take the {role!r} role", line)
            roles.append(role)
            joined = seen_system if role == "system" else (p.no_repeat and role == turn_role)
            if role == "system":
                seen_system = True
            else:
                turn_role = role
            if not _MESSAGE_KEYS.issuperset(m):
                # Tallied for one warning over the file; such examples are never memoised as clean,
                # so every one of them is counted (see `_shape`).
                self.structural += 1
                self.message_extra_keys.update(set(m) - _MESSAGE_KEYS)
                if self.message_extra_first is None:
                    self.message_extra_first = line
            if role == "assistant" and open_calls:
                # The calls before this reply were not all answered (as mistral_common counts them:
                # a reply while responses are still due).
                self.add(
                    "tool_call_unanswered",
                    f"{at}: tool call(s) {', '.join(sorted(open_calls))} have no tool message answering them",
                    line,
                )
                open_calls.clear()
            self._content(m, role, at, line, joined=joined)
            if "name" in m and not isinstance(m["name"], str):
                self.add(
                    "invalid_name", f"{at}: name must be a string; it is left out of the wire file", line
                )
            if "weight" in m:
                self._weight(m, role, at, line)
            if m.get("tool_calls") is not None:
                self._tool_calls(m, role, at, line, open_calls)
            if role == "tool":
                call_id = m.get("tool_call_id")
                if not isinstance(call_id, str) or not call_id:
                    self.add("tool_missing_call_id", f"{at}: a tool message needs 'tool_call_id'", line)
                elif call_id not in open_calls:
                    self.add(
                        "tool_response_unpaired",
                        f"{at} answers tool call {call_id!r}, which no earlier assistant message made",
                        line,
                    )
                    # Counted as the answer to the oldest open call, as mistral_common counts calls
                    # and responses: one mismatch is one finding, not two.
                    if open_calls:
                        del open_calls[next(iter(open_calls))]
                else:
                    del open_calls[call_id]
        if not ok:
            return False
        if self.listed("opening_tool_call"):
            opening = next((m for m in messages if m.get("role") != "system"), None)
            if opening is not None and opening.get("role") == "assistant" and opening.get("tool_calls"):
                # mistral_common skips the first message when it counts calls against responses.
                self.add(
                    "opening_tool_call",
                    f"the conversation opens with a tool call, which {p.name} does not count: its answer "
                    "then has no call; start with the user's message",
                    line,
                )
        self._order(roles, line, require_assistant=require_assistant)
        if require_assistant:
            if (
                p.weights
                and "assistant" in roles
                and not any(
                    m.get("role") == "assistant" and weight_value(m.get("weight", 1)) != 0 for m in messages
                )
            ):
                self.add(
                    "no_trained_turn",
                    "every assistant message has weight 0: nothing in it is trained on",
                    line,
                )
            if "system" not in roles:
                self.without_system += 1
            if "user" not in roles:
                self.without_user += 1
        return True

    def _content(self, m: Mapping[str, Any], role: str, at: str, line: int, *, joined: bool = False) -> None:
        calls = bool(m.get("tool_calls"))
        if "content" not in m or m["content"] is None:
            if not (role == "assistant" and calls):
                if "content" not in m:
                    self.add("missing_content", f"{at} ({role}) has no 'content'", line)
                else:
                    self.add("null_content", f"{at} ({role}) content is null", line)
            return
        content = m["content"]
        kept_images = 0  # images the wire file keeps (an image-only message is not empty)
        if isinstance(content, list):
            for part in content:
                if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
                    self.add(
                        "invalid_content_part",
                        f"{at}: each content part must be {{'type': 'text'|'image_url', ...}}",
                        line,
                    )
                    return
            images = [part for part in content if part["type"] == "image_url"]
            if not self.p.multimodal:
                self.add(
                    "multimodal_not_supported",
                    f"{at}: {self.p.name} takes text only; its text parts are written as one string"
                    + (" and its images left out" if images else ""),
                    line,
                )
            elif images and role != "user":
                self.add(
                    "image_not_user",
                    f"{at}: {self.p.name} takes images in user messages only; the image is left out of "
                    "the wire file, the text kept",
                    line,
                )
            elif images:
                kept_images = self._images(images, at, line)
            text = content_text(content)
        elif isinstance(content, str):
            text = content
        else:
            self.add(
                "content_not_string", f"{at} content must be a string, got {type(content).__name__}", line
            )
            return
        if not text and not calls and not kept_images:
            if role == "assistant":
                self.add("empty_reply", f"{at}: the assistant's content is empty", line)
            elif role == "system":
                self.add("empty_system", f"{at}: the system message is empty", line)
            else:
                self.add("empty_content", f"{at} ({role}) content is empty", line)
            return
        if text.isspace() and not calls:
            self.add("blank_content", f"{at} ({role}) content is only whitespace", line)
            return
        if calls and text and not text.isspace() and self.listed("tool_calls_with_content"):
            self.add(
                "tool_calls_with_content",
                f"{at}: {self.p.name} takes text or tool calls in one message, not both",
                line,
            )
        self._text(text, role, at, line, joined=joined)

    def _images(self, images: list[dict[str, Any]], at: str, line: int) -> int:
        """How many images of a user message the wire file keeps; one warning for those it cannot."""
        form = self.p.images
        if form == "any":
            return len(images)
        kept = 0
        for part in images:
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if form == "data_url" and isinstance(url, str) and DATA_URL_IMAGE.match(url):
                kept += 1
        if kept < len(images):
            need = {
                "data_url": "base64 data URLs (data:image/jpeg|png|webp;base64,...)",
                "none": "images from S3 locations, which unitune does not upload",
            }[form]
            self.add(
                "image_dropped",
                f"{at}: {self.p.name} takes {need}; {len(images) - kept} image(s) left out of the wire "
                "file, the text kept",
                line,
            )
        return kept

    def _special_in(self, text: str) -> re.Match[str] | None:
        """The first forbidden token in `text` (the regex runs only where a token's first two
        characters occur)."""
        if self.special is None or not any(map(text.__contains__, self.special_prefixes)):
            return None
        return self.special.search(text)

    def _text(self, text: str, role: str, at: str, line: int, *, joined: bool = False) -> None:
        found = self._special_in(text) if self.scan_special else None
        if found is not None:
            self.add(
                "special_token",
                f"{at} contains {found.group()!r}, a chat-template control token: the vendor's template "
                "may read it as one; remove or escape it",
                line,
            )
        for keyword in self.reserved:
            if keyword in text or (joined and keyword[0] == "\n" and text.startswith(keyword[1:])):
                self.add(
                    "reserved_keyword",
                    f"{at} contains {keyword!r}"
                    + ("" if keyword in text else " once joined to the message before it")
                    + f", which {self.p.name} reserves for its own prompt format; rephrase it",
                    line,
                )
                break
        # This message's own flags (the scanner is cheap): only the searches its text may need.
        for code, what in pii_findings(text) if self.scan_pii else ():
            self.add(code, f"{at} ({role}) seems to contain {what}; remove personal data", line)

    def _weight(self, m: Mapping[str, Any], role: str, at: str, line: int) -> None:
        w = m.get("weight")
        if not self.p.weights:
            self.add(
                "weight_unsupported",
                f"{at}: {self.p.name} has no per-message weights; the weight is left out of the wire file",
                line,
            )
            return
        if role != "assistant":
            # Whatever its value: the wire file leaves it out (mistral-finetune never reads it).
            self.add(
                "weight_not_assistant",
                f"{at}: weight applies to assistant messages only; it is left out of the wire file",
                line,
            )
            return
        if w is None:
            self.add(
                "weight_not_integer",
                f"{at}: weight null is written as no weight (the message is trained on)",
                line,
            )
            return
        value = weight_value(w)
        if value is None:
            self.add("invalid_weight", f"{at}: weight must be 0 or 1, got {w!r}", line)
        elif type(w) is not int:
            self.add("weight_not_integer", f"{at}: weight {w!r} is written as {value}", line)

    def _tool_calls(
        self, m: Mapping[str, Any], role: str, at: str, line: int, open_calls: dict[str, int]
    ) -> None:
        if role != "assistant":
            self.add("tool_calls_not_assistant", f"{at}: only assistant messages make tool calls", line)
            return
        if not self.p.tools:
            self.add("tools_unsupported", f"{at} calls a tool: {self.p.name} cannot train on tool use", line)
            return
        calls = m.get("tool_calls")
        if not isinstance(calls, list) or not all(isinstance(call, dict) for call in calls):
            self.add("malformed_tool_calls", f"{at}: tool_calls must be a list of tool call objects", line)
            return
        if not calls:
            self.add("invalid_tool_call", f"{at}: tool_calls must be a non-empty list", line)
            return
        for call in calls:
            fn = call.get("function")
            if not isinstance(fn, dict):
                self.add(
                    "invalid_tool_call",
                    f"{at}: each tool call needs id, type 'function' and function {{name, arguments}}",
                    line,
                )
                continue
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                self.add("invalid_tool_call", f"{at}: a tool call has no id", line)
            elif self.tool_id is not None and not self.tool_id.match(call_id):
                self.add(
                    "invalid_tool_call_id",
                    f"{at}: tool call id {call_id!r} does not match {self.p.tool_call_id_pattern}; "
                    "unitune rewrites it (and its tool result's) in the wire file",
                    line,
                )
            name = fn.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                self.add(
                    "invalid_function_name",
                    f"{at}: function name {name!r} must match ^[a-zA-Z0-9_-]{{1,64}}$",
                    line,
                )
            args = fn.get("arguments")
            if "arguments" not in fn:
                self.add("invalid_tool_call", f"{at}: a tool call's function has no 'arguments'", line)
            elif not isinstance(args, str):
                self.add(
                    "invalid_tool_arguments",
                    f"{at}: function arguments must be a JSON string, got {type(args).__name__}",
                    line,
                )
            elif not _json_ok(args):
                self.add("tool_arguments_not_json", f"{at}: function arguments are not valid JSON", line)
            if isinstance(call_id, str) and call_id:
                open_calls[call_id] = line

    def _tools(self, tools: Any, line: int) -> None:
        if not self.p.tools:
            self.add(
                "tools_dropped",
                f"{self.p.name} cannot train with tool definitions; they are left out of the wire file",
                line,
            )
            return
        if not isinstance(tools, list):
            self.add("invalid_tools", "'tools' must be a list of tool definitions", line)
            return
        for i, tool in enumerate(tools, 1):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
                self.add(
                    "invalid_tools", f"tool {i} must be {{'type': 'function', 'function': {{...}}}}", line
                )
                continue
            if not isinstance(fn.get("name"), str) or not _FUNCTION_NAME.match(fn["name"]):
                self.add("invalid_tools", f"tool {i} needs a name matching ^[a-zA-Z0-9_-]{{1,64}}$", line)
            params = fn.get("parameters")
            if params is not None and (
                not isinstance(params, dict) or params.get("type", "object") != "object"
            ):
                self.add("invalid_tools", f"tool {i}: parameters must be a JSON Schema object", line)
            elif params is None and self.p.tool_fields_required:
                self.add("invalid_tools", f"tool {i} has no 'parameters'; {self.p.name} requires them", line)
            if not isinstance(fn.get("description"), str) and self.p.tool_fields_required:
                self.add(
                    "tool_missing_description",
                    f"tool {i} ({fn.get('name')!r}) has no 'description' string; {self.p.name} requires one",
                    line,
                )

    def _order(self, roles: Sequence[str], line: int, *, require_assistant: bool) -> None:
        p = self.p
        systems = [i for i, r in enumerate(roles) if r == "system"]
        if systems and p.system == "none":
            self.add("system_not_allowed", f"{p.name} takes no system message", line)
        elif p.system == "first_only":
            if len(systems) > 1:
                self.add(
                    "multiple_system",
                    f"{len(systems)} system messages; {p.name} takes one" + _wire_says(p, "multiple_system"),
                    line,
                )
            elif systems and systems[0] != 0:
                self.add(
                    "system_not_first",
                    f"the system message is not first; {p.name} takes it at the start"
                    + _wire_says(p, "system_not_first"),
                    line,
                )
        turns = [r for r in roles if r != "system"] if p.system_lifted else list(roles)
        if p.min_messages is not None and len(turns) < p.min_messages:
            self.add(
                "too_few_messages",
                f"{len(turns)} message(s) besides the system prompt; {p.name} needs at least {p.min_messages}",
                line,
            )
        if p.first_roles is not None and turns and turns[0] not in p.first_roles:
            allowed = " or ".join(sorted(p.first_roles))
            self.add(
                "invalid_first_role",
                f"the conversation starts with {turns[0]!r}; {p.name} needs {allowed}",
                line,
            )
        for i in range(1, len(turns) if p.no_repeat or p.transitions is not None else 0):
            prev, cur = turns[i - 1], turns[i]
            if p.no_repeat and prev == cur:
                self.add(
                    "consecutive_roles",
                    f"two {cur!r} messages in a row; {p.name} needs turns to alternate"
                    + _wire_says(p, "consecutive_roles"),
                    line,
                )
                break
            allowed_next = p.transitions.get(prev) if p.transitions is not None else None
            if allowed_next is not None and cur not in allowed_next:
                self.add(
                    "invalid_role_order", f"a {cur!r} message cannot follow a {prev!r} one for {p.name}", line
                )
                break
        if require_assistant:
            if p.requires_user and "assistant" in roles:
                last_reply = len(roles) - 1 - roles[::-1].index("assistant")
                if "user" not in roles[:last_reply]:
                    self.add(
                        "no_user_turn",
                        f"no user message before the reply: {p.name}'s format needs a prompt",
                        line,
                    )
            if "assistant" not in roles:
                self.add("missing_assistant", "no assistant message: nothing to train on", line)
            elif p.last_assistant and turns and turns[-1] != "assistant":
                self.add(
                    "last_not_assistant",
                    f"the last message is {turns[-1]!r}; {p.name} needs the assistant's last"
                    + _wire_says(p, "last_not_assistant"),
                    line,
                )
            if p.max_turns is not None and roles.count("user") > p.max_turns:
                self.add(
                    "too_many_turns",
                    f"{roles.count('user')} user turns; {p.name} trains on single exchanges"
                    + _wire_says(p, "too_many_turns"),
                    line,
                )

    # -- preference -------------------------------------------------------------------------------

    def preference(self, data: Mapping[str, Any], line: int) -> list[dict[str, Any]] | None:
        p = self.p
        if not p.preference:
            self.add("preference_unsupported", f"{p.name} does not train on preference (DPO) pairs", line)
        inp = data.get("input")
        messages = inp.get("messages") if isinstance(inp, dict) else None
        if not isinstance(messages, list) or not messages:
            self.add("invalid_preference_input", "'input' must be {'messages': [...]} with messages", line)
            return None
        if isinstance(inp, dict) and inp.get("tools") is not None:
            self._tools(inp["tools"], line)
        if not self.messages(messages, line, require_assistant=False):
            return None
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "assistant":
            self.add(
                "preference_last_input_assistant",
                "the input ends with the assistant's message; the outputs must answer the user",
                line,
            )
        outputs = []
        for key in ("preferred_output", "non_preferred_output"):
            out = data.get(key)
            if not (isinstance(out, list) and len(out) == 1 and isinstance(out[0], dict)):
                self.add("invalid_preference_output", f"'{key}' must be a list of exactly one message", line)
                return None
            msg = out[0]
            if msg.get("role") != "assistant":
                self.add("invalid_preference_output", f"'{key}' must be an assistant message", line)
                return None
            self._content(msg, "assistant", key, line)
            if "weight" in msg:
                self.add(
                    "weight_unsupported",
                    f"{key}: a weight on a preference output means nothing; it is left out of the wire file",
                    line,
                )
            outputs.append(msg)
        if (content_text(outputs[0].get("content")), outputs[0].get("tool_calls")) == (
            content_text(outputs[1].get("content")),
            outputs[1].get("tool_calls"),
        ):
            self.add(
                "identical_preference",
                "preferred and non-preferred outputs are identical: nothing to learn",
                line,
            )
        return [*messages, outputs[0]]

    # -- plain text -------------------------------------------------------------------------------

    def text(self, data: Mapping[str, Any], line: int) -> list[dict[str, Any]] | None:
        """A plain-text example ({"text": ...}); counted as one assistant message (it is all trained)."""
        if not self.p.text:
            self.add(
                "text_unsupported",
                f"a plain-text example ({{'text': ...}}); {self.p.name} trains on chats: use 'messages'",
                line,
            )
            return None
        value = data.get("text")
        if not isinstance(value, str):
            self.add("content_not_string", f"'text' must be a string, got {type(value).__name__}", line)
            return None
        self._text(value, "text", "text", line)
        return [{"role": "assistant", "content": value}]


def _wire_says(profile: Profile, code: str) -> str:
    """ "; unitune's wire file: <what it does>", where the conversion repairs the problem."""
    check = profile.checks.get(code)
    return f"; unitune's wire file: {check.wire}" if check is not None and check.wire else ""


def validate(
    data: DataSource,
    *,
    provider: str = "openai",
    model: str | None = None,
    method: Literal["sft", "dpo"] | None = None,
    validation: DataSource | None = None,
    token_limit: int | None = None,
    counter: Any = None,
    max_issues: int = 1000,
    workers: int | None = None,
    today: dt.date | str | None = None,
    catalog: Catalog | None = None,
) -> ValidationReport:
    """Check `data` against `provider`'s rules in one streaming pass; never raises for bad data.

    `provider` is a provider ("openai", "bedrock") or one of its dataset profiles ("bedrock-claude").
    `model` picks the token limit and tokenizer; it is checked as `estimate` and `create_job` check it
    (an alias the provider does not offer raises `ConfigurationError`). `method` ("sft" or "dpo") is
    the job's training method: each example must be of its kind (chats for SFT, preference pairs for
    DPO); None accepts either. `validation` (optional) is checked too, and against `data` for
    leakage. `token_limit` overrides the model's per-example limit; `counter` the token counter.
    With `today` (a date, a datetime or an ISO date string), a model the catalog says cannot be
    trained on that date raises the
    `ProviderRetiredError` `create_job` would (`catalog`: the catalog to ask, default the built-in one).

    `workers` is how many processes check a plain (not gzipped) JSONL file, each a range of its
    lines: None picks one per CPU (up to 4) for files of 32 MB or more and this process alone for
    smaller ones; 1 never starts a process. The report is the same whatever the number. Scripts that
    validate large files with several workers need the usual `if __name__ == "__main__":` guard.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigurationError(f"workers must be at least 1 (or None for automatic), got {workers!r}")
    if method not in (None, "sft", "dpo"):
        raise ConfigurationError(
            f"Unknown training method {method!r}.", fix="Use method='sft' or method='dpo'."
        )
    provider = provider_arg(provider)
    model = optional_str(
        model, "model", fix='Pass the model\'s name, e.g. model="gpt-4o-mini", or leave it out.'
    )
    if token_limit is not None:
        int_arg(
            token_limit,
            "token_limit",
            minimum=1,
            fix="Pass the per-example token limit, or None for the model's.",
        )
    int_arg(max_issues, "max_issues", minimum=0, fix="Pass how many issues to keep, e.g. 1000.")
    today = as_date(today)
    if counter is not None and not _is_counter(counter):
        raise ConfigurationError(
            f"counter must be a token counter, not {type(counter).__name__}.",
            fix="Pass unitune.data.tokens.counter_for(provider, model), or leave it out.",
        )
    if catalog is not None:
        from unitune.catalog import Catalog

        if not isinstance(catalog, Catalog):
            raise ConfigurationError(
                f"catalog must be a unitune Catalog, not {type(catalog).__name__}.",
                fix="Pass unitune.catalog.load_catalog(...), or leave it out for the built-in one.",
            )
    model_id, catalog_limit = _catalog_model(provider, model, today=today, catalog=catalog)
    profile = get_profile(provider, model_id)
    dataset = data_arg(data, "data")
    vset = data_arg(validation, "validation") if validation is not None else None
    issues = IssueCollector(dataset.name, limit=max_issues)
    job = _Job(
        provider=provider,
        model=model_id,
        profile=profile,
        counter=counter,
        limit=token_limit or catalog_limit or profile.max_tokens_per_example,
        max_issues=max_issues,
        method=method,
    )
    train = _pass(dataset, job, issues, workers, leakage_from=None)
    stats = train.stats

    if vset is not None:
        vissues = IssueCollector(vset.name, limit=max_issues)
        _pass(vset, job, vissues, workers, leakage_from=train)
        for issue in vissues.issues:
            issues.issues.append(issue) if len(issues.issues) < max_issues else None
        issues.counts.update(vissues.counts)
        issues.severities.update(vissues.severities)

    n = stats.examples
    sev = profile.severity
    if "empty_file" in issues.counts:
        pass  # said already: a minimum or a "too few" adds nothing
    elif n < profile.min_examples:
        issues.add(
            "too_few_examples",
            sev("too_few_examples"),
            f"{_examples(n)}; {profile.name} requires at least {profile.min_examples}",
        )
    if "empty_file" in issues.counts or n == 0:
        pass
    elif n < SMALL_DATASET:
        issues.add(
            "small_dataset",
            sev("small_dataset"),
            f"only {_examples(n)}: too few to fine-tune well; try few-shot prompting first, or collect "
            f"at least {SMALL_DATASET} (100–1,000+ recommended)",
        )
    elif n < RECOMMENDED_DATASET:
        issues.add(
            "below_recommended_size",
            sev("below_recommended_size"),
            f"{n} examples; 100–1,000+ are recommended",
        )
    if profile.max_examples is not None and n > profile.max_examples:
        issues.add(
            "too_many_examples",
            sev("too_many_examples"),
            f"{n:,} examples; {profile.name} accepts at most {profile.max_examples:,}",
        )
    if profile.max_file_bytes is not None and stats.bytes_read > profile.max_file_bytes:
        issues.add(
            "file_too_large",
            sev("file_too_large"),
            f"{stats.bytes_read:,} bytes; {profile.name} accepts files up to {profile.max_file_bytes:,}",
        )

    ordered = sorted(issues.issues, key=lambda i: (i.line is not None, i.path != dataset.name, i.line or 0))
    return ValidationReport(
        provider=provider,
        model=model,
        path=str(dataset.path) if dataset.path is not None else None,
        issues=ordered,
        counts=dict(issues.counts),
        severities=issues.severities,
        stats=stats,
        truncated=issues.truncated,
    )


def _examples(n: int) -> str:
    return f"{n:,} example" if n == 1 else f"{n:,} examples"


def _catalog_model(
    provider: str, model: str | None, *, today: dt.date | None = None, catalog: Catalog | None = None
) -> tuple[str | None, int | None]:
    """`model` as the provider's own id, and the catalog's per-example token limit for it.

    The same model check `estimate` and `create_job` make: a portable alias the provider does not
    offer raises `ConfigurationError` naming who does; a name the catalog does not know passes; with
    `today`, a model that cannot be trained then raises `ProviderRetiredError`.
    """
    if not model:
        return model, None
    from unitune.catalog import load_catalog

    catalog = catalog or load_catalog()
    name = provider if provider in catalog.providers else provider.split("-", 1)[0]
    if name not in catalog.providers:
        return model, None
    model_id = catalog.resolve(name, model)
    if today is not None:
        catalog.check_can_train(name, model_id, today=today)
    entry = catalog.find(name, model_id)
    return model_id, entry.max_example_tokens if entry is not None else None


def _is_counter(counter: Any) -> bool:
    """Whether `counter` counts as validation needs: a `TokenCounter`, or anything with its
    `count_conversations`, or `count_messages` and `count_texts`."""
    return callable(getattr(counter, "count_conversations", None)) or (
        callable(getattr(counter, "count_messages", None)) and callable(getattr(counter, "count_texts", None))
    )


def _counter(provider: str, model: str | None, profile: Profile) -> Any:
    from unitune.data.tokens import counter_for, upper_bound_counter

    counter = counter_for(provider, model)
    if profile.limit_count == "upper_bound" and counter.approximate:
        # The limit is a vendor's refusal: an estimate that can fall short would pass examples the
        # vendor refuses, so count from above.
        why = f"no public tokenizer for {model or profile.name}"
        return upper_bound_counter(why)
    return counter


# --- one pass: per-line checks in one or more parts, then what needs the whole file ------------------
#
# A pass reads the data as one part (in this process) or as several byte ranges of the file (in worker
# processes). A part runs every per-line check and the token counts, and returns its issues (lines
# numbered from 1 within the part), exact counts per code, its statistics as histograms, and for
# each counted example its line and two 8-byte fingerprints (exact and near text). The parent
# renumbers the lines, finds duplicates and train/validation leakage over the whole file from the
# fingerprints, and rebuilds exactly the issue list, counts and order one sequential pass produces.
#
# Memory: the histograms grow with the distinct values (bounded by the context length), the kept
# issues with `max_issues`; only the fingerprints grow with the file: 24 bytes per example (line and
# two keys), plus about 33 more per example for a moment at the end, to sort them (numpy).

#: Files at least this big are checked by several processes when `workers` is None.
_PARALLEL_MIN_BYTES = 32 << 20
#: At most this many processes when `workers` is None: each holds its own tokenizer (o200k: ~65 MB).
_MAX_AUTO_WORKERS = 4
#: Byte ranges are at most this big (and about 8 per worker), so the last ones finish together: a
#: worker left alone with a big last range idles the other cores (8 MiB: ~0.2 s here)...
_CHUNK_BYTES = 8 << 20
#: ... and at least this big, so a range is worth a task.
_MIN_CHUNK_BYTES = 1 << 20

_IssueRow = tuple[str, Severity, str, int | None, int | None]  # code, severity, message, line, column


class _Collector:
    """An `IssueCollector` for the hot loop: plain tuples, and each code's first line remembered."""

    __slots__ = ("counts", "first", "issues", "limit", "severities")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.issues: list[_IssueRow] = []
        self.counts: dict[str, int] = {}
        self.first: dict[str, int | None] = {}
        self.severities: dict[str, Severity] = {}

    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        n = self.counts.get(code)
        if n is None:
            self.counts[code] = 1
            self.first[code] = line
        else:
            self.counts[code] = n + 1
        self.severities[code] = severity
        if len(self.issues) < self.limit:
            self.issues.append((code, severity, message, line, column))


@dataclass
class _Part:
    """What checking one part found; lines are numbered from 1 within the part."""

    lines: int
    size: int
    examples: int
    over: int
    without_system: int
    without_user: int
    issues: list[_IssueRow]
    counts: dict[str, int]
    first: dict[str, int | None]
    severities: dict[str, Severity]
    n_messages: dict[int, int]  # how many examples have each value
    n_tokens: dict[int, int]
    n_assistant: dict[int, int]
    key_lines: array[int]
    exact: array[int]
    near: array[int]
    tokenizer: tuple[str | None, bool, str | None]
    # Keys the format does not take: examples carrying each, and the first line with one.
    extra_keys: dict[str, int] = field(default_factory=dict)
    extra_first: int | None = None
    message_extra_keys: dict[str, int] = field(default_factory=dict)
    message_extra_first: int | None = None


def _tokenizer_meta(tokens: Any) -> tuple[str | None, bool, str | None]:
    return (
        getattr(tokens, "name", None),
        bool(getattr(tokens, "approximate", True)),
        getattr(tokens, "method", None),
    )


def _conversation_counter(
    tokens: Any,
) -> Callable[[list[tuple[list[Any], list[Any] | None]]], list[tuple[int, int]]]:
    """(total tokens, assistant text tokens) of each (messages, tools), with what `tokens` offers."""
    batch: Callable[..., list[tuple[int, int]]] | None = getattr(tokens, "count_conversations", None)
    if batch is not None:
        return batch
    count_messages: Callable[..., int] = tokens.count_messages
    count_texts: Callable[[Sequence[str]], list[int]] = tokens.count_texts

    def count(items: list[tuple[list[Any], list[Any] | None]]) -> list[tuple[int, int]]:
        out = []
        for messages, tools in items:
            total = count_messages(messages, tools=tools)
            assistant = [content_text(m.get("content")) for m in messages if m.get("role") == "assistant"]
            out.append((total, sum(count_texts(assistant)) if assistant else 0))
        return out

    return count


#: Examples whose tokens and fingerprints are computed together: the tokenizer then runs in one
#: tight loop, and the fingerprints' numpy pass covers them all.
_BATCH = 256


def _limit_words(profile: Profile, tokens: Any, limit: int) -> str:
    """What happens to an example over `limit` tokens on this provider, in words."""
    check = profile.checks.get("too_many_tokens")
    what = {
        "refuses": f"{profile.name} refuses examples over {limit:,} tokens",
        "truncates": f"over the {limit:,}-token limit: {profile.name} cuts the end off (often the reply)",
        "accepts": f"over {limit:,} tokens: {profile.name} splits it into windows, some without their prompt",
    }.get(check.vendor if check is not None else "", f"over the {limit:,}-token limit")
    if getattr(tokens, "upper_bound", False):
        what += " (counted as an upper bound: its tokenizer is not public)"
    return what


def _scan(
    records: Iterable[Record],
    profile: Profile,
    tokens: Any,
    limit: int | None,
    max_issues: int,
    method: str | None = None,
) -> _Part:
    """Every per-line check, the token counts and the fingerprints of one part."""
    issues = _Collector(max_issues)  # the checks' issues, line by line
    over_limit = _Collector(max_issues)  # `too_many_tokens`, known a batch later
    add = issues.add
    checker = _Checker(profile, issues)
    severity = checker.severity
    count = _conversation_counter(tokens)
    over_words = _limit_words(profile, tokens, limit) if limit is not None else ""
    # Statistics as histograms (value -> examples): exact percentiles in memory that grows with the
    # distinct values, not with the examples.
    n_messages: dict[int, int] = {}
    n_tokens: dict[int, int] = {}
    n_assistant: dict[int, int] = {}
    key_lines, exact_keys, near_keys = array("Q"), array("Q"), array("Q")
    over = examples = size = lines = 0
    extra_keys: Counter[str] = Counter()
    extra_first: int | None = None
    batch: list[tuple[list[Any], list[Any] | None]] = []  # counted examples waiting for their tokens
    batch_lines: list[int] = []
    # Structural outcome of each shape seen (see `_shape`): (clean, has a system / a user message).
    shapes: dict[tuple[Any, ...], tuple[bool, bool, bool]] = {}
    starts = checker.special_starts
    tool_id = checker.tool_id
    texty = bool(checker.reserved)  # reserved keywords are searched for in every text

    def flush() -> None:
        nonlocal over
        for (total, assistant), line in zip(count(batch), batch_lines, strict=True):
            n_tokens[total] = n_tokens.get(total, 0) + 1
            n_assistant[assistant] = n_assistant.get(assistant, 0) + 1
            if limit is not None and total > limit:
                over += 1
                over_limit.add(
                    "too_many_tokens",
                    severity["too_many_tokens"],
                    f"{total:,} tokens: {over_words}",
                    line=line,
                )
        key_lines.extend(batch_lines)
        batch.clear()
        batch_lines.clear()

    for record in records:
        size += record.size
        line = lines = record.line
        if record.bom:
            add(
                "bom",
                severity["bom"],
                "the file starts with a UTF-8 byte-order mark, which several vendors' validators refuse; "
                "the wire file is written without it",
                line=line,
            )
        problem = record.problem
        if problem is not None:
            add(problem.code, severity[problem.code], problem.message, line=line, column=problem.column)
            continue
        examples += 1
        data = record.data
        assert data is not None
        kind = kind_of(record.format)
        if len(data) > 1 or kind == "preference":
            extra = [k for k in data if k not in OWN_KEYS[kind]]
            if extra:
                extra_keys.update(extra)
                if extra_first is None:
                    extra_first = line
        if method is not None and (kind == "preference") != (method == "dpo"):
            what = {
                "chat": "a chat (SFT) example",
                "preference": "a preference pair",
                "text": "a plain-text example",
            }
            add(
                "method_mismatch",
                severity["method_mismatch"],
                f"{what[kind]}, but the job's method is {method!r}: "
                + (
                    "DPO trains on preference pairs {input, preferred_output, non_preferred_output}"
                    if method == "dpo"
                    else "supervised training takes chats (or plain text); use method='dpo' for preference pairs"
                ),
                line=line,
            )
        chat = kind == "chat"
        shape = None
        try:
            text: str | None
            shape, text = _shape(data, tool_id) if chat else (None, _turns_text(data))
        except (TypeError, ValueError):  # in-memory data JSON cannot render: check without the prescan
            text = None
        flags = None
        if text is not None:
            exact, near, flags = keys(text, starts)
        tools: Any = None
        if chat:
            tools = data.get("tools")
            known = shapes.get(shape) if shape is not None else None
            if known is not None and known[0] and flags is not None and text is not None:
                # Structurally like an example already checked clean: the structural checks would
                # find nothing, so only their tallies are kept; the text's are run where it may
                # hold something.
                messages = data["messages"]
                checker.without_system += not known[1]
                checker.without_user += not known[2]
                if (flags & _TEXT_FLAGS or texty) and checker.text_findings(text, flags):
                    checker.prescan(flags)
                    checker.texts(messages, line)
            else:
                structural = checker.structural
                checker.prescan(flags)
                messages = checker.chat(data, line)
                if shape is not None and len(shapes) < _MAX_SHAPES:
                    roles = [m.get("role") for m in data["messages"]]
                    shapes[shape] = (checker.structural == structural, "system" in roles, "user" in roles)
        elif kind == "preference":
            checker.prescan(flags)
            messages = checker.preference(data, line)
            inp = data.get("input")
            tools = inp.get("tools") if isinstance(inp, dict) else None
        else:
            checker.prescan(flags)
            messages = checker.text(data, line)
        if messages is None:
            continue
        n_messages[len(messages)] = n_messages.get(len(messages), 0) + 1
        counted_tools = tools if isinstance(tools, list) and all(type(t) is dict for t in tools) else None
        if text is None:
            # In-memory data that JSON cannot render (a datetime in tool arguments): counted and
            # fingerprinted as its JSON-safe copy.
            messages, counted_tools = _jsonable([messages, counted_tools])
            exact, near, _ = keys(_turns_text(_jsonable(data)), "")
        batch.append((messages, counted_tools))
        exact_keys.append(exact)
        near_keys.append(near)
        batch_lines.append(line)
        if len(batch) == _BATCH:
            flush()
    flush()
    # One sequential pass reports an example's token count right after its checks: merge by line.
    merged = _merge_streams([issues, over_limit], max_issues)
    return _Part(
        lines=lines,
        size=size,
        examples=examples,
        over=over,
        without_system=checker.without_system,
        without_user=checker.without_user,
        issues=merged.issues,
        counts=merged.counts,
        first=merged.first,
        severities=merged.severities,
        n_messages=n_messages,
        n_tokens=n_tokens,
        n_assistant=n_assistant,
        key_lines=key_lines,
        exact=exact_keys,
        near=near_keys,
        tokenizer=_tokenizer_meta(tokens),
        extra_keys=dict(extra_keys),
        extra_first=extra_first,
        message_extra_keys=dict(checker.message_extra_keys),
        message_extra_first=checker.message_extra_first,
    )


def _merge_streams(streams: Sequence[_Collector], limit: int) -> _Collector:
    """Issue streams, each in line order, as one sequential pass would have collected them: by line,
    and on the same line in the order of `streams`. Every issue has a line."""
    out = _Collector(limit)
    out.issues = list(
        itertools.islice(heapq.merge(*(s.issues for s in streams), key=lambda row: row[3] or 0), limit)
    )
    # A code's place in `counts` is where it first occurred.
    firsts: dict[str, tuple[int, int, int]] = {}
    for k, stream in enumerate(streams):
        for j, (code, line) in enumerate(stream.first.items()):
            key = (line or 0, k, j)
            if code not in firsts or key < firsts[code]:
                firsts[code] = key
    for code in sorted(firsts, key=firsts.__getitem__):
        out.counts[code] = sum(s.counts.get(code, 0) for s in streams)
        out.first[code] = firsts[code][0]
        out.severities[code] = next(s.severities[code] for s in streams if code in s.severities)
    return out


@dataclass
class _Job:
    """What every part of a validation shares."""

    provider: str
    model: str | None
    profile: Profile
    counter: Any
    limit: int | None
    max_issues: int
    method: str | None = None
    _tokens: Any = field(default=None, repr=False)

    def tokens(self) -> Any:
        if self._tokens is None:
            self._tokens = (
                self.counter
                if self.counter is not None
                else _counter(self.provider, self.model, self.profile)
            )
        return self._tokens


@dataclass
class _PassResult:
    stats: Stats
    near: array[int]  # each counted example's near fingerprint, in line order
    key_lines: array[int]  # and its line


def _pass(
    dataset: Dataset,
    job: _Job,
    issues: IssueCollector,
    workers: int | None,
    *,
    leakage_from: _PassResult | None,
) -> _PassResult:
    records = dataset.records()
    merged = _Merge(job.max_issues)
    plan = _plan(records, workers, job)
    if plan is not None:
        try:
            for part in _run_parallel(plan, job):
                merged.add(part)
        except BrokenProcessPool:
            # A worker could not start or died (killed, out of memory): check in this process.
            merged = _Merge(job.max_issues)
            plan = None
    if plan is None:
        merged.add(_scan(records, job.profile, job.tokens(), job.limit, job.max_issues, job.method))
    return merged.finish(issues, job, leakage_from)


class _Merge:
    """Parts, in line order, merged into what one sequential pass would have found."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stream = _Collector(limit)  # the per-line issues so far (the first `limit`), renumbered
        self.base = 0  # lines in the parts merged so far
        self.size = self.examples = self.over = self.without_system = self.without_user = 0
        self.n_messages: Counter[int] = Counter()
        self.n_tokens: Counter[int] = Counter()
        self.n_assistant: Counter[int] = Counter()
        self.key_lines, self.exact, self.near = array("Q"), array("Q"), array("Q")
        self.tokenizer: tuple[str | None, bool, str | None] | None = None
        # Keys beside the format's own, at the top and in messages: examples with each, first line.
        self.extra: dict[str, Counter[str]] = {"top": Counter(), "message": Counter()}
        self.extra_first: dict[str, int | None] = {"top": None, "message": None}

    def add(self, part: _Part) -> None:
        base = self.base
        stream = self.stream
        for where, counts, first in (
            ("top", part.extra_keys, part.extra_first),
            ("message", part.message_extra_keys, part.message_extra_first),
        ):
            self.extra[where].update(counts)
            if self.extra_first[where] is None and first is not None:
                self.extra_first[where] = first + base
        for code, severity, message, line, column in part.issues[: self.limit - len(stream.issues)]:
            stream.issues.append((code, severity, message, None if line is None else line + base, column))
        for code, n in part.counts.items():
            if code in stream.counts:
                stream.counts[code] += n
            else:
                stream.counts[code] = n
                first = part.first[code]
                stream.first[code] = None if first is None else first + base
            stream.severities[code] = part.severities[code]
        self.n_messages.update(part.n_messages)
        self.n_tokens.update(part.n_tokens)
        self.n_assistant.update(part.n_assistant)
        if base:
            self.key_lines.extend(line + base for line in part.key_lines)
        else:
            self.key_lines.extend(part.key_lines)
        self.exact.extend(part.exact)
        self.near.extend(part.near)
        self.base += part.lines
        self.size += part.size
        self.examples += part.examples
        self.over += part.over
        self.without_system += part.without_system
        self.without_user += part.without_user
        self.tokenizer = self.tokenizer or part.tokenizer

    def finish(self, issues: IssueCollector, job: _Job, leakage_from: _PassResult | None) -> _PassResult:
        """Find duplicates and leakage, and fill `issues` as the sequential pass would have."""
        dupes = _Collector(self.limit)
        exact_first = _repeats(self.exact)
        near_first = _repeats(self.near)
        leaks: dict[int, int] = {}
        if leakage_from is not None:
            both = array("Q", leakage_from.near)
            n_train = len(both)
            both.extend(self.near)
            for i, first in _repeats(both).items():
                if i >= n_train and first < n_train:
                    leaks[i - n_train] = leakage_from.key_lines[first]
        lines = self.key_lines
        for i in sorted(exact_first.keys() | near_first.keys() | leaks.keys()):
            line = lines[i]
            if i in leaks:
                dupes.add(
                    "train_validation_leakage",
                    job.profile.severity("train_validation_leakage"),
                    f"this validation example also appears in the training data (line {leaks[i]})",
                    line=line,
                )
            if i in exact_first:
                dupes.add(
                    "duplicate_example",
                    job.profile.severity("duplicate_example"),
                    f"exact duplicate of line {lines[exact_first[i]]}",
                    line=line,
                )
            elif i in near_first:
                dupes.add(
                    "near_duplicate",
                    job.profile.severity("near_duplicate"),
                    f"same text as line {lines[near_first[i]]} apart from case, spacing or punctuation",
                    line=line,
                )

        # One sequential pass adds an example's duplicate issues right after its other issues.
        merged = _merge_streams([self.stream, dupes], self.limit)
        issues.issues = [
            Issue(code=code, severity=severity, message=message, path=issues.path, line=line, column=column)
            for code, severity, message, line, column in merged.issues
        ]
        issues.counts = Counter(merged.counts)
        issues.severities = merged.severities

        profile = job.profile
        sev = profile.severity
        for where, code in (("top", "unrecognized_key"), ("message", "message_unrecognized_key")):
            counts = self.extra[where]
            if counts:
                named = ", ".join(f"{k!r} ({n:,})" for k, n in counts.most_common(8))
                more = f" and {len(counts) - 8} more" if len(counts) > 8 else ""
                what = "examples" if where == "top" else "messages"
                kept = "your data (for split --stratify, slices, lineage)" if where == "top" else "your file"
                issues.add(
                    code,
                    sev(code),
                    f"{what} carry key(s) the {profile.name} format does not take: {named}{more} "
                    f"(how many {what} have each); they stay in {kept} and are left out of the wire file",
                    line=self.extra_first[where],
                )
        if self.examples == 0 and set(self.stream.counts) <= {"blank_line", "bom"}:
            issues.add("empty_file", sev("empty_file"), "the file is empty: it holds no example")
        if self.without_user:
            issues.add(
                "missing_user",
                sev("missing_user"),
                f"{_examples(self.without_user)} {'has' if self.without_user == 1 else 'have'} no user message",
            )
        if self.without_system and self.without_system < self.examples:
            issues.add(
                "missing_system",
                sev("missing_system"),
                f"{self.without_system} of {self.examples} examples have no system message; "
                "use the same system prompt in training and in production",
            )
        name, approximate, method = self.tokenizer or _tokenizer_meta(job.tokens())
        stats = Stats(
            examples=self.examples,
            messages_per_example=Distribution.from_counts(self.n_messages),
            tokens_per_example=Distribution.from_counts(self.n_tokens),
            assistant_tokens_per_example=Distribution.from_counts(self.n_assistant),
            examples_over_limit=self.over,
            token_limit=job.limit,
            tokenizer=name,
            approximate_tokens=approximate,
            token_method=method,
            bytes_read=self.size,
        )
        return _PassResult(stats, self.near, self.key_lines)


def _repeats(keys: array[int]) -> dict[int, int]:
    """For each position whose key an earlier position holds: position -> the first such position."""
    n = len(keys)
    if n < 2:
        return {}
    try:
        import numpy as np
    except ImportError:  # numpy comes with quicktok; without it, the same in Python
        out: dict[int, int] = {}
        prev: int | None = None
        first = 0
        for i in sorted(range(n), key=keys.__getitem__):  # stable: equal keys stay in line order
            key = keys[i]
            if key == prev:
                out[i] = first
            else:
                prev, first = key, i
        return out
    a = np.frombuffer(keys, dtype=np.uint64)
    order = np.argsort(a, kind="stable")
    ordered = a[order]
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first_of = order[starts][np.cumsum(starts) - 1]  # per sorted position: its group's first position
    repeat = np.flatnonzero(~starts)
    return dict(zip(order[repeat].tolist(), first_of[repeat].tolist(), strict=True))


# --- worker processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    path: Path
    fmt: str
    ranges: list[tuple[int, int]]
    workers: int
    counter: bytes | None  # a caller's counter, pickled


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _plan(records: Iterable[Record], workers: int | None, job: _Job) -> _Plan | None:
    """How to split the pass over processes, or None to run it in this one."""
    if workers == 1 or not isinstance(records, JsonlFile) or multiprocessing.current_process().daemon:
        return None  # (a daemonic process, e.g. a multiprocessing.Pool worker, may not start any)
    path = records.path
    try:
        size = path.stat().st_size
        if size == 0 or is_gzip(path):
            return None  # a gzip stream cannot be entered in the middle
    except OSError:
        return None  # the sequential reader reports it
    if workers is None:
        if size < _PARALLEL_MIN_BYTES or _usable_cpus() < 2:
            return None
        workers = min(_usable_cpus(), _MAX_AUTO_WORKERS)
    chunk = min(_CHUNK_BYTES, max(_MIN_CHUNK_BYTES, size // (8 * workers)))
    ranges = line_boundaries(path, size, chunk)
    workers = min(workers, len(ranges))
    if workers < 2:
        return None
    counter = None
    if job.counter is not None:
        try:
            counter = pickle.dumps(job.counter)
        except Exception:  # a counter that cannot travel to another process: stay in this one
            return None
    return _Plan(path, _pinned_format(records), ranges, workers, counter)


def _pinned_format(records: JsonlFile) -> str:
    """The format every line is checked against: the given one, or that of the first readable line."""
    if records.fmt != "auto":
        return records.fmt
    reader = read_jsonl(records.path)
    try:
        for record in reader:
            if record.format is not None:
                return record.format
    finally:
        reader.close()
    return "auto"  # no line is readable: nothing to pin


def _run_parallel(plan: _Plan, job: _Job) -> Iterator[_Part]:
    # spawn: each worker is a fresh interpreter (fork would copy whatever threads and state the
    # caller has; forkserver costs one more process, ~13 MB, and starts workers no faster here).
    context = multiprocessing.get_context("spawn")
    spec = (job.provider, job.model, plan.counter, job.limit, job.max_issues, job.method)
    tasks = [(plan.path, start, end, plan.fmt) for start, end in plan.ranges]
    pool = ProcessPoolExecutor(plan.workers, mp_context=context, initializer=_init_worker, initargs=(spec,))
    try:
        yield from pool.map(_scan_range, tasks)
    finally:
        # On an error or an interrupt, do not wait for the ranges not started yet.
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER: tuple[Profile, Any, int | None, int, str | None] | None = None


def _init_worker(spec: tuple[str, str | None, bytes | None, int | None, int, str | None]) -> None:
    global _WORKER
    provider, model, counter, limit, max_issues, method = spec
    profile = get_profile(provider, model)
    tokens = pickle.loads(counter) if counter is not None else _counter(provider, model, profile)
    _WORKER = (profile, tokens, limit, max_issues, method)


def _scan_range(task: tuple[Path, int, int, str]) -> _Part:
    assert _WORKER is not None, "the worker was not initialised"
    profile, tokens, limit, max_issues, method = _WORKER
    path, start, end, fmt = task
    return _scan(read_jsonl_range(path, start, end, fmt=fmt), profile, tokens, limit, max_issues, method)
