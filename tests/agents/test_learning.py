"""Learning claims: PPO with the multicell HRM solves unseen 4×4 Sudoku and finds shortest paths
through unseen 7×7 mazes (fixed seeds and frame budgets)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv

from hrm_rl.agents.evaluation import greedy_solve_rate
from hrm_rl.agents.policy import carry_transforms
from hrm_rl.agents.ppo import PPOAgent, PPOConfig
from hrm_rl.build import build_model
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.maze.rules import MazeRules
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.rules import SudokuRules
from hrm_rl.models import HRM, HRMConfig

MAZE_ITERATIONS = 32  # 32,768 frames at B = 64, T = 16
MAZE_BAR = 0.4


def train_and_test(
    rules: PuzzleRules,
    train: PuzzleSet,
    test: PuzzleSet,
    model: HRM,
    agent_config: PPOConfig,
    seed: int,
    batch: int,
    rollout: int,
    iterations: int,
) -> float:
    """PPO on ``train`` for ``batch * rollout * iterations`` frames; held-out greedy solve rate."""
    env = TransformedEnv(
        BatchedPuzzleEnv(rules, train, batch_size=batch, seed=seed), carry_transforms(model, "cpu")
    )
    agent = PPOAgent(model, agent_config)
    frames = batch * rollout * iterations
    collector = Collector(
        env,
        agent.actor,
        frames_per_batch=batch * rollout,
        total_frames=frames,
        auto_register_policy_transforms=False,
    )
    start = time.perf_counter()
    for data in collector:
        metrics = agent.update(data)
        assert metrics["replay_max_abs_log_ratio"] < 1e-5
    collector.shutdown()
    solve_rate = greedy_solve_rate(agent.actor, model, rules, test)["solve_rate"]
    elapsed = time.perf_counter() - start
    print(
        f"seed {seed}: held-out greedy solve rate {solve_rate:.3f} after {frames} frames in "
        f"{elapsed:.0f} s"
    )
    return solve_rate


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_multicell_solves_95_percent_of_unseen_4x4_puzzles(seed):
    torch.manual_seed(seed)
    rules = SudokuRules(2, 2)
    # unique solutions with 8..12 blanks; training and held-out instances never overlap
    train = generate(np.random.default_rng(0), 4000, box=(2, 2), givens=(4, 8), held_out=False)
    test = generate(np.random.default_rng(1), 500, box=(2, 2), givens=(4, 8), held_out=True)
    assert ((test.boards == 0).sum(axis=1) >= 8).all()
    model = HRM(HRMConfig(num_positions=16, num_values=4, d_model=64, num_heads=4, N=2, T=2))
    assert model.config.h_module == "multicell"
    # 49,152 frames; the agent's defaults
    config = PPOConfig(total_iterations=12)
    solve_rate = train_and_test(rules, train, test, model, config, seed, 256, 16, 12)
    assert solve_rate >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_with_graph_attention_finds_shortest_paths_through_unseen_7x7_mazes(seed):
    torch.manual_seed(seed)
    rules = MazeRules(7, 7)
    # shortest paths of at least 12 moves; training and held-out mazes never overlap
    train = rules.generate(np.random.default_rng(0), 2048, held_out=False)
    test = rules.generate(np.random.default_rng(1), 200, held_out=True)
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        preset = compose("config", overrides=["experiment=maze7x7"])  # its model and lr
    model = build_model(rules, preset.model, torch.device("cpu"))
    assert model.config.attention == "graph"
    agent_config = PPOConfig(
        lr=preset.agent.lr,
        entropy_move=preset.agent.entropy_move,
        total_iterations=MAZE_ITERATIONS,
    )
    solve_rate = train_and_test(
        rules, train, test, model, agent_config, seed, 64, 16, MAZE_ITERATIONS
    )
    assert solve_rate >= MAZE_BAR
