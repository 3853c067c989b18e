"""Where settings come from: `unitune.toml`, `[tool.unitune]` in `pyproject.toml`, and the environment.

Lookup order for the file: the `path` argument, then `$UNITUNE_CONFIG`, then `unitune.toml` in the
working directory, then `[tool.unitune]` in its `pyproject.toml`; none of them is fine (defaults).
`$UNITUNE_PROVIDER` overrides the provider named in any file. API keys are not needed here: each
provider reads its own from `[providers.<name>] api_key` or the vendor's conventional env var.

Example `unitune.toml`::

    provider = "together"

    [providers.together]
    base_url = "https://api.together.ai"   # api_key comes from TOGETHER_API_KEY

    [wait]
    poll_interval = 15

    [tracking]                             # log runs to MLflow or W&B (docs/tracking.md)
    backend = "mlflow"
    uri = "http://127.0.0.1:5000"

    [gateway]                              # `unitune gateway` / `unitune serve --fine-tuning`
    max_cost_usd = 100                     # each job's cap, for every key

    [gateway.models]
    "gpt-4o-mini-2024-07-18" = "together:llama-3.1-8b-instruct"

    [[gateway.keys]]
    name = "team-a"
    key_env = "TEAM_A_KEY"                 # the key itself stays out of the file
    max_cost_usd = 20
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from unitune._paths import CACHE_ENV, cache_dir
from unitune.errors import ConfigurationError
from unitune.tracking._settings import TrackingSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "CACHE_ENV",
    "CONFIG_ENV",
    "DEFAULT_PROVIDER",
    "GatewayKeySettings",
    "GatewaySettings",
    "HOME_ENV",
    "JOB_KEYS",
    "JobDefaults",
    "PROVIDER_ENV",
    "RetrySettings",
    "UnituneConfig",
    "WaitSettings",
    "cache_dir",
    "home_dir",
    "ledger_path",
    "load_config",
]

CONFIG_ENV = "UNITUNE_CONFIG"
PROVIDER_ENV = "UNITUNE_PROVIDER"
HOME_ENV = "UNITUNE_HOME"
#: The embedded default: trains on this machine, needs no key and no network.
DEFAULT_PROVIDER = "local"


class RetrySettings(BaseModel):
    """How the client retries transient errors (429, 5xx, timeouts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 8: a request that fails 30% of the time then fails for good 0.007% of the time, so a whole
    # lifecycle (13 to 34 requests) completes 99.8% of the time (bench/README.md, "faults").
    max_attempts: int = Field(default=8, ge=1, le=50)
    max_seconds: float = Field(default=300.0, gt=0, description="Give up once this much time has passed.")
    initial_backoff: float = Field(default=1.0, ge=0)
    max_backoff: float = Field(default=60.0, ge=0)
    find_window: float = Field(
        default=30.0,
        ge=0,
        description="After a create whose answer was lost, how long to keep looking for the job by its "
        "idempotency key (vendors' job lists can lag) before creating it again.",
    )


class WaitSettings(BaseModel):
    """How `wait()` polls a job: starting interval, growing by `backoff` up to `max_poll_interval`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_interval: float = Field(default=5.0, gt=0)
    max_poll_interval: float = Field(default=60.0, gt=0)
    backoff: float = Field(default=1.5, ge=1)


#: Keys of `[job]`, also accepted under `[providers.<name>]`, where they override `[job]` for that provider.
JOB_KEYS = frozenset({"model", "method", "hyperparameters", "suffix", "validation_split"})


class JobDefaults(BaseModel):
    """Defaults for `create_job` from the config's `[job]` and provider tables.

    Defaults for `create_job` (and `estimate`/`validate`'s model) from config: `[job]`, overridden
    per provider by the same keys under `[providers.<name>]`. Arguments to the call win over both,
    so switching vendor is a config change, not a code change.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(default=None, min_length=1)
    method: Literal["sft", "dpo"] | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    suffix: str | None = None
    validation_split: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Hold out this fraction of the training file as validation data when none is given.",
    )

    @field_validator("hyperparameters")
    @classmethod
    def _known_hyperparameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        from unitune.types import Hyperparameters

        Hyperparameters.model_validate(value)  # a typo or a bad value is caught when the file is read
        return value


class GatewayKeySettings(BaseModel):
    """One `[[gateway.keys]]` entry: a tenant's API key and its budget cap per job.

    The key is named by `key_env` (the variable holding it: the file can be committed) or written
    as `key`, like a provider's `api_key`; exactly one of the two. `key_env` is read when the
    gateway starts, not when the file is read, so other commands work without the variable set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None, min_length=1, description="Who the key is for (shown, never the key)."
    )
    key: SecretStr | None = Field(default=None, repr=False)
    key_env: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_cost_usd: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> GatewayKeySettings:
        if (self.key is None) == (self.key_env is None):
            raise ValueError('give the key as key_env = "VARIABLE" (or key = "..."), exactly one of them')
        if self.key is not None and not self.key.get_secret_value().strip():
            raise ValueError("key is empty")
        return self

    def secret(self, env: Mapping[str, str] | None = None) -> SecretStr:
        """Return the API key, read from the settings or the environment.

        The key: `key`, or the value of the variable `key_env` names (from `env`, default the
        process environment). Raises `ConfigurationError` naming the variable, never a key.
        """
        if self.key is not None:
            return self.key
        env = os.environ if env is None else env
        assert self.key_env is not None  # _one_source: one of the two is set
        value = env.get(self.key_env, "").strip()
        if not value:
            who = f" (key {self.name!r})" if self.name else ""
            raise ConfigurationError(
                f"[[gateway.keys]]{who} names the environment variable {self.key_env}, which is not set.",
                fix=f"Set {self.key_env} to the key, or remove that entry from [gateway] in unitune.toml.",
            )
        return SecretStr(value)


class GatewaySettings(BaseModel):
    """The `[gateway]` settings of `unitune gateway`.

    `[gateway]`: what `unitune gateway` (and `unitune serve --fine-tuning`, the same server)
    serves when its command-line options do not say. None: the command's own default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str | None = Field(default=None, min_length=1)
    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=0, le=65535)
    max_cost_usd: float | None = Field(default=None, ge=0)
    models: dict[str, str] = Field(
        default_factory=dict, description="OpenAI model name -> PROVIDER:MODEL, as --map."
    )
    keys: list[GatewayKeySettings] = Field(default_factory=list)

    @field_validator("models")
    @classmethod
    def _provider_models(cls, models: dict[str, str]) -> dict[str, str]:
        # Caught when the file is read, not when the first job for that model is created.
        for name, target in models.items():
            prefix, sep, model = target.partition(":")
            if not name.strip() or not sep or not prefix.strip() or not model.strip():
                raise ValueError(
                    f"{name!r} = {target!r} is not a mapping to PROVIDER:MODEL "
                    '(e.g. "gpt-4o-mini-2024-07-18" = "together:llama-3.1-8b-instruct")'
                )
        return {name.strip(): target.strip() for name, target in models.items()}


