"""What makes `unitune validate` start fast changes no answer (issue 24).

* Small inputs count with tiktoken's BPE on quicktok's vocabulary (`_tokens.quickstart`) instead of
  loading quicktok: the counts, and whole reports, are the same either way.
* Its rank table is cached under the unitune cache directory and rebuilt when the vocabulary file
  changes or the cache is damaged.
* The CLI imports and builds only the command it runs: the table of commands matches what the
  modules register, and a lone command behaves as in the whole app.
* Duplicates are found with a dict below `_NUMPY_FROM` keys and with numpy's sort above: the same.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from unitune.data import tokens, validate
from unitune.data._tokens import quickstart
from unitune.data._validate import passes

from .test_tokens import SAMPLES
from .test_validate_parallel import dump, messy_lines, write

quicktok = pytest.importorskip("quicktok")
pytest.importorskip("tiktoken")

ENCODINGS = ["o200k_base", "cl100k_base", "llama3"]


@pytest.fixture(autouse=True)
def _fresh_counters() -> Any:
    tokens._clear_cache()
    yield
    tokens._clear_cache()


def _texts() -> list[str]:
    rng = random.Random(5)
    pieces = ["order", " refund", "café", "東京", "спасибо", "🙂", "  ", "\n\n", "don't", "I'LL", "123456",
              "<|endoftext|>", "\t", "ß", "x̧", "👩‍👩‍👧", "{\"a\": 1}", "https://a.example/x?q=1"]  # fmt: skip
    texts = [*SAMPLES, *("".join(rng.choice(pieces) for _ in range(rng.randint(0, 80))) for _ in range(400))]
    for line in messy_lines(n=200):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        for m in data.get("messages", []) if isinstance(data, dict) else []:
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                texts.append(m["content"])
    return texts


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_tiktoken_counts_what_quicktok_counts(encoding: str) -> None:
    reference = quicktok.get_encoding(encoding)
    count = quickstart.load(encoding, lambda: reference)
    assert count is not None
    texts = _texts()
    assert [count(t) for t in texts] == [reference.count(t) for t in texts]


# Characters Unicode 14.0 does not assign, on which the two engines' Unicode tables disagree
# (found by probing every code point; the first three by a review with random strings).
RECENT = ["\u0cdc(M", "\U0001e6c2&R", "\U000323c3<D", "a\u088fb", "\ua7ce x", " \U00010940\U00010941"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_text_with_characters_after_unicode_14_is_counted_by_quicktok(encoding: str) -> None:
    reference = quicktok.get_encoding(encoding)
    loads: list[int] = []

    def load_quicktok() -> Any:
        loads.append(1)
        return reference

    count = quickstart.load(encoding, load_quicktok)
    assert count is not None
    assert [count(t) for t in RECENT] == [reference.count(t) for t in RECENT]
    assert loads  # quicktok was asked for them
    loads.clear()
    assert count("café, 東京, спасибо 🙂") == reference.count("café, 東京, спасибо 🙂")
    assert not loads  # and not for characters 14.0 assigns


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_engines_agree_on_every_character_unicode_14_assigns(encoding: str) -> None:
    # Each assigned code point from U+0080 in contexts where a different Unicode class (letter,
    # upper/lower case, number, mark, space) would split the text differently.
    import unicodedata

    reference = quicktok.get_encoding(encoding).count
    count = quickstart.load(encoding, lambda: pytest.fail("only 14.0 characters here"))
    assert count is not None
    recent = quickstart._recent_characters()
    differ = []
    for cp in range(0x80, 0x110000):
        c = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or recent.match(c):
            continue
        for text in (f"a{c}(M", f"{c}{c}1 ", f"A{c}'s", f" {c}x\n"):
            if count(text) != reference(text):
                differ.append(f"U+{cp:04X} {unicodedata.name(c, '?')}")
                break
    assert differ == []


def test_the_unassigned_table_is_unicode_14s() -> None:
    import unicodedata

    if unicodedata.unidata_version != "14.0.0":
        pytest.skip(f"this Python carries Unicode {unicodedata.unidata_version}, not 14.0.0")
    recent = quickstart._recent_characters()
    for cp in range(0x80, 0x110000):
        assert bool(recent.match(chr(cp))) == (unicodedata.category(chr(cp)) == "Cn"), hex(cp)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_split_patterns_are_tiktokens(encoding: str) -> None:
    openai_public = pytest.importorskip("tiktoken_ext.openai_public")
    source = Path(openai_public.__file__).read_text("utf-8")
    pattern = quickstart._ENCODINGS[encoding][1]
    if encoding == "llama3":  # not in tiktoken: the string quicktok's importer knows as Llama 3's
        from quicktok._import_core import LLAMA3_PAT

        assert pattern == LLAMA3_PAT
        return
    if encoding == "cl100k_base":
        assert f'r"""{pattern}"""' in source
    else:
        # tiktoken joins its o200k pattern from parts written one a line: join them the same way.
        start = source.index("def o200k_base")
        block = source[start : source.index("return", start)]
        parts = [line.strip()[4:-4] for line in block.splitlines() if line.strip().startswith('r"""')]
        assert "|".join(parts) == pattern


