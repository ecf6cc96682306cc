"""`PuzzleEnv`: one puzzle per episode as a Gymnasium environment.

The rules come from a :class:`~hrm_rl.envs.base.PuzzleRules` family and the step is the batched
transition of :mod:`hrm_rl.envs.transition`, here run with a batch of one; so this environment,
:class:`~hrm_rl.envs.batched.BatchedPuzzleEnv` and :class:`~hrm_rl.envs.vector_env.PuzzleVectorEnv`
give identical trajectories for the same puzzle and actions.

Action modes (DESIGN §2):

* ``cell``: ``Discrete(L·V)``; action ``a`` places value ``a % V + 1`` at position ``a // V``.
  A sound placement earns ``1 / n_blank`` (a full solve sums to 1) and ``solve_bonus`` once the
  board is solved by the rules. An unsound placement (legal, but contradicting every solution
  still reachable) ends the episode with ``mistake_reward``; so does an illegal one (a filled
  position or a value its row, column or box already holds), flagged ``info["illegal"]``, or raised
  as ``ValueError`` with ``strict=True``.
* ``grid``: ``MultiDiscrete([V] * L)``; the agent proposes the whole board, ``a[i] + 1`` at
  position ``i`` (givens are kept whatever is proposed there). Reward 1 when the proposal is a valid
  solution, else ``shaping`` × the share of satisfied constraints; up to ``max_segments`` proposals.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.registration import make_rules
from hrm_rl.envs.transition import (
    ACTION_MODES,
    MAX_SEGMENTS,
    MISTAKE_REWARD,
    SHAPING,
    SOLVE_BONUS,
    Episodes,
    PuzzleTransition,
)

__all__ = [
    "ACTION_MODES",
    "PuzzleEnv",
    "draw_index",
    "draw_puzzle",
    "puzzle_source",
    "puzzle_spaces",
]


class PuzzleEnv(gym.Env):
    """A Gymnasium environment that serves one puzzle per episode.

    Puzzles come from ``puzzles`` (a :class:`PuzzleSet`), else from the file ``data``, else from
    the family's generator (fresh instances of the training split, drawn from the env's seeded
    random stream). With a fixed set, ``reset(options={"index": i})`` picks puzzle ``i``;
    otherwise a puzzle is drawn at random.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        family: str = "sudoku",
        *,
        data: str | None = None,
        puzzles: PuzzleSet | None = None,
        action_mode: str = "cell",
        solve_bonus: float = SOLVE_BONUS,
        mistake_reward: float = MISTAKE_REWARD,
        shaping: float = SHAPING,
        max_segments: int = MAX_SEGMENTS,
        strict: bool = False,
        generator_options: dict[str, Any] | None = None,
        render_mode: str | None = None,
        rules: PuzzleRules | None = None,
        **options: Any,
    ) -> None:
        set_up_front_end(self, family, data, puzzles, rules, options, render_mode, strict)
        self.transition = PuzzleTransition(
            self.rules,
            action_mode,
            solve_bonus=solve_bonus,
            mistake_reward=mistake_reward,
            shaping=shaping,
            max_segments=max_segments,
        )
        self.action_mode = self.transition.action_mode
        self.solve_bonus = self.transition.solve_bonus
        self.mistake_reward = self.transition.mistake_reward
        self.shaping = self.transition.shaping
        self.max_segments = self.transition.max_segments
        self.generator_options = {"held_out": False, **(generator_options or {})}

        self.observation_space, self.action_space = puzzle_spaces(self.rules, action_mode)
        self._episodes: Episodes | None = None  # the running episode, a batch of one

    # --- episode state ----------------------------------------------------------------------

    @property
    def _board(self) -> torch.Tensor:
        """``int64[1, L]``: the board being played (read by tests and tools)."""
        return self._episodes.board

    @property
    def _solutions(self) -> torch.Tensor:
        """``int64[1, S, L]``: the known solutions of the puzzle being played."""
        return self._episodes.solutions

    def _load(self, board: np.ndarray, solutions: np.ndarray, index: int) -> None:
        board_t = torch.as_tensor(board, dtype=torch.int64).view(1, -1)
        solutions_t = torch.as_tensor(solutions, dtype=torch.int64).unsqueeze(0)  # [1, S, L]
        alive = torch.ones(1, len(solutions), dtype=torch.bool)
        self._episodes = self.transition.start(board_t, solutions_t, alive)
        self._num_blank = int(self._episodes.num_blank[0])
        self._index = index
        self._proposal: torch.Tensor | None = None
        self._last = {"solved": False, "illegal": False, "mistake": False}

    def _observation(self) -> dict[str, np.ndarray]:
        episodes = self._episodes
        return {
            "board": episodes.board[0].numpy().copy(),
            "givens": episodes.givens[0].numpy().astype(np.int8),
            "action_mask": episodes.mask[0].numpy().astype(np.int8),
        }

    def _info(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            "action_mask": observation["action_mask"],
            "index": self._index,
            "num_blank": self._num_blank,
            **self._last,
        }

    # --- Gymnasium API ----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start a new episode on a drawn (or, with ``options={"index": i}``, chosen) puzzle."""
        super().reset(seed=seed)
        self._load(
            *draw_puzzle(
                self.rules, self.puzzles, self.np_random, options or {}, self.generator_options
            )
        )
        observation = self._observation()
        return observation, self._info(observation)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one placement (cell) or one whole-board proposal (grid)."""
        if self._episodes is None:
            raise RuntimeError("call reset() before step()")
        self._episodes, outcome = self.transition.step(self._episodes, self._action_tensor(action))
        self._proposal = outcome.proposal
        self._last = {
            key: bool(getattr(outcome, key)[0]) for key in ("solved", "illegal", "mistake")
        }
        observation = self._observation()
        return (
            observation,
            float(outcome.reward[0]),
            bool(outcome.terminated[0]),
            bool(outcome.truncated[0]),
            self._info(observation),
        )

    def _action_tensor(self, action: Any) -> torch.Tensor:
        """The action as a batch of one for the transition, or a clear ``ValueError`` (also for an
        illegal placement with ``strict=True``)."""
        L, V = self.rules.num_positions, self.rules.num_values
        if self.action_mode == "grid":
            return torch.as_tensor(check_proposals(action, L, V, batch=None)).view(1, L)
        a = _as_index(action, self.action_space.n)
        if self.strict and not bool(self._episodes.mask[0, a]):
            raise ValueError(
                f"illegal action {a}: value {a % V + 1} at position {a // V} is not allowed "
                "(the position is filled or the rules forbid the value there)"
            )
        return torch.tensor([a])

    def action_masks(self) -> np.ndarray:
        """``bool[L·V]``: the valid actions now (the convention of sb3-contrib's MaskablePPO)."""
        if self._episodes is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._episodes.mask[0].numpy().copy()

    def render(self) -> str | np.ndarray | None:
        """The board as text (``ansi``) or picture (``rgb_array``); grid mode shows the proposal."""
        if self.render_mode is None or self._episodes is None:
            return None
        board = self._board if self._proposal is None else self._proposal
        board_np, givens_np = board[0].numpy(), self._episodes.givens[0].numpy()
        if self.render_mode == "ansi":
            return self.rules.render_ansi(board_np, givens_np)
        return self.rules.render_rgb(board_np, givens_np)


def _as_index(action: Any, n: int) -> int:
    """A scalar integer action in ``[0, n)``, or a clear ``ValueError``."""
    array = np.asarray(action)
    if array.size != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"cell action must be one integer in [0, {n}), got {action!r}")
    a = int(array.reshape(()))
    if not 0 <= a < n:
        raise ValueError(f"cell action must lie in [0, {n}), got {a}")
    return a


