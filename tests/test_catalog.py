"""Catalog, quotes, budget cap and lifecycle: the arithmetic is hand-computed in each test."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from unitune import BudgetExceeded, ConfigurationError, FineTuneClient, Hyperparameters, ProviderRetiredError
from unitune.catalog import DatasetTokens, count_dataset_tokens, default_epochs, load_catalog, make_quote
from unitune.catalog._schema import EpochRule, Sourced
from unitune.config import UnituneConfig
from unitune.data import Dataset
from unitune.testing import FakeClock, FakeProvider
from unitune.types import content_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class WordCounter:
    name, approximate, method = "words", True, "whitespace words"

    def count_texts(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def count_messages(self, messages: Sequence[Mapping[str, Any]], *, tools: Any = None) -> int:
        return sum(len(content_text(m.get("content")).split()) for m in messages)


def _tokens(
    examples: int, tokens: int, prompt: int = 0, completion: int = 0, truncated: int = 0
) -> DatasetTokens:
    return DatasetTokens(
        examples=examples, tokens=tokens, untruncated_tokens=tokens, truncated_examples=truncated,
        prompt_tokens=prompt, completion_tokens=completion, approximate=False, method="test",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("n", "epochs"),
    [(1, 25), (3, 25), (5, 20), (10, 10), (20, 5), (33, 3), (34, 3), (40, 3), (8333, 3), (8334, 2), (9000, 2),
     (12500, 2), (12501, 1), (30000, 1)],
)  # fmt: skip
def test_openai_epoch_heuristic(n: int, epochs: int) -> None:
    # 3 by default; raised toward 100 examples' worth (cap 25); lowered above 25,000 (floor 1).
    assert default_epochs(EpochRule(kind="openai", default=3), n) == epochs


def test_fixed_epoch_rule() -> None:
    assert default_epochs(EpochRule(kind="fixed", default=1), 5) == 1


def test_quote_arithmetic_on_the_fake_prices() -> None:
    catalog = load_catalog()
    # fake: $10 per 1M training tokens, $0.50 minimum; inference base $1/$4, tuned $2/$8 per 1M; storage $2/month.
    train = _tokens(examples=200, tokens=150_000, prompt=100_000, completion=50_000)
    quote = make_quote(catalog, "fake", "gpt-4o-mini", train, hyperparameters=Hyperparameters(epochs=4))
    assert quote.epochs == 4
    assert quote.epochs_source == "given"
    assert quote.billable_tokens == 600_000
    assert quote.training_usd == pytest.approx(6.00)  # 600,000 × $10 / 1M
    assert quote.total_usd == pytest.approx(6.00)
    assert not quote.minimum_applied
    # Per request: 500 prompt + 250 completion tokens on average.
    assert quote.avg_prompt_tokens == 500
    assert quote.tuned_per_1k_requests_usd == pytest.approx(1000 * (500 * 2 + 250 * 8) / 1e6)  # $3.00
    assert quote.base_per_1k_requests_usd == pytest.approx(1000 * (500 * 1 + 250 * 4) / 1e6)  # $1.50
    assert quote.hosting_per_month_usd == 2.0
    line = quote.lines[0]
    assert (line.item, line.usd) == ("training", 6.0)
    assert "fake" in line.source
    assert line.as_of == "2026-11-21"
    assert quote.verified


def test_default_epochs_and_minimum_charge() -> None:
    quote = make_quote(load_catalog(), "fake", "gpt-4o-mini", _tokens(examples=10, tokens=2_000))
    assert (quote.epochs, quote.epochs_source) == (10, "OpenAI's default rule")
    assert quote.training_usd == pytest.approx(0.20)  # 20,000 tokens × $10 / 1M
    assert quote.minimum_applied
    assert quote.total_usd == 0.5
    (minimum,) = [line for line in quote.lines if line.item == "minimum charge"]
    assert minimum.usd == pytest.approx(0.30)


def test_break_even() -> None:
    quote = make_quote(
        load_catalog(),
        "fake",
        "gpt-4o-mini",
        _tokens(200, 150_000, 100_000, 50_000),
        hyperparameters=Hyperparameters(epochs=4),
    )
    # Saving per request: base with 1,000 more prompt tokens ($1.50/1k + 1000×$1/1M) − tuned ($3.00/1k)
    # = 0.0015 + 0.001 − 0.003 = −0.0005: never pays off.
    assert quote.break_even(requests_per_month=10_000, prompt_tokens_saved=1_000).months is None
    # With 5,000 tokens saved: 0.0015 + 0.005 − 0.003 = 0.0035 per request; × 10,000 = $35 − $2 storage = $33/month;
    # $6.00 / $33 = 0.1818 months.
    be = quote.break_even(requests_per_month=10_000, prompt_tokens_saved=5_000)
    assert be.monthly_saving_usd == pytest.approx(33.0)
    assert be.months == pytest.approx(6.0 / 33.0)
    assert "pays off in 0.2 months" in str(be)


def test_truncation_at_the_example_limit(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "a " * 10}, {"role": "assistant", "content": "b " * 5}]},
        {"messages": [{"role": "user", "content": "a " * 100}, {"role": "assistant", "content": "b " * 5}]},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counted = count_dataset_tokens(Dataset.from_jsonl(path), WordCounter(), limit=50)
    assert (counted.examples, counted.untruncated_tokens) == (2, 15 + 105)
    assert counted.tokens == 15 + 50
    assert counted.truncated_examples == 1
    assert counted.completion_tokens == 10
    quote = make_quote(
        load_catalog(), "fake", "gpt-4o-mini", counted, hyperparameters=Hyperparameters(epochs=1)
    )
    assert quote.training_tokens == 65
    assert "billed truncated" in quote.notes[0]


def _client(fake: FakeProvider, tmp_path: Path, catalog: list[Path] | None = None) -> FineTuneClient:
    return FineTuneClient(fake, config=UnituneConfig(catalog=catalog or []), ledger=False)


def _data(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"question number {i}"},
                {"role": "assistant", "content": "ok"},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_budget_cap_refuses_before_any_upload(tmp_path: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    client = _client(fake, tmp_path)
    data = _data(tmp_path)
    quote = client.estimate(data, model="gpt-4o-mini", hyperparameters=Hyperparameters(epochs=500))
    assert quote.total_usd is not None
    assert quote.total_usd > 0.5
    with pytest.raises(BudgetExceeded) as info:
        client.create_job(model="gpt-4o-mini", training_data=data, hyperparameters=Hyperparameters(epochs=500),
                          max_cost_usd=0.5)  # fmt: skip
    assert info.value.quote.total_usd == quote.total_usd
    assert "nothing was uploaded" in str(info.value)
    assert fake.calls == []
    job = client.create_job(model="gpt-4o-mini", training_data=data, max_cost_usd=quote.total_usd)
    assert job.model == "gpt-4o-mini"


def test_budget_needs_a_price(tmp_path: Path) -> None:
    fake = FakeProvider(clock=FakeClock())
    with pytest.raises(ConfigurationError, match="cannot be priced"):
        _client(fake, tmp_path).create_job(
            model="my-own-model", training_data=_data(tmp_path), max_cost_usd=1
        )
    assert fake.calls == []


def _override(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(body)
    return path


SUNSET = """
[provider]
name = "fake"
accepts_new_jobs = true
status = "winding down"
[provider.lifecycle]
source = "https://example.test/notice"
as_of = 2026-01-01
verified = true
[[provider.sunsets]]
what = "training"
date = 2026-06-01
alternatives = ["together", "bedrock"]
source = "https://example.test/notice"
as_of = 2026-01-01
verified = true
"""


def test_sunset_with_an_injected_date(tmp_path: Path) -> None:
    catalog = [_override(tmp_path, SUNSET)]
    before = FakeProvider(clock=FakeClock(start=dt.datetime(2026, 5, 31, tzinfo=dt.timezone.utc)))
    assert _client(before, tmp_path, catalog).create_job(model="m", training_data=_data(tmp_path)).id
    after = FakeProvider(clock=FakeClock(start=dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)))
    with pytest.raises(ProviderRetiredError) as info:
        _client(after, tmp_path, catalog).create_job(model="m", training_data=_data(tmp_path))
    err = info.value
    assert err.retired_on == dt.date(2026, 6, 1)
    assert err.alternatives[:2] == ("together", "bedrock")
    assert "2026-06-01" in str(err)
    assert after.calls == []


def test_alias_resolution_and_who_offers_it(tmp_path: Path) -> None:
    other = _override(tmp_path, """
