# The checks of one example that no shape stands for (see `checker._shape`), as the base of the
# checker: how a finding is reported, the checks of the text (special tokens, reserved keywords, personal
# data: the codes of `_TEXT_CODES`, which a shape leaves out by design), content given as parts (a
# shape gives up on those) and the plain-text example (never memoised).
"""The base of `validate`'s checker: reporting, the text checks, content parts, plain-text examples."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from unitune.data._checks import CODES
from unitune.data._loaders import DATA_URL_IMAGE
from unitune.data._report import Severity
from unitune.data._textscan_py import F_SPECIAL
from unitune.data._validate.text import _PII_FLAGS, pii_findings
from unitune.data.profiles import Profile
from unitune.types import content_text

#: The codes whose findings depend on the text, not on an example's structure (see `checker._shape`).
_TEXT_CODES = frozenset(
    {"special_token", "reserved_keyword", "pii_email", "pii_card", "pii_iban", "pii_phone", "pii_national_id"}
)


class _IssueSink(Protocol):
    """Where the checker reports: an `IssueCollector`, or the hot loop's `_Collector`."""

    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None: ...


class _ContentChecks:
    """The finding reporting and content checks that `_Checker` builds on.

    What `_Checker` builds on: findings reported with the profile's severity (into an
    `IssueCollector` or a `_Collector`), and the checks no shape stands for.

    A finding's severity comes from the profile (`Profile.severity`): an error only where a vendor
    rule refuses the data and the wire file keeps it.
    """

    def __init__(self, profile: Profile, issues: _IssueSink) -> None:
        self.p = profile
        self.issues = issues
        self.severity = {code: profile.severity(code) for code in CODES}
        tokens = [t for t in profile.forbidden_tokens if t]
        self.special = re.compile("|".join(re.escape(t) for t in tokens)) if tokens else None
        # Every forbidden token starts with one of these characters ("<" or "["): the scanner flags
        # a text with any of them; a text without any of their first two characters needs no regex.
        self.special_starts = "".join(sorted({t[0] for t in tokens}))
        self.special_prefixes = sorted({t[:2] for t in tokens})
        self.reserved = profile.reserved_keywords
        # Whether the current example's text may hold a special token / personal data at all (see
        # `prescan`); while True, every message is scanned.
        self.scan_special = True
        self.scan_pii = True
        self.flags: int | None = None
        self.structural = 0  # issues found so far that do not depend on the text (see `_TEXT_CODES`)

    def add(self, code: str, message: str, line: int) -> None:
        """Report `code` at `line` with the profile's severity for it."""
        if code not in _TEXT_CODES:
            self.structural += 1
        self.issues.add(code, self.severity[code], message, line=line)

    def listed(self, code: str) -> bool:
        """Whether the profile names a vendor rule for `code` (checks that only some vendors have)."""
        return code in self.p.checks

    def prescan(self, flags: int | None) -> None:
        """Look at the whole example once.

        Look at the whole example once (`flags`: what `scan` found in all its turns, see
        `_turns_text`; None: unknown).

        Each message's text is part of the whole, so where that can hold no special token or
        personal data, neither can any message: the per-message scans are skipped, with the same
        findings.
        """
        self.flags = flags
        if flags is None:
            self.scan_special = self.scan_pii = True
            return
        self.scan_special = bool(flags & F_SPECIAL)
        self.scan_pii = bool(flags & _PII_FLAGS)

    def text_findings(self, text: str, flags: int) -> bool:
        """Whether the text checks could report anything in an example.

        Whether the checks of the text (special tokens, reserved keywords, personal data) could
        report anything in an example whose turns are `text` (`flags`: what `scan` found in it).
        False is certain: a finding in one message is a finding in the whole; True may be a finding
        only the whole has (a special token in a tool call's arguments, which are not content).
        """
        if flags & F_SPECIAL and self._special_in(text) is not None:
            return True
        if self.reserved and any(k in text for k in self.reserved):
            return True
        return bool(flags & _PII_FLAGS) and bool(pii_findings(text, flags))

    def texts(self, messages: list[dict[str, Any]], line: int) -> None:
        """Run only the text checks of a structurally clean chat example.

        The text checks alone (`_text`) of a chat example whose structure is known to be clean:
        what `chat` would report for it (`prescan` first).
        """
        for i, m in enumerate(messages, 1):
            content = m.get("content")
            # Blank content has nothing to find (and is the structure's business).
            if content and not content.isspace():
                self._text(content, m["role"], f"message {i}", line)

    def _parts(self, content: list[Any], role: str, at: str, line: int) -> tuple[str, int] | None:
        """(text, images the wire file keeps) of content given as parts; None (reported) if a part is not one."""
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
                self.add(
                    "invalid_content_part",
                    f"{at}: each content part must be {{'type': 'text'|'image_url', ...}}",
                    line,
                )
                return None
        images = [part for part in content if part["type"] == "image_url"]
        kept_images = 0
        if not self.p.multimodal:
            self.add(
                "multimodal_not_supported",
                f"{at}: {self.p.name} takes text only; its text parts are written as one string"
                + (" and its images left out" if images else ""),
                line,
            )
        elif images and role != "user":
            self.add(
                "image_not_user",
                f"{at}: {self.p.name} takes images in user messages only; the image is left out of "
                "the wire file, the text kept",
                line,
            )
        elif images:
            kept_images = self._images(images, at, line)
        return content_text(content), kept_images

    def _images(self, images: list[dict[str, Any]], at: str, line: int) -> int:
        """How many images of a user message the wire file keeps; one warning for those it cannot."""
        form = self.p.images
        if form == "any":
            return len(images)
        kept = 0
        for part in images:
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if form == "data_url" and isinstance(url, str) and DATA_URL_IMAGE.match(url):
                kept += 1
        if kept < len(images):
            need = {
                "data_url": "base64 data URLs (data:image/jpeg|png|webp;base64,...)",
                "none": "images from S3 locations, which unitune does not upload",
            }[form]
            self.add(
                "image_dropped",
                f"{at}: {self.p.name} takes {need}; {len(images) - kept} image(s) left out of the wire "
                "file, the text kept",
                line,
            )
        return kept

    def _special_in(self, text: str) -> re.Match[str] | None:
        """The first forbidden token in `text`.

        The first forbidden token in `text` (the regex runs only where a token's first two
        characters occur).
        """
        if self.special is None or not any(map(text.__contains__, self.special_prefixes)):
            return None
        return self.special.search(text)

    def _text(self, text: str, role: str, at: str, line: int, *, joined: bool = False) -> None:
        found = self._special_in(text) if self.scan_special else None
        if found is not None:
            self.add(
                "special_token",
                f"{at} contains {found.group()!r}, a chat-template control token: the vendor's template "
                "may read it as one; remove or escape it",
                line,
            )
        for keyword in self.reserved:
            if keyword in text or (joined and keyword[0] == "\n" and text.startswith(keyword[1:])):
                self.add(
                    "reserved_keyword",
                    f"{at} contains {keyword!r}"
                    + ("" if keyword in text else " once joined to the message before it")
                    + f", which {self.p.name} reserves for its own prompt format; rephrase it",
                    line,
                )
                break
        # This message's own flags (the scanner is cheap): only the searches its text may need.
        for code, what in pii_findings(text) if self.scan_pii else ():
            self.add(code, f"{at} ({role}) seems to contain {what}; remove personal data", line)

    # -- plain text -------------------------------------------------------------------------------

    def text(self, data: Mapping[str, Any], line: int) -> list[dict[str, Any]] | None:
        """A plain-text example ({"text": ...}); counted as one assistant message (it is all trained)."""
        if not self.p.text:
            self.add(
                "text_unsupported",
                f"a plain-text example ({{'text': ...}}); {self.p.name} trains on chats: use 'messages'",
                line,
            )
            return None
        value = data.get("text")
        if not isinstance(value, str):
            self.add("content_not_string", f"'text' must be a string, got {type(value).__name__}", line)
            return None
        self._text(value, "text", "text", line)
        return [{"role": "assistant", "content": value}]
