"""Maze grid helpers: the dihedral maps are the shape-keeping symmetries and keep solutions
solved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm_rl.envs.maze.generator import generate
from hrm_rl.envs.maze.grid import dihedral_maps
from hrm_rl.envs.maze.rules import MazeRules


@pytest.mark.parametrize("shape", [(7, 7), (6, 9)])
def test_every_dihedral_map_keeps_solutions_solved(shape):
    rules = MazeRules(*shape)
    puzzles = generate(np.random.default_rng(1), 20, size=shape)
    solutions = torch.as_tensor(puzzles.solutions[:, 0]).long()
    maps = dihedral_maps(*shape)
    assert len(maps) == (8 if shape[0] == shape[1] else 4)
    assert len({tuple(m.tolist()) for m in maps}) == len(maps)
    for m in maps:
        assert rules.is_solved(solutions[:, m]).all()
