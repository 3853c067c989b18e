"""A uvicorn-served ASGI app running in a background thread.

An ASGI app served by uvicorn from a background thread: the review page, the model server and the
fine-tuning gateway all run this way.

The socket is bound here, before uvicorn starts, so that port 0 reports the port really taken and a
port in use is a `ConfigurationError` rather than a log line from a thread. `start` returns once
the server answers. uvicorn is imported by the caller (each names its own extra in the error).
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import time
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import Any, TypeVar

from unitune.errors import ConfigurationError

__all__ = ["ThreadedServer", "bind", "require"]

_S = TypeVar("_S", bound="ThreadedServer")


def require(module: str, command: str, fix: str) -> ModuleType:
    """Import an extra's package (FastAPI, uvicorn), or say which command needs it.

    Args:
        module: the package to import.
        command: the command that needs it (`unitune serve`), named in the error.
        fix: how to install it.

    Raises:
        ConfigurationError: the package is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(
            f"`{command}` needs the Python package {module!r}, which is not installed.", fix=fix
        ) from None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ConfigurationError(f"Cannot listen on {host!r}: {e}.", fix="Pass --host 127.0.0.1.") from None
    try:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let another process take the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as e:
        sock.close()
        raise ConfigurationError(
            f"Cannot listen on {host}:{port}: {e.strerror or e}.",
            fix="Pass another --port, or 0 for any free port.",
        ) from None
    return sock


class ThreadedServer:
    """`app` served on `host:port` from a daemon thread; a context manager that stops it.

    `url` is `http://host:port` + `path`; `port` the port really bound. `on_close` runs after the
    server has stopped (a failed start included): what the app loaded is released there.
    """

    def __init__(
        self,
        uvicorn: Any,
        app: Any,
        *,
        host: str,
        port: int,
        name: str,
        what: str,
        path: str = "/",
        graceful_s: float = 5,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._on_close = on_close
        try:
            self._socket = bind(host, port)
        except BaseException:
            self._close_app()
            raise
        # log_config None: leave the host program's logging as it is; lifespan off: the app did its
        # start-up work before this; a bounded graceful shutdown, since clients keep connections open.
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=graceful_s)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=name, daemon=True
        )
        address = self._socket.getsockname()
        self.host: str = address[0]
        self.port: int = address[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}{path}"
        self._start(what)

    def _start(self, what: str) -> None:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                self._socket.close()
                self._close_app()
                raise ConfigurationError(
                    f"{what} on {self.host}:{self.port} did not start.",
                    fix="Run again with another --port; uvicorn's log above says why.",
                )
            time.sleep(0.01)

    def _close_app(self) -> None:
        if self._on_close is not None:
            self._on_close()

    @property
    def running(self) -> bool:
        """True until the server has stopped."""
        return self._thread.is_alive()

    def wait(self) -> None:
        """Block until the server stops; Ctrl-C raises KeyboardInterrupt here."""
        # join() in short steps: a join without a timeout would hold off Ctrl-C on some platforms.
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait (up to `timeout` seconds) for the thread, then run `on_close`.

        Idempotent.
        """
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()
        self._close_app()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
