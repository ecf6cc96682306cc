"""Mazes through the batched env (BatchedPuzzleEnv): TorchRL specs, step-for-step agreement with
the Gymnasium front-end, every 30×30 maze file solved along two paths, and grid proposals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from equivalence import assert_same_trajectories
from maze_reference import given_path, other_shortest_path
from torchrl.envs.utils import check_env_specs

from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.gym_env import PuzzleEnv
from hrm_rl.envs.maze.generator import generate
from hrm_rl.envs.maze.rules import BLANK, OFF_PATH, PATH, WALL, MazeRules

V = 5


@pytest.fixture(scope="module")
def bank7():
    return generate(np.random.default_rng(0), 40, size=(7, 7))


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("action_mode", ["cell", "grid"])
def test_check_env_specs(bank7, batch, action_mode):
    env = BatchedPuzzleEnv(
        MazeRules(7, 7), bank7, batch_size=batch, action_mode=action_mode, seed=0
    )
    check_env_specs(env)


def test_same_mazes_and_actions_give_identical_trajectories(bank7):
    """B slots play against B Gymnasium envs reset to the maze each slot drew (as for Sudoku)."""
    _, solved = assert_same_trajectories(MazeRules(7, 7), bank7, batch_size=6, steps=80)
    assert solved >= 1  # episodes ended by mistakes and by solves


def test_every_hard_maze_solves_along_two_paths_in_the_batched_env(hard):
    """All N given paths and N other shortest paths, played in one batch of 2N slots."""
    n = len(hard)
    paths = [given_path(hard, i) for i in range(n)] + [
        other_shortest_path(hard, i) for i in range(n)
    ]
    env = BatchedPuzzleEnv(
        MazeRules(30, 30), hard, batch_size=2 * n, augment=False, solve_bonus=1.0
    )
    td = env.reset(puzzle_index=torch.arange(2 * n) % n)
    total = torch.zeros(2 * n, dtype=torch.float64)
    done = torch.zeros(2 * n, dtype=torch.bool)
    for step in range(max(map(len, paths))):
        action = [p[min(step, len(p) - 1)] * V + PATH - 1 for p in paths]
        td["action"] = torch.tensor(action)
        td = env.step(td)
        reward = td["next", "reward"].squeeze(1).double()
        total += torch.where(done, 0.0, reward)
        newly = td["next", "done"].squeeze(1) & ~done
        ends = torch.tensor([len(p) == step + 1 for p in paths])
        assert torch.equal(newly, ends & ~done)  # every slot ends exactly at its last cell
        assert td["next", "solved"].squeeze(1)[newly].all()
        done |= newly
        td = td["next"]
    assert done.all()
    assert torch.allclose(total, torch.full((2 * n,), 2.0, dtype=torch.float64))


# --- whole-board proposals ---------------------------------------------------------------------


def test_grid_mode_solves_with_a_shortest_path_and_not_without(bank7):
    rules = MazeRules(7, 7)
    env = BatchedPuzzleEnv(
        rules, bank7, batch_size=4, action_mode="grid", augment=False, shaping=0.5, seed=1
    )
    td = env.reset()
    solutions = torch.as_tensor(bank7.solutions[td["puzzle_index"].numpy(), 0]).long()
    td["action"] = torch.where(solutions == BLANK, OFF_PATH, solutions) - 1
    out = env.step(td)["next"]
    assert out["terminated"].all() and out["solved"].all()
    assert torch.equal(out["reward"], torch.ones(4, 1))
    td = env.reset()
    td["action"] = torch.where(td["board"] == BLANK, OFF_PATH, td["board"]) - 1  # no path at all
    out = env.step(td)["next"]
    assert not out["terminated"].any() and torch.equal(out["reward"], torch.zeros(4, 1))


def test_a_grid_proposal_that_adds_walls_never_solves_in_either_env(bank7):
    """A proposal may only mark path or off-path at open cells: a correct path with one new wall
    elsewhere is refused by both front-ends, although the board alone would look solved."""
    rules = MazeRules(7, 7)
    solution = torch.as_tensor(bank7.solutions[0, 0]).long()
    proposal = torch.where(solution == BLANK, OFF_PATH, solution)
    extra = int((solution == BLANK).nonzero()[0])
    proposal[extra] = WALL
    assert bool(rules.is_solved(proposal.unsqueeze(0))[0])  # the rules see only the board

    batched = BatchedPuzzleEnv(rules, bank7, batch_size=1, action_mode="grid", augment=False)
    td = batched.reset(puzzle_index=torch.tensor([0]))
    td["action"] = (proposal - 1).unsqueeze(0)
    assert not batched.step(td)["next", "solved"].any()

    single = PuzzleEnv(rules=rules, puzzles=bank7, action_mode="grid")
    single.reset(options={"index": 0})
    _, reward, terminated, _, info = single.step((proposal - 1).numpy())
    assert not terminated and not info["solved"] and reward == 0.0
    proposal[extra] = OFF_PATH
    _, reward, terminated, _, info = single.step((proposal - 1).numpy())
    assert terminated and info["solved"] and reward == 1.0
