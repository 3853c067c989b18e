"""Waiting on a job with a progress bar and its log, for `unitune wait` and `unitune demo`.

Waiting on a job with a progress bar and the job's own log above it: shared by `unitune wait` and
`unitune demo`, so neither imports the other (the demo used to reach into the CLI's private helpers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unitune.errors import UnituneError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from unitune.client import FineTuneClient
    from unitune.types import Job

__all__ = ["wait_with_progress"]


def wait_with_progress(
    client: FineTuneClient,
    job_id: str,
    *,
    console: Console,
    timeout: float | None = None,
    poll_interval: float | None = None,
    on_update: Callable[[Job], None] | None = None,
) -> Job:
    """Wait for a job, drawing a progress bar and printing its events.

    `client.wait(job_id)` drawing a bar on `console`, with the job's events printed as they come
    (and `on_update(job)` called after each poll, as `wait` would).
    """
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(job_id, total=1.0)
        shown = 0
        follow = client.provider.capabilities.events

        def update(job: Job) -> None:
            nonlocal shown, follow
            if on_update is not None:
                on_update(job)
            progress.update(
                task,
                completed=job.progress if job.progress is not None else 0.0,
                description=f"{escape(job.id)} {job.status.value}",
            )
            if follow:
                # The job's own log above the bar: a long model fetch or conversion shows as it
                # happens instead of a bar stuck at 0%.
                try:
                    events = client.events(job.id)
                except UnituneError:
                    follow = False  # the log is a nicety; the wait itself goes on
                    return
                for event in events[shown:]:
                    progress.console.print(f"  [dim]{event.created_at:%H:%M:%S}[/] {escape(event.message)}")
                shown = len(events)

        return client.wait(job_id, timeout=timeout, poll_interval=poll_interval, on_update=update)
