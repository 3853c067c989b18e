"""The three renderings of an `EvaluationReport`: text table, Markdown, self-contained HTML."""

from __future__ import annotations

import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from unitune.evaluate._render import render_html, render_markdown, render_text, write_report
from unitune.evaluate._report import (
    BreakEven,
    CandidateResult,
    Difference,
    EvaluationReport,
    Flip,
    HumanResult,
    JudgeRow,
    MetricScore,
    PairwiseResult,
    Role,
    SampleRow,
    Verdict,
)

METRICS = ["exact_match", "f1", "contains"]
EVIL = "<script>alert(1)</script> a|b\nsecond line"

# candidate -> metric -> (mean, low, high)
SCORES = {
    "base": {"exact_match": (0.5, 0.4, 0.6), "f1": (0.7, 0.62, 0.78), "contains": (0.55, 0.45, 0.65)},
    "base+5-shot": {"exact_match": (0.6, 0.5, 0.7), "f1": (0.75, 0.68, 0.82), "contains": (0.6, 0.5, 0.7)},
    "tuned": {"exact_match": (0.8, 0.72, 0.88), "f1": (0.9, 0.85, 0.95), "contains": (0.25, 0.15, 0.35)},
}


def _candidate(name: str, role: Role, few_shot: int, cost: float | None) -> CandidateResult:
    return CandidateResult(
        name=name,
        slug=name.replace("+", "-"),
        provider="fake",
        model=f"fake-{name}",
        role=role,
        few_shot=few_shot,
        metrics={m: MetricScore(mean=v[0], count=200, low=v[1], high=v[2]) for m, v in SCORES[name].items()},
        answered=200,
        latency_p50_ms=120.0 + few_shot,
        latency_p95_ms=300.0,
        mean_prompt_tokens=80.0 + 100 * few_shot,
        mean_completion_tokens=20.0,
        cost_per_1k_requests_usd=cost,
        price_note="catalog 2024-06" if cost is not None else "no inference price known",
        training_usd=3.5 if role == "tuned" else None,
    )


def _report() -> EvaluationReport:
    candidates = [
        _candidate("base", "baseline", 0, 0.12),
        _candidate("base+5-shot", "baseline", 5, None),
        _candidate("tuned", "tuned", 0, 0.09),
    ]
    differences = [
        Difference(
            candidate="tuned",
            baseline="base+5-shot",
            metric="exact_match",
            estimate=0.2,
            low=0.1,
            high=0.3,
            n=200,
            p_value=0.0004,
            better=50,
            worse=10,
        ),
        Difference(
            candidate="tuned", baseline="base+5-shot", metric="f1", estimate=0.15, low=0.08, high=0.22, n=200
        ),
        Difference(
            candidate="base",
            baseline="base+5-shot",
            metric="exact_match",
            estimate=-0.1,
            low=-0.2,
            high=0.0,
            n=200,
            p_value=0.04,
        ),
    ]
    flips = [
        Flip(
            index=3,
            line=4,
            metric="exact_match",
            direction="fixed",
            prompt="What is 2+2?",
            reference="4",
            candidate_answer="4",
            baseline_answer="5",
        ),
        Flip(
            index=9,
            line=10,
            metric="exact_match",
            direction="broken",
            prompt=EVIL,
            reference="x",
            candidate_answer="y",
            baseline_answer="x",
        ),
    ]
    judge = PairwiseResult(
        judge="fake:judge",
        candidate="tuned",
        baseline="base+5-shot",
        wins=12,
        losses=5,
        ties=3,
        win_rate=0.675,
        low=0.55,
        high=0.8,
        rows=[JudgeRow(index=i, line=i + 1, winner="candidate", reasons=[f"reason {i}"]) for i in range(14)],
    )
    return EvaluationReport(
        examples=200,
        skipped={"no_assistant_message": 2, "no_prompt": 1},
        metrics=METRICS,
        primary_metric="exact_match",
        candidates=candidates,
        differences=differences,
        flips=flips,
        judge=[judge],
        human=HumanResult(a="tuned", b="base+5-shot", a_wins=6, b_wins=2, ties=1, both_bad=1, win_rate=0.72),
        break_even=[
            BreakEven(
                candidate="tuned",
                baseline="base+5-shot",
                training_usd=3.5,
                saving_per_1k_requests_usd=0.5,
                requests=7000,
                prompt_tokens_saved=500,
                note="tuned pays for itself after 7,000 requests",
            ),
        ],
        metric_errors={"f1": 2},
        samples=[
            SampleRow(
                index=0,
                line=1,
                prompt="Say hi",
                reference="hi",
                answers={"base": "hello", "base+5-shot": "hi!", "tuned": EVIL},
            ),
            SampleRow(
                index=1,
                line=2,
                prompt="Say bye",
                reference="bye",
                answers={"base": "bye", "base+5-shot": "ciao", "tuned": "bye"},
            ),
        ],
        verdict=Verdict(
            decision="ship",
            candidate="tuned",
            baseline="base+5-shot",
            metric="exact_match",
            estimate=0.2,
            low=0.1,
            high=0.3,
            regressions=["contains"],
            reason="tuned beats base+5-shot on exact_match by +0.200",
        ),
    )