def puzzle_spaces(rules: PuzzleRules, action_mode: str) -> tuple[gym.spaces.Dict, gym.spaces.Space]:
    """The observation space (``board``, ``givens``, ``action_mask``) and the action space of one
    puzzle: ``Discrete(L·V)`` in cell mode, ``MultiDiscrete([V] * L)`` in grid mode."""
    L, V = rules.num_positions, rules.num_values
    observation_space = gym.spaces.Dict(
        {
            "board": gym.spaces.MultiDiscrete(np.full(L, V + 1, dtype=np.int64)),
            "givens": gym.spaces.MultiBinary(L),
            "action_mask": gym.spaces.MultiBinary(L * V),
        }
    )
    if action_mode == "cell":
        return observation_space, gym.spaces.Discrete(L * V)
    return observation_space, gym.spaces.MultiDiscrete(np.full(L, V, dtype=np.int64))


def check_proposals(action: Any, L: int, V: int, batch: int | None) -> np.ndarray:
    """Grid actions as an integer array (``[L]``, or ``[batch, L]``) with values in ``[0, V)``,
    or a clear ``ValueError``."""
    proposal = np.asarray(action)
    shape = (L,) if batch is None else (batch, L)
    if proposal.shape != shape or not np.issubdtype(proposal.dtype, np.integer):
        raise ValueError(
            f"grid action must be integers of shape {shape}, got shape {proposal.shape}"
        )
    if proposal.size and (proposal.min() < 0 or proposal.max() >= V):
        raise ValueError(f"grid action values must lie in [0, {V}), got {proposal}")
    return proposal


