"""Puzzle families by name, and the Gymnasium ids registered when ``hrm_rl`` is imported."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym

from hrm_rl.envs.base import PuzzleRules

ENTRY_POINT = "hrm_rl.envs.gym_env:PuzzleEnv"

# Gymnasium id -> keyword arguments of PuzzleEnv
GYM_IDS: dict[str, dict] = {
    "hrm_rl/Sudoku-v0": {"family": "sudoku", "box": (3, 3)},
    "hrm_rl/Sudoku4x4-v0": {"family": "sudoku", "box": (2, 2)},
    "hrm_rl/Sudoku6x6-v0": {"family": "sudoku", "box": (2, 3)},
}


def _sudoku(box: Sequence[int] = (3, 3)) -> PuzzleRules:
    from hrm_rl.envs.sudoku.rules import SudokuRules

    if len(box) != 2:
        raise ValueError(f"sudoku box must be [rows, cols], got {list(box)}")
    return SudokuRules(int(box[0]), int(box[1]))


FAMILIES: dict[str, Callable[..., PuzzleRules]] = {"sudoku": _sudoku}


def make_rules(family: str, box: Sequence[int] = (3, 3)) -> PuzzleRules:
    """The rules object of a family by name (``"sudoku"``), with its size options."""
    if family not in FAMILIES:
        raise ValueError(f"unknown puzzle family {family!r}; known families: {sorted(FAMILIES)}")
    return FAMILIES[family](box)


def register_gym_ids() -> None:
    """Register every id of :data:`GYM_IDS` with Gymnasium (once; re-imports are harmless)."""
    for env_id, kwargs in GYM_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=ENTRY_POINT, kwargs=dict(kwargs))
