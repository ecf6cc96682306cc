"""Sudoku augmentations: every transform keeps solutions solved and puzzles equally hard."""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hrm_rl.envs.sudoku.augment import apply_transforms, random_transforms
from hrm_rl.envs.sudoku.rules import SudokuRules

SHAPES = [(2, 2), (2, 3), (3, 3)]
SHAPE_IDS = ["4x4", "6x6", "9x9"]


def known_solution(box_rows: int, box_cols: int) -> torch.Tensor:
    """``int64[L]``: a valid solved board (row r is the first row shifted by a box-aware offset)."""
    n = box_rows * box_cols
    return torch.tensor(
        [
            (box_cols * (r % box_rows) + r // box_rows + c) % n + 1
            for r in range(n)
            for c in range(n)
        ]
    )


def blank_cells(boards: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """The boards with about ``fraction`` of their cells set to 0."""
    blank = torch.rand(boards.shape, generator=generator) < fraction
    return boards.masked_fill(blank, 0)


def augmented_solutions(rules: SudokuRules, batch: int, seed: int) -> torch.Tensor:
    """``int64[B, L]``: randomly transformed copies of the known solution."""
    generator = torch.Generator().manual_seed(seed)
    solution = known_solution(rules.box_rows, rules.box_cols).expand(batch, -1)
    return apply_transforms(solution, *random_transforms(rules, batch, generator))


def count_solutions(puzzle: list[int], box_rows: int, box_cols: int, cap: int) -> int:
    """min(number of solutions, cap), by plain backtracking on the most constrained blank."""
    n = box_rows * box_cols
    board = list(puzzle)
    peers = []
    for i in range(n * n):
        r, c = divmod(i, n)
        top, left = r - r % box_rows, c - c % box_cols
        box = {(top + a) * n + left + b for a in range(box_rows) for b in range(box_cols)}
        peers.append(({r * n + k for k in range(n)} | {k * n + c for k in range(n)} | box) - {i})

    def search() -> int:
        best, best_options = None, None
        for i, value in enumerate(board):
            if value == 0:
                options = set(range(1, n + 1)) - {board[p] for p in peers[i]}
                if best_options is None or len(options) < len(best_options):
                    best, best_options = i, options
        if best is None:
            return 1
        found = 0
        for value in best_options:
            board[best] = value
            found += search()
            board[best] = 0
            if found >= cap:
                return cap
        return found

    if any(v and v in {board[p] for p in peers[i]} for i, v in enumerate(board)):
        return 0
    return min(search(), cap)


# --- the maps themselves --------------------------------------------------------------------


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_known_solution_is_solved(box_rows: int, box_cols: int) -> None:
    rules = SudokuRules(box_rows, box_cols)
    assert rules.is_solved(known_solution(box_rows, box_cols)[None]).item()


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_maps_are_permutations(box_rows: int, box_cols: int) -> None:
    rules = SudokuRules(box_rows, box_cols)
    n = rules.size
    position_map, value_map = random_transforms(rules, 512, torch.Generator().manual_seed(1))
    assert position_map.shape == (512, n * n) and position_map.dtype == torch.int64
    assert value_map.shape == (512, n + 1) and value_map.dtype == torch.int64
    assert torch.equal(position_map.sort(dim=1).values, torch.arange(n * n).expand(512, -1))
    assert (value_map[:, 0] == 0).all()
    assert torch.equal(value_map[:, 1:].sort(dim=1).values, torch.arange(1, n + 1).expand(512, -1))


def test_apply_follows_the_stated_formula() -> None:
    rules = SudokuRules(2, 3)
    generator = torch.Generator().manual_seed(2)
    boards = blank_cells(augmented_solutions(rules, 8, seed=3), 0.4, generator)
    position_map, value_map = random_transforms(rules, 8, generator)
    new = apply_transforms(boards, position_map, value_map)
    for b in range(8):
        for i in range(rules.num_positions):
            source = boards[b, position_map[b, i]]
            assert new[b, i] == value_map[b, source]


def test_apply_keeps_shape_and_dtype_and_treats_stacked_boards_alike() -> None:
    rules = SudokuRules(3, 3)
    generator = torch.Generator().manual_seed(4)
    solutions = augmented_solutions(rules, 16, seed=5).to(torch.int8)
    stacked = torch.stack([solutions, solutions.flip(0)], dim=1)  # [B, S=2, L]
    maps = random_transforms(rules, 16, generator)
    new = apply_transforms(stacked, *maps)
    assert new.shape == stacked.shape and new.dtype == torch.int8
    assert torch.equal(new[:, 0], apply_transforms(solutions, *maps))
    assert torch.equal(new[:, 1], apply_transforms(solutions.flip(0), *maps))


def test_all_flags_off_is_the_identity() -> None:
    rules = SudokuRules(3, 3)
    boards = augmented_solutions(rules, 32, seed=6)
    maps = random_transforms(
        rules,
        32,
        torch.Generator().manual_seed(7),
        relabel=False,
        transpose=False,
        bands=False,
        rows=False,
    )
    assert torch.equal(apply_transforms(boards, *maps), boards)


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_same_seed_same_transforms(box_rows: int, box_cols: int) -> None:
    rules = SudokuRules(box_rows, box_cols)
    first = random_transforms(rules, 64, torch.Generator().manual_seed(8))
    again = random_transforms(rules, 64, torch.Generator().manual_seed(8))
    other = random_transforms(rules, 64, torch.Generator().manual_seed(9))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0]) or not torch.equal(first[1], other[1])


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_transforms_are_varied(box_rows: int, box_cols: int) -> None:
    rules = SudokuRules(box_rows, box_cols)
    boards = augmented_solutions(rules, 256, seed=10)
    distinct = {tuple(board) for board in boards.tolist()}
    assert len(distinct) >= 50
    identity = known_solution(box_rows, box_cols)
    assert (boards != identity).any(dim=1).float().mean() > 0.9


