"""Processes and cores: whether this process may fork, and how many CPUs it may use.

A module that imports nothing, for the CLI's first moments.
"""

from __future__ import annotations

import os
import sys

#: From this size `validate` forks worker processes (`data._validate.pool`); below it one process
#: checks the file, the CLI's warm child where there is one (`cli._warm`).
FORK_MIN_BYTES = 4 << 20


def can_fork() -> bool:
    """Whether this process may fork: on Linux, from a process that runs one thread.

    With a single thread no lock can be held by another one at the fork, so the child is a sound
    copy (the reason `fork` is unsafe in general, and why Python warns when a process with threads
    forks). The count is the kernel's, so threads started by C libraries count too.
    """
    if sys.platform != "linux":
        return False
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[17]) == 1  # field 20: num_threads
    except (OSError, ValueError, IndexError):
        return False


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), not the machine's.

    In a container the hardware can show far more cores than the process may use; pools and
    tokenizer threads sized by the hardware oversubscribe them.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
