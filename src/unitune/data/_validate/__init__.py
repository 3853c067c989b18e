# `validate()` itself: its arguments, the model and profile, the passes over the training and validation
# data, the findings about the dataset's size and the report. The work is in the modules beside this:
#   text     an example's turns text, its fingerprints, the personal-data search (the glue to _pii)
#   content  the checker's base: reporting, the text checks, content parts, plain-text examples
#   checker  the structural checker (`_Checker`) and the shape memo that skips it (`_shape`)
#   part     one part of a pass: every per-line check, token counts, statistics (`_scan`)
#   pool     worker processes, each checking a byte range of the file
#   passes   a whole pass: the parts merged, duplicates, leakage and the file's tallies
# This module re-exports what other code, the tests and the benchmarks use, and a name patched here
# (`monkeypatch.setattr(_validate, "scan", ...)`) is patched where that code reads it (see `_Facade`).
"""`validate()`: every check in one streaming pass, against the target provider's profile.

Checks work on the raw dicts (not pydantic models) because they run once per line of files that can
be gigabytes long; each problem gets a stable code, a severity, a message that says how to fix it,
and the line (and column where the reader knows it). The severity is the profile's
(`Profile.severity`): an error only where a vendor rule refuses the data and the wire file keeps it.
"""

from __future__ import annotations

import datetime as dt
import hashlib as hashlib
import os
import sys
import types
from typing import TYPE_CHECKING, Any, Literal

from unitune.data._args import as_date, data_arg, int_arg, optional_str, provider_arg
from unitune.data._dataset import Dataset
from unitune.data._loaders import is_gzip
from unitune.data._loaders import line_boundaries as line_boundaries
from unitune.data._report import IssueCollector, Stats, ValidationReport
from unitune.data._textscan_py import keys as keys
from unitune.data._textscan_py import lane as lane
from unitune.data._textscan_py import scan as scan
from unitune.data._tokens.quickstart import expected_input
from unitune.data._validate import checker, content, part, passes, pool, text
from unitune.data._validate.checker import _MAX_SHAPES as _MAX_SHAPES
from unitune.data._validate.checker import _Checker as _Checker
from unitune.data._validate.checker import _shape as _shape
from unitune.data._validate.part import _BATCH as _BATCH
from unitune.data._validate.part import _Job
from unitune.data._validate.part import _scan as _scan
from unitune.data._validate.passes import _examples, _pass
from unitune.data._validate.pool import _CHUNK_BYTES as _CHUNK_BYTES
from unitune.data._validate.pool import _MAX_AUTO_WORKERS as _MAX_AUTO_WORKERS
from unitune.data._validate.pool import _MIN_CHUNK_BYTES as _MIN_CHUNK_BYTES
from unitune.data._validate.pool import _PARALLEL_MIN_BYTES as _PARALLEL_MIN_BYTES
from unitune.data._validate.text import _fingerprints as _fingerprints
from unitune.data._validate.text import _turns_text as _turns_text
from unitune.data._validate.text import example_keys as example_keys
from unitune.data._validate.text import pii_findings as pii_findings
from unitune.data.profiles import Profile, get_profile
from unitune.errors import ConfigurationError

if TYPE_CHECKING:
    from unitune.catalog import Catalog

__all__ = ["example_keys", "validate"]

DataSource = Dataset | str | os.PathLike[str]

SMALL_DATASET = 50
RECOMMENDED_DATASET = 100


