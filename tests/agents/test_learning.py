"""Learning claim: PPO with the multicell HRM solves unseen 4×4 Sudoku (fixed seeds and budget)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv

from hrm_rl.agents.evaluation import greedy_solve_rate
from hrm_rl.agents.policy import carry_transforms
from hrm_rl.agents.ppo import PPOAgent, PPOConfig
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.rules import SudokuRules
from hrm_rl.models import HRM, HRMConfig

BATCH, ROLLOUT, ITERATIONS = 256, 16, 12  # 49,152 frames


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
    env = TransformedEnv(
        BatchedPuzzleEnv(rules, train, batch_size=BATCH, seed=seed), carry_transforms(model, "cpu")
    )
    agent = PPOAgent(model, PPOConfig(total_iterations=ITERATIONS))  # the agent's defaults
    collector = Collector(
        env,
        agent.actor,
        frames_per_batch=BATCH * ROLLOUT,
        total_frames=BATCH * ROLLOUT * ITERATIONS,
        auto_register_policy_transforms=False,
    )
    start = time.perf_counter()
    for data in collector:
        metrics = agent.update(data)
        assert metrics["replay_max_abs_log_ratio"] < 1e-5
    collector.shutdown()
    result = greedy_solve_rate(agent.actor, model, rules, test)
    elapsed = time.perf_counter() - start
    print(
        f"seed {seed}: held-out greedy solve rate {result['solve_rate']:.3f} after "
        f"{BATCH * ROLLOUT * ITERATIONS} frames in {elapsed:.0f} s"
    )
    assert result["solve_rate"] >= 0.95
