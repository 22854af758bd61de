"""No import circle among the repository's own packages: ``nexus`` (the CLI and the local
runtime), ``nexus_common``, every ``nexus_<service>``, ``nexus_matching``, ``nexus_fix`` and
``nexus_marketmaker`` (the packages ``pyproject.toml`` maps to folders).

Every import counts, a deferred one inside a function too (it is a circle all the same, only
hidden until the call); an import under ``if TYPE_CHECKING:`` does not (it never runs)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def package_folders() -> dict[str, Path]:
    """Each of the repository's top-level packages and its folder, as pyproject.toml maps them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    folders = {"nexus": ROOT / "nexus"}
    for name, folder in config["tool"]["setuptools"]["package-dir"].items():
        if "." not in name:
            folders[name] = ROOT / folder
    return folders


def modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of those packages."""
    found: dict[str, Path] = {}
    for package, folder in package_folders().items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports (``from a import b`` is ``a.b`` when that
    is a module, else ``a``); relative imports resolved."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name in known)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    target = child.module or ""
                for alias in child.names:
                    if f"{target}.{alias.name}" in known:
                        found.add(f"{target}.{alias.name}")
                    elif target in known:
                        found.add(target)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {module: imports_of(module, path, known) for module, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_walk_sees_every_package_and_the_imports_between_them() -> None:
    # GIVEN / WHEN the import graph of the repository's packages
    graph = import_graph()
    # THEN it holds the CLI, the kernel, the engine, the containers and the services ...
    packages = {module.split(".")[0] for module in graph}
    assert {"nexus", "nexus_common", "nexus_matching", "nexus_fix", "nexus_marketmaker"} <= packages
    assert {"nexus_orders", "nexus_portfolio", "nexus_auth", "nexus_risk"} <= packages
    # ... and the edges the code has, deferred imports included
    assert "nexus.platform" in graph["nexus.cli"]
    assert "nexus.local.runtime" in graph["nexus.platform"]  # inside a function


def test_the_cycle_finder_finds_a_circle() -> None:
    # GIVEN a graph with one circle a -> b -> c -> a and a tail
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    # WHEN / THEN it is found, and only it
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_circle_in_the_repository() -> None:
    # GIVEN the import graph of the repository's own packages
    graph = import_graph()
    # WHEN its circles are sought / THEN there are none
    assert cycles(graph) == []
