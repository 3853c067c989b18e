"""`unitune review` without a browser: the session, the JSON API, the saved ratings and the summary.

The report directories are written here by hand in the layout `unitune evaluate` writes
(report.json, examples.jsonl, answers/<slug>.jsonl), so these tests do not depend on an evaluation.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from unitune.errors import ConfigurationError
from unitune.evaluate import _review
from unitune.evaluate._report import CandidateResult, EvaluationReport, Role, Verdict
from unitune.evaluate._review import (
    ReviewSession,
    create_app,
    describe_ratings,
    review_main,
    serve_review,
    summarize_ratings,
)

TUNED = "Zephyr-Tuned"
BASE = "Orca-Baseline"
#: Everything that would tell the reviewer which answer is whose.
SECRETS = (TUNED, BASE, "zephyr_tuned", "orca_base", "ft:zephyr-7b:acme", "orca-2-13b")


def candidate(name: str, slug: str, model: str, role: Role) -> CandidateResult:
    return CandidateResult(name=name, slug=slug, provider="local", model=model, role=role, metrics={})


def write_report_dir(
    directory: Path,
    *,
    n: int = 6,
    candidates: Sequence[CandidateResult] | None = None,
    verdict: tuple[str | None, str | None] = (TUNED, BASE),
    answers: dict[str, Sequence[dict[str, Any]]] | None = None,
    prompts: dict[int, str] | None = None,
) -> Path:
    """A report directory as `unitune evaluate` leaves it: `n` examples, both candidates answered.

    The tuned model answers "alpha <i>", the baseline "beta <i>", so a test can tell the sides
    apart by the text while the page cannot tell the candidates apart by anything else.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if candidates is None:
        candidates = [
            candidate(BASE, "orca_base", "orca-2-13b", "baseline"),
            candidate(TUNED, "zephyr_tuned", "ft:zephyr-7b:acme", "tuned"),
        ]
    report = EvaluationReport(
        examples=n,
        metrics=["exact_match"],
        primary_metric="exact_match",
        candidates=list(candidates),
        verdict=Verdict(
            decision="ship", candidate=verdict[0], baseline=verdict[1], metric="exact_match", reason="better"
        ),
    )
    (directory / "report.json").write_text(report.model_dump_json(indent=2))
    prompts = prompts or {}
    examples = [
        {
            "index": i,
            "line": i + 1,
            "prompt": [
                {"role": "system", "content": "You answer tickets."},
                {"role": "user", "content": prompts.get(i, f"question {i}")},
            ],
            "reference": f"reference {i}",
        }
        for i in range(n)
    ]
    (directory / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    if answers is None:
        answers = {
            "zephyr_tuned": [answer(i, f"alpha {i}") for i in range(n)],
            "orca_base": [answer(i, f"beta {i}") for i in range(n)],
        }
    (directory / "answers").mkdir(exist_ok=True)
    for slug, rows in answers.items():
        (directory / "answers" / f"{slug}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


def answer(index: int, content: str | None, error: str | None = None) -> dict[str, Any]:
    return {
        "index": index,
        "content": content,
        "error": error,
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "latency_ms": 12.5,
    }


def ratings(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / "ratings.jsonl").read_text().splitlines()]


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    return write_report_dir(tmp_path / "report", n=20)


@pytest.fixture
def client(report_dir: Path) -> Iterator[TestClient]:
    # A loopback base URL: the app refuses any other Host header.
    with TestClient(create_app(ReviewSession(report_dir)), base_url="http://127.0.0.1") as c:
        yield c


def left_is_tuned(item: dict[str, Any]) -> bool:
    return bool(item["answers"]["left"].startswith("alpha"))


# -- sides -------------------------------------------------------------------------------------------


def test_sides_are_random_per_example_but_the_same_every_time(report_dir: Path) -> None:
    session = ReviewSession(report_dir, seed=7)
    sides = [session.item(p).left for p in range(session.total)]
    assert sides == [ReviewSession(report_dir, seed=7).item(p).left for p in range(session.total)]
    assert set(sides) == {TUNED, BASE}, "20 examples in one fixed order would not be random"
    assert sides != [ReviewSession(report_dir, seed=8).item(p).left for p in range(session.total)]
    for p in range(session.total):
        item = session.item(p)
        assert {item.left, item.right} == {TUNED, BASE}
        assert item.left_answer == ("alpha" if item.left == TUNED else "beta") + f" {item.index}"


def test_the_api_shows_the_same_sides_on_every_request(client: TestClient) -> None:
    first = [client.get(f"/api/items/{p}").json()["answers"] for p in range(20)]
    assert first == [client.get(f"/api/items/{p}").json()["answers"] for p in range(20)]


def test_the_default_pair_is_the_verdicts_candidate_against_its_baseline(tmp_path: Path) -> None:
    session = ReviewSession(write_report_dir(tmp_path / "r"))
    assert (session.a, session.b) == (TUNED, BASE)
    # Without a verdict's names: the first tuned candidate against the first baseline.
    session = ReviewSession(write_report_dir(tmp_path / "s", verdict=(None, None)))
    assert (session.a, session.b) == (TUNED, BASE)
    swapped = ReviewSession(tmp_path / "r", a=BASE, b=TUNED)
    assert (swapped.a, swapped.b) == (BASE, TUNED)
    # Naming only a: b is the other one, even when the verdict's baseline is a.
    assert ReviewSession(tmp_path / "r", a=BASE).b == TUNED


# -- anonymity and escaping ----------------------------------------------------------------------------


def test_the_page_is_self_contained_and_names_no_candidate(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for secret in SECRETS:
        assert secret not in page
    # No external asset of any kind: nothing loaded by URL, and a CSP that forbids it anyway.
    assert "http://" not in page
    assert "https://" not in page
    assert "//" + "cdn" not in page
    assert "<link" not in page
    assert " src=" not in page
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    # Data is rendered as text only.
    assert "innerHTML" not in page
    assert "insertAdjacentHTML" not in page
    assert "document.write" not in page
    assert response.headers["cache-control"] == "no-store"


def test_the_api_never_names_a_candidate(client: TestClient) -> None:
    bodies = [client.get("/api/progress").text, client.get("/api/next").text]
    for p in range(20):
        bodies.append(client.get(f"/api/items/{p}").text)
        bodies.append(client.get(f"/api/items/{p}/reference").text)
        bodies.append(client.post(f"/api/items/{p}/rating", json={"choice": "left"}).text)
        bodies.append(client.get(f"/api/items/{p}").text)  # rated now: the rating is by side
    bodies.append(client.get("/api/next").text)  # the end screen's summary
    for body in bodies:
        for secret in SECRETS:
            assert secret not in body, body


def test_html_in_a_prompt_is_data_not_markup(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    directory = write_report_dir(tmp_path / "r", prompts={0: hostile})
    with TestClient(create_app(ReviewSession(directory)), base_url="http://127.0.0.1") as client:
        assert hostile not in client.get("/").text
        response = client.get("/api/items/0")
        assert response.headers["content-type"] == "application/json"
        assert response.json()["prompt"][1]["content"] == hostile


# -- saving ---------------------------------------------------------------------------------------------


def test_a_rating_is_saved_fsynced_and_mapped_back_to_the_candidates(
    client: TestClient, report_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    item = client.get("/api/items/0").json()
    response = client.post("/api/items/0/rating", json={"choice": "left"})
    assert response.status_code == 200
    assert response.json() == {"rating": "left", "progress": {"rated": 1, "total": 20}, "next": 1}
    assert synced, "the rating must be fsynced before the page hears it is saved"
    [record] = ratings(report_dir)
    winner = TUNED if left_is_tuned(item) else BASE
    assert record["index"] == item["index"] == 0
    assert (record["a"], record["b"]) == (TUNED, BASE)
    assert record["choice"] == ("a" if winner == TUNED else "b")
    assert record["left"] == winner
    assert record["at"].endswith("Z")
    assert record["at"][:4].isdigit()

    client.post("/api/items/1/rating", json={"choice": "right"})
    client.post("/api/items/2/rating", json={"choice": "tie"})
    client.post("/api/items/3/rating", json={"choice": "both_bad"})
    records = ratings(report_dir)
    right_1 = TUNED if not left_is_tuned(client.get("/api/items/1").json()) else BASE
    assert records[1]["choice"] == ("a" if right_1 == TUNED else "b")
    assert [r["choice"] for r in records[2:]] == ["tie", "both_bad"]
    assert client.get("/api/items/1").json()["rating"] == "right"


def test_the_last_rating_of_an_example_wins(client: TestClient, report_dir: Path) -> None:
    tuned_side = "left" if left_is_tuned(client.get("/api/items/4").json()) else "right"
    base_side = "right" if tuned_side == "left" else "left"
    client.post("/api/items/4/rating", json={"choice": tuned_side})
    client.post("/api/items/4/rating", json={"choice": base_side})
    assert [r["choice"] for r in ratings(report_dir)] == ["a", "b"]
    assert client.get("/api/items/4").json()["rating"] == base_side
    assert client.get("/api/progress").json() == {"rated": 1, "total": 20}
    result = summarize_ratings(report_dir, TUNED, BASE)
    assert (result.a_wins, result.b_wins, result.rated) == (0, 1, 1)


def test_a_new_session_resumes_where_the_last_one_stopped(client: TestClient, report_dir: Path) -> None:
    for p in (0, 1, 2, 5):
        client.post(f"/api/items/{p}/rating", json={"choice": "tie"})
    session = ReviewSession(report_dir)
    assert (session.rated, session.total) == (4, 20)
    assert session.next_unrated() == 3
    assert session.next_unrated(after=3) == 4
    assert session.rating(5) == "tie"
    assert session.rating(3) is None
    with TestClient(create_app(session), base_url="http://127.0.0.1") as again:
        assert again.get("/api/next").json()["position"] == 3
        assert again.get("/api/next?after=4").json()["position"] == 6


def test_ratings_of_another_pair_do_not_count(client: TestClient, report_dir: Path) -> None:
    client.post("/api/items/0/rating", json={"choice": "tie"})
    swapped = ReviewSession(report_dir, a=BASE, b=TUNED)
    assert swapped.rated == 0


def test_a_torn_last_line_is_skipped_and_the_next_rating_starts_a_new_line(report_dir: Path) -> None:
    path = report_dir / "ratings.jsonl"
    good = {"index": 0, "a": TUNED, "b": BASE, "choice": "a", "left": TUNED, "at": "2025-01-01T00:00:00Z"}
    path.write_text(json.dumps(good) + "\n" + '{"index": 1, "a": "Zeph')  # killed mid-write
    session = ReviewSession(report_dir)
    assert session.rated == 1
    assert session.next_unrated() == 1
    session.rate(1, "tie")
    lines = path.read_text().splitlines()
    assert lines[1] == '{"index": 1, "a": "Zeph'
    assert json.loads(lines[2])["choice"] == "tie"
    assert ReviewSession(report_dir).rated == 2


def test_next_wraps_round_and_is_none_when_all_are_rated(client: TestClient) -> None:
    for p in range(19):
        client.post(f"/api/items/{p}/rating", json={"choice": "tie" if p % 2 else "both_bad"})
    assert client.post("/api/items/0/rating", json={"choice": "tie"}).json()["next"] == 19
    done = client.post("/api/items/19/rating", json={"choice": "left"}).json()
    assert done["next"] is None
    assert done["progress"] == {"rated": 20, "total": 20}
    body = client.get("/api/next").json()
    assert body["position"] is None
    assert body["summary"] == {"rated": 20, "total": 20, "ties": 10, "both_bad": 9}


def test_bad_requests_are_refused(client: TestClient) -> None:
    assert client.get("/api/items/20").status_code == 404
    assert client.get("/api/items/20/reference").status_code == 404
    assert client.post("/api/items/20/rating", json={"choice": "tie"}).status_code == 404
    assert client.post("/api/items/0/rating", json={"choice": "A"}).status_code == 422
    assert client.post("/api/items/0/rating", json={"choice": "tie", "who": TUNED}).status_code == 422
    # A cross-site form can post text/plain without asking; the server wants JSON only.
    plain = client.post(
        "/api/items/0/rating", content='{"choice": "tie"}', headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 415
    assert client.get("/api/progress").json()["rated"] == 0


def test_a_foreign_host_header_is_refused(report_dir: Path) -> None:
    # A page that rebinds its own DNS name to 127.0.0.1 sends its own name as the Host.
    app = create_app(ReviewSession(report_dir))
    with TestClient(app, base_url="http://attacker.example") as client:
        assert client.get("/api/items/0").status_code == 400
    with TestClient(app, base_url="http://localhost:8080") as client:
        assert client.get("/api/items/0").status_code == 200
    with TestClient(app, base_url="http://[::1]:8080") as client:
        assert client.get("/api/items/0").status_code == 200


def test_the_reference_comes_only_when_asked(client: TestClient) -> None:
    item = client.get("/api/items/3").json()
    assert "reference 3" not in json.dumps(item)
    assert client.get("/api/items/3/reference").json() == {"reference": "reference 3"}


# -- what is shown --------------------------------------------------------------------------------------


def test_only_examples_answered_by_both_are_shown_and_the_last_answer_wins(tmp_path: Path) -> None:
    answers = {
        "zephyr_tuned": [
            answer(0, "alpha 0"),
            answer(1, None, error="timeout"),
            answer(2, "alpha 2 (first try)"),
            answer(3, "alpha 3"),
            answer(2, "alpha 2"),  # a resumed run answered again
            answer(3, None, error="rate limited"),  # a failed retry does not erase an answer
        ],
        "orca_base": [answer(i, f"beta {i}") for i in (0, 1, 2, 3)] + [answer(4, "beta 4")],
    }
    session = ReviewSession(write_report_dir(tmp_path / "r", n=5, answers=answers))
    assert session.total == 3
    shown = [session.item(p) for p in range(3)]
    assert [item.index for item in shown] == [0, 2, 3]
    assert [item.line for item in shown] == [1, 3, 4]
    tuned = [item.left_answer if item.left == TUNED else item.right_answer for item in shown]
    assert tuned == ["alpha 0", "alpha 2", "alpha 3"]


# -- the summary ----------------------------------------------------------------------------------------


def wilson_by_hand(successes: float, n: int) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.975)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - spread, centre + spread


def test_summary_counts_the_last_rating_per_example_and_gives_a_wilson_interval(tmp_path: Path) -> None:
    directory = write_report_dir(tmp_path / "r")
    choices = ["a"] * 9 + ["b"] * 3 + ["tie"] * 2 + ["both_bad"]
    rows = [{"index": i, "a": TUNED, "b": BASE, "choice": c} for i, c in enumerate(choices)]
    rows.insert(0, {"index": 14, "a": TUNED, "b": BASE, "choice": "a"})  # overridden by both_bad
    rows.insert(0, {"index": 0, "a": TUNED, "b": BASE, "choice": "b"})  # overridden by a
    rows.append({"index": 99, "a": BASE, "b": TUNED, "choice": "a"})  # another pair
    rows.append({"index": 98, "a": TUNED, "b": BASE, "choice": "maybe"})  # not a choice
    (directory / "ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    result = summarize_ratings(directory, TUNED, BASE)
    assert (result.a_wins, result.b_wins, result.ties, result.both_bad, result.rated) == (9, 3, 2, 1, 15)
    assert result.win_rate == pytest.approx(10 / 14)  # (9 + 2/2) / (9 + 3 + 2)
    low, high = wilson_by_hand(10, 14)
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    assert (round(low, 2), round(high, 2)) == (0.45, 0.88)
    assert describe_ratings(result) == (
        f"{TUNED} vs {BASE}: 15 rated, {TUNED} wins 9, loses 3, 2 ties, 1 both bad; win rate 0.71 [0.45, 0.88]"
    )
    wider = summarize_ratings(directory, TUNED, BASE, confidence=0.99)
    assert wider.low is not None
    assert wider.low < low


def test_summary_without_ratings_has_no_rate(tmp_path: Path) -> None:
    directory = write_report_dir(tmp_path / "r")
    result = summarize_ratings(directory, TUNED, BASE)
    assert result.rated == 0
    assert result.win_rate is None
    assert result.low is None
    assert result.high is None
    assert describe_ratings(result) == f"{TUNED} vs {BASE}: nothing rated yet"
    (directory / "ratings.jsonl").write_text(
        json.dumps({"index": 0, "a": TUNED, "b": BASE, "choice": "both_bad"})
    )
    result = summarize_ratings(directory, TUNED, BASE)
    assert (result.both_bad, result.win_rate) == (1, None)
    assert describe_ratings(result).endswith("no win rate (every rating was 'both bad')")


# -- errors ---------------------------------------------------------------------------------------------


def _one_candidate(d: Path) -> None:
    write_report_dir(d, candidates=[candidate(TUNED, "zephyr_tuned", "m", "tuned")], verdict=(TUNED, None))


def _no_common_answer(d: Path) -> None:
    write_report_dir(
        d,
        answers={
            "zephyr_tuned": [answer(0, "alpha 0"), answer(1, None, error="boom")],
            "orca_base": [answer(1, "beta 1")],
        },
    )


def _no_answers_for_one(d: Path) -> None:
    write_report_dir(d)
    (d / "answers" / "orca_base.jsonl").unlink()


def _broken_report(d: Path) -> None:
    write_report_dir(d)
    (d / "report.json").write_text('{"examples": 3}')


def _not_json_report(d: Path) -> None:
    write_report_dir(d)
    (d / "report.json").write_text("<html>")


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        (lambda d: None, {}, "does not exist"),
        (lambda d: d.write_text("x"), {}, "is not a directory"),
        (lambda d: d.mkdir(), {}, "has no report.json"),
        (_broken_report, {}, "is not an evaluation report"),
        (_not_json_report, {}, "is not an evaluation report"),
        (lambda d: (write_report_dir(d), (d / "examples.jsonl").unlink()), {}, "has no examples.jsonl"),
        (write_report_dir, {"a": "gpt-9"}, "no candidate called 'gpt-9'"),
        (write_report_dir, {"b": "gpt-9"}, "no candidate called 'gpt-9'"),
        (write_report_dir, {"a": TUNED, "b": TUNED}, "Both sides are"),
        (_one_candidate, {}, "has 1 candidate"),
        (_no_common_answer, {}, "has an answer from both"),
        (_no_answers_for_one, {}, "has an answer from both"),
    ],
    ids=[
        "missing-dir", "file-not-dir", "no-report", "invalid-report", "not-json", "no-examples",
        "unknown-a", "unknown-b", "same-pair", "one-candidate", "no-common-answer", "no-answers-file",
    ],
)  # fmt: skip
def test_configuration_errors_say_what_to_do(
    tmp_path: Path, setup: Any, kwargs: dict[str, str], message: str
) -> None:
    directory = tmp_path / "report"
    setup(directory)
    with pytest.raises(ConfigurationError, match=message) as caught:
        ReviewSession(directory, **kwargs)
    assert caught.value.fix
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_report_is_a_configuration_error(report_dir: Path) -> None:
    (report_dir / "report.json").chmod(0)
    try:
        with pytest.raises(ConfigurationError, match="Cannot read"):
            ReviewSession(report_dir)
    finally:
        (report_dir / "report.json").chmod(0o644)


def test_summarize_ratings_of_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        summarize_ratings(tmp_path / "nowhere", TUNED, BASE)


def test_without_fastapi_the_fix_is_the_eval_extra(report_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # an import of it now raises ImportError
    with pytest.raises(ConfigurationError, match="fastapi") as caught:
        create_app(ReviewSession(report_dir))
    assert caught.value.fix == "Install it with: pip install 'unitune[eval]'"


def test_a_non_loopback_host_is_refused_unless_allowed(report_dir: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.com"):
        with pytest.raises(ConfigurationError, match="other machines"):
            serve_review(report_dir, host=host)


# -- served for real --------------------------------------------------------------------------------------


def test_serve_review_binds_a_free_port_on_loopback_and_stops(report_dir: Path) -> None:
    with serve_review(report_dir, port=0, seed=3) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert server.running
        assert "Answer A" in httpx.get(server.url).text
        item = httpx.get(server.url + "api/items/0").json()
        saved = httpx.post(server.url + "api/items/0/rating", json={"choice": "right"})
        assert saved.json()["progress"]["rated"] == 1
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, timeout=2)
    [record] = ratings(report_dir)
    assert record["choice"] == ("b" if left_is_tuned(item) else "a")


def test_a_port_in_use_is_a_configuration_error(report_dir: Path) -> None:
    with serve_review(report_dir) as server, pytest.raises(ConfigurationError, match="Cannot listen"):
        serve_review(report_dir, port=server.port)


def test_review_main_serves_until_ctrl_c_and_prints_the_result(
    report_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def open_and_rate(url: str) -> bool:
        # The reviewer: tuned wins two, loses one, one tie; then Ctrl-C.
        opened.append(url)
        for p in range(4):
            item = httpx.get(f"{url}api/items/{p}").json()
            tuned, base = ("left", "right") if left_is_tuned(item) else ("right", "left")
            choice = [tuned, tuned, base, "tie"][p]
            httpx.post(f"{url}api/items/{p}/rating", json={"choice": choice}).raise_for_status()
        return True

    def ctrl_c(self: _review.ReviewServer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_review.webbrowser, "open", open_and_rate)
    monkeypatch.setattr(_review.ReviewServer, "wait", ctrl_c)
    out = io.StringIO()
    review_main(
        report_dir, host="127.0.0.1", port=0, a=None, b=None, open_browser=True, console=Console(file=out)
    )
    text = out.getvalue()
    assert len(opened) == 1
    assert opened[0] in text
    assert f"Reviewing {TUNED} against {BASE}: 0 of 20 examples rated." in text
    low, high = wilson_by_hand(2.5, 4)
    assert (
        f"{TUNED} vs {BASE}: 4 rated, {TUNED} wins 2, loses 1, 1 tie; win rate 0.62 [{low:.2f}, {high:.2f}]"
        in text
    )
    with pytest.raises(httpx.ConnectError):
        httpx.get(opened[0], timeout=2)
