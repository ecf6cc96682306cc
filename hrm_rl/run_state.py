"""Where a training run stands, and how it is saved and resumed.

:class:`RunState` counts the frames (every rank's, and this rank's own) and the seconds of the
time budget's clock (earlier sessions' included), writes ``checkpoint.pt`` (rank 0, with every
rank's episodes and RNG streams) and restores a run from one. :class:`RankTrace` is the optional
per-rank trace of a data-parallel run. ``hrm_rl.train`` drives both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from hrm_rl.checkpoint import load_weights, save_checkpoint
from hrm_rl.distributed import World, parameter_digest
from hrm_rl.envs.curriculum import Curriculum

log = logging.getLogger("hrm_rl.train")

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"  # eval.keep_best: the checkpoint with the best validation solve rate


@dataclass
class RunState:
    """Frames and budget seconds so far, and the checkpoint that carries them across sessions.

    ``frames`` counts every rank's frames, ``rank_frames`` this rank's; ``spent`` is the seconds
    of the budget's ``clock`` used by earlier sessions (``clock_start`` is this session's start).
    ``best_rate`` and ``best_frames``: the validation solve rate of ``best.pt`` and when it was
    saved (``eval.keep_best``; −1 and 0 before one is).
    """

    run_dir: Path
    world: World
    clock: Callable[[], float]
    clock_start: float
    frames: int = 0
    rank_frames: int = 0
    spent: float = 0.0
    best_rate: float = -1.0
    best_frames: int = 0

    @property
    def path(self) -> Path:
        return (self.run_dir / CHECKPOINT_FILE).resolve()

    @property
    def best_path(self) -> Path:
        return (self.run_dir / BEST_FILE).resolve()

    def used_seconds(self) -> float:
        """Seconds of the budget's clock used by the whole run, this session included."""
        return self.spent + self.clock() - self.clock_start

    def add(self, step_frames: int) -> int:
        """Count one update's frames (``step_frames`` on this rank); returns the previous total."""
        previous = self.frames
        self.rank_frames += step_frames
        self.frames += self.world.sum(step_frames)
        return previous

    def restore(self, checkpoint: dict, agent: Any, trainer: Any) -> None:
        """Continue ``checkpoint``'s run: weights, optimizer, schedule, EMA, counters, and this
        rank's episodes and RNG streams (a rank the run did not have starts fresh episodes)."""
        load_weights(agent.model, checkpoint["model"], "the resumed checkpoint")
        agent.optimizer.load_state_dict(checkpoint["optimizer"])
        agent.scheduler.load_state_dict(checkpoint["scheduler"])
        if agent.ema is not None:
            agent.ema.load_state_dict(checkpoint["ema"] or checkpoint["model"])
        agent.iteration = checkpoint["iteration"]
        self.frames = checkpoint["frames"]
        self.spent = checkpoint.get("spent_seconds", 0.0)
        self.best_rate = checkpoint.get("best_rate", -1.0)
        self.best_frames = checkpoint.get("best_frames", 0)
        state = rank_state(checkpoint, self.world.rank)
        if state is None:
            log.warning(
                "the checkpoint holds %d ranks' episodes; rank %d starts fresh episodes",
                checkpoint.get("world_size", 1),
                self.world.rank,
            )
        else:
            trainer.load_state_dict(state)
            self.rank_frames = checkpoint.get("rank_frames", [self.frames])[self.world.rank]

    def save(
        self,
        agent: Any,
        trainer: Any,
        curriculum: Curriculum,
        cfg: DictConfig,
        path: Path | None = None,
    ) -> Path:
        """Everything a resume needs, written atomically to ``run_dir/checkpoint.pt`` (or
        ``path``) by rank 0, with every rank's episodes and RNG streams (a collective: every rank
        calls it)."""
        states = self.world.gather_objects(trainer.state_dict())
        every_rank_frames = self.world.all_gather_values(self.rank_frames)
        if not self.world.is_main:
            return self.path if path is None else path
        state = {
            "model": agent.model.state_dict(),
            "optimizer": agent.optimizer.state_dict(),
            "scheduler": agent.scheduler.state_dict(),
            "ema": None if agent.ema is None else agent.ema.state_dict(),
            "frames": self.frames,
            "spent_seconds": self.used_seconds(),
            "iteration": agent.iteration,
            "best_rate": self.best_rate,
            "best_frames": self.best_frames,
            "curriculum": curriculum.state_dict(),
            "config": OmegaConf.to_yaml(cfg, resolve=True),
            **states[0],  # rank 0's episodes at the top level, as one-process runs write them
            "rank_states": states[1:],
            "world_size": self.world.size,
            "rank_frames": every_rank_frames,
        }
        return save_checkpoint(self.path if path is None else path, state).resolve()


def rank_state(checkpoint: dict, rank: int) -> dict | None:
    """The episode and RNG state ``rank`` saved in ``checkpoint`` (rank 0's lies at the top
    level, as in checkpoints of one-process runs), or None when that rank was not in the run."""
    if rank == 0:
        return checkpoint
    others = checkpoint.get("rank_states", [])
    return others[rank - 1] if rank - 1 < len(others) else None


def distributed_options(cfg: DictConfig) -> dict:
    """The ``distributed`` config as a dict (empty for configs written before it existed)."""
    options = cfg.get("distributed")
    return {} if options is None else dict(OmegaConf.to_container(options, resolve=True))


def crossed(previous: int, frames: int, every: int) -> bool:
    """Whether going from ``previous`` to ``frames`` frames passed a multiple of ``every``."""
    return every > 0 and frames // every > previous // every


class RankTrace:
    """``distributed.trace=true``: one JSON line per update from every rank, in
    ``run_dir/ranks/rank<r>.jsonl``: the frame counters, the parameters' SHA-256 (equal on every
    rank when the run is in sync) and the bank rows played. For checking a multi-node setup."""

    def __init__(self, run_dir: Path, world: World, model: torch.nn.Module) -> None:
        self.path = run_dir / "ranks" / f"rank{world.rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.world, self.model = world, model

    def write(self, **fields) -> None:
        line = {"rank": self.world.rank, "world_size": self.world.size, **fields}
        line["params"] = parameter_digest(self.model)
        with self.path.open("a") as file:
            file.write(json.dumps(line) + "\n")
