"""`BatchedPuzzleEnv`: B puzzles at once as a device-resident TorchRL environment.

Same rules, rewards and terminations as :class:`~hrm_rl.envs.gym_env.PuzzleEnv`: both run the
transition of :mod:`hrm_rl.envs.transition`, here over the whole batch at once. Instances come
from a *bank* (a :class:`~hrm_rl.envs.base.PuzzleSet` copied to the device once); each reset draws
from it with a seeded ``torch.Generator`` on the device and, when ``augment=True``, applies a random
validity-preserving transform to the puzzle and its solutions there.
"""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical, Unbounded
from torchrl.envs import EnvBase

from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.transition import (
    MAX_SEGMENTS,
    MISTAKE_REWARD,
    SHAPING,
    SOLVE_BONUS,
    Episodes,
    PuzzleTransition,
)

ORDERS = ("random", "sequential")


class BatchedPuzzleEnv(EnvBase):
    """``batch_size=[B]`` puzzle episodes on ``device``, with partial resets.

    Observation keys: ``board`` (int64 ``[B, L]``), ``givens`` (bool ``[B, L]``), ``action_mask``
    (bool ``[B, L·V]``), ``puzzle_index`` (the bank row each slot plays) and ``solved`` (bool
    ``[B, 1]``, as ``info["solved"]`` of the Gymnasium env). ``order="sequential"``
    serves the bank in order (for evaluation); ``env.reset(puzzle_index=idx)`` chooses the puzzles
    of the slots being reset.
    """

    def __init__(
        self,
        rules: PuzzleRules,
        puzzles: PuzzleSet,
        batch_size: int = 64,
        *,
        device: str | torch.device = "cpu",
        action_mode: str = "cell",
        augment: bool = True,
        order: str = "random",
        solve_bonus: float = SOLVE_BONUS,
        mistake_reward: float = MISTAKE_REWARD,
        shaping: float = SHAPING,
        max_segments: int = MAX_SEGMENTS,
        seed: int | None = None,
    ) -> None:
        transition = PuzzleTransition(
            rules,
            action_mode,
            solve_bonus=solve_bonus,
            mistake_reward=mistake_reward,
            shaping=shaping,
            max_segments=max_segments,
        )
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        if len(puzzles) == 0:
            raise ValueError("the puzzle bank is empty")
        if puzzles.boards.shape[1] != rules.num_positions:
            raise ValueError(
                f"puzzles have {puzzles.boards.shape[1]} positions, {rules!r} needs "
                f"{rules.num_positions}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        super().__init__(device=device, batch_size=torch.Size([batch_size]))
        self.rules = rules
        self.transition = transition
        self.action_mode = transition.action_mode
        self.augment = augment
        self.order = order
        self.solve_bonus = transition.solve_bonus
        self.mistake_reward = transition.mistake_reward
        self.shaping = transition.shaping
        self.max_segments = transition.max_segments
        self.set_bank(puzzles)

        B, L, V = batch_size, rules.num_positions, rules.num_values
        dev = self.device
        self.observation_spec = Composite(
            board=Bounded(0, V, shape=(B, L), dtype=torch.int64, device=dev),
            givens=Binary(L, shape=(B, L), dtype=torch.bool, device=dev),
            action_mask=Binary(L * V, shape=(B, L * V), dtype=torch.bool, device=dev),
            puzzle_index=Unbounded(shape=(B,), dtype=torch.int64, device=dev),
            solved=Binary(1, shape=(B, 1), dtype=torch.bool, device=dev),
            shape=(B,),
            device=dev,
        )
        if action_mode == "cell":
            self.action_spec = Categorical(L * V, shape=(B,), device=dev)
        else:
            self.action_spec = MultiCategorical(
                torch.full((L,), V), shape=(B, L), device=dev, dtype=torch.int64
            )
        self.reward_spec = Unbounded(shape=(B, 1), dtype=torch.float32, device=dev)
        self.done_spec = Composite(
            {
                key: Categorical(2, shape=(B, 1), dtype=torch.bool, device=dev)
                for key in ("done", "terminated", "truncated")
            },
            shape=(B,),
            device=dev,
        )

        S = self._bank_solutions.shape[1]
        self._episodes = Episodes(
            board=torch.zeros(B, L, dtype=torch.int64, device=dev),
            givens=torch.zeros(B, L, dtype=torch.bool, device=dev),
            solutions=torch.zeros(B, S, L, dtype=torch.int64, device=dev),
            alive=torch.zeros(B, S, dtype=torch.bool, device=dev),
            num_blank=torch.ones(B, dtype=torch.int64, device=dev),
            segments=torch.zeros(B, dtype=torch.int64, device=dev),
            mask=torch.zeros(B, L * V, dtype=torch.bool, device=dev),
        )
        self._puzzle_index = torch.zeros(B, dtype=torch.int64, device=dev)
        self._solved = torch.zeros(B, 1, dtype=torch.bool, device=dev)
        self._next_sequential = 0
        self._generator = torch.Generator(device=dev)
        self._set_seed(seed)

    def set_bank(self, puzzles: PuzzleSet) -> None:
        """Replace the instance bank (e.g. a curriculum level); running episodes are untouched."""
        dev = self.device
        self.bank_size = len(puzzles)
        self._bank_boards = torch.as_tensor(puzzles.boards, dtype=torch.int64, device=dev)
        solutions = torch.as_tensor(puzzles.solutions, dtype=torch.int64, device=dev)
        count = torch.as_tensor(puzzles.num_solutions, device=dev)
        alive = torch.arange(solutions.shape[1], device=dev) < count.unsqueeze(1)  # [N, S]
        if hasattr(self, "_episodes") and solutions.shape[1] != self._solutions.shape[1]:
            raise ValueError(
                f"the new bank keeps up to {solutions.shape[1]} solutions per puzzle, the env was "
                f"built for {self._solutions.shape[1]}"
            )
        self._bank_solutions, self._bank_alive = solutions, alive
        self._next_sequential = 0

    @property
    def _board(self) -> torch.Tensor:
        """``int64[B, L]``: the boards being played (read by tests and tools)."""
        return self._episodes.board

    @property
    def _solutions(self) -> torch.Tensor:
        """``int64[B, S, L]``: the known solutions of the puzzles being played."""
        return self._episodes.solutions

    # --- episode state, for checkpoints that resume mid-episode ------------------------------

    def _episode_tensors(self) -> dict[str, torch.Tensor]:
        """The per-slot state under its checkpoint key (``mask_now``: the episodes' mask)."""
        episodes = self._episodes
        return {
            "board": episodes.board,
            "givens": episodes.givens,
            "solutions": episodes.solutions,
            "alive": episodes.alive,
            "num_blank": episodes.num_blank,
            "segments": episodes.segments,
            "puzzle_index": self._puzzle_index,
            "solved": self._solved,
            "mask_now": episodes.mask,
        }

    def episode_state(self) -> dict:
        """The running episodes and the draw position, as plain tensors and ints (CPU)."""
        state = {
            key: value.detach().cpu().clone() for key, value in self._episode_tensors().items()
        }
        state["next_sequential"] = self._next_sequential
        state["generator"] = self._generator.get_state()
        return state

    def load_episode_state(self, state: dict) -> None:
        """Continue the episodes of :meth:`episode_state` (same batch size and bank width)."""
        loaded = {}
        for key, current in self._episode_tensors().items():
            if tuple(state[key].shape) != tuple(current.shape):
                raise ValueError(
                    f"episode state '{key}' has shape {tuple(state[key].shape)}, this env needs "
                    f"{tuple(current.shape)} (batch size or puzzle size changed?)"
                )
            loaded[key] = state[key].to(self.device, current.dtype).clone()
        self._puzzle_index = loaded.pop("puzzle_index")
        self._solved = loaded.pop("solved")
        self._episodes = Episodes(mask=loaded.pop("mask_now"), **loaded)
        self._next_sequential = int(state["next_sequential"])
        self._generator.set_state(state["generator"])

    # --- TorchRL API ------------------------------------------------------------------------

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._generator.manual_seed(int(seed))

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        B = self.batch_size[0]
        if tensordict is not None and "_reset" in tensordict.keys():
            rows = tensordict.get("_reset").view(B).nonzero().squeeze(-1)
        else:
            rows = torch.arange(B, device=self.device)
        chosen = kwargs.get("puzzle_index")
        if rows.numel():
            self._load(rows, self._draw(rows.numel(), chosen))
        return self._observation()

    def _draw(self, count: int, chosen: torch.Tensor | None) -> torch.Tensor:
        if chosen is not None:
            index = torch.as_tensor(chosen, dtype=torch.int64, device=self.device).view(-1)
            if index.numel() != count:
                raise ValueError(f"puzzle_index needs {count} entries (one per reset slot)")
            if int(index.min()) < 0 or int(index.max()) >= self.bank_size:
                raise ValueError(f"puzzle_index must lie in [0, {self.bank_size})")
            return index
        if self.order == "sequential":
            start = self._next_sequential
            self._next_sequential = (start + count) % self.bank_size
            return (start + torch.arange(count, device=self.device)) % self.bank_size
        return torch.randint(
            self.bank_size, (count,), generator=self._generator, device=self.device
        )

    def _load(self, rows: torch.Tensor, index: torch.Tensor) -> None:
        boards = self._bank_boards[index]
        solutions = self._bank_solutions[index]
        if self.augment:
            boards, solutions = self.rules.augment(boards, solutions, self._generator)
        fresh = self.transition.start(boards, solutions, self._bank_alive[index])
        self._episodes.put(rows, fresh)
        self._puzzle_index[rows] = index
        self._solved[rows] = False

    def _observation(self) -> TensorDict:
        """The observation of every slot."""
        episodes = self._episodes
        return TensorDict(
            {
                "board": episodes.board.clone(),
                "givens": episodes.givens.clone(),
                "action_mask": episodes.mask.clone(),
                "puzzle_index": self._puzzle_index.clone(),
                "solved": self._solved.clone(),
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self._episodes, outcome = self.transition.step(self._episodes, tensordict.get("action"))
        self._solved = outcome.solved.unsqueeze(1).clone()  # not a view of the returned flags
        out = self._observation()
        out.set("reward", outcome.reward.to(torch.float32).unsqueeze(-1))
        out.set("terminated", outcome.terminated.unsqueeze(-1))
        out.set("truncated", outcome.truncated.unsqueeze(-1))
        out.set("done", (outcome.terminated | outcome.truncated).unsqueeze(-1))
        return out