def set_up_front_end(
    env: Any,
    family: str,
    data: str | None,
    puzzles: PuzzleSet | None,
    rules: PuzzleRules | None,
    options: dict[str, Any],
    render_mode: str | None,
    strict: bool,
) -> None:
    """What every Gymnasium front-end sets first: a checked ``render_mode``, ``strict``, and its
    rules and puzzles (:func:`puzzle_source`)."""
    if render_mode is not None and render_mode not in env.metadata["render_modes"]:
        raise ValueError(
            f"render_mode must be one of {env.metadata['render_modes']} or None, "
            f"got {render_mode!r}"
        )
    env.render_mode, env.strict = render_mode, strict
    env.rules, env.puzzles = puzzle_source(family, data, puzzles, rules, options)


def puzzle_source(
    family: str,
    data: str | None,
    puzzles: PuzzleSet | None,
    rules: PuzzleRules | None,
    options: dict[str, Any],
) -> tuple[PuzzleRules, PuzzleSet | None]:
    """The rules (``rules``, else the family's with ``options``) and the fixed puzzles
    (``puzzles``, else the file ``data``, else ``None``: the generator serves them)."""
    rules = rules if rules is not None else make_rules(family, **options)
    if puzzles is None and data is not None:
        puzzles = rules.read(data)
    if puzzles is not None and puzzles.boards.shape[1] != rules.num_positions:
        raise ValueError(
            f"puzzles have {puzzles.boards.shape[1]} positions, the rules "
            f"{rules!r} need {rules.num_positions}"
        )
    return rules, puzzles


def draw_index(puzzles: PuzzleSet, rng: np.random.Generator, options: dict[str, Any]) -> int:
    """The puzzle of an episode on a fixed set: ``options["index"]``, else drawn from ``rng``."""
    if "index" in options:
        index = int(options["index"])
        if not 0 <= index < len(puzzles):
            raise ValueError(f"options['index'] must lie in [0, {len(puzzles)}), got {index}")
        return index
    return int(rng.integers(len(puzzles)))


def draw_puzzle(
    rules: PuzzleRules,
    puzzles: PuzzleSet | None,
    rng: np.random.Generator,
    options: dict[str, Any],
    generator_options: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, int]:
    """One episode's puzzle: ``(board [L], solutions [S, L], index)``. From ``puzzles`` at
    ``options["index"]`` or at a random index drawn from ``rng``; without puzzles, a fresh one from
    the family's generator seeded from ``rng`` (index -1)."""
    if puzzles is not None:
        index = draw_index(puzzles, rng, options)
        count = int(puzzles.num_solutions[index])
        return puzzles.boards[index], puzzles.solutions[index, :count], index
    if "index" in options:
        raise ValueError("options['index'] needs a puzzle file (data=...) or puzzles=...")
    fresh = rules.generate(np.random.default_rng(int(rng.integers(2**63))), 1, **generator_options)
    count = int(fresh.num_solutions[0])
    return fresh.boards[0], fresh.solutions[0, :count], -1
