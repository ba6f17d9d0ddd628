"""The plugin's shape (the shell and the core): no import circles, and no file over MAX_LINES
lines.

Every import counts, at module level or inside a function (a function-level import still ties
the two modules together; it only hides the circle until run time). `from x import y` is an
import of the module x.y when y is a submodule, else of x.
"""

import ast
from pathlib import Path

import strata

MAX_LINES = 600
PACKAGE = Path(strata.__file__).parent


def modules() -> dict:
    """{dotted name: file} of every module of the package, `__init__.py` as its package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known) -> set:
    """The modules of `known` that module `name` (at `path`) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return (found & set(known)) - {name}


def import_graph() -> dict:
    """{module: the modules of the package it imports}."""
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def circles(graph: dict) -> list:
    """Every import circle of `graph`, each as a path of modules back to its first one (one
    circle per strongly connected component, found by Tarjan's algorithm)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = set()
            while module not in component:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
            if len(component) > 1:
                components.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [cycle_in(graph, component) for component in components]


def cycle_in(graph: dict, component: set) -> list:
    """One circle through the component's first module: a shortest way back to it."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        step = []
        for module in frontier:
            for other in sorted(graph[module] & component):
                if other == start:
                    return paths[module] + [start]
                if other not in paths:
                    paths[other] = paths[module] + [other]
                    step.append(other)
        frontier = step
    raise AssertionError(f"{sorted(component)} is no circle")


def test_circles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c", "a"]]


def test_no_import_circles():
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_file_is_over_the_limit():
    lines = {path.relative_to(PACKAGE.parent): len(path.read_text().splitlines())
             for path in modules().values()}
    over = sorted(f"{path}: {count}" for path, count in lines.items() if count > MAX_LINES)
    assert not over, f"over {MAX_LINES} lines:\n" + "\n".join(over)
