"""Seeded faults for the vendor fakes: what a flaky network and a busy vendor do to requests.

A `FaultPlan` decides, request by request, whether to fail it and how, from its own seeded random
generator, so a run is reproducible. The fakes (`tests/*_adapter/fake_api.py`) take one; the same
plan serves httpx and httpx2 transports (`handler`) and botocore clients (`botocore_hook`).

Kinds:

- `429`: Too Many Requests with `Retry-After: retry_after`;
- `500`, `503`: a JSON error; `502`: a proxy's HTML page;
- `hang`: no answer until the client's timeout: the clock moves `hang_seconds`, then the transport
  raises its read timeout (no real sleeping);
- `reset`: the connection drops (a reset, or a refused reconnect);
- `cut`: the request takes effect and the answer is a 200 whose JSON body is cut short;
- `after`: the request takes effect, then its answer is lost: a dropped connection, a 502, or a
  late answer (the clock moves `hang_seconds` and the read times out: a create that happened after
  the client gave up on it).

`list_lag` is separate: a job the fake creates shows in list results only `list_lag` seconds
(of the plan's clock) after it was made, as with a vendor whose list is eventually consistent.
"""

from __future__ import annotations

import collections
import random
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unitune._clock import FakeClock

KINDS = ("429", "500", "502", "503", "hang", "reset", "cut", "after")
#: Kinds after which the request may have taken effect.
EFFECTIVE = ("cut", "after")

_HTML = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center>502 Bad Gateway</center></body></html>"
)


