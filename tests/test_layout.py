"""The package's layering, read from its source: no import cycle anywhere (imports inside
functions included), the model files leaves, `families.py` below the config, every module with
an explicit `__all__`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import minibert_ner

PACKAGE = Path(minibert_ner.__file__).parent
NAME = "minibert_ner"


def module_name(path: Path) -> str:
    parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The package modules that `path` imports, anywhere in it (at the top or inside a function,
    relative or absolute): `from .x import y` imports module `.x.y` when that is a module, else
    module `.x`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in known else module)
    # A module's own package (its __init__) is imported with it: not a dependency.
    return {m for m in found & known if m != name and not name.startswith(m + ".")}


def graph() -> dict[str, set[str]]:
    known = modules()
    names = set(known)
    edges = {name: imports(path, names) for name, path in known.items()}
    # A package's __init__ is imported with any of its modules; its own imports of its
    # submodules are re-exports, not dependencies of those submodules.
    return {
        name: {m for m in targets if not (m.startswith(name + "."))}
        for name, targets in edges.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycles():
    edges = graph()
    # The reading is right: edges at the top, inside functions, through packages.
    assert "minibert_ner.model" in edges["minibert_ner.checkpoint"]
    assert "minibert_ner.batch.ray_engine" in edges["minibert_ner.batch.job"]  # in a function
    assert "minibert_ner.inference.pipeline" in edges["minibert_ner.batch.local"]  # idem
    assert "minibert_ner.batch.job" in edges["minibert_ner.cli.batch"]
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize(
    ("file", "allowed"),
    [
        ("model.py", {"config", "packing"}),
        ("deberta.py", {"config", "packing"}),
        ("packing.py", set()),
    ],
)
def test_model_is_a_leaf(file, allowed):
    """Each model file can be copied and edited alone: it imports torch, the standard library,
    the config and packing.py (which imports nothing of ours), nothing else of ours."""
    tree = ast.parse((PACKAGE / file).read_text("utf-8"))
    ours, others = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            (ours if node.level else others).add(node.module or "")
        elif isinstance(node, ast.Import):
            others.update(alias.name for alias in node.names)
    assert ours <= allowed
    stdlib = {"__future__", "math", "dataclasses", "collections", "torch"}
    assert {m.split(".")[0] for m in others} <= stdlib


def test_families_is_data_below_config():
    """families.py, which config.py (read by `--help` before torch loads) is built on, imports
    nothing of ours, and torch only for type checkers."""
    tree = ast.parse((PACKAGE / "families.py").read_text("utf-8"))
    for_checkers = {
        id(node)
        for block in tree.body
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    at_runtime = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not node.level, "families.py imports a module of ours"
            if id(node) not in for_checkers:
                at_runtime.add(node.module or "")
        elif isinstance(node, ast.Import) and id(node) not in for_checkers:
            at_runtime.update(alias.name for alias in node.names)
    assert {m.split(".")[0] for m in at_runtime} <= {
        "__future__",
        "collections",
        "dataclasses",
        "typing",
    }
    assert "minibert_ner.families" in graph()["minibert_ner.config"]


def test_every_module_declares_its_public_names():
    """An explicit `__all__` in every module, naming things the module really has."""
    import importlib

    for name in modules():
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ names what it lacks: {missing}"
