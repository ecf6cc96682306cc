"""The Sudoku generator: reproducible, exact solution counts, givens, difficulty and splits."""

from __future__ import annotations

import numpy as np
import pytest
from sudoku_reference import is_valid_grid

from hrm_rl.envs.splits import in_test_split
from hrm_rl.envs.sudoku.generator import default_givens, generate, random_solution
from hrm_rl.envs.sudoku.solver import conflicts, count_solutions, rate, solve


def assert_same(a, b):
    assert np.array_equal(a.boards, b.boards)
    assert np.array_equal(a.solutions, b.solutions)
    assert np.array_equal(a.num_solutions, b.num_solutions)
    assert np.array_equal(a.branches, b.branches)
    assert a.origin == b.origin


def test_same_seed_same_puzzles_other_seed_other_puzzles():
    first = generate(np.random.default_rng(7), 4)
    assert_same(first, generate(np.random.default_rng(7), 4))
    other = generate(np.random.default_rng(8), 4)
    assert not np.array_equal(first.boards, other.boards)


@pytest.mark.parametrize("box, n", [((2, 2), 20), ((2, 3), 10), ((3, 3), 8)])
def test_unique_puzzles_have_one_solution_matching_the_stored_one(box, n):
    size = (box[0] * box[1]) ** 2
    lo, hi = default_givens(box)
    puzzles = generate(np.random.default_rng(0), n, box=box)
    assert puzzles.boards.shape == (n, size) and puzzles.boards.dtype == np.int8
    assert puzzles.solutions.shape == (n, 1, size) and puzzles.solutions.dtype == np.int8
    assert puzzles.num_solutions.tolist() == [1] * n
    assert puzzles.has_answer.all() and puzzles.origin == ["generated"] * n
    for i, board in enumerate(puzzles.boards):
        assert lo <= np.count_nonzero(board) <= hi
        found = solve(board, box=box, cap=2)
        assert len(found) == 1
        assert found[0].tolist() == puzzles.solutions[i, 0].tolist()
        assert puzzles.branches[i] == rate(board, box=box).branches


def test_requested_givens_range_is_respected():
    puzzles = generate(np.random.default_rng(1), 6, givens=(40, 45))
    counts = np.count_nonzero(puzzles.boards, axis=1)
    assert ((counts >= 40) & (counts <= 45)).all()
    assert all(count_solutions(b) == 1 for b in puzzles.boards)


def test_search_difficulty_9x9():
    puzzles = generate(np.random.default_rng(2), 2, difficulty="search")
    for board, branches in zip(puzzles.boards, puzzles.branches, strict=True):
        assert rate(board).level == "search"
        assert branches >= 1
        assert count_solutions(board) == 1


def test_singles_difficulty_9x9():
    puzzles = generate(np.random.default_rng(3), 3, difficulty="singles")
    assert puzzles.branches.tolist() == [0, 0, 0]
    assert all(rate(board).level == "singles" for board in puzzles.boards)


@pytest.mark.parametrize("box, cap", [((2, 2), 4), ((3, 3), 5)])
def test_multi_mode_stores_every_solution(box, cap):
    n = 6
    puzzles = generate(np.random.default_rng(4), n, box=box, mode="multi", cap=cap)
    assert puzzles.solutions.shape == (n, cap, (box[0] * box[1]) ** 2)
    lo, hi = default_givens(box)
    for board, stored, k in zip(
        puzzles.boards, puzzles.solutions, puzzles.num_solutions, strict=True
    ):
        assert 2 <= k <= cap
        assert lo <= np.count_nonzero(board) <= hi
        assert count_solutions(board, box=box, cap=cap + 1) == k
        kept = stored[:k]
        assert len({s.tobytes() for s in kept}) == k
        assert (stored[k:] == 0).all()
        given = board != 0
        for grid in kept:
            assert is_valid_grid(grid, box)
            assert (grid[given] == board[given]).all()
        assert {s.tobytes() for s in kept} == {s.tobytes() for s in solve(board, box, cap)}


@pytest.mark.parametrize("held_out", [True, False])
def test_held_out_side_is_respected(held_out):
    puzzles = generate(np.random.default_rng(5), 3, held_out=held_out, test_fraction=0.3)
    assert [in_test_split(b, 0.3) for b in puzzles.boards] == [held_out] * 3


def test_impossible_request_raises_instead_of_looping():
    # 4x4 puzzles with a unique solution need at least 4 givens
    with pytest.raises(RuntimeError, match=r"could not generate puzzle 1 of .*givens 0\.\.3"):
        generate(np.random.default_rng(6), 1, box=(2, 2), givens=(0, 3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"difficulty": "hard"}, "difficulty"),
        ({"mode": "many"}, "mode"),
        ({"givens": (30, 20)}, "givens"),
        ({"mode": "multi", "cap": 1}, "cap"),
        ({"mode": "multi", "difficulty": "singles"}, "singles"),
        ({"held_out": True, "test_fraction": 0.0}, "keeps nothing"),
    ],
)
def test_bad_requests_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(np.random.default_rng(0), 1, **kwargs)


@pytest.mark.parametrize("box", [(2, 2), (2, 3), (3, 3)])
def test_random_solution_is_a_valid_grid_that_depends_on_the_seed(box):
    grids = [random_solution(np.random.default_rng(seed), box) for seed in range(5)]
    assert all(g.dtype == np.int8 and is_valid_grid(g, box) for g in grids)
    assert all(conflicts(g, box) == [] for g in grids)
    assert len({g.tobytes() for g in grids}) > 1
    again = random_solution(np.random.default_rng(0), box)
    assert np.array_equal(again, grids[0])


def test_multi_solutions_start_with_the_grid_the_puzzle_was_dug_from():
    # the first attempt for this seed succeeds, so its puzzle is dug from the seed's first grid
    grid = random_solution(np.random.default_rng(11))
    puzzles = generate(np.random.default_rng(11), 1, mode="multi", cap=8)
    assert puzzles.solutions[0, 0].tolist() == grid.tolist()
    # for this seed the solver lists another solution first, so the order above was arranged
    assert puzzles.solutions[0, 0].tolist() != solve(puzzles.boards[0], cap=8)[0].tolist()
