"""Deliberate copies between model files stay equal to their originals.

Each model file reads alone, so what `deberta.py` shares with `model.py` is copied, not imported.
A copy is marked on the line above it (above its decorators), as transformers marks its own
(`utils/check_copies.py`):

    # Copied from minibert_ner.model.FeedForward
    # Copied from minibert_ner.model.TokenClassifierOutput with TokenClassifierOutput->DebertaOutput

and must equal the original definition (class, function or method; decorators, docstring and
comments included) once the renames `with A->B, C->D` are applied to the original in order, up
to whitespace. Editing either side alone fails here: change both, or drop the marker.
"""

from __future__ import annotations

import ast
import difflib
import re
import textwrap
from pathlib import Path

import pytest

import minibert_ner

PACKAGE = Path(minibert_ner.__file__).parent
MARKER = re.compile(
    r"^\s*# Copied from minibert_ner\.(?P<target>[\w.]+)(?: with (?P<renames>.+))?$"
)
Definition = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def read(path: Path) -> tuple[list[str], dict[str, Definition]]:
    """A module's lines, and its classes, functions and methods by qualified name."""
    text = path.read_text("utf-8")
    found: dict[str, Definition] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, Definition):
                found[prefix + child.name] = child
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse(text), "")
    return text.splitlines(), found


def first_line(node: Definition) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def source(lines: list[str], node: Definition) -> str:
    return textwrap.dedent("\n".join(lines[first_line(node) - 1 : node.end_lineno]))


def original(target: str) -> str:
    """The source of `minibert_ner.<target>`, a definition in a module of the package."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        path = PACKAGE.joinpath(*parts[:i]).with_suffix(".py")
        if path.is_file():
            lines, defined = read(path)
            name = ".".join(parts[i:])
            assert name in defined, f"{path.name} defines no {name}"
            return source(lines, defined[name])
    raise AssertionError(f"minibert_ner.{target} is in no module of the package")


def difference(original: str, copy: str, renames: str | None = None) -> str | None:
    """None if `copy` is `original` after the renames ("A->B, C->D"), up to whitespace; else
    their diff."""
    for pair in filter(str.strip, (renames or "").split(",")):
        old, new = (side.strip() for side in pair.split("->"))
        original = original.replace(old, new)
    if original.split() == copy.split():
        return None
    diff = difflib.unified_diff(original.splitlines(), copy.splitlines(), lineterm="")
    return "\n".join(diff)


def markers() -> list[tuple[str, str | None, str | None, str | None]]:
    """(where, target, renames, the marked definition's source) for every `# Copied from`
    comment; target None: a malformed marker, source None: one above no definition."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines, defined = read(path)
        starts = {first_line(node): node for node in defined.values()}
        for number, line in enumerate(lines, start=1):
            if line.lstrip().startswith("# Copied from"):
                match = MARKER.match(line)
                node = starts.get(number + 1)
                found.append((
                    f"{path.relative_to(PACKAGE)}:{number}",
                    match and match["target"],
                    match and match["renames"],
                    source(lines, node) if node is not None else None,
                ))  # fmt: skip
    return found


MARKERS = markers()


def test_there_are_copies_to_check():
    assert len(MARKERS) >= 1
    assert any(target == "model.FeedForward" for _, target, _, _ in MARKERS)


@pytest.mark.parametrize(
    ("where", "target", "renames", "copy"), MARKERS, ids=[m[0] for m in MARKERS]
)
def test_every_copy_equals_its_original(where, target, renames, copy):
    assert target is not None, f"{where}: write # Copied from minibert_ner.X.Y[ with A->B]"
    assert copy is not None, f"{where}: the marker is not directly above a class or def"
    diff = difference(original(target), copy, renames)
    assert diff is None, f"{where} differs from minibert_ner.{target}:\n{diff}"


def test_the_check_catches_a_difference():
    """So that it cannot pass by comparing nothing: a changed line fails, whitespace and the
    renames do not."""
    first = 'def act(x):\n    """Half."""\n    return x / 2  # why\n'
    assert difference(first, first) is None
    assert difference(first, first.replace("    ", "        ")) is None  # indentation only
    assert difference(first, first.replace("2", "3")) is not None
    assert difference(first, first.replace("# why", "# how")) is not None  # comments count
    assert difference(first, first.replace('"""Half."""', '"""A half."""')) is not None
    renamed = first.replace("act", "gate").replace("Half", "Halved")
    assert difference(first, renamed) is not None
    assert difference(first, renamed, "act->gate, Half->Halved") is None
    assert difference(first, renamed, "act->gate") is not None
