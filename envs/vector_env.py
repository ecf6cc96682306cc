"""`PuzzleVectorEnv`: N puzzles at once as a native Gymnasium vector env.

``gymnasium.make_vec("hrm_rl/Sudoku-v0", num_envs=N)`` builds it (the ids' ``vector_entry_point``;
``vectorization_mode="sync"`` still gives a ``SyncVectorEnv`` of :class:`PuzzleEnv`). One step is
the batched transition of :mod:`hrm_rl.envs.transition` over all N boards, on torch tensors; only
the observations, rewards and flags handed back are NumPy arrays, shaped as Gymnasium's
``batch_space`` of the single env's spaces.

It behaves like ``SyncVectorEnv`` over N :class:`PuzzleEnv` with the same keywords, down to the
random streams: slot ``i`` draws its puzzles from its own generator, seeded with ``seed + i`` by
``reset(seed=seed)`` exactly as ``SyncVectorEnv`` seeds its ``i``-th env; so both give the same
trajectories for the same seed and actions, info dicts included.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.gym_env import (
    check_proposals,
    draw_index,
    draw_puzzle,
    puzzle_spaces,
    set_up_front_end,
)
from hrm_rl.envs.transition import (
    MAX_SEGMENTS,
    MISTAKE_REWARD,
    SHAPING,
    SOLVE_BONUS,
    Episodes,
    PuzzleTransition,
)

AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
FLAGS = ("solved", "illegal", "mistake")


class PuzzleVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` puzzle episodes stepped together; keywords as :class:`PuzzleEnv`.

    ``autoreset_mode``: ``NEXT_STEP`` (Gymnasium's default: the step after an episode ends resets
    that slot and ignores its action) or ``SAME_STEP`` (the ending step resets at once; the last
    observation and info are in ``info["final_obs"]`` and ``info["final_info"]``). ``reset``
    takes ``options={"index": i}`` (one puzzle for all slots, or one index per slot) and
    ``options={"reset_mask": bool[N]}`` (reset only those slots). ``device`` is where the boards
    live and the transition runs.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        num_envs: int = 1,
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
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        device: str | torch.device = "cpu",
        **options: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode not in AUTORESET_MODES:
            raise ValueError(
                f"autoreset_mode must be one of {[m.value for m in AUTORESET_MODES]}, "
                f"got {autoreset_mode.value!r}"
            )
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
        self.generator_options = {"held_out": False, **(generator_options or {})}
        self.device = torch.device(device)
        self.autoreset_mode = autoreset_mode
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}

        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = puzzle_spaces(
            self.rules, action_mode
        )
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        # slot i draws from its own stream, as the i-th env of a SyncVectorEnv would
        self._slot_rngs = [seeding.np_random()[0] for _ in range(num_envs)]
        if self.puzzles is not None:  # the fixed puzzles, once on the device
            count = torch.as_tensor(self.puzzles.num_solutions)
            self._bank = (
                torch.as_tensor(self.puzzles.boards, dtype=torch.int64).to(self.device),
                torch.as_tensor(self.puzzles.solutions, dtype=torch.int64).to(self.device),
                (torch.arange(self.puzzles.solutions.shape[1]) < count.unsqueeze(1)).to(
                    self.device
                ),
            )
        self._episodes: Episodes | None = None
        self._index = np.full(num_envs, -1, dtype=np.int64)  # puzzle of each slot, -1 = generated
        self._flags = {key: np.zeros(num_envs, dtype=np.bool_) for key in FLAGS}
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)  # NEXT_STEP: reset on the next step
        self._proposal: torch.Tensor | None = None  # grid: the last proposal of each slot
        self._proposed = np.zeros(num_envs, dtype=np.bool_)

    # --- Gymnasium vector API ---------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start new episodes in every slot (or those of ``options["reset_mask"]``); ``seed``
        is ``None``, an int (slot ``i`` gets ``seed + i``) or one seed per slot."""
        N = self.num_envs
        if seed is None:
            seeds = [None] * N
        elif isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))
            seeds = [int(seed) + i for i in range(N)]
        else:
            seeds = list(seed)
            if len(seeds) != N:
                raise ValueError(
                    f"reset(seed=list) needs {N} seeds (one per slot), got {len(seeds)}"
                )
        options = dict(options or {})
        rows = _reset_rows(options.pop("reset_mask", None), N)
        if self._episodes is None and not rows.all():
            raise ValueError("the first reset() must reset every slot (no reset_mask)")
        for i in np.flatnonzero(rows):
            if seeds[i] is not None:
                self._slot_rngs[i] = seeding.np_random(seeds[i])[0]
        self._start(rows, _per_slot_index(options, N))
        self._autoreset[rows] = False
        observation = self._observation()
        return observation, self._info(observation, rows)

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One placement (cell, ``int[N]``) or one whole-board proposal (grid, ``int[N, L]``) per
        slot; a slot whose episode ended resets as ``metadata["autoreset_mode"]`` says."""
        if self._episodes is None:
            raise RuntimeError("call reset() before step()")
        stepping = ~self._autoreset  # NEXT_STEP: slots that ended last step reset instead
        action = self._action_tensor(actions, stepping)
        self._episodes, outcome = self.transition.step(self._episodes, action)
        if self.action_mode == "grid":
            self._proposal, self._proposed = outcome.proposal, stepping.copy()
        reward = np.where(stepping, outcome.reward.cpu().numpy(), 0.0)
        terminated = outcome.terminated.cpu().numpy() & stepping
        truncated = outcome.truncated.cpu().numpy() & stepping
        for key in FLAGS:
            self._flags[key] = getattr(outcome, key).cpu().numpy() & stepping
        done = terminated | truncated
        infos: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            if not stepping.all():
                self._start(~stepping, [None] * self.num_envs)
            self._autoreset = done
        elif done.any():  # SAME_STEP: the ended slots start over now, their last step in final_*
            infos = self._final(self._observation(), done)
            self._start(done, [None] * self.num_envs)
        observation = self._observation()
        infos.update(self._info(observation, np.ones(self.num_envs, dtype=np.bool_)))
        return observation, reward, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """``bool[N, L·V]``: the valid actions of every slot now (sb3-contrib's convention)."""
        if self._episodes is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._episodes.mask.cpu().numpy().copy()

    def render(self) -> tuple[str | np.ndarray, ...] | None:
        """Every slot's board as text (``ansi``) or picture (``rgb_array``); grid mode shows the
        last proposal."""
        if self.render_mode is None or self._episodes is None:
            return None
        boards = self._episodes.board.cpu().numpy()
        if self._proposal is not None:
            boards = np.where(self._proposed[:, None], self._proposal.cpu().numpy(), boards)
        givens = self._episodes.givens.cpu().numpy()
        draw = self.rules.render_ansi if self.render_mode == "ansi" else self.rules.render_rgb
        return tuple(draw(board, given) for board, given in zip(boards, givens, strict=True))

    # --- episodes ---------------------------------------------------------------------------

    def _start(self, rows: np.ndarray, chosen: list[int | None]) -> None:
        """New puzzles in the slots ``rows`` (``bool[N]``): slot ``i`` gets puzzle ``chosen[i]``,
        or one drawn (or generated) from its own stream when that is ``None``."""
        slots = np.flatnonzero(rows)
        if self.puzzles is not None:
            index = [
                draw_index(self.puzzles, self._slot_rngs[i], _index_option(chosen[i]))
                for i in slots
            ]
            at = torch.as_tensor(index, device=self.device)
            fresh = self.transition.start(*(part[at] for part in self._bank))
        else:
            if any(chosen[i] is not None for i in slots):
                raise ValueError("options['index'] needs a puzzle file (data=...) or puzzles=...")
            fresh, index = self._generate(slots)
        if self._episodes is None:
            self._episodes = fresh
        else:
            self._episodes.put(torch.from_numpy(slots).to(self.device), fresh)
        self._index[rows] = index
        for key in FLAGS:
            self._flags[key][rows] = False
        self._proposed[rows] = False

    def _generate(self, slots: np.ndarray) -> tuple[Episodes, list[int]]:
        """Fresh episodes on generated puzzles for ``slots``, each from its slot's stream."""
        drawn = [
            draw_puzzle(self.rules, None, self._slot_rngs[i], {}, self.generator_options)
            for i in slots
        ]
        width = max(len(solutions) for _, solutions, _ in drawn)
        boards = np.stack([board for board, _, _ in drawn]).astype(np.int64)
        solutions = np.zeros((len(drawn), width, self.rules.num_positions), dtype=np.int64)
        alive = np.zeros((len(drawn), width), dtype=np.bool_)
        for k, (_, known, _) in enumerate(drawn):
            solutions[k, : len(known)], alive[k, : len(known)] = known, True
        fresh = self.transition.start(
            *(torch.from_numpy(part).to(self.device) for part in (boards, solutions, alive))
        )
        return fresh, [index for _, _, index in drawn]

    def _action_tensor(self, actions: Any, stepping: np.ndarray) -> torch.Tensor:
        """The actions as a tensor for the transition (the ignored slots' set to 0), or a clear
        ``ValueError``: wrong shape or type, out of range, or illegal with ``strict=True``."""
        N, L, V = self.num_envs, self.rules.num_positions, self.rules.num_values
        actions = np.asarray(actions)
        shape = (N, L) if self.action_mode == "grid" else (N,)
        if actions.shape != shape or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"{self.action_mode} actions must be integers of shape {shape}, got "
                f"{actions.dtype} of shape {actions.shape}"
            )
        if self.action_mode == "grid":
            check_proposals(actions[stepping], L, V, batch=int(stepping.sum()))
        elif ((actions[stepping] < 0) | (actions[stepping] >= L * V)).any():
            raise ValueError(f"cell actions must lie in [0, {L * V}), got {actions[stepping]}")
        actions = np.where(stepping.reshape((N,) + (1,) * (actions.ndim - 1)), actions, 0)
        action = torch.from_numpy(actions.astype(np.int64)).to(self.device)
        if self.strict and self.action_mode == "cell":
            legal = self._episodes.mask.gather(1, action.unsqueeze(1)).squeeze(1).cpu().numpy()
            illegal = np.flatnonzero(stepping & ~legal)
            if illegal.size:
                i, a = int(illegal[0]), int(actions[illegal[0]])
                raise ValueError(
                    f"illegal action {a} in slot {i}: value {a % V + 1} at position {a // V} is "
                    "not allowed (the position is filled or the rules forbid the value there)"
                )
        return action

    # --- observations and infos -------------------------------------------------------------

    def _observation(self) -> dict[str, np.ndarray]:
        episodes = self._episodes
        return {
            "action_mask": episodes.mask.to(torch.int8).cpu().numpy(),
            "board": episodes.board.cpu().numpy().copy(),
            "givens": episodes.givens.to(torch.int8).cpu().numpy(),
        }

    def _info(self, observation: dict[str, np.ndarray], present: np.ndarray) -> dict[str, Any]:
        """The info of :class:`PuzzleEnv` for ``observation``: one array per key (zero where
        ``present`` is False) with its ``_key`` mask, as ``SyncVectorEnv`` gathers them."""
        values = {
            "action_mask": observation["action_mask"].copy()
            if not present.all()
            else observation["action_mask"],
            "index": self._index.copy(),
            "num_blank": self._episodes.num_blank.cpu().numpy().astype(np.int64),
            **{key: flag.copy() for key, flag in self._flags.items()},
        }
        info: dict[str, Any] = {}
        for key, value in values.items():
            if not present.all():
                value[~present] = 0
            info[key], info[f"_{key}"] = value, present.copy()
        return info

    def _final(self, observation: dict[str, np.ndarray], done: np.ndarray) -> dict[str, Any]:
        """``final_obs`` and ``final_info`` of the slots that ended (SAME_STEP autoreset)."""
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(done):
            final_obs[i] = {key: value[i] for key, value in observation.items()}
        return {
            "final_obs": final_obs,
            "_final_obs": done.copy(),
            "final_info": self._info(observation, done),
            "_final_info": done.copy(),
        }


