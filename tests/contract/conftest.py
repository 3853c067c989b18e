"""The contract-test harness: Prism serves a vendor's own OpenAPI spec on 127.0.0.1, the vendor's
SDK is pointed at it through unitune's adapter, and every request is checked against the vendor's
schema (Prism answers 422 to a request the spec does not allow).

Prism is pinned in `package.json` and installed by `make install` (`npm ci`). The specs are trimmed
copies kept in `tests/contract/specs/` (the paths the adapters call, with every schema they refer to;
`trim_specs.py` makes them, `specs/SOURCES.md` says where each comes from); `UNITUNE_SPECS_DIR` points
at another folder, e.g. the full specs. A missing spec fails the test (the specs ship in the repository); without Prism they skip, except under CI (`CI=true`), where they fail, because CI
must run them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def specs_dir() -> Path:
    return Path(os.environ.get("UNITUNE_SPECS_DIR") or Path(__file__).resolve().parent / "specs")


def prism_bin() -> Path | None:
    local = ROOT / "node_modules" / ".bin" / "prism"
    if local.exists():
        return local
    found = shutil.which("prism")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prism:
    """One Prism mock server for one spec file."""

    def __init__(self, spec: Path, *extra: str, timeout: float = 180.0) -> None:
        binary = prism_bin()
        assert binary is not None
        self.spec = spec
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = ROOT / ".pytest_cache" / f"prism-{spec.stem}.log"
        self.log.parent.mkdir(exist_ok=True)
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(
            [str(binary), "mock", "-h", "127.0.0.1", "-p", str(self.port), *extra, str(spec)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        # The OpenAI spec (3 MB) takes ~30 s to load on two cores; the port opens only when ready.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Prism exited ({self.proc.returncode}) on {self.spec.name}: {self.tail()}"
                )
            if "Prism is listening" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"Prism did not start within {timeout:.0f} s on {self.spec.name}: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def _trimmed(spec: Path, keep: tuple[str, ...]) -> Path:
    """A copy of `spec` with only the paths in `keep` (the vendor's schemas untouched): for specs
    that Prism cannot load whole because of a broken reference in a part the adapter never calls."""
    import yaml

    doc = yaml.safe_load(spec.read_text("utf-8"))
    missing = [p for p in keep if p not in doc["paths"]]
    assert not missing, f"{spec.name} has no {missing}"
    doc["paths"] = {p: v for p, v in doc["paths"].items() if p in keep}
    out = ROOT / ".pytest_cache" / f"trimmed-{spec.name}"
    out.parent.mkdir(exist_ok=True)
    out.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return out


@pytest.fixture(scope="session")
def prism_server() -> Iterator[Callable[..., Prism]]:
    """`prism_server("openai-openapi.yaml", *extra_args)`: a running mock for that spec, started once
    per session and stopped at the end."""
    running: dict[tuple[str, ...], Prism] = {}

    def start(spec_name: str, *extra: str, keep_paths: tuple[str, ...] = ()) -> Prism:
        spec = specs_dir() / spec_name
        if not spec.exists():
            # The trimmed specs ship in the repository: a missing one is a broken checkout or a wrong
            # UNITUNE_SPECS_DIR, never a reason to run fewer tests.
            pytest.fail(
                f"spec {spec} not found: restore tests/contract/specs/ (tests/contract/trim_specs.py makes it), "
                "or point UNITUNE_SPECS_DIR at a folder that has it"
            )
        if keep_paths:
            spec = _trimmed(spec, keep_paths)
        if prism_bin() is None:
            message = "Prism is not installed: run `npm ci` in the repository (make install does)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        key = (spec_name, *extra, *keep_paths)
        if key not in running:
            running[key] = Prism(spec, *extra)
        return running[key]

    yield start
    for server in running.values():
        server.stop()
