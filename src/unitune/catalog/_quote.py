"""Quotes: what a fine-tune will cost on a provider, line by line, each line with its source and date."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from unitune.catalog._catalog import Catalog, ModelLifecycle
from unitune.catalog._schema import EpochRule, InferencePrice, ModelEntry, Sourced, TrainingPrice
from unitune.errors import ConfigurationError, DatasetError
from unitune.types import Hyperparameters, TrainingMethod, content_text

__all__ = [
    "COMPARE_EPOCHS",
    "BreakEven",
    "DatasetTokens",
    "EpochRange",
    "Quote",
    "QuoteLine",
    "compare",
    "count_dataset_tokens",
    "default_epochs",
    "epoch_range",
    "estimate",
    "make_quote",
    "rank",
]

# OpenAI's documented default (the cookbook's constants): aim for 3 epochs, but at least 100 examples'
# worth of training and at most 25,000, within 1..25 epochs.
_TARGET_EPOCHS, _MIN_TARGET, _MAX_TARGET, _MIN_EPOCHS, _MAX_EPOCHS = 3, 100, 25_000, 1, 25


def default_epochs(rule: EpochRule, n_examples: int) -> int:
    """The epochs a provider picks when the caller does not say.

    Args:
        rule: the provider's (or the model's) default-epochs rule from the catalog.
        n_examples: the number of training examples.
    """
    if rule.kind == "fixed" or n_examples <= 0:
        return rule.default
    if rule.kind == "by_size":  # the local trainer's rule
        return 3 if n_examples < 1_000 else 2 if n_examples < 10_000 else 1
    epochs = _TARGET_EPOCHS
    if n_examples * _TARGET_EPOCHS < _MIN_TARGET:
        epochs = min(_MAX_EPOCHS, _MIN_TARGET // n_examples)
    elif n_examples * _TARGET_EPOCHS > _MAX_TARGET:
        epochs = max(_MIN_EPOCHS, _MAX_TARGET // n_examples)
    return epochs


class EpochRange(NamedTuple):
    """The epochs a provider's API takes for a model (inclusive), with where that was read."""

    low: int
    high: int
    source: str


# The epoch ranges the vendors document, per (provider, model family; None: every model). Only where a
# source gives one: Together checks its own limits at create time (GET /fine-tunes/models/limits),
# OpenAI's and Mistral's ranges were not found. Move to the catalog's schema when it has a field.
_EPOCH_RANGES: dict[tuple[str, str | None], EpochRange] = {
    ("bedrock", "nova"): EpochRange(
        1, 5, "https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-nova-mm.html"
    ),
    ("bedrock", "claude-3"): EpochRange(
        1, 10, "https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-anth-claude-3.html"
    ),
    ("bedrock", "llama-3.1"): EpochRange(
        1, 10, "https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-meta-llama31.html"
    ),
    ("bedrock", "llama-3.2"): EpochRange(
        1, 10, "https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-meta-llama32.html"
    ),
    ("cohere", None): EpochRange(1, 10, "https://docs.cohere.com/docs/chat-starting-the-training"),
}

#: The epochs every row of a comparison is quoted at when the caller gives none: OpenAI's target and
#: the local trainer's default for small data. Each provider's own default differs (Together 1,
#: Bedrock 2 or 5), and comparing those would compare different jobs.
COMPARE_EPOCHS = 3


def epoch_range(provider: str, entry: ModelEntry) -> EpochRange | None:
    """The epochs `provider` takes for this model, where a vendor source gives a range.

    Args:
        provider: the provider's name.
        entry: the model's catalog entry, whose family decides the range.

    Returns:
        The range and its source, or None where no vendor source gives one.
    """
    return _EPOCH_RANGES.get((provider, entry.family)) or _EPOCH_RANGES.get((provider, None))


