"""An exact Sudoku solver for any box shape r×c: bitmask candidates, singles, then MRV search.

A board of side n = r·c has L = n² positions (row-major), values 1..n and 0 for a blank, as in
``rules.py``. Each position keeps a bitmask of the values it may still take (bit ``v - 1`` for
value ``v``); a filled position keeps exactly the bit of its value. Solving alternates two steps:

* **propagation** until nothing changes: *naked singles* (a blank with one candidate left takes it)
  and *hidden singles* (a value that fits in only one position of a unit goes there);
* **search**: a depth-first search that picks the blank with the fewest candidates (MRV; ties go
  to the lowest position), tries its values in increasing order, and propagates after each guess.

Everything is deterministic: the same puzzle always yields the same solutions in the same order.
This module is plain Python (no numpy in the inner loops) and is fast enough to check uniqueness
while digging puzzles in ``generator.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

Box = tuple[int, int]
BOX_SHAPES: dict[int, Box] = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # the standard box of each side


@dataclass(frozen=True)
class Rating:
    """How hard a puzzle is for this solver.

    ``level`` is ``"singles"`` when naked and hidden singles alone fill the board, else
    ``"search"``. ``branches`` is 0 for singles; for search it is the number of guesses the
    deterministic MRV depth-first search made until it reached the first solution: every
    (position, value) it tried at a choice point counts once, including guesses refuted at once by
    propagation and the guesses on the path to the solution (so it is at least 1).
    """

    level: str
    branches: int


@dataclass(frozen=True)
class Layout:
    """The fixed geometry of one box shape: units, peers and the all-values bitmask."""

    box: Box
    side: int  # n
    size: int  # L = n²
    units: tuple[tuple[int, ...], ...]  # 3n units of n positions: rows, columns, boxes
    peers: tuple[tuple[int, ...], ...]  # per position, the other positions sharing a unit
    full: int  # (1 << n) - 1


@cache
def _layout(box: Box) -> Layout:
    box_rows, box_cols = box
    n = box_rows * box_cols
    rows = [tuple(r * n + c for c in range(n)) for r in range(n)]
    cols = [tuple(r * n + c for r in range(n)) for c in range(n)]
    boxes = [
        tuple(
            (band * box_rows + r) * n + stack * box_cols + c
            for r in range(box_rows)
            for c in range(box_cols)
        )
        for band in range(n // box_rows)
        for stack in range(n // box_cols)
    ]
    units = tuple(rows + cols + boxes)
    peer_sets: list[set[int]] = [set() for _ in range(n * n)]
    for unit in units:
        for p in unit:
            peer_sets[p].update(unit)
    peers = tuple(tuple(sorted(s - {p})) for p, s in enumerate(peer_sets))
    return Layout(box, n, n * n, units, peers, (1 << n) - 1)


def layout_for(box: Box) -> Layout:
    """The geometry of ``box`` (rows × columns of one box), checked."""
    try:
        box_rows, box_cols = (int(x) for x in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be a pair (box_rows, box_cols), got {box!r}") from None
    if box_rows < 1 or box_cols < 1:
        raise ValueError(f"box must be at least 1×1, got {box_rows}×{box_cols}")
    return _layout((box_rows, box_cols))


def as_board(puzzle: Sequence[int] | np.ndarray, layout: Layout) -> list[int]:
    """The puzzle as a flat list of ints, after checking its length and values."""
    array = np.asarray(puzzle).ravel()
    r, c = layout.box
    if array.size != layout.size:
        raise ValueError(
            f"a {r}x{c}-box Sudoku has {layout.size} positions, got a puzzle of {array.size}; "
            "pass the board row-major with 0 for blanks"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"puzzle values must be integers 0..{layout.side}, got dtype {array.dtype}"
        )
    bad = np.flatnonzero((array < 0) | (array > layout.side))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"puzzle position {i} (row {i // layout.side}, column {i % layout.side}) holds "
            f"{int(array[i])}; values must lie in 0..{layout.side} (0 = blank)"
        )
    return array.astype(np.int64).tolist()


# --- the core: state = (grid, cand), both lists of length L ----------------------------------


def _assign(layout: Layout, grid: list[int], cand: list[int], i: int, value: int) -> bool:
    """Place ``value`` at ``i`` and remove it from the peers; False on a contradiction."""
    bit = 1 << (value - 1)
    if not cand[i] & bit:
        return False
    grid[i] = value
    cand[i] = bit
    for p in layout.peers[i]:
        if cand[p] & bit:
            if grid[p]:  # a filled peer already holds this value
                return False
            cand[p] &= ~bit
            if not cand[p]:
                return False
    return True


def _initial_state(layout: Layout, board: list[int]) -> tuple[list[int], list[int]] | None:
    """Grid and candidates after placing the givens; None when the givens break a rule."""
    grid = [0] * layout.size
    cand = [layout.full] * layout.size
    for i, value in enumerate(board):
        if value and not _assign(layout, grid, cand, i, value):
            return None
    return grid, cand


def _propagate(layout: Layout, grid: list[int], cand: list[int]) -> bool:
    """Apply naked and hidden singles until nothing changes; False on a contradiction."""
    full = layout.full
    while True:
        changed = False
        for i in range(layout.size):
            m = cand[i]
            if not grid[i] and not m & (m - 1):  # a single candidate left (never 0 here)
                if not _assign(layout, grid, cand, i, m.bit_length()):
                    return False
                changed = True
        if changed:
            continue
        for unit in layout.units:
            once = twice = 0
            for p in unit:
                m = cand[p]
                twice |= once & m
                once |= m
            if once != full:  # some value has no place left in this unit
                return False
            hidden = once & ~twice  # values with exactly one place (filled ones included)
            if not hidden:
                continue
            for p in unit:
                m = cand[p] & hidden
                if m and not grid[p]:
                    if m & (m - 1):  # two values that each fit only here
                        return False
                    if not _assign(layout, grid, cand, p, m.bit_length()):
                        return False
                    changed = True
        if not changed:
            return True


class _Search:
    """Depth-first search with singles propagation and MRV; collects up to ``cap`` solutions.

    With ``rng`` the values of each choice are tried in a random order (used to draw random
    full grids); without it, in increasing order.
    """

    def __init__(self, layout: Layout, cap: int, rng: np.random.Generator | None = None) -> None:
        self.layout, self.cap, self.rng = layout, cap, rng
        self.solutions: list[list[int]] = []
        self.guesses_to_first = 0  # guesses made until the first solution was found

    def run(self, grid: list[int], cand: list[int]) -> None:
        """Propagate from this state, then branch on the blank with the fewest candidates."""
        if not _propagate(self.layout, grid, cand):
            return
        best, best_count = -1, self.layout.side + 1
        for i in range(self.layout.size):
            if not grid[i]:
                count = cand[i].bit_count()
                if count < best_count:
                    best, best_count = i, count
                    if count == 2:
                        break
        if best < 0:
            self.solutions.append(grid)
            return
        mask = cand[best]
        values = [v for v in range(1, self.layout.side + 1) if mask >> (v - 1) & 1]
        if self.rng is not None:
            values = [values[k] for k in self.rng.permutation(len(values))]
        for value in values:
            if len(self.solutions) >= self.cap:
                return
            if not self.solutions:
                self.guesses_to_first += 1
            child_grid, child_cand = grid[:], cand[:]
            if _assign(self.layout, child_grid, child_cand, best, value):
                self.run(child_grid, child_cand)


def _check_cap(cap: int) -> int:
    if int(cap) < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    return int(cap)


# --- public API ------------------------------------------------------------------------------


def solve(puzzle: Sequence[int] | np.ndarray, box: Box = (3, 3), cap: int = 2) -> list[np.ndarray]:
    """All solutions up to ``cap`` (each an int8 array [L]); [] if none. Deterministic order.

    Givens that already break a rule give []. Raises ``ValueError`` for a puzzle of the wrong
    length or with values outside 0..n.
    """
    layout = layout_for(box)
    board = as_board(puzzle, layout)
    cap = _check_cap(cap)
    state = _initial_state(layout, board)
    if state is None:
        return []
    search = _Search(layout, cap)
    search.run(*state)
    return [np.array(s, dtype=np.int8) for s in search.solutions]


def count_solutions(puzzle: Sequence[int] | np.ndarray, box: Box = (3, 3), cap: int = 2) -> int:
    """The number of solutions, counted up to ``cap`` (min(true count, cap))."""
    return len(solve(puzzle, box, cap))


def rate(puzzle: Sequence[int] | np.ndarray, box: Box = (3, 3)) -> Rating:
    """Whether singles alone solve the puzzle, else how many guesses search needed (see Rating).

    Raises ``ValueError`` when the puzzle has no solution.
    """
    layout = layout_for(box)
    board = as_board(puzzle, layout)
    broken = conflicts(board, box)
    if broken:
        raise ValueError(
            f"cannot rate a puzzle whose givens break a rule: positions {broken[0]} hold the same "
            f"value in one unit ({len(broken)} such pairs)"
        )
    state = _initial_state(layout, board)
    if state is not None:
        grid, cand = state
        if _propagate(layout, grid, cand) and all(grid):
            return Rating("singles", 0)
        search = _Search(layout, cap=1)
        search.run(*_initial_state(layout, board))
        if search.solutions:
            return Rating("search", search.guesses_to_first)
    raise ValueError("cannot rate a puzzle that has no solution")


def conflicts(puzzle: Sequence[int] | np.ndarray, box: Box = (3, 3)) -> list[tuple[int, int]]:
    """Pairs of positions (i < j) sharing a unit and holding the same non-zero value, sorted."""
    layout = layout_for(box)
    board = as_board(puzzle, layout)
    pairs = {
        (i, j)
        for i in range(layout.size)
        if board[i]
        for j in layout.peers[i]
        if j > i and board[j] == board[i]
    }
    return sorted(pairs)


def has_other_solution(board: list[int], position: int, value: int, layout: Layout) -> bool:
    """Whether ``board`` has a solution that does not put ``value`` at blank ``position``.

    When ``board`` with ``value`` placed at ``position`` has a unique solution, this says
    whether removing that given breaks uniqueness, at the cost of one search for one solution.
    """
    state = _initial_state(layout, board)
    if state is None:
        return False
    grid, cand = state
    cand[position] &= ~(1 << (value - 1))
    if not cand[position]:
        return False
    search = _Search(layout, cap=1)
    search.run(grid, cand)
    return bool(search.solutions)


def random_full_grid(layout: Layout, rng: np.random.Generator) -> list[int]:
    """A random complete grid: the search from an empty board with shuffled value order."""
    search = _Search(layout, cap=1, rng=rng)
    search.run([0] * layout.size, [layout.full] * layout.size)
    return search.solutions[0]
