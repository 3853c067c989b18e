"""OpenAI's OpenAPI spec (tests/contract/specs) as a checker: `check("FineTuningJob", body)` raises
unless `body` fits that component schema. The server's and the gateway's tests both use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SPEC = Path(__file__).resolve().parent / "contract" / "specs" / "openai-openapi.yaml"

Check = Callable[[str, Any], None]


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` (still in OpenAI's 3.1 spec) as JSON Schema: or null."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def openai_schema_check() -> Check:
    """A checker over OpenAI's component schemas, `$ref`s resolved through a referencing registry."""
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = _nullable(yaml.load(SPEC.read_text("utf-8"), Loader=loader))
    uri = "urn:openai-openapi"
    resource = referencing.Resource.from_contents(
        spec, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource(uri, resource)
    validators: dict[str, Any] = {}

    def check(name: str, body: Any) -> None:
        if name not in validators:
            assert name in spec["components"]["schemas"], name
            validators[name] = jsonschema.Draft202012Validator(
                {"$ref": f"{uri}#/components/schemas/{name}"}, registry=registry
            )
        validators[name].validate(body)

    return check
