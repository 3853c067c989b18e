"""Whatever a vendor (or a proxy in front of it) answers, an adapter raises only unitune's errors.

Every request of every adapter is answered with one odd body: cut short, an HTML page, nothing,
a list, valid JSON with fields missing or of the wrong type. Each contract method must then return
something or raise a `UnituneError` with a one-line message; a body that is not JSON at all is
`ProviderUnavailableError` (transient: retried, and on a create the client looks the job up).
"""

from __future__ import annotations

import contextlib
import typing
from pathlib import Path

import pytest

from tests.faults.harness import API_KEY, aws_env
from unitune import ProviderError, ProviderUnavailableError, UnituneError
from unitune.providers.base import Provider
from unitune.types import FileRef, JobSpec, Message, PreparedFile

for _module in ("openai", "together", "mistralai", "cohere", "boto3", "moto"):
    pytest.importorskip(_module)

BODIES: dict[str, bytes] = {
    "cut": b'{"id": "ftjob-1", "object": "fine_tuning.job", "status": "runn',
    "html": b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    "empty": b"",
    "list": b"[1, 2, 3]",
    "missing": b'{"object": "thing"}',
    "wrong types": b'{"id": 5, "status": 7, "created_at": "yesterday", "metadata": "x", "error": "oops", '
    b'"data": "nope", "choices": "none", "usage": 3, "finetuned_model": [], "dataset": 4, "id_": null}',
}
NOT_JSON = ("cut", "html", "empty")


def _respond(body: bytes, http: typing.Any) -> typing.Any:
    def handle(request: typing.Any) -> typing.Any:
        return http.Response(200, content=body, headers={"content-type": "application/json"})

    return http.MockTransport(handle)


def _openai(body: bytes) -> Provider:
    import httpx2
    import openai

    from unitune.providers.openai import OpenAIProvider, OpenAISettings

    sdk = openai.OpenAI(api_key=API_KEY, base_url="http://openai.test/v1", max_retries=0,
                        http_client=httpx2.Client(transport=_respond(body, httpx2)))  # fmt: skip
    return OpenAIProvider(OpenAISettings(multipart_threshold_bytes=10, part_size_bytes=64), client=sdk)


def _together(body: bytes) -> Provider:
    import httpx
    import together

    from unitune.providers.together import TogetherProvider

    sdk = together.Together(api_key=API_KEY, base_url="http://together.test", max_retries=0,
                            http_client=httpx.Client(transport=_respond(body, httpx)))  # fmt: skip
    return TogetherProvider(client=sdk)


def _mistral(body: bytes) -> Provider:
    import httpx
    import httpx2
    from mistralai.client import Mistral

    from unitune.providers.mistral import MistralProvider

    sdk = Mistral(
        api_key=API_KEY,
        server_url="http://mistral.test",
        client=httpx2.Client(transport=_respond(body, httpx2)),
    )
    http = httpx.Client(base_url="http://mistral.test", transport=_respond(body, httpx))
    return MistralProvider(client=sdk, http=http)


def _cohere(body: bytes) -> Provider:
    import cohere
    import httpx

    from unitune.providers.cohere import CohereProvider

    sdk = cohere.ClientV2(api_key=API_KEY, base_url="http://cohere.test", max_retries=0,
                          httpx_client=httpx.Client(transport=_respond(body, httpx)))  # fmt: skip
    return CohereProvider(client=sdk)


def _bedrock(body: bytes) -> Provider:
    import boto3
    from botocore.awsrequest import AWSResponse
    from moto.core.models import botocore_stubber

    from tests.faults.plan import _Raw
    from unitune.providers.bedrock import BedrockProvider, BedrockSettings

    clients = {}
    for service in ("s3", "bedrock", "bedrock-runtime"):
        c = boto3.client(service, region_name="us-east-1", config=_one_attempt())
        c.meta.events.unregister("before-send", botocore_stubber)
        c.meta.events.register(
            "before-send",
            lambda request, **_: AWSResponse(
                request.url, 200, {"content-type": "application/json"}, _Raw(body)
            ),
        )
        clients[service] = c
    settings = BedrockSettings(region="us-east-1", bucket="b", role_arn="arn:aws:iam::123456789012:role/r")
    return BedrockProvider(settings, client=clients)


BUILD = {
    "openai": _openai,
    "together": _together,
    "mistral": _mistral,
    "cohere": _cohere,
    "bedrock": _bedrock,
}
MODEL = {"openai": "gpt-4o-mini-2024-07-18", "together": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
         "mistral": "open-mistral-7b", "cohere": "command-r-08-2024", "bedrock": "amazon.nova-micro-v1:0:128k"}  # fmt: skip


def _calls(provider: Provider, name: str, tmp_path: Path) -> dict[str, typing.Callable[[], object]]:
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n' * 8
    )
    prepared = PreparedFile(path=path, filename="train.jsonl", size_bytes=path.stat().st_size, sha256="ab" * 32,
                            purpose="training")  # fmt: skip
    ref = FileRef(id="s3://b/k.jsonl" if name == "bedrock" else "file-1", provider=name)
    spec = JobSpec(model=MODEL[name], training_file=ref)
    calls: dict[str, typing.Callable[[], object]] = {
        "get_job": lambda: provider.get_job("job-1"),
        "list_jobs": lambda: provider.list_jobs(limit=5),
        "find_job": lambda: provider.find_job("key-1"),
        "create_job": lambda: provider.create_job(spec, idempotency_key="key-1"),
        "upload": lambda: provider.upload(prepared),
        "list_metrics": lambda: provider.list_metrics("job-1"),
        "chat": lambda: provider.chat(MODEL[name], [Message(role="user", content="hi")]),
    }
    if provider.capabilities.events:
        calls["list_events"] = lambda: provider.list_events("job-1")
    return calls


def _outcome(call: typing.Callable[[], object]) -> BaseException | None:
    try:
        call()
    except Exception as e:  # judged by the caller
        return e
    return None


@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize("name", list(BUILD))
def test_no_exception_outside_the_tree_whatever_the_body(name: str, body: str, tmp_path: Path) -> None:
    from unitune._clock import FakeClock
    from unitune._retry import RetryPolicy
    from unitune.config import RetrySettings

    with aws_env() if name == "bedrock" else contextlib.nullcontext():
        provider = BUILD[name](BODIES[body])
        provider.bind_retry(RetryPolicy(RetrySettings(max_attempts=2), FakeClock()))
        outcomes = {method: _outcome(call) for method, call in _calls(provider, name, tmp_path).items()}
    for method, error in outcomes.items():
        if error is None:
            continue
        assert isinstance(error, UnituneError), f"{name}.{method} on a {body!r} body raised {error!r}"
        text = str(error)
        assert "\n" not in text, (method, text)
        assert len(text) < 600, (method, text)
        assert API_KEY not in text
        assert API_KEY not in repr(error)
        if method == "get_job" and body in NOT_JSON:
            assert isinstance(error, ProviderUnavailableError), (method, repr(error))
        if method == "create_job" and isinstance(error, ProviderError) and body in NOT_JSON:
            # the job may exist: transient, so the client looks it up by its key
            assert isinstance(error, ProviderUnavailableError), (method, repr(error))


def _one_attempt() -> typing.Any:
    """botocore's own retries off, as the adapter builds its clients: only unitune's policy retries."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": 1})
