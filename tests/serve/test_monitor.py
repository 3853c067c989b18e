"""`unitune monitor` on hand-built request logs: every figure below is worked out by hand."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import unitune.cli._monitor_cmds  # noqa: F401  (registers `unitune monitor`)
from unitune.catalog import load_catalog
from unitune.cli import app
from unitune.data import Dataset
from unitune.errors import ConfigurationError
from unitune.evaluate._stats import wilson
from unitune.serve._log import RequestLog, RequestRecord, output_fields, sketch
from unitune.serve._monitor import (
    MIN_ARM_REQUESTS,
    PSI_EPSILON,
    MonitorReport,
    monitor,
    price_for,
    psi,
    psi_level,
    render_monitor,
)

LOCAL = "local:ftjob-a"
HOSTED = "openai:gpt-4o-mini"
_ids = itertools.count()

VOCAB_A = ["refund", "order", "late", "shipping", "box", "broken", "account"]
VOCAB_B = ["quantum", "neutrino", "lattice", "boson", "spin", "decay"]


def day(n: int) -> dt.datetime:
    return dt.datetime(2026, 12, n, 12, 0, tzinfo=dt.timezone.utc)


def rec(
    log: RequestLog,
    model: str,
    when: dt.datetime,
    *,
    prompt: str = "refund order late",
    answer: str | None = None,
    **kw: Any,
) -> None:
    """One request: the prompt and answer sketched as the server sketches them."""
    words, buckets = sketch(prompt)
    valid, fields = output_fields(answer) if answer is not None else (None, None)
    i = next(_ids)
    values: dict[str, Any] = {
        "status": 200,
        "input_words": words,
        "input_sketch": buckets,
        "output_json_valid": valid,
        "output_fields": fields,
        **kw,
    }
    log.record(
        RequestRecord(
            id=f"r{i}", ts=when + dt.timedelta(seconds=i % 3600), model=model, requested_model=model, **values
        )
    )


def words(vocab: list[str], n: int, offset: int) -> str:
    return " ".join(vocab[(offset + k) % len(vocab)] for k in range(n))


def asked(vocab: list[str], k: int) -> str:
    """A prompt as the training data's: its system message, then 12 words."""
    return "You sort tickets. " + words(vocab, 12, k)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "requests.sqlite"


@pytest.fixture
def log(log_path: Path) -> RequestLog:
    return RequestLog(log_path)


@pytest.fixture
def training(tmp_path: Path) -> Path:
    """200 prompts of 12 words from VOCAB_A (one length bin: 10-19 words)."""
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You sort tickets."},  # 3 words: 15 in all, still 10-19
                {"role": "user", "content": words(VOCAB_A, 12, i)},
                {"role": "assistant", "content": '{"label": "x"}'},
            ]
        }
        for i in range(200)
    ]
    return write_jsonl(tmp_path / "train.jsonl", rows)


# -- PSI ------------------------------------------------------------------------------------------


def test_psi_by_hand() -> None:
    # e = (0.5, 0.5), a = (0.75, 0.25): 0.25·ln(1.5) + (−0.25)·ln(0.5)
    expected = 0.25 * math.log(1.5) + 0.25 * math.log(2)
    assert psi({"a": 50, "b": 50}, {"a": 75, "b": 25}) == pytest.approx(expected)
    assert expected == pytest.approx(0.274653, abs=1e-6)
    # symmetric: swapping the sides gives the same index
    assert psi({"a": 75, "b": 25}, {"a": 50, "b": 50}) == pytest.approx(expected)


def test_psi_identical_is_zero_and_disjoint_is_large() -> None:
    assert psi({1: 3, 2: 7}, {1: 30, 2: 70}) == pytest.approx(0.0, abs=1e-12)
    disjoint = psi({"a": 10}, {"b": 10})
    # each side: (1 − ε)·ln(1/ε)
    assert disjoint == pytest.approx(2 * (1 - PSI_EPSILON) * math.log(1 / PSI_EPSILON))
    assert disjoint > 18


def test_psi_of_an_empty_side_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        psi({}, {"a": 1})


def test_psi_levels() -> None:
    assert psi_level(0.0999) == "stable"
    assert psi_level(0.1) == "moderate"
    assert psi_level(0.1999) == "moderate"
    assert psi_level(0.2) == "significant"
    assert psi_level(0.3, threshold=0.5) == "moderate"


