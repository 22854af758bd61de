"""The modules of ``nexus_matching`` compiled with Cython: the one list of them.

Read by the package (``nexus_matching.__init__``: which modules to load from source, and which
extension modules to check), by ``setup.py`` (by path, before the package is installed: this
file imports nothing) and by the container build (``python nexus_matching/core_modules.py``
prints the source files to compile). Each is compiled in Cython's pure Python mode: its ``.py``
source, typed by the ``.pxd`` file next to it where it has one. They are the modules on the path
of every command (matching, the window of seen ids, the market's conversions and stops, parsing,
rendering); configuration and snapshot / restore run at start-up and are not compiled.
"""

# In import order: a module comes after the compiled modules it imports.
CORE_MODULES = ("book", "seen", "market", "commands", "render", "engine")

if __name__ == "__main__":
    print(" ".join(f"nexus_matching/{name}.py" for name in CORE_MODULES))
