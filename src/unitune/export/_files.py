"""The file side of an export, with no ML library.

Checking the target path and the adapter folder, and writing into a private folder next to the target
that replaces it only once the export is whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from unitune.errors import ConfigurationError

__all__ = ["check_adapter", "check_target", "staged"]

#: What `PeftModel.save_pretrained` writes and `PeftModel.from_pretrained` needs.
_ADAPTER_CONFIG = "adapter_config.json"
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
#: A safetensors header is JSON of a few KB per hundred tensors; anything near this is not one.
_MAX_HEADER = 100 * 1024 * 1024


def check_target(target: Path, *, overwrite: bool) -> None:
    """Refuse a target that exists and is not an empty folder, unless `overwrite`."""
    if not (target.exists() or target.is_symlink()):
        return
    empty_folder = target.is_dir() and not target.is_symlink() and not any(target.iterdir())
    if not empty_folder and not overwrite:
        raise ConfigurationError(
            f"The export path {str(target)!r} already exists and is not empty; nothing was written.",
            fix="Choose another path, or replace it with overwrite=True (--force on the command line).",
        )


def check_not_overlapping(target: Path, sources: list[Path]) -> None:
    """Refuse a target that overlaps a folder the export reads.

    Refuse a target that is, holds or lies inside a folder the export reads: replacing it would
    delete the model being exported.
    """
    where = target.resolve()
    for source in sources:
        src = source.resolve()
        if where == src or where.is_relative_to(src) or src.is_relative_to(where):
            raise ConfigurationError(
                f"The export path {str(target)!r} overlaps {str(source)!r}, which the export reads.",
                fix="Export to a folder outside the model's own folders.",
            )


def _broken_adapter(folder: Path, what: str) -> ConfigurationError:
    return ConfigurationError(
        f"The adapter folder {str(folder)!r} is not a usable PEFT adapter: {what}.",
        fix="Train the job again (its worker.log says how the last run ended), or restore the folder "
        f"as PEFT saved it ({_ADAPTER_CONFIG} and {_ADAPTER_WEIGHTS[0]}).",
    )


def check_adapter(folder: Path) -> None:
    """Check that `folder` is a complete PEFT adapter.

    `ConfigurationError` naming `folder` when it is not a complete PEFT adapter: no or an
    unreadable adapter_config.json, no weights file, a safetensors file cut short or not one.
    """
    config = folder / _ADAPTER_CONFIG
    try:
        data = json.loads(config.read_text("utf-8"))
    except FileNotFoundError:
        raise _broken_adapter(folder, f"{_ADAPTER_CONFIG} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _broken_adapter(folder, f"{_ADAPTER_CONFIG} cannot be read ({e})") from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise _broken_adapter(folder, f"{_ADAPTER_CONFIG} has no peft_type")
    weights = next((folder / n for n in _ADAPTER_WEIGHTS if (folder / n).is_file()), None)
    if weights is None:
        raise _broken_adapter(folder, f"no {' or '.join(_ADAPTER_WEIGHTS)}")
    if weights.suffix == ".safetensors":
        problem = _safetensors_problem(weights)
        if problem:
            raise _broken_adapter(folder, f"{weights.name} {problem}")


def _safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a whole safetensors file (None when it is).

    Reads only its header: an 8-byte length, that much JSON naming each tensor's byte range, then exactly
    those bytes.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "is empty or cut short"
            length = int.from_bytes(head, "little")
            if length > min(size - 8, _MAX_HEADER):
                return "is not a safetensors file (bad header length)"
            header = json.loads(fh.read(length))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return f"cannot be read ({e})"
    if not isinstance(header, dict):
        return "is not a safetensors file (bad header)"
    try:
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (KeyError, IndexError, TypeError, ValueError):
        return "is not a safetensors file (bad tensor entries)"
    if not ends:
        return "holds no tensors"
    if 8 + length + max(ends) != size:
        return f"is cut short or padded ({size} bytes, the header describes {8 + length + max(ends)})"
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A new folder next to `target` to write the export into.

    When the block ends normally it replaces `target` (two renames on one file system); when it raises,
    it is deleted and `target` is as it was: a failed export never leaves half a folder.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    stage.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make the export private
    try:
        yield stage
        _swap(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _swap(stage: Path, target: Path) -> None:
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
        target.rename(old)
    try:
        stage.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