# -- volumes, errors, latency, tokens --------------------------------------------------------------


def test_volume_errors_latency_and_tokens_per_model_and_day(log: RequestLog, log_path: Path) -> None:
    for k in range(10):  # latencies 10, 20, ..., 100; five of them streamed
        rec(log, LOCAL, day(1), latency_ms=10.0 * (k + 1), prompt_tokens=100, completion_tokens=50,
            stream=k % 2 == 0, ttft_ms=float(k + 1))  # fmt: skip
    rec(log, LOCAL, day(1), status=429, latency_ms=1.0, error_type="RateLimited")
    rec(log, LOCAL, day(1), status=500, latency_ms=2.0, prompt_tokens=100)
    for _ in range(4):
        rec(log, LOCAL, day(2), latency_ms=40.0, prompt_tokens=10, completion_tokens=5)
    rec(log, HOSTED, day(2), latency_ms=300.0, prompt_tokens=1000, completion_tokens=2000)

    report = monitor(log_path)
    assert report.requests == 17
    assert [(r.model, r.day) for r in report.days] == [
        (LOCAL, dt.date(2026, 12, 1)), (LOCAL, dt.date(2026, 12, 2)), (HOSTED, dt.date(2026, 12, 2))
    ]  # fmt: skip
    d1 = next(r for r in report.days if r.model == LOCAL and r.day.day == 1)
    assert (d1.requests, d1.errors, d1.server_errors) == (12, 2, 1)
    w = wilson(2, 12)
    assert w is not None
    assert d1.error_rate is not None
    assert d1.error_rate.estimate == pytest.approx(2 / 12)
    assert (d1.error_rate.low, d1.error_rate.high) == pytest.approx((w.low, w.high))
    # successes only: median of 10..100 is 55; p95 at rank 0.95·9 = 8.55 -> 90 + 0.55·10
    assert d1.latency_p50_ms == pytest.approx(55.0)
    assert d1.latency_p95_ms == pytest.approx(95.5)
    assert d1.streams == 5
    assert d1.ttft_p50_ms == pytest.approx(5.0)  # ttfts 1, 3, 5, 7, 9
    assert (d1.prompt_tokens, d1.completion_tokens) == (1100, 500)  # the failed request's 100 is billed
    assert (d1.prompt_tokens_mean, d1.completion_tokens_mean) == (100.0, 50.0)  # per success
    local = next(m for m in report.models if m.model == LOCAL)
    assert (local.requests, local.errors, local.days) == (16, 2, 2)
    assert (local.first_day, local.last_day) == (dt.date(2026, 12, 1), dt.date(2026, 12, 2))


def test_since_until_and_model_filter(log: RequestLog, log_path: Path) -> None:
    for n in (1, 2, 3):
        rec(log, LOCAL, day(n))
        rec(log, HOSTED, day(n))
    report = monitor(log_path, since=dt.date(2026, 12, 2), until=dt.date(2026, 12, 2), model=LOCAL)
    assert [(r.model, r.day.day) for r in report.days] == [(LOCAL, 2)]
    assert report.requests == 1
    assert [m.model for m in report.models] == [LOCAL]


# -- cost ---------------------------------------------------------------------------------------------


def test_cost_at_the_catalogs_price(log: RequestLog, log_path: Path) -> None:
    entry = load_catalog().find("openai", "gpt-4o-mini")
    assert entry is not None
    assert entry.base_inference is not None
    price = entry.base_inference
    rec(log, HOSTED, day(1), prompt_tokens=1200, completion_tokens=300)
    rec(log, HOSTED, day(1), prompt_tokens=800, completion_tokens=700)
    rec(log, LOCAL, day(1), prompt_tokens=5000, completion_tokens=5000)
    rec(log, "mystery-model", day(1), prompt_tokens=10, completion_tokens=10)

    report = monitor(log_path)
    hosted = next(m for m in report.models if m.model == HOSTED)
    expected = (2000 * price.input_per_million + 1000 * price.output_per_million) / 1e6
    assert hosted.cost_usd == pytest.approx(expected)
    assert hosted.price is not None
    assert hosted.price.source == price.source
    assert hosted.price.verified is price.verified
    assert "base inference" in hosted.price.basis
    local = next(m for m in report.models if m.model == LOCAL)
    assert local.cost_usd == 0.0
    assert local.price is not None
    assert local.price.verified
    mystery = next(m for m in report.models if m.model == "mystery-model")
    assert mystery.cost_usd is None
    assert mystery.price is None
    assert "no price" in mystery.price_note
    assert any("mystery-model: no price" in n for n in report.notes)


