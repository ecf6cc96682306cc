"""Batched Sudoku rules agree with plain-Python loops over rows, columns and boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hrm_rl.envs.sudoku.augment import apply_transforms, random_transforms
from hrm_rl.envs.sudoku.rules import SudokuRules

SHAPES = [(2, 2), (2, 3), (3, 3)]


def known_solution(box_rows: int, box_cols: int) -> list[int]:
    """A valid solved board, row-major."""
    n = box_rows * box_cols
    return [
        (box_cols * (r % box_rows) + r // box_rows + c) % n + 1 for r in range(n) for c in range(n)
    ]


def reference_units(box_rows: int, box_cols: int) -> list[list[int]]:
    """Every row, column and box as a list of positions, built by plain loops."""
    n = box_rows * box_cols
    rows = [[r * n + c for c in range(n)] for r in range(n)]
    cols = [[r * n + c for r in range(n)] for c in range(n)]
    boxes = []
    for top in range(0, n, box_rows):
        for left in range(0, n, box_cols):
            boxes.append(
                [(top + a) * n + left + b for a in range(box_rows) for b in range(box_cols)]
            )
    return rows + cols + boxes


def reference_is_solved(board: list[int], box_rows: int, box_cols: int) -> bool:
    """Every row, column and box holds exactly the values 1..n."""
    n = box_rows * box_cols
    return all(
        sorted(board[p] for p in unit) == list(range(1, n + 1))
        for unit in reference_units(box_rows, box_cols)
    )


def reference_legal(board: list[int], box_rows: int, box_cols: int) -> list[list[bool]]:
    """``legal[i][v-1]``: position i is empty and no row, column or box through it holds v."""
    n = box_rows * box_cols
    units = reference_units(box_rows, box_cols)
    legal = []
    for i in range(n * n):
        seen = {board[p] for unit in units if i in unit for p in unit}
        legal.append([board[i] == 0 and v not in seen for v in range(1, n + 1)])
    return legal


def valid_boards(box_rows: int, box_cols: int, batch: int, seed: int) -> torch.Tensor:
    """``int64[B, L]``: random valid solved boards (augmented copies of the known solution)."""
    rules = SudokuRules(box_rows, box_cols)
    solution = torch.tensor(known_solution(box_rows, box_cols)).expand(batch, -1)
    maps = random_transforms(rules, batch, torch.Generator().manual_seed(seed))
    return apply_transforms(solution, *maps)


def boards_strategy(low: int) -> st.SearchStrategy:
    """A box shape and a board of that shape with values drawn from ``low..n``."""
    return st.sampled_from(SHAPES).flatmap(
        lambda shape: st.tuples(
            st.just(shape),
            st.lists(
                st.integers(low, shape[0] * shape[1]),
                min_size=(shape[0] * shape[1]) ** 2,
                max_size=(shape[0] * shape[1]) ** 2,
            ),
        )
    )


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES)
def test_units_match_the_reference(box_rows: int, box_cols: int) -> None:
    rules = SudokuRules(box_rows, box_cols)
    assert sorted(map(sorted, rules.units.tolist())) == sorted(
        map(sorted, reference_units(box_rows, box_cols))
    )


@settings(max_examples=60, deadline=None)
@given(shape_and_board=boards_strategy(low=1))
def test_is_solved_matches_reference_on_random_full_boards(
    shape_and_board: tuple[tuple[int, int], list[int]],
) -> None:
    (box_rows, box_cols), board = shape_and_board
    rules = SudokuRules(box_rows, box_cols)
    got = rules.is_solved(torch.tensor([board])).item()
    assert got == reference_is_solved(board, box_rows, box_cols)


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**63 - 1), data=st.data())
def test_is_solved_matches_reference_on_valid_and_nearly_valid_boards(
    shape: tuple[int, int], seed: int, data: st.DataObject
) -> None:
    box_rows, box_cols = shape
    n = box_rows * box_cols
    rules = SudokuRules(box_rows, box_cols)
    valid = valid_boards(box_rows, box_cols, 8, seed)
    # one changed cell: a full board that looks almost right
    position = data.draw(st.integers(0, n * n - 1), label="position")
    shift = data.draw(st.integers(1, n - 1), label="shift")
    nearly = valid.clone()
    nearly[:, position] = (nearly[:, position] - 1 + shift) % n + 1
    for boards in (valid, nearly):
        expected = [reference_is_solved(b, box_rows, box_cols) for b in boards.tolist()]
        assert rules.is_solved(boards).tolist() == expected
    assert rules.is_solved(valid).all() and not rules.is_solved(nearly).any()


@settings(max_examples=60, deadline=None)
@given(
    shape_and_board=boards_strategy(low=0),
    blanks=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**63 - 1),
)
def test_legal_mask_matches_reference_on_random_partial_boards(
    shape_and_board: tuple[tuple[int, int], list[int]], blanks: float, seed: int
) -> None:
    (box_rows, box_cols), board = shape_and_board
    rules = SudokuRules(box_rows, box_cols)
    generator = torch.Generator().manual_seed(seed)
    random_board = torch.tensor([board])
    random_board[torch.rand(random_board.shape, generator=generator) < blanks] = 0
    # also a board that respects the rules, so that legal values are plentiful
    valid = valid_boards(box_rows, box_cols, 1, seed % 2**63)
    valid[torch.rand(valid.shape, generator=generator) < blanks] = 0
    for boards in (random_board, valid):
        expected = reference_legal(boards[0].tolist(), box_rows, box_cols)
        assert rules.legal_mask(boards)[0].tolist() == expected


@settings(max_examples=40, deadline=None)
@given(shape_and_board=boards_strategy(low=0))
def test_breaks_rules_matches_reference(
    shape_and_board: tuple[tuple[int, int], list[int]],
) -> None:
    (box_rows, box_cols), board = shape_and_board
    rules = SudokuRules(box_rows, box_cols)
    repeated = any(
        len(values) != len(set(values))
        for unit in reference_units(box_rows, box_cols)
        for values in [[board[p] for p in unit if board[p]]]
    )
    assert rules.breaks_rules(torch.tensor([board])).item() == repeated


def test_naked_singles_are_filled_with_the_solution_until_none_is_left():
    rules = SudokuRules(3, 3)
    puzzles = rules.generate(np.random.default_rng(5), 8, givens=(24, 30))
    boards = torch.as_tensor(puzzles.boards, dtype=torch.long)
    solution = torch.as_tensor(puzzles.solutions[:, 0], dtype=torch.long)
    filled = rules.fill_forced(boards)
    assert ((filled == 0) | (filled == solution)).all()  # every filled value is the solution's
    assert (filled != 0).sum() > (boards != 0).sum()
    legal = rules.legal_mask(filled)
    assert not ((legal.sum(dim=-1) == 1) & (filled == 0)).any()  # no naked single left


def test_difficulty_labels_tell_puzzles_singles_finish_from_those_that_need_search():
    from hrm_rl.envs.maze.rules import MazeRules
    from hrm_rl.envs.sudoku.generator import generate

    rules, rng = SudokuRules(3, 3), np.random.default_rng(4)
    singles = generate(rng, 3, box=(3, 3), difficulty="singles").boards
    search = generate(rng, 3, box=(3, 3), difficulty="search").boards
    labels = rules.difficulty_labels(np.concatenate([singles, search]))
    assert labels == ["singles"] * 3 + ["search"] * 3
    assert MazeRules(7, 7).difficulty_labels(np.zeros((2, 49), dtype=np.int64)) is None
