"""Deterministic train/validation split, stratified on request, with duplicates removed.

Which side an example lands on depends only on the seed and the example's content, so the same file
splits the same way on every machine, identical examples always land together (no leakage), and the
proportions are exact per stratum. Two streaming passes; memory is about 100 bytes per example
(its rank and a content hash for de-duplication), never the examples themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from unitune.data._args import cannot_write, data_arg, int_arg, make_dir
from unitune.data._args import out_dir as out_dir_arg
from unitune.data._dataset import Dataset
from unitune.data._validate import example_keys
from unitune.errors import ConfigurationError, DatasetError

__all__ = ["SplitResult", "split"]

StratifyKey = str | Callable[[Mapping[str, Any]], Any] | None


class SplitResult(BaseModel):
    """Where the two parts were written and how many examples each holds."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    train_path: Path
    validation_path: Path
    train_examples: int
    validation_examples: int
    duplicates_removed: int
    unreadable_skipped: int
    strata: dict[str, tuple[int, int]]

    @property
    def train(self) -> Dataset:
        return Dataset.from_jsonl(self.train_path)

    @property
    def validation(self) -> Dataset:
        return Dataset.from_jsonl(self.validation_path)


def _stratum(data: Mapping[str, Any], key: StratifyKey) -> str:
    if key is None:
        return ""
    if callable(key):
        return str(key(data))
    return str(data.get(key, ""))


def _first_records(data: Dataset, n: int = 20) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for record in data.records():
        if isinstance(record.data, Mapping):
            out.append(record.data)
            if len(out) >= n:
                break
    return out


def _rank(seed: int, exact: bytes) -> int:
    return int.from_bytes(
        hashlib.blake2b(exact, digest_size=8, key=seed.to_bytes(8, "little")).digest(), "little"
    )


def split(
    data: Dataset | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    validation_fraction: float = 0.2,
    seed: int = 0,
    stratify: StratifyKey = None,
    dedupe: bool = True,
) -> SplitResult:
    """Split `data` into a training and a validation file.

    The parts are written as `out_dir/train.jsonl` and `out_dir/validation.jsonl` (OpenAI chat/DPO
    JSONL). Unreadable lines are skipped (run `validate()` to see them).

    Args:
        data: a `Dataset` or a JSONL file's path.
        out_dir: the folder to write; created if missing.
        validation_fraction: the share of examples held out for validation.
        seed: an integer from 0 to 2**64 - 1; the same seed gives the same split.
        stratify: a top-level key of the records or a function of the record dict; each stratum is
            split in the same proportion.
        dedupe: leave out exact duplicates.

    Returns:
        Where the two parts were written and how many examples each holds.
    """
    data = data_arg(data, "data")
    int_arg(
        seed,
        "seed",
        minimum=0,
        maximum=(1 << 64) - 1,
        fix="Pass e.g. seed=0; the same seed splits the same way.",
    )
    if stratify is not None and not isinstance(stratify, str) and not callable(stratify):
        raise ConfigurationError(
            f"stratify must be a top-level key (a str) or a function of the record, not {stratify!r}.",
            fix='Pass e.g. stratify="lang", or leave it out.',
        )
    if (
        isinstance(validation_fraction, bool)
        or not isinstance(validation_fraction, (int, float))
        or not (0 < validation_fraction < 1)
    ):
        raise ConfigurationError(
            f"validation_fraction must be between 0 and 1 (exclusive), not {validation_fraction!r}.",
            fix="Pass e.g. 0.1 to hold out 10% of the examples.",
        )
    out = out_dir_arg(out_dir, "out_dir")
    # Pass 1: each example's stratum and rank; which ones are duplicates.
    ranks: dict[str, array[int]] = defaultdict(lambda: array("Q"))
    seen: set[bytes] = set()
    duplicates = unreadable = 0
    for record in data.records():
        if record.data is None:
            unreadable += record.problem is not None and record.problem.code != "blank_line"
            continue
        exact, _ = example_keys(record.data)
        if dedupe and exact in seen:
            duplicates += 1
            continue
        seen.add(exact)
        ranks[_stratum(record.data, stratify)].append(_rank(seed, exact))
    total = sum(len(v) for v in ranks.values())
    if total == 0:
        raise DatasetError(
            "has no readable examples to split"
            + (f" ({unreadable} unreadable line(s))" if unreadable else ""),
            path=str(data.path) if data.path is not None else data.name,
        )
    if isinstance(stratify, str) and set(ranks) == {""}:
        # No example has the key: a silent one-stratum split is not what was asked for.
        keys = sorted({k for r in _first_records(data) for k in r})
        raise ConfigurationError(
            f"No example has the key {stratify!r} to stratify on.",
            fix=f"Use one of the top-level keys the examples have: {', '.join(keys) or '(none)'}.",
        )
    # The k smallest ranks of each stratum go to validation: exact proportions, content-determined.
    thresholds: dict[str, int] = {}
    for name, values in ranks.items():
        k = round(len(values) * validation_fraction)
        thresholds[name] = sorted(values)[k - 1] if k > 0 else -1
    # Pass 2: write.
    make_dir(out)
    train_path, valid_path = out / "train.jsonl", out / "validation.jsonl"
    counts: Counter[tuple[str, bool]] = Counter()
    seen.clear()
    for path in (train_path, valid_path):
        if path.is_dir():
            raise ConfigurationError(
                f"Cannot write {str(path)!r}: a folder of that name is in the way.",
                fix="Pass another out_dir.",
            )
    try:
        train, valid = train_path.open("w", encoding="utf-8"), valid_path.open("w", encoding="utf-8")
    except OSError as e:
        raise cannot_write(out, e) from None
    with train, valid:
        for record in data.records():
            if record.data is None:
                continue
            exact, _ = example_keys(record.data)
            if dedupe and exact in seen:
                continue
            seen.add(exact)
            name = _stratum(record.data, stratify)
            to_valid = _rank(seed, exact) <= thresholds[name]
            (valid if to_valid else train).write(json.dumps(record.data, ensure_ascii=False) + "\n")
            counts[(name, to_valid)] += 1
    strata = {name: (counts[(name, False)], counts[(name, True)]) for name in sorted(ranks)}
    return SplitResult(
        train_path=train_path,
        validation_path=valid_path,
        train_examples=sum(t for t, _ in strata.values()),
        validation_examples=sum(v for _, v in strata.values()),
        duplicates_removed=duplicates,
        unreadable_skipped=int(unreadable),
        strata=strata,
    )