class DatasetTokens(BaseModel):
    """Token counts of a dataset as a provider bills them."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use: validate never quotes

    examples: int
    tokens: int = Field(description="Sum over examples, each truncated at the example limit.")
    untruncated_tokens: int
    truncated_examples: int
    prompt_tokens: int = Field(description="Tokens of non-assistant messages (before truncation).")
    completion_tokens: int = Field(description="Tokens of assistant messages.")
    approximate: bool
    method: str


def count_dataset_tokens(data: Any, counter: Any, limit: int | None) -> DatasetTokens:
    """One streaming pass over a `Dataset`'s readable records with `counter`.

    Args:
        data: the `Dataset`; records that cannot be read or have no messages count as nothing.
        counter: the model's token counter (`count_messages`, `count_texts`).
        limit: the tokens an example is truncated at, or None for no limit.
    """
    examples = tokens = untruncated = truncated = prompt = completion = 0
    for record in data.records():
        if record.data is None:
            continue
        d = record.data
        if "messages" in d:
            messages, tools = d.get("messages") or [], d.get("tools")
        elif "input" not in d and isinstance(d.get("text"), str):
            # A plain-text example ({"text": ...}) is trained on whole, like one reply.
            messages, tools = [{"role": "assistant", "content": d["text"]}], None
        else:
            inp = d.get("input") if isinstance(d.get("input"), dict) else {}
            asked, chosen = inp.get("messages"), d.get("preferred_output")
            # Malformed shapes are validate()'s to report; here they simply count as nothing.
            messages = [
                *(asked if isinstance(asked, list) else []),
                *(chosen[:1] if isinstance(chosen, list) else []),
            ]
            tools = inp.get("tools")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            continue
        examples += 1
        if not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
            tools = None
        n = counter.count_messages(messages, tools=tools)
        untruncated += n
        if limit is not None and n > limit:
            truncated += 1
            n = limit
        tokens += n
        answer = [content_text(m.get("content")) for m in messages if m.get("role") == "assistant"]
        done = sum(counter.count_texts(answer)) if answer else 0
        completion += done
        prompt += max(0, n - done)
    return DatasetTokens(
        examples=examples, tokens=tokens, untruncated_tokens=untruncated, truncated_examples=truncated,
        prompt_tokens=prompt, completion_tokens=completion,
        approximate=bool(counter.approximate), method=str(counter.method),
    )  # fmt: skip


class QuoteLine(BaseModel):
    """One priced item, with where its price came from."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use: validate never quotes

    item: str
    usd: float
    detail: str
    source: str
    as_of: str
    verified: bool


class BreakEven(BaseModel):
    """When a fine-tune pays for itself against prompting the base model with long instructions."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use: validate never quotes

    months: float | None = Field(description="None: it never pays off at this volume.")
    monthly_saving_usd: float
    saving_per_request_usd: float
    upfront_usd: float

    def __str__(self) -> str:
        if self.months is None:
            return (f"never pays off: {self.monthly_saving_usd:+,.2f} USD/month against "
                    f"{self.upfront_usd:,.2f} USD up front")  # fmt: skip
        return f"pays off in {self.months:.1f} months (saves {self.monthly_saving_usd:,.2f} USD/month)"


class Quote(BaseModel):
    """What a job will cost. `total_usd` is None when the catalog has no training price for the model."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use: validate never quotes

    provider: str
    model: str
    requested_model: str
    method: TrainingMethod
    examples: int
    epochs: int
    epochs_source: str
    training_tokens: int = Field(description="Dataset tokens per epoch, truncated at the example limit.")
    billable_tokens: int
    truncated_examples: int
    validation_tokens: int = 0
    training_usd: float | None
    validation_usd: float = 0.0
    minimum_applied: bool = False
    total_usd: float | None
    lines: list[QuoteLine] = Field(default_factory=list)
    tuned_per_1k_requests_usd: float | None = None
    base_per_1k_requests_usd: float | None = None
    avg_prompt_tokens: float = 0
    avg_completion_tokens: float = 0
    hosting_per_month_usd: float = 0.0
    base_input_per_million: float | None = Field(default=None, description="The base model's input price.")
    approximate: bool = Field(description="Token counts are estimates (no exact tokenizer for the model).")
    verified: bool = Field(description="Every price used was read on the vendor's own page.")
    notes: list[str] = Field(default_factory=list)
    lifecycle: ModelLifecycle | None = Field(
        default=None, description="Whether the model takes new jobs (set by estimate and compare)."
    )
    available: bool = Field(
        default=True,
        description="False: the model takes no new jobs (a comparison row kept to say so; estimate raises).",
    )

    def break_even(self, *, requests_per_month: float, prompt_tokens_saved: float) -> BreakEven:
        """Months until the fine-tune pays for itself against a longer-prompted base model.

        The classic shorter-prompts case: the base model needs more tokens of instructions per request.
        The tuned model's own inference price and monthly hosting are counted.

        Args:
            requests_per_month: the expected traffic.
            prompt_tokens_saved: how many more prompt tokens per request the base model needs.

        Returns:
            The months until break-even (None: never at this volume) and the savings.
        """
        if self.tuned_per_1k_requests_usd is None or self.base_per_1k_requests_usd is None:
            raise ConfigurationError(
                f"No inference prices for {self.model} on {self.provider}: cannot compare."
            )
        base_in = self.base_input_per_million or 0.0
        extra = prompt_tokens_saved * base_in / 1e6
        per_request = (self.base_per_1k_requests_usd - self.tuned_per_1k_requests_usd) / 1000 + extra
        monthly = per_request * requests_per_month - self.hosting_per_month_usd
        upfront = self.total_usd or 0.0
        months = upfront / monthly if monthly > 0 else None
        return BreakEven(
            months=months, monthly_saving_usd=monthly, saving_per_request_usd=per_request, upfront_usd=upfront
        )

    def summary(self) -> str:
        """One line: provider/model, the total, epochs × tokens, and any caveat (unavailable, approximate)."""
        total = "unknown (no price in the catalog)" if self.total_usd is None else f"${self.total_usd:,.2f}"
        flags = [
            f
            for f, on in (("approximate tokens", self.approximate), ("unverified prices", not self.verified))
            if on
        ]
        if not self.available:
            flags.insert(0, "unavailable: " + (self.lifecycle.phrase if self.lifecycle else "no new jobs"))
        return (f"{self.provider}/{self.model}: {total} for {self.epochs} epochs × {self.training_tokens:,} tokens"
                + (f" ({', '.join(flags)})" if flags else ""))  # fmt: skip


