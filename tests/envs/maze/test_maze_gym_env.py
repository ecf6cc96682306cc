"""Mazes through the Gymnasium front-end (PuzzleEnv): the env checker, 30×30 maze files played
along their own and other shortest paths, and a placement off every shortest path."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from maze_reference import given_path, other_shortest_path

import hrm_rl  # noqa: F401  (registers the Gymnasium ids)
from hrm_rl.envs.gym_env import PuzzleEnv
from hrm_rl.envs.maze.generator import count_shortest_paths
from hrm_rl.envs.maze.rules import PATH

V = 5


def play(env: PuzzleEnv, index: int, positions: list[int]) -> tuple[float, bool, dict]:
    env.reset(options={"index": index})
    total, terminated, info = 0.0, False, {}
    for step, position in enumerate(positions):
        assert not terminated, f"ended early at step {step}"
        _, reward, terminated, truncated, info = env.step(position * V + PATH - 1)
        assert not truncated
        total += reward
    return total, terminated, info


@pytest.mark.parametrize("action_mode", ["cell", "grid"])
def test_gymnasium_check_env(action_mode):
    env = gym.make("hrm_rl/Maze7x7-v0", action_mode=action_mode, render_mode="ansi").unwrapped
    check_env(env, skip_render_check=False)
    assert repr(env.rules) == "MazeRules(7x7)"


# --- 30×30 maze files: self-made, and the public Maze-Hard sample ------------------------------


def test_given_and_other_shortest_paths_solve_through_puzzle_env(hard):
    env = PuzzleEnv(family="maze", size=(30, 30), puzzles=hard, solve_bonus=0.5)
    several = [i for i in range(len(hard)) if count_shortest_paths(hard.boards[i], (30, 30)) > 1]
    assert len(several) >= 0.8 * len(hard)  # these mazes nearly always have several
    for i in several[:1]:  # one maze (a 30×30 step is ~10 ms); test_maze_batched plays them all
        for path in (given_path(hard, i), other_shortest_path(hard, i)):
            total, terminated, info = play(env, i, path)
            assert terminated and info["solved"] and not info["mistake"]
            assert total == pytest.approx(1.5)
        assert other_shortest_path(hard, i) != given_path(hard, i)


def test_hrm_built_maze_folder_plays_through_puzzle_env_read_from_data(self_made_data):
    """``data=`` an HRM built split: read through MazeRules.read, each given path solves."""
    split = self_made_data / "maze" / "hrm_maze" / "test"
    env = PuzzleEnv(family="maze", size=(30, 30), data=str(split), solve_bonus=0.5)
    mazes = env.puzzles
    assert len(mazes) == 4 and mazes.origin[0] == "test/all__inputs.npy:row 0"
    for i in range(len(mazes)):
        total, terminated, info = play(env, i, given_path(mazes, i))
        assert terminated and info["solved"] and total == pytest.approx(1.5)


def test_a_placement_off_every_shortest_path_is_a_mistake(hard):
    env = PuzzleEnv(family="maze", size=(30, 30), puzzles=hard, mistake_reward=-1.0)
    rules = env.rules
    for i in range(len(hard)):
        board = torch.as_tensor(hard.boards[i]).long().view(1, -1)
        legal = rules.legal_mask(board)[0, :, PATH - 1].nonzero().view(-1)
        sound = rules.is_sound(
            board.expand(len(legal), -1), None, None, legal, torch.full((len(legal),), PATH)
        )
        if (~sound).any():
            break
    else:
        pytest.fail("no maze of the sample has a legal first move off every shortest path")
    env.reset(options={"index": i})
    _, reward, terminated, _, info = env.step(int(legal[~sound][0]) * V + PATH - 1)
    assert terminated and info["mistake"] and not info["solved"] and not info["illegal"]
    assert reward == -1.0
