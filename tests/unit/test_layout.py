"""The layout holds: imports point down (admin → tasks → pipeline → models), the pipeline
never imports Celery, modules and functions stay small, and every ``__all__`` is honest."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("models", "pipeline", "tasks", "admin")  # each may import only those before it
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.Module) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


ALL = _modules(*LAYERS)


@pytest.mark.parametrize("path", ALL, ids=_name)
def test_imports_only_point_down(path: Path) -> None:
    layer = LAYERS.index(_name(path).split(".")[0])
    allowed = set(LAYERS[: layer + 1])
    ours = {m.split(".")[0] for m in _imported(ast.parse(path.read_text()))} & set(LAYERS)
    assert ours <= allowed, f"{_name(path)} imports {sorted(ours - allowed)} from a higher layer"


@pytest.mark.parametrize("path", _modules("pipeline", "models"), ids=_name)
def test_the_pipeline_never_imports_celery(path: Path) -> None:
    imported = _imported(ast.parse(path.read_text()))
    assert not {m for m in imported if m.split(".")[0] in ("celery", "kombu")}


@pytest.mark.parametrize("path", ALL, ids=_name)
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{_name(path)} is over 400 lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"  # type: ignore[operator]
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES  # type: ignore[operator]
    ]
    assert not long, f"{_name(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("path", ALL, ids=_name)
def test_every_module_says_what_it_holds(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring and len(docstring) > 20, f"{_name(path)} has no docstring"


@pytest.mark.parametrize("path", [p for p in ALL if "__all__" in p.read_text()], ids=_name)
def test_all_is_honest(path: Path) -> None:
    """Every name in ``__all__`` exists, and every public class or function is in it."""
    module = importlib.import_module(_name(path))
    exported = set(module.__all__)
    assert all(hasattr(module, name) for name in exported)
    defined = {
        node.name
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and not node.name.startswith("_")
    }
    assert defined <= exported, f"{_name(path)}: public but not in __all__: {defined - exported}"
