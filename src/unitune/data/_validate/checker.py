# The structural checker and its shape memo: `_Checker` checks one example at a time against a
# profile, and `_shape` reduces an example to what those checks read. The two live together because
# they must agree: an example is skipped when its shape was checked clean, so `_shape` must change
# whenever a check starts reading something new. Over ~700 lines on purpose: splitting the structural
# checks from the shape, or among modules, would hide from one the change the other needs (the checks
# no shape stands for, text and content parts, are already apart in `content`).
"""The per-example checks of `validate` (`_Checker`) and the shape memo that skips them (`_shape`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from unitune.data._loaders import MESSAGE_KEYS, from_legacy_functions, weight_value
from unitune.data._textscan_py import lane
from unitune.data._validate.content import _ContentChecks, _IssueSink
from unitune.data._validate.text import _TEXT_FLAGS, _turns_text
from unitune.data.profiles import ROLES, Profile
from unitune.types import content_text

#: The message keys unitune reads (`function_call` as a tool call); any other is tallied and left out of
#: the wire file.
_MESSAGE_KEYS = MESSAGE_KEYS | {"function_call"}
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

_ABSENT = object()  # in a shape: the key is not there

#: Shapes remembered per checker, at most (a file of ever-new shapes is simply checked in full).
_MAX_SHAPES = 1 << 16


def _json_ok(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


# --- shapes --------------------------------------------------------------------------------------------


def _shape(data: Mapping[str, Any], tool_id: re.Pattern[str] | None) -> tuple[tuple[Any, ...] | None, str]:
    """The structural shape of a chat example and its turns' text.

    (shape, turns): everything the structural checks of a chat example read (`_Checker.chat`)
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
        tool_shapes = _tools_shape(tools)
        if tool_shapes is None:
            return None, _turns_text(data)
        shape += tool_shapes
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
        walked = _message_shape(m, role, content, ids, tool_id)
        if walked is None:
            return None, _turns_text(data)
        parts.append(walked[1])
        shape.append(walked[0])
    return tuple(shape), "\x1e".join(parts)


def _tools_shape(tools: Any) -> list[tuple[Any, ...]] | None:
    """The shape of each tool definition (`_Checker._tools`), or None if the shape cannot say."""
    if type(tools) is not list:
        return None
    out = []
    for tool in tools:
        fn = tool.get("function") if type(tool) is dict else None
        if type(fn) is not dict:
            return None
        name, params = fn.get("name"), fn.get("parameters")
        out.append(
            (
                tool.get("type") == "function",
                type(name) is str and _FUNCTION_NAME.match(name) is not None,
                0 if params is None else type(params) is dict and params.get("type", "object") == "object",
                type(fn.get("description")) is str,
            )
        )
    return out


def _message_shape(
    m: dict[str, Any], role: str, content: str | None, ids: dict[str, int], tool_id: re.Pattern[str] | None
) -> tuple[tuple[Any, ...], str] | None:
    """The shape and turn text of a message that is not a plain one.

    (shape, turn text) of a message other than a plain {role, content} one (`ids`: each tool call
    id met so far in the example, numbered), or None if the shape cannot say.
    """
    if "function_call" in m:
        return None
    weight = m.get("weight", _ABSENT)
    if weight is not _ABSENT and type(weight) is not int:
        return None
    calls = m.get("tool_calls")
    call_shapes: tuple[Any, ...] | None = None
    if calls is not None:
        call_shapes = _calls_shape(calls, ids, tool_id)
        if call_shapes is None:
            return None
    answers: int | None = None
    if role == "tool":
        call_id = m.get("tool_call_id")
        answers = ids.setdefault(call_id, len(ids)) if type(call_id) is str and call_id else -1
    shape = (
        role,
        0 if content is None else 1 if not content or content.isspace() else 2,
        weight,
        _MESSAGE_KEYS.issuperset(m),
        call_shapes,
        answers,
        type(m.get("name", "")) is str,
    )
    return shape, f"{role}\x1f{content or ''}\x1f{json.dumps(calls, sort_keys=True) if calls else ''}"


