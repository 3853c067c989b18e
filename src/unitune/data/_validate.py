"""`validate()`: every check in one streaming pass, against the target provider's profile.

Checks work on the raw dicts (not pydantic models) because they run once per line of files that can
be gigabytes long; each problem gets a stable code, a severity, a message that says how to fix it,
and the line (and column where the reader knows it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from array import array
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from unitune.data._dataset import Dataset
from unitune.data._report import Distribution, IssueCollector, Severity, Stats, ValidationReport
from unitune.data.profiles import ROLES, Profile, get_profile
from unitune.types import content_text

__all__ = ["example_keys", "validate"]

DataSource = Dataset | str | os.PathLike[str]

_TOP_KEYS_CHAT = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
_TOP_KEYS_PREF = frozenset({"input", "preferred_output", "non_preferred_output"})
_MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
)
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?!\w)")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_NEAR = re.compile(r"[\W_]+", re.UNICODE)

SMALL_DATASET = 50
RECOMMENDED_DATASET = 100


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def pii_findings(text: str) -> list[tuple[str, str]]:
    """Likely personal data in `text`: (code, what) pairs. Heuristic: a warning, never an error."""
    found: list[tuple[str, str]] = []
    if "@" in text and _EMAIL.search(text):
        found.append(("pii_email", "an email address"))
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.append(("pii_card", "a payment card number (passes the Luhn check)"))
            break
    for m in _IBAN.finditer(text):
        if _iban_ok(m.group()):
            found.append(("pii_iban", "an IBAN (valid checksum)"))
            break
    for m in _PHONE.finditer(text):
        n_digits = sum(c.isdigit() for c in m.group())
        if 9 <= n_digits <= 15 and not any(c == "pii_card" for c, _ in found):
            found.append(("pii_phone", "a phone number"))
            break
    return found


def example_keys(data: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(exact, near) fingerprints of an example: same turns; same words ignoring case and punctuation."""
    if "messages" in data:
        turns = data.get("messages") or []
    else:
        inp = data.get("input")
        turns = [
            *(inp.get("messages") or [] if isinstance(inp, dict) else []),
            *(data.get("preferred_output") or []),
            *(data.get("non_preferred_output") or []),
        ]
    parts = []
    for m in turns:
        if isinstance(m, dict):
            text = content_text(m.get("content")) if not isinstance(m.get("content"), (int, float)) else ""
            calls = json.dumps(m["tool_calls"], sort_keys=True) if m.get("tool_calls") else ""
            parts.append(f"{m.get('role')}\x1f{text}\x1f{calls}")
    exact = "\x1e".join(parts)
    near = _NEAR.sub(" ", exact.lower()).strip()
    return (
        hashlib.blake2b(exact.encode(), digest_size=8).digest(),
        hashlib.blake2b(near.encode(), digest_size=8).digest(),
    )


