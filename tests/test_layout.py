"""The folder layout is the architecture: no import cycles, small modules, directory and peer apart.

Imports are read with ast (nothing is imported), including those inside functions: an import
moved into a function to dodge a cycle is still a cycle.
"""
import ast

import pytest

from tests.procs import ROOT

PACKAGES = ("directory_api", "peer_node", "protos", "bench")
PRODUCT = ("directory_api", "peer_node")
MAX_LINES = 500


def module_files(package):
    """{dotted module name: path} of every Python file of a package."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = {name: path for package in PACKAGES for name, path in module_files(package).items()}


def imports_of(name, path, known):
    """The modules of `known` that module `name` (at path) imports, anywhere in its code."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import mod` imports the submodule; `from mod import name` the module.
            candidates = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                          for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:  # `import a.b.c` of a name inside a.b
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


GRAPH = {name: imports_of(name, path, MODULES) for name, path in MODULES.items()}


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_cycles_and_relative_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert {"directory_api.store.engine", "directory_api.store.publish", "directory_api.store.copies",
            "directory_api.store.schema"} <= GRAPH["directory_api.store.sessions"]  # from .engine import ...
    assert "directory_api.errors" in GRAPH["directory_api.store.writelock"]  # from ..errors import


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    inside = {name: {t for t in targets if t.split(".")[0] == package}
              for name, targets in GRAPH.items() if name.split(".")[0] == package}
    assert cycles(inside) == []


@pytest.mark.parametrize("package", PRODUCT)
def test_product_modules_stay_small(package):
    long = {str(path.relative_to(ROOT)): n for path in (ROOT / package).rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: split them"


@pytest.mark.parametrize("package, other", [("directory_api", "peer_node"), ("peer_node", "directory_api")])
def test_the_directory_and_the_peer_share_nothing_but_the_protos(package, other):
    crossing = {name: sorted(t for t in targets if t.split(".")[0] == other)
                for name, targets in GRAPH.items() if name.split(".")[0] == package}
    assert {name: t for name, t in crossing.items() if t} == {}


def test_nothing_imports_the_profile_cli():
    assert [name for name, targets in GRAPH.items() if "bench.profile" in targets] == []
