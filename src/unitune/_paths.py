"""unitune's cache directory, in a module that imports no pydantic (the config's models).

The token counter's rank table and the parsed catalog are cached here; both are read in the first
moments of `unitune validate`, before anything else needs the config.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "UNITUNE_CACHE"


def cache_dir() -> Path:
    """The cache of unitune (converted models, the parsed catalog): `$UNITUNE_CACHE` or the user cache dir.

    Everything here can be deleted and is rebuilt on demand.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("unitune", appauthor=False))
