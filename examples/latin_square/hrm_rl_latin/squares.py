"""Latin squares on the CPU: an exact solver that counts completions, a generator, a reader.

A board is a flat sequence of ``n * n`` values, row-major, ``0`` = blank. The solver is plain
backtracking over row and column bitmasks that always fills the blank with the fewest candidates
first, and stops after ``cap`` completions, which is all the generator and the reader need: every
puzzle keeps *all* its completions, so the environment's soundness check (a placement must agree
with a completion still reachable) is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.splits import in_test_split

MAX_FAILED_ATTEMPTS = 1000
TEST_FRACTION = 0.5  # share of all puzzles in the held-out split (a hash of the board decides)


def default_givens(n: int) -> tuple[int, int]:
    """The default inclusive range of givens for side ``n``: 40–60 % of the ``n * n`` cells."""
    return round(0.4 * n * n), round(0.6 * n * n)


def solve(
    board: Sequence[int], n: int, cap: int = 8, rng: np.random.Generator | None = None
) -> list[list[int]]:
    """Up to ``cap`` completions of ``board`` (each a list of ``n * n`` values); [] if none.

    With ``rng`` the candidates of each cell are tried in random order (the generator uses this
    to draw a random full square from an empty board).
    """
    board = [int(v) for v in board]
    full = (1 << (n + 1)) - 2  # bits 1..n
    rows, cols = [0] * n, [0] * n
    for position, value in enumerate(board):
        if value:
            rows[position // n] |= 1 << value
            cols[position % n] |= 1 << value
    blanks = [p for p, v in enumerate(board) if v == 0]
    found: list[list[int]] = []

    def search() -> None:
        best, best_free, best_count = -1, 0, n + 1
        for position in blanks:  # the blank with the fewest candidates
            if board[position]:
                continue
            free = full & ~(rows[position // n] | cols[position % n])
            count = free.bit_count()
            if count < best_count:
                best, best_free, best_count = position, free, count
                if count <= 1:
                    break
        if best < 0:
            found.append(list(board))
            return
        values = [v for v in range(1, n + 1) if best_free >> v & 1]
        if rng is not None:
            values = rng.permutation(values).tolist()
        r, c = divmod(best, n)
        for value in values:
            board[best] = value
            rows[r] |= 1 << value
            cols[c] |= 1 << value
            search()
            rows[r] &= ~(1 << value)
            cols[c] &= ~(1 << value)
            board[best] = 0
            if len(found) >= cap:
                return

    search()
    return found


def repeated_given(board: Sequence[int], n: int) -> str | None:
    """Why ``board``'s givens break the rules (a value twice in a row or column), or None."""
    grid = np.asarray(board, dtype=np.int64).reshape(n, n)
    for kind, lines in (("row", grid), ("column", grid.T)):
        for index, line in enumerate(lines):
            values = line[line != 0]
            if len(values) != len(set(values.tolist())):
                repeated = next(v for v in values.tolist() if (values == v).sum() > 1)
                return f"value {repeated} appears twice in {kind} {index + 1}"
    return None


def _dig(
    rng: np.random.Generator, square: list[int], n: int, lo: int, hi: int, cap: int
) -> list[int] | None:
    """Blank cells of a full square in random order while at most ``cap`` completions remain.

    Stops at 2+ completions and at most a target number of givens drawn from ``lo..hi``; None
    when every cell was tried without reaching 2+ completions within ``lo..hi`` givens.
    """
    board = list(square)
    target = int(rng.integers(lo, hi + 1))
    num_givens, count = n * n, 1
    for position in rng.permutation(n * n).tolist():
        value, board[position] = board[position], 0
        new_count = len(solve(board, n, cap=cap + 1))
        if new_count > cap:
            board[position] = value
            continue
        count, num_givens = new_count, num_givens - 1
        if count >= 2 and lo <= num_givens <= target:
            return board
    return board if count >= 2 and lo <= num_givens <= hi else None


