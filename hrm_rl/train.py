"""Train an HRM on a puzzle family: ``python -m hrm_rl.train [group=choice] [key=value]``.

The whole run is :func:`train`, read top to bottom: build (rules, curriculum bank, held-out bank,
model, agent, and for PPO the env and collector) → loop: one update (PPO: on a collected ``[B, T]``
batch; ``agent=supervised``: deep supervision on B drawn puzzles) → curriculum → log → greedy
held-out evaluation every ``eval.every`` frames → checkpoint every ``checkpoint.every`` frames →
at the end a final evaluation and checkpoint, the summary table, ``learning_curves.png``, and the
checkpoint's absolute path as the last line of stdout. A *frame* is one backbone call on one
puzzle: an env step for PPO, a supervision segment for the supervised agent.

Configs live in ``hrm_rl/configs`` (``config.yaml`` plus the groups agent, env, model, logger);
files go to the Hydra run dir (``outputs/<date>/<time>`` under the current folder by default).
``resume=PATH`` continues the run of a ``checkpoint.pt`` in its own folder: its stored config, with
every key or group named on this command line taking this command line's value.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv
from tqdm import tqdm

from hrm_rl.agents.evaluation import greedy_solve_rate
from hrm_rl.agents.policy import HRMPolicy, carry_transforms
from hrm_rl.agents.ppo import NonFiniteLossError, PPOAgent, PPOConfig
from hrm_rl.agents.supervised import (
    PuzzleSampler,
    SupervisedAgent,
    SupervisedConfig,
    play_supervised,
)
from hrm_rl.build import (
    agent_name,
    build_model,
    env_options,
    held_out_puzzles,
    make_curriculum,
)
from hrm_rl.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from hrm_rl.distributed import World, init_world, parameter_digest
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.registration import register_hydra_configs, rules_from_config
from hrm_rl.models import HRM
from hrm_rl.run_logging import RunLogger

log = logging.getLogger("hrm_rl.train")

CHECKPOINT_FILE = "checkpoint.pt"
CURVES_FILE = "learning_curves.png"
# time_budget.clock: elapsed time, or this process's CPU time (all threads together)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CURVE_KEYS = {
    "ppo": ["ppo/loss_objective", "ppo/entropy_move", "ppo/approx_kl", "ppo/lr"],
    "supervised": ["supervised/loss_cells", "supervised/loss_halt", "supervised/lr"],
}


def train(cfg: DictConfig) -> Path:
    """Run (or resume) one training run as ``cfg`` says; returns the final checkpoint's path."""
    clock_starts = {name: clock() for name, clock in CLOCKS.items()}  # the budget counts setup too
    checkpoint = None
    if cfg.resume is not None:
        checkpoint = load_checkpoint(cfg.resume)
        cfg = resumed_config(cfg, checkpoint)
        run_dir = Path(cfg.resume).resolve().parent  # continue in the run's own folder
    else:
        run_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    if cfg.total_frames is None and cfg.time_budget.minutes is None:
        raise ValueError(
            "total_frames=null and time_budget.minutes=null: nothing would stop the run; set one"
        )
    if cfg.time_budget.clock not in CLOCKS:
        raise ValueError(
            f"time_budget.clock must be one of {sorted(CLOCKS)}, got {cfg.time_budget.clock!r}"
        )
    clock, clock_start = CLOCKS[cfg.time_budget.clock], clock_starts[cfg.time_budget.clock]
    options = options_of(cfg)
    world, device = init_world(
        cfg.device, options.get("backend", "auto"), options.get("timeout_minutes", 30.0)
    )
    try:
        return _train(cfg, checkpoint, run_dir, world, device, clock, clock_start)
    finally:
        world.close()