@pytest.mark.parametrize(
    "flag_on", ["relabel", "transpose", "bands", "rows"], ids=lambda flag: f"only-{flag}"
)
def test_each_kind_of_transform_does_something_on_square_boxes(flag_on: str) -> None:
    rules = SudokuRules(3, 3)
    flags = {flag: flag == flag_on for flag in ["relabel", "transpose", "bands", "rows"]}
    position_map, value_map = random_transforms(
        rules, 256, torch.Generator().manual_seed(11), **flags
    )
    moved = (position_map != torch.arange(81)).any(dim=1)
    relabelled = (value_map != torch.arange(10)).any(dim=1)
    if flag_on == "relabel":
        assert not moved.any() and relabelled.float().mean() > 0.9
    elif flag_on == "transpose":  # a fair coin per board
        assert not relabelled.any() and 0.3 < moved.float().mean() < 0.7
        transposed = torch.arange(81).view(9, 9).t().reshape(-1)
        assert ((position_map == transposed).all(dim=1) | ~moved).all()
    else:
        assert not relabelled.any() and moved.float().mean() > 0.7


def test_transpose_is_skipped_for_non_square_boxes() -> None:
    rules = SudokuRules(2, 3)
    position_map, _ = random_transforms(
        rules, 256, torch.Generator().manual_seed(12), relabel=False, bands=False, rows=False
    )
    assert torch.equal(position_map, torch.arange(36).expand(256, -1))


