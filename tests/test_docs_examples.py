"""Every example in README.md and docs/**/*.md runs here, as a reader would run it (issue 23).

Python blocks run with pytest-examples, each in a fresh working directory with its own
`UNITUNE_HOME`, the input files the docs name, no network (the network guard fails any non-loopback
connection) and one fake provider standing in for every vendor, as the `unitune_fake` fixture does:
`FineTuneClient("together")` in an example gets a fake that impersonates Together. An example that
shows its output in `#>` comments is checked against it. Settings in the fence's info string, visible
in the Markdown, say what else an example needs:

- `test="skip" reason="..."`: it cannot run offline as written (the reason says why);
- `test="continue"`: it continues the page's previous Python example (same namespace, run first);
- `provider="openai"`: the `unitune.toml` beside it names that provider, so the fake impersonates it;
- `raises="ConfigurationError ValidationFailed"`: the `test_*` functions it defines, each called with
  the fake and a temporary directory, must fail in turn with these errors (a page showing a failure);
- `plain="pass"`: those tests pass on the permissive fake (`unitune_fake.as_provider(None)`).

A block that defines `test_*(unitune_fake, ...)` functions is a pytest test: each one is called.

TOML blocks are loaded by what reads them: a job file (`name`, `[data]`) by `load_job_file`, a catalog
override (a `[provider]` table) by `load_catalog`, any other as `unitune.toml` by `load_config`, with each
`[providers.NAME]` section checked by that provider's settings class; a `pyproject.toml` fragment is
parsed. JSON blocks are parsed. test_every_block_has_a_runner fails on a block in a language nothing here
runs, so a new kind of block gets a runner (or a reason) before it can rot.

Shell blocks (bash, sh, console) run line by line through the installed `unitune`, in the same kind of
working directory, and must exit 0. A line that needs a key, the network, a GPU, minutes of training or a
placeholder is skipped by a rule in SHELL_SKIPS below, which says why; a new line no rule covers runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

import unitune

ROOT = Path(__file__).resolve().parents[1]
UNITUNE = Path(sys.executable).with_name("unitune")


def _pages() -> list[Path]:
    """README.md and every page under docs/, found when the tests are collected."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT).as_posix()}:{line}"


@dataclass(frozen=True)
class Fence:
    """A fenced block of a page: its language, where its first line is, its text (dedented)."""

    page: Path
    line: int
    lang: str
    source: str

    def __str__(self) -> str:
        return _where(self.page, self.line)