class _Checker:
    """The per-example checks for one profile; reports into an `IssueCollector`."""

    def __init__(self, profile: Profile, issues: IssueCollector) -> None:
        self.p = profile
        self.issues = issues
        self.special = re.compile("|".join(re.escape(t) for t in profile.forbidden_tokens))
        self.tool_id = re.compile(profile.tool_call_id_pattern) if profile.tool_call_id_pattern else None
        self.without_system = 0
        self.without_user = 0

    def add(self, code: str, severity: Severity, message: str, line: int) -> None:
        self.issues.add(code, severity, message, line=line)

    # -- chat -------------------------------------------------------------------------------------

    def chat(self, data: Mapping[str, Any], line: int) -> list[dict[str, Any]] | None:
        """Check a chat example; the messages if they are well-formed enough to count, else None."""
        extra = sorted(set(data) - _TOP_KEYS_CHAT)
        if extra:
            self.add(
                "unrecognized_key",
                "error",
                f"unexpected top-level key(s) {', '.join(map(repr, extra))}; only messages, tools "
                "and parallel_tool_calls are allowed",
                line,
            )
        if "functions" in data:
            self.add(
                "deprecated_functions",
                "error",
                "'functions' is the deprecated form; use 'tools' with type 'function'",
                line,
            )
        tools = data.get("tools")
        if tools is not None:
            self._tools(tools, line)
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            self.add("missing_messages", "error", "'messages' must be a non-empty list of messages", line)
            return None
        if not self.messages(messages, line, require_assistant=True):
            return None
        return messages

    def messages(self, messages: list[Any], line: int, *, require_assistant: bool) -> bool:
        """Check a message list; False when its structure is too broken for the order checks."""
        p = self.p
        ok = True
        roles: list[str] = []
        open_calls: dict[str, int] = {}
        for i, m in enumerate(messages, 1):
            at = f"message {i}"
            if not isinstance(m, dict):
                self.add("message_not_object", "error", f"{at} must be an object with role and content", line)
                ok = False
                continue
            role = m.get("role")
            if role is None:
                self.add("message_missing_role", "error", f"{at} has no 'role'", line)
                ok = False
                continue
            if role not in ROLES:
                hint = " ('function' is deprecated: use 'tool')" if role == "function" else ""
                self.add(
                    "unrecognized_role",
                    "error",
                    f"{at} has role {role!r}; use system, user, assistant or tool{hint}",
                    line,
                )
                ok = False
                continue
            if role not in p.roles:
                self.add(
                    "role_not_allowed",
                    "error",
                    f"{at}: {p.name} does not accept the {role!r} role in training data",
                    line,
                )
            roles.append(role)
            extra = sorted(set(m) - _MESSAGE_KEYS)
            if extra:
                self.add(
                    "message_unrecognized_key",
                    "error",
                    f"{at} has unexpected key(s) {', '.join(map(repr, extra))}",
                    line,
                )
            self._content(m, role, at, line)
            if "weight" in m:
                self._weight(m, role, at, line)
            if m.get("tool_calls") is not None or m.get("function_call") is not None:
                self._tool_calls(m, role, at, line, open_calls)
            if role == "tool":
                call_id = m.get("tool_call_id")
                if not isinstance(call_id, str) or not call_id:
                    self.add(
                        "tool_missing_call_id", "error", f"{at}: a tool message needs 'tool_call_id'", line
                    )
                elif call_id not in open_calls:
                    self.add(
                        "tool_response_unpaired",
                        "error",
                        f"{at} answers tool call {call_id!r}, which no earlier assistant message made",
                        line,
                    )
                else:
                    del open_calls[call_id]
            elif role == "assistant" and open_calls and not m.get("tool_calls"):
                self.add(
                    "tool_call_unanswered",
                    "error",
                    f"{at}: tool call(s) {', '.join(sorted(open_calls))} have no tool message answering them",
                    line,
                )
                open_calls.clear()
        if open_calls and roles and roles[-1] != "assistant":
            self.add(
                "tool_call_unanswered",
                "error",
                f"tool call(s) {', '.join(sorted(open_calls))} have no tool message answering them",
                line,
            )
        if not ok:
            return False
        self._order(roles, line, require_assistant=require_assistant)
        if require_assistant:
            trained = [m for m in messages if m.get("role") == "assistant" and m.get("weight", 1) != 0]
            if "assistant" in roles and not trained:
                self.add(
                    "no_trained_turn",
                    "error",
                    "every assistant message has weight 0, so there is nothing to learn",
                    line,
                )
            if "system" not in roles:
                self.without_system += 1
            if "user" not in roles:
                self.without_user += 1
        return True

    def _content(self, m: Mapping[str, Any], role: str, at: str, line: int) -> None:
        content = m.get("content")
        has_calls = bool(m.get("tool_calls") or m.get("function_call"))
        if content is None:
            if not (role == "assistant" and has_calls):
                self.add("missing_content", "error", f"{at} ({role}) has no content", line)
            return
        if isinstance(content, list):
            if not self.p.multimodal:
                self.add(
                    "multimodal_not_supported",
                    "error",
                    f"{at}: {self.p.name} takes text content only, not a list of parts",
                    line,
                )
                return
            for part in content:
                if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
                    self.add(
                        "invalid_content_part",
                        "error",
                        f"{at}: each content part must be {{'type': 'text'|'image_url', ...}}",
                        line,
                    )
                    return
                if part.get("type") == "image_url" and role != "user":
                    self.add(
                        "image_not_user", "error", f"{at}: images are allowed in user messages only", line
                    )
            text = content_text(content)
        elif isinstance(content, str):
            text = content
        else:
            self.add(
                "content_not_string",
                "error",
                f"{at} content must be a string, got {type(content).__name__}",
                line,
            )
            return
        if not text.strip() and not has_calls and not (isinstance(content, list) and content):
            self.add("empty_content", "error", f"{at} ({role}) content is empty or whitespace", line)
            return
        if self.special.search(text):
            token = self.special.search(text).group()  # type: ignore[union-attr]
            self.add(
                "special_token",
                "error",
                f"{at} contains the special token {token!r}, which would corrupt the chat template; "
                "remove or escape it",
                line,
            )
        for code, what in pii_findings(text):
            self.add(code, "warning", f"{at} ({role}) seems to contain {what}; remove personal data", line)

    def _weight(self, m: Mapping[str, Any], role: str, at: str, line: int) -> None:
        w = m.get("weight")
        if type(w) is not int or w not in (0, 1):
            self.add("invalid_weight", "error", f"{at}: weight must be 0 or 1, got {w!r}", line)
        elif role != "assistant":
            self.add(
                "weight_not_assistant", "error", f"{at}: weight is only allowed on assistant messages", line
            )
        elif not self.p.weights:
            self.add(
                "weight_unsupported",
                "warning",
                f"{at}: {self.p.name} ignores weight; this turn will be trained on",
                line,
            )

    def _tool_calls(
        self, m: Mapping[str, Any], role: str, at: str, line: int, open_calls: dict[str, int]
    ) -> None:
        if "function_call" in m:
            self.add(
                "deprecated_function_call",
                "error",
                f"{at}: 'function_call' is deprecated; use 'tool_calls'",
                line,
            )
            return
        if role != "assistant":
            self.add(
                "tool_calls_not_assistant", "error", f"{at}: only assistant messages make tool calls", line
            )
            return
        if not self.p.tools:
            self.add("tools_unsupported", "error", f"{at}: {self.p.name} cannot train on tool calls", line)
            return
        calls = m.get("tool_calls")
        if not isinstance(calls, list) or not calls:
            self.add("invalid_tool_call", "error", f"{at}: tool_calls must be a non-empty list", line)
            return
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(call, dict) or not isinstance(fn, dict):
                self.add(
                    "invalid_tool_call",
                    "error",
                    f"{at}: each tool call needs id, type 'function' and function {{name, arguments}}",
                    line,
                )
                continue
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                self.add("invalid_tool_call", "error", f"{at}: a tool call has no id", line)
            elif self.tool_id is not None and not self.tool_id.match(call_id):
                self.add(
                    "invalid_tool_call_id",
                    "error",
                    f"{at}: tool call id {call_id!r} must match {self.p.tool_call_id_pattern}",
                    line,
                )
            name = fn.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                self.add(
                    "invalid_function_name",
                    "error",
                    f"{at}: function name {name!r} must match ^[a-zA-Z0-9_-]{{1,64}}$",
                    line,
                )
            args = fn.get("arguments")
            if not isinstance(args, str):
                self.add(
                    "invalid_tool_arguments",
                    "error",
                    f"{at}: function arguments must be a JSON string, got {type(args).__name__}",
                    line,
                )
            else:
                try:
                    json.loads(args)
                except json.JSONDecodeError as e:
                    self.add(
                        "invalid_tool_arguments",
                        "error",
                        f"{at}: function arguments are not valid JSON ({e.msg})",
                        line,
                    )
            if isinstance(call_id, str) and call_id:
                open_calls[call_id] = line

    def _tools(self, tools: Any, line: int) -> None:
        if not self.p.tools:
            self.add("tools_unsupported", "error", f"{self.p.name} cannot train with tool definitions", line)
            return
        if not isinstance(tools, list):
            self.add("invalid_tools", "error", "'tools' must be a list of tool definitions", line)
            return
        for i, tool in enumerate(tools, 1):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
                self.add(
                    "invalid_tools",
                    "error",
                    f"tool {i} must be {{'type': 'function', 'function': {{...}}}}",
                    line,
                )
                continue
            if not isinstance(fn.get("name"), str) or not _FUNCTION_NAME.match(fn["name"]):
                self.add(
                    "invalid_tools", "error", f"tool {i} needs a name matching ^[a-zA-Z0-9_-]{{1,64}}$", line
                )
            params = fn.get("parameters")
            if params is not None and (
                not isinstance(params, dict) or params.get("type", "object") != "object"
            ):
                self.add("invalid_tools", "error", f"tool {i}: parameters must be a JSON Schema object", line)

    def _order(self, roles: Sequence[str], line: int, *, require_assistant: bool) -> None:
        p = self.p
        systems = [i for i, r in enumerate(roles) if r == "system"]
        if systems and p.system == "none":
            self.add("system_not_allowed", "error", f"{p.name} takes no system message", line)
        elif p.system == "first_only":
            if len(systems) > 1:
                self.add(
                    "multiple_system",
                    "error",
                    f"{p.name} allows one system message; found {len(systems)}",
                    line,
                )
            elif systems and systems[0] != 0:
                self.add(
                    "system_not_first", "error", f"the system message must come first for {p.name}", line
                )
        if p.first_roles is not None and roles and roles[0] not in p.first_roles:
            allowed = " or ".join(sorted(p.first_roles))
            self.add(
                "invalid_first_role",
                "error",
                f"the conversation starts with {roles[0]!r}; {p.name} needs {allowed}",
                line,
            )
        for i in range(1, len(roles)):
            prev, cur = roles[i - 1], roles[i]
            if p.no_repeat and prev == cur:
                self.add(
                    "consecutive_roles",
                    "error",
                    f"messages {i} and {i + 1} are both {cur!r}; {p.name} needs turns to alternate",
                    line,
                )
                break
            allowed_next = p.transitions.get(prev) if p.transitions is not None else None
            if allowed_next is not None and cur not in allowed_next:
                self.add(
                    "invalid_role_order",
                    "error",
                    f"message {i + 1} ({cur!r}) cannot follow {prev!r} for {p.name}",
                    line,
                )
                break
        if require_assistant:
            if "assistant" not in roles:
                self.add("missing_assistant", "error", "no assistant message: nothing to train on", line)
            elif p.last_assistant and roles[-1] != "assistant":
                self.add(
                    "last_not_assistant",
                    "error",
                    f"the last message is {roles[-1]!r}; {p.name} needs it to be the assistant's",
                    line,
                )
            if p.max_turns is not None and roles.count("user") > p.max_turns:
                self.add(
                    "too_many_turns",
                    "error",
                    f"{roles.count('user')} user turns; {p.name} trains on single exchanges",
                    line,
                )

    # -- preference -------------------------------------------------------------------------------

    def preference(self, data: Mapping[str, Any], line: int) -> list[dict[str, Any]] | None:
        p = self.p
        if not p.preference:
            self.add(
                "preference_unsupported", "error", f"{p.name} does not train on preference (DPO) data", line
            )
        extra = sorted(set(data) - _TOP_KEYS_PREF)
        if extra:
            self.add(
                "unrecognized_key",
                "error",
                f"unexpected top-level key(s) {', '.join(map(repr, extra))}",
                line,
            )
        inp = data.get("input")
        messages = inp.get("messages") if isinstance(inp, dict) else None
        if not isinstance(messages, list) or not messages:
            self.add(
                "invalid_preference_input", "error", "'input' must be {'messages': [...]} with messages", line
            )
            return None
        if isinstance(inp, dict) and inp.get("tools") is not None:
            self._tools(inp["tools"], line)
        if not self.messages(messages, line, require_assistant=False):
            return None
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "assistant":
            self.add(
                "preference_last_input_assistant",
                "error",
                "the last input message is the assistant's; the outputs must answer it",
                line,
            )
        outputs = []
        for key in ("preferred_output", "non_preferred_output"):
            out = data.get(key)
            if not (isinstance(out, list) and len(out) == 1 and isinstance(out[0], dict)):
                self.add(
                    "invalid_preference_output",
                    "error",
                    f"'{key}' must be a list of exactly one message",
                    line,
                )
                return None
            msg = out[0]
            if msg.get("role") != "assistant":
                self.add("invalid_preference_output", "error", f"'{key}' must be an assistant message", line)
                return None
            self._content(msg, "assistant", key, line)
            outputs.append(msg)
        if content_text(outputs[0].get("content")) == content_text(outputs[1].get("content")):
            self.add(
                "identical_preference",
                "warning",
                "preferred and non-preferred outputs are identical: nothing to learn",
                line,
            )
        return [*messages, outputs[0]]


