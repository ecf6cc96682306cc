"""Plain-Python maze helpers the maze tests compare the library against (a BFS over a dict, no
torch), the paths they play, and a small hand-made maze.

Imported by the test modules as a plain module (``tests/envs`` is on pytest's ``pythonpath``).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from hrm_rl.envs.maze.rules import BLANK, GOAL, PATH, START, WALL

STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))
HARD = "maze30_hard_sample50.csv"  # in ../shared/data, third-party: the extra checks read it


def neighbours(cell, shape):
    r, c = cell
    for dr, dc in STEPS:
        if 0 <= r + dr < shape[0] and 0 <= c + dc < shape[1]:
            yield (r + dr, c + dc)


def distances(grid: np.ndarray, source, passable) -> dict:
    """Moves from ``source`` to every cell reachable through cells where ``passable`` holds."""
    found = {source: 0}
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        for nxt in neighbours(cell, grid.shape):
            if nxt not in found and passable(grid[nxt]):
                found[nxt] = found[cell] + 1
                queue.append(nxt)
    return found


def cell_of(grid: np.ndarray, token: int):
    return tuple(int(x) for x in np.argwhere(grid == token)[0])


def random_board(rng: np.random.Generator, shape) -> np.ndarray:
    """Random obstacles, S, G, and a path: a shortest-path prefix, whole, or with a stray cell."""
    while True:
        grid = np.where(rng.random(shape) < rng.uniform(0.1, 0.4), WALL, BLANK)
        open_cells = [tuple(c) for c in np.argwhere(grid == BLANK)]
        if len(open_cells) < 2:
            continue
        i, j = rng.choice(len(open_cells), 2, replace=False)
        S, G = open_cells[i], open_cells[j]
        grid[S], grid[G] = START, GOAL
        from_start = distances(grid, S, lambda t: t != WALL)
        if G in from_start:
            break
    cells, cell = [], G  # a random shortest path, walked back from G
    while from_start[cell] > 1:
        cell = [n for n in neighbours(cell, shape) if from_start.get(n) == from_start[cell] - 1]
        cell = cell[rng.integers(len(cell))]
        cells.append(cell)
    cells = cells[::-1]
    kind = rng.integers(4)
    keep = len(cells) if kind == 0 else int(rng.integers(len(cells) + 1))
    for c in cells[:keep]:
        grid[c] = PATH
    if kind == 3:  # a stray path cell anywhere open
        blanks = np.argwhere(grid == BLANK)
        if len(blanks):
            grid[tuple(blanks[rng.integers(len(blanks))])] = PATH
    return grid


# --- paths through the mazes of a puzzle set ---------------------------------------------------


def order_from_start(grid: np.ndarray, cells) -> list[int]:
    """Row-major positions of the path ``cells``, in order of their distance from S."""
    from_start = distances(grid, cell_of(grid, START), lambda t: t != WALL)
    ordered = sorted(cells, key=lambda c: from_start[c])
    return [r * grid.shape[1] + c for r, c in ordered]


def given_path(puzzles, i) -> list[int]:
    side = int(np.sqrt(puzzles.boards.shape[1]))
    grid = puzzles.boards[i].reshape(side, side)
    answer = puzzles.solutions[i, 0].reshape(side, side)
    return order_from_start(grid, [tuple(c) for c in np.argwhere(answer == PATH)])


def other_shortest_path(puzzles, i) -> list[int]:
    """A shortest path that leaves the stored one somewhere (needs 2+ shortest paths)."""
    side = int(np.sqrt(puzzles.boards.shape[1]))
    grid = puzzles.boards[i].reshape(side, side)
    answer = puzzles.solutions[i, 0].reshape(side, side)
    from_start = distances(grid, cell_of(grid, START), lambda t: t != WALL)
    cells, cell = [], cell_of(grid, GOAL)
    while from_start[cell] > 1:  # walk back from G, off the stored path whenever possible
        before = [
            n for n in neighbours(cell, grid.shape) if from_start.get(n) == from_start[cell] - 1
        ]
        cell = min(before, key=lambda n: answer[n] == PATH)
        cells.append(cell)
    return order_from_start(grid, cells)


# --- a small hand-made maze --------------------------------------------------------------------


def small_maze() -> tuple[str, str]:
    """A 4×4 question and its only shortest answer (9 moves, 8 path cells)."""
    question = "S   " + "### " + "    " + "G## "
    answer = "Sooo" + "###o" + "oooo" + "G## "
    return question, answer


def read_mazes_text(text: str) -> np.ndarray:
    return np.array([{"#": WALL, " ": BLANK, "S": START, "G": GOAL, "o": PATH}[ch] for ch in text])
