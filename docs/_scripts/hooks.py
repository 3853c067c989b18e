"""MkDocs hooks: links to files outside docs/ point at the repository.

A page's link to bench/README.md, examples/ or src/ becomes a link to the file in the repository, so
the same Markdown reads right on GitHub and on the site.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite the page's relative links that leave docs/ into repository URLs."""
    docs = Path(config["docs_dir"]).resolve()
    root = docs.parent
    repo = str(config.get("repo_url") or "").rstrip("/")
    if page.file.abs_src_path is None or not repo:
        return markdown
    here = Path(page.file.abs_src_path).resolve().parent

    def fix(match: re.Match[str]) -> str:
        target, _, anchor = match.group(1).partition("#")
        resolved = (here / target).resolve()
        if (
            target
            and not resolved.is_relative_to(docs)
            and resolved.is_relative_to(root)
            and resolved.exists()
        ):
            kind = "tree" if resolved.is_dir() else "blob"
            url = f"{repo}/{kind}/main/{resolved.relative_to(root).as_posix()}"
            return f"]({url}{'#' + anchor if anchor else ''})"
        return match.group(0)

    return _LINK.sub(fix, markdown)
