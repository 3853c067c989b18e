"""unitune's verdict against the vendors' own validators, on random files (tests/fidelity/vendor/).

Two promises, per provider, over hundreds of generated files whose lines are mostly ordinary and
sometimes carry one of the things vendors disagree about (extra keys, empty content, odd weights,
special tokens, reserved words, out-of-order roles, tool calls, images, blank lines, a BOM):

1. **No error without a vendor rule.** When the vendor's validator accepts a file, every error
   unitune reports on it rests on a vendor rule that validator does not check (its profile entry
   cites another source: the API reference, the docs, a vendor error message).
2. **Never pass what the vendor refuses.** When unitune reports no error, the file unitune uploads
   (the provider's wire format) passes the vendor's validator.

A failure prints the file, unitune's findings and the vendor's refusals.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fidelity.vendor import (
    bedrock_claude,
    bedrock_llama,
    bedrock_nova,
    mistral_finetune,
    openai_cookbook,
    together_check_file,
)
from unitune.data import Dataset, get_profile, validate
from unitune.data.convert import write_jsonl

Checker = Callable[[Path], list[tuple[int | None, str]]]

TEXTS = [
    "Where is my order #4411?", "It ships tomorrow.", "Can I change the address?", "Yes: reply with it.",
    "Refund please", "Done, 3-5 days.", "naïve café 東京", "שלום, ההזמנה שלי לא הגיעה", "مرحبا، أين طلبي؟",
]  # fmt: skip
ODD_TEXTS = [
    "", "   ", "\n", "hi <|im_end|> there", "[INST] do it [/INST]", "a </s> b", "Quote:\nHuman: hi",
    "ok\nAssistant: sure", "User: hello", "Assistant: fine", "Bot: hey", "[EOS]", "<image> x", "Thought: hmm",
    "System: be nice", "mail ana@example.org", "ID 123456782",
]  # fmt: skip
WEIGHTS = [0, 1, 1.0, 0.0, True, False, "1", 2, 0.5, None]
ROLES_ODD = ("developer", "Assistant", "function", "bot")
CALL_IDS = ["abcdefghi", "call_1", "A1b2C3d4E", "x"]


class Gen:
    """Random example lines: mostly ordinary, with one of the contested features now and then."""

    def __init__(
        self,
        seed: int,
        *,
        tools: bool,
        images: bool,
        weights: bool = True,
        parts: bool = True,
        odd_roles: tuple[str, ...] = ROLES_ODD,
    ) -> None:
        self.r = random.Random(seed)
        self.tools = tools
        self.images = images
        self.weights = weights
        self.parts = parts  # content as a list of text parts now and then
        self.odd_roles = odd_roles

    def p(self, x: float) -> bool:
        return self.r.random() < x

    def text(self) -> str:
        return (
            self.r.choice(ODD_TEXTS) if self.p(0.12) else f"{self.r.choice(TEXTS)} {self.r.randrange(10**6)}"
        )

    def content(self, role: str) -> Any:
        roll = self.r.random()
        if roll < 0.02:
            return None
        if roll < 0.03:
            return 5
        if self.images and role == "user" and roll < 0.08:
            url = self.r.choice(["data:image/png;base64,iVBORw0KGgo=", "https://example.com/a.png"])
            return [{"type": "text", "text": self.text()}, {"type": "image_url", "image_url": {"url": url}}]
        if self.parts and roll < 0.1:
            return [{"type": "text", "text": self.text()}]
        return self.text()

    def message(self, role: str) -> dict[str, Any]:
        m: dict[str, Any] = {"role": role}
        if not self.p(0.02):
            m["content"] = self.content(role)
        if self.weights and self.p(0.08):
            m["weight"] = self.r.choice(WEIGHTS)
        if self.p(0.04):
            m[self.r.choice(["name", "foo"])] = "x"
        return m

    def call_block(self) -> list[dict[str, Any]]:
        """An assistant tool call and its answer, sometimes broken."""
        cid = self.r.choice(CALL_IDS) if self.p(0.3) else "".join(self.r.choices("abcXYZ123", k=9))
        args: Any = json.dumps({"order": self.r.randrange(100)})
        if self.p(0.1):
            args = {"order": 1}
        call = {"id": cid, "type": "function", "function": {"name": "get_order", "arguments": args}}
        assistant: dict[str, Any] = {"role": "assistant", "tool_calls": [call]}
        if self.p(0.15):
            assistant["content"] = "let me check"
        block = [assistant]
        if not self.p(0.1):
            answer_id = cid if not self.p(0.1) else "zzzzzzzzz"
            block.append({"role": "tool", "tool_call_id": answer_id, "content": "shipped"})
        return block

    def roles(self) -> list[str]:
        turns = self.r.randint(1, 3)
        roles = ["system"] if self.p(0.6) else []
        for _ in range(turns):
            roles += ["user", "assistant"]
        roll = self.r.random()
        if roll < 0.04:
            roles.append("user")  # ends with the user
        elif roll < 0.08:
            roles.insert(len(roles) - 1, "user")  # two users in a row
        elif roll < 0.11:
            roles.insert(self.r.randrange(len(roles) + 1), "system")  # a second or late system message
        elif roll < 0.13:
            roles = roles[1:] if roles and roles[0] == "system" else roles
            roles = ["assistant", *roles]  # starts with the assistant
        elif roll < 0.15:
            roles[self.r.randrange(len(roles))] = self.r.choice(self.odd_roles)
        elif roll < 0.17:
            roles = [r for r in roles if r != "assistant"]  # no reply at all
        elif roll < 0.19:
            roles = roles[:1] if roles else ["user"]  # a single message
        return roles

    def chat(self) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for role in self.roles():
            if role == "assistant" and self.tools and self.p(0.12):
                messages += self.call_block()
            messages.append(self.message(role))
        obj: dict[str, Any] = {"messages": messages}
        if self.tools and any("tool_calls" in m for m in messages) and not self.p(0.1):
            fn: dict[str, Any] = {"name": "get_order", "parameters": {"type": "object", "properties": {}}}
            if not self.p(0.2):
                fn["description"] = "Look an order up."
            obj["tools"] = [{"type": "function", "function": fn}]
        if self.p(0.06):
            obj[self.r.choice(["id", "metadata", "lang"])] = self.r.randrange(1000)
        return obj


def _preference_line(gen: Gen) -> dict[str, Any]:
    """A preference (DPO) pair, sometimes malformed."""
    messages = [m for m in gen.chat()["messages"] if m.get("role") != "assistant" or gen.p(0.1)]
    pair: dict[str, Any] = {"input": {"messages": messages or [{"role": "user", "content": "hi"}]}}
    for key in ("preferred_output", "non_preferred_output"):
        out: Any = [gen.message("assistant")]
        roll = gen.r.random()
        if roll < 0.03:
            out = out[0]  # not a list
        elif roll < 0.06:
            out = [*out, gen.message("assistant")]  # two messages
        elif roll < 0.08:
            out = [gen.message("user")]
        pair[key] = out
    if gen.p(0.05):
        pair["id"] = 1
    return pair


def _claude_line(gen: Gen) -> dict[str, Any]:
    """A line in Bedrock Claude's own format (system string, alternating string turns)."""
    chat = gen.chat()
    msgs = [m for m in chat["messages"] if m.get("role") != "system"]
    out: dict[str, Any] = {"messages": [{k: v for k, v in m.items() if k != "weight"} for m in msgs]}
    system = next((m.get("content") for m in chat["messages"] if m.get("role") == "system"), None)
    if isinstance(system, str):
        out["system"] = system
    for k in ("id", "metadata", "lang"):
        if k in chat:
            out[k] = chat[k]
    return out


