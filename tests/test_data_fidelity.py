"""The data layer says what the vendor would say: DPO, extra keys, the model check, plain messages,
personal data with checksums, and bad input that never raises (issue 15's list, each as a test)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from unitune import ConfigurationError, FineTuneClient, ValidationFailed
from unitune.cli import app
from unitune.data import Dataset, fix, get_profile, split, validate
from unitune.data._checks import CODES
from unitune.data._pii import find, redact
from unitune.data.convert import write_jsonl
from unitune.data.profiles import profile_names, source_text

U = {"role": "user", "content": "Where is my order?"}
A = {"role": "assistant", "content": "It ships tomorrow."}


def lines(path: Path, objs: list[Any]) -> Path:
    path.write_text(
        "\n".join(o if isinstance(o, str) else json.dumps(o, ensure_ascii=False) for o in objs) + "\n"
    )
    return path


def chats(n: int, **top: Any) -> list[dict[str, Any]]:
    return [
        {"messages": [{**U, "content": f"Where is order {i}?"}, {**A, "content": f"Order {i} ships."}], **top}
        for i in range(n)
    ]


def pairs(n: int) -> list[dict[str, Any]]:
    return [
        {
            "input": {"messages": [{**U, "content": f"Where is order {i}?"}]},
            "preferred_output": [{**A, "content": f"Order {i} ships."}],
            "non_preferred_output": [{**A, "content": "No idea."}],
        }
        for i in range(n)
    ]


# -- every check names its source; no error without one -------------------------------------------


def test_every_profile_check_names_a_source_and_every_error_rests_on_a_refusal() -> None:
    from unitune.data.profiles import unreadable

    cannot = unreadable()
    for check in cannot.values():
        assert source_text(check.source) != check.source
    for name in profile_names():
        profile = get_profile(name)
        for code, check in profile.checks.items():
            assert code in CODES
            assert source_text(check.source) != check.source or check.source.startswith("http"), (name, code)
        for code in CODES:
            if profile.severity(code) == "error":
                # A cited rule: the profile's own refusal the wire file keeps, or unitune's reader or
                # converter for data no format can hold.
                check = cannot.get(code) or profile.checks[code]
                assert check.vendor == "refuses", (name, code)
                assert check.wire is None, (name, code)
                assert check.source, (name, code)


# -- 1. DPO --------------------------------------------------------------------------------------------


def test_validate_method_requires_its_kind_of_example(tmp_path: Path) -> None:
    sft = lines(tmp_path / "sft.jsonl", chats(12))
    dpo = lines(tmp_path / "dpo.jsonl", pairs(12))
    assert validate(sft, provider="openai", method="sft").ok
    assert validate(dpo, provider="openai", method="dpo").ok
    wrong = validate(sft, provider="openai", method="dpo")
    assert wrong.counts["method_mismatch"] == 12
    assert not wrong.ok
    assert (
        "DPO trains on preference pairs"
        in next(i for i in wrong.errors if i.code == "method_mismatch").message
    )
    assert validate(dpo, provider="openai", method="sft").counts["method_mismatch"] == 12
    with pytest.raises(ConfigurationError, match="method"):
        validate(sft, provider="openai", method="ppo")  # type: ignore[arg-type]


def test_fake_dpo_job_takes_pairs_and_refuses_chats_before_upload(tmp_path: Path) -> None:
    client = FineTuneClient("fake")
    job = client.create_job(
        model="llama-3.1-8b-instruct", training_data=lines(tmp_path / "p.jsonl", pairs(3)), method="dpo"
    )
    assert job.id
    uploads = len(client.provider.calls_to("upload"))  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed, match="method_mismatch"):
        client.create_job(
            model="llama-3.1-8b-instruct", training_data=lines(tmp_path / "c.jsonl", chats(3)), method="dpo"
        )
    assert len(client.provider.calls_to("upload")) == uploads  # type: ignore[attr-defined]


def test_dpo_wire_format_follows_the_method() -> None:
    assert FineTuneClient("openai").provider.wire_format_for("dpo") == "openai-dpo"
    assert FineTuneClient("together").provider.wire_format_for("dpo") == "together-preference"
    assert FineTuneClient("openai").provider.wire_format_for("sft") == "openai"


# -- 2. extra keys -------------------------------------------------------------------------------------


def test_extra_keys_are_one_warning_kept_in_data_and_left_out_of_the_wire(tmp_path: Path) -> None:
    rows = [{**row, "id": i, "lang": "he" if i % 2 else "en"} for i, row in enumerate(chats(40))]
    path = lines(tmp_path / "d.jsonl", rows)
    for provider in ("openai", "together", "mistral", "bedrock-claude", "bedrock-nova"):
        report = validate(path, provider=provider)
        assert report.ok, provider
        (issue,) = [i for i in report.issues if i.code == "unrecognized_key"]
        assert "'id' (40)" in issue.message
        assert "'lang' (40)" in issue.message
        assert issue.line == 1
    fixed = fix(Dataset.from_jsonl(path), tmp_path / "fixed.jsonl", provider="together")
    assert fixed.kept == 40
    assert json.loads((tmp_path / "fixed.jsonl").read_text().splitlines()[0])["id"] == 0
    result = split(Dataset.from_jsonl(path), tmp_path / "parts", validation_fraction=0.5, stratify="lang")
    assert validate(result.train_path, provider="together").ok
    out = write_jsonl(Dataset.from_jsonl(path), "together", tmp_path / "wire.jsonl")
    assert out.written == 40
    assert all("id" not in json.loads(x) for x in out.path.read_text().splitlines())
    examples = list(Dataset.from_jsonl(path))
    assert examples[3].extra == {"id": 3, "lang": "he"}  # type: ignore[union-attr]


def test_unknown_message_keys_are_left_out_of_the_wire(tmp_path: Path) -> None:
    rows = [{"messages": [{**U, "ts": 1}, {**A, "mood": "calm"}]} for _ in range(2)]
    path = lines(tmp_path / "d.jsonl", rows)
    report = validate(path, provider="openai")
    (issue,) = [i for i in report.issues if i.code == "message_unrecognized_key"]
    assert issue.severity == "warning"
    assert "'ts' (2)" in issue.message
    assert "'mood' (2)" in issue.message
    out = write_jsonl(Dataset.from_jsonl(path), "openai", tmp_path / "wire.jsonl")
    assert json.loads(out.path.read_text().splitlines()[0]) == {"messages": [U, A]}


# -- 6. the model is checked as estimate and create_job check it ----------------------------------------


def test_validate_model_is_checked_like_estimate_and_create_job(tmp_path: Path) -> None:
    path = lines(tmp_path / "d.jsonl", chats(12))
    with pytest.raises(ConfigurationError) as by_validate:
        validate(path, provider="openai", model="llama-3.1-8b-instruct")
    with pytest.raises(ConfigurationError) as by_client:
        FineTuneClient("openai").validate(path, model="llama-3.1-8b-instruct")
    assert str(by_validate.value) == str(by_client.value)
    result = CliRunner().invoke(
        app, ["validate", str(path), "--provider", "openai", "--model", "llama-3.1-8b-instruct"]
    )
    assert result.exit_code == 1
    assert str(by_validate.value).splitlines()[0] in result.output.replace("\n", " ")


def test_validate_uses_the_catalogs_limit_for_the_model(tmp_path: Path) -> None:
    path = lines(tmp_path / "d.jsonl", chats(12))
    assert validate(path, provider="openai", model="gpt-4o-mini").stats.token_limit == 65536
    assert validate(path, provider="local", model="smollm2-135m-instruct").stats.token_limit == 1024


# -- 7. messages that read right -----------------------------------------------------------------------


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    for body in ("", "\n\n"):
        path = tmp_path / "empty.jsonl"
        path.write_text(body)
        report = validate(path, provider="openai")
        assert [i.code for i in report.errors] == ["empty_file"]
        assert "the file is empty" in report.errors[0].message
        assert "small_dataset" not in report.counts
        assert "too_few_examples" not in report.counts


def test_one_example_is_singular(tmp_path: Path) -> None:
    report = validate(lines(tmp_path / "one.jsonl", chats(1)), provider="openai")
    messages = " ".join(i.message for i in report.issues)
    assert "1 example;" in messages
    assert "only 1 example:" in messages
    assert "1 examples" not in messages


def test_a_truncated_line_reports_the_parsers_column(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_text(json.dumps(chats(1)[0]) + '\n{"messages": [{"role": "user", "content": "hi"\n')
    issue = next(i for i in validate(path, provider="openai").issues if i.code == "invalid_json")
    assert (issue.line, issue.column) == (2, 47)


def test_bom_and_blank_lines_are_warnings_and_never_reach_the_wire(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n\n".join(json.dumps(r) for r in chats(12)).encode() + b"\n")
    report = validate(path, provider="together")
    assert report.ok
    assert report.counts["bom"] == 1
    assert report.counts["blank_line"] == 11
    out = write_jsonl(Dataset.from_jsonl(path), "together", tmp_path / "w.jsonl").path.read_bytes()
    assert not out.startswith(b"\xef\xbb\xbf")
    assert b"\n\n" not in out


def test_together_consecutive_systems_no_longer_contradict_the_converter(tmp_path: Path) -> None:
    row = {"messages": [{"role": "system", "content": "a"}, {"role": "system", "content": "b"}, U, A]}
    report = validate(lines(tmp_path / "d.jsonl", [row, *chats(2)]), provider="together")
    assert report.ok
    assert "consecutive_roles" not in report.counts


# -- 8. personal data ----------------------------------------------------------------------------------

PII_CASES = [
    ("my ID is 123456782", ["pii_national_id"]),  # an Israeli ID: its check digit holds
    ("מספר תעודת זהות 123456782 בבקשה", ["pii_national_id"]),  # inside Hebrew
    ("ID 123456789", []),  # nine digits whose check digit fails
    ("Order #100200300", []),  # an order number, not a phone
    ("Order 100200300 shipped", []),
    ("SSN 078-05-1120", ["pii_national_id"]),
    ("call +1 (415) 555-2671", ["pii_phone"]),
    ("טלפון: 052-555-1234", ["pii_phone"]),
    ("اتصل على \u200e+966 50 123 4567 الآن", ["pii_phone"]),  # Arabic text, a bidi mark before the number
    ("رقمي ٠٥٢٥٥٥١٢٣٤", ["pii_phone"]),  # Arabic-Indic digits
    ("card 4242 4242 4242 4242", ["pii_card"]),
    ("card 4242 4242 4242 4241", []),  # the Luhn check fails
    ("IBAN GB82 WEST 1234 5698 7654 32", ["pii_iban"]),
    ("IBAN GB83 WEST 1234 5698 7654 32", []),  # mod-97 fails
    ("mail ana@example.org", ["pii_email"]),
    ("invoice 2024-11-05 total 12345.67", []),
]


@pytest.mark.parametrize(("text", "codes"), PII_CASES)
def test_personal_data_kinds(text: str, codes: list[str]) -> None:
    assert [f.code for f in find(text)] == codes


def test_an_ssn_follows_the_ssa_rules() -> None:
    for bad in ("900-05-1120", "000-05-1120", "666-05-1120", "078-00-1120", "078-05-0000"):
        assert "pii_national_id" not in [f.code for f in find(f"SSN {bad} ok")], bad


def test_phone_fallback_without_phonenumbers(monkeypatch: pytest.MonkeyPatch) -> None:
    from unitune.data import _pii

    monkeypatch.setattr(_pii, "phone_rules", lambda: None)
    assert [f.code for f in find("call 415-555-2671")] == ["pii_phone"]
    assert find("Order 100200300") == []
    assert [f.code for f in find("ID 123456782")] == ["pii_national_id"]


def test_redaction_replaces_each_kind_with_its_placeholder() -> None:
    counts: dict[str, int] = {}
    text = "Mail ana@example.org or call +1 (415) 555-2671; ID 123456782, card 4242 4242 4242 4242."
    assert redact(text, counts) == "Mail <EMAIL> or call <PHONE>; ID <NATIONAL_ID>, card <CARD>."
    assert counts == {"pii_email": 1, "pii_phone": 1, "pii_national_id": 1, "pii_card": 1}


def test_cli_redact_pii_writes_a_new_file_and_says_what_it_replaced(tmp_path: Path) -> None:
    rows = chats(12)
    rows[0]["messages"][0]["content"] = "I'm ana@example.org, phone 052-555-1234"
    src = lines(tmp_path / "d.jsonl", rows)
    before = src.read_bytes()
    out = tmp_path / "clean.jsonl"
    result = CliRunner().invoke(
        app, ["validate", str(src), "--provider", "openai", "--fix", str(out), "--redact-pii", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["fix"]["redacted"] == {"<EMAIL>": 1, "<PHONE>": 1}
    assert (
        json.loads(out.read_text().splitlines()[0])["messages"][0]["content"] == "I'm <EMAIL>, phone <PHONE>"
    )
    assert src.read_bytes() == before
    assert (
        CliRunner().invoke(app, ["validate", str(src), "--redact-pii"]).exit_code == 2
    )  # needs --fix: a usage error


def test_pii_report_in_validate(tmp_path: Path) -> None:
    rows = chats(12)
    rows[3]["messages"][0]["content"] = "my ID is 123456782"
    rows[4]["messages"][0]["content"] = "Order #100200300"
    report = validate(lines(tmp_path / "d.jsonl", rows), provider="openai")
    assert [(i.code, i.line) for i in report.issues if i.code.startswith("pii")] == [("pii_national_id", 4)]


# -- bad input never raises; every malformed line has a line and a column where the parser has one ----


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.binary(max_size=80)
        | st.sampled_from([b'{"messages": [', b"[1]", b'{"messages": 5}', b'{"text": 1}', b"\xff\xfe"]),
        max_size=8,
    )
)
def test_arbitrary_bytes_give_findings_not_exceptions(tmp_path: Path, chunks: list[bytes]) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"\n".join(c.replace(b"\n", b" ") for c in chunks))
    for provider in ("openai", "together", "mistral", "bedrock-claude"):
        report = validate(path, provider=provider)
        for issue in report.issues:
            if issue.code in ("invalid_json", "invalid_utf8"):
                assert issue.line is not None
                assert issue.column is not None


def test_random_near_valid_files_never_raise_and_fix_keeps_the_source(tmp_path: Path) -> None:
    r = random.Random(7)
    pieces: list[Any] = [
        None,
        0,
        "",
        " ",
        [],
        {},
        "x",
        [{"type": "text"}],
        {"role": "user"},
        True,
        1.5,
        [1],
        [{}],
    ]
    for k in range(int(__import__("os").environ.get("UNITUNE_FUZZ_ROUNDS", "60"))):
        rows = []
        for _ in range(5):
            row = json.loads(json.dumps(chats(1)[0]))
            target = r.choice(row["messages"])
            target[r.choice(["content", "role", "weight", "tool_calls", "name"])] = r.choice(pieces)
            if r.random() < 0.3:
                row[r.choice(["messages", "tools", "functions", "parallel_tool_calls"])] = r.choice(pieces)
            rows.append(row)
        src = lines(tmp_path / f"{k}.jsonl", rows)
        before = src.read_bytes()
        wires = {"openai": "openai", "together": "together", "mistral": "mistral",
                 "bedrock-nova": "bedrock-conversation", "cohere": "cohere", "local": "openai"}  # fmt: skip
        for provider, wire in wires.items():
            report = validate(src, provider=provider)
            fixed = fix(Dataset.from_jsonl(src), tmp_path / f"{k}.{provider}.fixed.jsonl", provider=provider)
            if report.ok:  # what validate passes, the provider's format takes whole
                converted = write_jsonl(
                    Dataset.from_jsonl(src), wire, tmp_path / f"{k}.{provider}.wire.jsonl"
                )
                assert converted.refused == 0, (provider, converted.losses)
            assert fixed.kept + sum(fixed.dropped.values()) == 5
        assert src.read_bytes() == before


def test_docs_table_of_checks_is_generated_from_the_profiles() -> None:
    from unitune.data.profiles import checks_markdown

    docs = (Path(__file__).parent.parent / "docs" / "data.md").read_text(encoding="utf-8")
    begin, end = "<!-- checks:begin -->\n", "<!-- checks:end -->"
    section = docs[docs.index(begin) + len(begin) : docs.index(end)]
    assert section == checks_markdown(), (
        "run: python -m unitune.data.profiles --markdown, and paste it into docs/data.md"
    )


# -- found in review: each once let validate pass what the upload refuses, or raise -------------------


def _one(tmp_path: Path, row: Any, provider: str, n: int = 12, **kw: Any) -> Any:
    return validate(lines(tmp_path / "r.jsonl", [*chats(n), row]), provider=provider, workers=1, **kw)


def test_legacy_function_call_with_an_odd_name_is_a_finding_not_an_exception(tmp_path: Path) -> None:
    row = {
        "messages": [
            U,
            {"role": "assistant", "content": "x", "function_call": {"name": {"a": 1}, "arguments": "{}"}},
        ]
    }
    report = _one(tmp_path, row, "openai")
    assert "deprecated_function_call" in report.counts


def test_the_shape_memo_hides_no_tool_or_name_finding(tmp_path: Path) -> None:
    def with_tool(fn: dict[str, Any]) -> dict[str, Any]:
        call = {"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        return {
            "messages": [U, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "ok"}, A],
            "tools": [{"type": "function", "function": fn}],
        }  # fmt: skip

    good = {"name": "f", "description": "d", "parameters": {"type": "object"}}
    rows = [
        with_tool(good),
        with_tool({"name": "f", "parameters": {"type": "object"}}),
        with_tool({"name": "f", "description": "d"}),
    ]
    report = validate(lines(tmp_path / "m.jsonl", rows), provider="mistral", workers=1)
    assert [(i.code, i.line) for i in report.errors] == [
        ("tool_missing_description", 2),
        ("invalid_tools", 3),
    ]
    rows = [{**chats(1)[0], "parallel_tool_calls": True}, {**chats(1)[0], "parallel_tool_calls": "yes"}]
    assert (
        "invalid_parallel_tool_calls" in validate(lines(tmp_path / "p.jsonl", rows), provider="openai").counts
    )
    rows = [{"messages": [{**U, "name": "bob"}, A]}, {"messages": [{**U, "name": 5}, A]}]
    assert "invalid_name" in validate(lines(tmp_path / "n.jsonl", rows), provider="openai").counts


def test_claude_reserved_keyword_made_by_merging_turns_is_an_error(tmp_path: Path) -> None:
    row = {"messages": [{**U, "content": "a"}, {**U, "content": "Human: b"}, A]}
    report = _one(tmp_path, row, "bedrock-claude", n=32)
    (issue,) = [i for i in report.errors if i.code == "reserved_keyword"]
    assert "once joined" in issue.message
    assert _one(tmp_path, {"messages": [{**U, "content": "Human: b"}, A]}, "bedrock-claude", n=32).ok


def test_mistral_tool_call_without_arguments_or_description_string(tmp_path: Path) -> None:
    call = {"id": "abcdefghi", "type": "function", "function": {"name": "f"}}
    tool = {"type": "function", "function": {"name": "f", "description": None, "parameters": {}}}
    row = {"messages": [U, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "ok"}, A], "tools": [tool]}  # fmt: skip
    codes = {i.code for i in _one(tmp_path, row, "mistral").errors}
    assert {"invalid_tool_call", "tool_missing_description"} <= codes


def test_plain_text_is_supervised_data(tmp_path: Path) -> None:
    path = lines(tmp_path / "t.jsonl", [{"text": "one"}, {"text": "two"}])
    assert validate(path, provider="together", method="sft").ok
    assert "method_mismatch" in validate(path, provider="together", method="dpo").counts


def test_prompt_completion_needs_a_user_turn(tmp_path: Path) -> None:
    row = {"messages": [{"role": "system", "content": "s"}, A]}
    report = _one(tmp_path, row, "bedrock-llama")
    assert [i.code for i in report.errors] == ["no_user_turn"]


def test_upper_bound_counts_merged_turns_no_lower_than_aws(tmp_path: Path) -> None:
    from tests.fidelity.vendor import bedrock_claude

    row = {
        "messages": [
            {**U, "content": "a" * 30_002},
            {**U, "content": "b" * 30_002},
            {**A, "content": "c" * 36_000},
        ]
    }
    path = lines(tmp_path / "big.jsonl", [*chats(32), row])
    out = write_jsonl(Dataset.from_jsonl(path), "bedrock-claude", tmp_path / "wire.jsonl")
    assert any("Exceeds maximum token count" in m for _, m in bedrock_claude.check(out.path))
    assert "too_many_tokens" in {i.code for i in validate(path, provider="bedrock-claude").errors}


def test_a_bedrock_line_inside_a_plain_block_is_read_as_bedrock(tmp_path: Path) -> None:
    nova = {
        "messages": [
            {"role": "user", "content": [{"text": "hi"}]},
            {"role": "assistant", "content": [{"text": "yo"}]},
        ]
    }
    path = lines(tmp_path / "mix.jsonl", [*chats(8), nova])
    for workers in (1, 2):
        report = validate(path, provider="bedrock-nova", workers=workers)
        assert report.ok, [str(i) for i in report.errors]


def test_a_file_of_only_a_bom_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf\n")
    report = validate(path, provider="openai")
    assert [i.code for i in report.errors] == ["empty_file"]
    assert report.counts["bom"] == 1


def test_own_keys_of_prompt_completion_files_are_kept(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "completion": f"a{i}", "lang": "he" if i % 2 else "en"} for i in range(20)]
    path = lines(tmp_path / "pc.jsonl", rows)
    report = validate(path, provider="together")
    assert "'lang' (20)" in next(i for i in report.issues if i.code == "unrecognized_key").message
    result = split(Dataset.from_jsonl(path), tmp_path / "parts", validation_fraction=0.5, stratify="lang")
    langs = [json.loads(x)["lang"] for x in result.validation_path.read_text().splitlines()]
    assert sorted(langs) == ["en"] * 5 + ["he"] * 5


def test_fix_does_not_empty_a_whitespace_reply(tmp_path: Path) -> None:
    rows = [*chats(11), {"messages": [U, {**A, "content": "  "}]}]
    fixed = fix(
        Dataset.from_jsonl(lines(tmp_path / "w.jsonl", rows)), tmp_path / "f.jsonl", provider="together"
    )
    assert fixed.kept == 12


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789٣ -.()+#a\u200f\u00a0")), max_size=60))
def test_the_fast_number_search_is_the_regex(text: str) -> None:
    from unitune.data._pii import _NUMBER, _numbers

    assert [m.span() for m in _numbers(text)] == [m.span() for m in _NUMBER.finditer(text)]
