"""Exact counts for Mistral models through mistral-common."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from unitune.data._tokens._base import (
    _SMALL_BATCH,
    MessageLike,
    TokenCounter,
    _cpus,
    _guarded,
    _jdump,
    _Msg,
    _normalize,
)

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass  # type: ignore[import-not-found,unused-ignore]


# --- mistral-common -----------------------------------------------------------------------------------

_MISTRAL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")


class _MistralCounter(TokenCounter):
    """mistral-common's own tokenizer: `encode_chat_completion` gives the exact request tokens."""

    chat_format = "mistral"

    def __init__(self, *, name: str, approximate: bool, method: str, tokenizer: Any) -> None:
        self.name = name
        self.approximate = approximate
        self.method = method
        self._tok = tokenizer
        self._raw = tokenizer.instruct_tokenizer.tokenizer

    @_guarded
    def count_text(self, text: str) -> int:
        return len(self._raw.encode(text, bos=False, eos=False))

    @_guarded
    def count_texts(self, texts: Sequence[str]) -> list[int]:
        # mistral-common wraps each call in Python list work; calling its backend directly is
        # several times faster on a dataset: Tekken is a tiktoken Encoding (whose own threaded
        # batch call was slower than this loop), the v1-v7 files a SentencePieceProcessor, which
        # batches natively. The backend is a private attribute, so anything unexpected falls
        # back to the public per-text call.
        model = getattr(self._raw, "_model", None)
        if len(texts) >= _SMALL_BATCH and model is not None:
            try:
                if hasattr(model, "encode_ordinary"):
                    return [len(model.encode_ordinary(t)) for t in texts]
                if hasattr(model, "EncodeAsIds"):
                    return [len(ids) for ids in model.encode(list(texts), num_threads=_cpus())]
            except Exception:
                pass
        return [self.count_text(t) for t in texts]

    @_guarded
    def count_messages(
        self, messages: Sequence[MessageLike], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        msgs = [_normalize(m) for m in messages]
        try:
            request = ChatCompletionRequest.from_openai(
                _mistral_messages(msgs), tools=[dict(t) for t in tools] if tools else None
            )
            return len(self._tok.encode_chat_completion(request).tokens)
        except Exception:
            # mistral-common refuses conversations Mistral would refuse (two user turns in a row,
            # a tool turn with no call, tools on the v1 tokenizer...). Validation reports those;
            # here the conversation is still counted: its text plus 3 tokens a message (estimate).
            texts = [m.text for m in msgs] + [c.name + c.arguments for m in msgs for c in m.calls]
            texts += [_jdump(dict(t)) for t in tools or ()]
            return sum(self.count_texts(texts)) + 3 * len(msgs)


_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _mistral_messages(msgs: list[_Msg]) -> list[dict[str, Any]]:
    """OpenAI-shaped dicts mistral-common accepts.

    Its tool-call ids must be 9 alphanumerics (as Mistral's API makes them), so other ids (OpenAI's
    "call_...") are replaced by a stable random-looking 9-character stand-in: the count is then what the
    id would cost in Mistral's format, give or take a token or two per id (an estimate).
    """
    ids: dict[str, str] = {}

    def fix(call_id: str | None, salt: str) -> str:
        key = call_id if call_id is not None else salt
        if _MISTRAL_ID.match(key):
            return key
        if key not in ids:
            n = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
            ids[key] = "".join(_BASE62[(n >> (6 * k)) % 62] for k in range(9))
        return ids[key]

    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        role = "system" if m.role == "developer" else m.role
        d: dict[str, Any] = {"role": role, "content": m.text}
        if m.calls:
            d["tool_calls"] = [
                {
                    "id": fix(c.id, f"{i}.{j}"),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for j, c in enumerate(m.calls)
            ]
            if not m.text:
                d["content"] = None
        if role == "tool":
            d["tool_call_id"] = fix(m.tool_call_id, f"{i}")
            if m.name is not None:
                d["name"] = m.name
        out.append(d)
    return out
