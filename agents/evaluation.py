"""Greedy evaluation of a policy on a fixed set of puzzles, judged by the rules."""

from __future__ import annotations

import torch
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from hrm_rl.agents.policy import carry_transforms
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv


@torch.no_grad()
def greedy_solve_rate(
    actor: torch.nn.Module,
    model: torch.nn.Module,
    rules: PuzzleRules,
    puzzles: PuzzleSet,
    device: torch.device | str = "cpu",
    **env_options,
) -> dict[str, float]:
    """Play every puzzle once, greedily (top move, top-k cells): the share solved by the rules.

    All puzzles run side by side in one batched env (slot i plays puzzle i, no augmentation);
    each counts its first episode only. Only flags are kept, not the rollout, so memory stays
    small for large sets. ``env_options`` (action mode, rewards) are passed to the env.
    """
    count = len(puzzles)
    base = BatchedPuzzleEnv(
        rules, puzzles, count, device=device, order="sequential", augment=False, **env_options
    )
    env = TransformedEnv(base, carry_transforms(model, device))
    # a cell-mode episode fills one blank per step; a grid-mode one ends at max_segments
    max_steps = rules.num_positions if base.action_mode == "cell" else base.max_segments
    finished = torch.zeros(count, dtype=torch.bool, device=device)
    solved = torch.zeros_like(finished)
    steps = torch.zeros(count, device=device)
    tensordict = env.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(max_steps):
            tensordict, next_root = env.step_and_maybe_reset(actor(tensordict))
            done = tensordict["next", "done"].view(-1)
            steps += (~finished).float()
            solved |= done & ~finished & tensordict["next", "solved"].view(-1)
            finished |= done
            if finished.all():
                break
            tensordict = next_root
    return {"solve_rate": solved.float().mean().item(), "episode_steps": steps.mean().item()}
