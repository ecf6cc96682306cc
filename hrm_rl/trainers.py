"""What one training step is for each agent: the trainers ``hrm_rl.train`` loops over.

A trainer turns the agent and the training bank into updates: :meth:`step` plays or draws one
batch, updates the agent and returns ``(frames, update metrics, solved flags of the finished
episodes)``; :meth:`evaluate` plays held-out puzzles greedily; :meth:`state_dict` holds the
episode and RNG state a resume needs. :class:`PPOTrainer` collects ``[B, T]`` batches from the
batched env; :class:`SupervisedTrainer` draws B puzzles with their solutions.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig, ListConfig
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv

from hrm_rl.agents.evaluation import best_warmup, greedy_solve_rate
from hrm_rl.agents.policy import HRMPolicy, carry_transforms
from hrm_rl.agents.ppo import PPOAgent
from hrm_rl.agents.supervised import PuzzleSampler, SupervisedAgent, play_supervised
from hrm_rl.build import env_options, validation_puzzles
from hrm_rl.checkpoint import capture_rng_state, restore_rng_state
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.models import HRM

__all__ = ["PPOTrainer", "SupervisedTrainer", "make_trainer"]

log = logging.getLogger("hrm_rl.train")


def make_trainer(
    agent: PPOAgent | SupervisedAgent,
    rules: PuzzleRules,
    bank: PuzzleSet,
    cfg: DictConfig,
    device: torch.device,
    seed: int,
) -> PPOTrainer | SupervisedTrainer:
    """The trainer of ``agent``'s kind, on the training ``bank``, its streams seeded by ``seed``."""
    kind = SupervisedTrainer if isinstance(agent, SupervisedAgent) else PPOTrainer
    return kind(agent, rules, bank, cfg, device, seed)


def eval_warmup_segments(cfg: DictConfig) -> int | list[int] | None:
    """``eval.warmup_segments``: the segments a PPO policy thinks before each first move in
    the run's evaluations (None: ``model.warmup_segments``, as trained), or several counts (a
    list, returned sorted) for the final evaluation to choose among on validation puzzles."""
    segments = cfg.eval.get("warmup_segments")
    if isinstance(segments, (ListConfig, list, tuple)):
        counts = list(segments)
        if not all(type(n) is int and n >= 0 for n in counts) or len(set(counts)) < 2:
            raise ValueError(
                "eval.warmup_segments as a list needs two or more different integers >= 0 "
                f"(e.g. [3,10]), got {counts!r}"
            )
        return sorted(set(counts))
    if segments is not None and (type(segments) is not int or segments < 0):
        raise ValueError(
            "eval.warmup_segments must be null, an integer >= 0 or a list of them (e.g. [3,10]), "
            f"got {segments!r}"
        )
    return segments


