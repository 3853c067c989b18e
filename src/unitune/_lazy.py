"""Names a package loads on first use (PEP 562), shared by `unitune`, `unitune.data` and `unitune.testing`.

Importing such a package costs almost nothing: the CLI, the pytest plugin and `unitune validate`'s
first moments import it without the pydantic models and libraries behind its names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def loader(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any], *, submodules: bool = False
) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name of `exports` from its module, kept once loaded.

    With `submodules`, any other name is tried as a submodule (`unitune.data.tokens`), as when the
    package imported them all.
    """

    def get(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            if submodules:
                try:
                    return import_module(f"{package}.{name}")
                except ModuleNotFoundError as e:
                    if e.name != f"{package}.{name}":
                        raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    return get
