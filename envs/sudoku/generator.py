"""Random Sudoku puzzles of any box shape, dug from random full grids, seeded and reproducible.

One attempt draws a random full grid (``random_solution``) and *digs* it: givens are removed in a
random order, and a removal is kept only while the puzzle keeps what the mode asks for:

* ``mode="unique"``: exactly one solution. Digging stops at a target number of givens drawn
  uniformly from the requested range, or earlier when no further given can go (the puzzle is then
  minimal); an attempt that ends above the range is thrown away. For ``difficulty="search"`` a
  puzzle that singles still solve at its target is dug on down to the bottom of the range, since
  fewer givens can only make singles weaker.
* ``mode="multi"``: between 2 and ``cap`` solutions. Digging keeps every removal that leaves at
  most ``cap`` solutions and stops once there are at least 2 and the givens have reached a target
  drawn uniformly from the range (or any number in range, should the permutation run out first).

Attempts whose puzzle misses the difficulty or the train/test side (``held_out``) are thrown away
too; after ``MAX_FAILED_ATTEMPTS`` failures in a row ``generate`` raises ``RuntimeError``.
Every random draw comes from the ``numpy.random.Generator`` passed in, so a seed fixes the output.
"""

from __future__ import annotations

import logging

import numpy as np

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.splits import in_test_split
from hrm_rl.envs.sudoku.solver import (
    Box,
    Layout,
    count_solutions,
    has_other_solution,
    layout_for,
    random_full_grid,
    rate,
    solve,
)

logger = logging.getLogger(__name__)

# Inclusive ranges of givens per box shape when ``givens`` is None. Random digging ends at minimal
# puzzles of 4-6 givens for 4x4, 8-13 (mostly 10) for 6x6 and 21-27 for 9x9; puzzles that need
# search are found near the bottom (6x6: almost only at 9-12 givens; 4x4: none were ever found).
DEFAULT_GIVENS: dict[Box, tuple[int, int]] = {(2, 2): (4, 8), (2, 3): (10, 18), (3, 3): (22, 36)}
DEFAULT_GIVENS_SHARE = (0.30, 0.45)  # other box shapes: this share of the L positions
DIFFICULTIES = ("any", "singles", "search")
MODES = ("unique", "multi")
MAX_FAILED_ATTEMPTS = 1000  # consecutive thrown-away attempts before giving up on a request
EASIEST_BLANKS_SHARE = 0.1  # blank_levels: default fewest blanks of level 0, this share of L


def default_givens(box: Box) -> tuple[int, int]:
    """The inclusive range of givens used when none is requested (see ``DEFAULT_GIVENS``)."""
    box = tuple(box)
    if box in DEFAULT_GIVENS:
        return DEFAULT_GIVENS[box]
    size = (box[0] * box[1]) ** 2
    return round(DEFAULT_GIVENS_SHARE[0] * size), round(DEFAULT_GIVENS_SHARE[1] * size)


def blank_levels(
    box: Box = (3, 3),
    num_levels: int = 5,
    min_blanks: int | None = None,
    max_blanks: int | None = None,
) -> list[tuple[int, int]]:
    """Inclusive givens ranges from easiest (few blanks) to hardest, for ``generate(givens=)``.

    These are Sudoku's curriculum levels (``SudokuRules.difficulty_levels``). With
    ``max_blanks=None`` the hardest level is the default range for the board (``DEFAULT_GIVENS``:
    4..8 givens for 4x4, 10..18 for 6x6, 22..36 for 9x9), i.e. the env's normal difficulty, and
    the other ``num_levels - 1`` levels split the blanks from ``min_blanks`` up to just below it
    evenly. An explicit ``max_blanks`` instead splits ``min_blanks..max_blanks`` evenly into
    ``num_levels`` levels.

    Args:
        box: ``(box_rows, box_cols)`` of the board.
        num_levels: how many levels, at least 1.
        min_blanks: the fewest blanks of level 0; None uses 10% of the positions (at least 1).
        max_blanks: the most blanks of the last level; at most ``L - default_lo`` (fewer givens
            than the default range's low end are rarely reached by unique-solution digging,
            e.g. 4 givens for 4x4 and ~22 for 9x9).

    Returns:
        ``num_levels`` ranges ``(lo, hi)`` of givens, each strictly below the one before.
    """
    side = box[0] * box[1]
    size = side * side
    sudoku = f"{side}x{side} Sudoku (box {box[0]}x{box[1]})"  # for the error messages
    default_lo, default_hi = default_givens(box)
    if num_levels < 1:
        raise ValueError(f"num_levels must be at least 1, got {num_levels}")
    most = size - default_lo  # the most blanks unique-solution digging reliably reaches
    if max_blanks is None:
        # the easier levels live strictly below the default range's blanks
        top, easier = size - default_hi - 1, num_levels - 1
    else:
        if not 1 <= max_blanks <= most:
            raise ValueError(
                f"max_blanks must lie in 1..{most} for {sudoku} (at least {default_lo} givens "
                f"keep unique-solution generation feasible), got {max_blanks}"
            )
        top, easier = max_blanks, num_levels
    if min_blanks is None:
        min_blanks = max(1, min(round(EASIEST_BLANKS_SHARE * size), top - easier + 1))
    if easier and not 1 <= min_blanks <= top - easier + 1:
        raise ValueError(
            f"min_blanks must lie in 1..{top - easier + 1} so that {easier} levels of at least "
            f"one blank count each fit below {top + 1} blanks for {sudoku}, got {min_blanks}"
        )
    blanks = _split(min_blanks, top, easier) if easier else []
    levels = [(size - hi, size - lo) for lo, hi in blanks]
    if max_blanks is None:
        levels.append((default_lo, default_hi))
    return levels


