"""The generic-RL-library contender: sb3-contrib's ``MaskablePPO`` with its defaults.

``run_maskable_ppo`` trains ``MaskablePPO("MlpPolicy")`` (default hyperparameters, SB3's advice of
the CPU for an MLP policy) on :class:`~hrm_rl.envs.gym_env.PuzzleEnv` in ``cell`` mode for a fixed
wall-clock budget, then evaluates it on held-out puzzles the way ``hrm_rl.evaluate`` judges our own
agent: pass@1 (greedy), pass@K (the greedy attempt plus K−1 sampled ones), exact match against the
stored answer, and the share of greedy episodes that end unsolved.

The env's observation is a dict (board, givens, action mask); SB3's ``MlpPolicy`` reads a flat
vector, so the training envs are wrapped in Gymnasium's ``FlattenObservation`` (boards one-hot per
position) and evaluation flattens the same way. The legal-action masks MaskablePPO needs come
from ``PuzzleEnv.action_masks()``.

sb3-contrib is an optional dependency (the ``dev`` extra): it is imported when the function runs,
so importing this module never needs it.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDictBase
from tqdm import tqdm

from hrm_rl.agents.evaluation import PlayResults, evaluation_env, play
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.gym_env import PuzzleEnv, puzzle_spaces
from hrm_rl.envs.transition import MAX_SEGMENTS, SHAPING

log = logging.getLogger(__name__)

CONTENDER = "sb3_maskable_ppo"
AGENT = "MaskablePPO (sb3-contrib, default MlpPolicy)"
CURVE_PUZZLES = 200  # the intermediate curve points judge at most this many held-out puzzles
EVAL_BATCH = 256  # episodes played in lockstep, one batched policy call per step
ENV_OPTION_KEYS = ("solve_bonus", "mistake_reward")
GRID_ONLY = {"shaping": SHAPING, "max_segments": MAX_SEGMENTS}  # accepted at their defaults
FOREVER = 2**62  # learn()'s total_timesteps: the wall-clock budget is what stops training


def run_maskable_ppo(
    rules: PuzzleRules,
    train_puzzles: PuzzleSet,
    held_out: PuzzleSet,
    *,
    budget_seconds: float,
    seed: int = 0,
    attempts: int = 8,
    curve_points: int = 6,
    env_options: dict | None = None,
    n_envs: int = 8,
    progress: bool = False,
    extra_eval: dict[str, PuzzleSet] | None = None,
) -> dict:
    """Train MaskablePPO for ``budget_seconds`` of wall time and evaluate it on ``held_out``.

    The budget counts everything from the call on: setup, training and the ``curve_points``
    evaluations spread evenly over it (greedy pass@1 on the first ``CURVE_PUZZLES`` held-out
    puzzles; the first one before any training). Training stops at the first env step past the
    budget (SB3 offers no hook inside a PPO update, so one in progress finishes first), then every
    held-out puzzle is played ``attempts`` times (greedy + sampled) for the final numbers and the
    curve's last point.

    Args:
        rules: the puzzle family's rules, shared by the training and evaluation envs.
        train_puzzles: the puzzles the training episodes draw from (uniformly, seeded).
        held_out: the evaluation puzzles; ``held_out.solutions[i, 0]`` is the stored answer where
            ``held_out.has_answer[i]``.
        budget_seconds: wall-clock seconds (``time.perf_counter``) for setup, training and the
            intermediate evaluations; the final evaluation comes on top.
        seed: seeds MaskablePPO (torch, numpy, the envs' puzzle draws) and the sampled attempts.
        attempts: K of pass@K.
        curve_points: evaluations during the budget (besides the final one).
        env_options: ``solve_bonus`` and ``mistake_reward`` of :class:`PuzzleEnv`
            (``action_mode`` may be given but must be ``"cell"``).
        n_envs: training envs stepped together (a ``DummyVecEnv``).
        progress: show a tqdm bar of the budget.
        extra_eval: more puzzle sets by name, each played greedily once after the final
            evaluation (not counted in ``seconds``).

    Returns:
        A JSON-serialisable dict: ``contender``, ``agent``, ``parameters`` (trainable, of the
        policy), ``frames`` (env steps trained), ``seconds`` (all seconds used, final evaluation
        included), ``pass@1``, ``pass@{attempts}``, ``attempts``, ``exact_match`` (None without
        stored answers), ``mistakes``, ``puzzles`` and ``curve`` (``seconds``, ``frames``,
        ``solve_rate`` per point); with ``extra_eval``, also ``eval``: per name, ``pass@1`` and
        ``puzzles``.
    """
    start = time.perf_counter()
    MaskablePPO, DummyVecEnv, Logger = _import_sb3()
    _check_arguments(
        rules,
        {
            "train_puzzles": train_puzzles,
            "held_out": held_out,
            **{f"extra_eval[{name!r}]": puzzles for name, puzzles in (extra_eval or {}).items()},
        },
        budget_seconds,
        attempts,
        curve_points,
        n_envs,
    )
    options = _env_options(env_options)

    def make_train_env() -> gym.Env:
        env = PuzzleEnv(rules.name, rules=rules, puzzles=train_puzzles, **options)
        # every sound placement fills a position, so episodes end; the limit guards other families
        env = gym.wrappers.TimeLimit(env, max_episode_steps=rules.num_positions + 1)
        return gym.wrappers.FlattenObservation(env)

    venv = DummyVecEnv([make_train_env] * n_envs)
    model = MaskablePPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0)
    # a logger that writes nowhere: SB3's default one makes a /tmp/SB3-<time> folder per run
    model.set_logger(Logger(folder=None, output_formats=[]))
    parameters = sum(p.numel() for p in model.policy.parameters() if p.requires_grad)
    evaluator = _Evaluator(model, rules, held_out, options)

    bar = tqdm(
        total=round(budget_seconds, 1),
        unit="s",
        desc="MaskablePPO",
        disable=not progress,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s {postfix}",
    )
    schedule = [budget_seconds * k / curve_points for k in range(curve_points)]
    budget = _Budget(model, evaluator, start, budget_seconds, schedule, bar)
    if budget():  # the point at 0 frames; False when setup alone used up the budget
        model.learn(total_timesteps=FOREVER, callback=budget)
    venv.close()
    frames = int(model.num_timesteps)
    log.info("MaskablePPO trained %d frames in %.1f s", frames, time.perf_counter() - start)

    final_start = time.perf_counter() - start
    greedy_solved, final_boards = evaluator.play(np.arange(len(held_out)), deterministic=True)
    any_solved = greedy_solved.copy()  # attempt 1 is the greedy one, so pass@K >= pass@1
    with torch.random.fork_rng(devices=[]):  # sampling must not disturb anything after us
        torch.manual_seed(seed)
        for _ in range(attempts - 1):
            unsolved = np.flatnonzero(~any_solved)  # a solved puzzle stays solved
            if not unsolved.size:
                break
            solved, _ = evaluator.play(unsolved, deterministic=False)
            any_solved[unsolved] |= solved
    budget.curve.append(
        {"seconds": final_start, "frames": frames, "solve_rate": float(greedy_solved.mean())}
    )
    seconds = time.perf_counter() - start
    bar.set_postfix_str(f"frames={frames} pass@1={greedy_solved.mean():.3f}")
    bar.close()

    extra = {}
    for name, puzzles in (extra_eval or {}).items():
        solved, _ = _Evaluator(model, rules, puzzles, options).play(
            np.arange(len(puzzles)), deterministic=True
        )
        extra[name] = {"pass@1": float(solved.mean()), "puzzles": len(puzzles)}

    with_answer = held_out.has_answer.astype(bool)
    matches = (final_boards == held_out.solutions[:, 0]).all(axis=1)
    result = {
        "contender": CONTENDER,
        "agent": AGENT,
        "parameters": int(parameters),
        "frames": frames,
        "seconds": float(seconds),
        "pass@1": float(greedy_solved.mean()),
        f"pass@{attempts}": float(any_solved.mean()),
        "attempts": int(attempts),
        "exact_match": float(matches[with_answer].mean()) if with_answer.any() else None,
        "mistakes": float((~greedy_solved).mean()),
        "puzzles": len(held_out),
        "curve": budget.curve,
    }
    if extra_eval is not None:
        result["eval"] = extra
    return result


class _Budget:
    """The ``learn`` callback: records the curve points and says stop once the budget is used.

    SB3 calls it after every step of the vector env with ``(locals, globals)``; a ``False``
    return ends ``learn``. Called with no arguments before training, it records the first point.
    """

    def __init__(
        self,
        model: Any,
        evaluator: _Evaluator,
        start: float,
        budget_seconds: float,
        schedule: list[float],
        bar: tqdm,
    ) -> None:
        self.model, self.evaluator, self.bar = model, evaluator, bar
        self.start, self.budget_seconds, self.schedule = start, budget_seconds, schedule
        self.next_point = 0
        self.curve: list[dict[str, float | int]] = []
        self.last_refresh = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, *_: Any) -> bool:
        elapsed = self.elapsed()
        if elapsed >= self.budget_seconds:
            return False
        if self.next_point < len(self.schedule) and elapsed >= self.schedule[self.next_point]:
            puzzles = np.arange(min(CURVE_PUZZLES, len(self.evaluator.puzzles)))
            solved, _ = self.evaluator.play(puzzles, deterministic=True)
            point = {
                "seconds": elapsed,
                "frames": int(self.model.num_timesteps),
                "solve_rate": float(solved.mean()),
            }
            self.curve.append(point)
            log.info("MaskablePPO curve point %s", point)
            self.bar.set_postfix_str(f"frames={point['frames']} solve={point['solve_rate']:.3f}")
            elapsed = self.elapsed()
            while (
                self.next_point < len(self.schedule) and elapsed >= self.schedule[self.next_point]
            ):
                self.next_point += 1  # points the evaluation itself overran are skipped
        if elapsed - self.last_refresh >= 0.5:
            self.bar.n = min(round(elapsed, 1), self.bar.total)
            self.bar.refresh()
            self.last_refresh = elapsed
        return elapsed < self.budget_seconds


class _Evaluator:
    """Plays chosen held-out puzzles to the end with the package's one evaluation loop
    (:func:`hrm_rl.agents.evaluation.play`), ``EVAL_BATCH`` episodes in lockstep."""

    def __init__(
        self, model: Any, rules: PuzzleRules, puzzles: PuzzleSet, options: dict[str, Any]
    ) -> None:
        self.model, self.rules, self.puzzles, self.options = model, rules, puzzles, options
        self.space = puzzle_spaces(rules, "cell")[0]  # PuzzleEnv's, as the training envs saw it

    def play(self, indices: np.ndarray, *, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        """One episode of each puzzle ``indices[i]``: ``(solved bool[n], final board [n, L])``.

        Moves come from the policy with the env's action masks (greedy when ``deterministic``).
        An episode ends when the env says so; a slot with no legal move left plays an illegal
        one, which ends it unsolved. Only an end the env reports as solved counts as solved.
        """
        parts = []
        for first in range(0, len(indices), EVAL_BATCH):
            chunk = self.puzzles.subset(indices[first : first + EVAL_BATCH])
            env = evaluation_env(self.rules, chunk, **self.options)
            parts.append(play(env, functools.partial(self._choose, deterministic)))
        played = PlayResults.concatenate(parts)
        return played.solved, played.final_board.astype(self.puzzles.boards.dtype)

    def _choose(
        self, deterministic: bool, tensordict: TensorDictBase, playing: torch.Tensor
    ) -> TensorDictBase:
        masks = tensordict["action_mask"]  # [n, L·V]
        action = torch.zeros(masks.shape[0], dtype=torch.int64)
        rows = (playing & masks.any(dim=1)).nonzero().squeeze(-1)
        if rows.numel():
            observations = {key: tensordict[key][rows].numpy() for key in self.space.spaces}
            # [n', D]: flattened as FlattenObservation does for the training envs
            flat = np.stack(
                [
                    gym.spaces.flatten(self.space, {k: v[i] for k, v in observations.items()})
                    for i in range(rows.numel())
                ]
            )
            chosen, _ = self.model.predict(
                flat, action_masks=masks[rows].numpy(), deterministic=deterministic
            )
            action[rows] = torch.as_tensor(chosen, dtype=torch.int64)
        tensordict.set("action", action)
        return tensordict


def _import_sb3() -> tuple[Any, Any, Any]:
    """``(MaskablePPO, DummyVecEnv, Logger)``, or an ImportError that says how to install them."""
    try:
        from sb3_contrib import MaskablePPO
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.vec_env import DummyVecEnv
    except ImportError as error:
        raise ImportError(
            "the MaskablePPO contender needs sb3-contrib and stable-baselines3: "
            "pip install sb3-contrib (or pip install -e '.[dev]')"
        ) from error
    return MaskablePPO, DummyVecEnv, Logger


def _env_options(env_options: dict | None) -> dict[str, Any]:
    """``PuzzleEnv`` keyword arguments: cell mode plus the allowed reward options."""
    options = dict(env_options or {})
    mode = options.pop("action_mode", "cell")
    if mode != "cell":
        raise ValueError(f"env_options['action_mode'] must be 'cell' for MaskablePPO, got {mode!r}")
    for key, default in GRID_ONLY.items():  # no effect in cell mode: only the default is honest
        if key in options and options.pop(key) != default:
            raise ValueError(
                f"env_options[{key!r}] applies to grid mode, which MaskablePPO does not play"
            )
    unknown = sorted(set(options) - set(ENV_OPTION_KEYS))
    if unknown:
        raise ValueError(f"env_options takes only {list(ENV_OPTION_KEYS)}, got also {unknown}")
    return {"action_mode": "cell", **{key: float(value) for key, value in options.items()}}


def _check_arguments(
    rules: PuzzleRules,
    puzzle_sets: dict[str, PuzzleSet],
    budget_seconds: float,
    attempts: int,
    curve_points: int,
    n_envs: int,
) -> None:
    """A ValueError naming the first argument that cannot work."""
    for name, puzzles in puzzle_sets.items():
        if len(puzzles) == 0:
            raise ValueError(f"{name} is empty")
        if puzzles.boards.shape[1] != rules.num_positions:
            raise ValueError(
                f"{name} has {puzzles.boards.shape[1]}-position boards, the rules {rules!r} "
                f"need {rules.num_positions}"
            )
    if budget_seconds < 0:
        raise ValueError(f"budget_seconds must be at least 0, got {budget_seconds}")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if curve_points < 0:
        raise ValueError(f"curve_points must be at least 0, got {curve_points}")
    if n_envs < 1:
        raise ValueError(f"n_envs must be at least 1, got {n_envs}")