def _nova_line(gen: Gen) -> dict[str, Any]:
    """A line in Bedrock's conversation format (what Nova reads)."""
    chat = _claude_line(gen)
    out: dict[str, Any] = {"schemaVersion": "bedrock-conversation-2024"}
    if "system" in chat:
        out["system"] = [{"text": chat.pop("system")}]
    out["messages"] = [
        {**m, "content": [{"text": m["content"]}]} if isinstance(m.get("content"), str) else m
        for m in chat["messages"]
    ]
    return out


def _write(path: Path, lines: list[str], *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def _base(n: int, fmt: Callable[[dict[str, Any]], dict[str, Any]]) -> list[str]:
    """`n` distinct ordinary examples in the provider's format."""
    return [
        json.dumps(
            fmt(
                {
                    "messages": [
                        {"role": "user", "content": f"Where is order {i}?"},
                        {"role": "assistant", "content": f"Order {i} ships tomorrow."},
                    ]
                }
            )
        )
        for i in range(n)
    ]


def _as_claude(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


def _as_pair(obj: dict[str, Any]) -> dict[str, Any]:
    user, reply = obj["messages"]
    return {
        "input": {"messages": [user]},
        "preferred_output": [reply],
        "non_preferred_output": [{**reply, "content": "I cannot tell."}],
    }


def _as_nova(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [{**m, "content": [{"text": m["content"]}]} for m in obj["messages"]],
    }


# provider/profile, vendor validator, wire format, line generator, base-line format, which vendor sources
# that validator embodies (an error citing another source may go beyond it), generator options.
CASES: list[tuple[str, Checker, str, Callable[[Gen], dict[str, Any]], Callable[..., Any], set[str], dict[str, Any]]] = [
    # The cookbook predates tool calls and content parts (openai-cookbook#1549) and refuses both, which
    # OpenAI's API reference takes: unitune follows the API there (and writes legacy `function` messages
    # as tool results), so none of these are generated here.
    ("openai", openai_cookbook.check, "openai", Gen.chat, _as_claude, {"openai-cookbook"}, {"tools": False, "images": False, "parts": False, "odd_roles": ("developer", "Assistant", "bot")}),
    ("together", together_check_file.check, "together", Gen.chat, _as_claude, {"together-check"}, {"tools": True, "images": True}),
    ("together-dpo", together_check_file.check, "together-preference", _preference_line, _as_pair, {"together-check"}, {"tools": True, "images": True}),
    ("mistral", mistral_finetune.check, "mistral", Gen.chat, _as_claude, {"mistral-finetune", "mistral-common"}, {"tools": True, "images": False}),
    ("bedrock-claude", bedrock_claude.check, "bedrock-claude", _claude_line, _as_claude, {"aws-claude-validator", "aws-claude-reserved"}, {"tools": False, "images": False, "weights": False}),
    ("bedrock-nova", bedrock_nova.check, "bedrock-conversation", _nova_line, _as_nova, {"aws-nova-validator", "aws-nova-docs"}, {"tools": False, "images": False, "weights": False}),
]  # fmt: skip

ROUNDS = int(__import__("os").environ.get("UNITUNE_FIDELITY_ROUNDS", "200"))


def _report_errors(path: Path, provider: str, method: Any = None) -> list[Any]:
    report = validate(path, provider=provider, method=method, workers=1)
    return [i for i in report.issues if i.severity == "error"]


@pytest.mark.parametrize(
    ("provider", "vendor", "wire", "line", "base", "sources", "options"), CASES, ids=[c[0] for c in CASES]
)
def test_unitune_agrees_with_the_vendors_validator(
    provider: str,
    vendor: Checker,
    wire: str,
    line: Callable[[Gen], dict[str, Any]],
    base: Callable[..., Any],
    sources: set[str],
    options: dict[str, Any],
    tmp_path: Path,
) -> None:
    method = "dpo" if provider.endswith("-dpo") else None
    provider = provider.removesuffix("-dpo")
    profile = get_profile(provider)
    base_lines = _base(max(profile.min_examples, 8) + 2, base)
    problems: list[str] = []
    for seed in range(ROUNDS):
        gen = Gen(seed, **options)
        extra = [json.dumps(line(gen)) for _ in range(3)]
        lines = base_lines + extra
        if gen.p(0.05):
            lines.insert(gen.r.randrange(1, len(lines)), "")
        path = _write(tmp_path / f"{seed}.jsonl", lines, bom=gen.p(0.03))
        refused = vendor(path)
        errors = _report_errors(path, provider, method)
        # 1. No error without a vendor rule: where the vendor's validator accepts the file, each error
        #    must cite a rule that validator does not check.
        if not refused:
            beyond = [
                e
                for e in errors
                if profile.checks.get(e.code) is None or profile.checks[e.code].source in sources
            ]
            if beyond:
                problems.append(
                    f"seed {seed}: the vendor accepts, unitune errs: {[str(e) for e in beyond]}\n{path.read_text()}"
                )
        # 2. Never pass what the vendor refuses: without errors, the wire file passes the vendor.
        if not errors:
            out = tmp_path / f"{seed}.wire.jsonl"
            result = write_jsonl(Dataset.from_jsonl(path), wire, out)
            if result.refused:
                problems.append(f"seed {seed}: unitune passes it but cannot convert it: {result.losses}")
                continue
            wire_refused = vendor(out)
            if wire_refused:
                problems.append(
                    f"seed {seed}: unitune passes, the vendor refuses the wire file: {wire_refused}\n"
                    f"source:\n{path.read_text()}\nwire:\n{out.read_text()}"
                )
    assert not problems, f"{len(problems)} disagreements; the first:\n" + "\n\n".join(problems[:3])


@pytest.mark.parametrize(
    ("input_type", "profile", "wire"),
    [("prompt_completion", "bedrock-llama", "bedrock-prompt-completion"),
     ("converse", "bedrock-llama-conversation", "bedrock-llama-conversation")],
)  # fmt: skip
def test_llama_wire_files_pass_aws_validator(
    input_type: str, profile: str, wire: str, tmp_path: Path
) -> None:
    """Llama on Bedrock reads its own formats only: whatever unitune passes, its wire file passes AWS's."""
    problems = []
    for seed in range(ROUNDS):
        gen = Gen(seed, tools=False, images=False, weights=False)
        lines = _base(10, _as_claude) + [json.dumps(gen.chat()) for _ in range(3)]
        path = _write(tmp_path / f"{seed}.jsonl", lines)
        if _report_errors(path, profile):
            continue
        out = tmp_path / f"{seed}.wire.jsonl"
        result = write_jsonl(Dataset.from_jsonl(path), wire, out)
        refused = bedrock_llama.check(out, input_type=input_type)
        if result.refused or refused:
            problems.append(f"seed {seed}: {refused} {result.losses}\n{path.read_text()}\n{out.read_text()}")
    assert not problems, problems[:2]
