"""`FineTuneClient` and `AsyncFineTuneClient`: the one façade application code uses.

The client picks a provider (by name, instance or config), prepares and uploads data, records every
job it creates in the ledger, retries transient errors with one policy, and polls jobs to the end.
It imports no vendor SDK: providers do that, lazily.

Layout: `_sync` (the client), `_async` (the awaitable one, over it), `_poll` (the wait policy both
share), `_args` (the argument checks).
"""

from __future__ import annotations

from unitune.client._args import DataInput, MessagesInput
from unitune.client._async import AsyncFineTuneClient
from unitune.client._sync import FineTuneClient

__all__ = ["AsyncFineTuneClient", "DataInput", "FineTuneClient", "MessagesInput"]
