"""The unitune pytest plugin (`unitune.testing.pytest_plugin`), exercised through `pytester`.

Every inner session runs in-process (`runpytest_inprocess`), so the outer `no_real_traffic` stubs
sit underneath the plugin's network guard: even if the guard were broken, no test in this module can
send a packet to a non-loopback address (the stubs raise instead).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from unitune.providers.base import UnknownStatusError, map_status
from unitune.types import JobStatus

pytest_plugins = ["pytester"]

#: What the outer stubs raise for any non-loopback traffic; the guard's own message never says this.
STUB_MESSAGE = "would have sent real traffic"
GUARD_MESSAGE = "unitune network guard"
#: TEST-NET-2 (RFC 5737): documentation-only, never routed. The stubs stop it anyway.
TARGET_HOST = "198.51.100.7"

TINY_JSONL = (
    '{"messages": [{"role": "user", "content": "My order is late"}, '
    '{"role": "assistant", "content": "Sorry! Let me check."}]}\n'
)


# -- safety: no real traffic, whatever the plugin does ------------------------------------------------


def _is_loopback_literal(host: object) -> bool:
    """Only IP literals on loopback count (no name is resolved, not even "localhost")."""
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TrafficStubs:
    connect: Callable[..., Any]
    connect_ex: Callable[..., Any]
    getaddrinfo: Callable[..., Any]


@pytest.fixture(autouse=True)
def no_real_traffic(monkeypatch: pytest.MonkeyPatch) -> TrafficStubs:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return True
        return isinstance(address, tuple) and _is_loopback_literal(address[0])

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(self, address):
            raise AssertionError(f"{STUB_MESSAGE}: connect({address!r})")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(self, address):
            raise AssertionError(f"{STUB_MESSAGE}: connect_ex({address!r})")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback_literal(host):
            raise AssertionError(f"{STUB_MESSAGE}: getaddrinfo({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return TrafficStubs(connect, connect_ex, getaddrinfo)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner sessions read config from their own directory, and wide summary lines are not cut."""
    for name in ("UNITUNE_CONFIG", "UNITUNE_PROVIDER", "UNITUNE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "400")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # In-process on purpose: the outer stubs must stay underneath the guard (see module docstring).
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rA", "--strict-markers", *args)


def _src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


# -- 1 and 2: the unitune_fake fixture -----------------------------------------------------------------

FAKE_TESTS = _src(
    f"""
    import os
    import time
    from pathlib import Path

    import pytest

    import unitune
    from unitune import ConfigurationError, FineTuneClient, JobStatus
    from unitune.config import home_dir
    from unitune.testing import FakeProvider

    TINY_JSONL = {TINY_JSONL!r}


    class DurableFake(FakeProvider):
        ephemeral = False  # like a real vendor: the client records its jobs in the ledger


    def _data(tmp_path: Path, n: int = 10) -> Path:
        # OpenAI, the configured provider, refuses fewer than 10 examples: so does the fake.
        path = tmp_path / "train.jsonl"
        path.write_text(TINY_JSONL * n)
        return path


    def test_from_config_uses_the_fake(unitune_fake, tmp_path: Path) -> None:
        client = FineTuneClient.from_config()
        assert client.config.provider == "openai"
        assert client.provider is unitune_fake
        assert unitune_fake.impersonating == "openai"

        started = time.monotonic()
        job = client.create_job(model="gpt-4o-mini", training_data=_data(tmp_path))
        done = client.wait(job)
        elapsed = time.monotonic() - started

        assert done.status is JobStatus.SUCCEEDED
        assert done.raw_status == "succeeded" and job.raw_status == "validating_files"  # OpenAI's words
        assert done.fine_tuned_model
        creates = unitune_fake.calls_to("create_job")
        assert len(creates) == 1
        assert creates[0].args["model"] == "gpt-4o-mini-2024-07-18"  # the alias, resolved as OpenAI would
        assert len(unitune_fake.calls_to("upload")) == 1
        assert len(unitune_fake.calls_to("get_job")) >= 2

        # Waiting happened on the fake clock: simulated seconds passed, wall time did not.
        assert unitune_fake.clock.sleeps
        assert sum(unitune_fake.clock.sleeps) >= 5
        assert elapsed < 2.0

        # The fake's jobs die with the process, so they stay out of any ledger ...
        assert client.ledger is None
        # ... and the unitune home is a temporary directory inside this test's tmp_path,
        home = Path(os.environ["UNITUNE_HOME"])
        assert home.is_relative_to(tmp_path)
        assert home_dir() == home
        # so a client whose provider is durable writes its ledger there, not in the real home.
        durable = FineTuneClient(DurableFake(clock=unitune_fake.clock))
        durable.create_job(model="gpt-4o-mini", training_data=_data(tmp_path))
        assert durable.ledger is not None
        assert durable.ledger.path == home / "ledger.sqlite3"
        assert durable.ledger.path.is_file()
        assert len(unitune_fake.calls_to("create_job")) == 1  # the durable fake is another instance


    def test_without_the_fixture_the_config_wins(tmp_path: Path) -> None:
        # Runs after the test above: the override must not outlive its fixture.
        provider = FineTuneClient.from_config().provider
        assert not isinstance(provider, FakeProvider)
        assert type(provider).__name__ == "OpenAIProvider"


    def test_what_openai_refuses_fails_under_the_fixture_too(unitune_fake, tmp_path: Path) -> None:
        client = FineTuneClient.from_config()
        with pytest.raises(ConfigurationError, match="does not offer 'llama-3.1-8b-instruct'"):
            client.create_job(model="llama-3.1-8b-instruct", training_data=_data(tmp_path))
        with pytest.raises(unitune.ValidationFailed, match="too_few_examples"):
            client.create_job(model="gpt-4o-mini", training_data=_data(tmp_path, 5))
        assert unitune_fake.calls_to("upload") == []


    def test_fail_next_job_raises_job_failed(unitune_fake, tmp_path: Path) -> None:
        unitune_fake.fail_next_job("oom")
        client = FineTuneClient.from_config()
        job = client.create_job(model="gpt-4o-mini", training_data=_data(tmp_path))
        with pytest.raises(unitune.JobFailedError, match="oom") as info:
            client.wait(job)
        assert info.value.job.status is JobStatus.FAILED
        assert info.value.job.error == "oom"


    def test_fail_next_job_uncaught(unitune_fake, tmp_path: Path) -> None:
        unitune_fake.fail_next_job("oom")
        client = FineTuneClient.from_config()
        client.wait(client.create_job(model="gpt-4o-mini", training_data=_data(tmp_path)))
    """
)


def test_unitune_fake_routes_from_config_to_the_fake(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_home = tmp_path / "real-unitune-home"
    monkeypatch.setenv("UNITUNE_HOME", str(real_home))
    pytester.makefile(".toml", unitune='provider = "openai"\n')
    pytester.makepyfile(test_plugin_inner_fake=FAKE_TESTS)

    basetemp = tmp_path / "inner-basetemp"
    result = _run(pytester, f"--basetemp={basetemp}")

    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "PASSED test_plugin_inner_fake.py::test_from_config_uses_the_fake",
            "PASSED test_plugin_inner_fake.py::test_without_the_fixture_the_config_wins",
            "PASSED test_plugin_inner_fake.py::test_what_openai_refuses_fails_under_the_fixture_too",
            "PASSED test_plugin_inner_fake.py::test_fail_next_job_raises_job_failed",
            "FAILED test_plugin_inner_fake.py::test_fail_next_job_uncaught - "
            "unitune.errors.JobFailedError: Fine-tuning job ftjob-fake-* on 'openai' ended failed: oom",
        ],
        consecutive=False,
    )
    # The real home was never touched; the fixture's temporary one was used and then restored.
    assert not real_home.exists()
    assert os.environ["UNITUNE_HOME"] == str(real_home)
    ledgers = list(basetemp.rglob("ledger.sqlite3"))
    assert len(ledgers) == 1, "the durable client's ledger should be under the inner tmp_path"
    assert ledgers[0].parent.name == "unitune-home"


def test_unitune_fake_reaches_clients_built_in_worker_threads(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", unitune='provider = "together"\n')
    pytester.makepyfile(
        test_plugin_inner_threads=_src(
            """
            from concurrent.futures import ThreadPoolExecutor

            from unitune import FineTuneClient


            def test_client_in_a_worker_thread(unitune_fake) -> None:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    client = pool.submit(FineTuneClient.from_config).result()
                assert client.provider is unitune_fake
            """
        )
    )
    _run(pytester).assert_outcomes(passed=1)


# -- 3: the network guard ------------------------------------------------------------------------------

GUARD_TESTS = """
import socket

import pytest

TARGET = ({host!r}, 443)

{mark}
def test_create_connection() -> None:
    socket.create_connection(TARGET, timeout=1)

{mark}
def test_raw_connect() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect(TARGET)

{mark}
def test_raw_connect_ex() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect_ex(TARGET)

{mark}
def test_swallowed() -> None:
    # An SDK that catches connection errors and carries on: the guard must still fail the test.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(TARGET)
        except Exception:
            pass
"""

LOOPBACK_TEST = """
{mark}
def test_loopback_allowed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = server.accept()
            conn.close()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            assert sock.connect_ex(("127.0.0.1", port)) == 0
            server.accept()[0].close()
"""

UNGUARDED_TESTS = f"""
import socket

import pytest

TARGET = ({TARGET_HOST!r}, 443)


def test_create_connection_reaches_the_stub() -> None:
    with pytest.raises(AssertionError, match={STUB_MESSAGE!r}):
        socket.create_connection(TARGET, timeout=1)


def test_raw_connect_reaches_the_stub() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(AssertionError, match={STUB_MESSAGE!r}):
            sock.connect(TARGET)
"""


GUARDED = "test_plugin_inner_guarded.py"


def _assert_stubs_restored(stubs: TrafficStubs) -> None:
    # The guard undid its patches: what is left underneath is the outer stubs, untouched.
    assert socket.socket.connect is stubs.connect
    assert socket.socket.connect_ex is stubs.connect_ex
    assert socket.getaddrinfo is stubs.getaddrinfo


@pytest.mark.parametrize("how", ["flag", "ini", "marker"])
def test_network_guard_opt_in(pytester: pytest.Pytester, no_real_traffic: TrafficStubs, how: str) -> None:
    mark = "@pytest.mark.unitune_block_network" if how == "marker" else ""
    pytester.makepyfile(
        test_plugin_inner_guarded=GUARD_TESTS.format(host=TARGET_HOST, mark=mark)
        + LOOPBACK_TEST.format(mark=mark)
    )
    args: list[str] = []
    if how == "flag":
        args.append("--unitune-block-network")
    elif how == "ini":
        pytester.makeini("[pytest]\nunitune_block_network = true\n")
    else:
        # With the marker, an unmarked test in the same session is not guarded.
        pytester.makepyfile(test_plugin_inner_unmarked=UNGUARDED_TESTS)

    result = _run(pytester, *args)

    unmarked = 2 if how == "marker" else 0
    # Each test that reached for TARGET fails once: in its call when the guard's error escaped,
    # at teardown only when the test swallowed it (as SDKs that retry connection errors do).
    result.assert_outcomes(passed=2 + unmarked, failed=3, errors=1)
    for name in ("test_create_connection", "test_raw_connect", "test_raw_connect_ex"):
        result.stdout.no_fnmatch_line(f"ERROR {GUARDED}::{name} *")
    result.stdout.fnmatch_lines(
        [
            f"ERROR {GUARDED}::test_swallowed - Failed: {GUARD_MESSAGE}: "
            f"the test tried to reach {TARGET_HOST}:443",
            f"FAILED {GUARDED}::test_create_connection - *RealNetworkCallError: {GUARD_MESSAGE}: "
            f"this test tried to resolve '{TARGET_HOST}'.",
            f"FAILED {GUARDED}::test_raw_connect - *RealNetworkCallError: {GUARD_MESSAGE}: "
            f"this test tried to connect to {TARGET_HOST}:443.*",
            f"FAILED {GUARDED}::test_raw_connect_ex - *RealNetworkCallError: {GUARD_MESSAGE}: "
            f"this test tried to connect to {TARGET_HOST}:443.*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines([f"PASSED {GUARDED}::test_loopback_allowed"], consecutive=False)
    result.stdout.no_fnmatch_line("*test_loopback_allowed - *")  # no failure nor teardown error
    # The guard intercepted before the stubs underneath it were ever reached.
    assert STUB_MESSAGE not in result.stdout.str()
    if how == "marker":
        result.stdout.fnmatch_lines(
            [
                "PASSED test_plugin_inner_unmarked.py::test_create_connection_reaches_the_stub",
                "PASSED test_plugin_inner_unmarked.py::test_raw_connect_reaches_the_stub",
            ],
            consecutive=False,
        )
    _assert_stubs_restored(no_real_traffic)


def test_network_guard_off_by_default(pytester: pytest.Pytester, no_real_traffic: TrafficStubs) -> None:
    pytester.makepyfile(test_plugin_inner_unguarded=UNGUARDED_TESTS + LOOPBACK_TEST.format(mark=""))

    result = _run(pytester)

    result.assert_outcomes(passed=3)
    assert GUARD_MESSAGE not in result.stdout.str()
    _assert_stubs_restored(no_real_traffic)


def test_network_guard_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["@pytest.mark.unitune_block_network: fail the test if it opens a*"])


# -- 4: strict statuses --------------------------------------------------------------------------------


def test_strict_status_while_pytest_runs() -> None:
    assert os.environ["UNITUNE_STRICT_STATUS"] == "1"
    with pytest.raises(UnknownStatusError, match="'warming_up'") as info:
        map_status("acme", "warming_up", {"done": JobStatus.SUCCEEDED})
    assert info.value.provider == "acme"
    assert map_status("acme", "done", {"done": JobStatus.SUCCEEDED}) is JobStatus.SUCCEEDED


def test_unknown_status_outside_strict_mode_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("UNITUNE_STRICT_STATUS")
    with caplog.at_level(logging.WARNING, logger="unitune"):
        status = map_status("acme", "warming_up", {"done": JobStatus.SUCCEEDED})
    assert status is JobStatus.RUNNING
    warnings = [r for r in caplog.records if r.name == "unitune" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "acme" in warnings[0].getMessage()
    assert "'warming_up'" in warnings[0].getMessage()


STRICT_INNER = """
import os

import pytest

from unitune.providers.base import UnknownStatusError, map_status
from unitune.types import JobStatus


def test_env() -> None:
    assert os.environ.get("UNITUNE_STRICT_STATUS") == {expected!r}
    if {expected!r} == "1":
        with pytest.raises(UnknownStatusError):
            map_status("acme", "warming_up", {{}})
    else:
        assert map_status("acme", "warming_up", {{}}) is JobStatus.RUNNING
"""


def test_plugin_sets_strict_status(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNITUNE_STRICT_STATUS")
    pytester.makepyfile(test_plugin_inner_strict=STRICT_INNER.format(expected="1"))
    _run(pytester).assert_outcomes(passed=1)


def test_plugin_keeps_an_explicit_strict_status(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNITUNE_STRICT_STATUS", "0")
    pytester.makepyfile(test_plugin_inner_strict=STRICT_INNER.format(expected="0"))
    _run(pytester).assert_outcomes(passed=1)


# -- loading the plugin --------------------------------------------------------------------------------


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, unitune.testing.pytest_plugin\n"
        "heavy = sorted(m for m in ('unitune.client', 'unitune.ledger', 'unitune.providers.fake', "
        "'pydantic', 'sqlite3') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_blocked_host_fails_at_once_through_the_client(
    pytester: pytest.Pytester, no_real_traffic: TrafficStubs
) -> None:
    # An SDK may wrap the guard's refusal in its connection error, which unitune sees as transient:
    # retrying it (5 attempts, ~16 s of backoff) would only delay the same answer.
    pytester.makepyfile(
        test_plugin_inner_client=_src(
            f"""
            import time

            import pytest

            from unitune import FineTuneClient


            @pytest.mark.unitune_block_network
            @pytest.mark.parametrize("provider", ["openai", "together", "mistral"])
            def test_list_jobs(provider: str) -> None:
                client = FineTuneClient(provider, api_key="sk-x", base_url="https://{TARGET_HOST}/v1", ledger=False)
                started = time.monotonic()
                try:
                    client.list_jobs()
                finally:
                    print(f"ELAPSED {{provider}} {{time.monotonic() - started:.2f}}")
            """
        )
    )
    result = _run(pytester)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0
    assert outcomes.get("failed", 0) == 3
    text = result.stdout.str()
    elapsed = re.findall(r"ELAPSED (\w+) ([0-9.]+)", text)
    assert {p for p, _ in elapsed} == {"mistral", "openai", "together"}
    assert all(float(t) < 3 for _, t in elapsed), elapsed
    assert f"{GUARD_MESSAGE}: this test tried to resolve '{TARGET_HOST}'" in text
    assert "attempt 2 of" not in text
    _assert_stubs_restored(no_real_traffic)
