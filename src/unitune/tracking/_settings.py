"""The `[tracking]` settings (pydantic only: the config imports them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["TrackingSettings"]


class TrackingSettings(BaseModel):
    """Where a run is logged: the `[tracking]` table of `unitune.toml`.

    - `backend`: `"none"` (the default: nothing is logged), `"mlflow"` or `"wandb"`.
    - `uri`: the MLflow tracking URI (`http://host:5000`, `sqlite:///path/mlflow.db`, `file:///dir`,
      `databricks`). None means MLflow's own default: `MLFLOW_TRACKING_URI` when set, otherwise the
      default MLflow 3 recommends, a SQLite store `./mlflow.db` in the current directory (MLflow 3
      no longer defaults to the plain-file `./mlruns` store, except where `./mlruns` already holds
      runs). Ignored by W&B, whose offline runs go under `WANDB_DIR` or `./wandb`.
    - `experiment`: the MLflow experiment name, or the W&B project.
    - `entity`: the W&B entity (team or user); None: the account's default.
    - `mode`: W&B only. `"offline"` (the default) writes the run to disk with no account and no
      network (upload it later with `wandb sync`); `"online"` needs `wandb login` or `WANDB_API_KEY`.
    - `vendor`: send W&B logging through the vendor's own integration (OpenAI's `integrations`,
      Together's `wandb_*` fields: `JobSpec.wandb`) instead of logging from unitune. The vendor then
      logs the job's metrics with the W&B key it holds (OpenAI: the organisation's saved key;
      Together: the key sent with the create).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["none", "mlflow", "wandb"] = "none"
    uri: str | None = None
    experiment: str = "unitune"
    entity: str | None = None
    mode: Literal["offline", "online"] = "offline"
    vendor: bool = False

    @model_validator(mode="after")
    def _vendor_is_wandb(self) -> TrackingSettings:
        if self.vendor and self.backend != "wandb":
            raise ValueError('vendor = true passes W&B logging to the vendor: it needs backend = "wandb"')
        return self
