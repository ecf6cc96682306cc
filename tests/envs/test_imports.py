"""The env package imports at module top only, so its import graph is plain to read and acyclic."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENVS = Path(__file__).resolve().parents[2] / "envs"


def imports_inside_functions(path: Path) -> list[str]:
    """``file:line: statement`` for every import statement inside a function body of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_import_statement_lies_inside_a_function():
    sources = sorted(ENVS.rglob("*.py"))
    assert sources, f"no Python files found under {ENVS}"
    found = sorted({hit for path in sources for hit in imports_inside_functions(path)})
    assert not found, (
        "imports inside functions (move them to the module top; break a cycle by moving the "
        "shared names into a lower module, not by hiding the import):\n" + "\n".join(found)
    )


def test_the_generic_env_modules_load_no_puzzle_family():
    code = (
        "import sys\n"
        "import hrm_rl.envs.base, hrm_rl.envs.curriculum, hrm_rl.envs.registration\n"
        "print(sorted(m for m in sys.modules if m.startswith(('hrm_rl.envs.sudoku', "
        "'hrm_rl.envs.maze'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
