"""Bad input to the dataset toolkit ends in a one-line `UnituneError` naming the fix, never a raw
TypeError, ValueError, AttributeError, OSError or UnicodeEncodeError (found in review):

1. a line of valid JSON whose text is not valid Unicode (a lone surrogate escape, `"\\ud800"`) is
   `invalid_unicode`, an error on every provider, and every reader treats it as it treats a line that
   is not UTF-8;
2. wrong arguments to the public functions of `unitune.data` and `unitune.data.convert`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from unitune import FineTuneClient, ValidationFailed
from unitune.cli import app
from unitune.data import ChatExample, Dataset, fix, get_profile, split, validate
from unitune.data.convert import convert_example, get_format, write_jsonl
from unitune.data.profiles import profile_names, unreadable
from unitune.data.tokens import counter_for
from unitune.errors import ConfigurationError, DatasetError

U = {"role": "user", "content": "Where is my order?"}
A = {"role": "assistant", "content": "On its way."}
#: Line 4 of `surrogate_file`: valid JSON, but "\ud800" is half of a UTF-16 pair, not a character.
LONE = (
    '{"messages": [{"role": "user", "content": "hi \\ud800 there"}, {"role": "assistant", "content": "ok"}]}'
)


def chats(n: int) -> list[str]:
    return [
        json.dumps(
            {"messages": [{**U, "content": f"Where is order {i}?"}, {**A, "content": f"Order {i} ships."}]}
        )
        for i in range(n)
    ]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def surrogate_file(tmp_path: Path) -> Path:
    good = chats(12)
    return write(tmp_path / "surr.jsonl", [*good[:3], LONE, *good[3:]])


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    return write(tmp_path / "good.jsonl", chats(12))


def one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text, text
    return text


# -- 1. lone surrogates ----------------------------------------------------------------------------


def test_lone_surrogate_is_an_error_on_every_provider_with_its_line_and_column(surrogate_file: Path) -> None:
    assert "invalid_unicode" in unreadable()
    column = LONE.index("\\ud800") + 1
    for provider in profile_names():
        report = validate(surrogate_file, provider=provider, workers=1)
        assert not report.ok, provider
        issue = next(i for i in report.issues if i.code == "invalid_unicode")
        assert issue.severity == "error", provider
        assert (issue.line, issue.column) == (4, column), provider
        assert "\\ud800" in issue.message
        assert "remove it" in issue.message
        assert report.stats.examples == 12  # the other lines are read as usual
        # the same as the per-profile `get_profile(...).severity`, cited by the reader rule
        assert get_profile(provider).severity("invalid_unicode") == "error"


def test_lone_surrogate_found_in_keys_low_halves_and_nested_values(tmp_path: Path) -> None:
    rows = [
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "\\udc00"}]}',
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "\\uDBFF": 1}',
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "m": [["\\ud800x"]]}',
        # a high half followed by a non-surrogate escape is still lone
        '{"messages": [{"role": "user", "content": "\\ud83d\\u0041"}, {"role": "assistant", "content": "b"}]}',
    ]
    report = validate(write(tmp_path / "r.jsonl", [*chats(12), *rows]), provider="together", workers=1)
    found = [i for i in report.issues if i.code == "invalid_unicode"]
    assert [i.line for i in found] == [13, 14, 15, 16]
    assert all(i.column is not None for i in found)
    assert "\\udc00" in found[0].message
    # Each alone among clean chat lines: the block reader (msgspec) must not take it either.
    for k, row in enumerate(rows):
        alone = validate(write(tmp_path / f"{k}.jsonl", [*chats(12), row]), provider="together", workers=1)
        assert alone.counts.get("invalid_unicode") == 1, row


def test_worker_processes_report_a_lone_surrogate_as_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unitune.data import _validate

    monkeypatch.setattr(_validate, "_CHUNK_BYTES", 1500)
    monkeypatch.setattr(_validate, "_MIN_CHUNK_BYTES", 1)
    good = chats(60)
    path = write(tmp_path / "big.jsonl", [*good[:40], LONE, *good[40:]])
    one = validate(path, provider="together", workers=1)
    two = validate(path, provider="together", workers=2)
    assert one.model_dump() == two.model_dump()
    assert [i.line for i in two.issues if i.code == "invalid_unicode"] == [41]


def test_whole_surrogate_pairs_and_escaped_backslashes_are_fine(tmp_path: Path) -> None:
    rows = [
        # an emoji written as its UTF-16 pair
        '{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}, {"role": "assistant", "content": "b"}]}',
        # a backslash, then the letters u d 8 0 0: text, not an escape
        '{"messages": [{"role": "user", "content": "C:\\\\ud800"}, {"role": "assistant", "content": "b"}]}',
    ]
    path = write(tmp_path / "ok.jsonl", [*chats(12), *rows])
    report = validate(path, provider="openai", workers=1)
    assert "invalid_unicode" not in report.counts
    assert [e.messages[0].content for e in Dataset.from_jsonl(path) if isinstance(e, ChatExample)][-2:] == [
        "\U0001f600",
        "C:\\ud800",
    ]


def test_readers_treat_a_lone_surrogate_as_an_unreadable_line(surrogate_file: Path, tmp_path: Path) -> None:
    # Iterating (and so convert) stops at the line, as at a line that is not UTF-8.
    with pytest.raises(DatasetError) as info:
        list(Dataset.from_jsonl(surrogate_file))
    assert (info.value.line, info.value.column) == (4, LONE.index("\\ud800") + 1)
    one_line(info.value)
    with pytest.raises(DatasetError) as info:
        write_jsonl(Dataset.from_jsonl(surrogate_file), "together", tmp_path / "wire.jsonl")
    assert info.value.line == 4
    assert not (tmp_path / "wire.jsonl").exists()
    # split skips it; what it writes is UTF-8.
    result = split(Dataset.from_jsonl(surrogate_file), tmp_path / "split")
    assert result.unreadable_skipped == 1
    assert result.train_examples + result.validation_examples == 12
    result.train_path.read_bytes().decode("utf-8")
    result.validation_path.read_bytes().decode("utf-8")
    # fix drops it, by its code.
    fixed = fix(Dataset.from_jsonl(surrogate_file), tmp_path / "fixed.jsonl", provider="together")
    assert fixed.dropped == {"invalid_unicode": 1}
    assert (4, "invalid_unicode") in fixed.dropped_lines
    assert validate(fixed.path, provider="together").ok


def test_estimate_skips_a_lone_surrogate_line(surrogate_file: Path) -> None:
    pytest.importorskip("quicktok")
    from unitune.catalog._quote import count_dataset_tokens

    counted = count_dataset_tokens(
        Dataset.from_jsonl(surrogate_file), counter_for("openai", "gpt-4o-mini"), None
    )
    assert counted.examples == 12


def test_records_with_a_lone_surrogate_are_read_as_the_file_is() -> None:
    rows = [json.loads(line) for line in chats(12)] + [{"messages": [{**U, "content": "hi \ud800"}, A]}]
    report = validate(Dataset.from_records(rows), provider="together")
    assert report.counts["invalid_unicode"] == 1
    assert next(i for i in report.issues if i.code == "invalid_unicode").line == 13


def test_writer_refuses_an_example_it_cannot_encode(tmp_path: Path) -> None:
    example = ChatExample.model_validate({"messages": [{**U, "content": "hi \ud800"}, A], "line": 3})
    result = write_jsonl([example], "openai", tmp_path / "w.jsonl")
    assert (result.written, result.refused) == (0, 1)
    assert result.losses[0].code == "invalid_unicode"
    assert result.losses[0].line == 3


def test_token_counters_refuse_text_that_is_not_unicode_in_one_line() -> None:
    pytest.importorskip("quicktok")
    counter = counter_for("openai", "gpt-4o-mini")
    for call in (
        lambda: counter.count_text("hi \ud800"),
        lambda: counter.count_texts(["hi \ud800"] * 40),
        lambda: counter.count_messages([{**U, "content": "hi \ud800"}]),
        lambda: counter.count_conversations([([{**U, "content": "hi \ud800"}, A], None)]),
        lambda: counter_for("together", "llama-3.1-8b-instruct").count_messages([{**U, "content": "\ud800"}]),
    ):
        with pytest.raises(DatasetError, match="not valid Unicode") as info:
            call()
        one_line(info.value)
    with pytest.raises(ConfigurationError, match="count_text"):
        counter.count_text(3)  # type: ignore[arg-type]


def test_client_reports_a_lone_surrogate_instead_of_crashing(
    surrogate_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    client = FineTuneClient("fake")
    report = client.validate(surrogate_file)
    assert report.counts["invalid_unicode"] == 1
    assert not report.ok
    quote = client.estimate(surrogate_file, model="gpt-4o-mini")
    assert quote is not None
    with pytest.raises(ValidationFailed):
        client.create_job(model="gpt-4o-mini", training_data=surrogate_file)


@pytest.mark.parametrize("provider", ["openai", "together", "fake"])
def test_cli_validate_fails_on_a_lone_surrogate(surrogate_file: Path, provider: str) -> None:
    result = CliRunner().invoke(app, ["validate", str(surrogate_file), "--provider", provider])
    assert result.exit_code == 1, result.output
    assert "invalid_unicode" in result.output
    assert "Traceback" not in result.output


def test_cli_split_and_estimate_skip_a_lone_surrogate(
    surrogate_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["split", str(surrogate_file), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "unreadable lines skipped: 1" in result.output
    result = CliRunner().invoke(
        app, ["estimate", str(surrogate_file), "--model", "gpt-4o-mini", "--provider", "fake", "--json"]
    )
    assert result.exit_code == 0, result.output


# -- 2. arguments ---------------------------------------------------------------------------------


def _bad_calls(good: Path, tmp: Path) -> dict[str, Callable[[], Any]]:
    data = Dataset.from_jsonl(good)
    (tmp / "a-folder").mkdir(exist_ok=True)
    return {
        "from_records(None)": lambda: Dataset.from_records(None),  # type: ignore[arg-type]
        "from_records(3)": lambda: Dataset.from_records(3),  # type: ignore[arg-type]
        "from_records(path)": lambda: Dataset.from_records(str(good)),
        "from_records(dict)": lambda: Dataset.from_records({"messages": [U, A]}),
        "from_records(format)": lambda: Dataset.from_records([], format="bogus"),  # type: ignore[arg-type]
        "from_jsonl(None)": lambda: Dataset.from_jsonl(None),  # type: ignore[arg-type]
        "from_jsonl(3)": lambda: Dataset.from_jsonl(3),  # type: ignore[arg-type]
        "from_jsonl(format)": lambda: Dataset.from_jsonl(good, format="bogus"),  # type: ignore[arg-type]
        "from_csv(None)": lambda: Dataset.from_csv(None, prompt="q", completion="a"),  # type: ignore[arg-type]
        "from_csv(prompt)": lambda: Dataset.from_csv(good, prompt=None, completion="a"),  # type: ignore[arg-type]
        "from_csv(encoding)": lambda: Dataset.from_csv(good, prompt="q", completion="a", encoding="bogus"),
        "from_pandas(3)": lambda: Dataset.from_pandas(3),
        "from_hf(3)": lambda: Dataset.from_hf(3),
        "validate(None)": lambda: validate(None),  # type: ignore[arg-type]
        "validate(3)": lambda: validate(3),  # type: ignore[arg-type]
        "validate(provider=None)": lambda: validate(good, provider=None),  # type: ignore[arg-type]
        "validate(model=3)": lambda: validate(good, model=3),  # type: ignore[arg-type]
        "validate(validation=3)": lambda: validate(good, validation=3),  # type: ignore[arg-type]
        "validate(token_limit='x')": lambda: validate(good, token_limit="x"),  # type: ignore[arg-type]
        "validate(token_limit=0)": lambda: validate(good, token_limit=0),
        "validate(max_issues=-1)": lambda: validate(good, max_issues=-1),
        "validate(today='soon')": lambda: validate(good, model="gpt-4o-mini", today="soon"),
        "validate(today=3)": lambda: validate(good, model="gpt-4o-mini", today=3),  # type: ignore[arg-type]
        "validate(catalog=3)": lambda: validate(good, model="gpt-4o-mini", catalog=3),  # type: ignore[arg-type]
        "validate(counter=3)": lambda: validate(good, counter=3),
        "split(seed=-1)": lambda: split(data, tmp / "s", seed=-1),
        "split(seed='x')": lambda: split(data, tmp / "s", seed="x"),  # type: ignore[arg-type]
        "split(out_dir=file)": lambda: split(data, good),
        "split(out_dir=None)": lambda: split(data, None),  # type: ignore[arg-type]
        "split(out_dir=/proc/x)": lambda: split(data, "/proc/unitune-cannot-create"),
        "split(stratify=3)": lambda: split(data, tmp / "s", stratify=3),  # type: ignore[arg-type]
        "split(None)": lambda: split(None, tmp / "s"),  # type: ignore[arg-type]
        "fix(out=folder)": lambda: fix(data, tmp / "a-folder"),
        "fix(out=None)": lambda: fix(data, None),  # type: ignore[arg-type]
        "fix(provider=None)": lambda: fix(data, tmp / "f.jsonl", provider=None),  # type: ignore[arg-type]
        "fix(model=3)": lambda: fix(data, tmp / "f.jsonl", provider="bedrock", model=3),  # type: ignore[arg-type]
        "fix(out=/proc/x/y)": lambda: fix(data, "/proc/unitune-cannot-create/f.jsonl"),
        "get_profile(None)": lambda: get_profile(None),  # type: ignore[arg-type]
        "get_profile(bedrock, 3)": lambda: get_profile("bedrock", 3),  # type: ignore[arg-type]
        "severity(unknown code)": lambda: get_profile("openai").severity("bogus"),
        "get_format(list)": lambda: get_format(["openai"]),  # type: ignore[arg-type]
        "convert_example(dict)": lambda: convert_example({"messages": [U, A]}, "openai"),  # type: ignore[arg-type]
        "write_jsonl(None)": lambda: write_jsonl(None, "openai", tmp / "w.jsonl"),  # type: ignore[arg-type]
        "write_jsonl(format)": lambda: write_jsonl(data, "bogus", tmp / "w.jsonl"),
        "write_jsonl([dict])": lambda: write_jsonl([{"messages": [U, A]}], "openai", tmp / "w.jsonl"),  # type: ignore[list-item]
        "write_jsonl(path=None)": lambda: write_jsonl(data, "openai", None),  # type: ignore[arg-type]
        "write_jsonl(path=folder)": lambda: write_jsonl(data, "openai", tmp / "a-folder"),
        "write_jsonl(path=/proc)": lambda: write_jsonl(data, "openai", "/proc/unitune-cannot-create.jsonl"),
        "write_jsonl(max_losses=-1)": lambda: write_jsonl(data, "openai", tmp / "w.jsonl", max_losses=-1),
        "counter_for(None)": lambda: counter_for(None),  # type: ignore[arg-type]
        "counter_for(openai, 3)": lambda: counter_for("openai", 3),  # type: ignore[arg-type]
    }


def test_each_bad_argument_is_a_one_line_configuration_error(good_file: Path, tmp_path: Path) -> None:
    escaped: list[str] = []
    for name, call in _bad_calls(good_file, tmp_path).items():
        try:
            call()
        except ConfigurationError as e:  # a UnituneError and a ValueError
            if "\n" in str(e):
                escaped.append(f"{name}: several lines: {e}")
        except BaseException as e:
            escaped.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        else:
            escaped.append(f"{name}: accepted")
    assert not escaped, "\n".join(escaped)
    assert not (tmp_path / "w.jsonl").exists()  # refused before anything was written


def test_unknown_format_names_the_known_ones(good_file: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        Dataset.from_jsonl(good_file, format="bogus")  # type: ignore[arg-type]
    assert "'auto'" in str(info.value)
    assert "sharegpt" in str(info.value)


def test_folders_that_cannot_be_made_are_named(good_file: Path) -> None:
    with pytest.raises(ConfigurationError, match="/proc/unitune-cannot-create"):
        split(good_file, "/proc/unitune-cannot-create")
    with pytest.raises(ConfigurationError, match="is a file, not a folder"):
        split(good_file, good_file)


def test_what_a_user_obviously_means_is_accepted(good_file: Path, tmp_path: Path) -> None:
    # A path wherever data is taken, as str, Path or bytes.
    from_bytes = Dataset.from_jsonl(bytes(good_file))  # type: ignore[arg-type]
    assert len(list(from_bytes)) == 12
    parts = split(str(good_file), tmp_path / "s")
    assert parts.train_examples + parts.validation_examples == 12
    assert fix(good_file, tmp_path / "fixed.jsonl").kept == 12
    assert write_jsonl(good_file, "openai", tmp_path / "new" / "w.jsonl").written == 12  # folder created
    # `today` as a date, a datetime (its date) or an ISO date string: the same report.
    day = dt.date(2025, 1, 1)
    reports = [
        validate(good_file, model="gpt-4o-mini", today=t).counts
        for t in (day, dt.datetime(2025, 1, 1, 12, 30), "2025-01-01")
    ]
    assert reports[0] == reports[1] == reports[2]
    assert validate(good_file, max_issues=0).issues == []
