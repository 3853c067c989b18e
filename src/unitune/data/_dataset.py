"""`Dataset`: a re-iterable, streaming view of training data from a file, a table or Python objects."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from unitune.data._args import encoding_arg, format_arg, optional_str, path_arg
from unitune.data._loaders import (
    MESSAGE_KEYS,
    OWN_KEYS,
    Format,
    Record,
    from_legacy_functions,
    iter_objects,
    kind_of,
    read_csv,
    read_jsonl,
    weight_value,
)  # fmt: skip
from unitune.data._model import ChatExample, PreferenceExample, TextExample
from unitune.errors import ConfigurationError, DatasetError

__all__ = ["Dataset", "Example"]

Example = ChatExample | PreferenceExample | TextExample


def _message(m: Any) -> Any:
    """A raw message as the canonical model takes it.

    Unknown keys left out (validate warns of them), a weight of true/1.0/"1" as the integer it means, a
    weight off an assistant message dropped.
    """
    if not isinstance(m, dict):
        return m
    out = {k: v for k, v in m.items() if k in MESSAGE_KEYS}
    role = m.get("role")
    # Fields a vendor reads only on one role, or only as a string: elsewhere they are left out (and
    # validate says so where it matters).
    if "name" in out and not isinstance(out["name"], str):
        del out["name"]
    if "tool_call_id" in out and (role != "tool" or not isinstance(out["tool_call_id"], str)):
        del out["tool_call_id"]
    if "tool_calls" in out and role != "assistant":
        del out["tool_calls"]
    if "weight" in out:
        value = weight_value(out["weight"])
        if m.get("role") != "assistant" or value is None:
            # Not on a reply (no vendor reads it there), null (no weight), or neither 0 nor 1, which
            # validate reports as an error where the provider has weights and a warning where it
            # has none (Bedrock, Cohere), whose formats leave every weight out anyway.
            del out["weight"]
        else:
            out["weight"] = value
    return out


def _messages(value: Any) -> Any:
    return [_message(m) for m in value] if isinstance(value, list) else value


def _tooling(data: dict[str, Any]) -> dict[str, Any]:
    """An example's `tools` and `parallel_tool_calls`, with ill-typed ones left out.

    `tools` that is not a list of objects, and `parallel_tool_calls` that is not a boolean, left
    out (validate reports them as invalid_tools and invalid_parallel_tool_calls).
    """
    out = dict(data)
    tools = out.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        del out["tools"]
    if "parallel_tool_calls" in out and not isinstance(out["parallel_tool_calls"], bool):
        del out["parallel_tool_calls"]
    return out


def _outputs(value: Any) -> Any:
    messages = _messages(value)
    if not isinstance(messages, list):
        return messages
    return [{k: v for k, v in m.items() if k != "weight"} if isinstance(m, dict) else m for m in messages]


def to_example(record: Record, path: str | None = None) -> Example:
    """The typed example of a readable record; `DatasetError` (with the line) if it does not fit.

    Keys beside the format's own go to `extra` (never to a vendor); legacy function calling becomes
    tool calls; unknown message keys are left out (`validate` reports each of these as a warning).
    """
    if record.data is None:
        assert record.problem is not None
        raise DatasetError(record.problem.message, path=path, line=record.line, column=record.problem.column)
    data = record.data
    kind = kind_of(record.format)
    extra = {k: v for k, v in data.items() if k not in OWN_KEYS[kind]} or None
    try:
        if kind == "text":
            return TextExample.model_validate({"text": data.get("text"), "line": record.line, "extra": extra})
        if kind == "chat":
            data = from_legacy_functions(data) or data
            chat = _tooling({k: v for k, v in data.items() if k in OWN_KEYS["chat"]})
            chat["messages"] = _messages(chat.get("messages"))
            return ChatExample.model_validate({**chat, "line": record.line, "extra": extra})
        inp = data.get("input")
        inp = inp if isinstance(inp, dict) else {}
        # A weight on a preference output means nothing (the pair is the signal): left out.
        preferred = _outputs(data.get("preferred_output"))
        rejected = _outputs(data.get("non_preferred_output"))
        inp = _tooling(inp)
        return PreferenceExample.model_validate(
            {
                "input": _messages(inp.get("messages")),
                "tools": inp.get("tools"),
                "parallel_tool_calls": inp.get("parallel_tool_calls"),
                "preferred": preferred[0] if isinstance(preferred, list) and preferred else preferred,
                "non_preferred": rejected[0] if isinstance(rejected, list) and rejected else rejected,
                "line": record.line,
                "extra": extra,
            }
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DatasetError(
            f"{where}: {first['msg']}; run `unitune validate` on the file for every problem",
            path=path,
            line=record.line,
        ) from None


def _readable(path: str | os.PathLike[str]) -> Path:
    """Check that `path` is a readable file.

    `path` if it is a file this process can read; else a `DatasetError` saying which it is not
    (or a `ConfigurationError` if it is not a path at all).
    """
    p = path_arg(path, "path")
    if p.is_dir():
        raise DatasetError("is a directory, not a data file; pass the .jsonl file inside it", path=str(p))
    if not p.exists():
        raise DatasetError("file not found", path=str(p))
    try:
        with p.open("rb"):
            pass
    except OSError as e:
        raise DatasetError(
            f"cannot be read ({e.strerror or e}); check its permissions", path=str(p)
        ) from None
    return p


def _records_arg(items: Any, name: str, call: str) -> None:
    """`items` must be an iterable of records: not None, a number, a path or a single dict."""
    if isinstance(items, (str, bytes, os.PathLike)):
        raise ConfigurationError(
            f"{call} takes records (dicts or examples), not a path ({items!r}).",
            fix="Read a file with Dataset.from_jsonl(path).",
        )
    if isinstance(items, Mapping):
        raise ConfigurationError(
            f"{call} takes an iterable of records, not one dict.",
            fix="Wrap a single record in a list: [record].",
        )
    if type(items).__name__ == "DataFrame":
        raise ConfigurationError(
            f"{call} takes an iterable of records, not a DataFrame.", fix="Use Dataset.from_pandas(frame)."
        )
    if not isinstance(items, Iterable):
        raise ConfigurationError(
            f"{call} takes an iterable of records (e.g. a list of dicts), not {type(items).__name__}.",
            fix='Pass e.g. [{"messages": [...]}].',
        )


class Dataset:
    """Training data, read lazily: every pass streams the source again, so a file is never held whole.

    Build one with `from_jsonl`, `from_csv`, `from_records`, `from_hf` or `from_pandas`. Iterating
    yields `ChatExample`/`PreferenceExample` and raises `DatasetError` at the first unreadable line;
    `validate()` reports every problem instead.
    """

    def __init__(self, records: Any, *, path: Path | None = None, name: str | None = None) -> None:
        # `records` is a zero-argument callable returning a fresh iterator of Records.
        self._records = records
        self.path = path
        self.name = name or (str(path) if path is not None else "<data>")

    def __repr__(self) -> str:
        return f"Dataset({self.name!r})"

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str], *, format: Format = "auto") -> Dataset:
        """A JSONL file (gzip accepted) in OpenAI chat, DPO, prompt/completion, ShareGPT or Alpaca format.

        The format is detected from the first readable line unless given.

        Args:
            path: the file's path.
            format: the records' format ("chat", "preference", "sharegpt", ...); "auto" to detect it.

        Raises:
            DatasetError: the path is a directory, is missing, or cannot be read.
            ConfigurationError: `path` is not a path, or `format` is not a known format.
        """
        fmt = format_arg(format)
        p = _readable(path)
        return cls(lambda: read_jsonl(p, fmt=fmt), path=p)

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        *,
        prompt: str,
        completion: str,
        system: str | None = None,
        encoding: str = "utf-8",
    ) -> Dataset:
        """A CSV file with a header; `prompt`/`completion`/`system` name the columns to use.

        Args:
            path: the file's path.
            prompt: the column of the user's messages.
            completion: the column of the assistant's answers.
            system: the column of the system prompts; None for none.
            encoding: the file's text encoding.

        Raises:
            DatasetError: the path is a directory, is missing, or cannot be read.
            ConfigurationError: a column name or the encoding is not valid.
        """
        fix = 'Name the CSV\'s columns, e.g. prompt="question", completion="answer".'
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise ConfigurationError(
                f"prompt and completion must be column names, not {prompt!r} and {completion!r}.", fix=fix
            )
        optional_str(system, "system", fix=fix)
        encoding_arg(encoding)
        p = _readable(path)
        return cls(
            lambda: read_csv(p, prompt=prompt, completion=completion, system=system, encoding=encoding),
            path=p,
        )

    @classmethod
    def from_records(
        cls, items: Iterable[Any], *, format: Format = "auto", name: str = "<records>"
    ) -> Dataset:
        """Python objects: dicts in any supported format, or `ChatExample`/`PreferenceExample`.

        A one-shot iterator (a generator) is read into a list so the dataset can be passed over twice.

        Args:
            items: the records.
            format: the dicts' format ("chat", "preference", "sharegpt", ...); "auto" to detect it.
            name: the dataset's name in messages and reports.

        Raises:
            ConfigurationError: `items` is not an iterable of records, or `format` is not a known
                format.
        """
        fmt = format_arg(format)
        _records_arg(items, "items", "Dataset.from_records")
        seq: Sequence[Any] = items if isinstance(items, Sequence) else list(items)
        return cls(lambda: iter_objects(seq, fmt=fmt), name=str(name))

    @classmethod
    def from_hf(cls, dataset: Any, *, format: Format = "auto") -> Dataset:
        """A Hugging Face `datasets.Dataset` (rows read on demand).

        Args:
            dataset: the Hugging Face dataset (one split).
            format: the rows' format ("chat", "preference", "sharegpt", ...); "auto" to detect it.

        Raises:
            ConfigurationError: `dataset` is not iterable, or `format` is not a known format.
        """
        fmt = format_arg(format)
        _records_arg(dataset, "dataset", "Dataset.from_hf")
        return cls(
            lambda: iter_objects(iter(dataset), fmt=fmt),
            name=f"<hf {getattr(dataset, 'info', '')}>",
        )

    @classmethod
    def from_pandas(cls, frame: Any, *, format: Format = "auto") -> Dataset:
        """A pandas DataFrame whose columns are the format's keys (e.g. `messages`).

        Args:
            frame: the DataFrame.
            format: the rows' format ("chat", "preference", "sharegpt", ...); "auto" to detect it.

        Raises:
            ConfigurationError: `frame` is not a DataFrame, or `format` is not a known format.
        """
        fmt = format_arg(format)
        if not callable(getattr(frame, "to_dict", None)) or not hasattr(frame, "columns"):
            raise ConfigurationError(
                f"Dataset.from_pandas takes a pandas DataFrame, not {type(frame).__name__}.",
                fix="Use Dataset.from_records(...) for a list of dicts.",
            )
        return cls(lambda: iter_objects(frame.to_dict(orient="records"), fmt=fmt), name="<pandas>")

    def records(self) -> Iterator[Record]:
        """Raw records with line numbers (what `validate()` reads)."""
        it: Iterator[Record] = self._records()
        return it

    def __iter__(self) -> Iterator[Example]:
        path = str(self.path) if self.path is not None else None
        for record in self.records():
            if record.problem is not None and record.problem.code == "blank_line":
                continue
            yield to_example(record, path)
