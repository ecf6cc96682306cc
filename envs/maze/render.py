"""Pictures of mazes: one character or one coloured square per cell.

* :func:`render_ansi` writes HRM's charset ``# SGo`` (wall, open, S, G, path); an open cell that a
  whole-board proposal marked off the path (token 5) is a space like any open cell.
* :func:`render_rgb` paints each cell ``CELL_PX`` pixels square: walls dark, open cells white, S
  green, G red, path blue, with a thin grey grid between cells.
"""

from __future__ import annotations

import numpy as np

CHARACTERS = " #SGo "  # token t -> CHARACTERS[t]: open, wall, S, G, path, off-path
CELL_PX = 12
GRID_LINE = (200, 200, 200)
COLOURS = np.array(
    [
        (255, 255, 255),  # 0 open
        (40, 40, 40),  # 1 wall
        (30, 170, 60),  # 2 S
        (220, 40, 40),  # 3 G
        (40, 90, 230),  # 4 path
        (255, 255, 255),  # 5 off the path
    ],
    dtype=np.uint8,
)


def _grid(board: np.ndarray, size: tuple[int, int], caller: str) -> np.ndarray:
    """The board as ``int64[H, W]``, or a ValueError saying what is wrong."""
    height, width = size
    board = np.asarray(board)
    if board.size != height * width:
        raise ValueError(
            f"{caller}: a {height}x{width} maze needs {height * width} cells, got {board.size}"
        )
    grid = board.reshape(height, width).astype(np.int64)
    if grid.min() < 0 or grid.max() >= len(COLOURS):
        raise ValueError(f"{caller}: maze tokens must lie in 0..{len(COLOURS) - 1}")
    return grid


def render_ansi(board: np.ndarray, size: tuple[int, int]) -> str:
    """H lines of W characters over ``# SGo``."""
    grid = _grid(board, size, "render_ansi")
    return "\n".join("".join(CHARACTERS[t] for t in row) for row in grid)


def render_rgb(board: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``uint8[H·CELL_PX + 1, W·CELL_PX + 1, 3]``: coloured cells inside a 1-pixel grid."""
    grid = _grid(board, size, "render_rgb")
    height, width = size
    image = np.empty((height * CELL_PX + 1, width * CELL_PX + 1, 3), dtype=np.uint8)
    image[:] = GRID_LINE
    cells = np.repeat(np.repeat(COLOURS[grid], CELL_PX, axis=0), CELL_PX, axis=1)
    inside = np.ones((height * CELL_PX, width * CELL_PX), dtype=bool)
    inside[::CELL_PX, :] = False  # the first pixel row and column of each cell is grid line
    inside[:, ::CELL_PX] = False
    image[: height * CELL_PX, : width * CELL_PX][inside] = cells[inside]
    return image