def test_small_files_use_tiktoken_and_big_ones_quicktok(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines(n=300))
    engines: list[str] = []
    load = quickstart.load

    def tracked(encoding: str, quicktok: Any) -> Any:
        engines.append("tiktoken")
        return load(encoding, quicktok)

    monkeypatch.setattr(quickstart, "load", tracked)
    small = dump(validate(path, provider="openai", model="gpt-4o-mini", token_limit=200, workers=1))
    assert engines == ["tiktoken"]
    assert ("quicktok", "o200k_base") not in tokens._VOCABS  # quicktok never loaded

    tokens._clear_cache()
    engines.clear()
    monkeypatch.setattr(quickstart, "QUICKSTART_BELOW", 0)  # every file is "big" now
    big = dump(validate(path, provider="openai", model="gpt-4o-mini", token_limit=200, workers=1))
    assert engines == []
    assert ("quicktok", "o200k_base") in tokens._VOCABS
    assert small == big  # the same report, count for count


def test_in_memory_data_of_unknown_size_uses_quicktok(monkeypatch: pytest.MonkeyPatch) -> None:
    from unitune.data import Dataset

    monkeypatch.setattr(quickstart, "load", lambda *a: pytest.fail("no quick start without a size"))
    records = [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "ok"}]}
               for i in range(20)]  # fmt: skip
    report = validate(Dataset.from_records(records), provider="openai", model="gpt-4o-mini")
    assert report.stats.tokenizer == "o200k_base"