def generate(
    rng: np.random.Generator,
    n_puzzles: int,
    n: int,
    *,
    givens: tuple[int, int] | None = None,
    held_out: bool | None = False,
    cap: int = 8,
) -> PuzzleSet:
    """``n_puzzles`` partial n×n squares with 2..``cap`` completions each, all of them stored.

    ``held_out=False`` keeps only training-split puzzles, ``True`` only held-out ones (the split
    is a hash of the board, so the two never share a puzzle), ``None`` keeps both. ``solutions[i,
    0]`` is the square puzzle ``i`` was dug from; ``solutions`` is ``[n_puzzles, cap, n*n]``.
    """
    lo, hi = (int(g) for g in (givens if givens is not None else default_givens(n)))
    if not 0 <= lo <= hi <= n * n:
        raise ValueError(f"givens must be a range lo <= hi within 0..{n * n}, got {givens}")
    if cap < 2:
        raise ValueError(f"cap must be at least 2 (puzzles have 2..cap completions), got {cap}")
    boards = np.zeros((n_puzzles, n * n), dtype=np.int8)
    solutions = np.zeros((n_puzzles, cap, n * n), dtype=np.int8)
    num_solutions = np.zeros(n_puzzles, dtype=np.int64)
    made = failed = 0
    while made < n_puzzles:
        if failed >= MAX_FAILED_ATTEMPTS:
            raise RuntimeError(
                f"could not generate a {n}x{n} puzzle with 2..{cap} completions and {lo}..{hi} "
                f"givens in {failed} attempts; widen givens or raise cap"
            )
        failed += 1
        square = solve([0] * (n * n), n, cap=1, rng=rng)[0]
        board = _dig(rng, square, n, lo, hi, cap)
        if board is None:
            continue
        if held_out is not None and in_test_split(np.array(board), TEST_FRACTION) != held_out:
            continue
        others = [s for s in solve(board, n, cap=cap) if s != square]
        boards[made] = board
        solutions[made, : 1 + len(others)] = [square, *others]
        num_solutions[made] = 1 + len(others)
        made, failed = made + 1, 0
    return PuzzleSet(boards, solutions, num_solutions, np.ones(n_puzzles, dtype=bool))


def read(path: str | Path, n: int, *, cap: int = 8) -> PuzzleSet:
    """Puzzles from a text file: one a line, ``n * n`` characters, ``1``..``n`` or ``.``/``0``.

    Blank lines and lines starting with ``#`` are skipped. Every puzzle is solved and keeps all
    its completions; a malformed line, givens that break the rules, a puzzle without completion
    or with more than ``cap`` of them raise ``ValueError("file:line: reason")``.
    """
    boards, all_solutions, origin = [], [], []
    symbols = {".": 0, **{str(v): v for v in range(n + 1)}}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(line) != n * n:
            raise ValueError(f"{where}: expected {n * n} cells for {n}x{n}, got {len(line)}")
        bad = next((ch for ch in line if ch not in symbols), None)
        if bad is not None:
            raise ValueError(f"{where}: unexpected character {bad!r} (use 1..{n}, '.' or '0')")
        board = [symbols[ch] for ch in line]
        if (reason := repeated_given(board, n)) is not None:
            raise ValueError(f"{where}: {reason}")
        found = solve(board, n, cap=cap + 1)
        if not found:
            raise ValueError(f"{where}: the puzzle has no completion")
        if len(found) > cap:
            raise ValueError(
                f"{where}: more than {cap} completions; add givens or read with a larger cap"
            )
        boards.append(board)
        all_solutions.append(found)
        origin.append(where)
    if not boards:
        raise ValueError(f"{path}: no puzzles found")
    width = max(len(found) for found in all_solutions)
    solutions = np.zeros((len(boards), width, n * n), dtype=np.int8)
    for i, found in enumerate(all_solutions):
        solutions[i, : len(found)] = found
    return PuzzleSet(
        boards=np.array(boards, dtype=np.int8),
        solutions=solutions,
        num_solutions=np.array([len(found) for found in all_solutions], dtype=np.int64),
        has_answer=np.zeros(len(boards), dtype=bool),  # the format stores no answer
        origin=origin,
    )