class PPOTrainer:
    """PPO's training step: the batched env, the collector, and one update per ``[B, T]``
    batch; its episode state (env internals and the collector's carry) goes into checkpoints."""

    def __init__(
        self,
        agent: PPOAgent,
        rules: PuzzleRules,
        bank: PuzzleSet,
        cfg: DictConfig,
        device: torch.device,
        seed: int,
    ) -> None:
        self.agent, self.rules, self.env_cfg, self.device = agent, rules, cfg.env, device
        model = agent.model
        self.env = TransformedEnv(
            BatchedPuzzleEnv(
                rules,
                bank,
                cfg.batch_size,
                device=device,
                seed=seed,
                augment=cfg.env.augment,
                **env_options(cfg.env),
            ),
            carry_transforms(model, device),
        )
        segments = eval_warmup_segments(cfg)
        # several counts: the final evaluation chooses among them on validation puzzles; the
        # periodic ones think as trained
        self.warmup_choices = segments if isinstance(segments, list) else None
        self.eval_warmup = None if self.warmup_choices else segments  # None: as trained
        choice_puzzles = cfg.eval.get("choice_puzzles")
        self.choice_puzzles = 200 if choice_puzzles is None else int(choice_puzzles)
        if self.warmup_choices and self.choice_puzzles < 1:
            raise ValueError(f"eval.choice_puzzles must be at least 1, got {self.choice_puzzles}")
        # greedy evaluation plays the EMA weights when the agent keeps them
        self.eval_actor = HRMPolicy(
            agent.model if agent.ema is None else agent.ema,
            agent.config.precision,
            warmup_segments=self.eval_warmup,
        )
        self.collector = Collector(
            self.env,
            agent.actor,
            frames_per_batch=cfg.batch_size * cfg.rollout,
            total_frames=-1,  # endless: the loop stops at cfg.total_frames
            storing_device=device,  # batches stay on the training device (else: CPU)
            auto_register_policy_transforms=False,
        )
        self.batches = iter(self.collector)

    def step(self, time_progress: float) -> tuple[int, dict, torch.Tensor]:
        data = next(self.batches)  # [B, T]
        self._puzzles = data["puzzle_index"]
        update = self.agent.update(data, time_progress)
        finished = data["next", "done"].squeeze(-1)  # [B, T]
        return data.numel(), update, data["next", "solved"].squeeze(-1)[finished]

    def last_puzzles(self) -> list[int]:
        """The bank rows of the puzzles played in the last batch."""
        return torch.unique(self._puzzles).tolist()

    @staticmethod
    def loss(update: dict) -> float:
        return sum(update.get(key, 0.0) for key in ("loss_objective", "loss_critic"))

    def set_bank(self, bank: PuzzleSet) -> None:
        self.env.base_env.set_bank(bank)

    def evaluate(self, model: HRM, held_out: PuzzleSet, final: bool = False) -> dict[str, float]:
        """Greedy play of ``held_out`` by ``model`` (the run's evaluation weights, or others
        such as ``best.pt``'s). ``final`` with several ``eval.warmup_segments``: first play
        ``eval.choice_puzzles`` validation puzzles (none of ``held_out``'s) with each count and
        keep the best (the fewer on a tie), as ``python -m hrm_rl.evaluate
        warmup_segments=3,10`` does; its rates and the choice are logged under ``valid/`` and
        ``eval/warmup_segments``."""
        actor = self.eval_actor
        if model is not actor.model:
            actor = HRMPolicy(model, self.agent.config.precision, warmup_segments=self.eval_warmup)
        metrics = {}
        options = env_options(self.env_cfg)
        trained = actor.warmup_segments
        try:
            if final and self.warmup_choices:
                metrics = self._choose_warmup(actor, model, held_out)
            result = greedy_solve_rate(actor, model, self.rules, held_out, self.device, **options)
        finally:
            actor.warmup_segments = trained
        metrics.update({f"eval/{key}": value for key, value in result.items()})
        return metrics

    def _choose_warmup(self, actor: HRMPolicy, model: HRM, held_out: PuzzleSet) -> dict:
        """Leave ``actor`` thinking the best of ``eval.warmup_segments`` on validation puzzles
        outside ``held_out``; the rates and the choice as metrics."""
        bank = validation_puzzles(self.rules, self.env_cfg, self.choice_puzzles, held_out)
        rates = {}
        for segments in self.warmup_choices:
            actor.warmup_segments = segments
            rates[segments] = greedy_solve_rate(
                actor, model, self.rules, bank, self.device, **env_options(self.env_cfg)
            )["solve_rate"]
        actor.warmup_segments = best_warmup(rates)
        log.info(
            "final evaluation: warmup_segments=%d, chosen on %d validation puzzles (%s)",
            actor.warmup_segments,
            len(bank),
            ", ".join(f"{n}: {rate:.3f}" for n, rate in rates.items()),
        )
        return {
            **{f"valid/solve_rate_warmup{n}": rate for n, rate in rates.items()},
            "eval/warmup_segments": actor.warmup_segments,
        }

    def state_dict(self) -> dict:
        return {
            "rng": capture_rng_state({"env": self.env.base_env._generator}),
            "episodes": self.env.base_env.episode_state(),
            "carrier": {
                "/".join(key) if isinstance(key, tuple) else key: value.detach().cpu()
                for key, value in self.collector._carrier.items(
                    include_nested=True, leaves_only=True
                )
                if (key[0] if isinstance(key, tuple) else key) != "collector"
            },
        }

    def load_state_dict(self, checkpoint: dict) -> None:
        """Continue the very episodes the checkpoint saw: env internals and the collector's
        carrier (its root tensordict with the carry; torchrl 0.14 keeps it in ``_carrier``)."""
        restore_rng_state(checkpoint["rng"], {"env": self.env.base_env._generator})
        self.env.base_env.load_episode_state(checkpoint["episodes"])
        carrier = _renamed_carrier_keys(checkpoint["carrier"])
        self.collector._carrier.update(
            {tuple(key.split("/")): value.to(self.device) for key, value in carrier.items()}
        )

    def shutdown(self) -> None:
        self.collector.shutdown()


