"""What `validate` needs from an example's text besides its tokens, defined in plain Python.

`scan(text, starts)` gives (near, flags):

* near: the text its near-duplicate fingerprint hashes, as UTF-8: lower-cased character by
  character ("Σ" is "σ" everywhere: no final-sigma rule), every run of characters that are not
  alphanumeric (`str.isalnum`) one space, none at either end.
* flags: which slow patterns could match at all (`F_*`): an "@" for the email regex; two ASCII
  capitals then two digits for the IBAN one; 9+ digits with at most 3 separators between
  consecutive ones for the phone and national id ones (" .-()+", no-break spaces, en dashes and
  bidirectional marks); 13+ with at most 1 for the card one; a character of `starts` for the
  special-token one. Each is a superset test: unset means no match is possible.

`keys(text, starts)` gives (exact, near, flags): the same with both texts as 64-bit fingerprints,
for `validate`'s duplicate detection. The compiled scanner uses XXH64 (of the string's storage and
of the near text's UTF-8); this module, SHA-1. The numbers differ, but they only ever meet numbers
from the same implementation: every process of a run imports the same one.

The compiled `unitune.data._textscan` computes the same in one pass and is used when it was
built; these definitions are its reference (tests/test_textscan.py compares the two).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "F_AT",
    "F_CARD",
    "F_IBAN",
    "F_PHONE",
    "F_SPECIAL",
    "compiled",
    "keys",
    "keys_py",
    "scan",
    "scan_py",
]

F_AT: Final = 1
F_IBAN: Final = 2
F_PHONE: Final = 4
F_CARD: Final = 8
F_SPECIAL: Final = 16

_NEAR = re.compile(r"[\W_]+")  # `\w` is `str.isalnum()` or "_"
# A character's class for the flags: D a digit (`str.isdigit`, a superset of `\d`), S what may sit
# between a phone or card number's digits, A an ASCII capital, x anything else.
_PHONE = re.compile(r"D(?:S{0,3}D){8}")
_CARD = re.compile(r"D(?:S?D){12}")


#: Non-ASCII characters that may sit between a number's digits (as `unitune.data._pii`): no-break space
#: and hyphen, en dash, and the bidirectional marks right-to-left text puts around numbers.
_WIDE_SEP = frozenset("\u00a0\u2011\u2013\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _classes(text: str) -> str:
    return "".join(
        "D"
        if ch.isdigit()
        else "S"
        if ch in " .-()+" or ch in _WIDE_SEP
        else "A"
        if "A" <= ch <= "Z"
        else "x"
        for ch in text
    )


def scan_py(text: str, starts: str) -> tuple[bytes, int]:
    """`scan` in plain Python (the reference; about 10x slower than the compiled one)."""
    lowered = text.replace("\u03a3", "\u03c3").lower()
    near = _NEAR.sub(" ", lowered).strip(" ").encode("utf-8", "surrogatepass")
    flags = F_AT if "@" in text else 0
    if any(ch in text for ch in starts):
        flags |= F_SPECIAL
    if any(ch.isdigit() for ch in text):
        classes = _classes(text)
        if "AADD" in classes:
            flags |= F_IBAN
        if _PHONE.search(classes):
            flags |= F_PHONE
        if _CARD.search(classes):
            flags |= F_CARD
    return near, flags


def _fingerprint(data: bytes) -> int:
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "little")


def keys_py(text: str, starts: str) -> tuple[int, int, int]:
    """`keys` in plain Python: `scan_py`, with SHA-1 fingerprints."""
    near, flags = scan_py(text, starts)
    return _fingerprint(text.encode("utf-8", "surrogatepass")), _fingerprint(near), flags


try:
    from unitune.data import _textscan  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # not built (no C compiler at install time): the reference does the work
    _textscan = None

#: Whether the compiled scanner is in use.
compiled = _textscan is not None
scan: Callable[[str, str], tuple[bytes, int]] = _textscan.scan if _textscan is not None else scan_py
keys: Callable[[str, str], tuple[int, int, int]] = _textscan.keys if _textscan is not None else keys_py
#: `_validate._shape` of an example of plain {role, content} messages, compiled (None if not built).
lane: Callable[[Any], tuple[tuple[Any, ...], str] | None] | None = (
    _textscan.lane if _textscan is not None else None
)
