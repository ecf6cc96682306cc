"""Each family's constraint graph is the one its rules enforce (graph attention follows it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from hrm_rl.envs.base import PuzzleRules
from hrm_rl.envs.maze.rules import MazeRules
from hrm_rl.envs.sudoku.rules import SudokuRules

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "latin_square"


def blocked_by_one_placement(rules: PuzzleRules) -> torch.Tensor:
    """``bool[L, L]``: [i, j] when value 1 placed alone at i makes value 1 illegal at j."""
    L = rules.num_positions
    boards = torch.diag(torch.ones(L, dtype=torch.long))  # board i: a 1 at position i
    return ~rules.legal_mask(boards)[:, :, 0]


def latin_rules(size: int) -> PuzzleRules:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from hrm_rl_latin.rules import LatinRules
    finally:
        sys.path.remove(str(EXAMPLE))
    return LatinRules(size)


@pytest.mark.parametrize("box", [(2, 2), (2, 3), (3, 3)])
def test_sudoku_graph_is_row_column_box_and_its_union_is_what_the_rules_forbid(box):
    rules = SudokuRules(*box)
    graph = rules.constraint_graph()
    n, L = rules.size, rules.num_positions
    assert graph.shape == (3, L, L) and graph.dtype == torch.bool
    row, col = torch.arange(L) // n, torch.arange(L) % n
    band = (row // box[0]) * (n // box[1]) + col // box[1]
    for kind, key in enumerate((row, col, band)):
        assert torch.equal(graph[kind], key[:, None] == key[None])
    assert torch.equal(graph.any(dim=0), blocked_by_one_placement(rules))
    assert graph.any(dim=0).sum(dim=1).tolist() == [3 * n - 2 - (box[0] - 1) - (box[1] - 1)] * L
    assert rules.grid_shape == (n, n)


def test_the_latin_example_declares_rows_and_columns_and_they_match_its_rules():
    rules = latin_rules(5)
    graph = rules.constraint_graph()
    assert graph.shape == (2, 25, 25)
    assert torch.equal(graph.any(dim=0), blocked_by_one_placement(rules))
    assert graph.any(dim=0).sum(dim=1).tolist() == [9] * 25  # 4 + 4 peers and itself


def test_maze_graph_links_each_cell_to_its_four_neighbours():
    rules = MazeRules(4, 6)
    graph = rules.constraint_graph()
    assert graph.shape == (1, 24, 24)
    assert torch.equal(graph, graph.transpose(1, 2))
    degree = graph[0].sum(dim=1).view(4, 6) - 1
    assert degree[0, 0] == 2 and degree[0, 3] == 3 and degree[1, 2] == 4
    assert graph[0, 7, 1] and graph[0, 7, 6] and graph[0, 7, 8] and graph[0, 7, 13]
    assert not graph[0, 5, 6]  # the end of row 0 and the start of row 1 are not neighbours
    assert rules.grid_shape == (4, 6)


def test_a_family_that_declares_no_graph_gets_all_pairs_and_no_grid():
    class Bare(PuzzleRules):
        num_positions, num_values = 5, 2

    rules = Bare()
    assert torch.equal(rules.constraint_graph(), torch.ones(1, 5, 5, dtype=torch.bool))
    assert rules.grid_shape is None