class SupervisedTrainer:
    """The supervised agent's training step: B drawn puzzles per update; `grid` evaluation."""

    def __init__(
        self,
        agent: SupervisedAgent,
        rules: PuzzleRules,
        bank: PuzzleSet,
        cfg: DictConfig,
        device: torch.device,
        seed: int,
    ) -> None:
        if cfg.env.action_mode != "grid":
            raise ValueError(
                "agent=supervised proposes whole boards: it needs env.action_mode=grid, got "
                f"{cfg.env.action_mode!r}"
            )
        if cfg.model.get("warmup_segments", 0):
            raise ValueError(
                "model.warmup_segments lets a PPO move wait for more segments; agent=supervised "
                "already runs agent.segments per puzzle: leave it at 0"
            )
        if eval_warmup_segments(cfg) is not None:
            raise ValueError(
                "eval.warmup_segments is the warm-up of a PPO policy's first move in "
                "evaluations; agent=supervised runs agent.segments per puzzle: leave it null"
            )
        self.agent, self.rules, self.device = agent, rules, device
        self.sampler = PuzzleSampler(
            rules, bank, cfg.batch_size, device=device, seed=seed, augment=cfg.env.augment
        )

    def step(self, time_progress: float) -> tuple[int, dict, torch.Tensor]:
        del time_progress  # the supervised schedule counts iterations only
        update = self.agent.update(*self.sampler.draw())
        return update.pop("forwards"), update, update.pop("solved")

    def last_puzzles(self) -> list[int]:
        """The bank rows of the puzzles drawn for the last batch."""
        return torch.unique(self.sampler.last_index).tolist()

    @staticmethod
    def loss(update: dict) -> float:
        return update.get("loss", float("nan"))

    def set_bank(self, bank: PuzzleSet) -> None:
        self.sampler.set_bank(bank)

    def evaluate(self, model: HRM, held_out: PuzzleSet, final: bool = False) -> dict[str, float]:
        episodes = play_supervised(
            model,
            self.rules,
            held_out,
            segments=self.agent.config.segments,
            device=self.device,
            precision=self.agent.config.precision,
        )
        return {
            "eval/solve_rate": float(episodes.solved.mean()),
            "eval/episode_steps": 0.0 + self.agent.config.segments,
        }

    def state_dict(self) -> dict:
        return {"rng": capture_rng_state({"sampler": self.sampler.generator})}

    def load_state_dict(self, checkpoint: dict) -> None:
        restore_rng_state(checkpoint["rng"], {"sampler": self.sampler.generator})

    def shutdown(self) -> None:
        pass


# checkpoints written before the tensordict took the model's names: the memory cells' contents
# were "memory", the chosen cells "cells"
_OLD_KEYS = {
    "memory": "cells",
    "cells": "selections",
    "log_prob_cells": "log_prob_selections",
    "cells_greedy": "selections_greedy",
}


def _renamed_carrier_keys(carrier: dict) -> dict:
    """``carrier`` (``"/"``-joined keys) under today's key names."""
    if not any(key.split("/")[-1] == "memory" for key in carrier):
        return carrier
    renamed = {}
    for key, value in carrier.items():
        *path, leaf = key.split("/")
        renamed["/".join([*path, _OLD_KEYS.get(leaf, leaf)])] = value
    return renamed
