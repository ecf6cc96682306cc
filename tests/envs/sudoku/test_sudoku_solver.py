"""The exact Sudoku solver: puzzle files, known counts, ratings, conflicts and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sudoku_reference import is_valid_grid

from hrm_rl.envs.sudoku.solver import Rating, conflicts, count_solutions, rate, solve

# Arto Inkala's "world's hardest Sudoku" (2012): singles get nowhere, search is needed.
HARD = "800000000003600000070090200050007000000045700000100030001000068008500010090000400"
HARD_SOLUTION = "812753649943682175675491283154237896369845721287169534521974368438526917796318452"
# The first puzzle of Project Euler 96 / easy50: naked and hidden singles finish it.
EASY = "003020600900305001001806400008102900700000008006708200002609500800203009005010300"


def digits(text: str) -> np.ndarray:
    return np.array([0 if c == "." else int(c) for c in text], dtype=np.int8)


def check_csv_answers_are_the_only_solutions(path: Path, puzzle: str, answer: str) -> int:
    """Each row's ``puzzle`` column has exactly one solution, its ``answer`` column; the count."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for line, row in enumerate(rows, start=2):
        found = solve(digits(row[puzzle]), cap=2)
        assert len(found) == 1, f"{path.name}:{line}: {len(found)} solutions"
        assert found[0].tolist() == digits(row[answer]).tolist(), f"{path.name}:{line}"
    return len(rows)


def check_every_line_has_exactly_one_valid_solution(path: Path) -> int:
    """Each line of a CRLF puzzle-per-line file has one solution, valid and keeping its givens."""
    lines = [line for line in path.read_bytes().decode().split("\r\n") if line]
    for number, line in enumerate(lines, start=1):
        puzzle = digits(line)
        found = solve(puzzle, cap=2)
        assert len(found) == 1, f"{path.name}:{number}: {len(found)} solutions"
        assert is_valid_grid(found[0], (3, 3))
        given = puzzle != 0
        assert (found[0][given] == puzzle[given]).all()
    return len(lines)


def test_kaggle_csv_solved_uniquely_with_the_files_solution(self_made_data: Path):
    path = self_made_data / "sudoku" / "kaggle.csv"
    assert check_csv_answers_are_the_only_solutions(path, "quizzes", "solutions") == 50


def test_extreme_csv_needs_search_and_is_solved_uniquely_with_the_files_solution(
    self_made_data: Path,
):
    path = self_made_data / "sudoku" / "extreme.csv"
    assert check_csv_answers_are_the_only_solutions(path, "question", "answer") == 4
    with path.open(newline="") as f:
        assert all(rate(digits(row["question"])).level == "search" for row in csv.DictReader(f))


def test_crlf_text_every_puzzle_has_exactly_one_valid_solution(self_made_data: Path):
    path = self_made_data / "sudoku" / "zeros_crlf.txt"
    assert check_every_line_has_exactly_one_valid_solution(path) == 8


def test_shared_kaggle_test1000_solved_uniquely_with_the_files_solution(shared_data: Path):
    path = shared_data / "kaggle_format_test1000.csv"
    assert check_csv_answers_are_the_only_solutions(path, "quizzes", "solutions") == 1000


def test_shared_easy50_every_puzzle_has_exactly_one_valid_solution(shared_data: Path):
    assert check_every_line_has_exactly_one_valid_solution(shared_data / "easy50.txt") == 50


def test_hard_puzzle_needs_search_and_is_solved():
    found = solve(digits(HARD), cap=2)
    assert [s.tolist() for s in found] == [digits(HARD_SOLUTION).tolist()]
    rating = rate(digits(HARD))
    assert rating.level == "search"
    assert rating.branches >= 1


def test_easy_puzzle_rated_singles():
    assert rate(digits(EASY)) == Rating("singles", 0)


