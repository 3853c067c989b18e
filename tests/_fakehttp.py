"""What the vendor fakes (`tests/*_adapter/fake_api.py`) share: a stateful stand-in for a vendor's
HTTP API, served to the vendor's real SDK through `MockTransport` (no socket is opened).

`FakeHTTPAPI` holds the parts that are the same for every vendor:

- a route table, `routes()`: `(method, path regex, handler)`; the first full match answers, and a
  handler gets the request and the regex's groups and returns `(status, json_body)` or a `Reply`;
- request recording: every request that reaches the fake lands in `requests`, and
  `calls(method, path_regex)` picks them out;
- scripted failures: `fail(path, status, ...)` fails the next requests whose `"METHOD /path"` fully
  matches `path`, with the vendor's own error body (`error_body`, the hook a subclass implements);
- the seeded fault mode: with a `FaultPlan` (tests/faults), `transport()` fails requests at random
  around the fake, and a new job shows in lists (`listed`) only `list_lag` seconds of the plan's
  clock after it was made (`mark_new`);
- ids (`new_id`) and a clock that ticks one second a call (`tick`);
- `transport(http)`: an `httpx` or `httpx2` `MockTransport`, whichever the SDK runs on (the class's
  `http`, or the module given). Answers come back in the flavour of the request.

A subclass holds only its vendor's routes, state and shapes.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

from tests.faults.plan import FaultPlan


@dataclass
class Reply:
    """An answer in neither flavour yet: `json` or `content` as the body (neither: an empty body)."""

    status: int = 200
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


#: What a route handler returns: `(status, json_body)`, or a `Reply` for bytes or headers.
Answer = Reply | tuple[int, Any]
Route = tuple[str, str, Callable[..., Answer]]


@dataclass
class Failure:
    """One scripted failure: the next `times` requests matching `path` get `status` (None: the
    connection drops) with `body` and `headers`; `after_effect` applies the request first, then fails
    (an answer lost on the way back)."""

    path: str  # a regex fully matched against "METHOD /path"
    status: int | None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    after_effect: bool = False


class FailQueue:
    """`fake.<name>.append((path_regex, status, headers))`: the older form some tests use, one failure
    per entry, the same as `fake.fail(path_regex, status, headers=headers)`. Calling it is `fail`."""

    def __init__(self, fail: Callable[..., None]) -> None:
        self._fail = fail

    def append(self, entry: tuple[str, int | None, dict[str, str]]) -> None:
        path, status, headers = entry
        self._fail(path, status, headers=headers)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._fail(*args, **kwargs)


class FakeHTTPAPI:
    #: The `MockTransport` flavour the vendor's SDK runs on: the `httpx` or the `httpx2` module. (This
    #: module imports neither: a fake imports only what its SDK runs on, so a seeded soak draws the
    #: same random numbers as before; importing httpx draws one.)
    http: ClassVar[ModuleType]
    #: The `x-request-id` header on every error answer.
    request_id: ClassVar[str] = "req_fake"
    #: Where `tick()` starts.
    epoch: ClassVar[int] = 0

    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.faults = faults
        self.requests: list[Any] = []  # httpx.Request or httpx2.Request, as they came
        self.failures: list[Failure] = []
        self.visible_at: dict[str, float] = {}  # when a job shows in lists (the plan's list lag)
        self._ids = itertools.count(1)
        self._clock = itertools.count(self.epoch)
        self._routes = [(m, re.compile(p), fn) for m, p, fn in self.routes()]

    # -- what a subclass says ------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """`(method, path regex, handler)`, first full match first."""
        raise NotImplementedError

    def error_body(self, status: int, message: str, **fields: Any) -> Any:
        """The vendor's JSON error body."""
        raise NotImplementedError

    # -- test controls ---------------------------------------------------------------------------------

    def fail(self, path: str, status: int | None, *, message: str = "injected", times: int = 1,
             headers: dict[str, str] | None = None, after_effect: bool = False) -> None:  # fmt: skip
        """Fail the next `times` requests whose "METHOD /path" fully matches `path`: `status` with the
        vendor's error body for `message` (None: the connection drops)."""
        body = self.error_body(status or 0, message)
        self.failures.append(Failure(path, status, body, headers or {}, times, after_effect))

    def calls(self, method: str, pattern: str) -> list[Any]:
        """The recorded requests with this method whose path fully matches `pattern`."""
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.url.path)]

    def transport(self, http: ModuleType | None = None) -> Any:
        """A `MockTransport` of `http` (default: the class's flavour) serving this fake, with the
        plan's faults around it when there is a plan. `handle` is looked up per request, so a test
        may wrap it after the transport is built."""
        http = http or self.http

        def handle(request: Any) -> Any:
            return self.handle(request)

        if self.faults is None:
            return http.MockTransport(handle)
        return http.MockTransport(self.faults.handler(handle, http))

    # -- helpers for the routes ------------------------------------------------------------------------

    def new_id(self, prefix: str, width: int = 0) -> str:
        return f"{prefix}-{next(self._ids):0{width}d}"

    def tick(self) -> int:
        """The fake's clock: one second on at each call, from `epoch`."""
        return next(self._clock)

    def error(self, status: int, message: str, **fields: Any) -> Reply:
        return Reply(status, json=self.error_body(status, message, **fields),
                     headers={"x-request-id": self.request_id})  # fmt: skip

    def mark_new(self, job_id: str) -> None:
        """A job made now: under a plan with list lag it shows in `listed` only later."""
        self.visible_at[job_id] = self.faults.visible_at() if self.faults is not None else 0.0

    def listed(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items a list shows now: under a plan, only those past their list lag."""
        if self.faults is None:
            return items
        now = self.faults.now()
        return [i for i in items if self.visible_at.get(i["id"], 0.0) <= now]

    # -- serving ----------------------------------------------------------------------------------------

    def handle(self, request: Any) -> Any:
        """Record the request, then a scripted failure if one matches, else the route's answer."""
        self.requests.append(request)
        http = sys.modules[type(request).__module__.partition(".")[0]]  # httpx or httpx2, as it came
        key = f"{request.method} {request.url.path}"
        for f in self.failures:
            if f.times > 0 and re.fullmatch(f.path, key):
                f.times -= 1
                if f.after_effect:
                    self.route(request)
                if f.status is None:
                    raise http.ConnectError("connection reset by peer", request=request)
                headers = {"x-request-id": self.request_id, **f.headers}
                return _respond(http, Reply(f.status, json=f.body, headers=headers))
        return _respond(http, self.route(request))

    def route(self, request: Any) -> Answer:
        path = request.url.path
        for method, pattern, fn in self._routes:
            match = pattern.fullmatch(path)
            if method == request.method and match:
                return fn(request, *match.groups())
        return self.error(404, f"no route {request.method} {path}")


def read_json(request: Any) -> Any:
    return json.loads(request.read())


def _respond(http: ModuleType, answer: Answer) -> Any:
    if isinstance(answer, tuple):
        status, body = answer
        return http.Response(status, json=body)
    if answer.content is not None:
        return http.Response(answer.status, content=answer.content, headers=answer.headers)
    if answer.json is None:
        return http.Response(answer.status, headers=answer.headers)
    return http.Response(answer.status, json=answer.json, headers=answer.headers)


class serve:
    """Serve `api` on 127.0.0.1, a real socket, for code that builds its own HTTP client from settings
    (google-genai) or that must be tested over the wire (the OpenAI side of `unitune migrate`):
    `with serve(api) as url: ...`. Each request goes to `api.handle` as a request of its SDK's flavour."""

    def __init__(self, api: FakeHTTPAPI) -> None:
        import http.server
        import threading

        fake = api
        http_module = api.http

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = http_module.Request(self.command, f"http://127.0.0.1{self.path}", headers=dict(self.headers),
                                        content=body)  # fmt: skip
                try:
                    response = fake.handle(request)
                except http_module.ConnectError:  # a scripted drop: close without an answer
                    self.close_connection = True
                    return
                content = response.read()
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
