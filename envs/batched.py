"""`BatchedPuzzleEnv`: B puzzles at once as a device-resident TorchRL environment.

Same rules, rewards and terminations as :class:`~hrm_rl.envs.gym_env.PuzzleEnv`, but every step
is a handful of tensor operations over the whole batch. Instances come from a *bank* (a
:class:`~hrm_rl.envs.base.PuzzleSet` copied to the device once); each reset draws from it with a
seeded ``torch.Generator`` on the device and, when ``augment=True``, applies a random
validity-preserving transform to the puzzle and its solutions there.
"""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical, Unbounded
from torchrl.envs import EnvBase

from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.gym_env import ACTION_MODES

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
        solve_bonus: float = 1.0,
        mistake_reward: float = -1.0,
        shaping: float = 0.0,
        max_segments: int = 16,
        seed: int | None = None,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
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
        self.action_mode = action_mode
        self.augment = augment
        self.order = order
        self.solve_bonus = float(solve_bonus)
        self.mistake_reward = float(mistake_reward)
        self.shaping = float(shaping)
        self.max_segments = int(max_segments)
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
        self._board = torch.zeros(B, L, dtype=torch.int64, device=dev)
        self._givens = torch.zeros(B, L, dtype=torch.bool, device=dev)
        self._solutions = torch.zeros(B, S, L, dtype=torch.int64, device=dev)
        self._alive = torch.zeros(B, S, dtype=torch.bool, device=dev)
        self._num_blank = torch.ones(B, dtype=torch.int64, device=dev)
        self._segments = torch.zeros(B, dtype=torch.int64, device=dev)
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
        if hasattr(self, "_solutions") and solutions.shape[1] != self._solutions.shape[1]:
            raise ValueError(
                f"the new bank keeps up to {solutions.shape[1]} solutions per puzzle, the env was "
                f"built for {self._solutions.shape[1]}"
            )
        self._bank_solutions, self._bank_alive = solutions, alive
        self._next_sequential = 0

    # --- episode state, for checkpoints that resume mid-episode ------------------------------

    _EPISODE_TENSORS = (
        "board",
        "givens",
        "solutions",
        "alive",
        "num_blank",
        "segments",
        "puzzle_index",
        "solved",
        "mask_now",
    )

    def episode_state(self) -> dict:
        """The running episodes and the draw position, as plain tensors and ints (CPU)."""
        state = {
            name: getattr(self, f"_{name}").detach().cpu().clone() for name in self._EPISODE_TENSORS
        }
        state["next_sequential"] = self._next_sequential
        state["generator"] = self._generator.get_state()
        return state

    def load_episode_state(self, state: dict) -> None:
        """Continue the episodes of :meth:`episode_state` (same batch size and bank width)."""
        for name in self._EPISODE_TENSORS:
            current = getattr(self, f"_{name}")
            if tuple(state[name].shape) != tuple(current.shape):
                raise ValueError(
                    f"episode state '{name}' has shape {tuple(state[name].shape)}, this env needs "
                    f"{tuple(current.shape)} (batch size or puzzle size changed?)"
                )
            setattr(self, f"_{name}", state[name].to(self.device, current.dtype).clone())
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
        return self._observation(rows)

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
        self._board[rows] = boards
        self._givens[rows] = boards != 0
        self._solutions[rows] = solutions
        self._alive[rows] = self._bank_alive[index]
        self._num_blank[rows] = self.rules.placements_to_solve(boards).clamp(min=1)
        self._segments[rows] = 0
        self._puzzle_index[rows] = index
        self._solved[rows] = False

    def _mask(self, boards: torch.Tensor) -> torch.Tensor:
        if self.action_mode == "cell":
            return self.rules.legal_mask(boards).flatten(1)
        return self.rules.proposal_mask(boards).flatten(1)

    def _observation(self, rows: torch.Tensor | None = None) -> TensorDict:
        """The observation of every slot; only the slots in ``rows`` (default all) changed."""
        if rows is None or not hasattr(self, "_mask_now"):
            self._mask_now = self._mask(self._board)  # the next step's legality check reads it
        elif rows.numel():
            self._mask_now[rows] = self._mask(self._board[rows])
        return TensorDict(
            {
                "board": self._board.clone(),
                "givens": self._givens.clone(),
                "action_mask": self._mask_now.clone(),
                "puzzle_index": self._puzzle_index.clone(),
                "solved": self._solved.clone(),
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action")
        if self.action_mode == "cell":
            reward, terminated, truncated = self._step_cell(action)
        else:
            reward, terminated, truncated = self._step_grid(action)
        out = self._observation()
        out.set("reward", reward.to(torch.float32).unsqueeze(-1))
        out.set("terminated", terminated.unsqueeze(-1))
        out.set("truncated", truncated.unsqueeze(-1))
        out.set("done", (terminated | truncated).unsqueeze(-1))
        return out

    def _step_cell(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        V = self.rules.num_values
        action = action.long().view(-1)
        position, value = action // V, action % V + 1
        legal = self._mask_now.gather(1, action.unsqueeze(1)).squeeze(1)
        sound = self.rules.is_sound(self._board, self._solutions, self._alive, position, value)
        good = legal & sound
        alive = self.rules.update_alive(self._board, self._solutions, self._alive, position, value)
        self._alive = torch.where(good.unsqueeze(1), alive, self._alive)
        # every legal placement is written (an unsound one ends the episode, visibly)
        rows = torch.arange(self._board.shape[0], device=self.device)
        self._board[rows, position] = torch.where(legal, value, self._board[rows, position])
        solved = torch.zeros_like(good)
        maybe = (good & self.rules.may_be_solved(self._board)).nonzero().squeeze(-1)
        solved[maybe] = self.rules.is_solved(self._board[maybe])
        reward = torch.where(
            good,
            1.0 / self._num_blank.double() + solved.double() * self.solve_bonus,
            torch.full_like(self._num_blank, 0, dtype=torch.float64) + self.mistake_reward,
        )
        terminated = ~good | solved
        self._solved = solved.unsqueeze(1).clone()  # not a view of the returned flags
        return reward, terminated, torch.zeros_like(terminated)

    def _step_grid(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        full = torch.where(self._givens, self._board, action.long() + 1)
        self._segments += 1
        # a value the proposal mask does not admit (e.g. a new wall in a maze) never solves
        B, L, V = full.shape[0], self.rules.num_positions, self.rules.num_values
        admitted = self._mask_now.view(B, L, V).gather(2, (full - 1).unsqueeze(-1)).all(dim=(1, 2))
        solved = admitted & self.rules.is_solved(full)
        shaped = self.shaping * self.rules.constraint_satisfaction(full).double()
        reward = torch.where(solved, torch.ones_like(shaped), shaped)
        truncated = ~solved & (self._segments >= self.max_segments)
        self._solved = solved.unsqueeze(1).clone()  # not a view of the returned flags
        return reward, solved, truncated
