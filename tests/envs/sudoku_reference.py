"""Plain-Python Sudoku checks the tests compare the library against (no solver, no torch)."""

from __future__ import annotations

import numpy as np


def is_valid_grid(grid: np.ndarray, box: tuple[int, int]) -> bool:
    """Every row, column and box holds 1..n exactly once (checked without the solver)."""
    r, c = box
    n = r * c
    g = np.asarray(grid).reshape(n, n)
    boxes = g.reshape(n // r, r, n // c, c).transpose(0, 2, 1, 3).reshape(n, n)
    expected = list(range(1, n + 1))
    return all(sorted(unit) == expected for part in (g, g.T, boxes) for unit in part.tolist())
