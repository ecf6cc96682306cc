"""The one env transition: B puzzle episodes advanced by one step, batched on torch tensors.

Every front-end runs this code: :class:`~hrm_rl.envs.batched.BatchedPuzzleEnv` (TorchRL, B slots),
:class:`~hrm_rl.envs.vector_env.PuzzleVectorEnv` (Gymnasium vector env, N slots) and
:class:`~hrm_rl.envs.gym_env.PuzzleEnv` (Gymnasium, B = 1). So their trajectories agree by
construction for the same puzzles and actions.

Action modes (DESIGN §2):

* ``cell``: action ``a ∈ [0, L·V)`` places value ``a % V + 1`` at position ``a // V``. A sound
  placement earns ``1 / num_blank`` (a full solve sums to 1), plus ``solve_bonus`` once the board
  is solved by the rules. An illegal action (outside the legal mask) changes nothing and ends the
  episode with ``mistake_reward``; a legal but unsound one is written, then ends the episode with
  ``mistake_reward``.
* ``grid``: action ``a ∈ [0, V)^L`` proposes value ``a[i] + 1`` at every position (givens kept).
  Reward 1 when the proposal is admitted by the proposal mask and solved by the rules, else
  ``shaping`` × the share of satisfied constraints; truncated after ``max_segments`` proposals.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from hrm_rl.envs.base import PuzzleRules

# The defaults of every front-end (PuzzleEnv, PuzzleVectorEnv, BatchedPuzzleEnv) and of the env
# configs (registration.ENV_DEFAULTS; configs/env/*.yaml spell them out; a test keeps them equal)
SOLVE_BONUS = 1.0  # added to the last sound placement's reward when it solves the puzzle
MISTAKE_REWARD = -1.0  # the reward of an unsound or illegal placement, which ends the episode
SHAPING = 0.0  # grid mode: weight of the share of satisfied constraints in an unsolved proposal
MAX_SEGMENTS = 16  # grid mode: proposals before the episode is truncated

ACTION_MODES = ("cell", "grid")


@dataclass
class Episodes:
    """The state of B running episodes (all tensors on one device, batch dimension first)."""

    board: torch.Tensor  # int64 [B, L]: tokens, 0 = blank
    givens: torch.Tensor  # bool [B, L]
    solutions: torch.Tensor  # int64 [B, S, L]: known solutions, zero rows past the count
    alive: torch.Tensor  # bool [B, S]: solutions consistent with every sound placement so far
    num_blank: torch.Tensor  # int64 [B]: sound placements from start to solved, at least 1
    segments: torch.Tensor  # int64 [B]: proposals made so far (grid mode)
    mask: torch.Tensor  # bool [B, L·V]: legal (cell) or admitted (grid) actions on `board`

    def put(self, rows: torch.Tensor, fresh: Episodes) -> None:
        """Overwrite the episodes at ``rows`` with ``fresh`` (in place); the solution dimension
        grows to the wider of the two, padded with dead zero rows."""
        width = max(self.solutions.shape[1], fresh.solutions.shape[1])
        self.solutions, self.alive = _pad_solutions(self.solutions, self.alive, width)
        solutions, alive = _pad_solutions(fresh.solutions, fresh.alive, width)
        fresh = replace(fresh, solutions=solutions, alive=alive)
        for name in (f.name for f in fields(self)):
            getattr(self, name)[rows] = getattr(fresh, name)


@dataclass
class Outcome:
    """What one step did to each of the B episodes."""

    reward: torch.Tensor  # float64 [B]
    terminated: torch.Tensor  # bool [B]
    truncated: torch.Tensor  # bool [B]
    solved: torch.Tensor  # bool [B]: solved by the rules after this step
    illegal: torch.Tensor  # bool [B]: the action was outside the legal mask (cell mode)
    mistake: torch.Tensor  # bool [B]: illegal or unsound (cell mode)
    proposal: torch.Tensor | None = None  # int64 [B, L]: the whole board proposed (grid mode)


class PuzzleTransition:
    """Start and step B episodes of one puzzle family under one action mode and reward scheme."""

    def __init__(
        self,
        rules: PuzzleRules,
        action_mode: str = "cell",
        *,
        solve_bonus: float = SOLVE_BONUS,
        mistake_reward: float = MISTAKE_REWARD,
        shaping: float = SHAPING,
        max_segments: int = MAX_SEGMENTS,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, got {max_segments}")
        self.rules = rules
        self.action_mode = action_mode
        self.solve_bonus = float(solve_bonus)
        self.mistake_reward = float(mistake_reward)
        self.shaping = float(shaping)
        self.max_segments = int(max_segments)

    def mask(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, L·V]``: legal placements (cell) or admitted proposals (grid) of ``boards``."""
        if self.action_mode == "cell":
            return self.rules.legal_mask(boards).flatten(1)
        return self.rules.proposal_mask(boards).flatten(1)

    def start(self, boards: torch.Tensor, solutions: torch.Tensor, alive: torch.Tensor) -> Episodes:
        """Fresh episodes on ``boards`` ``[B, L]`` with known ``solutions`` ``[B, S, L]`` of which
        ``alive`` ``bool[B, S]`` are real (the rest padding)."""
        boards = boards.long()
        return Episodes(
            board=boards.clone(),
            givens=boards != 0,
            solutions=solutions.long(),
            alive=alive.clone(),
            num_blank=self.rules.placements_to_solve(boards).clamp(min=1),
            segments=torch.zeros(boards.shape[0], dtype=torch.int64, device=boards.device),
            mask=self.mask(boards),
        )

    def step(self, episodes: Episodes, action: torch.Tensor) -> tuple[Episodes, Outcome]:
        """The episodes after ``action`` (cell: ``[B]``, grid: ``[B, L]``, in range) and what it
        earned; ``episodes`` itself is left unchanged."""
        if self.action_mode == "cell":
            return self.step_cell(episodes, action)
        return self.step_grid(episodes, action)

    def step_cell(self, episodes: Episodes, action: torch.Tensor) -> tuple[Episodes, Outcome]:
        """One placement per episode; see the module docstring for rewards and ends."""
        rules, V = self.rules, self.rules.num_values
        action = action.long().view(-1)
        position, value = action // V, action % V + 1
        legal = episodes.mask.gather(1, action.unsqueeze(1)).squeeze(1)
        state = (episodes.board, episodes.solutions, episodes.alive, position, value)
        good = legal & rules.is_sound(*state)
        alive = torch.where(good.unsqueeze(1), rules.update_alive(*state), episodes.alive)
        # every legal placement is written (an unsound one ends the episode, visibly)
        before = episodes.board.gather(1, position.unsqueeze(1))
        written = torch.where(legal.unsqueeze(1), value.unsqueeze(1), before)
        board = episodes.board.scatter(1, position.unsqueeze(1), written)
        solved = torch.zeros_like(good)
        maybe = (good & rules.may_be_solved(board)).nonzero().squeeze(-1)
        solved[maybe] = rules.is_solved(board[maybe])
        reward = torch.where(
            good,
            1.0 / episodes.num_blank.double() + solved.double() * self.solve_bonus,
            torch.zeros_like(episodes.num_blank, dtype=torch.float64) + self.mistake_reward,
        )
        terminated = ~good | solved
        after = replace(episodes, board=board, alive=alive, mask=self.mask(board))
        return after, Outcome(
            reward=reward,
            terminated=terminated,
            truncated=torch.zeros_like(terminated),
            solved=solved,
            illegal=~legal,
            mistake=~good,
        )

    def step_grid(self, episodes: Episodes, action: torch.Tensor) -> tuple[Episodes, Outcome]:
        """One whole-board proposal per episode; see the module docstring for rewards and ends."""
        rules, L, V = self.rules, self.rules.num_positions, self.rules.num_values
        full = torch.where(episodes.givens, episodes.board, action.long().view(-1, L) + 1)
        segments = episodes.segments + 1
        # a value the proposal mask does not admit (e.g. a new wall in a maze) never solves
        B = full.shape[0]
        admitted = episodes.mask.view(B, L, V).gather(2, (full - 1).unsqueeze(-1)).all(dim=(1, 2))
        solved = admitted & rules.is_solved(full)
        shaped = self.shaping * rules.constraint_satisfaction(full).double()
        reward = torch.where(solved, torch.ones_like(shaped), shaped)
        truncated = ~solved & (segments >= self.max_segments)
        no = torch.zeros_like(solved)
        return replace(episodes, segments=segments), Outcome(
            reward=reward,
            terminated=solved.clone(),
            truncated=truncated,
            solved=solved,
            illegal=no,
            mistake=no.clone(),
            proposal=full,
        )


def _pad_solutions(
    solutions: torch.Tensor, alive: torch.Tensor, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``solutions`` ``[B, S, L]`` and ``alive`` ``[B, S]`` padded to ``S = width`` (dead rows)."""
    extra = width - solutions.shape[1]
    if extra == 0:
        return solutions, alive
    return (
        torch.nn.functional.pad(solutions, (0, 0, 0, extra)),
        torch.nn.functional.pad(alive, (0, extra)),
    )