def _split(first: int, last: int, parts: int) -> list[tuple[int, int]]:
    """``first..last`` (inclusive) cut into ``parts`` contiguous non-empty ranges, in order."""
    count = last - first + 1
    edges = [first + (i * count) // parts for i in range(parts + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(parts)]


def random_solution(rng: np.random.Generator, box: Box = (3, 3)) -> np.ndarray:
    """A random complete valid grid, int8 [L]: depth-first fill with shuffled value order."""
    return np.array(random_full_grid(layout_for(box), rng), dtype=np.int8)


def _dig_unique(
    rng: np.random.Generator, layout: Layout, grid: list[int], target: int
) -> list[int]:
    """Remove givens in random order while the solution stays unique, down to ``target`` givens.

    ``grid`` is a full grid or an already dug puzzle with a unique solution.
    """
    board = list(grid)
    num_givens = sum(1 for value in board if value)
    for position in rng.permutation(layout.size).tolist():
        if num_givens <= target:
            break
        value = board[position]
        if not value:
            continue
        board[position] = 0
        if has_other_solution(board, position, value, layout):
            board[position] = value
        else:
            num_givens -= 1
    return board


def _dig_multi(
    rng: np.random.Generator, layout: Layout, grid: list[int], lo: int, hi: int, cap: int
) -> list[int] | None:
    """Remove givens in random order while at most ``cap`` solutions remain, down to a target.

    Stops once the puzzle has 2+ solutions and at most a target number of givens drawn from
    ``lo..hi``; None when the permutation runs out without 2+ solutions and ``lo..hi`` givens.
    """
    board = list(grid)
    target = int(rng.integers(lo, hi + 1))
    num_givens = layout.size
    count = 1
    for position in rng.permutation(layout.size).tolist():
        value = board[position]
        board[position] = 0
        if count == 1 and not has_other_solution(board, position, value, layout):
            new_count = 1  # still unique: the cheap test suffices
        else:
            new_count = count_solutions(board, layout.box, cap=cap + 1)
        if new_count > cap:
            board[position] = value
            continue
        count = new_count
        num_givens -= 1
        if count >= 2 and lo <= num_givens <= target:
            return board
    return board if count >= 2 and lo <= num_givens <= hi else None


def _check_request(
    n: int,
    box: Box,
    givens: tuple[int, int],
    difficulty: str,
    mode: str,
    cap: int,
    held_out: bool | None,
    test_fraction: float,
) -> None:
    """Raise ValueError for requests that can never be met, before any work is done."""
    size = layout_for(box).size
    lo, hi = givens
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= lo <= hi <= size:
        raise ValueError(f"givens must be a range lo <= hi within 0..{size}, got {givens}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "multi" and cap < 2:
        raise ValueError(f"mode='multi' needs cap >= 2 solutions per puzzle, got cap={cap}")
    if mode == "multi" and difficulty == "singles":
        raise ValueError(
            "mode='multi' cannot meet difficulty='singles': singles only ever reach a unique "
            "solution; use difficulty='any' or 'search'"
        )
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1], got {test_fraction}")
    if (held_out is True and test_fraction == 0.0) or (held_out is False and test_fraction == 1.0):
        raise ValueError(f"held_out={held_out} with test_fraction={test_fraction} keeps nothing")


def generate(
    rng: np.random.Generator,
    n: int,
    *,
    box: Box = (3, 3),
    givens: tuple[int, int] | None = None,
    difficulty: str = "any",
    mode: str = "unique",
    cap: int = 8,
    held_out: bool | None = None,
    test_fraction: float = 0.1,
) -> PuzzleSet:
    """``n`` random puzzles with their solutions, reproducible from ``rng``.

    Args:
        rng: the only source of randomness; the same seed gives an identical PuzzleSet.
        n: how many puzzles.
        box: rows × columns of one box (4x4: (2, 2), 6x6: (2, 3), 9x9: (3, 3)).
        givens: inclusive range of givens per puzzle; None uses ``default_givens(box)``.
        difficulty: ``"any"``, ``"singles"`` (naked and hidden singles solve it) or ``"search"``
            (they do not; the solver has to guess).
        mode: ``"unique"`` (exactly one solution) or ``"multi"`` (2..cap solutions, all stored).
        cap: the most solutions a ``"multi"`` puzzle may have; unused for ``"unique"``.
        held_out: None keeps every puzzle; True only those ``in_test_split(board, test_fraction)``
            puts in the test split, False only the others, so train and test sets are disjoint.
        test_fraction: the test-split share passed to ``in_test_split``.

    Returns:
        A PuzzleSet with ``solutions`` of shape [n, 1, L] (unique) or [n, cap, L] (multi, zero
        padded); ``solutions[:, 0]`` is the grid each puzzle was dug from, ``has_answer`` is all
        True and ``branches`` holds the solver's rating (0 = singles suffice).

    Raises:
        ValueError: a request that can never be met (unknown difficulty or mode, an empty givens
            range, ``mode="multi"`` with ``difficulty="singles"`` or ``cap < 2``, a ``held_out``
            side that ``test_fraction`` leaves empty).
        RuntimeError: ``MAX_FAILED_ATTEMPTS`` attempts in a row were thrown away, e.g. givens
            below what unique puzzles need, or ``difficulty="search"`` for 4x4 (every 4x4 puzzle
            seen so far falls to singles).
    """
    layout = layout_for(box)
    box = layout.box
    lo, hi = (int(g) for g in (givens if givens is not None else default_givens(box)))
    _check_request(n, box, (lo, hi), difficulty, mode, cap, held_out, test_fraction)
    request = (
        f"{n} puzzles, box {box[0]}x{box[1]}, givens {lo}..{hi}, difficulty {difficulty!r}, "
        f"mode {mode!r}" + (f" (cap {cap})" if mode == "multi" else "") + f", held_out {held_out}"
    )
    width = cap if mode == "multi" else 1
    boards = np.zeros((n, layout.size), dtype=np.int8)
    solutions = np.zeros((n, width, layout.size), dtype=np.int8)
    num_solutions = np.zeros(n, dtype=np.int64)
    branches = np.zeros(n, dtype=np.int64)

    made = failed = attempts = 0
    reason = ""
    while made < n:
        if failed >= MAX_FAILED_ATTEMPTS:
            raise RuntimeError(
                f"could not generate puzzle {made + 1} of {request}: {failed} attempts in a row "
                f"were thrown away (last reason: {reason}); widen the givens range or relax the "
                "difficulty / held_out filter"
            )
        attempts += 1
        failed += 1
        grid = random_full_grid(layout, rng)
        if mode == "unique":
            board = _dig_unique(rng, layout, grid, target=int(rng.integers(lo, hi + 1)))
            num_givens = sum(1 for v in board if v)
            if num_givens > hi:
                reason = f"digging got stuck at {num_givens} givens, above {hi}"
                continue
        else:
            board = _dig_multi(rng, layout, grid, lo, hi, cap)
            if board is None:
                reason = f"no puzzle with 2..{cap} solutions and {lo}..{hi} givens on this grid"
                continue
        rating = rate(board, box)
        if mode == "unique" and difficulty == "search" and rating.level == "singles":
            board = _dig_unique(rng, layout, board, target=lo)
            rating = rate(board, box)
        if difficulty != "any" and rating.level != difficulty:
            reason = f"rated {rating.level!r}, wanted {difficulty!r}"
            continue
        if held_out is not None and in_test_split(np.array(board), test_fraction) != held_out:
            reason = f"puzzle is on the {'train' if held_out else 'test'} side of the split"
            continue

        if mode == "unique":
            found = [grid]
        else:
            others = [s.tolist() for s in solve(board, box, cap=cap)]
            found = [grid] + [s for s in others if s != grid]
        boards[made] = board
        solutions[made, : len(found)] = found
        num_solutions[made] = len(found)
        branches[made] = rating.branches
        made += 1
        failed = 0

    logger.info("generated %s in %d attempts", request, attempts)
    return PuzzleSet(
        boards=boards,
        solutions=solutions,
        num_solutions=num_solutions,
        has_answer=np.ones(n, dtype=bool),
        origin=["generated"] * n,
        branches=branches,
    )
