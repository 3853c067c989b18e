"""OpenAI's fine-tuning API over any unitune provider (`unitune gateway`).

Point the `openai` SDK's `base_url` at the gateway and `client.fine_tuning.jobs.create(...)` runs
on Together, Bedrock, Vertex, the local trainer or the fake, with unitune's validation, conversion,
budget cap, retries and ledger. See `unitune.gateway._app` for the API served.

Importing this package loads no server library: FastAPI and uvicorn load when an app is built.
"""

from __future__ import annotations

from unitune.gateway._app import GatewayConfig, GatewayKey, GatewayServer, create_gateway_app, start_gateway

__all__ = ["GatewayConfig", "GatewayKey", "GatewayServer", "create_gateway_app", "start_gateway"]