[provider]
name = "acme"
accepts_new_jobs = true
status = "live"
[provider.lifecycle]
source = "https://example.test/acme"
as_of = 2026-01-01
verified = true
[[models]]
id = "acme/Llama-70B"
aliases = ["llama-3.3-70b-instruct-test"]
""")  # fmt: skip
    catalog = load_catalog([other])
    assert catalog.resolve("acme", "llama-3.3-70b-instruct-test") == "acme/Llama-70B"
    assert catalog.resolve("acme", "acme/Llama-70B") == "acme/Llama-70B"
    assert catalog.resolve("fake", "some-new-model") == "some-new-model"  # unknown names pass through
    with pytest.raises(ConfigurationError) as info:
        catalog.resolve("fake", "llama-3.3-70b-instruct-test")
    assert "offered by: acme (acme/Llama-70B)" in str(info.value)


def test_shipped_catalog_is_valid_and_every_figure_is_sourced() -> None:
    catalog = load_catalog()
    assert "fake" in catalog.providers
    folder = Path(__file__).parents[1] / "src" / "unitune" / "catalog" / "data"
    for path in folder.glob("*.toml"):
        tomllib.loads(path.read_text())  # parses
    for name, f in catalog.providers.items():
        assert f.provider.lifecycle.source, name
        for m in f.models:
            figures: list[Sourced | None] = [
                m.tuned_inference,
                m.base_inference,
                m.limits,
                *m.training,
                *m.hosting,
            ]
            for s in figures:
                if s is not None:
                    assert s.source.startswith(("http", "unitune")), (name, m.id)
                    assert s.as_of <= dt.date(2026, 12, 31)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[provider]\nname = 1\n", "provider"),
        ('[provider]\nname="x"\naccepts_new_jobs=true\nstatus="s"\n[provider.lifecycle]\nsource="https://x.test/a"\n'
         'as_of=2026-01-01\nverified=true\n[[models]]\nid="m"\n[[models.training]]\nsource="https://x.test/a"\n'
         "as_of=2026-01-01\nverified=true\n", "exactly one of per_million_tokens or per_hour"),
        ("not = [toml", "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_override_files_are_named(tmp_path: Path, body: str, words: str) -> None:
    path = _override(tmp_path, body)
    with pytest.raises(ConfigurationError, match=r"mine\.toml") as info:
        load_catalog([path])
    assert words in str(info.value)


def test_stale_entries() -> None:
    catalog = load_catalog()
    assert [
        e for e in catalog.stale(today=dt.date(2026, 12, 1)) if e.provider == "fake"
    ] == []  # as of 2026-11-21
    stale = catalog.stale(today=dt.date(2027, 6, 1))
    assert any(e.provider == "fake" and e.what == "lifecycle" for e in stale)
    # Whether a vendor lets you download tuned weights is a dated fact like a price.
    together = catalog.providers["together"].provider.weights
    assert together is not None
    late = together.as_of + dt.timedelta(days=91)
    assert any(e.provider == "together" and e.what == "weights download" for e in catalog.stale(today=late))


def test_compare_ranks_providers(tmp_path: Path) -> None:
    cheap = _override(tmp_path, """
