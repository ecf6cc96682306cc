"""Sudoku of any box shape: rules, solver, generator, readers, augmentations."""

from hrm_rl.envs.sudoku.rules import BOX_SHAPES, SudokuRules, rules_for_size

__all__ = ["BOX_SHAPES", "SudokuRules", "rules_for_size"]