def validate(
    data: DataSource,
    *,
    provider: str = "openai",
    model: str | None = None,
    method: Literal["sft", "dpo"] | None = None,
    validation: DataSource | None = None,
    token_limit: int | None = None,
    counter: Any = None,
    max_issues: int = 1000,
    workers: int | None = None,
    today: dt.date | str | None = None,
    catalog: Catalog | None = None,
) -> ValidationReport:
    """Check `data` against `provider`'s rules in one streaming pass; never raises for bad data.

    Args:
        data: a JSONL path (optionally gzipped) or a `Dataset`.
        provider: a provider ("openai", "bedrock") or one of its dataset profiles ("bedrock-claude").
        model: picks the token limit and tokenizer; it is checked as `estimate` and `create_job`
            check it.
        method: the job's training method, "sft" or "dpo": each example must be of its kind (chats for
            SFT, preference pairs for DPO); None accepts either.
        validation: held-out data, checked too, and against `data` for leakage.
        token_limit: overrides the model's per-example token limit.
        counter: overrides the token counter.
        max_issues: how many issues the report keeps in full (every one is counted).
        workers: how many processes check a plain (not gzipped) JSONL file, each a range of its
            lines: None picks one per CPU (up to 4) for files of 4 MiB or more where the workers
            can be forked (Linux, from a caller running one thread: they start in milliseconds
            with the tokenizer this process loaded), of 32 MiB or more where they must be spawned
            (each a new interpreter loading its own), and this process alone for smaller files;
            1 never starts a process. The report is the same whatever the number. Spawned workers
            (macOS, Windows, a caller with threads) need the usual `if __name__ == "__main__":`
            guard in the script.
        today: a date, a datetime or an ISO date string: a model the catalog says cannot be trained
            on that date is refused as `create_job` would refuse it.
        catalog: the catalog to ask about `today`; default the built-in one.

    Returns:
        Every issue's count, the first issues in full with their lines, and statistics.

    Raises:
        ConfigurationError: a bad argument, or a model alias the provider does not offer.
        ProviderRetiredError: with `today`, the model cannot be trained on that date.
    """
    provider, model, day = _arguments(
        provider, model, method, token_limit, counter, max_issues, workers, today, catalog
    )
    model_id, catalog_limit = _catalog_model(provider, model, today=day, catalog=catalog)
    profile = get_profile(provider, model_id)
    dataset = data_arg(data, "data")
    vset = data_arg(validation, "validation") if validation is not None else None
    issues = IssueCollector(dataset.name, limit=max_issues)
    job = _Job(
        provider=provider,
        model=model_id,
        profile=profile,
        counter=counter,
        limit=token_limit or catalog_limit or profile.max_tokens_per_example,
        max_issues=max_issues,
        method=method,
    )
    vissues = IssueCollector(vset.name, limit=max_issues) if vset is not None else None
    with expected_input(_input_bytes(dataset, vset)):  # a small file counts without loading quicktok
        train = _pass(dataset, job, issues, workers, leakage_from=None)
        if vset is not None and vissues is not None:
            _pass(vset, job, vissues, workers, leakage_from=train)
    stats = train.stats

    if vset is not None and vissues is not None:
        for issue in vissues.issues:
            issues.issues.append(issue) if len(issues.issues) < max_issues else None
        issues.counts.update(vissues.counts)
        issues.severities.update(vissues.severities)

    _size_findings(issues, profile, stats)
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


def _input_bytes(*datasets: Dataset | None) -> int | None:
    """About how many bytes of JSONL the pass reads (None: not known, e.g. records in memory)."""
    total = 0
    for dataset in datasets:
        if dataset is None:
            continue
        try:
            path = dataset.path
            if path is None:
                return None
            size = os.stat(path).st_size
            # A gzipped chat file is about a quarter of its text: count what is read, not stored.
            total += size * 4 if is_gzip(path) else size
        except (OSError, TypeError):
            return None
    return total