[provider]
name = "cheapco"
accepts_new_jobs = true
status = "live"
[provider.lifecycle]
source = "https://example.test/c"
as_of = 2026-01-01
verified = false
[[models]]
id = "c-mini"
aliases = ["gpt-4o-mini"]
[[models.training]]
per_million_tokens = 1.0
source = "https://example.test/c"
as_of = 2026-01-01
verified = false
""")  # fmt: skip
    fake = FakeProvider(clock=FakeClock())
    quotes = _client(fake, tmp_path, [cheap]).compare(
        _data(tmp_path),
        model="gpt-4o-mini",
        providers=["fake", "cheapco", "nobody"],
        hyperparameters=Hyperparameters(epochs=100),
    )
    assert [q.provider for q in quotes] == ["cheapco", "fake"]  # "nobody" offers nothing: left out
    cheap_q, fake_q = quotes
    assert cheap_q.total_usd == pytest.approx(cheap_q.billable_tokens * 1.0 / 1e6)
    assert fake_q.total_usd == pytest.approx(max(fake_q.billable_tokens * 10.0 / 1e6, 0.5))
    assert not cheap_q.verified
    assert fake_q.verified


def test_catalog_cache_is_used_and_keyed_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unitune.catalog import _catalog

    _catalog._builtin.cache_clear()
    first = _catalog._builtin()
    (cached,) = list((tmp_path / "cache").glob("catalog-*.json"))
    _catalog._builtin.cache_clear()
    # A second load reads the JSON cache, not the TOML: make TOML parsing fail to prove it.
    with monkeypatch.context() as m:
        m.setattr(_catalog, "_parse", lambda *a: (_ for _ in ()).throw(AssertionError("parsed TOML")))
        second = _catalog._builtin()
    assert second.providers.keys() == first.providers.keys()
    assert second.models() == first.models()
    cached.write_text("not json")  # a corrupt cache is a miss, not an error
    _catalog._builtin.cache_clear()
    assert _catalog._builtin().models() == first.models()
    _catalog._builtin.cache_clear()


def test_per_model_epoch_default_wins_over_the_provider_rule() -> None:
    catalog = load_catalog()
    llama = catalog.find("bedrock", "llama-3.1-8b-instruct")
    assert llama is not None
    assert llama.default_epochs == 5
    quote = make_quote(catalog, "bedrock", llama.id, _tokens(100, 1000))
    assert (quote.epochs, quote.epochs_source) == (5, "provider default")
    nova = next(m for _, m in catalog.models("bedrock") if m.id.startswith("amazon.nova-lite"))
    assert make_quote(catalog, "bedrock", nova.id, _tokens(100, 1000)).epochs == 2


# -- the shipped vendor data ----------------------------------------------------------------------


def test_openai_quote_from_the_shipped_prices() -> None:
    catalog = load_catalog()
    entry = catalog.find("openai", "gpt-4o-mini")
    assert entry is not None
    price = entry.training[0].per_million_tokens
    assert price is not None
    quote = make_quote(catalog, "openai", "gpt-4o-mini", _tokens(examples=50, tokens=40_000))
    assert quote.epochs == 3  # 50 examples × 3 = 150 ≥ 100: the default stands
    assert quote.total_usd == pytest.approx(120_000 * price / 1e6)
    assert not quote.verified  # the OpenAI figures are recorded as unverified; the flag must carry through


def test_together_bills_validation_per_evaluation() -> None:
    catalog = load_catalog()
    model = catalog.resolve("together", "llama-3.1-8b-instruct")
    entry = catalog.find("together", model)
    assert entry is not None
    price = entry.training[0].per_million_tokens
    assert price is not None
    train, valid = _tokens(100, 50_000), _tokens(20, 10_000)
    none = make_quote(
        catalog, "together", model, train, validation=valid, hyperparameters=Hyperparameters(epochs=2)
    )
    assert none.validation_usd == 0  # Together's n_evals defaults to 0
    assert "n_evals" in " ".join(none.notes)
    hp = Hyperparameters(epochs=2, provider_options={"n_evals": 4})
    four = make_quote(catalog, "together", model, train, validation=valid, hyperparameters=hp)
    assert four.validation_usd == pytest.approx(4 * 10_000 * price / 1e6)
    assert four.total_usd == pytest.approx((2 * 50_000 + 4 * 10_000) * price / 1e6)


def test_mistral_minimum_fee() -> None:
    catalog = load_catalog()
    priced = [m for _, m in catalog.models("mistral") if m.training and m.training[0].per_million_tokens]
    assert priced
    quote = make_quote(
        catalog, "mistral", priced[0].id, _tokens(10, 1_000), hyperparameters=Hyperparameters(epochs=1)
    )
    assert quote.minimum_applied
    assert quote.total_usd == 4.0  # "every fine-tuning job comes with a minimum fee of $4"


@pytest.mark.parametrize(
    ("provider", "model", "today", "open_"),
    [
        ("openai", "gpt-4o-mini", dt.date(2027, 1, 5), True),
        ("openai", "gpt-4o-mini", dt.date(2027, 1, 6), False),
        ("mistral", "open-mistral-7b", dt.date(2026, 11, 21), False),
        ("cohere", None, dt.date(2026, 11, 21), False),
        ("together", "llama-3.1-8b-instruct", dt.date(2030, 1, 1), True),
    ],
)
def test_shipped_lifecycle(provider: str, model: str | None, today: dt.date, open_: bool) -> None:
    catalog = load_catalog()
    resolved = catalog.resolve(provider, model) if model else None
    if open_:
        catalog.check_can_train(provider, resolved, today=today)
        return
    with pytest.raises(ProviderRetiredError) as info:
        catalog.check_can_train(provider, resolved, today=today)
    alternatives = info.value.alternatives
    assert provider not in alternatives
    assert "together" in alternatives
    assert "fake" not in alternatives
    if provider == "openai":
        assert info.value.retired_on == dt.date(2027, 1, 6)
    # After OpenAI's date, OpenAI is not offered as a live alternative to anyone.
    assert "openai" not in catalog.alternatives("mistral", today=dt.date(2027, 2, 1))


def test_estimate_truncates_at_the_models_limit(tmp_path: Path) -> None:
    tight = _override(tmp_path, """
