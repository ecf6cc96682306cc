"""`PuzzleEnv`: one puzzle per episode as a Gymnasium environment.

The rules come from a :class:`~hrm_rl.envs.base.PuzzleRules` family (batched torch code, here used
with a batch of one), so this environment and :class:`~hrm_rl.envs.batched.BatchedPuzzleEnv` give
identical trajectories for the same puzzle and actions.

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

ACTION_MODES = ("cell", "grid")


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
        solve_bonus: float = 1.0,
        mistake_reward: float = -1.0,
        shaping: float = 0.0,
        max_segments: int = 16,
        strict: bool = False,
        generator_options: dict[str, Any] | None = None,
        render_mode: str | None = None,
        rules: PuzzleRules | None = None,
        **options: Any,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        if max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, got {max_segments}")
        self.rules = rules if rules is not None else make_rules(family, **options)
        if puzzles is None and data is not None:
            puzzles = self.rules.read(data)
        if puzzles is not None and puzzles.boards.shape[1] != self.rules.num_positions:
            raise ValueError(
                f"puzzles have {puzzles.boards.shape[1]} positions, the rules "
                f"{self.rules!r} need {self.rules.num_positions}"
            )
        self.puzzles = puzzles
        self.action_mode = action_mode
        self.solve_bonus = float(solve_bonus)
        self.mistake_reward = float(mistake_reward)
        self.shaping = float(shaping)
        self.max_segments = int(max_segments)
        self.strict = strict
        self.generator_options = {"held_out": False, **(generator_options or {})}
        self.render_mode = render_mode

        L, V = self.rules.num_positions, self.rules.num_values
        self.observation_space = gym.spaces.Dict(
            {
                "board": gym.spaces.MultiDiscrete(np.full(L, V + 1, dtype=np.int64)),
                "givens": gym.spaces.MultiBinary(L),
                "action_mask": gym.spaces.MultiBinary(L * V),
            }
        )
        if action_mode == "cell":
            self.action_space = gym.spaces.Discrete(L * V)
        else:
            self.action_space = gym.spaces.MultiDiscrete(np.full(L, V, dtype=np.int64))
        self._board: torch.Tensor | None = None  # [1, L] int64

    # --- episode state ----------------------------------------------------------------------

    def _load(self, board: np.ndarray, solutions: np.ndarray, index: int) -> None:
        self._board = torch.as_tensor(board, dtype=torch.int64).view(1, -1).clone()
        self._givens = self._board != 0  # [1, L]
        self._solutions = torch.as_tensor(solutions, dtype=torch.int64).unsqueeze(0)  # [1, S, L]
        self._alive = torch.ones(1, len(solutions), dtype=torch.bool)
        self._num_blank = max(1, int(self.rules.placements_to_solve(self._board)[0]))
        self._index = index
        self._segments = 0
        self._proposal: torch.Tensor | None = None
        self._last = {"solved": False, "illegal": False, "mistake": False}

    def _draw_puzzle(self, options: dict[str, Any]) -> None:
        if self.puzzles is not None:
            if "index" in options:
                index = int(options["index"])
                if not 0 <= index < len(self.puzzles):
                    raise ValueError(
                        f"options['index'] must lie in [0, {len(self.puzzles)}), got {index}"
                    )
            else:
                index = int(self.np_random.integers(len(self.puzzles)))
            count = int(self.puzzles.num_solutions[index])
            self._load(self.puzzles.boards[index], self.puzzles.solutions[index, :count], index)
            return
        if "index" in options:
            raise ValueError("options['index'] needs a puzzle file (data=...) or puzzles=...")
        rng = np.random.default_rng(int(self.np_random.integers(2**63)))
        fresh = self.rules.generate(rng, 1, **self.generator_options)
        count = int(fresh.num_solutions[0])
        self._load(fresh.boards[0], fresh.solutions[0, :count], -1)

    def _mask(self) -> torch.Tensor:
        """``bool[L, V]``: legal placements (cell) or admissible proposals (grid)."""
        if self.action_mode == "cell":
            return self.rules.legal_mask(self._board)[0]
        return self.rules.proposal_mask(self._board)[0]

    def _observation(self) -> dict[str, np.ndarray]:
        self._mask_now = self._mask().reshape(-1).numpy()  # the next step's legality check reads it
        mask = self._mask_now.astype(np.int8)
        return {
            "board": self._board[0].numpy().copy(),
            "givens": self._givens[0].numpy().astype(np.int8),
            "action_mask": mask,
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
        self._draw_puzzle(options or {})
        observation = self._observation()
        return observation, self._info(observation)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one placement (cell) or one whole-board proposal (grid)."""
        if self._board is None:
            raise RuntimeError("call reset() before step()")
        if self.action_mode == "cell":
            reward, terminated, truncated = self._step_cell(action)
        else:
            reward, terminated, truncated = self._step_grid(action)
        observation = self._observation()
        return observation, reward, terminated, truncated, self._info(observation)

    def _step_cell(self, action: Any) -> tuple[float, bool, bool]:
        a = _as_index(action, self.action_space.n)
        V = self.rules.num_values
        position, value = a // V, a % V + 1
        legal = bool(self._mask_now[a])
        if not legal:
            if self.strict:
                raise ValueError(
                    f"illegal action {a}: value {value} at position {position} is not allowed "
                    "(the position is filled or the rules forbid the value there)"
                )
            self._last = {"solved": False, "illegal": True, "mistake": True}
            return self.mistake_reward, True, False
        pos_t, val_t = torch.tensor([position]), torch.tensor([value])
        state = (self._board, self._solutions, self._alive, pos_t, val_t)
        sound = bool(self.rules.is_sound(*state)[0])
        if sound:
            self._alive = self.rules.update_alive(*state)
        self._board[0, position] = value
        if not sound:
            self._last = {"solved": False, "illegal": False, "mistake": True}
            return self.mistake_reward, True, False
        solved = bool(self.rules.is_solved(self._board)[0])
        self._last = {"solved": solved, "illegal": False, "mistake": False}
        reward = 1.0 / self._num_blank + (self.solve_bonus if solved else 0.0)
        return reward, solved, False

    def _step_grid(self, action: Any) -> tuple[float, bool, bool]:
        L, V = self.rules.num_positions, self.rules.num_values
        proposal = np.asarray(action)
        if proposal.shape != (L,) or not np.issubdtype(proposal.dtype, np.integer):
            raise ValueError(f"grid action must be {L} integers, got shape {proposal.shape}")
        if proposal.min() < 0 or proposal.max() >= V:
            raise ValueError(f"grid action values must lie in [0, {V}), got {proposal}")
        full = torch.where(self._givens, self._board, torch.as_tensor(proposal).view(1, L) + 1)
        self._proposal = full
        self._segments += 1
        # a value the proposal mask does not admit (e.g. a new wall in a maze) never solves
        admitted = self._mask_now.reshape(L, V)[np.arange(L), full[0].numpy() - 1].all()
        solved = bool(admitted) and bool(self.rules.is_solved(full)[0])
        self._last = {"solved": solved, "illegal": False, "mistake": False}
        if solved:
            return 1.0, True, False
        reward = self.shaping * float(self.rules.constraint_satisfaction(full)[0])
        return reward, False, self._segments >= self.max_segments

    def action_masks(self) -> np.ndarray:
        """``bool[L·V]``: the valid actions now (the convention of sb3-contrib's MaskablePPO)."""
        if self._board is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._mask_now.copy()

    def render(self) -> str | np.ndarray | None:
        """The board as text (``ansi``) or picture (``rgb_array``); grid mode shows the proposal."""
        if self.render_mode is None or self._board is None:
            return None
        board = self._board if self._proposal is None else self._proposal
        board_np, givens_np = board[0].numpy(), self._givens[0].numpy()
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