def test_price_mapping(tmp_path: Path) -> None:
    catalog = load_catalog()
    entry = catalog.find("openai", "gpt-4o-mini")
    assert entry is not None
    assert entry.tuned_inference is not None
    tuned, note = price_for("openai:ft:gpt-4o-mini-2024-07-18:acme::abc123", catalog)
    assert tuned is not None
    assert tuned.input_per_million == entry.tuned_inference.input_per_million
    assert "tuned inference" in note
    directory = tmp_path / "merged-model"
    directory.mkdir()
    for local in ("local:ftjob-1", str(directory), "./out/model"):
        price, _ = price_for(local, catalog)
        assert price is not None
        assert price.input_per_million == price.output_per_million == 0
    base, _ = price_for("HuggingFaceTB/SmolLM2-135M-Instruct", catalog)  # the local catalog's base model
    assert base is not None
    assert base.output_per_million == 0
    assert price_for("openai:not-a-model", catalog)[0] is None
    assert price_for("nobody-knows", catalog)[0] is None


# -- output drift ----------------------------------------------------------------------------------


def test_json_validity_and_field_drift_against_the_first_day(log: RequestLog, log_path: Path) -> None:
    for k in range(60):  # day 1: all valid, labels half x half y, an id field unique per answer
        rec(log, LOCAL, day(1), answer=json.dumps({"label": "xy"[k % 2], "id": f"t{k}"}))
    for k in range(60):  # day 2: same distribution
        rec(log, LOCAL, day(2), answer=json.dumps({"label": "xy"[k % 2], "id": f"u{k}"}))
    for k in range(60):  # day 3: 12 broken answers, and every label is a new one
        rec(
            log,
            LOCAL,
            day(3),
            answer="{not json" if k % 5 == 0 else json.dumps({"label": "z", "id": f"v{k}"}),
        )
    rec(log, LOCAL, day(3), answer="plain text is not counted")

    report = monitor(log_path)
    d1, d2, d3 = report.days
    assert d1.in_baseline
    assert d1.json_validity_drift is None
    assert d1.field_drift == {}
    assert (d1.json_answers, d1.json_valid) == (60, 60)
    assert d2.field_drift["label"].psi == pytest.approx(0.0, abs=1e-9)
    assert not d2.field_drift["label"].flagged
    # unique ids fold into "(other)" on both sides: no drift
    assert d3.field_drift["id"].psi == pytest.approx(0.0, abs=1e-9)
    assert (d3.json_answers, d3.json_valid) == (60, 48)  # the plain-text answer is not JSON-like
    assert d3.json_validity is not None
    assert d3.json_validity.estimate == pytest.approx(0.8)
    drift = d3.json_validity_drift
    assert drift is not None
    assert drift.estimate == pytest.approx(-0.2)
    assert drift.high < 0  # a real drop
    label = d3.field_drift["label"]
    assert label.flagged
    assert label.level == "significant"
    # baseline x 30 / y 30; the day's 48 readable answers all say "z": one "(other)" bin (the 12
    # broken answers have no fields to read, so they are not "(absent)")
    assert label.psi == pytest.approx(psi({"x": 30, "y": 30}, {"(other)": 48}), abs=1e-4)
    assert "label" in render_monitor(report)
    assert "SHIFT" in render_monitor(report)


def test_baseline_window_of_several_days(log: RequestLog, log_path: Path) -> None:
    for n in (1, 2, 3):
        rec(log, LOCAL, day(n), answer='{"label": "x"}')
    report = monitor(log_path, baseline_days=2)
    assert [r.in_baseline for r in report.days] == [True, True, False]
    assert report.models[0].baseline == [dt.date(2026, 12, 1), dt.date(2026, 12, 2)]


# -- input drift -----------------------------------------------------------------------------------


