"""Greedy evaluation of a policy on a fixed set of puzzles, judged by the rules."""

from __future__ import annotations

import torch
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from hrm_rl.agents.policy import carry_transforms
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv


@torch.no_grad()
def greedy_solve_rate(actor, model, rules: PuzzleRules, puzzles: PuzzleSet, **env_options) -> dict:
    """Play every puzzle once, greedily (top move, top-k cells); share solved by the rules.

    All puzzles run side by side in one batched env (no augmentation, in bank order); an
    episode ends at its first termination, so every puzzle is counted exactly once.
    """
    count = len(puzzles)
    device = next(model.parameters()).device
    env = TransformedEnv(
        BatchedPuzzleEnv(
            rules,
            puzzles,
            batch_size=count,
            device=device,
            order="sequential",
            augment=False,
            **env_options,
        ),
        carry_transforms(model, device),
    )
    steps = rules.num_positions + 1  # cell mode: every step fills a position or ends the episode
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(steps, actor, break_when_all_done=True, break_when_any_done=False)
    done = rollout["next", "done"].squeeze(-1)  # [count, steps]
    if not done.any(dim=1).all():
        raise RuntimeError(f"{int((~done.any(dim=1)).sum())} episodes did not end in {steps} steps")
    first_done = done.float().argmax(dim=1)
    rows = torch.arange(count, device=done.device)
    solved = rollout["next", "solved"].squeeze(-1)[rows, first_done]
    moves = first_done + 1
    return {
        "solve_rate": solved.float().mean().item(),
        "mean_moves": moves.float().mean().item(),
        "puzzles": count,
    }
