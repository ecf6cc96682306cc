"""Fixtures shared by the maze test modules: the 30×30 maze files."""

from __future__ import annotations

import pytest
from maze_reference import HARD

from hrm_rl.envs.maze.readers import read_mazes


@pytest.fixture(scope="module", params=["self-made", "shared"])
def hard(request: pytest.FixtureRequest):
    """The self-made ``question_answer.csv`` of tests/data (6 mazes), then the Maze-Hard sample
    of ../shared/data (50 mazes; skipped when that folder is absent)."""
    if request.param == "self-made":
        folder = request.getfixturevalue("self_made_data") / "maze"
        return read_mazes(folder / "question_answer.csv")
    return read_mazes(request.getfixturevalue("shared_data") / HARD)