def _train(
    cfg: DictConfig,
    checkpoint: dict | None,
    run_dir: Path,
    world: World,
    device: torch.device,
    clock,
    clock_start: float,
) -> Path:
    """:func:`train` once the config, the run folder and this rank's place are known."""
    if world.joined:  # rank 0's folder: Hydra's time-stamped folders can differ by a second
        run_dir = Path(world.broadcast_object(str(run_dir)))
        if not world.is_main:  # the other ranks log warnings only
            logging.getLogger("hrm_rl").setLevel(logging.WARNING)
    random.seed(cfg.seed)  # the same model on every rank; their own streams once it is built
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rank_seed = world.rank_seed(cfg.seed)

    # --- puzzles: the training bank (curriculum level) and the held-out evaluation bank --------
    rules = rules_from_config(cfg.env)
    curriculum = make_curriculum(rules, cfg.env, cfg.seed)
    if checkpoint is not None:
        curriculum.load_state_dict(checkpoint["curriculum"])
    # rank 0 alone evaluates (generating 9×9 puzzles takes a while)
    held_out = held_out_puzzles(rules, cfg.env, cfg.eval.num_puzzles) if world.is_main else None
    # periodic evaluations play the first `eval.periodic_puzzles` of them, the final one all
    periodic = cfg.eval.get("periodic_puzzles")
    if held_out is not None and periodic is not None and periodic < len(held_out):
        periodic_held_out = held_out.subset(np.arange(periodic))
    else:
        periodic_held_out = held_out

    # --- model, agent, and what feeds it: env + collector (PPO) or a puzzle sampler -------------
    model = build_model(rules, cfg.model, device)
    kind = agent_name(cfg.agent)
    agent_options = OmegaConf.to_container(cfg.agent, resolve=True)
    agent_options.pop("name", None)
    agent_options["betas"] = tuple(agent_options["betas"])
    if kind == "supervised":  # B puzzles × at most `segments` segments (halting ends some sooner)
        frames_per_batch = cfg.batch_size * agent_options.get("segments", 1)
    else:
        frames_per_batch = cfg.batch_size * cfg.rollout
    if agent_options["total_iterations"] is None and cfg.total_frames is not None:
        global_batch = frames_per_batch * world.size  # the cosine schedule spans the whole run
        agent_options["total_iterations"] = max(1, cfg.total_frames // global_batch)
    if kind == "supervised":
        agent = SupervisedAgent(model, rules, SupervisedConfig(**agent_options)).to(device)
    else:
        agent = PPOAgent(model, PPOConfig(**agent_options)).to(device)
    agent.join(world)
    if world.rank > 0:  # rank 0 keeps `seed`'s streams: a one-process run is unchanged
        random.seed(rank_seed)
        np.random.seed(rank_seed % 2**32)
        torch.manual_seed(rank_seed)
    if kind == "supervised":
        feed = SupervisedFeed(agent, rules, curriculum.bank(), cfg, device, rank_seed)
    else:
        feed = PPOFeed(agent, rules, curriculum.bank(), cfg, device, rank_seed)
    eval_model = agent.model if agent.ema is None else agent.ema  # EMA weights when kept

    frames, spent = 0, 0.0  # spent: seconds of the time budget's clock used by earlier sessions
    rank_frames = 0  # the frames this rank played; `frames` counts every rank's
    if checkpoint is not None:
        agent.model.load_state_dict(checkpoint["model"])
        agent.optimizer.load_state_dict(checkpoint["optimizer"])
        agent.scheduler.load_state_dict(checkpoint["scheduler"])
        if agent.ema is not None:
            agent.ema.load_state_dict(checkpoint["ema"] or checkpoint["model"])
        agent.iteration = checkpoint["iteration"]
        frames = checkpoint["frames"]
        spent = checkpoint.get("spent_seconds", 0.0)
        state = rank_state(checkpoint, world.rank)
        if state is None:
            log.warning(
                "the checkpoint holds %d ranks' episodes; rank %d starts fresh episodes",
                checkpoint.get("world_size", 1),
                world.rank,
            )
        else:
            feed.load_state_dict(state)
            rank_frames = checkpoint.get("rank_frames", [frames])[world.rank]
        log.info("resumed %s at %d frames, iteration %d", cfg.resume, frames, agent.iteration)
    world.broadcast_parameters(agent)  # identical already; this makes sure of it

    logger = None
    if world.is_main:
        logger = RunLogger(
            run_dir,
            cfg.logger.backend,
            config=OmegaConf.to_container(cfg, resolve=True),
            resume=checkpoint is not None,
        )
    log.info(
        "run dir %s | %s agent on %s, %s | model %.2fM parameters | up to %d frames per batch%s",
        run_dir,
        kind,
        rules,
        device,
        model.num_parameters() / 1e6,
        frames_per_batch,
        f" on each of {world.size} ranks ({world.backend})" if world.joined else "",
    )
    trace = RankTrace(run_dir, world, agent.model) if options_of(cfg).get("trace") else None

    def used_seconds() -> float:
        return spent + clock() - clock_start

    def schedule_progress() -> float:
        """The share of the time budget used, which the cosine learning rate follows when the
        budget alone sets the run's length (``total_frames=null``; with a frame limit the
        schedule counts iterations, so a resumed run repeats an unbroken one exactly). Every
        rank takes the furthest, so that all of them step with the same learning rate."""
        if budget is None or cfg.total_frames is not None:
            return 0.0
        return max(world.all_gather_values(min(1.0, used_seconds() / budget)))

    def save() -> Path:
        """Everything a resume needs, written atomically to run_dir/checkpoint.pt (by rank 0,
        with every rank's episodes and RNG streams)."""
        states = world.gather_objects(feed.state_dict())
        every_rank_frames = world.all_gather_values(rank_frames)
        if not world.is_main:
            return (run_dir / CHECKPOINT_FILE).resolve()
        state = {
            "model": agent.model.state_dict(),
            "optimizer": agent.optimizer.state_dict(),
            "scheduler": agent.scheduler.state_dict(),
            "ema": None if agent.ema is None else agent.ema.state_dict(),
            "frames": frames,
            "spent_seconds": used_seconds(),
            "iteration": agent.iteration,
            "curriculum": curriculum.state_dict(),
            "config": OmegaConf.to_yaml(cfg, resolve=True),
            **states[0],  # rank 0's episodes at the top level, as one-process runs write them
            "rank_states": states[1:],
            "world_size": world.size,
            "rank_frames": every_rank_frames,
        }
        return save_checkpoint(run_dir / CHECKPOINT_FILE, state).resolve()

    # --- the loop: update → curriculum → log → eval → checkpoint ---------------------------------
    progress = tqdm(
        total=cfg.total_frames,
        initial=frames,
        unit="frame",
        dynamic_ncols=True,
        disable=not world.is_main,
    )
    start, start_frames = time.perf_counter(), frames
    last_eval = last_checkpoint = None
    evals_by_clock = int(spent // (60.0 * cfg.eval.minutes)) if cfg.eval.get("minutes") else 0
    budget = None if cfg.time_budget.minutes is None else 60.0 * cfg.time_budget.minutes
    if trace is not None:
        trace.write(
            event="start", iteration=agent.iteration, frames=frames, rank_frames=rank_frames
        )
    try:
        while cfg.total_frames is None or frames < cfg.total_frames:
            if world.any(budget is not None and used_seconds() >= budget):  # rank 0's clock too
                log.warning(
                    "time budget of %s %s minutes used up at %d frames",
                    cfg.time_budget.minutes,
                    cfg.time_budget.clock,
                    frames,
                )
                break
            step_frames, update, solved = feed.step(schedule_progress())  # solved: per episode
            rank_frames += step_frames
            previous, frames = frames, frames + world.sum(step_frames)
            if trace is not None:
                trace.write(
                    event="update",
                    iteration=agent.iteration,
                    frames=frames,
                    rank_frames=rank_frames,
                    puzzles=feed.last_puzzles(),
                )
            solved = world.cat(solved)  # every rank's episodes: the same curriculum everywhere
            if curriculum.update(solved):
                feed.set_bank(curriculum.bank())  # running episodes finish on the old bank

            fps = (frames - start_frames) / (time.perf_counter() - start)
            solve_rate = solved.float().mean().item() if solved.numel() else float("nan")
            metrics = {
                "frames": frames,
                "iteration": agent.iteration,
                "fps": fps,
                "time/seconds": used_seconds(),
                "train/solve_rate": solve_rate,
                "train/episodes": solved.numel(),
                **{f"{kind}/{key}": value for key, value in update.items()},
                **curriculum.metrics(),
            }
            eval_minutes = cfg.eval.get("minutes")
            if world.is_main and (
                crossed(previous, frames, cfg.eval.every)
                or (eval_minutes and used_seconds() >= 60.0 * eval_minutes * (evals_by_clock + 1))
            ):
                metrics.update(feed.evaluate(eval_model, periodic_held_out))
                last_eval = frames
                if eval_minutes:
                    evals_by_clock = int(used_seconds() // (60.0 * eval_minutes))
            if logger is not None:
                logger.log(metrics, step=frames)
            if crossed(previous, frames, cfg.checkpoint.every):
                save()
                last_checkpoint = frames

            progress.update(step_frames)
            progress.set_postfix(
                fps=f"{fps:.0f}",
                solve=f"{solve_rate:.2f}",
                loss=f"{feed.loss(update):.3f}",
                level=curriculum.level,
            )

        if world.is_main and last_eval != frames:
            final = feed.evaluate(eval_model, held_out)
            final["time/seconds"] = used_seconds()
            logger.log(final, step=frames)
        path = save() if last_checkpoint != frames else (run_dir / CHECKPOINT_FILE).resolve()
    finally:
        progress.close()
        feed.shutdown()
        if logger is not None:
            logger.close()

    if not world.is_main:
        return path
    print(logger.summary_table())
    curves = ["train/solve_rate", "eval/solve_rate", "curriculum/level", *CURVE_KEYS[kind]]
    logger.plot_curves(run_dir / CURVES_FILE, curves)
    print(path)
    return path


class PPOFeed:
    """PPO's side of the loop: the batched env, the collector, and one update per ``[B, T]``
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
        # greedy evaluation plays the EMA weights when the agent keeps them
        self.eval_actor = HRMPolicy(
            agent.model if agent.ema is None else agent.ema, agent.config.precision
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

    def evaluate(self, model: HRM, held_out: PuzzleSet) -> dict[str, float]:
        return evaluate(self.eval_actor, model, self.rules, held_out, self.env_cfg, self.device)

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
        self.collector._carrier.update(
            {
                tuple(key.split("/")): value.to(self.device)
                for key, value in checkpoint["carrier"].items()
            }
        )

    def shutdown(self) -> None:
        self.collector.shutdown()


class SupervisedFeed:
    """The supervised agent's side of the loop: B drawn puzzles per update, `grid` evaluation."""

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

    def evaluate(self, model: HRM, held_out: PuzzleSet) -> dict[str, float]:
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


def rank_state(checkpoint: dict, rank: int) -> dict | None:
    """The episode and RNG state ``rank`` saved in ``checkpoint`` (rank 0's lies at the top
    level, as in checkpoints of one-process runs), or None when that rank was not in the run."""
    if rank == 0:
        return checkpoint
    others = checkpoint.get("rank_states", [])
    return others[rank - 1] if rank - 1 < len(others) else None


def options_of(cfg: DictConfig) -> dict:
    """The ``distributed`` config as a dict (empty for configs written before it existed)."""
    options = cfg.get("distributed")
    return {} if options is None else dict(OmegaConf.to_container(options, resolve=True))


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


def crossed(previous: int, frames: int, every: int) -> bool:
    """Whether going from ``previous`` to ``frames`` frames passed a multiple of ``every``."""
    return every > 0 and frames // every > previous // every


def evaluate(
    actor: torch.nn.Module,
    model: HRM,
    rules: PuzzleRules,
    puzzles: PuzzleSet,
    env_cfg: DictConfig,
    device: torch.device,
) -> dict[str, float]:
    """Greedy play of every held-out puzzle once: the share solved in its first episode."""
    result = greedy_solve_rate(actor, model, rules, puzzles, device, **env_options(env_cfg))
    return {f"eval/{key}": value for key, value in result.items()}


def resumed_config(cfg: DictConfig, checkpoint: dict) -> DictConfig:
    """The checkpoint's config, with each key or group named on this command line overridden."""
    stored = OmegaConf.create(checkpoint["config"])
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+~")
        OmegaConf.update(stored, key, OmegaConf.select(cfg, key), merge=False)
    OmegaConf.set_struct(stored, True)
    return stored


@hydra.main(config_path="pkg://hrm_rl.configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: train, and turn a diverging loss into a one-line error (exit code 1)."""
    logging.getLogger("torchrl").setLevel(logging.WARNING)  # one INFO line per PPO update
    try:
        train(cfg)
    except NonFiniteLossError as error:
        print(f"hrm_rl.train: stopped: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    register_hydra_configs()  # env configs of families (plugins too) that ship no YAML file
    main()