def _calls_shape(calls: Any, ids: dict[str, int], tool_id: re.Pattern[str] | None) -> tuple[Any, ...] | None:
    """The shape of a message's tool calls (`_Checker._tool_calls`), or None if the shape cannot say."""
    if type(calls) is not list:
        return None
    out = []
    for call in calls:
        fn = call.get("function") if type(call) is dict else None
        call_id = call.get("id") if fn is not None else None
        if type(fn) is not dict or type(call_id) is not str or not call_id:
            return None
        name, args = fn.get("name"), fn.get("arguments")
        out.append(
            (
                ids.setdefault(call_id, len(ids)),
                tool_id is None or tool_id.match(call_id) is not None,
                type(name) is str and _FUNCTION_NAME.match(name) is not None,
                type(args) is str and _json_ok(args),
            )
        )
    return tuple(out)


# --- the checker ---------------------------------------------------------------------------------------


class _Checker(_ContentChecks):
    """The per-example checks for one profile; reports into an `IssueCollector` (or a `_Collector`).

    A finding's severity comes from the profile (`Profile.severity`): an error only where a vendor
    rule refuses the data and the wire file keeps it. Keys the format does not take are tallied
    (`extra_keys`, `message_extra_keys`) and reported once for the whole file by `validate`.

    `check_chat` remembers the structural outcome of each shape it checks (see `_shape`) and skips
    the structural checks of a later example of a shape found clean.
    """

    def __init__(self, profile: Profile, issues: _IssueSink) -> None:
        super().__init__(profile, issues)
        self.tool_id = re.compile(profile.tool_call_id_pattern) if profile.tool_call_id_pattern else None
        self.without_system = 0
        self.without_user = 0
        self.message_extra_keys: Counter[str] = Counter()  # unknown message keys: examples with each
        self.message_extra_first: int | None = None
        # The shape memo (see `_shape`): each shape checked -> (clean, has a system / a user message).
        self._shapes: dict[tuple[Any, ...], tuple[bool, bool, bool]] = {}
        self._texty = bool(self.reserved)  # reserved keywords are searched for in every text

    # -- chat, through the shape memo ---------------------------------------------------------------

    def check_chat(
        self,
        data: Mapping[str, Any],
        line: int,
        shape: tuple[Any, ...] | None,
        text: str | None,
        flags: int | None,
    ) -> list[dict[str, Any]] | None:
        """Check a chat example from its precomputed shape, text and scan flags.

        `chat` for an example whose `_shape` is `shape` (None: none), whose turns are `text` and
        whose text scan gave `flags` (None: unknown), with the same findings and tallies.

        If an example of the same shape was checked clean, the structural checks would find nothing:
        only their tallies are kept, and the text checks run where the text may hold something.
        Otherwise the example is checked in full and the outcome remembered for its shape.
        """
        known = self._shapes.get(shape) if shape is not None else None
        if known is not None and known[0] and flags is not None and text is not None:
            messages: list[dict[str, Any]] = data["messages"]
            self.without_system += not known[1]
            self.without_user += not known[2]
            if (flags & _TEXT_FLAGS or self._texty) and self.text_findings(text, flags):
                self.prescan(flags)
                self.texts(messages, line)
            return messages
        structural = self.structural
        self.prescan(flags)
        checked = self.chat(data, line)
        if shape is not None:
            self._remember(shape, data["messages"], clean=self.structural == structural)
        return checked

    def _remember(self, shape: tuple[Any, ...], messages: list[Any], *, clean: bool) -> None:
        """Keep the structural outcome of an example of `shape` (while the memo has room)."""
        if len(self._shapes) < _MAX_SHAPES:
            roles = [m.get("role") for m in messages]
            self._shapes[shape] = (clean, "system" in roles, "user" in roles)

    # -- chat -------------------------------------------------------------------------------------

    def chat(self, data: Mapping[str, Any], line: int) -> list[dict[str, Any]] | None:
        """Check a chat example; the messages if they are well-formed enough to count, else None."""
        legacy = from_legacy_functions(data)
        if legacy is not None:
            self._legacy(data, legacy, line)
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

    def _legacy(self, data: Mapping[str, Any], legacy: Mapping[str, Any], line: int) -> None:
        """The warnings for OpenAI's legacy function calling (`legacy`: `data` rewritten as tools)."""
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
        # The common path stays in this loop (it runs for every message of an example checked in
        # full); what only a broken message or a tool answer needs is in helpers.
        for i, m in enumerate(messages, 1):
            at = f"message {i}"
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ROLES:
                self._bad_message(m, role, at, line)
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
                self._tally_message_keys(m, line)
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
                self._tool_answer(m, at, line, open_calls)
        if not ok:
            return False
        self._conversation(messages, roles, line, require_assistant=require_assistant)
        return True

    def _bad_message(self, m: Any, role: Any, at: str, line: int) -> None:
        """Report a message that is no object, or has no role or one unitune does not know (`role`)."""
        if not isinstance(m, dict):
            self.add("message_not_object", f"{at} must be an object with role and content", line)
        elif role is None:
            self.add("message_missing_role", f"{at} has no 'role'", line)
        else:
            self.add(
                "unrecognized_role",
                f"{at} has role {role!r}; use system, user, assistant or tool (lower case)",
                line,
            )

    def _tally_message_keys(self, m: Mapping[str, Any], line: int) -> None:
        """Tally a message's keys the format does not take, for one warning over the file."""
        # Such examples are never memoised as clean, so every one of them is counted (see `_shape`).
        self.structural += 1
        self.message_extra_keys.update(set(m) - _MESSAGE_KEYS)
        if self.message_extra_first is None:
            self.message_extra_first = line

    def _tool_answer(self, m: Mapping[str, Any], at: str, line: int, open_calls: dict[str, int]) -> None:
        """Pair a tool message with the open call it answers."""
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

    def _conversation(
        self, messages: list[dict[str, Any]], roles: list[str], line: int, *, require_assistant: bool
    ) -> None:
        """Check a conversation whose messages are each well-formed.

        The checks of a conversation whose messages are each well-formed: how it opens, its order,
        whether anything in it is trained on; and the file's tallies of missing roles.
        """
        p = self.p
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
        if not require_assistant:
            return
        if (
            p.weights
            and "assistant" in roles
            and not any(
                m.get("role") == "assistant" and weight_value(m.get("weight", 1)) != 0 for m in messages
            )
        ):
            self.add(
                "no_trained_turn", "every assistant message has weight 0: nothing in it is trained on", line
            )
        if "system" not in roles:
            self.without_system += 1
        if "user" not in roles:
            self.without_user += 1

    def _content(self, m: Mapping[str, Any], role: str, at: str, line: int, *, joined: bool = False) -> None:
        calls = bool(m.get("tool_calls"))
        content = m.get("content")
        if content is None:
            if not (role == "assistant" and calls):
                if "content" not in m:
                    self.add("missing_content", f"{at} ({role}) has no 'content'", line)
                else:
                    self.add("null_content", f"{at} ({role}) content is null", line)
            return
        kept_images = 0  # images the wire file keeps (an image-only message is not empty)
        if isinstance(content, list):
            parts = self._parts(content, role, at, line)
            if parts is None:
                return
            text, kept_images = parts
        elif isinstance(content, str):
            text = content
        else:
            self.add(
                "content_not_string", f"{at} content must be a string, got {type(content).__name__}", line
            )
            return
        if not text and not calls and not kept_images:
            self._empty(role, at, line)
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

    def _empty(self, role: str, at: str, line: int) -> None:
        if role == "assistant":
            self.add("empty_reply", f"{at}: the assistant's content is empty", line)
        elif role == "system":
            self.add("empty_system", f"{at}: the system message is empty", line)
        else:
            self.add("empty_content", f"{at} ({role}) content is empty", line)

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
        if p.no_repeat or p.transitions is not None:
            self._alternation(turns, line)
        if require_assistant:
            self._replies(roles, turns, line)

    def _alternation(self, turns: Sequence[str], line: int) -> None:
        """The first pair of turns in an order the profile refuses (a repeated role, a transition)."""
        p = self.p
        for i in range(1, len(turns)):
            prev, cur = turns[i - 1], turns[i]
            if p.no_repeat and prev == cur:
                self.add(
                    "consecutive_roles",
                    f"two {cur!r} messages in a row; {p.name} needs turns to alternate"
                    + _wire_says(p, "consecutive_roles"),
                    line,
                )
                return
            allowed_next = p.transitions.get(prev) if p.transitions is not None else None
            if allowed_next is not None and cur not in allowed_next:
                self.add(
                    "invalid_role_order", f"a {cur!r} message cannot follow a {prev!r} one for {p.name}", line
                )
                return

    def _replies(self, roles: Sequence[str], turns: Sequence[str], line: int) -> None:
        """The order checks of an example that is trained on (not a preference pair's input)."""
        p = self.p
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
        """Check a preference pair; its input messages and preferred output, to count, or None."""
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


def _wire_says(profile: Profile, code: str) -> str:
    """The suffix "; unitune's wire file: <what it does>", where the conversion repairs the problem."""
    check = profile.checks.get(code)
    return f"; unitune's wire file: {check.wire}" if check is not None and check.wire else ""
