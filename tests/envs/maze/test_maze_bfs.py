"""Maze BFS: the batched distances agree with a plain-Python BFS."""

from __future__ import annotations

import numpy as np
import torch
from maze_reference import cell_of, distances, random_board

from hrm_rl.envs.maze.bfs import bfs_distances
from hrm_rl.envs.maze.rules import GOAL, WALL


def test_bfs_distances_match_the_reference():
    rng = np.random.default_rng(5)
    grids = [random_board(rng, (8, 11)) for _ in range(20)]
    boards = torch.as_tensor(np.stack([g.ravel() for g in grids])).long()
    got = bfs_distances(boards != WALL, boards == GOAL, 11)
    for b, grid in enumerate(grids):
        want = np.full(grid.shape, -1)
        for cell, d in distances(grid, cell_of(grid, GOAL), lambda t: t != WALL).items():
            want[cell] = d
        np.testing.assert_array_equal(got[b].view(8, 11).numpy(), want)