def _training_price(entry: ModelEntry, method: TrainingMethod, lora: bool | None) -> TrainingPrice | None:
    prices = [t for t in entry.training if t.method in (method, "any")]
    if lora is not None:
        exact = [t for t in prices if t.lora is lora]
        prices = exact or [t for t in prices if t.lora is None]
    return prices[0] if prices else None


def _line(item: str, usd: float, detail: str, src: Sourced) -> QuoteLine:
    return QuoteLine(item=item, usd=round(usd, 6), detail=detail, source=src.source, as_of=str(src.as_of),
                     verified=src.verified)  # fmt: skip


def _per_1k(price: InferencePrice | None, prompt: float, completion: float) -> float | None:
    if price is None:
        return None
    return 1000 * (prompt * price.input_per_million + completion * price.output_per_million) / 1e6


def make_quote(
    catalog: Catalog,
    provider: str,
    model: str,
    train: DatasetTokens,
    *,
    validation: DatasetTokens | None = None,
    hyperparameters: Hyperparameters | None = None,
    method: TrainingMethod = "sft",
) -> Quote:
    """Price a job from the catalog and exact token counts.

    Args:
        catalog: the catalog whose prices and epoch rules are used.
        provider: the provider's name.
        model: the model id or alias on `provider`.
        train: the training data's token counts (`count_dataset_tokens`).
        validation: the validation data's token counts, or None for none.
        hyperparameters: the job's hyperparameters; the epochs default to the provider's rule.
        method: "sft" or "dpo".

    Returns:
        The quote, line by line, with each price's source and date.

    Raises:
        ConfigurationError: the catalog has no entry for `model` on `provider`.
    """
    hp = hyperparameters or Hyperparameters()
    entry = catalog.find(provider, model)
    if entry is None:
        raise ConfigurationError(
            f"The catalog has no model {model!r} for {provider!r}, so it cannot be priced.",
            fix=f"Close names: {', '.join(catalog.suggest(provider, model)) or 'none'}; or add it in a catalog file.",
        )
    rule = catalog.provider(provider).epochs
    if entry.default_epochs is not None:
        rule = EpochRule(kind="fixed", default=entry.default_epochs)
    epochs = hp.epochs or default_epochs(rule, train.examples)
    source = (
        "given" if hp.epochs else ("OpenAI's default rule" if rule.kind == "openai" else "provider default")
    )
    lora = None
    if hp.lora_rank is not None or hp.lora_alpha is not None or (entry.lora and not entry.full):
        lora = True
    price = _training_price(entry, method, lora)
    lines: list[QuoteLine] = []
    notes: list[str] = []
    allowed = epoch_range(provider, entry)
    if allowed is not None and not allowed.low <= epochs <= allowed.high:
        notes.append(f"{provider} takes {allowed.low}–{allowed.high} epochs for {entry.id}: a job with "
                     f"{epochs} would be refused ({allowed.source})")  # fmt: skip
    billable = train.tokens * epochs
    training_usd: float | None = None
    validation_usd = 0.0
    minimum_applied = False
    val_tokens = validation.tokens if validation is not None else 0
    if train.truncated_examples:
        notes.append(f"{train.truncated_examples} examples are longer than the limit and billed truncated")
    if price is not None and price.per_million_tokens is not None:
        training_usd = billable * price.per_million_tokens / 1e6
        lines.append(_line("training", training_usd,
                           f"{epochs} epochs × {train.tokens:,} tokens × ${price.per_million_tokens}/1M", price))  # fmt: skip
        evals = int(hp.provider_options.get("n_evals", 0))
        if price.bills_validation and val_tokens and evals:
            validation_usd = val_tokens * evals * price.per_million_tokens / 1e6
            lines.append(_line("validation", validation_usd,
                               f"{evals} evaluations × {val_tokens:,} tokens × ${price.per_million_tokens}/1M", price))  # fmt: skip
        elif price.bills_validation and val_tokens:
            notes.append("validation data is billed per evaluation: set provider_options n_evals (default 0)")
        if training_usd + validation_usd < price.minimum_usd:
            minimum_applied = True
            lines.append(_line("minimum charge", price.minimum_usd - training_usd - validation_usd,
                               f"jobs cost at least ${price.minimum_usd}", price))  # fmt: skip
    elif price is not None and price.per_hour is not None:
        if price.per_hour == 0:
            training_usd = 0.0
            lines.append(_line("training", 0.0, "runs on your own hardware: no charge", price))
        else:
            notes.append(
                f"billed by the hour (${price.per_hour}/h): the cost depends on run time, not tokens"
            )
    else:
        notes.append("no training price in the catalog for this model and method")
    total = (
        None
        if training_usd is None
        else max(training_usd + validation_usd, price.minimum_usd if price else 0)
    )
    hosting = sum(h.per_month_usd or 0 for h in entry.hosting if h.kind == "storage")
    for h in entry.hosting:
        if h.kind == "storage" and h.per_month_usd:
            lines.append(_line("storage (per month)", h.per_month_usd, "keeping the tuned model", h))
    prompt = train.prompt_tokens / train.examples if train.examples else 0.0
    completion = train.completion_tokens / train.examples if train.examples else 0.0
    used: list[Sourced] = [x for x in (price, entry.tuned_inference, entry.base_inference) if x is not None]
    return Quote(
        provider=provider, model=entry.id, requested_model=model, method=method, examples=train.examples,
        epochs=epochs, epochs_source=source, training_tokens=train.tokens, billable_tokens=billable,
        truncated_examples=train.truncated_examples, validation_tokens=val_tokens,
        training_usd=training_usd, validation_usd=validation_usd, minimum_applied=minimum_applied,
        total_usd=None if total is None else round(total, 6), lines=lines,
        tuned_per_1k_requests_usd=_per_1k(entry.tuned_inference, prompt, completion),
        base_per_1k_requests_usd=_per_1k(entry.base_inference, prompt, completion),
        avg_prompt_tokens=prompt, avg_completion_tokens=completion, hosting_per_month_usd=hosting,
        base_input_per_million=entry.base_inference.input_per_million if entry.base_inference else None,
        approximate=train.approximate, verified=bool(used) and all(s.verified for s in used), notes=notes,
    )  # fmt: skip


