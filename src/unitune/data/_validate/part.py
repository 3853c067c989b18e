# One part of a pass: every per-line check of a stream of records (through the checker), the token
# counts a batch at a time, the statistics as histograms and the duplicate fingerprints (`_scan`), and
# what a part returns (`_Part`). The whole file's findings are made from the parts in `passes`.
"""One part of `validate`'s pass over the data: `_scan` and what it returns."""

from __future__ import annotations

import heapq
import itertools
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unitune.data._loaders import OWN_KEYS, Record, kind_of
from unitune.data._report import Severity
from unitune.data._textscan_py import keys
from unitune.data._validate.checker import _Checker, _shape
from unitune.data._validate.text import _jsonable, _turns_text
from unitune.data.profiles import Profile
from unitune.types import content_text

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
        """Count `code`, and keep the issue while fewer than `limit` are kept (`path` is ignored)."""
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


class _TokenCounts:
    """The token counts of one part, counted a batch at a time.

    The token counts of one part, counted a batch of examples at a time (the tokenizer then runs in
    one tight loop): histograms of the totals and assistant tokens, `too_many_tokens` findings (in
    their own stream: they are known a batch after the example's other findings) and the counted
    examples' lines.
    """

    def __init__(
        self, profile: Profile, tokens: Any, limit: int | None, severity: Severity, max_issues: int
    ) -> None:
        self.count = _conversation_counter(tokens)
        self.limit = limit
        self.words = _limit_words(profile, tokens, limit) if limit is not None else ""
        self.severity = severity
        self.over_limit = _Collector(max_issues)
        self.over = 0
        # Statistics as histograms (value -> examples): exact percentiles in memory that grows with the
        # distinct values, not with the examples.
        self.n_tokens: dict[int, int] = {}
        self.n_assistant: dict[int, int] = {}
        self.key_lines = array("Q")

    def flush(self, batch: list[tuple[list[Any], list[Any] | None]], lines: list[int]) -> None:
        """Count `batch` (its examples' lines: `lines`), then empty both."""
        n_tokens, n_assistant, limit = self.n_tokens, self.n_assistant, self.limit
        for (total, assistant), line in zip(self.count(batch), lines, strict=True):
            n_tokens[total] = n_tokens.get(total, 0) + 1
            n_assistant[assistant] = n_assistant.get(assistant, 0) + 1
            if limit is not None and total > limit:
                self.over += 1
                self.over_limit.add(
                    "too_many_tokens", self.severity, f"{total:,} tokens: {self.words}", line=line
                )
        self.key_lines.extend(lines)
        batch.clear()
        lines.clear()


def _tally_extra_keys(
    data: dict[str, Any], kind: str, extra_keys: Counter[str], first: int | None, line: int
) -> int | None:
    """Tally the keys of `data` its kind does not take; the first line with any (`first` so far)."""
    extra = [k for k in data if k not in OWN_KEYS[kind]]
    if extra:
        extra_keys.update(extra)
        if first is None:
            return line
    return first


def _method_mismatch(kind: str, method: str) -> str:
    """Why an example of `kind` does not suit a job of training `method`."""
    what = {"chat": "a chat (SFT) example", "preference": "a preference pair", "text": "a plain-text example"}
    return f"{what[kind]}, but the job's method is {method!r}: " + (
        "DPO trains on preference pairs {input, preferred_output, non_preferred_output}"
        if method == "dpo"
        else "supervised training takes chats (or plain text); use method='dpo' for preference pairs"
    )


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
    add = issues.add
    checker = _Checker(profile, issues)
    severity = checker.severity
    counts = _TokenCounts(profile, tokens, limit, severity["too_many_tokens"], max_issues)
    n_messages: dict[int, int] = {}
    exact_keys, near_keys = array("Q"), array("Q")
    examples = size = lines = 0
    extra_keys: Counter[str] = Counter()
    extra_first: int | None = None
    batch: list[tuple[list[Any], list[Any] | None]] = []  # counted examples waiting for their tokens
    batch_lines: list[int] = []
    starts = checker.special_starts
    tool_id = checker.tool_id
    check_chat = checker.check_chat

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
            extra_first = _tally_extra_keys(data, kind, extra_keys, extra_first, line)
        if method is not None and (kind == "preference") != (method == "dpo"):
            add("method_mismatch", severity["method_mismatch"], _method_mismatch(kind, method), line=line)
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
            messages = check_chat(data, line, shape, text, flags)
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
            counts.flush(batch, batch_lines)
    counts.flush(batch, batch_lines)
    # One sequential pass reports an example's token count right after its checks: merge by line.
    merged = _merge_streams([issues, counts.over_limit], max_issues)
    return _Part(
        lines=lines,
        size=size,
        examples=examples,
        over=counts.over,
        without_system=checker.without_system,
        without_user=checker.without_user,
        issues=merged.issues,
        counts=merged.counts,
        first=merged.first,
        severities=merged.severities,
        n_messages=n_messages,
        n_tokens=counts.n_tokens,
        n_assistant=counts.n_assistant,
        key_lines=counts.key_lines,
        exact=exact_keys,
        near=near_keys,
        tokenizer=_tokenizer_meta(tokens),
        extra_keys=dict(extra_keys),
        extra_first=extra_first,
        message_extra_keys=dict(checker.message_extra_keys),
        message_extra_first=checker.message_extra_first,
    )


def _merge_streams(streams: Sequence[_Collector], limit: int) -> _Collector:
    """Merge issue streams into line order.

    Issue streams, each in line order, as one sequential pass would have collected them: by line,
    and on the same line in the order of `streams`. Every issue has a line.
    """
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
        """The token counter: the caller's, else the provider's for the model (built once)."""
        if self._tokens is None:
            self._tokens = (
                self.counter
                if self.counter is not None
                else _counter(self.provider, self.model, self.profile)
            )
        return self._tokens


def _counter(provider: str, model: str | None, profile: Profile) -> Any:
    from unitune.data.tokens import counter_for, upper_bound_counter

    counter = counter_for(provider, model)
    if profile.limit_count == "upper_bound" and counter.approximate:
        # The limit is a vendor's refusal: an estimate that can fall short would pass examples the
        # vendor refuses, so count from above.
        why = f"no public tokenizer for {model or profile.name}"
        return upper_bound_counter(why)
    return counter
