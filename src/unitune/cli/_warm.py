"""A warm child for `unitune validate`: the data toolkit and the tokenizer load while the CLI starts.

On a file of a few thousand examples (below `FORK_MIN_BYTES`) `unitune validate` is mostly start-up, in two halves that need
not wait for each other: the command line (Typer, Rich, pydantic, the config and the catalog check,
~0.2 s) and the check itself (the data toolkit and the tokenizer, ~0.2 s). On Linux `main` forks
this child first thing, while the process has one thread and has imported almost nothing. The child
imports the toolkit and loads the counter the command line most likely needs (its --provider,
--model and files, read loosely from the arguments; a wrong guess only costs the child's time). When
the CLI has checked its arguments it sends the child the validation to run, and the report comes
back pickled.

Anything that goes wrong on the way (no fork here, the child died or answered with an error, a
reply that does not unpickle) makes the CLI validate in its own process, as without the child: the
child can only make it faster, never change the report. The child exits when the CLI closes its
end of the pipe, whether or not it was asked anything.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import signal
import struct
import sys
from collections.abc import Sequence
from typing import Any

from unitune._fork import FORK_MIN_BYTES, can_fork

_HEADER = struct.Struct("<Q")


class _Child:
    def __init__(self, pid: int, to_child: int, from_child: int) -> None:
        self.pid = pid
        self.to_child = to_child
        self.from_child = from_child

    def ask(self, request: dict[str, Any]) -> Any:
        """Send the request, wait for the reply; None where the child could not answer."""
        try:
            _send(self.to_child, pickle.dumps(request))
            reply = _receive(self.from_child)
        except Exception:  # a broken pipe: validate here instead
            self.close(kill=True)
            return None
        except BaseException:  # Ctrl-C while it works: it must not go on alone
            self.close(kill=True)
            raise
        self.close()
        try:
            status, value = pickle.loads(reply) if reply is not None else ("died", None)
        except Exception:  # a reply that does not unpickle: validate here instead
            return None
        return value if status == "ok" else None

    def close(self, *, kill: bool = False) -> None:
        for fd in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.to_child = self.from_child = -1
        if kill:  # unused: do not wait for it to finish warming up
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, 0)  # it exits on the closed pipe (or the kill): reap it


_CHILD: _Child | None = None


def start(args: Sequence[str]) -> None:
    """Fork the warm child for `unitune validate ARGS`, where that is safe; else do nothing."""
    global _CHILD
    if _CHILD is not None or os.environ.get("UNITUNE_WARM_CHILD", "1") == "0":
        return
    if not can_fork():
        return
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(to_child_w)
        os.close(from_child_r)
        _serve(list(args), to_child_r, from_child_w)
    os.close(to_child_r)
    os.close(from_child_w)
    _CHILD = _Child(pid, to_child_w, from_child_r)
    atexit.register(stop)  # a command that never validated (--help, a usage error) ends it


def validate(**request: Any) -> Any:
    """The report of `unitune.data.validate(**request)` from the warm child, or None (validate here).

    Only for input below `FORK_MIN_BYTES`, which one process checks: a larger file gets worker
    processes, and those are the CLI's own (forked from it), so that a Ctrl-C, a kill or the CLI's
    exit ends them with it; the child is let go.
    """
    global _CHILD
    child, _CHILD = _CHILD, None
    if child is None:
        return None
    size = 0
    for path in (request.get("data"), request.get("validation")):
        with contextlib.suppress(OSError, TypeError):
            size += os.path.getsize(path) if path is not None else 0
    if not size or size >= FORK_MIN_BYTES:
        child.close(kill=True)
        return None
    return child.ask({**request, "workers": 1})


def stop() -> None:
    """Let the child go unused (the command did not get as far as validating)."""
    global _CHILD
    child, _CHILD = _CHILD, None
    if child is not None:
        child.close(kill=True)


def _serve(args: list[str], read_fd: int, write_fd: int) -> None:
    code = 0
    try:
        with contextlib.suppress(Exception):
            _warm_up(args)
        request = _receive(read_fd)
        if request is not None:
            try:
                from unitune.data import validate as run

                payload = pickle.dumps(("ok", run(**pickle.loads(request))))
            except Exception as e:  # the CLI validates in its own process and reports it there
                payload = pickle.dumps(("error", f"{type(e).__name__}: {e}"))
            _send(write_fd, payload)
    except BaseException:  # Ctrl-C, a closed pipe: nothing to report, the CLI carries on alone
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no flushing of what the CLI had buffered


def _warm_up(args: list[str]) -> None:
    """Load what `validate` will most likely count with, for the files and options in `args`."""
    from unitune.data._tokens.quickstart import expected_input
    from unitune.data._validate import _catalog_model
    from unitune.data._validate.part import _counter
    from unitune.data.profiles import get_profile

    provider, model, size = _peek(args)
    if provider is None or model is None:
        from unitune.config import load_config

        config = load_config()
        provider = provider or config.provider
        model = model or config.job_defaults(provider).model
    profile_name = dataset_profile(provider)
    model_id, _ = _catalog_model(profile_name, model)
    with expected_input(size):
        _counter(profile_name, model_id, get_profile(profile_name, model_id)).count_text("warm")


def dataset_profile(name: str) -> str:
    """The dataset rules to check against: the provider's own, or a profile named directly."""
    from unitune.data import get_profile
    from unitune.errors import ConfigurationError
    from unitune.providers.registry import get_provider_class

    try:
        get_profile(name)
        return name
    except ConfigurationError:
        return get_provider_class(name).dataset_profile


def _peek(args: list[str]) -> tuple[str | None, str | None, int | None]:
    """--provider, --model and the total size of the files named, read loosely from `args`."""
    options: dict[str, str] = {}
    size = 0
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        name = {"-p": "--provider"}.get(name, name)
        if name in ("--provider", "--model"):
            if eq:
                options[name] = value
            elif i + 1 < len(args):
                options[name] = args[i + 1]
        elif not arg.startswith("-"):
            with contextlib.suppress(OSError, ValueError):
                if os.path.isfile(arg):
                    size += os.path.getsize(arg)
    return options.get("--provider"), options.get("--model"), size or None


def _send(fd: int, data: bytes) -> None:
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int) -> bytes | None:
    """One message, or None at the end of the pipe (the other side closed it or died)."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(fd, _HEADER.unpack(header)[0])


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
