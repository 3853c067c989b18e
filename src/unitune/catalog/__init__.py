"""The catalog: models, aliases, prices, provider lifecycles and cost quotes.

The catalog: fine-tunable models per provider, portable aliases, dated prices with sources,
provider lifecycle, and the cost quotes computed from them.

    from unitune.catalog import load_catalog
    catalog = load_catalog()
    catalog.resolve("together", "llama-3.1-8b-instruct")   # -> Together's own model id

The data lives in `catalog/data/*.toml`, one file per provider; a user file in the same format,
named under `catalog = [...]` in unitune.toml, overrides or adds entries.
"""

from __future__ import annotations

from unitune.catalog._catalog import Catalog, LifecycleState, ModelLifecycle, StaleEntry, load_catalog
from unitune.catalog._quote import (
    COMPARE_EPOCHS,
    BreakEven,
    DatasetTokens,
    EpochRange,
    Quote,
    QuoteLine,
    compare,
    count_dataset_tokens,
    default_epochs,
    epoch_range,
    estimate,
    make_quote,
    rank,
)
from unitune.catalog._schema import CatalogFile, ModelEntry, ProviderEntry

__all__ = [
    "COMPARE_EPOCHS",
    "BreakEven",
    "Catalog",
    "CatalogFile",
    "DatasetTokens",
    "EpochRange",
    "LifecycleState",
    "ModelEntry",
    "ModelLifecycle",
    "ProviderEntry",
    "Quote",
    "QuoteLine",
    "StaleEntry",
    "compare",
    "count_dataset_tokens",
    "default_epochs",
    "epoch_range",
    "estimate",
    "load_catalog",
    "make_quote",
    "rank",
]