def test_input_drift_against_the_training_data(log: RequestLog, log_path: Path, training: Path) -> None:
    for k in range(60):
        rec(log, LOCAL, day(1), prompt=asked(VOCAB_A, k))  # as trained
        rec(log, LOCAL, day(2), prompt=asked(VOCAB_B, k))  # new vocabulary
        rec(log, LOCAL, day(3), prompt=words(VOCAB_A, 60, k))  # trained words, 4x longer prompts

    report = monitor(log_path, training_data=training)
    assert report.training_examples == 200
    same, vocab, longer = report.days
    assert same.input_length is not None
    assert same.input_vocabulary is not None
    assert same.input_length.psi == pytest.approx(0.0, abs=1e-9)
    assert same.input_vocabulary.psi < 0.1
    assert not same.retrain
    assert vocab.input_vocabulary is not None
    assert vocab.input_vocabulary.flagged
    assert vocab.input_length is not None
    assert not vocab.input_length.flagged
    assert vocab.retrain
    assert longer.input_length is not None
    assert longer.input_length.flagged
    assert longer.retrain
    assert report.models[0].retrain_days == [dt.date(2026, 12, 2), dt.date(2026, 12, 3)]
    assert [r.day for r in report.retrain] == [dt.date(2026, 12, 2), dt.date(2026, 12, 3)]
    text = render_monitor(report)
    assert f"RETRAIN {LOCAL} 2026-12-02" in text
    assert f"RETRAIN {LOCAL} 2026-12-03" in text
    assert "RETRAIN local:ftjob-a 2026-12-01" not in text


def test_the_retrain_flag_flips_at_the_threshold(log: RequestLog, log_path: Path, training: Path) -> None:
    # 50 prompts in the training bin (10-19 words) and 10 in the 20-39 bin
    for k in range(60):
        rec(log, LOCAL, day(1), prompt=words(VOCAB_A, 12 if k < 50 else 25, k))
    value = psi({2: 200}, {2: 50, 3: 10})  # length bins: 2 = 10-19 words, 3 = 20-39
    assert value == pytest.approx(
        (50 / 60 - 1) * math.log(50 / 60) + (10 / 60 - 1e-4) * math.log(10 / 60 / 1e-4)
    )

    at = monitor(log_path, training_data=training, psi_threshold=value * (1 - 1e-9)).days[0]
    above = monitor(log_path, training_data=training, psi_threshold=value * (1 + 1e-9)).days[0]
    assert at.input_length is not None
    assert above.input_length is not None
    assert at.input_length.psi == pytest.approx(value, abs=1e-4)
    assert at.input_length.flagged
    assert at.input_length.level == "significant"
    assert not above.input_length.flagged
    assert above.input_length.level == "moderate"


def test_a_small_day_is_not_flagged_on_noise(log: RequestLog, log_path: Path, training: Path) -> None:
    for k in range(3):
        rec(log, LOCAL, day(1), prompt=words(VOCAB_B, 12, k))
    row = monitor(log_path, training_data=training).days[0]
    vocab = row.input_vocabulary
    assert vocab is not None
    assert vocab.psi > 0.2
    assert not vocab.enough_data
    assert not vocab.flagged
    assert not row.retrain
    assert vocab.noise > 0.1
    assert "(few)" in render_monitor(monitor(log_path, training_data=training))


def test_training_data_as_a_dataset_and_prompt_only_sketch(log: RequestLog, log_path: Path) -> None:
    rec(log, LOCAL, day(1), prompt="alpha beta gamma")
    data = Dataset.from_records(
        [
            {
                "messages": [
                    {"role": "user", "content": "alpha beta gamma"},
                    {"role": "assistant", "content": "zzz " * 50},
                ]
            }
        ]
    )
    row = monitor(log_path, training_data=data).days[0]
    # the assistant's 50 words are not part of the prompt: same length bin, same words
    assert row.input_length is not None
    assert row.input_length.psi == pytest.approx(0.0, abs=1e-9)
    assert row.input_vocabulary is not None
    assert row.input_vocabulary.psi == pytest.approx(0.0, abs=1e-9)


def test_without_training_data_input_drift_is_not_measured(log: RequestLog, log_path: Path) -> None:
    rec(log, LOCAL, day(1))
    report = monitor(log_path)
    assert report.days[0].input_length is None
    assert report.days[0].input_vocabulary is None
    assert any("--training-data" in n for n in report.notes)


