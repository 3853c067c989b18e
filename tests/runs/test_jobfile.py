"""Job files: the schema, its one-line errors with the key and the line, paths and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runs.conftest import job_toml
from unitune.errors import ConfigurationError
from unitune.runs import JobFile, load_job_file


def test_a_job_file_loads_with_absolute_paths_and_its_stem_as_name(tmp_path: Path, tickets: Path) -> None:
    path = job_toml(tmp_path, '[tracking]\nbackend = "mlflow"\n', name="nightly.toml")
    path.write_text(path.read_text().replace('name = "tickets"\n', ""))
    job = load_job_file(path)
    assert job.name == "nightly"
    assert job.data.training == tickets.resolve()
    assert job.data.validation_split == 0.25
    assert job.hyperparameters.epochs == 2
    assert job.tracking is not None
    assert job.tracking.backend == "mlflow"
    assert job.evaluate.candidates == ["base", "base:few-shot=2"]


def test_overrides_win_over_the_file_and_build_missing_tables(tmp_path: Path, tickets: Path) -> None:
    job = load_job_file(job_toml(tmp_path), {"provider": "fake", "hyperparameters.epochs": 5,
                                            "tracking.backend": "wandb", "model": None})  # fmt: skip
    assert (job.provider, job.hyperparameters.epochs, job.model) == ("fake", 5, "llama-3.1-8b-instruct")
    assert job.tracking is not None
    assert job.tracking.backend == "wandb"


def test_a_dict_resolves_paths_against_the_working_directory(
    tmp_path: Path, tickets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = load_job_file({"data": {"training": "tickets.jsonl"}, "hyperparameters": {"epochs": 1}})
    assert job.data.training == tickets.resolve()
    assert JobFile.model_validate_json(job.model_dump_json()) == job


def test_an_unknown_key_names_its_line_and_the_closest_key(tmp_path: Path, tickets: Path) -> None:
    path = job_toml(tmp_path)
    path.write_text(path.read_text().replace("epochs = 2", "epoch = 2"))
    with pytest.raises(ConfigurationError) as e:
        load_job_file(path)
    text = str(e.value)
    assert f"{path} line 7: unknown key 'hyperparameters.epoch'" in text
    assert "Did you mean 'epochs'?" in text
    assert "\n" not in text


def test_an_unknown_top_level_key_and_a_table_typo(tmp_path: Path, tickets: Path) -> None:
    path = job_toml(tmp_path, "[evaluation]\nmax_examples = 3\n")
    with pytest.raises(
        ConfigurationError, match=r"line 10: unknown key 'evaluation'.*Did you mean 'evaluate'"
    ):
        load_job_file(path)


def test_a_wrong_type_names_key_line_and_value(tmp_path: Path, tickets: Path) -> None:
    path = job_toml(tmp_path, "max_examples = 'ten'\n")
    with pytest.raises(ConfigurationError, match=r"line 10: evaluate.max_examples = 'ten' is not valid"):
        load_job_file(path)
    path = job_toml(tmp_path)
    path.write_text(path.read_text().replace("epochs = 2", "epochs = 0"))
    with pytest.raises(ConfigurationError, match=r"line 7: hyperparameters.epochs = 0 is not valid"):
        load_job_file(path)


def test_a_missing_data_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = job_toml(tmp_path)  # no tickets.jsonl next to it
    with pytest.raises(ConfigurationError, match=r"line 4: data.training = 'tickets.jsonl' does not exist"):
        load_job_file(path)


def test_a_missing_data_table_and_both_validation_sources(tmp_path: Path, tickets: Path) -> None:
    (tmp_path / "bare.toml").write_text('model = "x"\n')
    with pytest.raises(ConfigurationError, match="data is required"):
        load_job_file(tmp_path / "bare.toml")
    path = job_toml(tmp_path)
    path.write_text(
        path.read_text().replace(
            "validation_split = 0.25", "validation_split = 0.25\nvalidation = 'tickets.jsonl'"
        )
    )
    with pytest.raises(ConfigurationError, match="either validation or validation_split"):
        load_job_file(path)


def test_bad_toml_a_missing_file_and_a_wrong_source_type(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        load_job_file(tmp_path / "broken.toml")
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_job_file(tmp_path / "nope.toml")
    with pytest.raises(ConfigurationError, match="not a int"):
        load_job_file(3)  # type: ignore[arg-type]


def test_the_training_key_follows_what_is_trained_not_how_it_is_evaluated(
    tmp_path: Path, tickets: Path
) -> None:
    a = load_job_file(job_toml(tmp_path))
    b = load_job_file(job_toml(tmp_path), {"evaluate.max_examples": 5, "name": "other"})
    c = load_job_file(job_toml(tmp_path), {"hyperparameters.epochs": 3})
    assert a.training_key("d", "together", "m") == b.training_key("d", "together", "m")
    assert a.training_key("d", "together", "m") != c.training_key("d", "together", "m")
    assert a.training_key("d", "together", "m") != a.training_key("e", "together", "m")
    assert a.training_key("d", "together", "m") != a.training_key("d", "bedrock", "m")
