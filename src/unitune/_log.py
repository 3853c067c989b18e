"""unitune's loggers, with the library's `NullHandler` attached when the first one is made.

A library logs, the application decides where it goes: without the handler, warnings from retries
would reach stderr through logging's last-resort handler in every program that uses unitune. It is
attached here rather than in `unitune/__init__` so that `import unitune` does not import `logging`
(~10 ms).
"""

from __future__ import annotations

import logging

logging.getLogger("unitune").addHandler(logging.NullHandler())


def get_logger(name: str = "unitune") -> logging.Logger:
    """The logger `name` (under "unitune"), with the library's handler in place."""
    return logging.getLogger(name)