def rank(quotes: Sequence[Quote]) -> list[Quote]:
    """Cheapest first; quotes without a price after them, and models that take no new jobs last."""
    return sorted(
        quotes, key=lambda q: (not q.available, q.total_usd is None, q.total_usd or 0.0, q.provider)
    )


def _price(
    catalog: Catalog,
    provider: str,
    model: str,
    data: Any,
    validation: Any,
    hyperparameters: Hyperparameters | None,
    method: TrainingMethod,
) -> Quote:
    """The quote, whatever the model's lifecycle."""
    from unitune.data.tokens import counter_for

    resolved = catalog.resolve(provider, model)
    entry = catalog.find(provider, resolved)
    # Longer examples are truncated at the per-example limit, or failing that at the context window.
    limit = (entry.max_example_tokens or entry.context_tokens) if entry is not None else None
    counter = counter_for(provider, resolved)
    train_tokens = count_dataset_tokens(data, counter, limit)
    if train_tokens.examples == 0:
        raise DatasetError(
            "no examples to price (the file is empty or no line is readable); `unitune validate` shows why",
            path=str(getattr(data, "name", None) or "") or None,
        )
    valid_tokens = count_dataset_tokens(validation, counter, limit) if validation is not None else None
    quote = make_quote(
        catalog, provider, resolved, train_tokens, validation=valid_tokens, hyperparameters=hyperparameters,
        method=method,
    )  # fmt: skip
    return quote.model_copy(update={"requested_model": model})