def test_once_quicktok_is_loaded_it_counts_small_inputs_too(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = tokens.counter_for("openai", "gpt-4o-mini")  # no size said: quicktok
    monkeypatch.setattr(quickstart, "load", lambda *a: pytest.fail("quicktok is loaded already"))
    with quickstart.expected_input(100):
        assert counter.count_text("hello world") == 2


def test_a_missing_tiktoken_falls_back_to_quicktok(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    with quickstart.expected_input(100):
        assert quickstart.load("o200k_base", lambda: None) is None
        counter = tokens.counter_for("openai", "gpt-4o-mini")
        assert not counter.approximate
        assert counter.count_text("hello world") == 2
    assert ("quicktok", "o200k_base") in tokens._VOCABS


def test_the_rank_cache_is_built_once_and_checked_against_the_vocabulary(tmp_path: Path) -> None:
    source = quickstart._vocab_file("o200k")
    assert source is not None
    copy = tmp_path / "o200k.vocab"
    copy.write_bytes(source.read_bytes())
    folder = Path(os.environ["UNITUNE_CACHE"]) / "tokenizers"

    ranks = quickstart._ranks(copy, "o200k_base")
    (cache,) = folder.glob("o200k_base-*.ranks")  # one file per vocabulary file
    assert len(ranks) == 199_998
    assert ranks[b"!"] == 0
    assert cache.is_file()
    built = cache.stat().st_mtime_ns

    assert quickstart._ranks(copy, "o200k_base") == ranks  # read back from the cache
    assert cache.stat().st_mtime_ns == built

    # The vocabulary changes (a new quicktok): the cache no longer matches and is rebuilt.
    data = bytearray(copy.read_bytes())
    first_rank = 4 + 2 + 1  # count, length, b"!" -> its rank
    data[first_rank : first_rank + 4] = (199_999).to_bytes(4, "little")
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(built + 10**9, built + 10**9))
    assert quickstart._ranks(copy, "o200k_base")[b"!"] == 199_999

    cache.write_bytes(b"\x00damaged")  # a damaged cache is rebuilt, not trusted
    assert quickstart._ranks(copy, "o200k_base")[b"!"] == 199_999
    assert cache.stat().st_size > 1_000_000


def test_a_vocabulary_it_cannot_read_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.vocab"
    bad.write_bytes((3).to_bytes(4, "little") + b"\x01\x00a" + (0).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="not a quicktok vocabulary"):
        quickstart.read_vocab(bad)


def test_a_read_only_cache_only_costs_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("UNITUNE_CACHE", str(blocked))  # the cache cannot be made
    count = quickstart.load("o200k_base", lambda: None)
    assert count is not None
    assert count("hello world") == 2


@pytest.mark.parametrize("n", [0, 1, 2, 50, 3000])
def test_repeats_with_a_dict_are_numpys(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    rng = random.Random(n)
    keys = array("Q", (rng.randrange(40) if rng.random() < 0.3 else rng.getrandbits(64) for _ in range(n)))
    by_dict = passes._repeats(keys)
    monkeypatch.setattr(passes, "_NUMPY_FROM", 0)
    assert passes._repeats(keys) == by_dict
    if n > 50:
        assert by_dict  # the keys did repeat


# --- the CLI builds only the command it runs ------------------------------------------------------


def test_the_command_table_matches_the_registered_commands() -> None:
    from typer.main import get_command_name

    from unitune.cli import COMMANDS, app

    registered = {
        (c.name or get_command_name(c.callback.__name__)): c.callback.__module__.rsplit(".", 1)[1]
        for c in app.registered_commands
        if c.callback is not None
    }
    for group in app.registered_groups:
        callback = group.typer_instance.registered_callback
        assert group.name is not None
        assert callback is not None
        assert callback.callback is not None
        registered[group.name] = callback.callback.__module__.rsplit(".", 1)[1]
    assert registered == COMMANDS


def test_a_command_imports_only_its_module() -> None:
    code = (
        "import sys\n"
        "from unitune.cli import main\n"
        "try:\n    main(['validate', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('unitune.cli.')))\n"
        "print(sorted(m for m in ('unitune.export', 'unitune.ledger', 'unitune.client', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules, heavy = out.strip().splitlines()[-2:]
    assert modules == "['unitune.cli._app', 'unitune.cli._warm']"  # (and the warm child's)
    assert heavy == "[]"


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--help"],
        ["runs", "--help"],
        ["runs", "show", "--help"],
        ["prices", "--bogus"],
        ["export"],
    ],
)
def test_a_lone_command_answers_as_the_whole_app(args: list[str]) -> None:
    from unitune.cli import COMMANDS, app
    from unitune.cli._app import only

    runner = CliRunner()
    whole = runner.invoke(app, args, prog_name="unitune")
    lone = runner.invoke(only(args[0]), args, prog_name="unitune")
    assert args[0] in COMMANDS
    assert (lone.exit_code, lone.output) == (whole.exit_code, whole.output)


def test_main_runs_a_command_and_falls_back_to_the_whole_app(capsys: pytest.CaptureFixture[str]) -> None:
    from unitune.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("unitune ")
    with pytest.raises(SystemExit) as exit_info:
        main(["valiate"])  # unknown: the whole app's "no such command", with its suggestion
    assert exit_info.value.code == 2
    assert "No such command 'valiate'" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--help"], []])
def test_the_top_level_help_lists_what_the_whole_app_does(args: list[str]) -> None:
    from unitune.cli import app
    from unitune.cli._app import help_only

    runner = CliRunner()
    whole = runner.invoke(app, args, prog_name="unitune")
    listed = runner.invoke(help_only(), args, prog_name="unitune")
    assert (listed.exit_code, listed.output) == (whole.exit_code, whole.output)
    assert "validate" in whole.output
    assert "runs" in whole.output


def test_the_help_imports_no_model_machinery() -> None:
    code = (
        "import sys\n"
        "from unitune.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pydantic', 'unitune.types', 'unitune.export', 'unitune.ledger', "
        "'unitune.config', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# --- the warm child of `unitune validate` ---------------------------------------------------------

needs_fork = pytest.mark.skipif(sys.platform != "linux", reason="the warm child is forked: Linux only")


def _cli(args: list[str], *, warm: bool, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"import sys\nfrom unitune.cli import _warm, main\n{prelude}\nmain(sys.argv[1:])\n"
    env = {**os.environ, "UNITUNE_WARM_CHILD": "1" if warm else "0"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


@needs_fork
@pytest.mark.parametrize(
    "options",
    [
        ["--provider", "openai", "--model", "gpt-4o-mini"],
        ["--provider", "together"],
        ["--provider", "bedrock"],
    ],
)
def test_the_warm_child_reports_what_the_cli_does_alone(tmp_path: Path, options: list[str]) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines(n=150))
    valid = write(tmp_path / "valid.jsonl", messy_lines(seed=9, n=40), bom=False)
    args = ["validate", str(path), "--validation", str(valid), "--json", *options]
    # The child must answer (not fall back unnoticed): the prelude says when it does.
    answered = (
        "ask = _warm.validate\n"
        "def tracked(**kw):\n"
        "    report = ask(**kw)\n"
        "    print('answered' if report is not None else 'fell back', file=sys.stderr)\n"
        "    return report\n"
        "_warm.validate = tracked\n"
    )
    warm = _cli(args, warm=True, prelude=answered)
    alone = _cli(args, warm=False)
    assert "answered" in warm.stderr
    assert (warm.returncode, warm.stdout) == (alone.returncode, alone.stdout)
    assert json.loads(warm.stdout)["stats"]["examples"] > 0


@needs_fork
def test_a_child_that_died_leaves_the_cli_to_validate(tmp_path: Path) -> None:
    path = write(tmp_path / "messy.jsonl", messy_lines(n=60))
    kill = "import os, signal\n_warm.start([]); os.kill(_warm._CHILD.pid, signal.SIGKILL)\n"
    args = ["validate", str(path), "--json", "--provider", "openai"]
    assert _cli(args, warm=True, prelude=kill).stdout == _cli(args, warm=False).stdout


@needs_fork
def test_an_unused_child_ends_with_the_cli(tmp_path: Path) -> None:
    # A usage error before validating: the CLI exits 2 and takes its child with it.
    prelude = (
        "start = _warm.start\n"
        "def tracked(args):\n"
        "    start(args)\n"
        "    print('child', _warm._CHILD.pid if _warm._CHILD else None, flush=True)\n"
        "_warm.start = tracked\n"
    )
    done = _cli(["validate", str(tmp_path / "missing.jsonl")], warm=True, prelude=prelude)
    assert done.returncode == 2
    pids = [int(w) for w in done.stdout.split() if w.isdigit()]
    assert len(pids) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_the_child_reads_its_hints_loosely(tmp_path: Path) -> None:
    from unitune.cli import _warm

    data = tmp_path / "d.jsonl"
    data.write_bytes(b"x" * 100)
    valid = tmp_path / "v.jsonl"
    valid.write_bytes(b"y" * 20)
    args = [str(data), "-p", "together", "--model=llama-3.1-8b-instruct", "--validation", str(valid)]
    assert _warm._peek(args) == ("together", "llama-3.1-8b-instruct", 120)
    assert _warm._peek(["--json"]) == (None, None, None)


def test_the_data_package_still_offers_its_submodules() -> None:
    code = (
        "import unitune.data\n"
        "print(unitune.data.profiles.get_profile('openai').name, unitune.data.tokens.counter_for.__name__)\n"
        "try:\n    unitune.data.nothing_here\nexcept AttributeError as e:\n    print('AttributeError', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "openai counter_for",
        "AttributeError module 'unitune.data' has no attribute 'nothing_here'",
    ]


def test_workers_are_not_forked_once_loading_the_tokenizer_started_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unitune.data import _validate as V

    answers = iter([True, False])  # one thread before the tokenizer loads, two after
    monkeypatch.setattr(V.pool, "_can_fork", lambda: next(answers))
    monkeypatch.setattr(V, "_CHUNK_BYTES", 1500)
    monkeypatch.setattr(V, "_MIN_CHUNK_BYTES", 1)
    plans: list[bool] = []
    run = V.passes._run_parallel

    def tracked(plan: Any, job: Any) -> Any:
        plans.append(plan.fork)
        yield from run(plan, job)

    monkeypatch.setattr(V.passes, "_run_parallel", tracked)
    path = write(tmp_path / "messy.jsonl", messy_lines(n=200))
    two = validate(path, provider="openai", model="gpt-4o-mini", workers=2)
    assert plans == [False]  # spawned instead
    assert dump(two) == dump(validate(path, provider="openai", model="gpt-4o-mini", workers=1))


@needs_fork
def test_a_file_that_gets_workers_is_validated_by_the_cli_itself(tmp_path: Path) -> None:
    # Workers are the CLI's own, so that its exit or a Ctrl-C ends them: the child is let go.
    path = write(tmp_path / "messy.jsonl", messy_lines(n=150))
    prelude = (
        "from unitune import _fork\n"
        "_warm.FORK_MIN_BYTES = 1\n"
        "ask = _warm.validate\n"
        "def tracked(**kw):\n"
        "    report = ask(**kw)\n"
        "    print('answered' if report is not None else 'in the CLI', file=sys.stderr)\n"
        "    return report\n"
        "_warm.validate = tracked\n"
    )
    done = _cli(["validate", str(path), "--json", "--provider", "openai"], warm=True, prelude=prelude)
    assert "in the CLI" in done.stderr
    assert done.stdout == _cli(["validate", str(path), "--json", "--provider", "openai"], warm=False).stdout


def test_without_its_table_every_non_ascii_text_goes_to_quicktok(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.read_text

    def missing(self: Path, *args: Any, **kwargs: Any) -> str:
        if self.name == "unassigned-14.0.txt":
            raise FileNotFoundError(self)
        return real(self, *args, **kwargs)

    quickstart._recent_characters.cache_clear()
    monkeypatch.setattr(Path, "read_text", missing)
    try:
        reference = quicktok.get_encoding("o200k_base")
        asked: list[str] = []
        count = quickstart.load("o200k_base", lambda: asked.append("quicktok") or reference)
        assert count is not None
        assert count("plain ascii") == reference.count("plain ascii")
        assert not asked
        assert count("café") == reference.count("café")
        assert asked
    finally:
        quickstart._recent_characters.cache_clear()


def test_if_quicktok_cannot_load_tiktoken_counts_the_recent_text_too() -> None:
    def broken() -> Any:
        raise RuntimeError("quicktok: cannot open vocab file")

    count = quickstart.load("o200k_base", broken)
    assert count is not None
    assert count("\u0cdc(M") > 0
