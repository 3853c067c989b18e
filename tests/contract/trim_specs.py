"""Write the trimmed copies of the vendors' OpenAPI specs the contract tests serve (tests/contract/specs/).

The repository carries only what the tests need: the paths unitune's adapters call, and every
component those paths refer to, directly or through other components, untouched. Prism checks a
request against exactly the schemas the full spec has for that path.

    python tests/contract/trim_specs.py /path/to/full/specs   # rewrites tests/contract/specs/*.yaml

The full specs, and where each comes from, are listed in tests/contract/specs/SOURCES.md.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "specs"

# Each spec: the paths the adapters call (a regex over the path), generously.
KEEP: dict[str, str] = {
    "openai-openapi.yaml": r"^/(files|uploads|fine_tuning/jobs|chat/completions$|models)",
    "together-openapi.prism.yaml": r"^/v1/(files|fine-tunes|chat/completions|models)",
    "mistral-openapi.yaml": r"^/v1/(models|files|fine_tuning|chat/completions)",
    "mistral-openapi-legacy-finetuning.yaml": r"^/v1/(models|files|fine_tuning|chat/completions)",
    "cohere-openapi.prism.yaml": r"^/v1/(chat|datasets|models|finetuning)|^/v2/chat",
}


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                found.append(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _pointer(ref: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]


def trim(doc: dict[str, Any], keep: str) -> dict[str, Any]:
    pattern = re.compile(keep)
    out: dict[str, Any] = {k: doc[k] for k in ("openapi", "info", "servers", "security") if k in doc}
    out["paths"] = {p: v for p, v in doc["paths"].items() if pattern.search(p)}
    kept: dict[str, Any] = {}
    todo = _refs(out["paths"])
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = _pointer(ref)
        source: Any = doc
        for part in parts:
            source = source[part]
        target = kept
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = source
        todo.extend(_refs(source))
    components = kept.pop("components", {})
    schemes = doc.get("components", {}).get("securitySchemes")
    if schemes:
        components["securitySchemes"] = schemes
    out["components"] = components
    out.update(kept)  # references outside components (e.g. `$defs`)
    return out


def main(full: Path) -> None:
    OUT.mkdir(exist_ok=True)
    for name, keep in KEEP.items():
        doc = yaml.safe_load((full / name).read_text("utf-8"))
        trimmed = trim(doc, keep)
        (OUT / name).write_text(yaml.safe_dump(trimmed, sort_keys=False, allow_unicode=True), "utf-8")
        print(f"{name}: {len(trimmed['paths'])} of {len(doc['paths'])} paths")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