@dataclass
class FaultPlan:
    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    retry_after: float = 1.0
    hang_seconds: float = 10.0
    list_lag: float = 0.0
    clock: FakeClock | None = None
    #: Requests never faulted: `(method, path) -> True` (e.g. all but a create, in a targeted test).
    spare: Callable[[str, str], bool] | None = None
    #: At most this many faults in all (None: no limit).
    limit: int | None = None
    #: How an `after` fault loses the answer, drawn from these.
    lost: tuple[str, ...] = ("dropped", "502", "late")
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: int = 0
    enabled: bool = True

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._lock = threading.Lock()

    # -- deciding ------------------------------------------------------------------------------------

    def draw(self, method: str, path: str) -> str | None:
        """This request's fault, or None. Every request counts, faulted or not."""
        with self._lock:
            self.requests += 1
            if not self.enabled or self.rate <= 0 or (self.spare is not None and self.spare(method, path)):
                return None
            if self.limit is not None and sum(self.counts.values()) >= self.limit:
                return None
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(self.kinds)
            self.counts[kind] += 1
            return kind

    def pick(self, *options: str) -> str:
        with self._lock:
            return self.rng.choice(options)

    def now(self) -> float:
        """The plan's clock (for list lag): the fake clock the client waits on."""
        return self.clock.monotonic() if self.clock is not None else 0.0

    def visible_at(self) -> float:
        """When a job created now shows in lists."""
        return self.now() + self.list_lag

    def _hang(self) -> None:
        if self.clock is not None:
            self.clock.advance(self.hang_seconds)

    # -- httpx / httpx2 ----------------------------------------------------------------------------------

    def handler(self, route: Callable[[Any], Any], http: Any) -> Callable[[Any], Any]:
        """A `MockTransport` handler: `route(request)` answers as the vendor would, and this plan's
        faults are injected around it. `http` is the module (`httpx` or `httpx2`) of the transport."""

        def handle(request: Any) -> Any:
            kind = self.draw(request.method, request.url.path)
            if kind is None:
                return route(request)
            return self._http_fault(kind, request, route, http)

        return handle

    def _http_fault(self, kind: str, request: Any, route: Callable[[Any], Any], http: Any) -> Any:
        message = f"injected {kind}"
        body = {"error": {"message": message, "type": "server_error", "code": None}, "message": message}
        headers = {"x-request-id": f"req_fault_{self.requests}"}
        if kind == "429":
            return http.Response(429, json=body, headers={**headers, "retry-after": f"{self.retry_after:g}"})
        if kind == "502":
            return http.Response(502, content=_HTML, headers={**headers, "content-type": "text/html"})
        if kind in ("500", "503"):
            return http.Response(int(kind), json=body, headers=headers)
        if kind == "hang":
            self._hang()
            raise http.ReadTimeout("timed out (injected hang)", request=request)
        if kind == "reset":
            if self.pick("reset", "refused") == "reset":
                raise http.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            raise http.ConnectError("[Errno 111] Connection refused", request=request)
        answer = route(request)  # cut, after: the request takes effect
        if kind == "cut":
            type_ = answer.headers.get("content-type", "")
            if 200 <= answer.status_code < 300 and "json" in type_:
                content = answer.content
                return http.Response(
                    answer.status_code, content=content[: max(1, len(content) // 2)],
                    headers={**headers, "content-type": type_},
                )  # fmt: skip
            return http.Response(503, json=body, headers=headers)  # nothing to cut (a redirect, bytes)
        lost = self.pick(*self.lost)
        if lost == "dropped":
            raise http.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if lost == "late":
            self._hang()
            raise http.ReadTimeout("timed out (injected: the answer came too late)", request=request)
        return http.Response(502, content=_HTML, headers={**headers, "content-type": "text/html"})

    # -- botocore ------------------------------------------------------------------------------------------

    def botocore_hook(self, answer: Callable[[Any], Any]) -> Callable[..., Any]:
        """A botocore `before-send` handler (register it with `register_first`). `answer(request)`
        returns the service's `AWSResponse` (moto's, or a canned one); the hook returns None to let
        the next handler answer when there is no fault and `answer` gives None."""
        from botocore import exceptions as bx
        from botocore.awsrequest import AWSResponse

        def hook(request: Any, **_: Any) -> Any:
            path = urllib.parse.urlsplit(request.url).path
            kind = self.draw(request.method, path)
            if kind is None:
                return answer(request)
            s3 = ".s3." in request.url or "s3.amazonaws.com" in request.url
            if kind in ("429", "500", "503"):
                code = {"429": "ThrottlingException", "500": "InternalServerException",
                        "503": "ServiceUnavailableException"}[kind]  # fmt: skip
                status = int(kind)
                if s3:
                    code, status = ("SlowDown", 503) if kind == "429" else ("InternalError", status)
                    raw = f"<Error><Code>{code}</Code><Message>injected {kind}</Message></Error>".encode()
                    return AWSResponse(request.url, status, {"content-type": "application/xml"}, _Raw(raw))
                raw = b'{"message": "injected ' + kind.encode() + b'"}'
                head = {"content-type": "application/json", "x-amzn-ErrorType": code}
                if kind == "429":
                    head["retry-after"] = f"{self.retry_after:g}"
                return AWSResponse(request.url, status, head, _Raw(raw))
            if kind == "502":
                return AWSResponse(request.url, 502, {"content-type": "text/html"}, _Raw(_HTML))
            if kind == "hang":
                self._hang()
                raise bx.ReadTimeoutError(endpoint_url=request.url)
            if kind == "reset":
                raise bx.ConnectionClosedError(endpoint_url=request.url)
            response = answer(request)  # cut, after: the request takes effect
            if kind == "cut" and response is not None and 200 <= response.status_code < 300:
                content = response.content
                return AWSResponse(request.url, response.status_code, dict(response.headers),
                                   _Raw(content[: max(0, len(content) // 2)]))  # fmt: skip
            lost = self.pick(*self.lost)
            if lost == "dropped":
                raise bx.ConnectionClosedError(endpoint_url=request.url)
            if lost == "late":
                self._hang()
                raise bx.ReadTimeoutError(endpoint_url=request.url)
            return AWSResponse(request.url, 502, {"content-type": "text/html"}, _Raw(_HTML))

        return hook


class _Raw:
    """What botocore reads an `AWSResponse`'s body from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data

    def read(self, *_: Any, **__: Any) -> bytes:
        return self.data
