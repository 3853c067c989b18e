"""`unitune review` in a real browser: Debian's headless Chromium, driven by Selenium.

Keys pressed on the page save ratings, progress follows, a reload keeps the example and its sides,
and a server stopped and started again on the same directory resumes at the next unrated example.

Skipped when Chromium or ChromeDriver is missing (`make test` installs both from Debian's packages),
except under CI, where a skipped browser test would hide a broken page.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.evaluate.test_review import BASE, TUNED, write_report_dir
from unitune.evaluate._review import serve_review

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 10


def _missing(why: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must run the browser test (make test installs chromium and chromium-driver).")
    pytest.skip(f"{why}: apt-get install chromium chromium-driver (make test does) to run the browser test.")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            _missing(f"{path} is missing")
    options = webdriver.ChromeOptions()
    # Explicit paths for both, so Selenium Manager never looks for (or downloads) a browser.
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # for get_log("browser")
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    browser.set_page_load_timeout(WAIT_S)
    try:
        yield browser
    finally:
        browser.quit()


def wait_for(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.02).until(lambda d: condition(d), message=what)


def text(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').textContent"))


def idle(driver: Any) -> bool:
    return bool(driver.execute_script("return document.body.dataset.busy === '0'"))


def press(driver: Any, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def showing(driver: Any, position: int, rated: int, total: int = 5) -> dict[str, str]:
    """Wait until the page, idle, shows `position` with `rated` rated; its answers by side."""
    wait_for(
        driver,
        lambda d: (
            idle(d)
            and text(d, "progress-text") == f"{rated} / {total} rated"
            and d.execute_script("return document.getElementById('item').dataset.position") == str(position)
            and not d.execute_script("return document.getElementById('item').hidden")
        ),
        f"example {position + 1} shown with {rated} rated",
    )
    return {"left": text(driver, "answer-left"), "right": text(driver, "answer-right")}


def winner(sides: dict[str, str], side: str) -> str:
    return TUNED if sides[side].startswith("alpha") else BASE


def test_keys_rate_progress_survives_reload_and_a_restart_resumes(driver: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    from selenium.webdriver.common.keys import Keys

    directory = write_report_dir(tmp_path / "report", n=5)
    expected: list[tuple[int, str, str]] = []  # (index, stored choice, candidate on the left)

    def rated(position: int, sides: dict[str, str], key: str) -> None:
        side = {"a": "left", "b": "right"}.get(key)
        choice = {"t": "tie", "x": "both_bad"}.get(key) or (
            "a" if winner(sides, side or "") == TUNED else "b"
        )
        expected.append((position, choice, winner(sides, "left")))

    with serve_review(directory, seed=11) as server:
        driver.get(server.url)
        sides = showing(driver, 0, rated=0)
        assert {sides["left"], sides["right"]} == {"alpha 0", "beta 0"}
        assert "question 0" in text(driver, "prompt")
        page = driver.page_source
        assert TUNED not in page
        assert BASE not in page

        for position, key in enumerate("abt"):
            sides = showing(driver, position, rated=position)
            press(driver, key)
            rated(position, sides, key)
        sides = showing(driver, 3, rated=3)

        # r shows the reference, and hides it again.
        assert not driver.find_element("id", "reference-box").is_displayed()
        press(driver, "r")
        wait_for(
            driver, lambda d: d.find_element("id", "reference-box").is_displayed(), "the reference shown"
        )
        assert text(driver, "reference") == "reference 3"
        wait_for(driver, idle, "idle")
        press(driver, "r")
        wait_for(
            driver, lambda d: not d.find_element("id", "reference-box").is_displayed(), "reference hidden"
        )
        wait_for(driver, idle, "idle")

        # A reload: same example, same sides, progress kept.
        driver.refresh()
        assert showing(driver, 3, rated=3) == sides

        # Back (k, ←) to a rated example, which shows its rating; forward (j, →) again.
        press(driver, "k")
        showing(driver, 2, rated=3)
        assert text(driver, "item-rating") == "Rated: Tie"
        press(driver, Keys.ARROW_LEFT)
        showing(driver, 1, rated=3)
        press(driver, Keys.ARROW_RIGHT)
        showing(driver, 2, rated=3)
        press(driver, "j")
        showing(driver, 3, rated=3)

    # The server is gone (as after a crash); a new one on the same directory, on another port,
    # starts at the first unrated example with the same sides.
    with serve_review(directory, seed=11) as server:
        driver.get(server.url)
        assert showing(driver, 3, rated=3) == sides
        press(driver, "x")
        rated(3, sides, "x")
        sides = showing(driver, 4, rated=4)
        driver.find_element("id", "rate-left").click()  # the buttons do what the keys do
        rated(4, sides, "a")
        wait_for(driver, lambda d: idle(d) and d.find_element("id", "done").is_displayed(), "the end screen")
        assert text(driver, "progress-text") == "5 / 5 rated"
        assert text(driver, "done-summary") == "All 5 examples rated (1 tie, 1 both bad)."

    saved = [json.loads(line) for line in (directory / "ratings.jsonl").read_text().splitlines()]
    assert [(r["index"], r["choice"], r["left"]) for r in saved] == expected
    assert all((r["a"], r["b"]) == (TUNED, BASE) for r in saved)
    assert time.monotonic() - started < 20


def test_html_in_a_prompt_is_shown_as_text(driver: Any, tmp_path: Path) -> None:
    hostile = (
        '<img id="pwned" src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    )
    directory = write_report_dir(tmp_path / "report", n=2, prompts={0: hostile})
    with serve_review(directory) as server:
        driver.get(server.url)
        showing(driver, 0, rated=0, total=2)
        assert hostile in text(driver, "prompt")
        assert driver.find_elements("id", "pwned") == []
        assert driver.title == "unitune review"
        # The console has no CSP violation or script error: the page's own script is the only one.
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == []
