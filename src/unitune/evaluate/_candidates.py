"""Candidates: the models an evaluation compares, each on its own provider, and how their prompts are built.

A candidate is a model on a provider, optionally with a system prompt and k examples prepended to
every prompt (few-shot prompting). The command line writes one as a spec string:

    base                       the base model of the tuned candidate(s), asked zero-shot
    base:few-shot=5            the same base model with 5 examples from the training split
    together:ft-abc123         a model on another provider (`provider:model`)
    local:job-1a2b             a job the ledger knows: its tuned model (and its base model, for prices)
    gpt-4.1-mini               a model on the client's own provider (a baseline when the catalog
                               lists it as a base model there, else a tuned model)
    my-model:role=baseline     any of these with its role said outright
    mine=together:ft-abc123    any of the above with a label of its own (`name=spec`)
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from unitune.errors import ConfigurationError
from unitune.evaluate._report import Role
from unitune.types import Message

if TYPE_CHECKING:
    from unitune.providers.base import Provider
    from unitune.types import Job

__all__ = ["BASE", "Candidate", "Item", "build_prompt", "draw_shots", "slugify"]

#: The spec word for "the base model of the tuned candidate".
BASE = "base"

_OPTION = re.compile(r"^(?P<rest>.*):(?P<key>few-shot|role)=(?P<value>[^:]*)$")
_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.+-]+)=(?P<spec>.+)$")


@dataclass(frozen=True)
class Candidate:
    """One model to evaluate.

    Attributes:
        model: the model id (a base model, a tuned model, or a portable alias); None with
            `base=True` for "the tuned candidate's base model".
        provider: a registered provider name, a `Provider`, or None for the client's provider.
        name: the label in the report; defaults to "base", "base+5-shot", "tuned" or the model id.
        system: a system prompt that replaces the examples' own (None keeps theirs).
        few_shot: how many training examples to prepend to every prompt (0: zero-shot).
        role: "tuned" or "baseline"; by default a few-shot or base candidate is a baseline, and so
            is a model the catalog lists as a base model of its provider; any other is tuned.
        base: this candidate is the base model of the tuned candidate(s).
        base_model: the model a tuned model was trained from (for its catalog prices).
        training_usd: what training cost, for the break-even; taken from the job when known.
        chat_params: chat settings for this candidate only, over the evaluation's own.
    """

    model: str | None = None
    provider: str | Provider | None = None
    name: str | None = None
    system: str | None = None
    few_shot: int = 0
    role: Role | None = None
    base: bool = False
    base_model: str | None = None
    training_usd: float | None = None
    chat_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.few_shot, bool) or not isinstance(self.few_shot, int) or self.few_shot < 0:
            raise ConfigurationError(
                f"few_shot must be a whole number of examples (0 or more), not {self.few_shot!r}.",
                fix="Pass e.g. Candidate(model=..., few_shot=5).",
            )
        if self.model is None and not self.base:
            raise ConfigurationError(
                "A candidate needs a model.", fix="Pass Candidate(model='...'), or Candidate(base=True)."
            )
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise ConfigurationError(f"A candidate's model must be a model id, not {self.model!r}.")
        if self.role not in (None, "tuned", "baseline"):
            raise ConfigurationError(f"role must be 'tuned' or 'baseline', not {self.role!r}.")
        if self.training_usd is not None and (
            isinstance(self.training_usd, bool)
            or not isinstance(self.training_usd, (int, float))
            or self.training_usd < 0
        ):
            raise ConfigurationError(f"training_usd must be a cost in USD, not {self.training_usd!r}.")
        if not isinstance(self.chat_params, Mapping):
            raise ConfigurationError("chat_params must be a dict of chat settings.")

    @property
    def inferred_role(self) -> Role:
        """The role given, or the one its shape implies (few-shot and base candidates are baselines)."""
        if self.role is not None:
            return self.role
        return "baseline" if self.base or self.few_shot else "tuned"

    @property
    def label(self) -> str:
        """The name given, or one built from what the candidate is."""
        if self.name:
            return self.name
        stem = BASE if self.base else (self.model or BASE)
        if self.base and self.inferred_role == "baseline" and not self.few_shot:
            return BASE
        if not self.base and self.inferred_role == "tuned" and not self.few_shot:
            stem = self.model or "tuned"
        return f"{stem}+{self.few_shot}-shot" if self.few_shot else stem

    @classmethod
    def parse(cls, spec: str, providers: Collection[str] = ()) -> Candidate:
        """A candidate from its command-line spec (see the module's docstring).

        `providers` are the registered provider names: `name:rest` is read as provider and model
        only when `name` is one of them, so a model id with colons (`ft:gpt-4o-mini:org::id`)
        stays whole.

        Args:
            spec: the spec, e.g. "base:few-shot=5", "together:MODEL" or "mine=together:MODEL".
            providers: the registered provider names.

        Raises:
            ConfigurationError: the spec is empty, names no model, or has a bad or repeated option.
        """
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigurationError(
                f"A candidate spec must be text such as 'base', 'base:few-shot=5' or 'together:MODEL', not {spec!r}."
            )
        text = spec.strip()
        name: str | None = None
        named = _NAME.match(text)
        if named and ":" not in named["name"]:
            name, text = named["name"], named["spec"]
        rest, options = _options(spec, text)
        few_shot, role = int(options.get("few-shot", 0)), cast("Role | None", options.get("role"))
        if not rest:
            raise ConfigurationError(
                f"The candidate {spec!r} names no model.", fix="Write e.g. 'base:few-shot=5'."
            )
        if rest == BASE:
            return cls(name=name, base=True, few_shot=few_shot, role=role)
        provider, sep, model = rest.partition(":")
        if sep and provider in providers and model:
            return cls(model=model, provider=provider, name=name, few_shot=few_shot, role=role)
        return cls(model=rest, name=name, few_shot=few_shot, role=role)

    @classmethod
    def from_job(cls, job: Job, *, name: str | None = None, training_usd: float | None = None) -> Candidate:
        """The tuned model of a finished job, with its base model (for prices) and its provider.

        Args:
            job: the finished job.
            name: the candidate's label in the report; default "tuned".
            training_usd: what the training cost, for the report's cost figures; None when unknown.

        Raises:
            ConfigurationError: the job has no tuned model yet.
        """
        if not job.fine_tuned_model:
            raise ConfigurationError(
                f"Job {job.id} has no tuned model yet (status {job.status.value}).",
                fix="Wait for it to succeed (client.wait(job)) before evaluating it.",
            )
        return cls(
            model=job.fine_tuned_model, provider=job.provider, name=name or "tuned", role="tuned",
            base_model=job.model, training_usd=training_usd,
        )  # fmt: skip

    def with_name(self, name: str) -> Candidate:
        """This candidate under another label."""
        return replace(self, name=name)


def _options(spec: str, text: str) -> tuple[str, dict[str, str]]:
    """The spec without its trailing `:few-shot=K` / `:role=R` options, and the options, checked."""
    options: dict[str, str] = {}
    while (match := _OPTION.match(text)) is not None:
        key, value = match["key"], match["value"]
        if key in options:
            raise ConfigurationError(f"The candidate {spec!r} sets {key} twice.", fix=f"Keep one :{key}=.")
        if key == "few-shot" and not value.isdigit():
            raise ConfigurationError(
                f"In the candidate {spec!r}, few-shot must be a whole number, not {value!r}.",
                fix="Write e.g. 'base:few-shot=5'.",
            )
        if key == "role" and value not in ("tuned", "baseline"):
            raise ConfigurationError(
                f"In the candidate {spec!r}, role must be 'tuned' or 'baseline', not {value!r}.",
                fix="Write e.g. 'gpt-4.1-mini:role=baseline'.",
            )
        options[key] = value
        text = match["rest"]
    return text, options


def slugify(name: str, taken: Collection[str] = ()) -> str:
    """A file-safe form of a candidate name (`answers/<slug>.jsonl`), distinct from `taken`."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "candidate"
    slug = slug[:80]
    unique, n = slug, 2
    while unique in taken:
        unique, n = f"{slug}-{n}", n + 1
    return unique


# -- prompts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One evaluation example: the prompt messages, the reference answer, and where it came from."""

    index: int
    prompt: list[Message]
    reference: str
    line: int | None = None


def _fingerprint(prompt: Sequence[Message]) -> tuple[tuple[str, str], ...]:
    return tuple((m.role, " ".join(m.text.split())) for m in prompt if m.role != "system")


def draw_shots(pool: Sequence[Item], k: int, exclude: Sequence[Item], seed: int) -> list[Item]:
    """`k` examples drawn from `pool` (the training split) with a seeded generator.

    Examples whose prompt also appears in the evaluation set (`exclude`) are never drawn: a shot
    that contains the test question would hand the baseline its answer.
    """
    if k == 0:
        return []
    taken = {_fingerprint(item.prompt) for item in exclude}
    usable = [item for item in pool if _fingerprint(item.prompt) not in taken]
    if len(usable) < k:
        raise ConfigurationError(
            f"A {k}-shot candidate needs {k} training examples that are not in the evaluation set; "
            f"the training data has {len(usable)}.",
            fix="Pass more training data (train_data= / --train), or ask for fewer shots.",
        )
    return random.Random(seed).sample(usable, k)


def build_prompt(item: Item, shots: Sequence[Item], system: str | None) -> list[Message]:
    """The messages a candidate is sent: its system prompt, the shots as earlier turns, the prompt.

    The shots keep only their user and assistant turns (their own system prompt would repeat the
    one at the top); `system` replaces the example's own system messages when set.
    """
    lead = 0
    while lead < len(item.prompt) and item.prompt[lead].role == "system":
        lead += 1  # only leading system messages belong at the top; later ones stay in place
    head, tail = list(item.prompt[:lead]), list(item.prompt[lead:])
    if system is not None:
        head = [Message(role="system", content=system)]
    turns: list[Message] = []
    for shot in shots:
        turns.extend(m for m in shot.prompt if m.role != "system")
        turns.append(Message(role="assistant", content=shot.reference))
    return head + turns + tail