def _minimal() -> EvaluationReport:
    only = CandidateResult(
        name="solo",
        slug="solo",
        provider="fake",
        model="m",
        role="tuned",
        metrics={"exact_match": MetricScore(mean=None, count=0)},
    )
    return EvaluationReport(
        examples=0,
        metrics=["exact_match"],
        primary_metric="exact_match",
        candidates=[only],
        verdict=Verdict(decision="inconclusive", metric="exact_match", reason="nothing to compare"),
    )


@pytest.fixture
def report() -> EvaluationReport:
    return _report()


# -- text ---------------------------------------------------------------------------------------------


def test_text_headline_table_and_verdict(report: EvaluationReport) -> None:
    lines = render_text(report).splitlines()
    assert lines[0] == "Evaluation on 200 examples (3 skipped: no_assistant_message 2, no_prompt 1)"
    header = lines[1].split()
    assert header[:4] == ["candidate", "exact_match*", "f1", "contains"]
    assert "p50 ms" in lines[1]
    assert "tokens in/out" in lines[1]
    assert "$/1k req" in lines[1]
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert set(rows) == {"base", "base+5-shot", "tuned"}
    assert "0.800 [0.72, 0.88]" in rows["tuned"]
    assert "0.900 [0.85, 0.95]" in rows["tuned"]
    assert rows["tuned"].split()[-3:] == ["120", "80/20", "$0.0900"]
    assert rows["base+5-shot"].split()[-1] == "-"  # no price
    assert rows["base+5-shot"].split()[-2] == "580/20"
    # Every table line has its columns at the same places: the header's column ends line up.
    assert len({len(line) for line in lines[1:5]}) == 1
    assert lines[-1] == "verdict: ship: tuned beats base+5-shot on exact_match by +0.200"
    assert lines[-1] == f"verdict: {report.verdict}"
    assert str(report) == render_text(report)


def test_text_differences_break_even_judge_human(report: EvaluationReport) -> None:
    text = render_text(report)
    # Only the primary metric against the verdict's baseline: not f1, not base's row vs 5-shot? (it is
    # against the verdict's baseline too, so it is listed).
    assert "differences on exact_match* vs base+5-shot:" in text
    assert "  tuned: +0.200 [+0.10, +0.30] n=200  McNemar p=<0.001" in text
    assert "  base: -0.100 [-0.20, +0.00] n=200  McNemar p=0.040" in text
    assert "+0.150" not in text  # f1's difference is not the primary metric's
    assert "break-even: tuned pays for itself after 7,000 requests" in text
    judge = next(line for line in text.splitlines() if line.startswith("judge: "))
    assert "12 wins, 5 losses, 3 ties" in judge
    assert "0.675 [0.55, 0.80]" in judge
    human = next(line for line in text.splitlines() if line.startswith("human: "))
    assert "(10 rated)" in human
    assert "0.720" in human


# -- Markdown -----------------------------------------------------------------------------------------


