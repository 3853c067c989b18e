"""Checks of the arguments the public data functions take.

A wrong one is a one-line `ConfigurationError` naming the fix, before anything is read or written (never
a raw TypeError, AttributeError or OSError from deep inside).
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from unitune.data._loaders import FORMATS, Format
from unitune.errors import ConfigurationError

if TYPE_CHECKING:
    from unitune.data._dataset import Dataset

__all__ = [
    "as_date", "cannot_write", "data_arg", "encoding_arg", "format_arg", "int_arg", "make_dir", "optional_str", "out_dir", "out_file",
    "path_arg", "provider_arg",
]  # fmt: skip


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def path_arg(value: Any, name: str, *, folder: bool = False) -> Path:
    """`value` as a path: a str, an `os.PathLike` or bytes (as `os.fsdecode` reads them)."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        if isinstance(value, bytes):
            value = os.fsdecode(value)
    if not isinstance(value, str) or not value:
        what, example = ("a folder", '"data/split"') if folder else ("a file path", '"data/train.jsonl"')
        raise ConfigurationError(
            f"{name} must be {what} (a str or pathlib.Path), not {value!r}.", fix=f"Pass e.g. {example}."
        )
    return Path(value)


def format_arg(value: Any) -> Format:
    """A reader format name: "auto" or one of `FORMATS`."""
    if isinstance(value, str) and (value == "auto" or value in FORMATS):
        return cast("Format", value)
    raise ConfigurationError(
        f"Unknown data format {value!r}.",
        fix=f"Use format='auto' (the default) or one of: {', '.join(FORMATS)}.",
    )


def encoding_arg(value: Any) -> str:
    """A text encoding Python knows (for CSV files)."""
    try:
        if isinstance(value, str):
            codecs.lookup(value)
            return value
    except LookupError:
        pass
    raise ConfigurationError(f"Unknown text encoding {value!r}.", fix='Use e.g. encoding="utf-8".')


def optional_str(value: Any, name: str, *, fix: str) -> str | None:
    """`value` if it is a string or None."""
    if value is None or isinstance(value, str):
        return value
    raise ConfigurationError(f"{name} must be a string, not {_kind(value)} ({value!r}).", fix=fix)


def provider_arg(value: Any) -> str:
    """A provider or profile name: a non-empty string (`get_profile` says whether it is known)."""
    if isinstance(value, str) and value:
        return value
    from unitune.data.profiles import profile_names

    raise ConfigurationError(
        f"provider must be a provider's name, not {value!r}.",
        fix=f"Use one of: {', '.join(profile_names())}.",
    )


def int_arg(value: Any, name: str, *, minimum: int, maximum: int | None = None, fix: str) -> int:
    """`value` if it is an int (not a bool) from `minimum` to `maximum`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        top = "2**64 - 1" if maximum == (1 << 64) - 1 else str(maximum)
        upper = f" to {top}" if maximum is not None else " or more"
        raise ConfigurationError(f"{name} must be an integer, {minimum}{upper}, not {value!r}.", fix=fix)
    return value


def as_date(value: Any, name: str = "today") -> dt.date | None:
    """A date from a date, a datetime (its date) or an ISO date string ("2026-01-01"); None stays None."""
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    raise ConfigurationError(
        f"{name} must be a date, a datetime or an ISO date string, not {value!r}.",
        fix=f'Pass e.g. {name}="2026-01-01" or datetime.date.today().',
    )


def data_arg(value: Any, name: str = "data") -> Dataset:
    """A `Dataset`, or the path of a JSONL file (read with `Dataset.from_jsonl`)."""
    from unitune.data._dataset import Dataset

    if isinstance(value, Dataset):
        return value
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise ConfigurationError(
            f"{name} must be a Dataset or the path of a JSONL file, not {_kind(value)}.",
            fix="Pass a path, or Dataset.from_records(...) for Python objects.",
        )
    path = path_arg(value, name)
    if path.suffix.lower() == ".csv":
        from unitune.errors import DatasetError

        raise DatasetError(
            "a CSV file needs its columns named: use Dataset.from_csv(path, prompt=, completion=)",
            path=str(path),
        )
    return Dataset.from_jsonl(path)


def _os_reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def out_dir(value: Any, name: str) -> Path:
    """A folder to write into (not created yet: see `make_dir`); an existing file is refused."""
    path = path_arg(value, name, folder=True)
    if path.exists() and not path.is_dir():
        raise ConfigurationError(
            f"{name} {str(path)!r} is a file, not a folder.", fix="Pass a folder (it is created if missing)."
        )
    return path


def make_dir(path: Path) -> Path:
    """`path` created (with its parents) if it does not exist."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(
            f"Cannot create the folder {str(path)!r} ({_os_reason(e)}).",
            fix="Pass a folder you can write to.",
        ) from None
    return path


def out_file(value: Any, name: str) -> Path:
    """A file to write, whose folder is created if it does not exist; a folder is refused."""
    path = path_arg(value, name)
    if path.is_dir():
        raise ConfigurationError(
            f"{name} {str(path)!r} is a folder; the output is a file.",
            fix=f"Pass a file path, e.g. {str(path / 'out.jsonl')!r}.",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(
            f"Cannot create the folder {str(path.parent)!r} for {name} ({_os_reason(e)}).",
            fix="Pass a path in a folder you can write to.",
        ) from None
    return path


def cannot_write(path: Path, e: OSError) -> ConfigurationError:
    """The error for an output file that cannot be opened or moved into place."""
    return ConfigurationError(
        f"Cannot write {str(path)!r} ({_os_reason(e)}).", fix="Pass a path in a folder you can write to."
    )