class UnituneConfig(BaseModel):
    """The whole configuration. `source` is the file it came from (None: defaults only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = DEFAULT_PROVIDER
    home: Path | None = None
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    catalog: list[Path] = Field(
        default_factory=list, description="Catalog files merged over the built-in one."
    )
    retry: RetrySettings = Field(default_factory=RetrySettings)
    wait: WaitSettings = Field(default_factory=WaitSettings)
    job: JobDefaults = Field(default_factory=JobDefaults)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("providers", mode="before")
    @classmethod
    def _tables(cls, providers: Any) -> Any:
        if isinstance(providers, dict):
            for name, section in providers.items():
                if not isinstance(section, dict):
                    raise ValueError(f"[providers.{name}] must be a table")
        return providers

    @field_validator("providers")
    @classmethod
    def _hide_keys(cls, providers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # A key written in the file must not show in repr() or a dump of the config.
        return {
            name: {
                k: SecretStr(v) if k == "api_key" and isinstance(v, str) else v for k, v in section.items()
            }
            for name, section in providers.items()
        }

    @model_validator(mode="after")
    def _home_relative_to_file(self) -> UnituneConfig:
        # `home = "data"` in a config file means next to that file, not wherever the command runs.
        if self.home is not None and not self.home.is_absolute() and self.source is not None:
            object.__setattr__(self, "home", (self.source.parent / self.home.expanduser()).resolve())
        if self.source is not None:
            paths = [p if p.is_absolute() else (self.source.parent / p).resolve() for p in self.catalog]
            object.__setattr__(self, "catalog", paths)
        return self

    def section(self, provider: str) -> dict[str, Any]:
        """The `[providers.<name>]` settings for the provider itself.

        Empty if absent: the table without its job defaults (`model`, `method`, …), which
        `job_defaults` reads.
        """
        return {k: v for k, v in self.providers.get(provider, {}).items() if k not in JOB_KEYS}

    def job_defaults(self, provider: str) -> JobDefaults:
        """`[job]` with `[providers.<provider>]`'s job keys over it.

        Raises `ConfigurationError` naming the key when a per-provider value is invalid.
        """
        own = {k: v for k, v in self.providers.get(provider, {}).items() if k in JOB_KEYS}
        if not own:
            return self.job
        merged = self.job.model_dump()
        for key, value in own.items():
            if key == "hyperparameters" and isinstance(value, dict):
                merged["hyperparameters"] = {**merged["hyperparameters"], **value}
            else:
                merged[key] = value
        try:
            return JobDefaults.model_validate(merged)
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            where = str(self.source) if self.source is not None else "your unitune config"
            raise ConfigurationError(
                f"{where}: invalid setting [providers.{provider}] {key!r}: {first['msg']}.",
                fix=f"Edit {key!r} under [providers.{provider}] in {where}.",
            ) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except FileNotFoundError:
        raise ConfigurationError(f"Config file {str(path)!r} does not exist.") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text.", fix="Save it as UTF-8.") from None
    except OSError as e:
        raise ConfigurationError(f"Cannot read config file {str(path)!r}: {e.strerror or e}.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(
            f"{path} is not valid TOML: {e}.", fix=f"Fix the syntax at the line named in {path.name}."
        ) from None


def _find(
    path: str | os.PathLike[str] | None, cwd: Path, env: Mapping[str, str]
) -> tuple[Path, dict[str, Any]] | None:
    if path is not None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ConfigurationError(
                f"The config path must be the path of a unitune.toml, not {path!r}.",
                fix="Pass e.g. 'unitune.toml', or nothing to look in the working directory.",
            )
        p = Path(path)
        if p.is_dir():
            raise ConfigurationError(
                f"Config path {str(p)!r} is a directory.", fix="Pass the unitune.toml inside it."
            )
        return p, _read_toml(p)
    if env.get(CONFIG_ENV):
        p = Path(env[CONFIG_ENV])
        if not p.is_file():
            raise ConfigurationError(
                f"{CONFIG_ENV} points at {str(p)!r}, which is not a file.",
                fix=f"Set {CONFIG_ENV} to an existing unitune.toml or unset it.",
            )
        return p, _read_toml(p)
    local = cwd / "unitune.toml"
    if local.is_file():
        return local, _read_toml(local)
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        tool = _read_toml(pyproject).get("tool", {})
        table = tool.get("unitune") if isinstance(tool, dict) else None
        if table is not None:
            if not isinstance(table, dict):
                raise ConfigurationError(f"{pyproject}: [tool.unitune] must be a table.")
            return pyproject, table
    return None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> UnituneConfig:
    """Read the configuration (see the module docstring for where from).

    Args:
        path: the unitune.toml to read, instead of `$UNITUNE_CONFIG` or the working directory's.
        cwd: the working directory whose `unitune.toml` and `pyproject.toml` are read; default the
            current directory.
        env: the environment variables to read (`$UNITUNE_CONFIG`, `$UNITUNE_PROVIDER`, ...); default
            the process environment.

    Returns:
        The configuration, with defaults for whatever the files do not set.

    Raises:
        ConfigurationError: a malformed file (naming the file and the offending key).
    """
    env = os.environ if env is None else env
    if not isinstance(env, Mapping):
        raise ConfigurationError(f"env must be a mapping of variables, not a {type(env).__name__}.")
    if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
        raise ConfigurationError(f"cwd must be a directory path, not a {type(cwd).__name__}.")
    found = _find(path, Path(cwd) if cwd is not None else Path.cwd(), env)
    source, data = found if found is not None else (None, {})
    if env.get(PROVIDER_ENV):
        data = {**data, "provider": env[PROVIDER_ENV]}
    try:
        config = UnituneConfig.model_validate({**data, "source": source})
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        where = str(source) if source is not None else f"${PROVIDER_ENV}"
        prefix = "[tool.unitune] " if source is not None and source.name == "pyproject.toml" else ""
        # A check of our own reads as its message, without pydantic's "Value error, " in front.
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(
            f"{where}: invalid setting {prefix}{key!r}: {msg}.",
            fix=f"Edit {key!r} in {where}.",
        ) from None
    return config


def home_dir(config: UnituneConfig | None = None) -> Path:
    """The data directory of unitune.

    `$UNITUNE_HOME`, else `home` in config, else the platform's user data dir.
    """
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if config is not None and config.home is not None:
        return config.home.expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("unitune", appauthor=False))


def ledger_path(config: UnituneConfig | None = None) -> Path:
    """The ledger file of jobs this machine created: `ledger.sqlite3` in the unitune home."""
    return home_dir(config) / "ledger.sqlite3"
