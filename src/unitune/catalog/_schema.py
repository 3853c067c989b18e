"""The catalog's schema: what each data file under `catalog/data/` must hold.

Every figure that changes (a price, a limit, a date) carries its `source` URL, an `as_of` date and a
`verified` flag: False means "best source found, not confirmed on the vendor's own page".
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CatalogFile",
    "EpochRule",
    "HostingPrice",
    "InferencePrice",
    "ModelEntry",
    "ProviderEntry",
    "Sourced",
    "Sunset",
    "TrainingPrice",
    "WeightsAccess",
]


Method = Literal["sft", "dpo", "rft"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sourced(_Strict):
    """Where a fact comes from."""

    source: str = Field(min_length=8, description="URL of the page the figure was read from.")
    as_of: dt.date
    verified: bool
    note: str | None = None


class TrainingPrice(Sourced):
    """Training cost: per 1M trained tokens (tokens × epochs), or per hour for hourly methods."""

    per_million_tokens: float | None = Field(default=None, ge=0)
    per_hour: float | None = Field(default=None, ge=0)
    minimum_usd: float = Field(default=0, ge=0, description="Minimum charge per job.")
    bills_validation: bool = Field(default=False, description="Validation tokens are billed too.")
    method: Literal["sft", "dpo", "any"] = "any"
    lora: bool | None = Field(
        default=None, description="Price applies to LoRA (True), full (False) or both (None)."
    )

    @model_validator(mode="after")
    def _one_unit(self) -> TrainingPrice:
        if (self.per_million_tokens is None) == (self.per_hour is None):
            raise ValueError("give exactly one of per_million_tokens or per_hour")
        return self


class InferencePrice(Sourced):
    """Price of calling a model, per 1M tokens."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    cached_input_per_million: float | None = Field(default=None, ge=0)


class HostingPrice(Sourced):
    """What keeping a tuned model callable costs (storage, a dedicated endpoint, provisioned throughput)."""

    kind: Literal["storage", "dedicated_endpoint", "provisioned_throughput", "on_demand_deployment"]
    per_month_usd: float | None = Field(default=None, ge=0)
    per_hour_usd: float | None = Field(default=None, ge=0)


class Sunset(Sourced):
    """A date after which something stops: new training jobs, or inference of (tuned) models."""

    what: Literal["training", "inference", "fine_tuning_api"]
    date: dt.date | None = Field(default=None, description="None: already retired, date unknown.")
    models: list[str] = Field(default_factory=list, description="Model ids affected; empty: all.")
    alternatives: list[str] = Field(default_factory=list, description="Providers to use instead.")


class WeightsAccess(Sourced):
    """Whether, and how, a model tuned on this provider can be downloaded as weights.

    Whether a model tuned on this provider can be downloaded as weights (to export, serve elsewhere
    or keep), and how: `unitune export` says this instead of failing on a vendor that keeps them.
    """

    downloadable: bool = Field(description="The tuned weights (adapter or merged model) can be downloaded.")
    how: str = Field(
        min_length=8, description="One or two sentences: the command or API, or what to do instead."
    )


class EpochRule(_Strict):
    """How the provider picks the number of epochs when the caller does not."""

    kind: Literal["fixed", "openai", "by_size"] = "fixed"
    default: int = Field(default=1, ge=1)


class ModelEntry(_Strict):
    """One fine-tunable base model on one provider."""

    id: str
    aliases: list[str] = Field(
        default_factory=list, description="Portable names, e.g. llama-3.1-8b-instruct."
    )
    family: str | None = None
    context_tokens: int | None = Field(default=None, ge=1)
    max_example_tokens: int | None = Field(default=None, ge=1, description="Longer examples are truncated.")
    methods: list[Method] = Field(default_factory=lambda: list[Method](["sft"]))
    lora: bool = False
    full: bool = True
    data_format: str | None = Field(default=None, description="Wire format name (unitune.data.convert).")
    default_epochs: int | None = Field(
        default=None,
        ge=1,
        description="This model's epoch default, where it differs from the provider's rule.",
    )
    min_examples: int | None = None
    max_examples: int | None = None
    training: list[TrainingPrice] = Field(default_factory=list)
    tuned_inference: InferencePrice | None = None
    base_inference: InferencePrice | None = None
    hosting: list[HostingPrice] = Field(default_factory=list)
    limits: Sourced | None = Field(default=None, description="Source of the token limits above.")


class ProviderEntry(_Strict):
    """A provider's lifecycle and defaults."""

    name: str
    accepts_new_jobs: bool
    status: str = Field(description="One line: live, winding down, retired, deprecated…")
    lifecycle: Sourced
    sunsets: list[Sunset] = Field(default_factory=list)
    epochs: EpochRule = Field(default_factory=EpochRule)
    weights: WeightsAccess | None = Field(
        default=None, description="Whether tuned weights can be downloaded; None: not researched."
    )


class CatalogFile(_Strict):
    """One data file: a provider and its models."""

    provider: ProviderEntry
    models: list[ModelEntry] = Field(default_factory=list)