_FENCE = re.compile(r"^([ \t]*)```([\w-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)


def _fences(*langs: str) -> list[Fence]:
    """Every fenced block in the pages (indented ones in lists too), or those in `langs`."""
    found = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for block in _FENCE.finditer(text):
            if langs and block.group(2) not in langs:
                continue
            indent = len(block.group(1))
            source = "\n".join(line[indent:] for line in block.group(3).splitlines())
            found.append(Fence(page, text.count("\n", 0, block.start(3)) + 1, block.group(2), source + "\n"))
    return found


#: What runs each kind of block; a bare fence is a listing (a synopsis, sample output), not run.
RUNNERS = {"python": "test_python_example", "py": "test_python_example", "bash": "test_shell_example",
           "sh": "test_shell_example", "console": "test_shell_example", "shell": "test_shell_example",
           "toml": "test_toml_example", "json": "test_json_example", "": "not run: a listing"}  # fmt: skip


def test_every_block_has_a_runner() -> None:
    """A block in a language nothing here runs (```pycon, ```yaml) fails until a runner or a reason is added."""
    unknown = [f"{fence} ```{fence.lang}" for fence in _fences() if fence.lang not in RUNNERS]
    assert not unknown, f"no runner for: {unknown}; add one to tests/test_docs_examples.py"
    python = _fences("python", "py")
    assert len(python) == len(PYTHON), "pytest-examples missed a ```python block"
    assert any(ex.path.name == "README.md" for ex in PYTHON), "README.md's examples were not collected"


# -- Python examples ---------------------------------------------------------------------------------

PYTHON = [ex for ex in find_examples(*_pages()) if ex.prefix.split()[0] in {"python", "py"}]


def _settings(example: CodeExample) -> dict[str, str]:
    """The fence's settings as written (pytest-examples lowercases its copy of the info string)."""
    fence = example.path.read_text(encoding="utf-8").splitlines()[example.start_line - 1]
    return {m.group(1): m.group(3) for m in re.finditer(r'([^{\s]+?)=([\'"])(.+?)\2', fence)}


def _earlier_on_page(example: CodeExample) -> list[CodeExample]:
    """The examples `example` continues: the page's earlier ones, back to one that is not a continuation."""
    same_page = [ex for ex in PYTHON if ex.path == example.path and ex.start_line < example.start_line]
    chain: list[CodeExample] = []
    current = example
    while _settings(current).get("test") == "continue":
        if not same_page:
            raise AssertionError(f"{_where(example.path, example.start_line)} continues no earlier example")
        current = same_page.pop()
        chain.insert(0, current)
    return chain


def _write_inputs(work: Path) -> None:
    """The files the docs' examples read, made from the seeded support-ticket generator."""
    from unitune.demo.tickets import write_jsonl

    for name, n in {"tickets.jsonl": 200, "train.jsonl": 80, "valid.jsonl": 24, "data.jsonl": 60,
                    "new.jsonl": 60}.items():  # fmt: skip
        write_jsonl(work / name, n=n, seed=len(name))
    # docs/runs.md retrains on more.jsonl: the job file's 200 tickets and 40 new ones.
    job_tickets = (ROOT / "examples" / "jobs" / "tickets.jsonl").read_text(encoding="utf-8")
    write_jsonl(work / "more.jsonl", n=40, seed=99)
    (work / "more.jsonl").write_text(
        job_tickets + (work / "more.jsonl").read_text(encoding="utf-8"), encoding="utf-8"
    )
    # Your own keys stay in your data: README's `unitune split --stratify lang` splits on one.
    rows = [json.loads(line) for line in (work / "tickets.jsonl").read_text(encoding="utf-8").splitlines()]
    text = "".join(
        json.dumps({"id": f"t{i}", "lang": "en" if i % 4 else "de", **row}) + "\n"
        for i, row in enumerate(rows)
    )
    (work / "tickets.jsonl").write_text(text, encoding="utf-8")
    # Something for `--fix` to repair: an extra space, an empty line, a duplicate, an e-mail address.
    lines = (work / "tickets.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    row = json.loads(lines[0])
    row["messages"][0]["content"] = "  " + row["messages"][0]["content"] + " Mail me at jo.doe@example.com "
    (work / "messy.jsonl").write_text(
        "\n".join([*lines, json.dumps(row), "", lines[1]]) + "\n", encoding="utf-8"
    )
    pairs = [
        {"input": {"messages": [{"role": "user", "content": f"Order {i} is late"}]},
         "preferred_output": [{"role": "assistant", "content": f'{{"category": "shipping", "order": {i}}}'}],
         "non_preferred_output": [{"role": "assistant", "content": "Sorry."}]}
        for i in range(20)
    ]  # fmt: skip
    (work / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    shutil.copytree(ROOT / "examples" / "jobs", work / "examples" / "jobs")
    # The docs' `job.toml` is swept over hosted providers: a model they all offer, a budget they fit.
    job = (ROOT / "examples" / "jobs" / "tickets.toml").read_text(encoding="utf-8")
    job = job.replace('model = "smollm2-135m-instruct"', 'model = "llama-3.1-8b-instruct"')
    (work / "job.toml").write_text(job.replace("budget_usd = 1.0", "budget_usd = 25.0"), encoding="utf-8")


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory holding the docs' input files, with its own unitune home."""
    work = tmp_path / "example"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "unitune-home"))
    monkeypatch.setenv("UNITUNE_CACHE", str(tmp_path / "cache"))
    for name in ("UNITUNE_PROVIDER", "UNITUNE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    _write_inputs(work)
    return work


@contextlib.contextmanager
def _fake_everywhere() -> Iterator[Any]:
    """One fake for every provider, impersonating the configured one, as `unitune_fake` sets it up."""
    from unitune.config import load_config
    from unitune.testing import FakeClock, FakeProvider, override_provider

    fake = FakeProvider(clock=FakeClock(start=dt.datetime.now(dt.timezone.utc)))
    config = load_config()
    fake.adopt_provider(config.provider, config.section(config.provider))
    with override_provider(fake, process_wide=True):
        yield fake


def _call_tests(namespace: dict[str, Any], fake: Any, tmp_path: Path, settings: dict[str, str]) -> None:
    """Call the pytest tests an example defines, with the fixtures they name."""
    tests = [fn for name, fn in namespace.items() if name.startswith("test_") and inspect.isfunction(fn)]
    raises = settings.get("raises", "").split()
    if raises:
        assert len(raises) == len(tests), f"raises= names {len(raises)} errors for {len(tests)} tests"
    for i, test in enumerate(tests):
        fixtures = {"unitune_fake": fake, "tmp_path": tmp_path / test.__name__}
        (tmp_path / test.__name__).mkdir()
        kwargs = {name: fixtures[name] for name in inspect.signature(test).parameters}
        if not raises:
            test(**kwargs)
            continue
        with pytest.raises(Exception) as failed:  # noqa: PT011 - the name is checked below
            test(**kwargs)
        assert isinstance(failed.value, getattr(unitune, raises[i])), (
            f"{test.__name__} raised {failed.value!r}"
        )
    if settings.get("plain") == "pass":  # and the same tests pass on the permissive fake
        fake.as_provider(None)
        for test in tests:
            (tmp_path / "plain" / test.__name__).mkdir(parents=True)
            fixtures = {"unitune_fake": fake, "tmp_path": tmp_path / "plain" / test.__name__}
            test(**{name: fixtures[name] for name in inspect.signature(test).parameters})


class _MyApp:
    """`my_app` in README's testing example: it stands for the reader's application, which trains
    through `FineTuneClient.from_config()` and waits."""

    @staticmethod
    def train_and_wait(path: str) -> Any:
        from unitune import FineTuneClient
        from unitune.demo.tickets import write_jsonl

        write_jsonl(path, n=40)
        with FineTuneClient.from_config() as client:
            return client.wait(client.create_job(model="smollm2-135m-instruct", training_data=path))


@pytest.mark.unitune_block_network
@pytest.mark.parametrize("example", PYTHON, ids=lambda ex: _where(ex.path, ex.start_line))
def test_python_example(example: CodeExample, work: Path, tmp_path: Path, eval_example: EvalExample) -> None:
    settings = _settings(example)
    if settings.get("test") == "skip":
        reason = settings.get("reason")
        assert reason, 'a skipped example says why, where readers see it: {test="skip" reason="..."}'
        pytest.skip(reason)
    if "provider" in settings:
        (work / "unitune.toml").write_text(f'provider = "{settings["provider"]}"\n', encoding="utf-8")
    try:
        _run_python(example, settings, eval_example, tmp_path)
    except Exception as e:  # a one-line report: pytest cannot format the rewritten example's traceback
        lines = []
        tb = e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.endswith((".md", f"{example.module_name}.py")):
                lines.append(f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}")
            tb = tb.tb_next
        where = _where(example.path, example.start_line)
        raise AssertionError(f"{where} (at {', '.join(lines) or '?'}): {type(e).__name__}: {e}") from None


def _run_python(
    example: CodeExample, settings: dict[str, str], eval_example: EvalExample, tmp_path: Path
) -> None:
    with _fake_everywhere() as fake:
        namespace: dict[str, Any] = {"my_app": _MyApp} if "my_app." in example.source else {}
        for earlier in _earlier_on_page(example):
            namespace.update(eval_example.run(earlier, module_globals=namespace))
        if "#>" in example.source:
            eval_example.set_config(line_length=120)  # the docs' width: one `#>` line per printed line
            namespace = eval_example.run_print_check(example, module_globals=namespace)
        else:
            namespace = eval_example.run(example, module_globals=namespace)
        _call_tests(namespace, fake, tmp_path, settings)


# -- Shell examples ----------------------------------------------------------------------------------

#: Commands the suite does not run, each with the reason; every other line of a shell block runs.
SHELL_SKIPS: list[tuple[str, str]] = [
    (
        r"^make (demo|test)\b",
        "installs the dev environment / trains SmolLM2 for minutes (make demo, make test)",
    ),
    (r"^pip install\b", "installs from PyPI: needs the network"),
    (r"^gcloud\b", "Google Cloud's CLI: needs a Google account and the network"),
    (r"^export \w+_API_KEY=", "sets a real vendor API key"),
    (r"\w+_API_KEY=sk-\.\.\.", "needs a real vendor API key"),
    (r"\b(JOB_ID|RUN|DIR|FILE|MODEL)\b|ftjob-…|ft-xyz|\bP\b", "a placeholder for your own job, run or value"),
    (r"^unitune migrate\b", "talks to the real vendors (OpenAI as the source, the target's API)"),
    (r"^unitune gateway\b", "a long-running server in front of a real vendor"),
    (r"^unitune (serve|review)\b", "a long-running server"),
    (r"^unitune monitor\b", "reads the request log a running `unitune serve` writes"),
    (r"^unitune export local:ftjob-", "needs a model the local trainer made (minutes of training)"),
    (
        r"--providers? (together|openai|bedrock|vertex|mistral|cohere)\b(?!.*\b(validate|convert)\b)"
        r"(?=.*\bunitune (train|retrain|create|evaluate)\b)|^unitune (train|retrain|create|evaluate)\b.*"
        r"--providers? \w*(together|openai|bedrock|vertex|mistral|cohere)",
        "trains on a real vendor: needs its key and the network",
    ),
    (
        r"^unitune train (examples/jobs/tickets\.toml|job\.toml)(?!.*--provider fake)",
        "trains SmolLM2 on the local trainer for minutes",
    ),
]


@dataclass(frozen=True)
class ShellLine:
    page: Path
    line: int
    command: str

    def __str__(self) -> str:
        return _where(self.page, self.line)


def _shell_lines() -> list[ShellLine]:
    found = []
    for fence in _fences("bash", "sh", "console", "shell"):
        for offset, raw in enumerate(fence.source.splitlines()):
            command = raw.removeprefix("$ ").strip()
            if command and not command.startswith("#"):
                found.append(ShellLine(fence.page, fence.line + offset, command))
    return found


SHELL = _shell_lines()


def _skip_reason(command: str) -> str | None:
    for pattern, reason in SHELL_SKIPS:
        if re.search(pattern, command):
            return reason
    return None


@pytest.mark.parametrize("example", SHELL, ids=str)
def test_shell_example(example: ShellLine, work: Path) -> None:
    reason = _skip_reason(example.command)
    if reason:
        pytest.skip(f"{example.command!r}: {reason}")
    argv = shlex.split(example.command, comments=True)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    # No network in the child either: HTTP clients go through a proxy nobody listens on, Hugging Face offline.
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost",
               HF_HUB_OFFLINE="1")  # fmt: skip
    while argv and re.fullmatch(r"\w+=.*", argv[0]):
        name, _, value = argv.pop(0).partition("=")
        env[name] = value
    tool = {"unitune": str(UNITUNE), "python": sys.executable}.get(argv[0])
    assert tool, f"{example}: no rule runs {argv[0]!r}; add one to SHELL_SKIPS with the reason"
    if argv[0] == "python" and argv[1].startswith("examples/"):
        argv[1] = str(ROOT / argv[1])
    out = subprocess.run([tool, *argv[1:]], cwd=work, env=env, capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, f"{example}: {example.command}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"


# -- TOML examples -----------------------------------------------------------------------------------


@pytest.mark.parametrize("example", _fences("toml"), ids=str)
def test_toml_example(example: Fence, work: Path) -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

    from unitune.catalog import load_catalog
    from unitune.config import load_config
    from unitune.runs import load_job_file
    from unitune.testing import FakeProvider

    table = tomllib.loads(example.source)
    if "project" in table or "tool" in table:  # a pyproject.toml fragment: that it parses is the check
        return
    if isinstance(table.get("provider"), dict):  # a catalog override file
        (work / "override.toml").write_text(example.source, encoding="utf-8")
        load_catalog([work / "override.toml"])
    elif "name" in table or "data" in table:  # a job file
        (work / "job.toml").write_text(example.source, encoding="utf-8")
        load_job_file(work / "job.toml")
    else:
        (work / "unitune.toml").write_text(example.source, encoding="utf-8")
        config = load_config()
        for name in table.get("providers", {}):
            FakeProvider().adopt_provider(name, config.section(name))


@pytest.mark.parametrize("example", _fences("json"), ids=str)
def test_json_example(example: Fence) -> None:
    json.loads(example.source)  # the IAM documents in docs/bedrock.md: valid JSON to paste
