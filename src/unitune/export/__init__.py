"""Export a tuned model out of unitune, for a runtime that has never heard of it.

    from unitune.export import export_model
    export_model(client.provider, "local:ftjob-local-…", "gguf", "out/")

Formats (`unitune export MODEL --format F -o DIR` on the command line):

- ``peft``: the LoRA adapter as PEFT saved it, with ``base_model_name_or_path`` naming its base model
  and the base's tokenizer files (with the chat template) beside it; ``PeftModel.from_pretrained``
  loads it.
- ``merged``: the base with the adapter merged in, written by ``save_pretrained`` (safetensors, config,
  generation config, tokenizer, chat template); plain ``transformers`` loads it.
- ``gguf``: one ``model.gguf`` that llama.cpp-based runtimes load (Llama family: SmolLM2, Llama 3.x),
  2-D weights in f16 (default) or f32.
- ``ollama``: that GGUF plus a ``Modelfile`` (chat template, system prompt, stop tokens) for
  ``ollama create NAME -f DIR/Modelfile``.

The local provider exports ``local:<job-id>`` models, and base models for every format but ``peft``.
A hosted vendor keeps the weights it trained: the error says what that vendor allows (the catalog's
``weights`` entry: Together lets you download them, OpenAI and Bedrock do not).

The export is written into a new folder next to the target, which replaces the target only once
complete: a failed export leaves nothing behind. A target that exists and is not empty is refused
unless ``overwrite=True`` (``--force``).

Importing this module loads no ML library; torch, transformers, peft and gguf load when an export
that needs them runs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel, ConfigDict, Field

from unitune._choices import ExportDtype, ExportFormat
from unitune.errors import ConfigurationError, UnsupportedFeatureError
from unitune.export._files import check_adapter, check_not_overlapping, check_target, staged

if TYPE_CHECKING:
    from unitune.providers.base import Provider
    from unitune.providers.local import LocalProvider

__all__ = ["ExportDtype", "ExportFormat", "ExportResult", "export_model"]

FORMATS: tuple[str, ...] = get_args(ExportFormat)
GGUF_FILE = "model.gguf"
MODELFILE = "Modelfile"
#: Tokenizer files copied beside a PEFT adapter (whichever the base has).
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json",
    "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
)  # fmt: skip
_TORCH_DTYPES = {"f16": "float16", "f32": "float32"}


class ExportResult(BaseModel):
    """What an export wrote."""

    model_config = ConfigDict(frozen=True)

    format: ExportFormat
    path: Path = Field(description="The folder written.")
    files: list[Path] = Field(description="Every file in it.")
    model: str = Field(description="The model exported (local:<job-id>, or a base model).")
    base_model: str = Field(description="The base model it was tuned from, as the job named it.")
    dtype: str | None = Field(
        default=None, description="The weights' precision; None: the adapter's own (peft)."
    )
    notes: list[str] = Field(default_factory=list, description="What a user of the files should know.")


@dataclass(frozen=True)
class _Source:
    model: str
    base_path: Path
    adapter: Path | None
    base_model: str
    training_file: Path | None
    device: str

    @property
    def folders(self) -> list[Path]:
        return [self.base_path, *([self.adapter.parent] if self.adapter else [])]


def export_model(
    provider: Provider,
    model: str,
    format: ExportFormat,
    path: str | Path,
    *,
    overwrite: bool = False,
    dtype: ExportDtype | None = None,
    system: str | None = None,
) -> ExportResult:
    """Write `model` in `format` to the folder `path` and say what was written.

    Args:
        provider: the provider the model was trained on; only the local one can export.
        model: ``local:<job-id>`` (a bare job id works too), or a base model (not for ``peft``).
        format: ``peft`` (the adapter), ``merged`` (a transformers folder), ``gguf`` (llama.cpp) or
            ``ollama`` (GGUF + Modelfile).
        path: the folder to write.
        overwrite: replace a `path` that exists.
        dtype: the precision of the weights written: for ``gguf``/``ollama`` f16 unless "f32"; for
            ``merged`` the base model's own unless given.
        system: the Modelfile's SYSTEM prompt for ``ollama`` (default: the one every training example
            shares, else the one the model's chat template inserts).

    Returns:
        What was written, and where.

    Raises:
        UnsupportedFeatureError: a provider other than the local one (saying what that vendor
            allows), or a model GGUF cannot hold.
        ConfigurationError: a bad argument, a `path` that exists, or a corrupt adapter folder.
        NotFoundError: an unknown job.
    """
    if format not in FORMATS:
        raise ConfigurationError(
            f"Unknown export format {format!r}.", fix=f"Use one of: {', '.join(FORMATS)}."
        )
    if dtype not in (None, *_TORCH_DTYPES):
        raise ConfigurationError(f"Unknown export dtype {dtype!r}.", fix="Use 'f16' or 'f32'.")
    if system is not None and format != "ollama":
        raise ConfigurationError(
            f"A system prompt is for the Modelfile of an ollama export, not a {format} one.",
            fix="Leave system out, or export with format 'ollama'.",
        )
    if format == "peft" and dtype is not None:
        raise ConfigurationError("A peft export copies the adapter as trained; it takes no dtype.",
                                 fix="Leave dtype out, or export merged or gguf.")  # fmt: skip
    from unitune.providers.local import LocalProvider

    if not isinstance(provider, LocalProvider):
        raise _hosted(provider)
    target = Path(path).expanduser()
    check_target(target, overwrite=overwrite)
    source = _source(provider, model.strip(), format)
    check_not_overlapping(target, source.folders)
    precision = dtype or ("f16" if format in ("gguf", "ollama") else _base_dtype(source, format))
    with staged(target) as stage:
        notes = _WRITERS[format](source, stage, precision, system)
        _provenance(stage, source, format, precision)
    return ExportResult(
        format=format, path=target, files=sorted(p for p in target.rglob("*") if p.is_file()),
        model=source.model, base_model=source.base_model, dtype=precision, notes=notes,
    )  # fmt: skip


def _hosted(provider: Provider) -> UnsupportedFeatureError:
    """The refusal for a hosted vendor, saying what it allows (from the catalog)."""
    name = provider.name
    entry = provider.context.catalog.providers.get(name)
    weights = entry.provider.weights if entry is not None else None
    if weights is None:
        return UnsupportedFeatureError(provider=name, feature="exporting tuned models",
                                       hint=f"The catalog does not say whether {name} lets you download tuned "
                                       "weights; only local:<job> models are exported.")  # fmt: skip
    checked = f"({weights.source}, as of {weights.as_of}{'' if weights.verified else ', unverified'})"
    if weights.downloadable:
        hint = (f"{name} lets you download the tuned weights: {weights.how} {checked}. Train locally (-p local) to "
                "export straight from unitune.")  # fmt: skip
    else:
        hint = f"{name} does not let you download tuned weights: {weights.how} {checked}."
    return UnsupportedFeatureError(provider=name, feature="exporting tuned models", hint=hint)


def _source(provider: LocalProvider, model: str, format: str) -> _Source:
    from unitune.providers.local import PREFIX

    if model.startswith("ftjob-local-"):
        model = PREFIX + model  # the job id as `unitune jobs` shows it
    base_path, adapter = provider._model_paths(model)
    training: Path | None = None
    base_model = model
    if adapter is not None:
        check_adapter(adapter)
        spec = provider.store.job(model[len(PREFIX) :]).spec()
        base_model = str(spec.get("model") or base_path)
        training = Path(spec["training_path"]) if spec.get("training_path") else None
    elif format == "peft":
        raise ConfigurationError(
            f"{model!r} is a base model: a peft export needs a tuned one (it writes the adapter).",
            fix="Export a local:<job-id> model, or the base model with --format merged, gguf or ollama.",
        )
    return _Source(model, base_path, adapter, base_model, training, provider.settings.device)


def _base_dtype(source: _Source, format: str) -> str | None:
    """The precision a merged export keeps by default: the base model's stored dtype."""
    if format == "peft":
        return None
    try:
        config = json.loads((source.base_path / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return "f32"
    stored = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return {"float16": "f16", "bfloat16": "bf16"}.get(stored, "f32")


def _provenance(folder: Path, source: _Source, format: str, dtype: str | None) -> None:
    """unitune-export.json: what was exported from what, for whoever finds the folder later."""
    record = {
        "exported_by": "unitune export", "format": format, "model": source.model,
        "base_model": source.base_model, "base_path": str(source.base_path),
        "adapter_path": str(source.adapter) if source.adapter else None, "dtype": dtype,
    }  # fmt: skip
    (folder / "unitune-export.json").write_text(json.dumps(record, indent=2) + "\n", "utf-8")


def _trained_on(source: _Source) -> list[str]:
    """A note when the base the adapter was trained on is not the hub's copy of that name."""
    marker = source.base_path / ".complete"
    if marker.is_file() and "converted from" in marker.read_text("utf-8", errors="replace"):
        return [f"the base model here ({source.base_path}) was rebuilt from a quantized GGUF "
                f"({marker.read_text('utf-8').strip()}); the hub's {source.base_model} differs slightly"]  # fmt: skip
    return []


# -- the formats ----------------------------------------------------------------------------------


def _write_peft(source: _Source, out: Path, dtype: str | None, system: str | None) -> list[str]:
    assert source.adapter is not None
    for item in source.adapter.iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
        elif item.is_dir():
            shutil.copytree(item, out / item.name)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text("utf-8"))
    # The trainer records the folder it loaded (kept in unitune-export.json); the portable name is
    # the one the job asked for.
    config["base_model_name_or_path"] = source.base_model
    config_path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    copied = [n for n in _TOKENIZER_FILES if (source.base_path / n).is_file()]
    for name in copied:
        shutil.copy2(source.base_path / name, out / name)
    notes = [f"base_model_name_or_path: {source.base_model}"]
    if copied:
        notes.append("the base model's tokenizer (and chat template) is copied beside the adapter")
    return notes + _trained_on(source)


def _load(source: _Source) -> tuple[Any, Any]:
    from unitune.providers.local._infer import _load as load

    # The merged model is shared with chat's cache: the writers below read it and never change it.
    return load(source.base_path, source.adapter, source.device)


def _write_merged(source: _Source, out: Path, dtype: str | None, system: str | None) -> list[str]:
    from unitune.providers.local._infer import save_model

    model, tokenizer = _load(source)
    wanted = {**_TORCH_DTYPES, "bf16": "bfloat16"}[dtype or "f32"]
    save_model(model, out, wanted)  # torch stays under providers/: export imports no ML library itself
    if wanted != "float32":
        _set_config_dtype(out / "config.json", wanted)
    tokenizer.save_pretrained(out)
    notes = [] if source.adapter is None else ["the adapter is merged into the weights (no PEFT needed)"]
    return notes + _trained_on(source)


def _set_config_dtype(path: Path, dtype: str) -> None:
    config = json.loads(path.read_text("utf-8"))
    for key in [k for k in ("dtype", "torch_dtype") if k in config] or ["dtype"]:
        config[key] = dtype
    path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")


def _write_gguf(source: _Source, out: Path, dtype: str | None, system: str | None) -> list[str]:
    from unitune.export._gguf import check_architecture, write_gguf

    # Refused before a model that cannot become GGUF is loaded (minutes for a large one). Without a
    # readable config.json the loader says why, and the loaded model's config is checked again.
    with contextlib.suppress(OSError, ValueError):
        check_architecture(json.loads((source.base_path / "config.json").read_text("utf-8")))
    model, tokenizer = _load(source)
    with tempfile.TemporaryDirectory(prefix="unitune-export-") as scratch:
        # gguf's SpecialVocab reads the tokenizer's files (merges, special ids, chat template).
        tokenizer.save_pretrained(scratch)
        model.config.to_json_file(str(Path(scratch) / "config.json"))
        name = source.model.removeprefix("local:")
        notes = write_gguf(model, tokenizer, Path(scratch), out / GGUF_FILE, dtype=dtype or "f16", name=name)
    if dtype != "f32":
        notes.insert(0, "2-D weights in float16 (norms in float32, as llama.cpp's converter writes them)")
    return notes + _trained_on(source)


def _write_ollama(source: _Source, out: Path, dtype: str | None, system: str | None) -> list[str]:
    from unitune.export._ollama import chat_format, modelfile

    _, tokenizer = _load(source)
    fmt = chat_format(tokenizer)  # before the GGUF is written: an unknown chat format fails fast
    notes = _write_gguf(source, out, dtype, system)
    if system is not None:
        notes.append("SYSTEM: the system prompt given")
    else:
        system, note = _system_prompt(source, fmt.default_system)
        notes.append(note)
    header = f"Made by unitune export from {source.model} (base model {source.base_model}).\n" \
             f"Run: ollama create NAME -f {MODELFILE}"  # fmt: skip
    (out / MODELFILE).write_text(modelfile(GGUF_FILE, fmt, system, header=header), "utf-8")
    return notes


def _system_prompt(source: _Source, default: str | None) -> tuple[str | None, str]:
    """The Modelfile's SYSTEM when none is given: what the model saw in training.

    Examples that all start with one system prompt trained with it; examples with none trained with the
    chat template's default system prompt (SmolLM2's template inserts one); mixed ones get none.
    """
    from unitune.export._ollama import shared_system_prompt

    shared, uniform = shared_system_prompt(source.training_file) if source.training_file else (None, True)
    if shared is not None:
        return shared, "SYSTEM: the system prompt every training example starts with"
    if not uniform:
        return None, "no SYSTEM: the training examples' system prompts differ (pass system= to set one)"
    if default:
        return default, "SYSTEM: the default system prompt of the model's chat template (as in training)"
    return None, "no SYSTEM: neither the training data nor the chat template has one"


_WRITERS = {"peft": _write_peft, "merged": _write_merged, "gguf": _write_gguf, "ollama": _write_ollama}