def _arguments(
    provider: str,
    model: str | None,
    method: str | None,
    token_limit: int | None,
    counter: Any,
    max_issues: int,
    workers: int | None,
    today: dt.date | str | None,
    catalog: Catalog | None,
) -> tuple[str, str | None, dt.date | None]:
    """Check `validate`'s arguments.

    `validate`'s arguments checked (`ConfigurationError` for one it cannot work with): the provider
    and the model as given, and `today` as a date.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigurationError(f"workers must be at least 1 (or None for automatic), got {workers!r}")
    if method not in (None, "sft", "dpo"):
        raise ConfigurationError(
            f"Unknown training method {method!r}.", fix="Use method='sft' or method='dpo'."
        )
    provider = provider_arg(provider)
    model = optional_str(
        model, "model", fix='Pass the model\'s name, e.g. model="gpt-4o-mini", or leave it out.'
    )
    if token_limit is not None:
        int_arg(
            token_limit,
            "token_limit",
            minimum=1,
            fix="Pass the per-example token limit, or None for the model's.",
        )
    int_arg(max_issues, "max_issues", minimum=0, fix="Pass how many issues to keep, e.g. 1000.")
    day = as_date(today)
    if counter is not None and not _is_counter(counter):
        raise ConfigurationError(
            f"counter must be a token counter, not {type(counter).__name__}.",
            fix="Pass unitune.data.tokens.counter_for(provider, model), or leave it out.",
        )
    if catalog is not None:
        from unitune.catalog import Catalog

        if not isinstance(catalog, Catalog):
            raise ConfigurationError(
                f"catalog must be a unitune Catalog, not {type(catalog).__name__}.",
                fix="Pass unitune.catalog.load_catalog(...), or leave it out for the built-in one.",
            )
    return provider, model, day


def _size_findings(issues: IssueCollector, profile: Profile, stats: Stats) -> None:
    """The findings about the dataset's size: too few or too many examples, a file too large."""
    n = stats.examples
    sev = profile.severity
    if "empty_file" in issues.counts:
        pass  # said already: a minimum or a "too few" adds nothing
    elif n < profile.min_examples:
        issues.add(
            "too_few_examples",
            sev("too_few_examples"),
            f"{_examples(n)}; {profile.name} requires at least {profile.min_examples}",
        )
    if "empty_file" in issues.counts or n == 0:
        pass
    elif n < SMALL_DATASET:
        issues.add(
            "small_dataset",
            sev("small_dataset"),
            f"only {_examples(n)}: too few to fine-tune well; try few-shot prompting first, or collect "
            f"at least {SMALL_DATASET} (100–1,000+ recommended)",
        )
    elif n < RECOMMENDED_DATASET:
        issues.add(
            "below_recommended_size",
            sev("below_recommended_size"),
            f"{n} examples; 100–1,000+ are recommended",
        )
    if profile.max_examples is not None and n > profile.max_examples:
        issues.add(
            "too_many_examples",
            sev("too_many_examples"),
            f"{n:,} examples; {profile.name} accepts at most {profile.max_examples:,}",
        )
    if profile.max_file_bytes is not None and stats.bytes_read > profile.max_file_bytes:
        issues.add(
            "file_too_large",
            sev("file_too_large"),
            f"{stats.bytes_read:,} bytes; {profile.name} accepts files up to {profile.max_file_bytes:,}",
        )


def _catalog_model(
    provider: str, model: str | None, *, today: dt.date | None = None, catalog: Catalog | None = None
) -> tuple[str | None, int | None]:
    """`model` as the provider's own id, and the catalog's per-example token limit for it.

    The same model check `estimate` and `create_job` make: a portable alias the provider does not
    offer raises `ConfigurationError` naming who does; a name the catalog does not know passes; with
    `today`, a model that cannot be trained then raises `ProviderRetiredError`.
    """
    if not model:
        return model, None
    from unitune.catalog import load_catalog

    catalog = catalog or load_catalog()
    name = provider if provider in catalog.providers else provider.split("-", 1)[0]
    if name not in catalog.providers:
        return model, None
    model_id = catalog.resolve(name, model)
    if today is not None:
        catalog.check_can_train(name, model_id, today=today)
    entry = catalog.find(name, model_id)
    return model_id, entry.max_example_tokens if entry is not None else None


def _is_counter(counter: Any) -> bool:
    """Whether `counter` counts tokens the way validation needs.

    Whether `counter` counts as validation needs: a `TokenCounter`, or anything with its
    `count_conversations`, or `count_messages` and `count_texts`.
    """
    return callable(getattr(counter, "count_conversations", None)) or (
        callable(getattr(counter, "count_messages", None)) and callable(getattr(counter, "count_texts", None))
    )


# --- patches reach the code that reads them --------------------------------------------------------------

_PARTS = (text, content, checker, part, pool, passes)
_MISSING = object()


class _Facade(types.ModuleType):
    """The package's module type, keeping patched names in step across its modules.

    This module's type: setting one of its names also sets it in every module of the package that
    holds the same object under that name, so that `monkeypatch.setattr(_validate, "scan", scan_py)`
    (tests: the plain paths; the benchmark: a timed personal-data search) changes what the code reads,
    as it did when all of it was one module. Nothing in the package sets these names itself.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        old = self.__dict__.get(name, _MISSING)
        if old is not _MISSING:
            for module in _PARTS:
                if vars(module).get(name, _MISSING) is old:
                    setattr(module, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade
