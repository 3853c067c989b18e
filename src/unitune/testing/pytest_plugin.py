"""The unitune pytest plugin, loaded automatically where unitune is installed (entry point `pytest11`).

- `unitune_fake`: a `FakeProvider` that every `FineTuneClient` in the test uses, whatever provider
  the config names, with a `FakeClock` and a temporary unitune home (the real ledger is untouched).
- Network guard (opt-in): `--unitune-block-network`, the ini option `unitune_block_network = true`,
  or `@pytest.mark.unitune_block_network`. A test that opens a connection to anything but loopback
  fails, naming the host, even if the SDK caught the error and retried.
- Unknown vendor statuses raise instead of warning while tests run (`UNITUNE_STRICT_STATUS=1`).

This module imports no more of unitune than a test asks for, so it costs nothing in projects that
only have unitune installed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from unitune.providers.fake import FakeProvider

MARKER = "unitune_block_network"
#: Set on a test item when a guard error escaped the test body, so teardown does not report it twice.
_ESCAPED = pytest.StashKey[bool]()
_STRICT_ENV = "UNITUNE_STRICT_STATUS"
_SET_STRICT = pytest.StashKey[bool]()


class RealNetworkCallError(RuntimeError):
    """A test guarded by unitune tried to reach a host that is not loopback.

    `retryable = False` tells unitune's retry policy that the provider error this ends up inside
    (SDKs wrap it in their connection error) must fail at once: a blocked host never unblocks.
    """

    retryable = False


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--unitune-block-network` and the `unitune_block_network` ini option."""
    group = parser.getgroup("unitune")
    group.addoption(
        "--unitune-block-network",
        action="store_true",
        default=False,
        help="fail any test that opens a network connection to a non-loopback host",
    )
    parser.addini(
        "unitune_block_network",
        type="bool",
        default=False,
        help="fail any test that opens a network connection to a non-loopback host",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; make unknown vendor statuses raise (`UNITUNE_STRICT_STATUS=1`) unless set."""
    config.addinivalue_line(
        "markers", f"{MARKER}: fail the test if it opens a connection to a non-loopback host"
    )
    if _STRICT_ENV not in os.environ:
        os.environ[_STRICT_ENV] = "1"
        config.stash[_SET_STRICT] = True


def pytest_unconfigure(config: pytest.Config) -> None:
    """Unset `UNITUNE_STRICT_STATUS` if `pytest_configure` set it."""
    if config.stash.get(_SET_STRICT, False):
        os.environ.pop(_STRICT_ENV, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Note a guard error that escaped the test body, so teardown does not report it twice."""
    if call.excinfo is not None and call.excinfo.errisinstance(RealNetworkCallError):
        item.stash[_ESCAPED] = True
    yield


def _is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _unitune_network_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    enabled = (
        request.config.getoption("--unitune-block-network")
        or request.config.getini("unitune_block_network")
        or request.node.get_closest_marker(MARKER) is not None
    )
    if not enabled:
        yield
        return
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_gethostbyname_ex = socket.gethostbyname_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            where = f"{host}:{address[1]}" if isinstance(address, tuple) else str(host)
            attempts.append(where)
            raise RealNetworkCallError(
                f"unitune network guard: this test tried to connect to {where}. "
                "Point the SDK at a fake (the unitune_fake fixture, a MockTransport, moto or Prism "
                "on 127.0.0.1)."
            )

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def check_name(host: Any) -> None:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_loopback(name):
            attempts.append(str(name))
            raise RealNetworkCallError(f"unitune network guard: this test tried to resolve {name!r}.")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check_name(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        check_name(host)
        return real_gethostbyname(host)

    def gethostbyname_ex(host: str) -> tuple[str, list[str], list[str]]:
        check_name(host)
        return real_gethostbyname_ex(host)

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", connect)
    mp.setattr(socket.socket, "connect_ex", connect_ex)
    mp.setattr(socket, "getaddrinfo", getaddrinfo)
    mp.setattr(socket, "gethostbyname", gethostbyname)
    mp.setattr(socket, "gethostbyname_ex", gethostbyname_ex)
    try:
        yield
    finally:
        mp.undo()
    if attempts and not request.node.stash.get(_ESCAPED, False):
        # The guard's error was swallowed (SDKs catch connection errors and retry): fail here.
        pytest.fail(
            "unitune network guard: the test tried to reach " + ", ".join(sorted(set(attempts))),
            pytrace=False,
        )


@pytest.fixture
def unitune_fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[FakeProvider]:
    """A fake provider that every unitune client in this test uses, with instant waits.

    It impersonates the provider your config names (`unitune.toml`, `$UNITUNE_PROVIDER`; the local
    trainer when none): that provider's models, aliases, lifecycle, prices, data rules, capabilities
    and status words, so a test passes only what production would pass. Its clock starts at the real
    date, so catalog sunsets apply as they do today. `unitune_fake.as_provider("together")` picks
    another; `as_provider(None)` is the permissive fake with its own catalog.
    """
    import datetime as dt

    from unitune.config import load_config
    from unitune.testing import FakeClock, FakeProvider, override_provider

    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "unitune-home"))
    fake = FakeProvider(clock=FakeClock(start=dt.datetime.now(dt.timezone.utc)))
    config = load_config()
    fake.adopt_provider(config.provider, config.section(config.provider))
    with override_provider(fake, process_wide=True):
        yield fake
