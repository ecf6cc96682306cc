"""The maze generator: seeded, long enough paths, several shortest paths, held-out mazes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm_rl.envs.maze.generator import canonical_form, count_shortest_paths, generate
from hrm_rl.envs.maze.grid import dihedral_maps
from hrm_rl.envs.maze.rules import BLANK, GOAL, START, WALL, MazeRules


def test_generator_refuses_a_maze_with_nothing_to_place():
    with pytest.raises(ValueError, match="min_path must be at least 2 moves"):
        generate(np.random.default_rng(0), 1, size=(7, 7), min_path=1)


def test_generator_is_seeded_and_respects_min_path():
    a = generate(np.random.default_rng(7), 40, size=(9, 9), min_path=20)
    b = generate(np.random.default_rng(7), 40, size=(9, 9), min_path=20)
    c = generate(np.random.default_rng(8), 40, size=(9, 9), min_path=20)
    np.testing.assert_array_equal(a.boards, b.boards)
    np.testing.assert_array_equal(a.solutions, b.solutions)
    assert not np.array_equal(a.boards, c.boards)
    D = MazeRules(9, 9).shortest_distance(torch.as_tensor(a.boards).long())
    assert (D >= 20).all()
    assert not a.has_answer.any() and (a.num_solutions == 1).all()


@pytest.mark.parametrize("size", [(7, 7), (30, 30)])
def test_generated_mazes_are_valid_and_often_have_several_shortest_paths(size):
    puzzles = generate(np.random.default_rng(0), 30, size=size)
    rules = MazeRules(*size)
    boards = torch.as_tensor(puzzles.boards).long()
    assert ((boards == START).sum(1) == 1).all() and ((boards == GOAL).sum(1) == 1).all()
    assert set(boards.unique().tolist()) == {BLANK, WALL, START, GOAL}
    assert (rules.shortest_distance(boards) >= size[0] + size[1] - 2).all()  # the default
    assert rules.is_solved(torch.as_tensor(puzzles.solutions[:, 0]).long()).all()
    several = [count_shortest_paths(board, size) > 1 for board in puzzles.boards]
    assert np.mean(several) > 0.5


def test_held_out_mazes_never_appear_in_training_even_rotated():
    size = (7, 7)
    train = generate(np.random.default_rng(0), 300, size=size, held_out=False)
    test = generate(np.random.default_rng(0), 100, size=size, held_out=True)
    train_keys = {canonical_form(b, size).tobytes() for b in train.boards}
    test_keys = {canonical_form(b, size).tobytes() for b in test.boards}
    assert not train_keys & test_keys
    maps = dihedral_maps(*size).numpy()
    rotated = test.boards[0][maps[1]]
    assert canonical_form(rotated, size).tobytes() in test_keys
