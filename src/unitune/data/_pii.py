"""Personal data in training text: find it (a warning in `validate`) and redact it (`fix(redact_pii=True)`).

Each kind has its own code and, where one exists, its checksum or format rules, so that an order
number is not a phone number and a phone number is not an ID:

* `pii_email`: an address (local part, "@", a domain with a dot).
* `pii_card`: 13 to 19 digits passing the Luhn check.
* `pii_iban`: a country code, two check digits and 11 to 30 characters passing mod-97.
* `pii_national_id`: an Israeli ID (9 digits, its check digit) or a US SSN (AAA-GG-SSSS with the SSA's
  rules: no 000/666/9xx area, no 00 group, no 0000 serial).
* `pii_phone`: a number the `phonenumbers` package (Google's libphonenumber rules; `pip install
  "unitune[pii]"`) says is valid for one of a few common regions, or in international form (+...) for
  any. Without it: a formatted number (a "+", a leading 0, brackets or separators) of 9 to 15 digits.

Numbers inside Hebrew or Arabic text are found as in English: Unicode digits (Arabic-Indic too) count,
bidirectional marks between digits are separators, and a letter next to a number (of any script) does
not hide it. All of it is heuristic: a warning, never an error.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from unitune.data._textscan_py import F_AT, F_CARD, F_IBAN, F_PHONE

__all__ = ["PLACEHOLDERS", "Finding", "find", "phone_rules", "redact"]

_ALL = F_AT | F_CARD | F_IBAN | F_PHONE

#: What `redact` writes in place of each kind.
PLACEHOLDERS = {
    "pii_email": "<EMAIL>",
    "pii_phone": "<PHONE>",
    "pii_national_id": "<NATIONAL_ID>",
    "pii_card": "<CARD>",
    "pii_iban": "<IBAN>",
}

_WHAT = {
    "pii_email": "an email address",
    "pii_phone": "a phone number",
    "pii_national_id": "a national id number",
    "pii_card": "a payment card number (passes the Luhn check)",
    "pii_iban": "an IBAN (valid checksum)",
}

# What may sit between the digits of a number: spaces, dots, dashes, brackets, no-break spaces and
# hyphens, and the invisible bidirectional marks that right-to-left text puts around numbers.
_SEP_CHARS = " .\\-()\u00a0\u2011\u2013\u200e\u200f\u202a-\u202e\u2066-\u2069"
_SEP = f"[{_SEP_CHARS}]"
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Numbers are delimited by "not a digit" rather than `\b`, so a Hebrew or Arabic letter touching a
# number (a letter to `\b` as much as "a" is) does not hide it.
_CARD = re.compile(rf"(?<![\d])(?:\d{_SEP}?){{12,18}}\d(?!\d)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![\d\-])(\d{3})[- \u2011\u2013]([0-9]{2})[- \u2011\u2013](\d{4})(?![\d\-])")
_NINE = re.compile(r"(?<![\d#])\d{9}(?!\d)")
# Runs of 9 to 17 digits with at most 3 separators between two: phone numbers and national ids are
# found in these (the text scanner's F_PHONE is set wherever one may match).
_NUMBER = re.compile(rf"(?<![\d+#])(?:\+|00)?{_SEP}{{0,3}}\d(?:{_SEP}{{0,3}}\d){{8,16}}(?!\d)")
# `_NUMBER`'s core without the look-arounds and the prefix: a pattern that begins with a character class
# lets the regex engine skip ahead to the next digit (7x faster over prose). See `_numbers`.
_RUN = re.compile(rf"\d(?:{_SEP}{{0,3}}\d){{8,16}}")
_PREFIX = 5  # the most `_NUMBER` takes before its first digit: "00" or "+", then 3 separators
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

#: Regions whose national formats `phonenumbers` tries for a number written without a "+".
PHONE_REGIONS = (
    "US",
    "GB",
    "IL",
    "DE",
    "FR",
    "ES",
    "IT",
    "NL",
    "IN",
    "AE",
    "SA",
    "EG",
    "BR",
    "MX",
    "AU",
    "CA",
)


# An email address has a local-part character right before its "@" and a domain right after: what
# `_EMAIL` needs, looked for at each "@" instead of at every position (20x less work on prose).
_EMAIL_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def _emails(text: str) -> list[tuple[int, int]]:
    """The spans `_EMAIL.finditer(text)` gives, found from each "@"."""
    out: list[tuple[int, int]] = []
    at = text.find("@")
    done = 0  # where the last address ended: a match never overlaps the one before
    while at != -1:
        start = at
        while start > done and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        domain = _EMAIL_DOMAIN.match(text, at + 1) if start < at else None
        if domain is not None:
            out.append((start, domain.end()))
            done = domain.end()
            at = text.find("@", done)
        else:
            at = text.find("@", at + 1)
    return out


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: its code and where it is in the text (`text[start:end]`)."""

    code: str
    start: int
    end: int

    @property
    def what(self) -> str:
        """The kind in words ("a phone number")."""
        return _WHAT[self.code]


