"""A fast start for OpenAI's encodings and Llama 3's: tiktoken's BPE on quicktok's vocabulary.

quicktok counts o200k_base about six times as fast as tiktoken, but its loader builds its tables for
0.35-0.5 s, holding the GIL, before the first count; for a file of a few thousand examples that is
most of `unitune validate`'s time. tiktoken's BPE loads the same vocabulary in ~0.13 s when its rank
table is at hand, so for small inputs it is the faster way to the same counts. Nothing here
downloads: the ranks are read from quicktok-v1's bundled vocabulary (o200k_base's sha256 equals
tiktoken's published one, `tests/test_tokens.py`) and cached with `marshal` under the unitune cache
directory, keyed by the vocabulary file's path, size and modification time, so a changed quicktok
rebuilds it.

The counts are quicktok's. The two agree on every text whose characters Unicode 14.0 assigns
(`tests/test_startup.py` probes each of them in several contexts); they disagree on some
characters assigned later (their Unicode tables differ: U+0CDC, the CJK extensions...), so a text
holding any character 14.0 does not assign is counted by quicktok itself, loaded for it.

Which engine counts is up to `_tokens._base._QuicktokEncoder`: this one only while the caller has
said its input is small (`expected_input`) and quicktok is not loaded already.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib.util
import marshal
import os
import re
import struct
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

#: Inputs below this many bytes start with tiktoken. Measured (bench/README.md, issue 24): loading
#: quicktok costs ~0.3 s more than tiktoken, and tiktoken counts validate's texts ~40 ms/MiB slower,
#: so the two break even near 8 MiB; below 4 MiB tiktoken is clearly ahead.
QUICKSTART_BELOW = 8 << 20

#: The bytes of input the current work will count, when the caller knows (None: not said).
_EXPECTED: ContextVar[int | None] = ContextVar("unitune_expected_input", default=None)

# tiktoken's own split patterns (tiktoken_ext/openai_public.py; a test compares them) and the
# name of quicktok-v1's vocabulary file for each encoding.
_ENCODINGS: dict[str, tuple[str, str]] = {
    "o200k_base": (
        "o200k",
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
    ),
    "cl100k_base": (
        "cl100k",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    ),
    # Llama 3's tokenizer is itself tiktoken's BPE with this pattern (Meta's llama-models,
    # `tokenizer.py`; quicktok recognises the same string as Llama 3's in its importer).
    "llama3": (
        "llama3",
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    ),
}

#: Bump when the cache file's layout changes.
_CACHE_FORMAT = 3


@contextlib.contextmanager
def expected_input(n_bytes: int | None) -> Iterator[None]:
    """Tell the token counters how many bytes the work inside will count (None: unknown)."""
    token = _EXPECTED.set(n_bytes)
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def small_input() -> bool:
    """Whether the caller said the current work is small enough for the quick start."""
    n = _EXPECTED.get()
    return n is not None and n < QUICKSTART_BELOW


def load(encoding: str, quicktok: Callable[[], Any]) -> Callable[[str], int] | None:
    """A count function for `encoding` by tiktoken's BPE, or None if it cannot be had here.

    `quicktok` gives quicktok's tokenizer for the encoding (loading it on the first call): it
    counts the texts with characters Unicode 14.0 does not assign. None when tiktoken or quicktok's
    vocabulary is missing or unreadable: the caller then uses quicktok for everything, so a quick
    start never makes counting fail.
    """
    if encoding not in _ENCODINGS:
        return None
    stem, pattern = _ENCODINGS[encoding]
    try:
        from tiktoken import _tiktoken  # type: ignore[attr-defined]  # the Rust BPE tiktoken.Encoding wraps

        source = _vocab_file(stem)
        if source is None:
            return None
        # No special tokens: every text is counted as ordinary text, as quicktok's `count` does
        # (a "<|endoftext|>" in a message is text, not the special token).
        core = _tiktoken.CoreBPE(_ranks(source, encoding), {}, pattern)
    except Exception:  # tiktoken missing or changed, a vocabulary it refuses: use quicktok
        return None
    encode = core.encode_ordinary

    def count(text: str) -> int:
        if not text.isascii() and _recent_characters().search(text) is not None:
            try:
                return int(quicktok().count(text))
            except (RuntimeError, OSError):  # quicktok's tables do not load here: tiktoken's count
                pass
        # encode_ordinary raises on a lone surrogate, as quicktok's count does (the counter
        # reports it as text that is not valid Unicode).
        return len(encode(text))

    return count


@functools.cache
def _recent_characters() -> re.Pattern[str]:
    """Any character from U+0080 that Unicode 14.0 does not assign (`unassigned-14.0.txt`).

    Compiled on the first text that is not ASCII (~4 ms). Without its table (a broken install),
    every such text goes to quicktok.
    """
    ranges = []
    try:
        text = (Path(__file__).with_name("unassigned-14.0.txt")).read_text("ascii")
    except OSError:
        return re.compile("[^\\x00-\\x7f]")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            first, _, last = line.partition("..")
            ranges.append(f"\\U{int(first, 16):08x}" + (f"-\\U{int(last, 16):08x}" if last else ""))
    return re.compile(f"[{''.join(ranges)}]")


def _vocab_file(stem: str) -> Path | None:
    spec = importlib.util.find_spec("quicktok")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{stem}.vocab"
    return path if path.is_file() else None


def _ranks(source: Path, encoding: str) -> dict[bytes, int]:
    """The vocabulary's token -> rank table, from the cache when it was built from this file."""
    from unitune._paths import cache_dir

    stat = source.stat()
    key = (_CACHE_FORMAT, str(source), stat.st_size, stat.st_mtime_ns)
    # One file per vocabulary file: two environments with their own quicktok do not take turns
    # rebuilding one cache.
    where = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    cache = cache_dir() / "tokenizers" / f"{encoding}-{where}.ranks"
    try:
        # One read and `loads` (marshal.load on a file reads it a few bytes at a time: 3x slower),
        # without the cyclic GC, which 200,000 new objects would otherwise set off a few times.
        data = cache.read_bytes()
        with _no_gc():
            cached = marshal.loads(data)
        if type(cached) is tuple and len(cached) == 2 and cached[0] == key and type(cached[1]) is dict:
            ranks: dict[bytes, int] = cached[1]
            return ranks
    except (OSError, EOFError, ValueError, TypeError):
        pass  # missing, from another quicktok, or damaged: rebuilt below
    ranks = read_vocab(source)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(marshal.dumps((key, ranks)))
        os.replace(tmp, cache)  # whole or not at all, for a process reading it meanwhile
    except OSError:  # a read-only or full cache costs ~0.1 s a run, nothing more
        with contextlib.suppress(OSError):
            tmp.unlink()
    return ranks


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_vocab(source: Path) -> dict[bytes, int]:
    """The token -> rank table of a quicktok `.vocab` file.

    The layout: a little-endian u32 count, then per token a u16 length, its bytes and its u32 rank.
    """
    data = source.read_bytes()
    refused = ValueError(f"{source}: not a quicktok vocabulary this version reads")
    ranks: dict[bytes, int] = {}
    unpack_len = struct.Struct("<H").unpack_from
    unpack_rank = struct.Struct("<I").unpack_from
    try:
        (n,) = struct.unpack_from("<I", data, 0)
        offset = 4
        for _ in range(n):
            (length,) = unpack_len(data, offset)
            offset += 2
            token = data[offset : offset + length]
            offset += length
            (ranks[token],) = unpack_rank(data, offset)
            offset += 4
    except struct.error:
        raise refused from None
    if offset != len(data) or len(ranks) != n or len(set(ranks.values())) != n:
        raise refused
    return ranks
