# A whole pass over one file: its parts (one in this process, or byte ranges in worker processes),
# merged in line order into what one sequential pass finds, then what needs the whole file: duplicates,
# train/validation leakage, unknown keys, the file-level tallies and the statistics.
"""One pass of `validate` over a dataset: its parts merged, then the findings of the whole file."""

from __future__ import annotations

from array import array
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from unitune.data._dataset import Dataset
from unitune.data._report import Distribution, Issue, IssueCollector, Stats
from unitune.data._validate.part import _Collector, _Job, _merge_streams, _Part, _scan, _tokenizer_meta
from unitune.data._validate.pool import _plan, _run_parallel

# --- one pass: per-line checks in one or more parts, then what needs the whole file ------------------
#
# A pass reads the data as one part (in this process) or as several byte ranges of the file (in worker
# processes). A part runs every per-line check and the token counts, and returns its issues (lines
# numbered from 1 within the part), exact counts per code, its statistics as histograms, and for
# each counted example its line and two 8-byte fingerprints (exact and near text). The parent
# renumbers the lines, finds duplicates and train/validation leakage over the whole file from the
# fingerprints, and rebuilds exactly the issue list, counts and order one sequential pass produces.
#
# Memory: the histograms grow with the distinct values (bounded by the context length), the kept
# issues with `max_issues`; only the fingerprints grow with the file: 24 bytes per example (line and
# two keys), plus about 33 more per example for a moment at the end, to sort them (numpy).


@dataclass
class _PassResult:
    stats: Stats
    near: array[int]  # each counted example's near fingerprint, in line order
    key_lines: array[int]  # and its line


def _pass(
    dataset: Dataset,
    job: _Job,
    issues: IssueCollector,
    workers: int | None,
    *,
    leakage_from: _PassResult | None,
) -> _PassResult:
    records = dataset.records()
    merged = _Merge(job.max_issues)
    plan = _plan(records, workers, job)
    if plan is not None:
        try:
            for part in _run_parallel(plan, job):
                merged.add(part)
        except BrokenProcessPool:
            # A worker could not start or died (killed, out of memory): check in this process.
            merged = _Merge(job.max_issues)
            plan = None
    if plan is None:
        merged.add(_scan(records, job.profile, job.tokens(), job.limit, job.max_issues, job.method))
    return merged.finish(issues, job, leakage_from)


