"""Loading the catalog and answering from it: which models, under which names, until when."""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import sys
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from unitune.catalog._schema import CatalogFile, ModelEntry, ProviderEntry, Sourced, Sunset
from unitune.errors import ConfigurationError, ProviderRetiredError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Catalog", "LifecycleState", "ModelLifecycle", "StaleEntry", "load_catalog"]


class StaleEntry(NamedTuple):
    """A figure older than the staleness window."""

    provider: str
    model: str
    what: str
    as_of: dt.date


LifecycleState = Literal["live", "closing", "retired"]

#: How each kind of sunset reads in a phrase ("live; training ends 2027-01-06").
_WHAT = {"training": "training", "fine_tuning_api": "fine-tuning API", "inference": "inference"}


class ModelLifecycle(BaseModel):
    """Whether a model on a provider takes new fine-tuning jobs on a given day.

    One state, decided by `Catalog.lifecycle` from the provider entry and every sunset that applies to
    the model.

    - `live`: jobs accepted, no end announced.
    - `closing`: jobs still accepted; `date` is the first announced day they stop (`what` says which
      sunset: new training, the fine-tuning API, or the model itself being shut down).
    - `retired`: no new jobs; `date` is the day they stopped (None: the vendor gave none), with the
      `source` and the providers that still take jobs (`alternatives`).
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str | None = Field(description="The provider's own model id; None: the provider as a whole.")
    state: LifecycleState
    date: dt.date | None = Field(
        default=None, description="retired: when new jobs stopped; closing: when they stop; live: None."
    )
    what: Literal["training", "fine_tuning_api", "inference", "provider"] | None = Field(
        default=None,
        description="The sunset that decides it; `provider`: the provider entry says it takes no jobs.",
    )
    per_model: bool = Field(default=False, description="The deciding sunset names this model.")
    source: str
    alternatives: tuple[str, ...] = Field(default=(), description="Providers still taking jobs.")
    today: dt.date = Field(description="The day this was decided for.")

    @property
    def accepts_new_jobs(self) -> bool:
        """Whether a job can be created on `today` (live or closing)."""
        return self.state != "retired"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def phrase(self) -> str:
        """One phrase for tables: "live", "live; training ends 2027-01-06", "retired 2026-10-23"."""
        if self.state == "retired":
            return f"retired {self.date.isoformat()}" if self.date else "retired"
        if self.state == "closing" and self.date is not None:
            return f"live; {_WHAT.get(self.what or '', 'new jobs')} ends {self.date.isoformat()}"
        return "live"

    def error(self) -> ProviderRetiredError:
        """The error every entry point raises for this retired model.

        The `ProviderRetiredError` every entry point raises for a retired model (date, source,
        live alternatives).
        """
        message = f"{self.provider} accepts no new fine-tuning jobs"
        if self.per_model and self.model:
            message += f" for {self.model}"
            if self.what == "inference":
                message += ": the model is shut down"
        return ProviderRetiredError(
            message,
            provider=self.provider,
            retired_on=self.date,
            alternatives=self.alternatives,
            source=self.source,
        )


def _parse(text: str, origin: str) -> CatalogFile:
    try:
        return CatalogFile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"Catalog file {origin} is not valid TOML: {e}.") from None
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(
            f"Catalog file {origin}: {key}: {first['msg']}.", fix=f"Fix {key!r} in {origin}."
        ) from None


class Catalog:
    """Fine-tunable models per provider, their portable aliases, limits, prices and lifecycle."""

    def __init__(self, files: Iterable[CatalogFile]) -> None:
        self.providers: dict[str, CatalogFile] = {}
        for f in files:
            self._merge(f)

    def _merge(self, f: CatalogFile) -> None:
        name = f.provider.name
        current = self.providers.get(name)
        if current is None:
            self.providers[name] = f
            return
        # An override replaces the provider entry and the models it names, and adds new ones.
        models = {m.id: m for m in current.models}
        models.update({m.id: m for m in f.models})
        self.providers[name] = CatalogFile(provider=f.provider, models=list(models.values()))

    def with_overrides(self, paths: Sequence[Path]) -> Catalog:
        """A copy with user files (same format as the shipped ones) merged over the built-in data."""
        out = Catalog(self.providers.values())
        for path in paths:
            try:
                text = Path(path).read_text("utf-8")
            except OSError as e:
                raise ConfigurationError(
                    f"Cannot read catalog file {str(path)!r}: {e.strerror or e}."
                ) from None
            out._merge(_parse(text, str(path)))
        return out

    # -- lookups ------------------------------------------------------------------------------------

    def provider(self, name: str) -> ProviderEntry:
        """The lifecycle entry of a provider (`ConfigurationError` if the catalog has none)."""
        try:
            return self.providers[name].provider
        except KeyError:
            raise ConfigurationError(
                f"The catalog has no entry for provider {name!r}.",
                fix=f"Known: {', '.join(sorted(self.providers))}; add a catalog file in config to price others.",
            ) from None

    def models(self, provider: str | None = None) -> list[tuple[str, ModelEntry]]:
        """(provider, model) pairs, for one provider or all."""
        names = [provider] if provider is not None else sorted(self.providers)
        return [(n, m) for n in names if n in self.providers for m in self.providers[n].models]

    def offering(self, alias: str) -> list[tuple[str, str]]:
        """(provider, model id) for every provider that offers this portable alias."""
        return [(p, m.id) for p, m in self.models() if alias in m.aliases]

    def find(self, provider: str, model: str) -> ModelEntry | None:
        """The entry for a model id or portable alias on `provider`, if the catalog has it.

        Args:
            provider: the provider's name.
            model: a model id or a portable alias.

        Returns:
            The model's entry, or None when the catalog does not list it for `provider`.
        """
        for _, entry in self.models(provider):
            if entry.id == model or model in entry.aliases:
                return entry
        return None

    def resolve(self, provider: str, model: str) -> str:
        """The provider's own id for `model`.

        A portable alias becomes the provider's id; an alias the provider lacks raises
        `ConfigurationError` naming the providers that offer it. A name the catalog does not know
        at all passes through unchanged: vendors add models faster than any catalog.

        Args:
            provider: the provider's name.
            model: a model id or a portable alias.

        Returns:
            The provider's model id, or `model` itself when the catalog does not know it.

        Raises:
            ConfigurationError: `model` is an alias other providers offer and `provider` does not.
        """
        entry = self.find(provider, model)
        if entry is not None:
            return entry.id
        offered = [(p, mid) for p, mid in self.offering(model) if p != "fake"]  # the fake is not a vendor
        if offered:
            who = ", ".join(f"{p} ({mid})" for p, mid in offered)
            raise ConfigurationError(
                f"{provider!r} does not offer {model!r}.",
                fix=f"It is offered by: {who}. Switch provider, or pass {provider}'s own model id.",
            )
        return model

    def suggest(self, provider: str, model: str) -> list[str]:
        """Close names the catalog knows for `provider` (for error messages).

        Args:
            provider: the provider's name.
            model: the name that was not found.

        Returns:
            Up to three model ids or aliases, the closest first.
        """
        names = [n for _, m in self.models(provider) for n in (m.id, *m.aliases)]
        return difflib.get_close_matches(model, names, n=3, cutoff=0.5)

    def suggest_alias(self, alias: str) -> list[str]:
        """Close portable aliases the catalog knows (for an alias no provider offers)."""
        names = sorted({a for _, m in self.models() for a in m.aliases})
        return difflib.get_close_matches(alias, names, n=3, cutoff=0.5)

    # -- lifecycle ------------------------------------------------------------------------------

    def _decide(
        self, provider: str, model: str | None, today: dt.date
    ) -> tuple[LifecycleState, Sunset | None, str | None]:
        """The state, the sunset that decides it, and the model's own id.

        A sunset applies when it names no model (provider-wide) or names this model by id or alias; every
        kind ends new jobs, since a model that is shut down cannot be trained either.
        """
        entry = self.provider(provider)
        found = self.find(provider, model) if model else None
        names = {model, found.id, *found.aliases} if found else {model}
        relevant = [s for s in entry.sunsets if not s.models or names & set(s.models)]
        # The earliest known date first: the day it closed (an undated "already" only when no date is known).
        past = sorted(
            (s for s in relevant if s.date is None or s.date <= today),
            key=lambda s: (s.date is None, s.date or today),
        )
        future = sorted(
            (s for s in relevant if s.date is not None and s.date > today), key=lambda s: s.date or today
        )
        model_id = found.id if found else model
        if past:
            return "retired", past[0], model_id
        if not entry.accepts_new_jobs:
            return "retired", None, model_id
        if future:
            return "closing", future[0], model_id
        return "live", None, model_id

    def lifecycle(self, provider: str, model: str | None = None, *, today: dt.date) -> ModelLifecycle:
        """The lifecycle state of a model (or a whole provider) on a given day.

        The one lifecycle of `model` (an id or alias; None: the provider as a whole) on
        `provider` on `today`: `live`, `closing` (an end date is announced) or `retired`.

        Every entry point asks here: `create_job` (through `check_can_train`), `estimate`,
        `validate --model`, `unitune models` and `unitune providers`. `ConfigurationError` when the
        catalog has no entry for `provider`.

        Args:
            provider: the provider's name.
            model: a model id or alias; None for the provider as a whole.
            today: the day the state is judged on.

        Returns:
            The state, the date and source that decide it, and the alternatives when it is not live.

        Raises:
            ConfigurationError: the catalog has no entry for `provider`.
        """
        state, sunset, model_id = self._decide(provider, model, today)
        entry = self.provider(provider)
        alternatives = tuple(self.alternatives(provider, model_id, today=today)) if state != "live" else ()
        return ModelLifecycle(
            provider=provider,
            model=model_id,
            state=state,
            date=sunset.date if sunset else None,
            what=sunset.what if sunset else ("provider" if state == "retired" else None),
            per_model=bool(sunset and sunset.models),
            source=(sunset or entry.lifecycle).source,
            alternatives=alternatives,
            today=today,
        )

    def accepts_new_jobs(self, name: str, *, today: dt.date | None = None) -> bool:
        """Whether a provider takes new fine-tuning jobs.

        Whether provider `name` takes new fine-tuning jobs: its entry's flag and, on `today` (when
        given), no provider-wide sunset passed: the provider-wide answer of `lifecycle`. `unitune
        providers` and the alternatives in every retirement error ask here.

        Args:
            name: the provider's name.
            today: the day to judge sunsets on; None for the entry's flag alone.

        Raises:
            ConfigurationError: the catalog has no entry for `name`.
        """
        if today is None:
            return self.provider(name).accepts_new_jobs
        return self._decide(name, None, today)[0] != "retired"

    def alternatives(
        self, provider: str, model: str | None = None, *, today: dt.date | None = None
    ) -> list[str]:
        """Providers that still take new jobs: those offering the same alias first, then the sunset's list.

        Args:
            provider: the provider being left.
            model: the model being left (an id or alias), whose aliases rank the providers that offer
                it first; None for the provider as a whole.
            today: the day to judge the other providers' sunsets on; None for their entries' flags.

        Returns:
            Provider names, best first, without `provider` and the fake.

        Raises:
            ConfigurationError: the catalog has no entry for `provider`.
        """
        live = {
            name for name in self.providers if name != provider and self.accepts_new_jobs(name, today=today)
        }
        entry = self.find(provider, model) if model else None
        same = []
        if entry is not None:
            same = sorted({p for alias in entry.aliases for p, _ in self.offering(alias) if p in live})
        listed = [
            p
            for s in self.provider(provider).sunsets
            for p in s.alternatives
            if p in live or p not in self.providers
        ]
        out: list[str] = []
        for p in [*same, *listed, *sorted(live - {"fake"})]:
            if p not in out and p != "fake":
                out.append(p)
        return out

    def check_can_train(self, provider: str, model: str | None = None, *, today: dt.date) -> None:
        """Raise `ProviderRetiredError` if `model` on `provider` is retired on `today` (see `lifecycle`).

        A provider the catalog does not know passes: its adapter decides.

        Args:
            provider: the provider's name.
            model: a model id or alias; None for the provider as a whole.
            today: the day the state is judged on.

        Raises:
            ProviderRetiredError: the model (or the provider) takes no new jobs on `today`.
        """
        if provider not in self.providers:
            return
        lifecycle = self.lifecycle(provider, model, today=today)
        if lifecycle.state == "retired":
            raise lifecycle.error()

    def stale(self, *, older_than_days: int = 90, today: dt.date) -> list[StaleEntry]:
        """Figures whose `as_of` is more than `older_than_days` before `today`.

        Args:
            older_than_days: the age, in days, past which a figure is stale.
            today: the day ages are counted from.

        Returns:
            One entry per stale figure: the provider, the model ("-" for the provider's own) and what
            the figure is.
        """
        cutoff = today - dt.timedelta(days=older_than_days)
        out: list[StaleEntry] = []
        for name, f in sorted(self.providers.items()):
            if f.provider.lifecycle.as_of < cutoff:
                out.append(StaleEntry(name, "-", "lifecycle", f.provider.lifecycle.as_of))
            weights = f.provider.weights
            if weights is not None and weights.as_of < cutoff:
                out.append(StaleEntry(name, "-", "weights download", weights.as_of))
            for m in f.models:
                facts: list[tuple[str, Sourced | None]] = [
                    ("tuned inference", m.tuned_inference),
                    ("base inference", m.base_inference),
                    ("limits", m.limits),
                    *((f"training ({t.method}{', lora' if t.lora else ''})", t) for t in m.training),
                    *((f"hosting ({h.kind})", h) for h in m.hosting),
                ]
                out += [
                    StaleEntry(name, m.id, what, s.as_of)
                    for what, s in facts
                    if s is not None and s.as_of < cutoff
                ]
        return out


@functools.cache
def _builtin() -> Catalog:
    """The shipped catalog.

    Parsing TOML in pure Python costs ~25 ms for these files, so the parsed result is cached as JSON
    (C-speed to read) under the user cache dir, keyed by the files' content: an edited or upgraded file
    is simply a cache miss.
    """
    import hashlib
    import json

    folder = resources.files("unitune.catalog").joinpath("data")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".toml")), key=lambda e: e.name)
    texts = [(e.name, e.read_text("utf-8")) for e in entries]
    digest = hashlib.sha256("\0".join(f"{n}\0{t}" for n, t in texts).encode()).hexdigest()[:24]
    from unitune._paths import cache_dir

    cached = cache_dir() / f"catalog-{digest}.json"
    try:
        raw = json.loads(cached.read_text("utf-8"))
        return Catalog(CatalogFile.model_validate(r) for r in raw)
    except (OSError, ValueError):
        pass  # no cache yet (or an unreadable one): parse the TOML
    files = [_parse(text, f"unitune/catalog/data/{name}") for name, text in texts]
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps([f.model_dump(mode="json") for f in files]), "utf-8")
        tmp.replace(cached)
    except OSError as e:  # a read-only home only costs speed
        from unitune._log import get_logger

        get_logger("unitune").debug("unitune: cannot cache the catalog in %s: %s", cached, e)
    return Catalog(files)


def load_catalog(overrides: Sequence[str | Path] = ()) -> Catalog:
    """The built-in catalog (parsed once per process), with user override files merged over it."""
    base = _builtin()
    return base.with_overrides([Path(p) for p in overrides]) if overrides else base