def test_generator_on_another_device_is_refused() -> None:
    with pytest.raises(ValueError, match="generator lives on"):
        random_transforms(SudokuRules(2, 2), 4, torch.Generator(), device="meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_with_a_cuda_generator() -> None:
    rules = SudokuRules(3, 3)
    generator = torch.Generator(device="cuda").manual_seed(13)
    position_map, value_map = random_transforms(rules, 1024, generator)
    assert position_map.device.type == "cuda" and value_map.device.type == "cuda"
    solutions = known_solution(3, 3).cuda().expand(1024, -1)
    assert rules.is_solved(apply_transforms(solutions, position_map, value_map)).all()


def test_fast_for_a_large_batch_on_cpu() -> None:
    rules = SudokuRules(3, 3)
    generator = torch.Generator().manual_seed(14)
    boards = known_solution(3, 3).to(torch.int8).expand(4096, -1)
    random_transforms(rules, 8, generator)  # warm-up
    start = time.perf_counter()
    apply_transforms(boards, *random_transforms(rules, 4096, generator))
    assert time.perf_counter() - start < 1.0  # about 20 ms on a laptop


# --- validity is preserved ------------------------------------------------------------------


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_solved_boards_stay_solved(box_rows: int, box_cols: int) -> None:
    rules = SudokuRules(box_rows, box_cols)
    assert rules.is_solved(augmented_solutions(rules, 1024, seed=15)).all()


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    seed=st.integers(0, 2**63 - 1),
    flags=st.fixed_dictionaries(
        {f: st.booleans() for f in ["relabel", "transpose", "bands", "rows"]}
    ),
)
def test_solved_boards_stay_solved_for_any_seed_and_flags(
    shape: tuple[int, int], seed: int, flags: dict[str, bool]
) -> None:
    rules = SudokuRules(*shape)
    solution = known_solution(*shape).expand(32, -1)
    maps = random_transforms(rules, 32, torch.Generator().manual_seed(seed), **flags)
    assert rules.is_solved(apply_transforms(solution, *maps)).all()


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_puzzle_and_solution_transformed_together_stay_consistent(
    box_rows: int, box_cols: int
) -> None:
    rules = SudokuRules(box_rows, box_cols)
    generator = torch.Generator().manual_seed(16)
    solutions = augmented_solutions(rules, 256, seed=17)
    puzzles = blank_cells(solutions, 0.6, generator)
    new = apply_transforms(
        torch.stack([puzzles, solutions], dim=1), *random_transforms(rules, 256, generator)
    )
    new_puzzles, new_solutions = new[:, 0], new[:, 1]
    assert rules.is_solved(new_solutions).all()
    givens = new_puzzles != 0
    assert torch.equal(new_puzzles[givens], new_solutions[givens])
    assert torch.equal(givens.sum(dim=1), (puzzles != 0).sum(dim=1))


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_breaking_the_rules_is_preserved_both_ways(box_rows: int, box_cols: int) -> None:
    rules = SudokuRules(box_rows, box_cols)
    generator = torch.Generator().manual_seed(18)
    valid = blank_cells(augmented_solutions(rules, 256, seed=19), 0.5, generator)
    broken = valid.clone()
    broken[:, 0], broken[:, 1] = 1, 1  # two equal values in the first row
    for boards in (valid, broken):
        before = rules.breaks_rules(boards)
        after = rules.breaks_rules(
            apply_transforms(boards, *random_transforms(rules, 256, generator))
        )
        assert torch.equal(before, after)
    assert not rules.breaks_rules(valid).any() and rules.breaks_rules(broken).all()


@settings(max_examples=25, deadline=None)
@given(
    shape=st.sampled_from([(2, 2), (2, 3)]),
    seed=st.integers(0, 2**63 - 1),
    blank_fraction=st.floats(0.3, 0.75),
)
def test_solution_count_is_unchanged(
    shape: tuple[int, int], seed: int, blank_fraction: float
) -> None:
    rules = SudokuRules(*shape)
    generator = torch.Generator().manual_seed(seed)
    solutions = augmented_solutions(rules, 2, seed=seed)
    puzzles = blank_cells(solutions, blank_fraction, generator)
    puzzles[1, 0], puzzles[1, 1] = 1, 1  # the second puzzle has no solution at all
    new = apply_transforms(puzzles, *random_transforms(rules, 2, generator))
    for before, after in zip(puzzles.tolist(), new.tolist(), strict=True):
        assert count_solutions(after, *shape, cap=30) == count_solutions(before, *shape, cap=30)
