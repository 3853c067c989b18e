"""Choices the library and the CLI share, in a module that imports nothing else.

`unitune --help` lists every command, and a command's options are built from these: kept here, the
help does not import `unitune.export` (and pydantic's model machinery) to offer them.
"""

from __future__ import annotations

from typing import Literal

#: What `export` writes (re-exported as `unitune.export.ExportFormat`).
ExportFormat = Literal["peft", "merged", "gguf", "ollama"]
#: The precision of exported weights (re-exported as `unitune.export.ExportDtype`).
ExportDtype = Literal["f16", "f32"]