def test_empty_4x4_board_has_288_solutions_all_distinct_and_valid():
    empty = np.zeros(16, dtype=np.int8)
    assert count_solutions(empty, box=(2, 2), cap=1000) == 288
    grids = solve(empty, box=(2, 2), cap=1000)
    assert len({g.tobytes() for g in grids}) == 288
    assert all(is_valid_grid(g, (2, 2)) for g in grids)


def test_cap_limits_the_count_and_order_is_deterministic():
    empty = np.zeros(36, dtype=np.int8)
    assert count_solutions(empty, box=(2, 3), cap=5) == 5
    first, again = solve(empty, box=(2, 3), cap=5), solve(list(empty), box=(2, 3), cap=5)
    assert [g.tolist() for g in first] == [g.tolist() for g in again]
    assert all(g.dtype == np.int8 and g.shape == (36,) for g in first)


@pytest.mark.parametrize("box", [(2, 2), (2, 3), (3, 2), (3, 3)])
def test_solutions_respect_the_box_shape(box):
    size = (box[0] * box[1]) ** 2
    (grid,) = solve(np.zeros(size, dtype=np.int8), box=box, cap=1)
    assert is_valid_grid(grid, box)
    puzzle = grid.copy()
    puzzle[::3] = 0  # a third of the cells blank: the grid is among the solutions, all valid
    found = solve(puzzle, box=box, cap=50)
    assert grid.tolist() in [s.tolist() for s in found]
    assert all(is_valid_grid(s, box) and (s[1::3] == grid[1::3]).all() for s in found)


def test_broken_givens_have_no_solution_and_are_reported():
    puzzle = digits(EASY)
    puzzle[0] = 2  # row 0 already holds a 2 at position 4
    assert solve(puzzle) == []
    assert count_solutions(puzzle) == 0
    assert conflicts(puzzle) == [(0, 4)]
    with pytest.raises(ValueError, match="break a rule"):
        rate(puzzle)


def test_conflicts_lists_each_pair_once_sorted():
    board = np.zeros(16, dtype=np.int8)
    board[[0, 1]] = 3  # same row and same box: one pair
    board[[6, 14]] = 4  # same column
    board[[10, 15]] = 1  # same box only
    assert conflicts(board, box=(2, 2)) == [(0, 1), (6, 14), (10, 15)]
    assert conflicts(digits(EASY)) == []


def test_unsolvable_puzzle_without_conflicting_givens():
    # 4x4: the blank at position 0 sees 1 in its row, 2 in its column and 3, 4 in its box
    board = np.zeros(16, dtype=np.int8)
    board[[2, 8, 5, 4]] = [1, 2, 3, 4]
    assert conflicts(board, box=(2, 2)) == []
    assert solve(board, box=(2, 2)) == []
    with pytest.raises(ValueError, match="no solution"):
        rate(board, box=(2, 2))


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="81 positions, got a puzzle of 80"):
        solve(np.zeros(80, dtype=np.int8))
    with pytest.raises(ValueError, match=r"position 5 .* holds 10; values must lie in 0\.\.9"):
        solve([0] * 5 + [10] + [0] * 75)
    with pytest.raises(ValueError, match="integers"):
        solve(np.full(81, 0.5))
    with pytest.raises(ValueError, match="cap"):
        solve(digits(EASY), cap=0)
    with pytest.raises(ValueError, match="box"):
        solve(digits(EASY), box=(0, 9))


def test_one_guess_settles_a_puzzle_with_two_solutions():
    # a 4x4 grid with a swappable 2x2 rectangle of 1s and 2s blanked: every blank is {1, 2}
    grid = np.array([1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1], dtype=np.int8)
    puzzle = grid.copy()
    puzzle[[0, 1, 8, 9]] = 0
    swapped = grid.copy()
    swapped[[0, 1, 8, 9]] = [2, 1, 1, 2]
    found = solve(puzzle, box=(2, 2), cap=10)
    assert [s.tolist() for s in found] == [grid.tolist(), swapped.tolist()]
    # MRV picks position 0, tries 1 first, and singles finish the board: one guess
    assert rate(puzzle, box=(2, 2)) == Rating("search", 1)
