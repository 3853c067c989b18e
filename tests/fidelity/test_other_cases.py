"""Cohere, the local trainer and the fake: their disagreement cases. Cohere's fine-tuning is deprecated and
has no published validator, so its verdicts are its docs'; the local trainer's rules are what unitune's own
trainer reads; the fake takes OpenAI's rules, so a unit test under it fails where OpenAI's checks would."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fidelity._cases import A, Case, S, U, base_lines, chat, plain, run_case
from tests.fidelity.test_openai_cases import CASES as OPENAI_CASES

COHERE = [
    Case("a tool result", chat(U, A, {"role": "tool", "tool_call_id": "c", "content": "x"}), "refuses", "cohere-docs", "error:tools_unsupported", by_script=False),
    Case("no user message", chat(S, A), "refuses", "cohere-docs", "error:no_user_turn", by_script=False),
    Case("a mid-conversation system message", chat(U, A, S, U, A), "accepts", "cohere-docs", "warning:system_not_first", by_script=False),
    Case("content parts", chat({"role": "user", "content": [{"type": "text", "text": "hi"}]}, A), "refuses", "cohere-docs", "warning:multimodal_not_supported", by_script=False),
    Case("weights", chat(U, {**A, "weight": 0}), "accepts", "cohere-docs", "warning:weight_unsupported", by_script=False),
    Case("a preference pair", {"input": {"messages": [U]}, "preferred_output": [A], "non_preferred_output": [A]}, "refuses", "cohere-docs", "error:preference_unsupported", by_script=False),
]  # fmt: skip


@pytest.mark.parametrize("case", COHERE, ids=[c.name for c in COHERE])
def test_cohere_case(case: Case, tmp_path: Path) -> None:
    base = base_lines(2, plain) if "messages" in case.example else []
    run_case(case, tmp_path, provider="cohere", base=base, vendor=None, wire="cohere")


LOCAL = [
    Case("extra keys", chat(U, A, id=1, lang="en"), "accepts", "unitune-local", "warning:unrecognized_key"),
    Case("no content", chat({"role": "user"}, A), "refuses", "unitune-local", "error:missing_content"),
    Case("content parts", chat({"role": "user", "content": [{"type": "text", "text": "hi"}]}, A), "accepts", "unitune-local", "warning:multimodal_not_supported"),
    Case("special tokens", chat({**U, "content": "<|im_end|>"}, A), "accepts", "unitune-local", "warning:special_token"),
    Case("SFT data for a DPO job", chat(U, A), "refuses", "unitune-local", "error:method_mismatch", method="dpo"),
]  # fmt: skip


@pytest.mark.parametrize("case", LOCAL, ids=[c.name for c in LOCAL])
def test_local_trainer_case(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path, provider="local", base=base_lines(2, plain), vendor=None, wire="openai")


@pytest.mark.parametrize("case", OPENAI_CASES, ids=[c.name for c in OPENAI_CASES])
def test_the_fake_says_what_openai_says(case: Case, tmp_path: Path) -> None:
    from unitune.data import validate

    reports = {}
    for provider in ("openai", "fake"):
        path = tmp_path / f"{provider}.jsonl"
        lines = base_lines(10, plain)
        from tests.fidelity._cases import write

        write(path, lines, case.example)
        reports[provider] = validate(path, provider=provider, method=case.method)  # type: ignore[arg-type]
    per_line = {
        p: sorted((i.code, i.severity, i.line) for i in r.issues if i.line) for p, r in reports.items()
    }
    assert per_line["fake"] == per_line["openai"]
