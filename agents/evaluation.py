"""Playing a fixed set of puzzles once each with a policy, judged by the rules."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from hrm_rl.agents.policy import carry_transforms
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv


@dataclass
class Episodes:
    """The first episode of every puzzle under one policy: per-puzzle flags, moves, final board."""

    solved: np.ndarray  # bool [P]
    moves: np.ndarray  # int64 [P]: env steps of the episode
    mistake: np.ndarray  # bool [P]: the episode ended unsolved
    final_board: np.ndarray  # int64 [P, L]: the board when the episode ended
    cell_counts: np.ndarray | None  # int64 [num_cells]: chosen-cell counts (multicell only)
    seconds: float


@torch.no_grad()
def play_first_episodes(
    actor: torch.nn.Module,
    model: torch.nn.Module,
    rules: PuzzleRules,
    puzzles: PuzzleSet,
    device: torch.device | str = "cpu",
    exploration: ExplorationType = ExplorationType.DETERMINISTIC,
    **env_options,
) -> Episodes:
    """Play every puzzle's first episode side by side (slot i plays puzzle i, no augmentation).

    Only per-puzzle flags are kept, not the rollout, so memory stays small for large sets.
    ``env_options`` (action mode, rewards) are passed to the env.
    """
    count = len(puzzles)
    base = BatchedPuzzleEnv(
        rules, puzzles, count, device=device, order="sequential", augment=False, **env_options
    )
    env = TransformedEnv(base, carry_transforms(model, device))
    # a cell-mode episode fills one blank per step; a grid-mode one ends at max_segments
    max_steps = rules.num_positions if base.action_mode == "cell" else base.max_segments
    multicell = model.config.selections_per_cycle > 0
    cell_counts = torch.zeros(model.config.num_cells, dtype=torch.int64, device=device)
    finished = torch.zeros(count, dtype=torch.bool, device=device)
    solved = torch.zeros_like(finished)
    moves = torch.zeros(count, dtype=torch.int64, device=device)
    start = time.perf_counter()
    tensordict = env.reset()
    final_board = tensordict["board"].clone()  # [P, L]
    with set_exploration_type(exploration):
        for _ in range(max_steps):
            playing = ~finished
            tensordict = _act_where(actor, tensordict, playing)
            if multicell:
                chosen = tensordict["cells"][playing].long()  # [P', N, k]
                cell_counts += torch.bincount(chosen.flatten(), minlength=cell_counts.numel())
            tensordict, next_root = env.step_and_maybe_reset(tensordict)
            done = tensordict["next", "done"].view(-1)
            moves += playing.long()
            solved |= done & playing & tensordict["next", "solved"].view(-1)
            final_board[playing] = tensordict["next", "board"][playing]  # before any reset
            finished |= done
            if finished.all():
                break
            tensordict = next_root
    return Episodes(
        solved=solved.cpu().numpy(),
        moves=moves.cpu().numpy(),
        mistake=(finished & ~solved).cpu().numpy(),
        final_board=final_board.cpu().numpy(),
        cell_counts=cell_counts.cpu().numpy() if multicell else None,
        seconds=time.perf_counter() - start,
    )


def _act_where(actor: torch.nn.Module, tensordict, playing: torch.Tensor):
    """The actor's step for the rows still ``playing`` only (the model is the cost); the other
    rows, whose first episode is over, get any legal move and keep their carry."""
    if bool(playing.all()):
        return actor(tensordict)
    acted = actor(tensordict[playing])
    for key in actor.out_keys:
        if isinstance(key, tuple) and key[0] == "next":  # the carry: unchanged where idle
            full = tensordict.get(key[1]).clone()
        elif key == "action":  # idle rows: the first legal placement
            full = tensordict["action_mask"].to(torch.uint8).argmax(dim=-1)
        else:
            value = acted.get(key)
            full = value.new_zeros(tensordict.batch_size + value.shape[1:])
        full[playing] = acted.get(key).to(full.dtype)
        tensordict.set(key, full)
    return tensordict


def greedy_solve_rate(
    actor: torch.nn.Module,
    model: torch.nn.Module,
    rules: PuzzleRules,
    puzzles: PuzzleSet,
    device: torch.device | str = "cpu",
    **env_options,
) -> dict[str, float]:
    """Greedy play (top move, top-k cells) of every puzzle once: the share solved, mean steps."""
    episodes = play_first_episodes(actor, model, rules, puzzles, device, **env_options)
    return {
        "solve_rate": float(episodes.solved.mean()),
        "episode_steps": float(episodes.moves.mean()),
    }
