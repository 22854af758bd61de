"""The NexusTrade matching engine.

The matching core (``CORE_MODULES``, listed once in ``core_modules``: the book, the window of seen
ids, the market, command parsing, event rendering and the engine) is compiled with Cython when the
package is installed (``setup.py``; Cython's pure Python mode: the ``.pxd`` files next to the
modules type them), and the very same ``.py`` sources are the fallback wherever the extensions
were not built. The pure Python modules run instead of the compiled ones when
``NEXUS_MATCHING_PURE=1`` is set (``0`` or unset: compiled when built; any other value is an
error), and when an extension module is older than its sources (edited since the last build) or
missing while others are there (a partial build: the compiled modules use each other's types); a
``RuntimeWarning`` then says to rebuild with ``pip install -e .``.
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES, SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader

from nexus_matching.core_modules import CORE_MODULES

PURE_ENV = "NEXUS_MATCHING_PURE"
_FOLDER = os.path.dirname(os.path.abspath(__file__))


def _stale_extensions() -> list[str]:
    """The core modules whose extension module is older than their ``.py`` or ``.pxd``, and, when
    some core module has an extension module, those that have none (a partial build)."""
    stale: list[str] = []
    missing: list[str] = []
    for name in CORE_MODULES:
        sources = [os.path.join(_FOLDER, f"{name}{suffix}") for suffix in (".py", ".pxd")]
        newest_source = max(os.path.getmtime(path) for path in sources if os.path.exists(path))
        extensions = [os.path.join(_FOLDER, f"{name}{suffix}") for suffix in EXTENSION_SUFFIXES]
        built = [path for path in extensions if os.path.exists(path)]
        if not built:
            missing.append(name)
        elif any(os.path.getmtime(path) < newest_source for path in built):
            stale.append(name)
    if len(missing) < len(CORE_MODULES):  # something was built: all of it must be
        stale.extend(missing)
    return [name for name in CORE_MODULES if name in stale]


def _load_pure_core() -> None:
    """Import the core modules from their ``.py`` sources, ahead of any compiled module."""
    for name in CORE_MODULES:
        full_name = f"{__name__}.{name}"
        if full_name in sys.modules:
            continue
        loader = SourceFileLoader(full_name, os.path.join(_FOLDER, f"{name}.py"))
        spec = spec_from_loader(full_name, loader)
        assert spec is not None
        module = module_from_spec(spec)
        sys.modules[full_name] = module
        try:
            loader.exec_module(module)
        except BaseException:  # no half-loaded module left behind; re-raised
            del sys.modules[full_name]
            raise


def pure_requested() -> bool:
    """Is the pure Python engine asked for (``NEXUS_MATCHING_PURE=1``)? ``0`` or unset: no; any
    other value raises, so that a misspelt setting does not silently pick an engine."""
    value = os.environ.get(PURE_ENV, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{PURE_ENV} must be 1 (pure Python engine) or 0/unset (compiled when built), not {value!r}")
    return value == "1"


if pure_requested():
    _load_pure_core()
elif _stale := _stale_extensions():
    warnings.warn(
        f"nexus_matching: the extension of {', '.join(_stale)} is older than the source or missing; running the "
        "pure Python engine (rebuild with: pip install -e .)",
        RuntimeWarning,
        stacklevel=2,
    )
    _load_pure_core()


def implementation() -> str:
    """``"compiled"`` when the Cython extensions run every core module, else ``"pure"`` (Python
    source)."""
    modules = [import_module(f"{__name__}.{name}") for name in CORE_MODULES]
    compiled = all(not str(module.__file__).endswith(".py") for module in modules)
    return "compiled" if compiled else "pure"