def validate(
    data: DataSource,
    *,
    provider: str = "openai",
    model: str | None = None,
    validation: DataSource | None = None,
    token_limit: int | None = None,
    counter: Any = None,
    max_issues: int = 1000,
) -> ValidationReport:
    """Check `data` against `provider`'s rules in one streaming pass; never raises for bad data.

    `validation` (optional) is checked too, and against `data` for leakage. `token_limit` overrides
    the profile's per-example limit (the catalog passes the model's). `counter` overrides the token
    counter picked for the model.
    """
    profile = get_profile(provider, model)
    dataset = _as_dataset(data)
    issues = IssueCollector(dataset.name, limit=max_issues)
    tokens = counter if counter is not None else _counter(provider, model)
    limit = token_limit or profile.max_tokens_per_example
    seen: dict[bytes, int] = {}  # near key -> first line; exact dupes are near dupes too
    exact_seen: dict[bytes, int] = {}
    stats = _pass(dataset, profile, issues, tokens, limit, seen, exact_seen, leakage_from=None)

    if validation is not None:
        vset = _as_dataset(validation)
        vissues = IssueCollector(vset.name, limit=max_issues)
        _pass(vset, profile, vissues, tokens, limit, {}, {}, leakage_from=seen)
        for issue in vissues.issues:
            issues.issues.append(issue) if len(issues.issues) < max_issues else None
        issues.counts.update(vissues.counts)
        issues.severities.update(vissues.severities)

    n = stats.examples
    if n < profile.min_examples:
        issues.add(
            "too_few_examples",
            "error",
            f"{n} examples; {profile.name} requires at least {profile.min_examples}",
        )
    if n < SMALL_DATASET:
        issues.add(
            "small_dataset",
            "warning",
            f"only {n} examples: too few to fine-tune well; try few-shot prompting first, or collect "
            f"at least {SMALL_DATASET} (100–1,000+ recommended)",
        )
    elif n < RECOMMENDED_DATASET:
        issues.add("below_recommended_size", "info", f"{n} examples; 100–1,000+ are recommended")
    if profile.max_examples is not None and n > profile.max_examples:
        issues.add(
            "too_many_examples",
            "error",
            f"{n} examples; {profile.name} accepts at most {profile.max_examples}",
        )
    if profile.max_file_bytes is not None and stats.bytes_read > profile.max_file_bytes:
        issues.add(
            "file_too_large",
            "error",
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


def _as_dataset(data: DataSource) -> Dataset:
    if isinstance(data, Dataset):
        return data
    path = Path(data)
    if path.suffix.lower() in (".csv",):
        from unitune.errors import DatasetError

        raise DatasetError(
            "a CSV file needs its columns named: use Dataset.from_csv(path, prompt=, completion=)",
            path=str(path),
        )
    return Dataset.from_jsonl(path)


def _counter(provider: str, model: str | None) -> Any:
    from unitune.data.tokens import counter_for

    return counter_for(provider, model)


def _pass(
    dataset: Dataset,
    profile: Profile,
    issues: IssueCollector,
    tokens: Any,
    limit: int | None,
    seen: dict[bytes, int],
    exact_seen: dict[bytes, int],
    *,
    leakage_from: dict[bytes, int] | None,
) -> Stats:
    checker = _Checker(profile, issues)
    n_messages = array("I")
    n_tokens = array("I")
    n_assistant = array("I")
    over = 0
    examples = 0
    size = 0
    count_messages: Callable[..., int] = tokens.count_messages
    count_texts: Callable[[Sequence[str]], list[int]] = tokens.count_texts
    for record in dataset.records():
        size += record.size
        if record.problem is not None:
            severity: Severity = "warning" if record.problem.code == "blank_line" else "error"
            issues.add(
                record.problem.code,
                severity,
                record.problem.message,
                line=record.line,
                column=record.problem.column,
            )
            continue
        examples += 1
        data = record.data
        assert data is not None
        line = record.line
        if "messages" in data:
            messages = checker.chat(data, line)
            tools = data.get("tools")
        else:
            messages = checker.preference(data, line)
            inp = data.get("input")
            tools = inp.get("tools") if isinstance(inp, dict) else None
        if messages is None:
            continue
        n_messages.append(len(messages))
        total = count_messages(messages, tools=tools if isinstance(tools, list) else None)
        n_tokens.append(total)
        assistant = [content_text(m.get("content")) for m in messages if m.get("role") == "assistant"]
        n_assistant.append(sum(count_texts(assistant)) if assistant else 0)
        if limit is not None and total > limit:
            over += 1
            issues.add(
                "too_many_tokens",
                "warning",
                f"{total:,} tokens, over the {limit:,}-token limit: the provider will truncate it",
                line=line,
            )
        exact, near = example_keys(data)
        if leakage_from is not None and near in leakage_from:
            issues.add(
                "train_validation_leakage",
                "warning",
                f"this validation example also appears in the training data (line {leakage_from[near]})",
                line=line,
            )
        first = exact_seen.get(exact)
        if first is not None:
            issues.add("duplicate_example", "warning", f"exact duplicate of line {first}", line=line)
        elif near in seen:
            issues.add(
                "near_duplicate",
                "warning",
                f"same text as line {seen[near]} apart from case, spacing or punctuation",
                line=line,
            )
        else:
            seen[near] = line
        exact_seen.setdefault(exact, line)
    if checker.without_user:
        issues.add("missing_user", "warning", f"{checker.without_user} examples have no user message")
    if checker.without_system and checker.without_system < examples:
        issues.add(
            "missing_system",
            "info",
            f"{checker.without_system} of {examples} examples have no system message; "
            "use the same system prompt in training and in production",
        )
    return Stats(
        examples=examples,
        messages_per_example=Distribution.of(n_messages),
        tokens_per_example=Distribution.of(n_tokens),
        assistant_tokens_per_example=Distribution.of(n_assistant),
        examples_over_limit=over,
        token_limit=limit,
        tokenizer=getattr(tokens, "name", None),
        approximate_tokens=bool(getattr(tokens, "approximate", True)),
        token_method=getattr(tokens, "method", None),
        bytes_read=size,
    )
