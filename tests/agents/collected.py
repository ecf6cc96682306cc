"""A small collected PPO batch on 4x4 Sudoku (or other rules), shared by the agent tests (policy,
PPO)."""

from __future__ import annotations

import torch
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv

from hrm_rl.agents.policy import carry_transforms
from hrm_rl.agents.ppo import PPOAgent, PPOConfig
from hrm_rl.envs.base import PuzzleRules
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.sudoku.rules import SudokuRules
from hrm_rl.models import HRM, HRMConfig


def collect(
    bank,
    grad: str,
    h_module: str = "multicell",
    batch: int = 8,
    steps: int = 6,
    precision: str = "auto",
    cell_choice: str = "policy",
    warmup_segments: int = 0,
    rules: PuzzleRules | None = None,
    **options,
):
    rules = rules or SudokuRules(2, 2)
    torch.manual_seed(0)
    model = HRM(
        HRMConfig(
            num_positions=rules.num_positions,
            num_values=rules.num_values,
            d_model=32,
            num_heads=2,
            N=2,
            T=2,
            h_module=h_module,
            grad=grad,
            num_cells=4,
            top_k=2,
            cell_choice=cell_choice,
            warmup_segments=warmup_segments,
        )
    )
    env = TransformedEnv(
        BatchedPuzzleEnv(rules, bank, batch_size=batch, seed=0),
        carry_transforms(model, "cpu"),
    )
    config = PPOConfig(**{"minibatch_size": 16, "epochs": 1, "precision": precision, **options})
    agent = PPOAgent(model, config, rules.target_board)
    collector = Collector(
        env,
        agent.actor,
        frames_per_batch=batch * steps,
        total_frames=batch * steps,
        auto_register_policy_transforms=False,
    )
    data = next(iter(collector))
    collector.shutdown()
    return agent, data
