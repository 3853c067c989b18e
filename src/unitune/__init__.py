"""unitune: fine-tune, track, price, evaluate and call models on any provider through one client.

    from unitune import FineTuneClient
    client = FineTuneClient.from_config()      # provider from unitune.toml / $UNITUNE_PROVIDER
    job = client.wait(client.create_job(model="gpt-4o-mini", training_data="train.jsonl"))
    print(client.chat(job.fine_tuned_model, "My order is late").content)

Every public name, errors included, is importable from here. Names load on first use (PEP 562), so
`import unitune` costs almost nothing (the pytest plugin and the CLI rely on that), and vendor SDKs
load only when their provider is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unitune._lazy import loader

if TYPE_CHECKING:
    from unitune.catalog import Quote
    from unitune.client import AsyncFineTuneClient, FineTuneClient
    from unitune.config import UnituneConfig, load_config
    from unitune.data import ChatExample, Dataset, PreferenceExample, ValidationReport
    from unitune.errors import (
        AuthenticationError,
        BudgetExceeded,
        ConfigurationError,
        DatasetError,
        JobFailedError,
        JobSpecRefused,
        MissingDependencyError,
        NotFoundError,
        PermissionDeniedError,
        ProviderError,
        ProviderRetiredError,
        ProviderUnavailableError,
        RateLimitError,
        UnituneError,
        UnknownStatusError,
        UnsupportedFeatureError,
        ValidationFailed,
        WaitTimeout,
    )
    from unitune.evaluate import EvaluationReport, Metric
    from unitune.ledger import Ledger, LedgerEntry
    from unitune.providers.base import Provider, ProviderSettings
    from unitune.types import (
        Capabilities,
        ChatResponse,
        Checkpoint,
        FileRef,
        Hyperparameters,
        Job,
        JobEvent,
        JobSpec,
        JobStatus,
        Message,
        PreparedFile,
        StepMetric,
        TunedModel,
        Usage,
    )

__version__ = "0.1.0"


#: The public names and the module each loads from: `__all__` and the `TYPE_CHECKING` imports above
#: list the same names (spelled out for type checkers; tests/test_public_api.py holds them equal).
_EXPORTS: dict[str, str] = {
    "AsyncFineTuneClient": "unitune.client",
    "ChatExample": "unitune.data",
    "Dataset": "unitune.data",
    "PreferenceExample": "unitune.data",
    "ValidationReport": "unitune.data",
    "AuthenticationError": "unitune.errors",
    "BudgetExceeded": "unitune.errors",
    "Capabilities": "unitune.types",
    "ChatResponse": "unitune.types",
    "Checkpoint": "unitune.types",
    "TunedModel": "unitune.types",
    "ConfigurationError": "unitune.errors",
    "DatasetError": "unitune.errors",
    "EvaluationReport": "unitune.evaluate",
    "Metric": "unitune.evaluate",
    "FileRef": "unitune.types",
    "FineTuneClient": "unitune.client",
    "Hyperparameters": "unitune.types",
    "Job": "unitune.types",
    "JobEvent": "unitune.types",
    "JobFailedError": "unitune.errors",
    "JobSpecRefused": "unitune.errors",
    "JobSpec": "unitune.types",
    "JobStatus": "unitune.types",
    "Ledger": "unitune.ledger",
    "LedgerEntry": "unitune.ledger",
    "Message": "unitune.types",
    "MissingDependencyError": "unitune.errors",
    "NotFoundError": "unitune.errors",
    "PermissionDeniedError": "unitune.errors",
    "PreparedFile": "unitune.types",
    "Provider": "unitune.providers.base",
    "ProviderError": "unitune.errors",
    "ProviderRetiredError": "unitune.errors",
    "ProviderSettings": "unitune.providers.base",
    "ProviderUnavailableError": "unitune.errors",
    "Quote": "unitune.catalog",
    "RateLimitError": "unitune.errors",
    "StepMetric": "unitune.types",
    "UnituneConfig": "unitune.config",
    "UnknownStatusError": "unitune.errors",
    "UnituneError": "unitune.errors",
    "UnsupportedFeatureError": "unitune.errors",
    "Usage": "unitune.types",
    "ValidationFailed": "unitune.errors",
    "WaitTimeout": "unitune.errors",
    "load_config": "unitune.config",
}


_load = loader(__name__, _EXPORTS, globals())


def __getattr__(name: str) -> Any:
    return _load(name)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AsyncFineTuneClient",
    "AuthenticationError",
    "BudgetExceeded",
    "Capabilities",
    "ChatExample",
    "ChatResponse",
    "Checkpoint",
    "TunedModel",
    "ConfigurationError",
    "Dataset",
    "DatasetError",
    "EvaluationReport",
    "FileRef",
    "FineTuneClient",
    "Hyperparameters",
    "Job",
    "JobEvent",
    "JobFailedError",
    "JobSpecRefused",
    "JobSpec",
    "JobStatus",
    "Ledger",
    "LedgerEntry",
    "Message",
    "Metric",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreferenceExample",
    "PreparedFile",
    "Provider",
    "ProviderError",
    "ProviderRetiredError",
    "ProviderSettings",
    "ProviderUnavailableError",
    "Quote",
    "RateLimitError",
    "StepMetric",
    "UnituneConfig",
    "UnituneError",
    "UnknownStatusError",
    "UnsupportedFeatureError",
    "Usage",
    "ValidationFailed",
    "ValidationReport",
    "WaitTimeout",
    "__version__",
    "load_config",
]