def _digits(s: str) -> str:
    return "".join(str(unicodedata.digit(c)) for c in s if c.isdecimal())


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    # The SSA's rules since 2011: area not 000, 666 or 900-999; group not 00; serial not 0000.
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _numbers(text: str) -> Iterator[re.Match[str]]:
    """A faster `_NUMBER.finditer(text)`.

    `_NUMBER.finditer(text)`, faster: each match's digits begin a `_RUN` match, so `_NUMBER` is
    tried only where `_RUN` (which the engine finds quickly) begins, from up to `_PREFIX` characters
    before it (tests/test_data_fidelity.py compares the two).
    """
    pos = 0
    while True:
        run = _RUN.search(text, pos)
        if run is None:
            return
        q = run.start()
        for start in range(max(pos, q - _PREFIX), q + 1):
            m = _NUMBER.match(text, start)
            if m is not None:
                yield m
                pos = m.end()
                break
        else:
            pos = q + 1


def _national_id(candidate: str) -> tuple[int, int] | None:
    """Where a national id is in a run of digits.

    Where in a run of digits a national id is: an SSN in its format, or nine digits alone with an
    Israeli ID's check digit.
    """
    m = _SSN.search(candidate)
    if m is not None and _ssn_ok(*(_digits(g) for g in m.groups())):
        return m.span()
    m = _NINE.fullmatch(candidate)
    if m is not None and _israeli_id_ok(_digits(candidate)):
        return m.span()
    return None


def _israeli_id_ok(digits: str) -> bool:
    # Teudat Zehut: 9 digits, weights 1,2,1,2,... from the left, products' digits summed, total % 10 == 0
    # (the Luhn check over 9 digits). All zeros is not a number anyone holds.
    return len(digits) == 9 and digits != "000000000" and _luhn(digits)


