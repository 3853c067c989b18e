"""Runs: fine-tunes declared in job files, reproducible, retrainable, swept and tracked.

    result = client.train("examples/jobs/tickets.toml")       # validate, quote, train, evaluate
    child = client.retrain(result.run.run_id, data="more.jsonl")  # the same spec on new data
    sweep = client.sweep("job.toml", grid={"epochs": [1, 3]}, providers=["together", "local"])

Each run is a row of the ledger's `runs` table (`unitune runs`): the spec, the data's fingerprint,
the job, the evaluation's score and verdict, and the parent run. See docs/runs.md.
"""

from unitune.runs._jobfile import DataSection, EvaluateSection, JobFile, load_job_file
from unitune.runs._lineage import DataChange, diff_data
from unitune.runs._retrain import find_run, retrain
from unitune.runs._sweep import (
    GRID_KEYS,
    LeaderboardRow,
    SweepInterrupted,
    SweepResult,
    parse_grid,
    run_sweep,
)
from unitune.runs._train import RunInterrupted, RunResult, run_job
from unitune.runs._wait import wait_all

__all__ = [
    "GRID_KEYS",
    "DataChange",
    "DataSection",
    "EvaluateSection",
    "JobFile",
    "LeaderboardRow",
    "RunInterrupted",
    "RunResult",
    "SweepInterrupted",
    "SweepResult",
    "diff_data",
    "find_run",
    "load_job_file",
    "parse_grid",
    "retrain",
    "run_job",
    "run_sweep",
    "wait_all",
]