# -- A/B ----------------------------------------------------------------------------------------------


def test_ab_arms_with_intervals(log: RequestLog, log_path: Path) -> None:
    for k in range(50):  # control: 2 errors in 50, latencies 100..149
        rec(log, "local:ftjob-a", day(1), arm="local:ftjob-a", user_hash=f"u{k % 20}",
            status=500 if k < 2 else 200, latency_ms=100.0 + k, completion_tokens=10,
            answer='{"label": "x"}')  # fmt: skip
    for k in range(40):  # challenger: 10 errors in 40, 6 invalid answers of 30
        rec(log, "local:ftjob-b", day(1), arm="local:ftjob-b", user_hash=f"v{k % 15}",
            status=500 if k < 10 else 200, latency_ms=200.0 + k, completion_tokens=20,
            answer="{oops" if 10 <= k < 16 else '{"label": "x"}')  # fmt: skip

    ab = monitor(log_path).ab
    assert ab is not None
    assert ab.comparable
    assert ab.reference == "local:ftjob-a"
    a, b = ab.arms
    assert (a.arm, a.requests, a.users, a.errors) == ("local:ftjob-a", 50, 20, 2)
    assert (b.arm, b.requests, b.users, b.errors) == ("local:ftjob-b", 40, 15, 10)
    wb = wilson(10, 40)
    assert wb is not None
    assert b.error_rate is not None
    assert (b.error_rate.low, b.error_rate.high) == pytest.approx((wb.low, wb.high))
    assert a.latency_p50_ms is not None
    assert a.latency_p50_ms.estimate == pytest.approx(125.5)  # successes 102..149
    assert a.latency_p50_ms.low <= 125.5 <= a.latency_p50_ms.high < 149
    assert b.completion_tokens_mean is not None
    assert b.completion_tokens_mean.estimate == 20.0
    assert b.json_validity is not None
    assert b.json_validity.estimate == pytest.approx(34 / 40)
    (diff,) = ab.differences
    assert (diff.arm, diff.reference) == ("local:ftjob-b", "local:ftjob-a")
    assert diff.error_rate is not None
    assert diff.error_rate.estimate == pytest.approx(10 / 40 - 2 / 50)
    # Newcombe: d ∓ √((p1 − l1)² + (u2 − p2)²) from the two Wilson intervals
    wa = wilson(2, 50)
    assert wa is not None
    low = diff.error_rate.estimate - math.hypot(wb.estimate - wb.low, wa.high - wa.estimate)
    assert diff.error_rate.low == pytest.approx(low)
    assert diff.error_rate.excludes_zero
    assert diff.json_validity is not None
    assert diff.json_validity.estimate == pytest.approx(34 / 40 - 1)
    text = render_monitor(monitor(log_path))
    assert "A/B arms" in text
    assert "local:ftjob-b - local:ftjob-a: error rate +21.0 pts" in text


def test_ab_arms_too_small_to_compare(log: RequestLog, log_path: Path) -> None:
    for k in range(5):
        rec(log, "m-a", day(1), arm="m-a", user_hash=f"u{k}")
    for k in range(3):
        rec(log, "m-b", day(1), arm="m-b", user_hash=f"v{k}")
    ab = monitor(log_path).ab
    assert ab is not None
    assert not ab.comparable
    assert ab.differences == []
    assert ab.note.startswith("Too small to compare")
    assert f"at least {MIN_ARM_REQUESTS}" in ab.note
    assert all(a.error_rate is not None for a in ab.arms)  # the per-arm intervals are still there
    assert "Too small to compare" in render_monitor(monitor(log_path))


def test_one_arm_or_none(log: RequestLog, log_path: Path) -> None:
    rec(log, "m-a", day(1))
    assert monitor(log_path).ab is None
    rec(log, "m-a", day(1), arm="m-a")
    ab = monitor(log_path).ab
    assert ab is not None
    assert not ab.comparable
    assert "Only one arm" in ab.note


# -- errors -----------------------------------------------------------------------------------------


