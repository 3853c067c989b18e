"""unitune: fine-tune, track, price, evaluate and call models on any provider through one client.

    from unitune import FineTuneClient
    client = FineTuneClient.from_config()      # provider from unitune.toml / $UNITUNE_PROVIDER
    job = client.wait(client.create_job(model="gpt-4o-mini", training_data="train.jsonl"))
    print(client.chat(job.fine_tuned_model, "My order is late").content)

Every public name, errors included, is importable from here. Vendor SDKs are imported only when
their provider is used.
"""

from __future__ import annotations

from unitune.client import AsyncFineTuneClient, FineTuneClient
from unitune.config import UnituneConfig, load_config
from unitune.errors import (
    AuthenticationError,
    BudgetExceeded,
    ConfigurationError,
    DatasetError,
    JobFailedError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderRetiredError,
    ProviderUnavailableError,
    RateLimitError,
    UnituneError,
    UnsupportedFeatureError,
    ValidationFailed,
    WaitTimeout,
)
from unitune.ledger import Ledger, LedgerEntry
from unitune.providers.base import Provider, ProviderSettings
from unitune.types import (
    Capabilities,
    ChatResponse,
    FileRef,
    Hyperparameters,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    PreparedFile,
    StepMetric,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncFineTuneClient",
    "AuthenticationError",
    "BudgetExceeded",
    "Capabilities",
    "ChatResponse",
    "ConfigurationError",
    "DatasetError",
    "FileRef",
    "FineTuneClient",
    "Hyperparameters",
    "Job",
    "JobEvent",
    "JobFailedError",
    "JobSpec",
    "JobStatus",
    "Ledger",
    "LedgerEntry",
    "Message",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreparedFile",
    "Provider",
    "ProviderError",
    "ProviderRetiredError",
    "ProviderSettings",
    "ProviderUnavailableError",
    "RateLimitError",
    "StepMetric",
    "UnituneConfig",
    "UnituneError",
    "UnsupportedFeatureError",
    "Usage",
    "ValidationFailed",
    "WaitTimeout",
    "__version__",
    "load_config",
]
