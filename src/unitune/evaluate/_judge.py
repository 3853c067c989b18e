"""An LLM judge: pairwise comparison of two candidates' answers, each pair judged in both orders.

A judge model tends to prefer whichever answer it reads first (position bias). Asking twice, with
the answers swapped, and counting a win only when both orders agree cancels that: a pair the judge
decides differently by position is a tie. The judge's reasons are kept for the report.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from unitune.errors import ConfigurationError
from unitune.types import Message

if TYPE_CHECKING:
    from unitune.providers.base import Provider

__all__ = ["DEFAULT_RUBRIC", "Judge", "Verdict", "combine", "judge_prompt", "parse_verdict"]

DEFAULT_RUBRIC = (
    "Judge which answer better serves the user: correct first (agrees with the reference answer "
    "when one is given), then complete, then concise and in the format asked for. Length alone is "
    "not quality."
)

Verdict = Literal["A", "B", "tie"]

_WINNER_LINE = re.compile(r"winner\s*[:=]\s*\"?(A|B|tie)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Judge:
    """A model that compares two answers.

    Attributes:
        model: the judge model's id.
        provider: a registered provider name, a `Provider`, or None for the client's provider.
        rubric: what "better" means for this task; the default favours correctness, then
            completeness, then concision.
        show_reference: give the judge the reference answer (recommended when there is one).
        chat_params: settings for the judge's chat calls (e.g. `{"temperature": 0}`); none by
            default, since some models refuse a temperature.
    """

    model: str
    provider: str | Provider | None = None
    rubric: str = DEFAULT_RUBRIC
    show_reference: bool = True
    chat_params: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigurationError(
                f"A judge needs a model id, not {self.model!r}.", fix="Pass Judge(model='...')."
            )
        if not isinstance(self.rubric, str) or not self.rubric.strip():
            raise ConfigurationError(
                "The judge's rubric is empty.", fix="Pass a rubric, or leave it out for the default."
            )

    @classmethod
    def parse(cls, spec: str, providers: tuple[str, ...] | list[str] | set[str] = ()) -> Judge:
        """A judge from `provider:model` or `model` (the client's provider).

        Args:
            spec: "provider:model", or a model id on the client's provider.
            providers: the registered provider names: a prefix is read as a provider only when it is
                one of them, so a model id with colons stays whole.

        Raises:
            ConfigurationError: the spec is empty or not text.
        """
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigurationError(f"A judge spec must be 'provider:model' or 'model', not {spec!r}.")
        provider, sep, model = spec.strip().partition(":")
        if sep and provider in providers and model:
            return cls(model=model, provider=provider)
        return cls(model=spec.strip())


def judge_prompt(
    judge: Judge, question: list[Message], reference: str, first: str, second: str
) -> list[Message]:
    """The messages sent to the judge for one ordering of one pair."""
    conversation = "\n".join(f"[{m.role}] {m.text}" for m in question if m.role != "system")
    parts = [
        f"Rubric: {judge.rubric}",
        f"Conversation so far:\n{conversation}",
    ]
    if judge.show_reference:
        parts.append(f"Reference answer:\n{reference}")
    parts += [
        f"Answer A:\n{first}",
        f"Answer B:\n{second}",
        'Reply with JSON only: {"winner": "A" or "B" or "tie", "reason": "<one sentence>"}',
    ]
    return [
        Message(
            role="system", content="You are a strict, impartial judge of two answers to the same request."
        ),
        Message(role="user", content="\n\n".join(parts)),
    ]


_WINNERS: dict[str, Verdict] = {"a": "A", "b": "B", "tie": "tie"}


def _json_verdict(text: str) -> tuple[Verdict, str] | None:
    """The last JSON object in `text` that names a winner.

    Read from the last `{` backwards: the answers being judged may themselves be JSON, quoted
    before the verdict, and a greedy match from the first brace to the last would swallow them.
    """
    decoder = json.JSONDecoder()
    start = text.rfind("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict) and "winner" in value:
            winner = _WINNERS.get(str(value["winner"]).strip().lower())
            if winner is not None:
                reason = value.get("reason")
                return winner, "" if reason is None else str(reason)
        start = text.rfind("{", 0, start)
    return None


def parse_verdict(text: str) -> tuple[Verdict, str] | None:
    """(winner, reason) from the judge's reply, or None when it cannot be read.

    JSON is asked for; a `winner: A` line is accepted too, since smaller judges drift from JSON.
    """
    text = text or ""
    found = _json_verdict(text)
    if found is not None:
        return found
    line = _WINNER_LINE.search(text)
    if line:
        return _WINNERS[line.group(1).lower()], text.strip()[:500]
    return None


def combine(candidate_first: Verdict, baseline_first: Verdict) -> Literal["candidate", "baseline", "tie"]:
    """One outcome from both orders: a win counts only when the judge picks it in both.

    `candidate_first` is the verdict with the candidate's answer as A; `baseline_first` with the
    baseline's answer as A (so there the candidate is B).
    """
    if candidate_first == "A" and baseline_first == "B":
        return "candidate"
    if candidate_first == "B" and baseline_first == "A":
        return "baseline"
    return "tie"
