# What validate reads from an example's text: the turns text, the duplicate fingerprints, and the glue
# to the personal-data search (`unitune.data._pii`) with the text scanner's flags.
"""An example's text for `validate`: its turns as one string, fingerprints, personal data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from unitune.data import _pii
from unitune.data._textscan_py import F_AT, F_CARD, F_IBAN, F_PHONE, F_SPECIAL, scan
from unitune.types import content_text

#: The scanner's flags that personal data may be behind, and those a text check may act on.
_PII_FLAGS = F_AT | F_IBAN | F_PHONE | F_CARD
_TEXT_FLAGS = _PII_FLAGS | F_SPECIAL


def pii_findings(text: str, flags: int | None = None) -> list[tuple[str, str]]:
    """Likely personal data in `text`: (code, what) pairs, one per kind.

    Heuristic: a warning, never an error (see `unitune.data._pii`).

    `flags`: what `scan` found in `text` or in any text that contains it, if known (the patterns
    it rules out are not searched for).
    """
    if flags is None:
        flags = scan(text, "")[1]
    if not flags & _PII_FLAGS:
        return []
    return [(f.code, f.what) for f in _pii.find(text, scan_flags=flags, first_only=True)]


def _blake2b8(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


def _fingerprints(
    exacts: Sequence[str], digest: Callable[[bytes], bytes] = _blake2b8
) -> list[tuple[bytes, bytes]]:
    """(exact, near) keys of examples' turn texts (see `example_keys`), 8 bytes each.

    The near text is the text lower-cased with every run of non-word characters one space
    (`unitune.data._textscan_py.scan`, which gives it in one pass).
    """
    return [(digest(e.encode("utf-8", "surrogatepass")), digest(scan(e, "")[0])) for e in exacts]


def _listed(value: Any) -> list[Any]:
    # Malformed data (split and fix fingerprint lines validate would reject): a non-list has no turns.
    return value if isinstance(value, list) else []


def example_keys(data: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(exact, near) fingerprints of an example: same turns; same words ignoring case and punctuation.

    Blake2b, 8 bytes: `split` ranks examples by the exact one, so it must not change.
    """
    return _fingerprints([_turns_text(data)])[0]


def _turns_text(data: Mapping[str, Any]) -> str:
    """An example's turns as one string: what its exact fingerprint hashes."""
    if "messages" in data:
        turns = _listed(data.get("messages"))
    elif "input" not in data and "text" in data:
        text = data["text"]
        return f"text\x1f{text if isinstance(text, str) else ''}\x1f"
    else:
        inp = data.get("input")
        turns = [
            *(_listed(inp.get("messages")) if isinstance(inp, dict) else []),
            *_listed(data.get("preferred_output")),
            *_listed(data.get("non_preferred_output")),
        ]
    parts = []
    for m in turns:
        if isinstance(m, dict):
            content = m.get("content")
            if type(content) is str:
                text = content
            else:
                text = content_text(content) if not isinstance(content, (int, float)) else ""
            calls = json.dumps(m["tool_calls"], sort_keys=True) if m.get("tool_calls") else ""
            parts.append(f"{m.get('role')}\x1f{text}\x1f{calls}")
    return "\x1e".join(parts)


def _jsonable(value: Any) -> Any:
    """`value` as JSON would give it back, anything JSON cannot write as its `str`."""
    return json.loads(json.dumps(value, default=str))
