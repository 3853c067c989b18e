"""The public surface is pinned: adding or removing a name is a deliberate change to this list."""

from __future__ import annotations

import json
import subprocess
import sys

import unitune

PUBLIC = {
    "AsyncFineTuneClient", "AuthenticationError", "ChatExample", "Dataset", "PreferenceExample",
    "ValidationReport", "Quote", "EvaluationReport", "Metric", "BudgetExceeded", "Capabilities", "ChatResponse", "Checkpoint", "TunedModel",
    "ConfigurationError", "DatasetError", "FileRef", "FineTuneClient", "Hyperparameters", "Job",
    "JobEvent", "JobFailedError", "JobSpecRefused", "JobSpec", "JobStatus", "Ledger", "LedgerEntry", "Message",
    "MissingDependencyError", "NotFoundError", "PermissionDeniedError", "PreparedFile", "Provider",
    "ProviderError", "ProviderRetiredError", "ProviderSettings", "ProviderUnavailableError",
    "RateLimitError", "StepMetric", "UnituneConfig", "UnituneError", "UnknownStatusError", "UnsupportedFeatureError", "Usage",
    "ValidationFailed", "WaitTimeout", "__version__", "load_config",
}  # fmt: skip

HEAVY = [
    "openai", "together", "cohere", "mistralai", "boto3", "botocore", "torch", "transformers", "peft",
    "httpx", "httpx2", "typer", "rich", "tenacity", "asyncio", "unitune.cli", "google.genai", "google.cloud",
]  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(unitune.__all__) == PUBLIC
    for name in unitune.__all__:
        assert hasattr(unitune, name), name


def test_public_classes_have_docstrings() -> None:
    for name in unitune.__all__:
        obj = getattr(unitune, name)
        if isinstance(obj, type):
            assert obj.__doc__, name


#: Every public module; ruff's docstring rules cannot see a public name defined in a private module.
PUBLIC_MODULES = ["unitune", "unitune.client", "unitune.errors", "unitune.types", "unitune.config",
                  "unitune.data", "unitune.catalog", "unitune.evaluate", "unitune.runs", "unitune.tracking",
                  "unitune.export", "unitune.migrate", "unitune.testing", "unitune.providers.base"]  # fmt: skip


def test_every_public_name_and_its_public_methods_have_docstrings() -> None:
    import importlib
    import inspect

    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants and type aliases are documented where they are defined
            if not inspect.getdoc(obj):
                missing.append(f"{module_name}.{name}")
            if inspect.isclass(obj) and obj.__module__.startswith("unitune"):
                fields = getattr(obj, "__dataclass_fields__", {})  # a callable field is data, not a method
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or attr in fields:
                        continue
                    if inspect.isfunction(member) and not inspect.getdoc(member):
                        missing.append(f"{module_name}.{name}.{attr}")
    assert missing == []


def test_import_loads_no_vendor_sdk_or_heavy_library() -> None:
    code = f"import sys, json, unitune; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_lazy_exports_match_all() -> None:
    assert set(unitune._EXPORTS) | {"__version__"} == set(unitune.__all__)
    assert dir(unitune) == sorted(unitune.__all__)


def test_type_checking_imports_match_the_exports() -> None:
    """The TYPE_CHECKING block imports each public name from the module `_EXPORTS` loads it from."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(unitune.__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    imported = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == unitune._EXPORTS


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = unitune.Nope  # type: ignore[attr-defined]
