"""The shape docs/architecture.md promises of the code itself: short functions in the library and the app."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # the checkout
MAX_LINES = 80  # docs/architecture.md: a longer function is split into helpers (or route groups)


def long_functions(folder: Path, limit: int = MAX_LINES) -> list[str]:
    """Every function or method under `folder` longer than `limit` lines (decorators and docstring
    included), as 'path:line name (n lines)'."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - first + 1
                if lines > limit:
                    found.append(f"{folder.name}/{path.relative_to(folder)}:{first} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_library_or_the_app_is_over_80_lines():
    assert [folder.name for folder in (ROOT / "core", ROOT / "streamlit_app") if folder.is_dir()] == [
        "core",
        "streamlit_app",
    ]
    assert long_functions(ROOT / "core") + long_functions(ROOT / "streamlit_app") == []


def test_the_length_check_counts_nested_functions_with_their_decorators(tmp_path):
    """A route inside a route group (as core/api/app.py's) counts from its decorator."""
    folder = tmp_path / "app"
    folder.mkdir()
    body = "\n".join(f"        x{n} = {n}" for n in range(MAX_LINES - 1))
    (folder / "routes.py").write_text(f"def group():\n    @route\n    def inner():\n{body}\n    return inner\n")
    assert long_functions(folder) == [
        f"app/routes.py:1 group ({MAX_LINES + 3} lines)",
        f"app/routes.py:2 inner ({MAX_LINES + 1} lines)",
    ]
    assert long_functions(folder, MAX_LINES + 3) == []