def test_a_missing_log_names_unitune_serve(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unitune serve"):
        monitor(tmp_path / "nope.sqlite")


def test_a_corrupt_log_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "requests.sqlite"
    path.write_bytes(b"this is not a database, just text " * 200)
    with pytest.raises(ConfigurationError, match=r"requests\.sqlite"):
        monitor(path)


def test_a_damaged_row_is_one_error(log: RequestLog, log_path: Path) -> None:
    rec(log, LOCAL, day(1))
    with sqlite3.connect(log_path) as conn:
        conn.execute("UPDATE requests SET input_sketch = '{broken'")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        monitor(log_path)


def test_bad_arguments(log: RequestLog, log_path: Path) -> None:
    rec(log, LOCAL, day(1))
    with pytest.raises(ConfigurationError, match="psi_threshold"):
        monitor(log_path, psi_threshold=0)
    with pytest.raises(ConfigurationError, match="baseline_days"):
        monitor(log_path, baseline_days=0)


def test_an_empty_log(log: RequestLog, log_path: Path) -> None:
    with sqlite3.connect(log_path):
        pass  # an empty file, as a server that answered nothing yet leaves
    report = monitor(log_path)
    assert report.requests == 0
    assert report.days == []
    assert report.ab is None
    assert "No requests" in render_monitor(report)


def test_the_report_round_trips_through_json(log: RequestLog, log_path: Path, training: Path) -> None:
    rec(log, LOCAL, day(1), answer='{"a": 1}', arm=LOCAL)
    report = monitor(log_path, training_data=training)
    assert MonitorReport.model_validate_json(report.model_dump_json()) == report


# -- the CLI ----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["monitor", *args])


def test_cli_json(log: RequestLog, log_path: Path, training: Path) -> None:
    for k in range(30):
        rec(log, LOCAL, day(1), prompt=asked(VOCAB_A, k))
        rec(log, LOCAL, day(2), prompt=asked(VOCAB_B, k))
    result = invoke("--log", str(log_path), "--training-data", str(training), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["day"] for d in data["days"]] == ["2026-12-01", "2026-12-02"]
    assert [d["retrain"] for d in data["days"]] == [False, True]
    assert data["models"][0]["price"]["input_per_million"] == 0


def test_cli_text_and_filters(log: RequestLog, log_path: Path, training: Path) -> None:
    for k in range(30):
        rec(log, LOCAL, day(1), prompt=asked(VOCAB_A, k))
        rec(log, LOCAL, day(2), prompt=asked(VOCAB_B, k))
        rec(log, HOSTED, day(2), prompt=asked(VOCAB_A, k))
    result = invoke("--log", str(log_path), "--training-data", str(training), "--psi-threshold", "0.25")
    assert result.exit_code == 0, result.output
    assert "RETRAIN local:ftjob-a 2026-12-02" in result.stdout
    assert HOSTED in result.stdout
    assert "p50 ms" in result.stdout
    only = invoke("--log", str(log_path), "--model", HOSTED, "--since", "2026-12-02", "--until", "2026-12-02")
    assert only.exit_code == 0, only.output
    assert LOCAL not in only.stdout
    assert HOSTED in only.stdout


def test_cli_default_log_under_unitune_home(tmp_path: Path) -> None:
    home = Path(tmp_path / "home")  # the conftest's UNITUNE_HOME
    rec(RequestLog(home / "serve" / "requests.sqlite"), LOCAL, day(1))
    result = invoke("--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["requests"] == 1


def test_cli_missing_log(tmp_path: Path) -> None:
    result = invoke("--log", str(tmp_path / "none.sqlite"))
    assert result.exit_code == 1
    assert "unitune serve" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    as_json = invoke("--log", str(tmp_path / "none.sqlite"), "--json")
    assert as_json.exit_code == 1
    assert "unitune serve" in json.loads(as_json.stdout)["error"]["message"]


def test_cli_corrupt_log(tmp_path: Path) -> None:
    path = tmp_path / "requests.sqlite"
    path.write_bytes(b"garbage " * 1000)
    result = invoke("--log", str(path))
    assert result.exit_code == 1
    assert "ConfigurationError" in result.stderr
    assert "requests.sqlite" in result.stderr
    assert "Traceback" not in result.output


def test_cli_bad_options(log: RequestLog, log_path: Path) -> None:
    rec(log, LOCAL, day(1))
    assert invoke("--log", str(log_path), "--since", "last week").exit_code == 2
    assert invoke("--log", str(log_path), "--psi-threshold", "0").exit_code == 2
    assert invoke("--log", str(log_path), "--baseline-days", "0").exit_code == 2
