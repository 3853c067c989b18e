"""Conformance on the wire: every SDK-backed adapter, its real vendor SDK answered by one handler.

The tests are written once and run for every provider in `WIRES`. A wire builds the adapter with
its official SDK (OpenAI, Together, Mistral, Cohere) or boto3 (Bedrock) pointed at a handler that
answers every request the same way, so each test says what any vendor's answer must become:
an HTTP error status becomes its unitune error (Retry-After kept), a refused connection becomes a
retryable `ProviderUnavailableError` naming the host, a body cut short is never a success, and a
missing SDK names the extra to install. A new SDK-backed adapter adds its line to `WIRES`
(`test_every_sdk_provider_has_a_wire` fails until it does).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from unitune._retry import retryable
from unitune.errors import (
    AuthenticationError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
    UnituneError,
)
from unitune.providers._sdk import SDKProvider
from unitune.providers.base import Provider
from unitune.providers.registry import BUILTIN_PROVIDERS, load_provider_class

KEY = "sk-wire-test-000000000000"
#: An answer: (status, headers, body bytes), or an exception class to raise as the transport's.
Answer = tuple[int, dict[str, str], bytes]
Handler = Callable[[], Answer | None]


def _httpx_handler(http: Any, answer: Handler) -> Any:
    """A MockTransport of the given httpx flavour; `answer()` returning None refuses the connection."""

    def handle(request: Any) -> Any:
        got = answer()
        if got is None:
            raise http.ConnectError("connection refused", request=request)
        status, headers, body = got
        return http.Response(status, headers=headers, content=body, request=request)

    return http.MockTransport(handle)


def _openai(answer: Handler) -> Provider:
    import httpx2
    import openai

    from unitune.providers.openai import OpenAIProvider, OpenAISettings

    sdk = openai.OpenAI(api_key=KEY, base_url="http://openai.test/v1", max_retries=0,
                        http_client=httpx2.Client(transport=_httpx_handler(httpx2, answer)))  # fmt: skip
    return OpenAIProvider(OpenAISettings(api_key=KEY), client=sdk)


def _together(answer: Handler) -> Provider:
    import httpx
    import together

    from unitune.providers.together import TogetherProvider, TogetherSettings

    sdk = together.Together(api_key=KEY, base_url="http://together.test/v1", max_retries=0,
                            http_client=httpx.Client(transport=_httpx_handler(httpx, answer)))  # fmt: skip
    return TogetherProvider(TogetherSettings(api_key=KEY), client=sdk)


def _mistral(answer: Handler) -> Provider:
    import httpx
    import httpx2
    from mistralai.client import Mistral

    from unitune.providers.mistral import MistralProvider, MistralSettings

    sdk = Mistral(api_key=KEY, server_url="http://mistral.test",
                  client=httpx2.Client(transport=_httpx_handler(httpx2, answer)))  # fmt: skip
    http = httpx.Client(base_url="http://mistral.test", transport=_httpx_handler(httpx, answer))
    return MistralProvider(MistralSettings(api_key=KEY), client=sdk, http=http)


def _cohere(answer: Handler) -> Provider:
    import cohere
    import httpx

    from unitune.providers.cohere import CohereProvider, CohereSettings

    sdk = cohere.ClientV2(api_key=KEY, base_url="http://cohere.test", max_retries=0,
                          httpx_client=httpx.Client(transport=_httpx_handler(httpx, answer)))  # fmt: skip
    return CohereProvider(CohereSettings(api_key=KEY), client=sdk)


#: AWS names its errors by code; the code each status stands for on Bedrock.
_AWS_CODES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def _bedrock(answer: Handler) -> Provider:
    import boto3
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    from tests.faults.plan import _Raw
    from unitune.providers.bedrock import BedrockProvider, BedrockSettings

    def before_send(request: Any, **_: Any) -> Any:
        got = answer()
        if got is None:
            raise EndpointConnectionError(endpoint_url=request.url)
        status, headers, body = got
        if status >= 400:
            headers = {**headers, "x-amzn-errortype": _AWS_CODES.get(status, "ValidationException")}
        return AWSResponse(request.url, status, headers, _Raw(body))

    clients = {}
    for service in ("s3", "bedrock", "bedrock-runtime"):
        c = boto3.client(service, region_name="us-east-1", aws_access_key_id="AKIAWIRE", aws_secret_access_key="x",
                         config=Config(retries={"total_max_attempts": 1}))  # fmt: skip
        c.meta.events.register("before-send", before_send)
        clients[service] = c
    settings = BedrockSettings(region="us-east-1", bucket="b", role_arn="arn:aws:iam::123456789012:role/r")
    return BedrockProvider(settings, client=clients)


def _vertex(answer: Handler) -> Provider:
    import httpx
    from google import genai
    from google.genai import types
    from google.oauth2.credentials import Credentials

    from unitune.providers.vertex import VertexProvider, VertexSettings

    http = types.HttpOptions(base_url="http://vertex.test/", retry_options=types.HttpRetryOptions(attempts=1),
                             httpx_client=httpx.Client(transport=_httpx_handler(httpx, answer)))  # fmt: skip
    sdk = genai.Client(vertexai=True, project="p", location="us-central1", credentials=Credentials(token=KEY),
                       http_options=http)  # fmt: skip
    return VertexProvider(VertexSettings(project="p", location="us-central1", bucket="b"), client=sdk)


@dataclass(frozen=True)
class Wire:
    build: Callable[[Handler], Provider]
    #: The SDK module whose absence `MissingDependencyError` must name.
    sdk: str
    #: A job id of the vendor's shape (Bedrock reads jobs by name).
    job: str = "job-1"


WIRES = {
    "bedrock": Wire(_bedrock, "boto3", "unitune-0123"),
    "cohere": Wire(_cohere, "cohere"),
    "mistral": Wire(_mistral, "mistralai"),
    "openai": Wire(_openai, "openai", "ftjob-1"),
    "together": Wire(_together, "together", "ft-1"),
    "vertex": Wire(_vertex, "google.genai", "1"),
}
NAMES = sorted(WIRES)


def _error_body(status: int) -> bytes:
    # The shapes vendors use: OpenAI's `error` object, the others' `message`/`detail`.
    return json.dumps({"error": {"message": f"said {status}"}, "message": f"said {status}"}).encode()


def test_every_sdk_provider_has_a_wire() -> None:
    sdk_backed = {n for n in BUILTIN_PROVIDERS if issubclass(load_provider_class(n), SDKProvider)}
    assert sdk_backed == set(WIRES)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ProviderUnavailableError),
        (503, ProviderUnavailableError),
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_an_error_status_becomes_its_unitune_error(
    name: str, status: int, error: type[ProviderError]
) -> None:
    wire = WIRES[name]
    headers = {"content-type": "application/json", "retry-after": "7", "x-request-id": "req-wire"}
    provider = wire.build(lambda: (status, headers, _error_body(status)))
    with pytest.raises(error) as caught:
        provider.get_job(wire.job)
    e = caught.value
    assert type(e) is error or (status == 404 and isinstance(e, NotFoundError))
    assert e.provider == name
    assert e.status_code == status
    assert "\n" not in str(e)
    assert KEY not in str(e)
    if status == 429:
        assert isinstance(e, RateLimitError)
        assert e.retry_after == 7
    if status >= 500 or status == 429:
        assert retryable(e)


@pytest.mark.parametrize("name", NAMES)
def test_a_refused_connection_is_unavailable_and_names_the_host(name: str) -> None:
    wire = WIRES[name]
    provider = wire.build(lambda: None)
    with pytest.raises(ProviderUnavailableError) as caught:
        provider.get_job(wire.job)
    assert retryable(caught.value)
    assert caught.value.provider == name
    assert ".test" in str(caught.value) or "amazonaws.com" in str(caught.value)


@pytest.mark.parametrize("name", NAMES)
def test_a_body_cut_short_is_never_a_job(name: str) -> None:
    wire = WIRES[name]
    provider = wire.build(lambda: (200, {"content-type": "application/json"}, b'{"id": "job-1", "sta'))
    with pytest.raises(UnituneError) as caught:
        provider.get_job(wire.job)
    assert isinstance(caught.value, ProviderError)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_sdk_names_the_extra(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wire = WIRES[name]
    for module in [m for m in sys.modules if m == wire.sdk or m.startswith(wire.sdk + ".")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, wire.sdk, None)  # what an environment without the extra sees
    cls = load_provider_class(name)
    section: dict[str, Any] = {"api_key": KEY} if "api_key" in cls.settings_class.model_fields else {}
    provider = cls.from_config(section)
    assert isinstance(provider, SDKProvider)
    with pytest.raises(MissingDependencyError) as caught:
        _ = provider.sdk
    extra = BUILTIN_PROVIDERS[name].extra
    assert f'pip install "unitune[{extra}]"' in str(caught.value)
