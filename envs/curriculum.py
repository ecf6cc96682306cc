"""A difficulty curriculum: the instance bank gets harder as the training solve rate rises.

A family defines its *levels*, easiest first, as keyword arguments of its generator
(``rules.difficulty_levels()``): Sudoku by the number of givens
(:func:`hrm_rl.envs.sudoku.generator.blank_levels` cuts the blanks from a few up to the
generator's default range), Maze by bands of the shortest path's length (``min_path``..
``max_path``), a plugged family by whatever it chooses. The last level is the env's normal
difficulty. :class:`Curriculum` picks the level whose bank the batched env plays:

* ``"off"``: one level, the generator's default difficulty;
* ``"fixed"``: the chosen ``fixed_level``;
* ``"auto"``: start at level 0 and move up one level whenever the rolling solve rate over the
  last ``window`` finished training episodes reaches ``threshold``; never down;
* ``"mix"``: every level at once, from the first frame: the bank holds ``bank_size / levels``
  puzzles of each level. A puzzle with few blanks is what a puzzle with many blanks looks like
  late in its solve, so the mix trains every stage of a solve, the hardest one included, while
  sampled play of the full puzzles still ends early at its first mistake.

A training loop uses it as::

    curriculum = Curriculum(rules, "auto", seed=cfg.seed)
    env = BatchedPuzzleEnv(rules, curriculum.bank(), batch_size, seed=cfg.seed)
    ...
    if curriculum.update(solved_of_finished_episodes):
        env.set_bank(curriculum.bank())  # running episodes finish on the old bank
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque

import numpy as np
import torch

from hrm_rl.envs.base import PuzzleRules, PuzzleSet

logger = logging.getLogger(__name__)

CURRICULUM_MODES = ("off", "fixed", "auto", "mix")
TOP_UP_ROUNDS = 20  # generation rounds that look for puzzles the forced moves do not finish


class Curriculum:
    """Picks the instance bank's difficulty level from the rolling training solve rate.

    Args:
        rules: the family's rules; banks come from ``rules.generate``.
        mode: one of ``CURRICULUM_MODES`` (see the module docstring).
        levels: generator keyword arguments per level, easiest first (a pair ``(lo, hi)``
            stands for ``{"givens": (lo, hi)}``); None uses ``rules.difficulty_levels()``.
            Unused by ``"off"``, which plays the generator's default difficulty as its one level.
        fixed_level: the level index played by ``"fixed"`` (required there, unused otherwise).
        threshold: the rolling solve rate in (0, 1] that moves ``"auto"`` up one level.
        window: how many of the latest finished episodes the solve rate counts.
        bank_size: puzzles per level's bank.
        seed: level ``k``'s bank is generated from ``numpy.random.default_rng([seed, k])``.
        generator_options: extra keyword arguments of ``rules.generate`` (e.g. ``difficulty``);
            ``held_out`` defaults to False so training banks never hold held-out instances.
        stuck_share: the share of every level's puzzles that start where the forced moves run
            out: their board is ``rules.fill_forced(board)`` (Sudoku: every naked single filled),
            so the first move needs more than the candidates input shows (a hidden single, or
            search). They are drawn among the puzzles the forced moves do not finish; when a
            level's bank has too few, newly generated ones of that kind take the place of
            puzzles the forced moves finish (the bank keeps its size). 0: none.
    """

    def __init__(
        self,
        rules: PuzzleRules,
        mode: str = "auto",
        *,
        levels: list[tuple[int, int]] | None = None,
        fixed_level: int | None = None,
        threshold: float = 0.9,
        window: int = 1000,
        bank_size: int = 2048,
        seed: int = 0,
        generator_options: dict | None = None,
        stuck_share: float = 0.0,
    ) -> None:
        if mode not in CURRICULUM_MODES:
            raise ValueError(f"curriculum mode must be one of {CURRICULUM_MODES}, got {mode!r}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"curriculum threshold must lie in (0, 1], got {threshold}")
        if window < 1:
            raise ValueError(f"curriculum window must be at least 1 episode, got {window}")
        if bank_size < 1:
            raise ValueError(f"curriculum bank_size must be at least 1, got {bank_size}")
        if seed < 0:
            raise ValueError(f"curriculum seed must be >= 0, got {seed}")
        if not 0.0 <= stuck_share <= 1.0:
            raise ValueError(f"curriculum stuck_share must lie in [0, 1], got {stuck_share}")
        options = dict(generator_options or {})
        if "givens" in options:
            raise ValueError(
                "generator_options must not set 'givens': the curriculum level chooses them "
                "(use levels=[...] with mode='fixed' for one custom range)"
            )
        options.setdefault("held_out", False)

        if mode == "off":
            self.levels: list[dict | None] = [None]  # the generator's default
        else:
            if levels is None:
                levels = rules.difficulty_levels()
                if not levels:
                    raise ValueError(
                        f"the {rules.name!r} family defines no difficulty levels "
                        f"(rules.difficulty_levels()); use curriculum mode 'off', or pass levels"
                    )
            self.levels = [self._check_level(rules, k, level) for k, level in enumerate(levels)]
            if not self.levels:
                raise ValueError("curriculum levels must hold at least one level")
        level = len(self.levels) - 1 if mode == "mix" else 0  # mix: every level up to the last
        if mode == "fixed":
            if fixed_level is None:
                raise ValueError("curriculum mode 'fixed' needs fixed_level (a level index)")
            if not 0 <= fixed_level < len(self.levels):
                raise ValueError(
                    f"fixed_level must lie in 0..{len(self.levels) - 1} (levels: {self.levels}), "
                    f"got {fixed_level}"
                )
            level = int(fixed_level)

        self.rules = rules
        self.mode = mode
        self.threshold = float(threshold)
        self.window = int(window)
        self.bank_size = int(bank_size)
        self.seed = int(seed)
        self.generator_options = options
        self.stuck_share = float(stuck_share)
        self.level = level
        self._outcomes: deque[bool] = deque(maxlen=self.window)
        self._banks: dict[int, PuzzleSet] = {}
        self._solution_width: int | None = None

    @staticmethod
    def _check_level(rules: PuzzleRules, index: int, level) -> dict:
        """``level`` as generator keyword arguments (a givens pair checked and converted), or a
        ValueError naming the bad entry."""
        if isinstance(level, dict):
            level = dict(level)
            if "givens" not in level:
                return level
            givens = level["givens"]
        else:
            givens, level = level, {}
        if len(givens) != 2 or not 0 <= givens[0] <= givens[1] <= rules.num_positions:
            raise ValueError(
                f"curriculum levels[{index}] must be a givens range (lo, hi) with "
                f"0 <= lo <= hi <= {rules.num_positions}, got {givens}"
            )
        return {**level, "givens": (int(givens[0]), int(givens[1]))}

    @property
    def num_levels(self) -> int:
        """How many levels there are (1 for ``"off"``)."""
        return len(self.levels)

    @property
    def solve_rate(self) -> float:
        """The share of solved episodes in the rolling window (nan while it is empty)."""
        if not self._outcomes:
            return math.nan
        return sum(self._outcomes) / len(self._outcomes)

    def bank(self) -> PuzzleSet:
        """The bank of the current level (``"mix"``: of all levels together), generated once per
        level and reproducible from the seed."""
        if self.mode == "mix":
            share = max(1, math.ceil(self.bank_size / self.num_levels))
            return PuzzleSet.concatenate(
                [self._level_bank(level, share) for level in range(self.num_levels)]
            )
        return self._level_bank(self.level, self.bank_size)

    def _level_bank(self, level: int, size: int) -> PuzzleSet:
        if level not in self._banks:
            options = {**self.generator_options, **(self.levels[level] or {})}
            rng = np.random.default_rng([self.seed, level])
            try:
                generated = self.rules.generate(rng, size, **options)
            except RuntimeError as error:
                if level == self.num_levels - 1:  # the target difficulty itself: nothing to add
                    raise
                raise RuntimeError(
                    f"curriculum level {level} of {self.num_levels} "
                    f"({describe(self.levels[level])}): {error}. The generator options "
                    f"{self.generator_options} may not suit an easier level (e.g. "
                    "difficulty='search' where singles finish every puzzle): play the target "
                    "difficulty alone with env.curriculum.mode=off"
                ) from error
            bank = self._start_stuck(generated, rng, options)
            width = bank.solutions.shape[1]
            if self._solution_width is not None and width != self._solution_width:
                raise ValueError(
                    f"level {self.level}'s bank keeps {width} solutions per puzzle, earlier "
                    f"levels kept {self._solution_width}; BatchedPuzzleEnv.set_bank needs one width"
                )
            self._solution_width = width
            self._banks[level] = bank
            logger.info(
                "curriculum bank for level %d (%s): %d puzzles",
                level,
                describe(self.levels[level]),
                len(bank),
            )
        return self._banks[level]

    def _start_stuck(self, bank: PuzzleSet, rng: np.random.Generator, options: dict) -> PuzzleSet:
        """``bank`` with ``stuck_share`` of its puzzles (drawn with ``rng`` among those the
        forced moves do not finish, topped up by generating more when too few are) moved on to
        where the forced moves run out (see the class docs)."""
        count = round(self.stuck_share * len(bank))
        if count == 0:
            return bank
        filled, open_ = self._forced(bank)
        if len(open_) < count:
            bank = self._top_up(bank, open_, count, rng, options)
            filled, open_ = self._forced(bank)
        rows = np.sort(rng.choice(open_, size=min(count, len(open_)), replace=False))
        boards = bank.boards.copy()
        boards[rows] = filled[torch.as_tensor(rows)].numpy().astype(boards.dtype)
        logger.info(
            "curriculum: %d of %d puzzles start where the forced moves run out",
            len(rows),
            len(bank),
        )
        return dataclasses.replace(bank, boards=boards)

    def _forced(self, bank: PuzzleSet) -> tuple[torch.Tensor, np.ndarray]:
        """The boards with every forced move made, and the rows those moves do not finish."""
        filled = self.rules.fill_forced(torch.as_tensor(bank.boards, dtype=torch.long))
        return filled, np.flatnonzero((filled == 0).any(dim=1).numpy())

    def _top_up(
        self,
        bank: PuzzleSet,
        open_: np.ndarray,
        count: int,
        rng: np.random.Generator,
        options: dict,
    ) -> PuzzleSet:
        """``bank`` (same size) with puzzles the forced moves finish swapped for newly generated
        ones they do not, until ``count`` are of that kind (or ``TOP_UP_ROUNDS`` rounds found
        fewer: a family whose forced moves finish nearly everything keeps what was found)."""
        need = count - len(open_)
        found: list[PuzzleSet] = []
        for _ in range(TOP_UP_ROUNDS):
            extra = self.rules.generate(rng, max(64, 2 * need), **options)
            _, extra_open = self._forced(extra)
            take = extra_open[:need]
            found.append(extra.subset(take))
            need -= len(take)
            if need == 0:
                break
        swapped = sum(len(f) for f in found)
        closed = np.setdiff1d(np.arange(len(bank)), open_)
        kept = np.setdiff1d(np.arange(len(bank)), closed[:swapped])
        logger.info(
            "curriculum: %d of %d puzzles were unfinished by the forced moves; %d generated "
            "ones that are took the place of as many that were not",
            len(open_),
            len(bank),
            swapped,
        )
        return PuzzleSet.concatenate([bank.subset(kept), *found])

    def update(self, solved: torch.Tensor) -> bool:
        """Count the episodes that finished this iteration; True when the level moved up.

        ``solved`` is a bool tensor (any shape, any device) with one entry per finished episode.
        In ``"auto"`` a full window whose solve rate reaches ``threshold`` moves to the next level
        (if any) and clears the window; the caller then passes ``bank()`` to ``env.set_bank``.
        """
        self._outcomes.extend(solved.detach().reshape(-1).to("cpu", torch.bool).tolist())
        if self.mode != "auto" or self.level + 1 >= self.num_levels:
            return False
        if len(self._outcomes) < self.window or self.solve_rate < self.threshold:
            return False
        rate = self.solve_rate
        self.level += 1
        self._outcomes.clear()
        logger.info(
            "curriculum: solve rate %.3f over %d episodes >= %.3f, level %d -> %d (%s)",
            rate,
            self.window,
            self.threshold,
            self.level - 1,
            self.level,
            describe(self.levels[self.level]),
        )
        return True

    def metrics(self) -> dict[str, float]:
        """Scalars for the training log: the current level and the rolling solve rate."""
        return {"curriculum/level": float(self.level), "curriculum/solve_rate": self.solve_rate}

    def state_dict(self) -> dict:
        """The level and the rolling window, as ``torch.load(weights_only=True)`` types."""
        return {
            "level": self.level,
            "window": torch.tensor(list(self._outcomes), dtype=torch.bool),
            "levels": [_storable(level) for level in self.levels if level is not None],
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue at the stored level with the stored window (the levels must match)."""
        levels = [_storable(level) for level in state["levels"]]
        mine = [_storable(level) for level in self.levels if level is not None]
        if levels != mine:
            raise ValueError(
                f"curriculum state was saved with levels {levels}, this curriculum has {mine}; "
                "resume with the same curriculum settings"
            )
        level = int(state["level"])
        if not 0 <= level < self.num_levels:
            raise ValueError(f"curriculum state level {level} outside 0..{self.num_levels - 1}")
        if self.mode == "fixed" and level != self.level:
            raise ValueError(
                f"curriculum state is at level {level}, but mode 'fixed' plays level {self.level}"
            )
        self.level = level
        self._outcomes.clear()
        self._outcomes.extend(torch.as_tensor(state["window"]).to(torch.bool).tolist())


def describe(level: dict | None) -> str:
    """A level for the log: ``givens 22..36``, ``min_path 3, max_path 5``, or ``default``."""
    if not level:
        return "default"
    parts = []
    for key, value in level.items():
        shown = f"{value[0]}..{value[1]}" if isinstance(value, (tuple, list)) else value
        parts.append(f"{key} {shown}")
    return ", ".join(parts)


def _storable(level) -> dict:
    """A level as ``torch.load(weights_only=True)`` types, and comparable: tuples as lists; a
    bare pair (how checkpoints before family-defined levels stored givens) as ``givens``."""
    if not isinstance(level, dict):
        level = {"givens": level}
    return {
        key: [int(v) for v in value] if isinstance(value, (tuple, list)) else value
        for key, value in level.items()
    }
