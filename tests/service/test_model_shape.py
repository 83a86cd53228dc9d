"""The service and web layers take the image shape from the loaded model: no code of theirs writes Janus-Pro's
token count (576) or image side (384), as a number or in a text; docstrings and comments may name them. (The
ranges, crops and texts that follow an 8x8 model are tested through its served app: tests/web/test_app_images.py,
test_app_edits.py, and tests/service/test_edits.py, test_requests.py.)"""

import ast
from pathlib import Path

from support import ROOT

SHAPE_LITERALS = (576, 384)


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def shape_literals(path: Path) -> list[str]:
    """'file:line value' for each number or text (outside docstrings) holding 576 or 384."""
    tree = ast.parse(path.read_text())
    skip, found = docstrings(tree), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in skip:
            continue
        value = node.value
        number = isinstance(value, int) and not isinstance(value, bool) and value in SHAPE_LITERALS
        text = isinstance(value, str) and any(str(literal) in value for literal in SHAPE_LITERALS)
        if number or text:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {value!r}")
    return found


def test_no_service_or_web_code_writes_janus_pros_grid_or_image_size():
    files = sorted((ROOT / "janus_demo" / "service").glob("*.py")) + sorted((ROOT / "janus_demo" / "web").glob("*.py"))
    assert len(files) > 20
    assert [hit for path in files for hit in shape_literals(path)] == []
