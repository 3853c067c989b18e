"""Running the LLM judge over the verdict's pair, both orders, through the same resumable runner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from unitune.evaluate._judge import combine, judge_prompt, parse_verdict
from unitune.evaluate._report import JudgeRow, PairwiseResult
from unitune.evaluate._run import Answer, AnswerStore, Asker, Runner
from unitune.evaluate._stats import wilson

if TYPE_CHECKING:
    from unitune._clock import Clock
    from unitune.evaluate._candidates import Item
    from unitune.evaluate._evaluate import JudgeSetup, _Scored

__all__ = ["run_judge"]

#: Judge rows (with reasons) kept in the report; the counts are always complete.
MAX_ROWS = 50


def run_judge(
    setup: JudgeSetup,
    candidate: _Scored,
    baseline: _Scored,
    items: Sequence[Item],
    directory: Path | None,
    *,
    clock: Clock,
    concurrency: int,
    confidence: float,
) -> PairwiseResult:
    """Judge `candidate` against `baseline` on every example both answered, in both orders."""
    judged = [
        it
        for it in items
        if (ca := candidate.answers.get(it.index)) is not None
        and ca.content is not None
        and (ba := baseline.answers.get(it.index)) is not None
        and ba.content is not None
    ]
    tag = f"judge--{candidate.resolved.slug}--{baseline.resolved.slug}"
    params = dict(setup.judge.chat_params or {})
    orders = {}
    for order, (first, second) in {"cb": (candidate, baseline), "bc": (baseline, candidate)}.items():
        prompts = {
            it.index: judge_prompt(
                setup.judge,
                it.prompt,
                it.reference,
                first.answers[it.index].content or "",
                second.answers[it.index].content or "",
            )
            for it in judged
        }
        orders[order] = Asker(
            slug=f"{tag}--{order}", provider=setup.provider, model=setup.judge.model, params=params,
            run=setup.run, prompts=prompts, store=AnswerStore(directory, f"{tag}--{order}"),
        )  # fmt: skip
    answers: dict[str, dict[int, Answer]] = {
        a.slug: a.store.load({i: a.key(i) for i in a.prompts}) for a in orders.values()
    }
    Runner(list(orders.values()), clock=clock, concurrency=concurrency).run(answers)

    wins = losses = ties = skipped = 0
    rows: list[JudgeRow] = []
    for it in judged:
        got_first = answers[orders["cb"].slug].get(it.index)
        got_second = answers[orders["bc"].slug].get(it.index)
        read_first = parse_verdict(got_first.content or "") if got_first is not None else None
        read_second = parse_verdict(got_second.content or "") if got_second is not None else None
        if read_first is None or read_second is None:
            skipped += 1  # an unreadable verdict is counted, never guessed
            continue
        outcome = combine(read_first[0], read_second[0])
        wins += outcome == "candidate"
        losses += outcome == "baseline"
        ties += outcome == "tie"
        if len(rows) < MAX_ROWS:
            reasons = [r for r in (read_first[1], read_second[1]) if r]
            rows.append(JudgeRow(index=it.index, line=it.line, winner=outcome, reasons=reasons))
    judged_n = wins + losses + ties
    interval = wilson(wins + ties / 2, judged_n, confidence=confidence)
    return PairwiseResult(
        judge=setup.label, candidate=candidate.resolved.name, baseline=baseline.resolved.name,
        wins=wins, losses=losses, ties=ties, skipped=skipped + (len(items) - len(judged)),
        win_rate=interval.estimate if interval else None, low=interval.low if interval else None,
        high=interval.high if interval else None, rows=rows,
    )  # fmt: skip
