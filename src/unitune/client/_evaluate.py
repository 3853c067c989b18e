"""`FineTuneClient.evaluate`: turn candidates (specs, `Candidate`s, `Job`s) into resolved ones.

Each candidate is asked through a client for its own provider, so it gets that provider's settings
and retry policy; a provider that is not configured fails here, before any request is made. The
ledger supplies what a bare job id or tuned model id leaves out: the base model (for the `base`
candidate and for prices) and the trained tokens (for the training cost).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitune.errors import ConfigurationError, UnituneError
from unitune.evaluate._candidates import Candidate, slugify
from unitune.evaluate._judge import Judge
from unitune.providers.base import Provider
from unitune.types import Job

if TYPE_CHECKING:
    from unitune.catalog._schema import InferencePrice
    from unitune.client._sync import FineTuneClient
    from unitune.evaluate._evaluate import JudgeSetup, Resolved

__all__ = ["CandidateInput", "Resolver"]

#: What `candidates=` takes: a spec string, a `Candidate`, or a finished `Job`.
CandidateInput = str | Candidate | Job


class Resolver:
    """Builds (and afterwards closes) a client per provider the candidates and the judge name."""

    def __init__(self, client: FineTuneClient, stack: ExitStack) -> None:
        self.client = client
        self.stack = stack
        self._clients: dict[str, FineTuneClient] = {client.provider.name: client}

    def providers(self) -> list[str]:
        """Every registered provider name (a spec's `name:` prefix is a provider only if listed)."""
        from unitune.providers.registry import list_providers

        return [p.name for p in list_providers()]

    def client_for(
        self, provider: str | Provider | None, what: str
    ) -> tuple[Provider, Callable[[Callable[[], Any]], Any]]:
        """The provider and retry runner for `provider` (None: this client's)."""
        if isinstance(provider, Provider):
            _ready(provider, what, provider.name)
            return provider, lambda fn: self.client.retry.call("chat", fn)
        name = provider or self.client.provider.name
        sub = self._clients.get(name)
        if sub is None:
            from unitune.client._sync import FineTuneClient

            try:
                sub = FineTuneClient(name, config=self.client.config, ledger=self.client.ledger or False,
                                     clock=self.client.clock)  # fmt: skip
            except UnituneError as e:
                raise ConfigurationError(
                    f"{what} is on {name!r}, which cannot be used here: {e}",
                    fix=f"Configure {name!r} (its section in unitune.toml or its API key), or drop that candidate.",
                ) from None
            self.stack.callback(sub.close)
            self._clients[name] = sub
        _ready(sub.provider, what, name)
        bound = sub
        return bound.provider, lambda fn: bound.retry.call("chat", fn)

    # -- candidates --------------------------------------------------------------------------------

    def normalise(self, candidate: CandidateInput) -> Candidate:
        """A `Candidate` from any accepted form, with what the ledger knows filled in."""
        if isinstance(candidate, Job):
            return Candidate.from_job(candidate, training_usd=self._training_usd(candidate))
        if isinstance(candidate, str):
            candidate = Candidate.parse(candidate, self.providers())
        if not isinstance(candidate, Candidate):
            raise ConfigurationError(
                f"A candidate must be a spec string, a Candidate or a Job, not a {type(candidate).__name__}.",
                fix="Pass e.g. candidates=['base', 'base:few-shot=5', job].",
            )
        if candidate.base or candidate.model is None:
            return candidate
        return self._from_ledger(candidate)

    def _from_ledger(self, candidate: Candidate) -> Candidate:
        ledger = self.client.ledger
        provider = candidate.provider if isinstance(candidate.provider, str) else self.client.provider.name
        if ledger is None or isinstance(candidate.provider, Provider):
            return candidate
        assert candidate.model is not None
        entry = ledger.get(provider, candidate.model)
        if entry is None:
            entry = next((e for e in ledger.list(provider=provider, limit=1000)
                          if e.fine_tuned_model == candidate.model), None)  # fmt: skip
        if entry is None or not entry.fine_tuned_model:
            return candidate
        job: Job | None = None
        try:
            job = self.client_for(provider, f"The candidate {candidate.label}")[0].get_job(entry.job_id)
        except UnituneError:
            job = None  # prices and the base model still come from the ledger; only the cost is lost
        training = (
            candidate.training_usd
            if candidate.training_usd is not None
            else (self._training_usd(job) if job is not None else None)
        )
        name = candidate.name or ("tuned" if candidate.model == entry.job_id else None)
        return Candidate(
            model=entry.fine_tuned_model, provider=provider, name=name, system=candidate.system,
            few_shot=candidate.few_shot, role=candidate.role or "tuned", base_model=candidate.base_model or entry.model,
            training_usd=training, chat_params=candidate.chat_params,
        )  # fmt: skip

    def _training_usd(self, job: Job) -> float | None:
        """What the job's training cost: its trained tokens at the catalog's price, when both are known."""
        entry = (
            self.client.catalog.find(job.provider, job.model)
            if job.provider in self.client.catalog.providers
            else None
        )
        if entry is None:
            return None
        price = next((t for t in entry.training if t.method in ("sft", "any")), None)
        if price is None:
            return None
        if price.per_hour == 0:
            return 0.0  # your own hardware
        if price.per_million_tokens is not None and job.trained_tokens:
            return round(job.trained_tokens * price.per_million_tokens / 1e6, 6)
        return None

    def _price(self, provider: str, model: str, tuned: bool) -> tuple[InferencePrice | None, str]:
        catalog = self.client.catalog
        entry = catalog.find(provider, model) if provider in catalog.providers else None
        if entry is None:
            return None, f"no inference price for {model} on {provider} in the catalog"
        price = entry.tuned_inference if tuned else entry.base_inference
        if price is None:
            return (
                None,
                f"no {'tuned' if tuned else 'base'} inference price for {entry.id} on {provider} in the catalog",
            )
        note = f"{price.source}, as of {price.as_of}" + ("" if price.verified else " (unverified)")
        return price, note

    def resolve(self, inputs: Sequence[CandidateInput], chat_params: Mapping[str, Any]) -> list[Resolved]:
        """Resolved candidates with unique names and slugs, base candidates bound to the tuned model's base."""
        from unitune.evaluate._evaluate import Resolved

        if isinstance(inputs, (str, Candidate, Job)) or not isinstance(inputs, Sequence):
            inputs = [inputs]
        candidates = [self.normalise(c) for c in inputs]
        if not candidates:
            raise ConfigurationError("candidates is empty.", fix="Pass e.g. candidates=['base', job].")
        # One base per (provider name, model): a Job names its provider, a bare Candidate means the
        # client's own, and both may be the same base. The first candidate's provider value (a name
        # or an instance) is the one the base is asked through.
        bases: dict[tuple[str, str], str | Provider | None] = {}
        for c in candidates:
            if c.inferred_role == "tuned" and c.base_model:
                bases.setdefault((self._provider_name(c.provider), c.base_model), c.provider)
        resolved: list[Resolved] = []
        names: set[str] = set()
        for c in candidates:
            if c.base:
                c = self._bind_base(c, bases)
            elif c.role is None and not c.few_shot and self._is_base_model(c.provider, c.model):
                c = replace(c, role="baseline")  # a model the catalog offers to tune from: a baseline
            label = c.label
            if label in names:
                raise ConfigurationError(
                    f"Two candidates are both called {label!r}.",
                    fix="Name them: 'mine=together:MODEL' or Candidate(name=...).",
                )
            names.add(label)
            provider, run = self.client_for(c.provider, f"The candidate {label!r}")
            assert c.model is not None
            model = self._resolve_model(provider, c.model)
            role = c.inferred_role
            price, note = self._price(
                provider.name, c.base_model or model if role == "tuned" else model, role == "tuned"
            )
            resolved.append(Resolved(
                name=label, slug=slugify(label, {r.slug for r in resolved}), provider=provider, model=model,
                role=role, run=run, few_shot=c.few_shot, system=c.system, params={**chat_params, **c.chat_params},
                price=price, price_note=note, training_usd=c.training_usd if role == "tuned" else None,
            ))  # fmt: skip
        return resolved

    def _is_base_model(self, provider: str | Provider | None, model: str | None) -> bool:
        name = self._provider_name(provider)
        catalog = self.client.catalog
        return model is not None and name in catalog.providers and catalog.find(name, model) is not None

    def _provider_name(self, provider: str | Provider | None) -> str:
        if isinstance(provider, Provider):
            return provider.name
        return provider or self.client.provider.name

    def _bind_base(self, c: Candidate, bases: dict[tuple[str, str], str | Provider | None]) -> Candidate:
        if c.model is not None:
            return c
        if len(bases) != 1:
            known = ", ".join(sorted(f"{p}:{m}" for p, m in bases)) or "none"
            raise ConfigurationError(
                f"'base' needs exactly one tuned candidate with a known base model (found: {known}).",
                fix="Name the base model instead: --candidate MODEL:role=baseline (or Candidate(model=..., role='baseline')).",
            )
        (_, model), provider = next(iter(bases.items()))
        return Candidate(model=model, provider=c.provider or provider, name=c.name or c.label, system=c.system,
                         few_shot=c.few_shot, role=c.role or "baseline", chat_params=c.chat_params)  # fmt: skip

    def _resolve_model(self, provider: Provider, model: str) -> str:
        catalog = self.client.catalog
        if provider.name not in catalog.providers:
            return model
        try:
            return catalog.resolve(provider.name, model)
        except ConfigurationError:
            return model  # a tuned model id is not in the catalog, and need not be

    def judge(self, judge: str | Judge | None) -> JudgeSetup | None:
        """The judge with the provider its calls go through, or None."""
        if judge is None:
            return None
        from unitune.evaluate._evaluate import JudgeSetup

        if isinstance(judge, str):
            judge = Judge.parse(judge, self.providers())
        if not isinstance(judge, Judge):
            raise ConfigurationError(
                f"judge must be 'provider:model' or a Judge, not a {type(judge).__name__}.",
                fix="Pass e.g. judge='together:meta-llama/Llama-3.3-70B-Instruct-Turbo'.",
            )
        provider, run = self.client_for(judge.provider, "The judge")
        return JudgeSetup(judge=judge, provider=provider, run=run)


def _ready(provider: Provider, what: str, name: str) -> None:
    """Fail before any request when a candidate's provider cannot make calls (no key, say)."""
    try:
        provider.check_ready()
    except ConfigurationError as e:
        message = str(e)
        if e.fix and message.endswith(e.fix):
            message = message[: -len(e.fix)].rstrip()  # the fix is carried as the fix, not twice
        raise ConfigurationError(
            f"{what} is on {name!r}, which is not configured: {message}", fix=e.fix
        ) from None


def as_directory(value: object) -> Path | None:
    """`output_dir` as a Path (None: keep nothing on disk)."""
    if value is None:
        return None
    if isinstance(value, (str, Path)) and str(value):
        return Path(value)
    raise ConfigurationError(f"output_dir must be a directory path, not {value!r}.")