[provider]
name = "fake"
accepts_new_jobs = true
status = "live"
[provider.lifecycle]
source = "https://example.test/f"
as_of = 2026-01-01
verified = true
[[models]]
id = "short-context"
context_tokens = 40
[[models.training]]
per_million_tokens = 1.0
source = "https://example.test/f"
as_of = 2026-01-01
verified = true
""")  # fmt: skip
    rows = [
        {"messages": [{"role": "user", "content": "word " * n}, {"role": "assistant", "content": "ok"}]}
        for n in (5, 400)
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    client = _client(FakeProvider(clock=FakeClock()), tmp_path, [tight])
    quote = client.estimate(path, model="short-context", hyperparameters=Hyperparameters(epochs=1))
    assert quote.truncated_examples == 1
    assert quote.training_tokens <= 40 + 40  # each example at most the 40-token context


# -- one lifecycle per model (issue 16) -----------------------------------------------------------

NANO_GONE = dt.date(2026, 12, 7)  # after gpt-4.1-nano's 2026-10-23, before OpenAI's 2027-01-06


def test_one_lifecycle_per_model() -> None:
    catalog = load_catalog()
    nano = catalog.lifecycle("openai", "gpt-4.1-nano", today=NANO_GONE)
    assert (nano.state, nano.date, nano.phrase) == ("retired", dt.date(2026, 10, 23), "retired 2026-10-23")
    assert nano.model == "gpt-4.1-nano-2025-04-14"  # the alias resolves to the id
    assert "together" in nano.alternatives
    assert "openai" not in nano.alternatives
    mini = catalog.lifecycle("openai", "gpt-4o-mini", today=NANO_GONE)
    assert (mini.state, mini.phrase) == ("closing", "live; training ends 2027-01-06")
    assert mini.accepts_new_jobs
    assert catalog.lifecycle("together", "llama-3.1-8b-instruct", today=NANO_GONE).phrase == "live"
    mistral = catalog.lifecycle("mistral", "open-mistral-7b", today=NANO_GONE)
    assert (mistral.state, mistral.date, mistral.phrase) == ("retired", None, "retired")
    cohere = catalog.lifecycle("cohere", None, today=NANO_GONE)
    assert (cohere.phrase, cohere.what) == ("retired 2025-09-15", "fine_tuning_api")
    with pytest.raises(ProviderRetiredError, match=r"gpt-4\.1-nano-2025-04-14: the model is shut down"):
        catalog.check_can_train("openai", "gpt-4.1-nano-2025-04-14", today=NANO_GONE)


def test_a_model_shut_down_cannot_be_trained(tmp_path: Path) -> None:
    # Only an inference sunset for the model: it ends new jobs too.
    catalog = load_catalog([_override(tmp_path, SUNSET.replace('what = "training"', 'what = "inference"')
                                      .replace('alternatives = ["together", "bedrock"]',
                                               'models = ["gpt-4o-mini"]\nalternatives = ["together"]'))])  # fmt: skip
    assert (
        catalog.lifecycle("fake", "gpt-4o-mini", today=dt.date(2026, 5, 1)).phrase
        == "live; inference ends 2026-06-01"
    )
    gone = catalog.lifecycle("fake", "gpt-4o-mini", today=dt.date(2026, 6, 1))
    assert (gone.state, gone.what, gone.per_model) == ("retired", "inference", True)
    assert catalog.lifecycle("fake", "nova-micro", today=dt.date(2026, 6, 1)).state == "live"
    assert catalog.accepts_new_jobs("fake", today=dt.date(2026, 6, 1))  # the provider as a whole is open


def _dataset(tmp_path: Path, n: int = 20) -> Dataset:
    return Dataset.from_jsonl(_data(tmp_path, n))


def test_estimate_refuses_what_create_job_refuses(tmp_path: Path) -> None:
    from unitune.catalog import estimate

    catalog = load_catalog()
    with pytest.raises(ProviderRetiredError) as info:
        estimate(catalog, "openai", "gpt-4.1-nano", _dataset(tmp_path), today=NANO_GONE)
    assert info.value.retired_on == dt.date(2026, 10, 23)
    quote = estimate(catalog, "openai", "gpt-4o-mini", _dataset(tmp_path), today=NANO_GONE)
    assert quote.available
    assert quote.lifecycle is not None
    assert quote.lifecycle.state == "closing"
    assert any("until 2027-01-06" in n for n in quote.notes)


def test_compare_marks_retired_rows_unavailable(tmp_path: Path) -> None:
    from unitune.catalog import compare

    catalog = load_catalog()
    quotes = compare(catalog, _dataset(tmp_path), model="gpt-4.1-nano", providers=["openai"], today=NANO_GONE)
    (row,) = quotes
    assert not row.available
    assert "retired 2026-10-23" in row.notes[0]
    assert "unavailable: retired 2026-10-23" in row.summary()
    quotes = compare(
        catalog, _dataset(tmp_path), model="llama-3.1-8b-instruct", providers=["together", "bedrock", "local"],
        today=NANO_GONE,
    )  # fmt: skip
    assert all(q.available for q in quotes)


def test_compare_quotes_every_row_at_the_same_epochs(tmp_path: Path) -> None:
    from unitune.catalog import COMPARE_EPOCHS, compare

    catalog = load_catalog()
    data = _dataset(tmp_path)
    quotes = compare(catalog, data, model="llama-3.1-8b-instruct", providers=["together", "bedrock", "local"],
                     today=NANO_GONE)  # fmt: skip
    assert {q.provider for q in quotes} == {"together", "bedrock", "local"}
    assert {q.epochs for q in quotes} == {COMPARE_EPOCHS}  # not Together's 1, Bedrock's 5, local's 3
    assert {q.epochs_source for q in quotes} == {"shared default for comparison"}
    given = compare(catalog, data, model="llama-3.1-8b-instruct", providers=["together", "bedrock"],
                    hyperparameters=Hyperparameters(epochs=4), today=NANO_GONE)  # fmt: skip
    assert {(q.epochs, q.epochs_source) for q in given} == {(4, "given")}


def test_compare_moves_epochs_into_a_documented_range(tmp_path: Path) -> None:
    from unitune.catalog import compare, epoch_range

    catalog = load_catalog()
    nova = catalog.find("bedrock", "nova-micro")
    assert nova is not None
    allowed = epoch_range("bedrock", nova)
    assert allowed is not None
    assert (allowed.low, allowed.high) == (1, 5)
    assert epoch_range("together", catalog.find("together", "llama-3.1-8b-instruct")) is None  # type: ignore[arg-type]
    (row,) = compare(catalog, _dataset(tmp_path), model="nova-micro", providers=["bedrock"],
                     hyperparameters=Hyperparameters(epochs=8), today=NANO_GONE)  # fmt: skip
    assert row.epochs == 5
    assert row.epochs_source == "given, moved into bedrock's 1–5"
    assert "quoted at 5, not 8" in row.notes[0]
    # A single quote keeps the epochs asked for and says the job would be refused.
    single = make_quote(
        catalog, "bedrock", nova.id, _tokens(10, 1000), hyperparameters=Hyperparameters(epochs=8)
    )
    assert single.epochs == 8
    assert any("would be refused" in n for n in single.notes)