def _reset_rows(reset_mask: Any, num_envs: int) -> np.ndarray:
    """``bool[N]``: the slots a reset starts over (all without a ``reset_mask``)."""
    if reset_mask is None:
        return np.ones(num_envs, dtype=np.bool_)
    if not isinstance(reset_mask, np.ndarray) or reset_mask.dtype != np.bool_:
        raise TypeError(f"options['reset_mask'] must be a numpy bool array, got {reset_mask!r}")
    if reset_mask.shape != (num_envs,) or not reset_mask.any():
        raise ValueError(
            f"options['reset_mask'] must have shape ({num_envs},) and one True value at least, "
            f"got {reset_mask}"
        )
    return reset_mask.copy()


def _index_option(index: int | None) -> dict[str, int]:
    return {} if index is None else {"index": index}


def _per_slot_index(options: dict[str, Any], num_envs: int) -> list[int | None]:
    """``options["index"]`` (one int for every slot, or one per slot) as one entry per slot."""
    if "index" not in options:
        return [None] * num_envs
    index = np.asarray(options["index"])
    if index.ndim == 0:
        return [int(index)] * num_envs
    if index.shape != (num_envs,):
        raise ValueError(f"options['index'] must be one int or {num_envs} ints, got {index.shape}")
    return [int(i) for i in index]
