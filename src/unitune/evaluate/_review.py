"""`unitune review`: rate two candidates' answers side by side in a browser, on this machine.

The page is served from 127.0.0.1 by a small FastAPI app in a background thread; it needs no account
and no internet (every byte of it is inline, and its Content-Security-Policy forbids anything else).
Each example shows the prompt and two anonymised answers, "Answer A" on the left and "Answer B" on
the right, in an order drawn per example from the example's index and a session seed: random to the
reviewer, yet the same after a reload. The page never learns which candidate is which; the server
maps a choice of side back to candidate names when it saves.

Every rating is appended to `ratings.jsonl` in the report directory and fsynced before the page
hears that it was saved, so a reload, a closed tab or a killed server loses nothing: the next
session starts at the first unrated example. Re-rating an example appends a new line; the last
line for (index, a, b) wins. `summarize_ratings` turns the file into a `HumanResult`: a's win rate
with its Wilson interval.

FastAPI and uvicorn are the `eval` extra: they are imported only when a page is served.

Over ~700 lines on purpose: the session (which example, which side, what is saved), the app that
serves it and the server thread change together whenever the page learns something new; the page
itself (HTML, CSS, JS) lives in `review/` as ordinary files.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import threading
import webbrowser
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, ValidationError

from unitune._asgi import ThreadedServer
from unitune.errors import ConfigurationError
from unitune.evaluate._report import EvaluationReport, HumanResult
from unitune.evaluate._stats import wilson

if TYPE_CHECKING:
    from fastapi import FastAPI
    from rich.console import Console
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "RATINGS_FILE",
    "ReviewItem",
    "ReviewServer",
    "ReviewSession",
    "create_app",
    "describe_ratings",
    "review_main",
    "serve_review",
    "summarize_ratings",
]

#: What is stored: a won, b won, a tie, or both answers bad (left out of the win rate).
Choice = Literal["a", "b", "tie", "both_bad"]
#: What the page sends and is told: sides, never candidates.
Side = Literal["left", "right", "tie", "both_bad"]

RATINGS_FILE = "ratings.jsonl"
_CHOICES: frozenset[str] = frozenset({"a", "b", "tie", "both_bad"})
_INSTALL_FIX = "Install it with: pip install 'unitune[eval]'"


# -- reading the report directory ---------------------------------------------------------------------


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per line.

    A line that does not parse is skipped: these files are appended while they are read (answers
    arrive during `unitune evaluate`, ratings during a review), and a crash can leave the last line
    cut short. errors="replace" for the same reason: a cut can fall inside a UTF-8 sequence.
    """
    with path.open(encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object) -> str:
    """Message content as text (a structured content part is shown as its JSON)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class _Example:
    index: int
    line: int | None
    prompt: tuple[tuple[str, str], ...]
    reference: str


def _load_report(directory: Path) -> EvaluationReport:
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise ConfigurationError(
            f"The report directory {str(directory)!r} {what}.",
            fix="Pass the directory `unitune evaluate` wrote its report to (the one with report.json).",
        )
    path = directory / "report.json"
    if not path.is_file():
        raise ConfigurationError(
            f"{str(directory)!r} has no report.json.",
            fix="Pass the directory `unitune evaluate` wrote its report to, or run the evaluation again.",
        )
    try:
        return EvaluationReport.model_validate_json(path.read_bytes())
    except OSError as e:
        raise ConfigurationError(
            f"Cannot read {str(path)!r}: {e.strerror or e}.", fix="Make the report directory readable."
        ) from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise ConfigurationError(
            f"{str(path)!r} is not an evaluation report ({where}: {first['msg']}).",
            fix="Run `unitune evaluate` again to rewrite it.",
        ) from None


def _load_examples(directory: Path) -> dict[int, _Example]:
    path = directory / "examples.jsonl"
    if not path.is_file():
        raise ConfigurationError(
            f"{str(directory)!r} has no examples.jsonl.",
            fix="Run `unitune evaluate` again: it writes examples.jsonl next to report.json.",
        )
    examples: dict[int, _Example] = {}
    for record in _records(path):
        index, line, prompt = record.get("index"), record.get("line"), record.get("prompt")
        if not _is_int(index) or not isinstance(prompt, list):
            continue
        messages = tuple(
            (str(m.get("role", "")), _text(m.get("content", ""))) for m in prompt if isinstance(m, dict)
        )
        examples[index] = _Example(
            index, line if _is_int(line) else None, messages, _text(record.get("reference", ""))
        )
    return examples


def _load_answers(directory: Path, slug: str) -> dict[int, str]:
    """The answers by index; a resumed run repeats an index, and its last answer with content wins."""
    path = directory / "answers" / f"{slug}.jsonl"
    answers: dict[int, str] = {}
    if not path.is_file():
        return answers
    for record in _records(path):
        index, content = record.get("index"), record.get("content")
        if _is_int(index) and isinstance(content, str):
            answers[index] = content
    return answers


def _latest_ratings(path: Path) -> dict[tuple[int, str, str], Choice]:
    """(index, a, b) -> the last choice saved for it."""
    latest: dict[tuple[int, str, str], Choice] = {}
    if not path.is_file():
        return latest
    for record in _records(path):
        index, a, b, choice = record.get("index"), record.get("a"), record.get("b"), record.get("choice")
        if _is_int(index) and isinstance(a, str) and isinstance(b, str) and choice in _CHOICES:
            latest[(index, a, b)] = choice
    return latest


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it: once this returns, the rating survives a crash."""
    created = not path.exists()
    with path.open("a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                # A crash mid-write left a torn last line: start a fresh one so this record is not
                # glued to it (the torn line is skipped on reading).
                f.write(b"\n")
        f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    if created:
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable too (POSIX; Windows cannot open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- choosing the pair ---------------------------------------------------------------------------------


def _pick(
    report: EvaluationReport, explicit: str | None, preferred: str | None, role: str, other: str | None
) -> str:
    """The explicit name, else the verdict's, else the first of `role`, else any; never `other`."""
    if explicit is not None:
        return explicit
    names = [c.name for c in report.candidates]
    options = [preferred] if preferred in names else []
    options += [c.name for c in report.candidates if c.role == role] + names
    return next(n for n in options if n != other)


def _pair(report: EvaluationReport, a: str | None, b: str | None) -> tuple[str, str]:
    names = [c.name for c in report.candidates]
    if len(names) < 2:
        only = f" ({names[0]!r})" if names else ""
        raise ConfigurationError(
            f"The report has {len(names)} candidate{only}; a review compares two answers.",
            fix="Evaluate a tuned model against at least one baseline, then review that report.",
        )
    for name in (a, b):
        if name is not None and name not in names:
            raise ConfigurationError(
                f"The report has no candidate called {name!r} (it has {', '.join(map(repr, names))}).",
                fix="Pass one of those names.",
            )
    if a is not None and a == b:
        raise ConfigurationError(f"Both sides are {a!r}.", fix="Pass two different candidates.")
    first = _pick(report, a, report.verdict.candidate, "tuned", b)
    second = _pick(report, b, report.verdict.baseline, "baseline", first)
    return first, second


# -- the session ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    """One example to rate.

    `left` and `right` name candidates: the server keeps them, the page only ever receives the answers.
    """

    position: int
    index: int
    line: int | None
    prompt: tuple[tuple[str, str], ...]
    reference: str
    left: str
    right: str
    left_answer: str
    right_answer: str


def _left_is_a(seed: int, index: int) -> bool:
    # A hash, not random.Random: the same bit for (seed, index) on every Python and platform, so a
    # reload or a restarted server shows the same sides.
    return hashlib.sha256(f"{seed}:{index}".encode()).digest()[0] & 1 == 0


class ReviewSession:
    """A review of candidate `a` against `b` over one report directory.

    Loads report.json, examples.jsonl, both candidates' answers and the ratings saved so far.
    Only examples both candidates answered are shown. `a` defaults to the verdict's candidate (or
    the first tuned one) and `b` to the verdict's baseline (or the first baseline).

    Raises `ConfigurationError` for a missing or unreadable directory or report, an unknown
    candidate, a report with fewer than two candidates, or no example answered by both.
    """

    def __init__(
        self, report_dir: str | os.PathLike[str], *, a: str | None = None, b: str | None = None, seed: int = 0
    ) -> None:
        self.report_dir = Path(report_dir)
        self.report = _load_report(self.report_dir)
        self.a, self.b = _pair(self.report, a, b)
        self.seed = seed
        self.ratings_path = self.report_dir / RATINGS_FILE
        self._lock = threading.Lock()
        try:
            self._items = self._build_items()
            saved = _latest_ratings(self.ratings_path)
        except OSError as e:
            raise ConfigurationError(
                f"Cannot read the report directory {str(self.report_dir)!r}: {e.strerror or e}.",
                fix="Make it and the files in it readable.",
            ) from None
        shown = {item.index for item in self._items}
        self._ratings: dict[int, Choice] = {
            index: choice
            for (index, ra, rb), choice in saved.items()
            if ra == self.a and rb == self.b and index in shown
        }

    def _build_items(self) -> list[ReviewItem]:
        examples = _load_examples(self.report_dir)
        answers_a = _load_answers(self.report_dir, self.report.candidate(self.a).slug)
        answers_b = _load_answers(self.report_dir, self.report.candidate(self.b).slug)
        items: list[ReviewItem] = []
        for index in sorted(examples):
            if index not in answers_a or index not in answers_b:
                continue  # nothing to compare: one side has no answer
            example = examples[index]
            left, right = (self.a, self.b) if _left_is_a(self.seed, index) else (self.b, self.a)
            answers = {self.a: answers_a[index], self.b: answers_b[index]}
            items.append(
                ReviewItem(
                    position=len(items),
                    index=index,
                    line=example.line,
                    prompt=example.prompt,
                    reference=example.reference,
                    left=left,
                    right=right,
                    left_answer=answers[left],
                    right_answer=answers[right],
                )
            )
        if not items:
            raise ConfigurationError(
                f"No example in {str(self.report_dir)!r} has an answer from both {self.a!r} and {self.b!r}.",
                fix="Let `unitune evaluate` finish (or resume it), then start the review again.",
            )
        return items

    # -- reading ---------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        """Examples to rate."""
        return len(self._items)

    @property
    def rated(self) -> int:
        """Examples rated so far."""
        with self._lock:
            return len(self._ratings)

    def item(self, position: int) -> ReviewItem:
        """The example at `position` (0-based, in index order); IndexError outside."""
        if not 0 <= position < len(self._items):
            raise IndexError(position)
        return self._items[position]

    def rating(self, position: int) -> Side | None:
        """The side chosen for the example at `position`, or None when it is not rated yet."""
        item = self.item(position)
        with self._lock:
            choice = self._ratings.get(item.index)
        return None if choice is None else self._side(item, choice)

    def next_unrated(self, after: int | None = None) -> int | None:
        """The first unrated position after `after`, wrapping round.

        The first unrated position after `after` (from the start when None), wrapping round;
        None when every example is rated.
        """
        n = len(self._items)
        start = 0 if after is None else after + 1
        with self._lock:
            for offset in range(n):
                position = (start + offset) % n
                if self._items[position].index not in self._ratings:
                    return position
        return None

    def summary(self, *, confidence: float = 0.95) -> HumanResult:
        """`a` against `b` over the ratings of this session's examples."""
        with self._lock:
            choices = list(self._ratings.values())
        return _result(choices, self.a, self.b, confidence)

    # -- writing ---------------------------------------------------------------------------------

    def rate(self, position: int, side: Side) -> dict[str, Any]:
        """Save a rating of the example at `position`, fsynced before this returns; the record saved."""
        item = self.item(position)
        choice = self._choice(item, side)
        at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = {
            "index": item.index,
            "a": self.a,
            "b": self.b,
            "choice": choice,
            "left": item.left,
            "at": at,
        }
        # One writer at a time: the server answers requests on a thread pool, and two appends must
        # not interleave in the file.
        with self._lock:
            _append_line(self.ratings_path, record)
            self._ratings[item.index] = choice
        return record

    def _choice(self, item: ReviewItem, side: Side) -> Choice:
        if side == "tie":
            return "tie"
        if side == "both_bad":
            return "both_bad"
        winner = item.left if side == "left" else item.right
        return "a" if winner == self.a else "b"

    def _side(self, item: ReviewItem, choice: Choice) -> Side:
        if choice == "tie":
            return "tie"
        if choice == "both_bad":
            return "both_bad"
        winner = self.a if choice == "a" else self.b
        return "left" if winner == item.left else "right"

    # -- what the page may see (never a candidate's name) -----------------------------------------

    def progress(self) -> dict[str, int]:
        """{"rated", "total"}."""
        return {"rated": self.rated, "total": self.total}

    def item_view(self, position: int) -> dict[str, Any]:
        """The example at `position` as the page shows it: prompt, answers by side, its rating."""
        item = self.item(position)
        return {
            "position": item.position,
            "index": item.index,
            "line": item.line,
            "total": self.total,
            "prompt": [{"role": role, "content": content} for role, content in item.prompt],
            "answers": {"left": item.left_answer, "right": item.right_answer},
            "rating": self.rating(position),
            "progress": self.progress(),
        }

    def done_view(self) -> dict[str, int]:
        """The end screen's counts.

        Wins are left out (sides are random, so only a's and b's wins would mean anything, and those
        would say which answer came from whom).
        """
        result = self.summary()
        return {"rated": result.rated, "total": self.total, "ties": result.ties, "both_bad": result.both_bad}


# -- the summary -----------------------------------------------------------------------------------


def _result(choices: Iterable[Choice], a: str, b: str, confidence: float) -> HumanResult:
    counts = Counter(choices)
    a_wins, b_wins, ties = counts["a"], counts["b"], counts["tie"]
    # "Both bad" says nothing about which is better: counted, but outside the rate.
    interval = wilson(a_wins + ties / 2, a_wins + b_wins + ties, confidence=confidence)
    return HumanResult(
        a=a,
        b=b,
        a_wins=a_wins,
        b_wins=b_wins,
        ties=ties,
        both_bad=counts["both_bad"],
        win_rate=None if interval is None else interval.estimate,
        low=None if interval is None else interval.low,
        high=None if interval is None else interval.high,
    )


def summarize_ratings(
    report_dir: str | os.PathLike[str], a: str, b: str, *, confidence: float = 0.95
) -> HumanResult:
    """`a` against `b` from `ratings.jsonl`: the last rating of each example counts.

    win_rate = (a_wins + ties/2) / (a_wins + b_wins + ties), with its Wilson interval at
    `confidence`; "both bad" ratings are counted apart. win_rate, low and high are None without a
    rating that names a winner or a tie.
    """
    directory = Path(report_dir)
    if not directory.is_dir():
        raise ConfigurationError(
            f"The report directory {str(directory)!r} does not exist.",
            fix="Pass the directory `unitune review` saved its ratings in.",
        )
    try:
        latest = _latest_ratings(directory / RATINGS_FILE)
    except OSError as e:
        raise ConfigurationError(
            f"Cannot read {str(directory / RATINGS_FILE)!r}: {e.strerror or e}.", fix="Make it readable."
        ) from None
    return _result((c for (_, ra, rb), c in latest.items() if ra == a and rb == b), a, b, confidence)


def describe_ratings(result: HumanResult) -> str:
    """One line: "tuned vs base: 14 rated, tuned wins 9, loses 3, 2 ties; win rate 0.82 [0.55, 0.94]"."""
    head = f"{result.a} vs {result.b}"
    if result.rated == 0:
        return f"{head}: nothing rated yet"
    ties = f"{result.ties} tie" + ("" if result.ties == 1 else "s")
    counts = f"{result.rated} rated, {result.a} wins {result.a_wins}, loses {result.b_wins}, {ties}"
    if result.both_bad:
        counts += f", {result.both_bad} both bad"
    if result.win_rate is None or result.low is None or result.high is None:
        return f"{head}: {counts}; no win rate (every rating was 'both bad')"
    return f"{head}: {counts}; win rate {result.win_rate:.2f} [{result.low:.2f}, {result.high:.2f}]"


# -- the page ------------------------------------------------------------------------------------------


def _asset(name: str) -> str:
    """A file of the page (review/*), shipped inside the package: edited as CSS, HTML and JS."""
    from importlib.resources import files

    return files("unitune.evaluate").joinpath("review").joinpath(name).read_text(encoding="utf-8")


# Read once at import: the CSP below pins the exact bytes of the script and style by hash.
_STYLE = _asset("review.css")
_BODY = _asset("body.html")
_SCRIPT = _asset("review.js")

PAGE = (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    "<title>unitune review</title>\n"
    f"<style>{_STYLE}</style>\n</head>\n<body>{_BODY}<script>{_SCRIPT}</script>\n</body>\n</html>\n"
)


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode() + "'"


# Only this page's own script and style run, and it talks only to this server: no CDN, no fonts,
# no images, no frames (a page that framed this one could trick keystrokes into ratings).
_CSP = (
    f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
    "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class _RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choice: Side


def _require(module: str) -> ModuleType:
    """Import one of the extra's packages, or say how to install it."""
    from unitune._asgi import require

    return require(module, "unitune review", _INSTALL_FIX)


def _host_name(header: str) -> str:
    """The host of a Host header, without its port ("[::1]:8000" -> "::1")."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(session: ReviewSession, *, allow_remote: bool = False) -> FastAPI:
    """The review page and its JSON API over `session`.

    - `GET /`: the page (self-contained: inline CSS and script, nothing fetched elsewhere).
    - `GET /api/progress`: {"rated", "total"}.
    - `GET /api/next?after=N`: {"position", "progress", "summary"}: the next unrated position
      after N (from the start without N, wrapping round), or position null when all are rated.
    - `GET /api/items/{position}`: the prompt, the answers by side ("left" is Answer A), the
      rating given so far (by side) and the progress.
    - `GET /api/items/{position}/reference`: {"reference"}, asked for only when the reviewer wants it.
    - `POST /api/items/{position}/rating` with {"choice": "left"|"right"|"tie"|"both_bad"}: saved
      and fsynced before the answer; {"rating", "progress", "next"}.

    Nothing served names a candidate. Unless `allow_remote`, a request whose Host header is not a
    loopback name is refused, so a web page cannot reach the server by rebinding its DNS name to
    127.0.0.1; a POST must be JSON, which a cross-site form cannot send.
    """
    _require("fastapi")
    from fastapi import FastAPI, HTTPException
    from fastapi import Response as PlainResponse
    from fastapi.responses import HTMLResponse, JSONResponse

    app = FastAPI(title="unitune review", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not allow_remote and not _is_loopback(_host_name(request.headers.get("host", ""))):
            return JSONResponse({"detail": "This review server answers on its loopback address only."}, 400)
        if (
            request.method == "POST"
            and request.headers.get("content-type", "").split(";")[0] != "application/json"
        ):
            return JSONResponse({"detail": "Send JSON (Content-Type: application/json)."}, 415)
        response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def item_or_404(position: int) -> ReviewItem:
        try:
            return session.item(position)
        except IndexError:
            raise HTTPException(
                404, f"No example at position {position} (there are {session.total})."
            ) from None

    # response_model=None everywhere: the endpoints return plain JSON-ready dicts, and FastAPI
    # need not (and, for names imported here, could not) resolve their return annotations.
    @app.get("/", response_model=None)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"Content-Security-Policy": _CSP})

    @app.get("/favicon.ico", response_model=None)
    def favicon() -> Response:
        return PlainResponse(status_code=204)

    @app.get("/api/progress", response_model=None)
    def progress() -> dict[str, int]:
        return session.progress()

    @app.get("/api/next", response_model=None)
    def next_unrated(after: int | None = None) -> dict[str, Any]:
        return {
            "position": session.next_unrated(after),
            "progress": session.progress(),
            "summary": session.done_view(),
        }

    @app.get("/api/items/{position}", response_model=None)
    def item(position: int) -> dict[str, Any]:
        item_or_404(position)
        return session.item_view(position)

    @app.get("/api/items/{position}/reference", response_model=None)
    def reference(position: int) -> dict[str, str]:
        return {"reference": item_or_404(position).reference}

    @app.post("/api/items/{position}/rating", response_model=None)
    def rate(position: int, body: _RatingIn) -> dict[str, Any]:
        item_or_404(position)
        try:
            session.rate(position, body.choice)
        except OSError as e:
            raise HTTPException(500, f"The rating was not saved: {e.strerror or e}.") from None
        return {"rating": body.choice, "progress": session.progress(), "next": session.next_unrated(position)}

    return app


# -- serving -------------------------------------------------------------------------------------------


class ReviewServer(ThreadedServer):
    """A review page being served from a background thread; a context manager that stops it.

    `url` is the page's address, `port` the port really bound (also when 0 was asked for),
    `session` the `ReviewSession` behind it.
    """

    def __init__(self, uvicorn: Any, app: Any, session: ReviewSession, *, host: str, port: int) -> None:
        self.session = session
        # A bounded graceful shutdown, because a browser tab keeps its connection open.
        super().__init__(uvicorn, app, host=host, port=port, name="unitune-review", what="The review server",
                         graceful_s=2)  # fmt: skip


def serve_review(
    report_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    a: str | None = None,
    b: str | None = None,
    seed: int = 0,
    allow_remote: bool = False,
) -> ReviewServer:
    """Serve the review page for `report_dir` from a background thread and return once it answers.

    `port=0` takes any free port (`.port` and `.url` say which). The page shows prompts and answers
    to whoever can reach it, so only a loopback `host` is accepted unless `allow_remote=True`.
    """
    if not allow_remote and not _is_loopback(host):
        raise ConfigurationError(
            f"The review page would be reachable from other machines on {host!r}.",
            fix="Serve it on 127.0.0.1 (the default), or pass allow_remote=True if that is meant.",
        )
    uvicorn = _require("uvicorn")
    session = ReviewSession(report_dir, a=a, b=b, seed=seed)
    app = create_app(session, allow_remote=allow_remote)
    return ReviewServer(uvicorn, app, session, host=host, port=port)


def review_main(
    report_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    a: str | None = None,
    b: str | None = None,
    open_browser: bool = True,
    console: Console | None = None,
    seed: int = 0,
    allow_remote: bool = False,
) -> None:
    """The body of `unitune review REPORT_DIR`: serve the page until Ctrl-C, then print the result."""
    if console is None:
        from rich.console import Console

        console = Console()
    with serve_review(
        report_dir, host=host, port=port, a=a, b=b, seed=seed, allow_remote=allow_remote
    ) as server:
        session = server.session
        console.print(
            f"Reviewing {session.a} against {session.b}: {session.rated} of {session.total} examples rated.",
            markup=False,
            soft_wrap=True,
        )
        console.print(
            f"Open {server.url} — every rating is saved as you give it. Ctrl-C to stop.",
            markup=False,
            soft_wrap=True,
        )
        if open_browser:
            webbrowser.open(server.url)
        try:
            server.wait()
        except KeyboardInterrupt:
            console.print()
        a, b = session.a, session.b
    console.print(describe_ratings(summarize_ratings(report_dir, a, b)), markup=False, soft_wrap=True)