class _Merge:
    """Parts, in line order, merged into what one sequential pass would have found."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stream = _Collector(limit)  # the per-line issues so far (the first `limit`), renumbered
        self.base = 0  # lines in the parts merged so far
        self.size = self.examples = self.over = self.without_system = self.without_user = 0
        self.n_messages: Counter[int] = Counter()
        self.n_tokens: Counter[int] = Counter()
        self.n_assistant: Counter[int] = Counter()
        self.key_lines, self.exact, self.near = array("Q"), array("Q"), array("Q")
        self.tokenizer: tuple[str | None, bool, str | None] | None = None
        # Keys beside the format's own, at the top and in messages: examples with each, first line.
        self.extra: dict[str, Counter[str]] = {"top": Counter(), "message": Counter()}
        self.extra_first: dict[str, int | None] = {"top": None, "message": None}

    def add(self, part: _Part) -> None:
        """Merge the next part (parts come in line order)."""
        base = self.base
        stream = self.stream
        for where, counts, first in (
            ("top", part.extra_keys, part.extra_first),
            ("message", part.message_extra_keys, part.message_extra_first),
        ):
            self.extra[where].update(counts)
            if self.extra_first[where] is None and first is not None:
                self.extra_first[where] = first + base
        for code, severity, message, line, column in part.issues[: self.limit - len(stream.issues)]:
            stream.issues.append((code, severity, message, None if line is None else line + base, column))
        for code, n in part.counts.items():
            if code in stream.counts:
                stream.counts[code] += n
            else:
                stream.counts[code] = n
                first = part.first[code]
                stream.first[code] = None if first is None else first + base
            stream.severities[code] = part.severities[code]
        self.n_messages.update(part.n_messages)
        self.n_tokens.update(part.n_tokens)
        self.n_assistant.update(part.n_assistant)
        if base:
            self.key_lines.extend(line + base for line in part.key_lines)
        else:
            self.key_lines.extend(part.key_lines)
        self.exact.extend(part.exact)
        self.near.extend(part.near)
        self.base += part.lines
        self.size += part.size
        self.examples += part.examples
        self.over += part.over
        self.without_system += part.without_system
        self.without_user += part.without_user
        self.tokenizer = self.tokenizer or part.tokenizer

    def finish(self, issues: IssueCollector, job: _Job, leakage_from: _PassResult | None) -> _PassResult:
        """Find duplicates and leakage, and fill `issues` as the sequential pass would have."""
        dupes = _Collector(self.limit)
        exact_first = _repeats(self.exact)
        near_first = _repeats(self.near)
        leaks: dict[int, int] = {}
        if leakage_from is not None:
            both = array("Q", leakage_from.near)
            n_train = len(both)
            both.extend(self.near)
            for i, first in _repeats(both).items():
                if i >= n_train and first < n_train:
                    leaks[i - n_train] = leakage_from.key_lines[first]
        lines = self.key_lines
        for i in sorted(exact_first.keys() | near_first.keys() | leaks.keys()):
            line = lines[i]
            if i in leaks:
                dupes.add(
                    "train_validation_leakage",
                    job.profile.severity("train_validation_leakage"),
                    f"this validation example also appears in the training data (line {leaks[i]})",
                    line=line,
                )
            if i in exact_first:
                dupes.add(
                    "duplicate_example",
                    job.profile.severity("duplicate_example"),
                    f"exact duplicate of line {lines[exact_first[i]]}",
                    line=line,
                )
            elif i in near_first:
                dupes.add(
                    "near_duplicate",
                    job.profile.severity("near_duplicate"),
                    f"same text as line {lines[near_first[i]]} apart from case, spacing or punctuation",
                    line=line,
                )

        # One sequential pass adds an example's duplicate issues right after its other issues.
        merged = _merge_streams([self.stream, dupes], self.limit)
        issues.issues = [
            Issue(code=code, severity=severity, message=message, path=issues.path, line=line, column=column)
            for code, severity, message, line, column in merged.issues
        ]
        issues.counts = Counter(merged.counts)
        issues.severities = merged.severities

        profile = job.profile
        sev = profile.severity
        for where, code in (("top", "unrecognized_key"), ("message", "message_unrecognized_key")):
            counts = self.extra[where]
            if counts:
                named = ", ".join(f"{k!r} ({n:,})" for k, n in counts.most_common(8))
                more = f" and {len(counts) - 8} more" if len(counts) > 8 else ""
                what = "examples" if where == "top" else "messages"
                kept = "your data (for split --stratify, slices, lineage)" if where == "top" else "your file"
                issues.add(
                    code,
                    sev(code),
                    f"{what} carry key(s) the {profile.name} format does not take: {named}{more} "
                    f"(how many {what} have each); they stay in {kept} and are left out of the wire file",
                    line=self.extra_first[where],
                )
        if self.examples == 0 and set(self.stream.counts) <= {"blank_line", "bom"}:
            issues.add("empty_file", sev("empty_file"), "the file is empty: it holds no example")
        if self.without_user:
            issues.add(
                "missing_user",
                sev("missing_user"),
                f"{_examples(self.without_user)} {'has' if self.without_user == 1 else 'have'} no user message",
            )
        if self.without_system and self.without_system < self.examples:
            issues.add(
                "missing_system",
                sev("missing_system"),
                f"{self.without_system} of {self.examples} examples have no system message; "
                "use the same system prompt in training and in production",
            )
        name, approximate, method = self.tokenizer or _tokenizer_meta(job.tokens())
        stats = Stats(
            examples=self.examples,
            messages_per_example=Distribution.from_counts(self.n_messages),
            tokens_per_example=Distribution.from_counts(self.n_tokens),
            assistant_tokens_per_example=Distribution.from_counts(self.n_assistant),
            examples_over_limit=self.over,
            token_limit=job.limit,
            tokenizer=name,
            approximate_tokens=approximate,
            token_method=method,
            bytes_read=self.size,
        )
        return _PassResult(stats, self.near, self.key_lines)


#: Below this many keys a dict finds the repeats faster than importing numpy (~40 ms) to sort them;
#: above it the dict's memory (~100 bytes a key) is what numpy's sort saves.
_NUMPY_FROM = 100_000


def _repeats_dict(keys: array[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    first: dict[int, int] = {}
    for i, key in enumerate(keys):
        j = first.setdefault(key, i)
        if j != i:
            out[i] = j
    return out


def _repeats(keys: array[int]) -> dict[int, int]:
    """For each position whose key an earlier position holds: position -> the first such position."""
    n = len(keys)
    if n < 2:
        return {}
    if n < _NUMPY_FROM:
        return _repeats_dict(keys)
    try:
        import numpy as np
    except ImportError:  # numpy comes with quicktok; without it, the same in Python
        return _repeats_dict(keys)
    a = np.frombuffer(keys, dtype=np.uint64)
    order = np.argsort(a, kind="stable")
    ordered = a[order]
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first_of = order[starts][np.cumsum(starts) - 1]  # per sorted position: its group's first position
    repeat = np.flatnonzero(~starts)
    return dict(zip(order[repeat].tolist(), first_of[repeat].tolist(), strict=True))


# --- worker processes ------------------------------------------------------------------------------


def _examples(n: int) -> str:
    return f"{n:,} example" if n == 1 else f"{n:,} examples"