def _with_lifecycle(quote: Quote, lifecycle: ModelLifecycle | None) -> Quote:
    if lifecycle is None:
        return quote
    notes = list(quote.notes)
    if lifecycle.state == "closing":
        notes.append(
            f"{lifecycle.provider} takes new jobs for this model until {lifecycle.date}: {lifecycle.phrase}"
        )
    elif lifecycle.state == "retired":
        notes.insert(0, str(lifecycle.error()))
    return quote.model_copy(
        update={"lifecycle": lifecycle, "available": lifecycle.state != "retired", "notes": notes}
    )


def _lifecycle(catalog: Catalog, provider: str, model: str, today: dt.date) -> ModelLifecycle | None:
    if provider not in catalog.providers:
        return None
    return catalog.lifecycle(provider, catalog.resolve(provider, model), today=today)


def estimate(
    catalog: Catalog,
    provider: str,
    model: str,
    data: Any,
    *,
    validation: Any = None,
    hyperparameters: Hyperparameters | None = None,
    method: TrainingMethod = "sft",
    today: dt.date | None = None,
) -> Quote:
    """Quote training `model` (an alias or the provider's id) on `provider` with a `Dataset`.

    A model whose end is announced is quoted with a note.

    Args:
        catalog: the catalog whose prices are used.
        provider: the provider to train on.
        model: the model: a portable alias or the provider's id.
        data: the training data, a `Dataset`.
        validation: held-out data, whose tokens some vendors bill too.
        hyperparameters: the job's hyperparameters (epochs: the provider's default where not given).
        method: "sft" or "dpo".
        today: the date the lifecycle is checked on; default the system date.

    Returns:
        The quote, line by line, with each price's source and date.

    Raises:
        ProviderRetiredError: the model takes no new jobs on `today`, as `create_job` would raise.
    """
    lifecycle = _lifecycle(catalog, provider, model, today or dt.date.today())
    if lifecycle is not None and lifecycle.state == "retired":
        raise lifecycle.error()
    quote = _price(catalog, provider, model, data, validation, hyperparameters, method)
    return _with_lifecycle(quote, lifecycle)


def compare(
    catalog: Catalog,
    data: Any,
    *,
    model: str,
    providers: Sequence[str],
    validation: Any = None,
    hyperparameters: Hyperparameters | None = None,
    method: TrainingMethod = "sft",
    today: dt.date | None = None,
) -> list[Quote]:
    """Quote the same job on several providers, cheapest first.

    Every row is quoted at the same epochs: `hyperparameters.epochs`, else `COMPARE_EPOCHS`
    (`epochs_source` says which), not each provider's own default. Where a vendor documents a
    range that excludes that number, the row is quoted at the nearest allowed value with a note.
    Providers that do not offer `model` are left out; a model that takes no new jobs is kept,
    marked `available=False` with the retirement in its notes, and ranked last.

    Args:
        catalog: the catalog whose prices are used.
        data: the training data, a `Dataset`.
        model: a portable alias (or an id some providers share).
        providers: the providers to quote.
        validation: held-out data, whose tokens some vendors bill too.
        hyperparameters: the job's hyperparameters.
        method: "sft" or "dpo".
        today: the date the lifecycle is checked on; default the system date.

    Returns:
        One quote per provider that offers `model`, cheapest first.
    """
    hp = hyperparameters or Hyperparameters()
    epochs = hp.epochs or COMPARE_EPOCHS
    source = "given" if hp.epochs else "shared default for comparison"
    day = today or dt.date.today()
    quotes = []
    for name in providers:
        if name not in catalog.providers:
            continue
        try:
            resolved = catalog.resolve(name, model)
        except ConfigurationError:
            continue  # this provider does not offer the alias
        entry = catalog.find(name, resolved)
        if entry is None:
            continue
        row_epochs, row_source, note = epochs, source, None
        allowed = epoch_range(name, entry)
        if allowed is not None and not allowed.low <= epochs <= allowed.high:
            row_epochs = min(max(epochs, allowed.low), allowed.high)
            row_source = f"{source}, moved into {name}'s {allowed.low}–{allowed.high}"
            note = (f"{name} takes {allowed.low}–{allowed.high} epochs for {entry.id}: quoted at {row_epochs}, "
                    f"not {epochs} ({allowed.source})")  # fmt: skip
        row_hp = hp.model_copy(update={"epochs": row_epochs})
        quote = _price(catalog, name, model, data, validation, row_hp, method)
        quote = quote.model_copy(
            update={"epochs_source": row_source, "notes": [*([note] if note else []), *quote.notes]}
        )
        quotes.append(_with_lifecycle(quote, _lifecycle(catalog, name, resolved, day)))
    return rank(quotes)
