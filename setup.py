"""Build of the compiled matching core; everything else about the project is in pyproject.toml.

``pip install -e ".[dev]"`` (and a wheel build) compiles the matching core, the modules listed in
``nexus_matching/core_modules.py``, with Cython (pure Python mode: the same ``.py`` files, typed by
the ``.pxd`` files next to them). The extensions are optional: without a C compiler the install
still succeeds and the engine runs as pure Python (``nexus_matching.implementation()``).
"""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import Extension, setup

MATCHING = Path("containers/matching")
# The one list of compiled modules, read by path: the package is not importable before it is installed.
CORE_MODULES: tuple[str, ...] = runpy.run_path(str(MATCHING / "nexus_matching" / "core_modules.py"))["CORE_MODULES"]


def matching_extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:  # no Cython: the pure Python engine
        return []
    extensions = [
        Extension(f"nexus_matching.{name}", [str(MATCHING / "nexus_matching" / f"{name}.py")])
        for name in CORE_MODULES
    ]
    # The compiler directives are in the modules' first line, so ``cythonize`` alone (the
    # container build) compiles them the same way.
    compiled: list[Extension] = cythonize(  # type: ignore[no-untyped-call]  # Cython ships no annotations
        extensions, include_path=[str(MATCHING)], quiet=True
    )
    for extension in compiled:
        extension.optional = True  # a failed C build leaves the pure Python module (cythonize drops the flag)
    return compiled


setup(ext_modules=matching_extensions())
