"""The Python examples in README.md run as written (with small puzzle files in place)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hrm_rl.envs.maze.rules import MazeRules
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.readers import write_puzzles

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    puzzles = generate(np.random.default_rng(0), 5, box=(3, 3))
    write_puzzles(tmp_path / "puzzles.txt", puzzles)
    rows = ["quizzes,solutions"] + [
        "".join(map(str, b)) + "," + "".join(map(str, s[0]))
        for b, s in zip(puzzles.boards, puzzles.solutions, strict=True)
    ]
    (tmp_path / "sudoku.csv").write_text("\n".join(rows) + "\n")
    mazes = MazeRules(30, 30).generate(np.random.default_rng(0), 2)
    chars = np.array(list(" #SGo"))  # tokens 0..4: open, wall, start, goal, path
    lines = ["question,answer"] + [
        "".join(chars[b]) + "," + "".join(chars[s[0]])
        for b, s in zip(mazes.boards, mazes.solutions, strict=True)
    ]
    (tmp_path / "maze30_hard_sample50.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
