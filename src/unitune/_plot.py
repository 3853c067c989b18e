"""Loss curves as PNG files, shared by `unitune demo` and `unitune metrics --plot`.

matplotlib is the optional `plot` extra (`pip install 'unitune[plot]'`), so it is imported only when a
plot is asked for, and its absence is an answer (None), not an error: each caller decides whether a
missing plot is worth saying.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from unitune.types import StepMetric

__all__ = ["loss_png"]


def loss_png(metrics: Sequence[StepMetric], path: Path, *, title: str = "loss") -> Path | None:
    """Write the training (and validation, when reported) loss curve to `path` as a PNG.

    Returns `path`, or None when matplotlib (the `plot` extra) is not installed.
    """
    try:
        import matplotlib

        # Agg: no display is needed (CI, SSH sessions) and no GUI backend is ever started.
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [(m.step, m.train_loss) for m in metrics if m.train_loss is not None]
    valid = [(m.step, m.valid_loss) for m in metrics if m.valid_loss is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", linewidth=1)
    if valid:
        ax.plot([s for s, _ in valid], [v for _, v in valid], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
