"""The compiled text scanner against its plain-Python reference (unitune.data._textscan_py)."""

from __future__ import annotations

import os
import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unitune.data import _textscan_py as T

compiled = pytest.mark.skipif(not T.compiled, reason="the C extension was not built")


def test_the_extension_is_built() -> None:
    # setup.py marks it optional so that an install without a compiler still works (on the Python
    # fallback). CI has one, and says so (.ci/run), so that a broken build cannot pass unnoticed.
    if not T.compiled and not os.environ.get("UNITUNE_REQUIRE_EXTENSION"):
        pytest.skip("unitune.data._textscan was not built (no C compiler?): the Python fallback is in use")
    assert T.compiled, (
        "unitune.data._textscan was not built: is a C compiler installed? (pip install -e . -v)"
    )


@compiled
@pytest.mark.parametrize("start", range(0, sys.maxunicode + 1, 0x8000))
def test_every_code_point_matches_the_reference(start: int) -> None:
    chars = [chr(c) for c in range(start, min(start + 0x8000, sys.maxunicode + 1))]
    # Each character between two letters, so its own near form and whether it blanks both show.
    text = "".join(f"a{ch}b" for ch in chars)
    assert T.scan(text, "<[") == T.scan_py(text, "<[")


def test_near_text_is_the_regex_definition() -> None:
    text = "  Hello,   WORLD!! it's__me\t\n ΣΑΣ ÉTÉ 東京 İ  "
    lowered = text.replace("Σ", "σ").lower()
    expected = re.sub(r"[\W_]+", " ", lowered).strip().encode()
    assert T.scan_py(text, "")[0] == expected
    assert T.scan(text, "")[0] == expected
    assert expected == "hello world it s me σασ été 東京 i".encode()


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("plain words only", 0),
        ("mail me at a@b.co", T.F_AT),
        ("call +1 (555) 123-4567 now", T.F_PHONE),
        ("12345678", 0),  # 8 digits: no phone number
        ("1 2 3 4 5 6 7 8 9", T.F_PHONE),
        ("1    2 3 4 5 6 7 8 9", 0),  # 4 separators break the chain
        ("4111 1111 1111 1111", T.F_PHONE | T.F_CARD),
        ("4111  1111 1111 1111", T.F_PHONE),  # two separators: no card
        ("GB82 WEST 1234 5698 7654 32", T.F_IBAN | T.F_PHONE | T.F_CARD),  # 14 digits, single spaces
        ("AB1 CD", 0),
        ("xAB12", T.F_IBAN),
        ("A1B2", 0),
        ("<|im_start|>", T.F_SPECIAL),
        ("[INST]", T.F_SPECIAL),
        ("١٢٣٤٥٦٧٨٩", T.F_PHONE),  # Arabic-Indic digits are `\d`
    ],
)
def test_flags(text: str, flags: int) -> None:
    assert T.scan_py(text, "<[")[1] == flags
    assert T.scan(text, "<[")[1] == flags


@compiled
@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("aZ09 .-()+@<[_\tΣİé東😀\u0660\ud800")), max_size=80),
    st.text(max_size=3),
)
def test_random_text_matches_the_reference(text: str, starts: str) -> None:
    assert T.scan(text, starts) == T.scan_py(text, starts)


@compiled
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.text(max_size=3))
def test_arbitrary_unicode_matches_the_reference(text: str, starts: str) -> None:
    assert T.scan(text, starts) == T.scan_py(text, starts)


def test_superset_of_the_pii_patterns() -> None:
    """Wherever validate's PII regexes match, the flags say they could."""
    from unitune.data._pii import _CARD, _EMAIL, _IBAN, _NINE, _NUMBER, _SSN

    samples = [
        "write to jane.doe@example.com", "+44 20 7946 0958", "(555) 123-4567", "555.123.4567",
        "4111-1111-1111-1111", "DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "٠١٢٣٤٥٦٧٨٩٠",
        "מספר 123456782", "078-05-1120", "050\u200f-123\u200f-4567", "4111\u00a01111\u00a01111\u00a01111",
    ]  # fmt: skip
    for text in samples:
        flags = T.scan(text, "")[1]
        assert not _EMAIL.search(text) or flags & T.F_AT
        for pattern in (_NUMBER, _SSN, _NINE):
            assert not pattern.search(text) or flags & T.F_PHONE, text
        assert not _CARD.search(text) or flags & T.F_CARD, text
        assert not _IBAN.search(text) or flags & T.F_IBAN, text


def _storage(text: str) -> bytes:
    """The bytes CPython keeps `text` in (PEP 393): 1, 2 or 4 bytes a character."""
    widest = max(map(ord, text), default=0)
    return text.encode(
        "latin-1" if widest < 256 else "utf-16-le" if widest < 65536 else "utf-32-le", "surrogatepass"
    )


@compiled
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(max_size=2))
def test_keys_are_xxh64_of_the_text_and_its_near_form(text: str, starts: str) -> None:
    xxhash = pytest.importorskip("xxhash")
    exact, near, flags = T.keys(text, starts)
    assert exact == xxhash.xxh64_intdigest(_storage(text))
    want_near, want_flags = T.scan_py(text, starts)
    assert near == xxhash.xxh64_intdigest(want_near)
    assert flags == want_flags


def test_keys_tell_texts_apart_as_the_reference_does() -> None:
    texts = ["a", "a ", "A", "b", "", "héllo", "hello", "HELLO!", "東京", "東京 "]
    for fn in (T.keys, T.keys_py):
        got = [fn(t, "") for t in texts]
        for (e1, n1, _), t1 in zip(got, texts, strict=True):
            for (e2, n2, _), t2 in zip(got, texts, strict=True):
                assert (e1 == e2) == (t1 == t2)
                assert (n1 == n2) == (T.scan_py(t1, "")[0] == T.scan_py(t2, "")[0])


def test_long_text_uses_the_heap_buffer() -> None:
    text = "Word, " * 5000  # over the scanner's 4 KiB stack buffer
    assert T.keys(text, "")[1] == T.keys(text + " ", "")[1]
    assert T.scan(text, "")[0] == T.scan_py(text, "")[0]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab.Z9-_%+@ \n.x東")), max_size=40))
def test_email_check_is_the_regex(text: str) -> None:
    from unitune.data._pii import _EMAIL, _emails

    assert _emails(text) == [m.span() for m in _EMAIL.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 -.()+@abAB東٣\u200f\u00a0#")), max_size=40))
def test_pii_findings_with_the_scanners_flags_are_the_same(text: str) -> None:
    from unitune.data._validate import pii_findings

    # Flags of a longer text that contains this one (a whole example) rule out no less.
    whole = f"user\x1f{text}\x1f\x1eassistant\x1fok\x1f"
    assert pii_findings(text, T.scan(whole, "")[1]) == pii_findings(text, 31) == pii_findings(text)