@functools.cache
def phone_rules() -> Callable[[str], bool] | None:
    """The `phonenumbers` check for a candidate string, or None when the package is not installed."""
    try:
        import phonenumbers  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None

    def valid(candidate: str) -> bool:
        text = _BIDI.sub("", candidate).strip()
        regions: tuple[str | None, ...] = (None,) if text.startswith(("+", "00")) else PHONE_REGIONS
        if text.startswith("00"):
            text = "+" + text[2:]
        for region in regions:
            try:
                number = phonenumbers.parse(text, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return True
        return False

    return valid


def _looks_like_phone(candidate: str) -> bool:
    """Whether a number is written the way phone numbers are.

    A number written the way phone numbers are: 9 to 15 digits with a "+", a leading 0, brackets or
    separators (a bare run of digits is an order or account number). All the check there is without
    `phonenumbers`; with it, the number must also be valid by its rules.
    """
    text = _BIDI.sub("", candidate).strip()
    n = sum(c.isdecimal() for c in text)
    if not 9 <= n <= 15:
        return False
    if text[:1].isdecimal():  # a leading zero in any script's digits (Arabic-Indic "٠" too)
        text = str(unicodedata.digit(text[0])) + text[1:]
    return text.startswith(("+", "0", "(")) or any(not c.isdecimal() for c in text)


def find(text: str, *, scan_flags: int | None = None, first_only: bool = False) -> list[Finding]:
    """The personal data in `text`, in order, overlaps resolved (a card is not also a phone).

    `scan_flags`: what the text scanner found in this text (`unitune.data._textscan_py`); the patterns
    it rules out are not searched for. `first_only`: stop at the first finding of each kind (what
    `validate` needs; redaction needs them all).
    """
    flags = scan_flags if scan_flags is not None else _ALL
    found: list[Finding] = []
    if not flags & _ALL:
        return found
    # Each search appends its findings to `found` and skips the spans taken by those before it.
    if flags & F_AT and "@" in text:
        for start, end in _emails(text):
            found.append(Finding("pii_email", start, end))
            if first_only:
                break
    if flags & F_IBAN:
        _find_ibans(text, found, first_only)
    if flags & F_CARD:
        _find_cards(text, found, first_only)
    if flags & F_PHONE:
        _find_numbers(text, found, first_only)
    if len(found) > 1:
        found.sort(key=lambda f: f.start)
    return found


def _free(found: list[Finding], start: int, end: int) -> bool:
    """Whether `text[start:end]` overlaps none of the findings so far."""
    return all(end <= f.start or start >= f.end for f in found)


def _find_ibans(text: str, found: list[Finding], first_only: bool) -> None:
    for m in _IBAN.finditer(text):
        if _iban_ok(m.group()):
            found.append(Finding("pii_iban", *m.span()))
            if first_only:
                return


def _find_cards(text: str, found: list[Finding], first_only: bool) -> None:
    for m in _CARD.finditer(text):
        digits = _digits(m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits) and _free(found, *m.span()):
            found.append(Finding("pii_card", *m.span()))
            if first_only:
                return


def _find_numbers(text: str, found: list[Finding], first_only: bool) -> None:
    """Find national ids and phone numbers in `text`.

    National ids and phone numbers: one pass over the runs of 9+ digits (the costly part), then
    each run's kind: a national id (an SSN's format, or nine digits with an Israeli ID's check digit)
    inside it, else a phone.
    """
    rules = phone_rules()
    ids = phones = 0
    for m in _numbers(text):
        start, end = _number_span(text, *m.span())
        candidate = text[start:end]
        national = _national_id(candidate)
        if national is not None:
            at = (start + national[0], start + national[1])
            if _free(found, *at) and not (first_only and ids):
                found.append(Finding("pii_national_id", *at))
                ids += 1
        # Written as phone numbers are (a "+", a leading 0, brackets or separators), and then valid
        # by libphonenumber's rules where it is installed: a bare run of digits is an order number.
        elif (
            _free(found, start, end)
            and not (first_only and phones)
            and text[start - 1 : start] not in _ASCII_LETTERS
            and _looks_like_phone(candidate)
            and (rules is None or rules(candidate))
        ):
            found.append(Finding("pii_phone", start, end))
            phones += 1
        if first_only and ids and phones:
            return


def _number_span(text: str, start: int, end: int) -> tuple[int, int]:
    """A `_NUMBER` match's span without a separator the pattern took at either end (not part of the number)."""
    while start < end and not (text[start].isdecimal() or text[start] in "+("):
        start += 1
    while end > start and not text[end - 1].isdecimal():
        end -= 1
    return start, end


def redact(text: str, counts: dict[str, int] | None = None) -> str:
    """Replace every personal-data finding in `text` by its placeholder.

    `text` with every finding replaced by its placeholder (`<EMAIL>`, `<PHONE>`, ...); `counts`,
    if given, is increased by the number of each kind replaced.
    """
    findings = find(text)
    if not findings:
        return text
    out: list[str] = []
    at = 0
    for f in findings:
        out.append(text[at : f.start])
        out.append(PLACEHOLDERS[f.code])
        at = f.end
        if counts is not None:
            counts[f.code] = counts.get(f.code, 0) + 1
    out.append(text[at:])
    return "".join(out)


def redact_value(value: Any, counts: dict[str, int]) -> Any:
    """A message content (a string or a list of parts) with the text of each part redacted."""
    if isinstance(value, str):
        return redact(value, counts)
    if isinstance(value, list):
        return [
            {**part, "text": redact(part["text"], counts)}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in value
        ]
    return value
