"""Sudoku of any box shape: rules, solver, generator, readers, augmentations, rendering."""

from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.readers import read_puzzles, write_puzzles
from hrm_rl.envs.sudoku.rules import BOX_SHAPES, SudokuRules, rules_for_size
from hrm_rl.envs.sudoku.solver import Rating, count_solutions, rate, solve

__all__ = [
    "BOX_SHAPES",
    "Rating",
    "SudokuRules",
    "count_solutions",
    "generate",
    "rate",
    "read_puzzles",
    "rules_for_size",
    "solve",
    "write_puzzles",
]
