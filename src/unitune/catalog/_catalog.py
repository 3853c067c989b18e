"""Loading the catalog and answering from it: which models, under which names, until when."""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import sys
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from pydantic import ValidationError

from unitune.catalog._schema import CatalogFile, ModelEntry, ProviderEntry, Sourced, Sunset
from unitune.errors import ConfigurationError, ProviderRetiredError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Catalog", "StaleEntry", "load_catalog"]


class StaleEntry(NamedTuple):
    """A figure older than the staleness window."""

    provider: str
    model: str
    what: str
    as_of: dt.date


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
        """The entry for a model id or portable alias on `provider`, if the catalog has it."""
        for _, entry in self.models(provider):
            if entry.id == model or model in entry.aliases:
                return entry
        return None

    def resolve(self, provider: str, model: str) -> str:
        """The provider's own id for `model`.

        A portable alias becomes the provider's id; an alias the provider lacks raises
        `ConfigurationError` naming the providers that offer it. A name the catalog does not know
        at all passes through unchanged: vendors add models faster than any catalog.
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
        """Close names the catalog knows for `provider` (for error messages)."""
        names = [n for _, m in self.models(provider) for n in (m.id, *m.aliases)]
        return difflib.get_close_matches(model, names, n=3, cutoff=0.5)

    # -- lifecycle ------------------------------------------------------------------------------

    def accepts_new_jobs(self, name: str, *, today: dt.date | None = None) -> bool:
        """Whether provider `name` takes new fine-tuning jobs (on `today`, when given: a passed
        provider-wide training sunset closes it). The one place this is decided: `unitune providers`,
        `create_job` and the alternatives in every retirement error all ask here."""
        entry = self.provider(name)
        if not entry.accepts_new_jobs:
            return False
        if today is None:
            return True
        return not any(
            s.what in ("training", "fine_tuning_api") and not s.models and (s.date is None or s.date <= today)
            for s in entry.sunsets
        )

    def alternatives(
        self, provider: str, model: str | None = None, *, today: dt.date | None = None
    ) -> list[str]:
        """Providers that still take new jobs: those offering the same alias first, then the sunset's list."""
        live = {name for name in self.providers if name != provider and self.accepts_new_jobs(name, today=today)}
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
        """Raise `ProviderRetiredError` if `provider` takes no new jobs (for this model) on `today`."""
        if provider not in self.providers:
            return
        entry = self.provider(provider)
        closing = [
            s for s in entry.sunsets
            if s.what in ("training", "fine_tuning_api") and (not s.models or (model is not None and model in s.models))
        ]  # fmt: skip
        past = [s for s in closing if s.date is None or s.date <= today]
        if entry.accepts_new_jobs and not past:
            return
        sunset: Sunset | None = past[0] if past else (closing[0] if closing else None)
        lifecycle: Sourced = sunset or entry.lifecycle
        message = f"{provider} accepts no new fine-tuning jobs" + (
            f" for {model}" if sunset and sunset.models else ""
        )
        raise ProviderRetiredError(
            message,
            provider=provider,
            retired_on=sunset.date if sunset else None,
            alternatives=self.alternatives(provider, model, today=today),
            source=lifecycle.source,
        )

    def stale(self, *, older_than_days: int = 90, today: dt.date) -> list[StaleEntry]:
        """Figures whose `as_of` is more than `older_than_days` before `today`."""
        cutoff = today - dt.timedelta(days=older_than_days)
        out: list[StaleEntry] = []
        for name, f in sorted(self.providers.items()):
            if f.provider.lifecycle.as_of < cutoff:
                out.append(StaleEntry(name, "-", "lifecycle", f.provider.lifecycle.as_of))
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
    """The shipped catalog. Parsing TOML in pure Python costs ~25 ms for these files, so the parsed
    result is cached as JSON (C-speed to read) under the user cache dir, keyed by the files' content:
    an edited or upgraded file is simply a cache miss."""
    import hashlib
    import json
    import logging

    folder = resources.files("unitune.catalog").joinpath("data")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".toml")), key=lambda e: e.name)
    texts = [(e.name, e.read_text("utf-8")) for e in entries]
    digest = hashlib.sha256("\0".join(f"{n}\0{t}" for n, t in texts).encode()).hexdigest()[:24]
    from unitune.config import cache_dir

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
        logging.getLogger("unitune").debug("unitune: cannot cache the catalog in %s: %s", cached, e)
    return Catalog(files)


def load_catalog(overrides: Sequence[str | Path] = ()) -> Catalog:
    """The built-in catalog (parsed once per process), with user override files merged over it."""
    base = _builtin()
    return base.with_overrides([Path(p) for p in overrides]) if overrides else base
