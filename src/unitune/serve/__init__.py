"""Ship a tuned model: serve it behind an OpenAI-compatible API and watch it in production.

`unitune serve` (the server: `unitune.serve._app`), `unitune monitor` (the report on its request
log: `unitune.serve._monitor`), A/B splits (`unitune.serve._ab`). FastAPI and uvicorn are the
`serve` extra, imported only when a server starts.
"""

from unitune.serve._ab import ABSplit
from unitune.serve._log import RequestLog, RequestRecord

__all__ = ["ABSplit", "RequestLog", "RequestRecord"]