def _md_tables(markdown: str) -> list[list[list[str]]]:
    """Each table as rows of cells, splitting on unescaped `|` only."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            current.append([c.strip() for c in cells])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_markdown_structure(report: EvaluationReport) -> None:
    md = render_markdown(report)
    assert md.startswith("# Evaluation report\n")
    assert "**ship**: tuned beats base+5-shot" in md
    assert "Significantly worse on: contains." in md
    for title in (
        "Quality",
        "Differences",
        "Cost and speed",
        "LLM judge",
        "Human ratings",
        "Flips",
        "Samples",
    ):
        assert f"\n## {title}\n" in md
    tables = _md_tables(md)
    for table in tables:
        assert len({len(row) for row in table}) == 1, table  # every row as wide as its header
        assert set("".join(table[1])) <= {"-"}
    quality, differences, cost, judge, flips = tables[:5]
    assert quality[0] == ["candidate", "role", "exact_match*", "f1", "contains"]
    assert len(quality) == 2 + 3
    assert quality[3][:3] == ["base+5-shot", "baseline, 5-shot", "0.600 [0.50, 0.70] (n=200)"]
    assert differences[0] == ["candidate", "baseline", "metric", "Δ", "95% CI", "n", "McNemar p"]
    assert differences[2] == [
        "tuned",
        "base+5-shot",
        "exact_match*",
        "+0.200",
        "[+0.10, +0.30]",
        "200",
        "<0.001",
    ]
    assert len(differences) == 2 + 3
    assert cost[0][0] == "candidate"
    assert len(cost) == 2 + 3
    assert cost[4][5:7] == ["$0.0900", "$3.50"]
    assert len(judge) == 2 + 10  # the first ten of fourteen rows
    assert "10 of 14 judged examples shown." in md
    assert flips[0] == ["line", "metric", "direction", "prompt"]
    assert len(flips) == 2 + 2
    assert "tuned pays for itself after 7,000 requests" in md
    assert "Metric errors (scored as not applicable): f1: 2." in md
    assert "Skipped (3): no_assistant_message: 2, no_prompt: 1." in md


def test_markdown_escapes_cells(report: EvaluationReport) -> None:
    md = render_markdown(report)
    assert "<script>" not in md
    # Only what could open a tag is escaped: the raw file stays readable, a renderer shows the text.
    escaped = r"&lt;script>alert(1)&lt;/script> a\|b<br>second line"
    assert escaped in md
    samples = _md_tables(md)[-2:]
    assert [len(t) for t in samples] == [2 + 5, 2 + 5]  # prompt, reference, three answers
    tuned = next(row for row in samples[0] if row[0] == "tuned")
    assert tuned[1] == escaped
    flip = _md_tables(md)[4][3]
    assert flip[3] == escaped


def test_markdown_neutralises_entities_keeps_plain_text(report: EvaluationReport) -> None:
    sample = report.samples[1].model_copy(update={"answers": {"base": "&lt;b&gt; Q&A 3<4 back\\slash|"}})
    md = render_markdown(report.model_copy(update={"samples": [sample]}))
    samples = md.split("\n## Samples\n")[1]
    row = next(line for line in samples.splitlines() if line.startswith("| base | "))
    assert row == r"| base | &amp;lt;b&amp;gt; Q&A 3<4 back\\slash\| |"


# -- HTML ---------------------------------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link"}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))  # <rect/>: opened and closed at once

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    return checker


def test_html_is_balanced_and_self_contained(report: EvaluationReport) -> None:
    page = render_html(report)
    assert page.lower().startswith("<!doctype html>")
    checker = _parse(page)
    assert checker.errors == []
    assert checker.stack == []
    tags = [tag for tag, _ in checker.starts]
    assert "meta" in tags
    assert tags.count("title") >= 1
    assert any(t == "meta" and a.get("charset") == "utf-8" for t, a in checker.starts)
    assert not {"script", "link", "img", "iframe", "object"} & set(tags)
    assert all("src" not in attrs and "href" not in attrs for _, attrs in checker.starts)
    assert not re.search(r"https?://|//", page)
    assert "url(" not in page
    assert "@import" not in page


def test_html_escapes_report_text(report: EvaluationReport) -> None:
    page = render_html(report)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The escaped text reads back as the original answer, newline included.
    assert any(EVIL in chunk for chunk in _parse(page).text)


def test_html_escapes_inside_svg() -> None:
    hostile = _report().model_copy(
        update={
            "candidates": [
                c.model_copy(update={"name": "<b>" + c.name + "</b>"}) if c.name == "tuned" else c
                for c in _report().candidates
            ]
        }
    )
    page = render_html(hostile)
    checker = _parse(page)
    assert checker.errors == []
    assert "b" not in {t for t, _ in checker.starts}
    svg_text = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert svg_text
    assert all("&lt;b&gt;tuned&lt;/b&gt;" in s for s in svg_text)


def test_html_verdict_colour(report: EvaluationReport) -> None:
    assert "#1a7f37" in render_html(report).split('class="verdict"')[1][:60]
    abandon = report.model_copy(update={"verdict": report.verdict.model_copy(update={"decision": "abandon"})})
    assert "#cf222e" in render_html(abandon).split('class="verdict"')[1][:60]
    assert "#9a6700" in render_html(_minimal()).split('class="verdict"')[1][:60]


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.S)


def test_html_one_chart_per_metric_plus_scatter(report: EvaluationReport) -> None:
    svgs = _svgs(render_html(report))
    assert len(svgs) == len(METRICS) + 1
    assert sum('class="bars"' in s for s in svgs) == len(METRICS)
    assert sum('class="scatter"' in s for s in svgs) == 1


def test_html_bar_widths_proportional(report: EvaluationReport) -> None:
    bars = [s for s in _svgs(render_html(report)) if 'class="bars"' in s]
    for metric, svg in zip(METRICS, bars, strict=True):
        checker = _parse(svg)
        widths = [
            float(a["width"] or 0) for t, a in checker.starts if t == "rect" and a.get("class") == "bar"
        ]
        means = [SCORES[name][metric][0] for name in ("base", "base+5-shot", "tuned")]
        assert len(widths) == 3
        scale = widths[0] / means[0]
        assert scale > 0
        assert widths == pytest.approx([m * scale for m in means], abs=0.02)
        # An interval whisker per bar: three horizontal lines plus two caps each.
        assert sum(1 for t, a in checker.starts if t == "line" and a.get("class") == "whisker") == 9


def test_html_scatter_places_unpriced_on_strip(report: EvaluationReport) -> None:
    scatter = next(s for s in _svgs(render_html(report)) if 'class="scatter"' in s)
    checker = _parse(scatter)
    points = [(float(a["cx"] or 0), float(a["cy"] or 0)) for t, a in checker.starts if t == "circle"]
    assert len(points) == 3
    strip = next(a for t, a in checker.starts if t == "rect" and a.get("class") == "strip")
    strip_right = float(strip["x"] or 0) + float(strip["width"] or 0)
    base, five_shot, tuned = points
    assert float(strip["x"] or 0) <= five_shot[0] <= strip_right  # no price
    assert strip_right < tuned[0] < base[0]  # cheaper to the left
    assert tuned[1] < five_shot[1] < base[1]  # better higher (SVG y grows downwards)
    assert "no price" in "".join(checker.text)


# -- minimal report and files --------------------------------------------------------------------------


def test_minimal_report_renders_everywhere() -> None:
    minimal = _minimal()
    text = render_text(minimal)
    assert text.splitlines()[0] == "Evaluation on 0 examples"
    assert text.splitlines()[-1] == "verdict: inconclusive: nothing to compare"
    assert "judge:" not in text
    assert "human:" not in text
    assert "break-even:" not in text
    md = render_markdown(minimal)
    assert "**inconclusive**" in md
    assert "## Flips" not in md
    assert "## LLM judge" not in md
    assert _md_tables(md)[0][2][2] == "- (n=0)"
    page = render_html(minimal)
    checker = _parse(page)
    assert checker.errors == []
    assert checker.stack == []
    assert len(_svgs(page)) == 2
    assert not any(t == "rect" and a.get("class") == "bar" for t, a in checker.starts)
    assert "Not shown (no exact_match score): solo." in page


def test_write_report(tmp_path: Path, report: EvaluationReport) -> None:
    target = tmp_path / "nested" / "run"
    paths = write_report(report, target)
    assert set(paths) == {"json", "markdown", "html"}
    assert {p.name for p in paths.values()} == {"report.json", "report.md", "report.html"}
    assert sorted(p.name for p in target.iterdir()) == ["report.html", "report.json", "report.md"]
    assert EvaluationReport.model_validate_json(paths["json"].read_text(encoding="utf-8")) == report
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(report)
    assert paths["html"].read_text(encoding="utf-8") == render_html(report)
    # Writing again replaces the files and leaves no temporary file behind.
    write_report(_minimal(), str(target))
    assert sorted(p.name for p in target.iterdir()) == ["report.html", "report.json", "report.md"]
    assert EvaluationReport.model_validate_json(paths["json"].read_text(encoding="utf-8")) == _minimal()


def test_write_report_honours_umask_and_cleans_up_on_failure(
    tmp_path: Path, report: EvaluationReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"  # tmp_path itself holds the suite's own files
    previous = os.umask(0o022)
    try:
        paths = write_report(report, out)
    finally:
        os.umask(previous)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in paths.values())
    before = paths["markdown"].read_bytes()

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_report(_minimal(), out)
    # The old report is whole and no temporary file is left behind.
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert paths["markdown"].read_bytes() == before
