"""A fast start for OpenAI's encodings: tiktoken's BPE on quicktok's vocabulary, for small inputs.

quicktok counts o200k_base about six times as fast as tiktoken, but its loader builds its tables for
0.35-0.5 s, holding the GIL, before the first count; for a file of a few thousand examples that is
most of `unitune validate`'s time. tiktoken's BPE loads the same vocabulary in ~0.15 s when its rank
table is at hand, so for small inputs it is the faster way to the same counts. Nothing here
downloads: the ranks are read from quicktok-v1's bundled vocabulary (o200k_base's sha256 equals
tiktoken's published one, `tests/test_tokens.py`) and cached with `marshal` under the unitune cache
directory, keyed by the vocabulary file's path, size and modification time, so a changed quicktok
rebuilds it. Both engines are exact: the tests compare their counts and whole reports.

Which engine counts is up to `_tokens._base._BpeEncoder`: this one only while the caller has said
its input is small (`expected_input`) and quicktok is not loaded already.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import marshal
import os
import struct
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

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
}

#: Bump when the cache file's layout changes.
_CACHE_FORMAT = 2


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


def supports(encoding: str) -> bool:
    """Whether `encoding` has a quick start (OpenAI's encodings, whose reference is tiktoken)."""
    return encoding in _ENCODINGS


def load(encoding: str) -> Callable[[str], int] | None:
    """A count function for `encoding` by tiktoken's BPE, or None if it cannot be had here.

    None when tiktoken or quicktok's vocabulary is missing or unreadable: the caller then uses
    quicktok itself, so a quick start never makes counting fail.
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
        # encode_ordinary raises on a lone surrogate, as quicktok's count does (the counter
        # reports it as text that is not valid Unicode).
        return len(encode(text))

    return count


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
    cache = cache_dir() / "tokenizers" / f"{encoding}.ranks"
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
    with contextlib.suppress(OSError):  # a read-only cache costs ~0.1 s a run, nothing more
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps((key, ranks)))
        os.replace(tmp, cache)  # whole or not at all, for a process reading it meanwhile
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
