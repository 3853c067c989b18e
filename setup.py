"""The one compiled part of unitune: validate's text scanner (src/unitune/data/_textscan.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the
install still succeeds and `unitune.data._textscan_py` does the same work in plain Python, slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "unitune.data._textscan",
            ["src/unitune/data/_textscan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
