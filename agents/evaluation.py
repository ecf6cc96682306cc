"""Playing a fixed set of puzzles once each, judged by the rules: the one evaluation loop.

:func:`play` runs every puzzle's first episode side by side on a
:class:`~hrm_rl.envs.batched.BatchedPuzzleEnv` (the one env transition) and asks a *chooser* for
the moves of the slots still playing. Every agent's evaluation is this loop with its own chooser:

* :func:`play_first_episodes`: the PPO actor (an :class:`~hrm_rl.agents.policy.HRMPolicy`), one
  placement (or grid proposal) per step, the carry kept by TorchRL transforms;
* :func:`~hrm_rl.agents.supervised.play_supervised`: the supervised model, whose ``segments``
  segments make one whole-board proposal (one ``grid`` step);
* the sb3-contrib contender (``hrm_rl.bench.sb3``): MaskablePPO's ``predict`` on flat observations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from hrm_rl.agents.policy import carry_transforms
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv

__all__ = [
    "PlayResults",
    "best_warmup",
    "evaluation_env",
    "greedy_solve_rate",
    "play",
    "play_first_episodes",
]

# (observation tensordict of every slot, bool [P] slots still playing) -> the tensordict with
# "action" set for every slot (idle slots' actions are ignored) and, for multicell models,
# "selections" (the cells chosen)
Chooser = Callable[[TensorDictBase, torch.Tensor], TensorDictBase]


@dataclass
class PlayResults:
    """The first episode of every puzzle under one policy: per-puzzle flags, moves, final board."""

    solved: np.ndarray  # bool [P]
    moves: np.ndarray  # int64 [P]: env steps of the episode
    mistake: np.ndarray  # bool [P]: the episode ended unsolved
    final_board: np.ndarray  # int64 [P, L]: the board when the episode ended (grid: the proposal)
    cell_counts: np.ndarray | None  # int64 [num_cells]: chosen-cell counts (multicell only)
    seconds: float

    @classmethod
    def concatenate(cls, parts: list[PlayResults]) -> PlayResults:
        """The results of consecutive chunks of one puzzle set, in order."""
        counts = [p.cell_counts for p in parts if p.cell_counts is not None]
        return cls(
            solved=np.concatenate([p.solved for p in parts]),
            moves=np.concatenate([p.moves for p in parts]),
            mistake=np.concatenate([p.mistake for p in parts]),
            final_board=np.concatenate([p.final_board for p in parts]),
            cell_counts=sum(counts) if counts else None,
            seconds=sum(p.seconds for p in parts),
        )


def evaluation_env(
    rules: PuzzleRules, puzzles: PuzzleSet, device: torch.device | str = "cpu", **env_options
) -> BatchedPuzzleEnv:
    """One slot per puzzle, slot i plays puzzle i, no augmentation; ``env_options`` (action mode,
    rewards, max_segments) as the env takes them."""
    return BatchedPuzzleEnv(
        rules,
        puzzles,
        len(puzzles),
        device=device,
        order="sequential",
        augment=False,
        **env_options,
    )


@torch.no_grad()
def play(env: EnvBase, choose: Chooser, num_cells: int = 0) -> PlayResults:
    """Play each slot's first episode of ``env`` (from :func:`evaluation_env`, possibly wrapped
    in transforms) with the moves ``choose`` gives; a finished slot idles until all are done.

    Only per-puzzle flags are kept, not the rollout, so memory stays small for large sets. A
    ``cell`` episode fills one blank per step, so it lasts at most L steps; a ``grid`` one ends
    at ``max_segments`` proposals. ``num_cells > 0`` counts the cells the chooser reports under
    ``"selections"`` (``[P, N, k]``) for the slots that are playing.
    """
    base = env.base_env if isinstance(env, TransformedEnv) else env
    grid = base.action_mode == "grid"
    max_steps = base.max_segments if grid else base.rules.num_positions
    count = env.batch_size[0]
    device = env.device
    cell_counts = torch.zeros(max(num_cells, 1), dtype=torch.int64, device=device)
    finished = torch.zeros(count, dtype=torch.bool, device=device)
    solved = torch.zeros_like(finished)
    moves = torch.zeros(count, dtype=torch.int64, device=device)
    start = time.perf_counter()
    tensordict = env.reset()
    final_board = tensordict["board"].clone()  # [P, L]
    for _ in range(max_steps):
        playing = ~finished
        tensordict = choose(tensordict, playing)
        if num_cells:
            chosen = tensordict["selections"][playing].long()  # [P', N, k]
            cell_counts += torch.bincount(chosen.flatten(), minlength=num_cells)
        if grid:  # the proposal itself: the env keeps the puzzle's board
            board = tensordict["board"]
            after = torch.where(tensordict["givens"], board, tensordict["action"].long() + 1)
        tensordict, next_root = env.step_and_maybe_reset(tensordict)
        if not grid:
            after = tensordict["next", "board"]  # before any reset
        done = tensordict["next", "done"].view(-1)
        moves += playing.long()
        solved |= done & playing & tensordict["next", "solved"].view(-1)
        final_board[playing] = after[playing]
        finished |= done
        if finished.all():
            break
        tensordict = next_root
    return PlayResults(
        solved=solved.cpu().numpy(),
        moves=moves.cpu().numpy(),
        mistake=(finished & ~solved).cpu().numpy(),
        final_board=final_board.cpu().numpy(),
        cell_counts=cell_counts.cpu().numpy() if num_cells else None,
        seconds=time.perf_counter() - start,
    )


def play_first_episodes(
    actor: torch.nn.Module,
    model: torch.nn.Module,
    rules: PuzzleRules,
    puzzles: PuzzleSet,
    device: torch.device | str = "cpu",
    exploration: ExplorationType = ExplorationType.DETERMINISTIC,
    **env_options,
) -> PlayResults:
    """The PPO actor's first episode of every puzzle (greedy by default: top move, top-k cells)."""
    env = TransformedEnv(
        evaluation_env(rules, puzzles, device, **env_options), carry_transforms(model, device)
    )

    def choose(tensordict: TensorDictBase, playing: torch.Tensor) -> TensorDictBase:
        with set_exploration_type(exploration):
            return _act_where(actor, tensordict, playing)

    num_cells = model.config.num_cells if model.config.selections_per_cycle > 0 else 0
    return play(env, choose, num_cells)


def _act_where(actor: torch.nn.Module, tensordict, playing: torch.Tensor):
    """The actor's step for the rows still ``playing`` only (the model is the cost); the other
    rows, whose first episode is over, get any legal move and keep their carry."""
    if bool(playing.all()):
        return actor(tensordict)
    acted = actor(tensordict[playing])
    for key in actor.out_keys:
        if isinstance(key, tuple) and key[0] == "next":  # the carry: unchanged where idle
            full = tensordict.get(key[1]).clone()
        elif key == "action" and acted.get(key).dim() == 1:  # cell mode, idle rows: a legal one
            full = tensordict["action_mask"].to(torch.uint8).argmax(dim=-1)
        else:
            value = acted.get(key)
            full = value.new_zeros(tensordict.batch_size + value.shape[1:])
        full[playing] = acted.get(key).to(full.dtype)
        tensordict.set(key, full)
    return tensordict


def best_warmup(rates: dict[int, float]) -> int:
    """The warm-up count with the best validation solve rate in ``rates`` (count -> rate); a tie
    goes to the fewer segments (less thought at the same rate)."""
    return max(rates, key=lambda segments: (rates[segments], -segments))


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
