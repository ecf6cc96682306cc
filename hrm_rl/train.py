"""Train an HRM on a puzzle family: ``python -m hrm_rl.train [group=choice] [key=value]``.

The whole run is :func:`train`, read top to bottom: build (rules, curriculum bank, held-out bank,
model, agent, and for PPO the env and collector) → loop: one update (PPO: on a collected ``[B, T]``
batch; ``agent=supervised``: deep supervision on B drawn puzzles) → curriculum → log → greedy
held-out evaluation every ``eval.every`` frames (on a validation split instead with
``eval.validation_puzzles``, and with ``eval.keep_best`` the best of them saved as ``best.pt``) →
checkpoint every ``checkpoint.every`` frames → at the end a final evaluation (and one of
``best.pt``) and checkpoint, the summary table, ``learning_curves.png``, and the checkpoint's
absolute path as the last line of stdout. A *frame* is one backbone call on one
puzzle: an env step for PPO, a supervision segment for the supervised agent.

Configs live in ``hrm_rl/configs`` (``config.yaml`` plus the groups agent, env, model, logger);
files go to the Hydra run dir (``outputs/<date>/<time>`` under the current folder by default).
``resume=PATH`` continues the run of a ``checkpoint.pt`` in its own folder: its stored config, with
every key or group named on this command line taking this command line's value. ``init=PATH`` starts
a new run (this command line's config, fresh optimizer, counters and curriculum) from the model
weights of a checkpoint, e.g. a 7x7 maze model's for 15x15 mazes.
"""

from __future__ import annotations

import copy
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
from tqdm import tqdm

from hrm_rl.agents.ppo import NonFiniteLossError
from hrm_rl.build import (
    agent_name,
    build_agent,
    build_model,
    held_out_puzzles,
    make_curriculum,
    validation_puzzles,
)
from hrm_rl.checkpoint import CheckpointError, load_checkpoint, load_weights
from hrm_rl.distributed import World, init_world
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.registration import register_hydra_configs, rules_from_config
from hrm_rl.run_logging import RunLogger
from hrm_rl.run_state import RankTrace, RunState, crossed, distributed_options
from hrm_rl.trainers import make_trainer

log = logging.getLogger("hrm_rl.train")

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
    if cfg.get("init") is not None and cfg.resume is not None:
        raise ValueError(
            "init=PATH starts a new run from a checkpoint's weights and resume=PATH continues "
            "one; give one of them"
        )
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
    if cfg.eval.get("keep_best") and not cfg.eval.get("validation_puzzles"):
        raise ValueError(
            "eval.keep_best=true chooses among checkpoints on a validation split; set "
            "eval.validation_puzzles (e.g. 200) so the held-out rate of best.pt stays a test"
        )
    options = distributed_options(cfg)
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
    _seed_everything(cfg.seed)  # the same model on every rank; their own streams once it is built
    rank_seed = world.rank_seed(cfg.seed)

    # --- puzzles: the training bank (curriculum level) and the held-out evaluation bank --------
    rules = rules_from_config(cfg.env)
    curriculum = make_curriculum(rules, cfg.env, cfg.seed)
    if checkpoint is not None:
        curriculum.load_state_dict(checkpoint["curriculum"])
    held_out, periodic_held_out = _held_out(rules, cfg, world)
    # periodic evaluations on a validation split log under valid/, the held-out ones under eval/
    periodic_prefix = "valid/" if cfg.eval.get("validation_puzzles") else "eval/"
    keep_best = bool(cfg.eval.get("keep_best", False))

    # --- model, agent, and its trainer: env + collector (PPO) or a puzzle sampler --------------
    model = build_model(rules, cfg.model, device)
    # before the agent copies the model (EMA); a resumed run restores its own weights instead,
    # its config keeping the init= it was started from as a record
    if cfg.get("init") is not None and checkpoint is None:
        _start_from(model, cfg.init, device)
    agent, frames_per_batch = build_agent(cfg, model, rules, world.size)
    agent = agent.to(device)
    agent.join(world)
    if world.rank > 0:  # rank 0 keeps `seed`'s streams: a one-process run is unchanged
        _seed_everything(rank_seed)
    trainer = make_trainer(agent, rules, curriculum.bank(), cfg, device, rank_seed)
    eval_model = agent.model if agent.ema is None else agent.ema  # EMA weights when kept
    state = RunState(run_dir, world, clock, clock_start)
    if checkpoint is not None:
        state.restore(checkpoint, agent, trainer)
        log.info(
            "resumed %s at %d frames, iteration %d; its outputs go on in %s (the checkpoint's "
            "folder, not hydra.run.dir)",
            cfg.resume,
            state.frames,
            agent.iteration,
            run_dir,
        )
    world.broadcast_parameters(agent)  # identical already; this makes sure of it

    kind = agent_name(cfg.agent)
    logger = _logger(cfg, run_dir, world, resume=checkpoint is not None)
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
    trace = (
        RankTrace(run_dir, world, agent.model) if distributed_options(cfg).get("trace") else None
    )
    budget = None if cfg.time_budget.minutes is None else 60.0 * cfg.time_budget.minutes
    eval_minutes = cfg.eval.get("minutes")
    evals_by_clock = int(state.spent // (60.0 * eval_minutes)) if eval_minutes else 0

    def schedule_progress() -> float:
        """The share of the time budget used, which the cosine learning rate follows when the
        budget alone sets the run's length (with a frame limit the schedule counts iterations,
        so a resumed run repeats an unbroken one exactly); every rank takes the furthest."""
        if budget is None or cfg.total_frames is not None:
            return 0.0
        return max(world.all_gather_values(min(1.0, state.used_seconds() / budget)))

    # --- the loop: update → curriculum → log → eval → checkpoint ---------------------------------
    progress = tqdm(
        total=cfg.total_frames,
        initial=state.frames,
        unit="frame",
        dynamic_ncols=True,
        disable=not world.is_main,
    )
    start, start_frames = time.perf_counter(), state.frames
    last_eval = None
    if trace is not None:
        trace.write(
            event="start",
            iteration=agent.iteration,
            frames=state.frames,
            rank_frames=state.rank_frames,
        )
    try:
        while cfg.total_frames is None or state.frames < cfg.total_frames:
            if world.any(budget is not None and state.used_seconds() >= budget):  # rank 0's too
                log.warning(
                    "time budget of %s %s minutes used up at %d frames",
                    cfg.time_budget.minutes,
                    cfg.time_budget.clock,
                    state.frames,
                )
                break
            step_frames, update, solved = trainer.step(schedule_progress())  # solved: per episode
            previous = state.add(step_frames)
            if trace is not None:
                trace.write(
                    event="update",
                    iteration=agent.iteration,
                    frames=state.frames,
                    rank_frames=state.rank_frames,
                    puzzles=trainer.last_puzzles(),
                )
            solved = world.cat(solved)  # every rank's episodes: the same curriculum everywhere
            if curriculum.update(solved):
                trainer.set_bank(curriculum.bank())  # running episodes finish on the old bank

            fps = (state.frames - start_frames) / (time.perf_counter() - start)
            solve_rate = solved.float().mean().item() if solved.numel() else float("nan")
            metrics = {
                "frames": state.frames,
                "iteration": agent.iteration,
                "fps": fps,
                "time/seconds": state.used_seconds(),
                "train/solve_rate": solve_rate,
                "train/episodes": solved.numel(),
                **{f"{kind}/{key}": value for key, value in update.items()},
                **curriculum.metrics(),
            }
            by_clock = eval_minutes and state.used_seconds() >= 60.0 * eval_minutes * (
                evals_by_clock + 1
            )
            if world.is_main and (crossed(previous, state.frames, cfg.eval.every) or by_clock):
                periodic = trainer.evaluate(eval_model, periodic_held_out)
                metrics.update(_prefixed(periodic, periodic_prefix))
                last_eval = state.frames
                if eval_minutes:
                    evals_by_clock = int(state.used_seconds() // (60.0 * eval_minutes))
            # a collective: every rank saves best.pt (rank 0 writes it) when rank 0's rate rose
            if keep_best and world.any(
                last_eval == state.frames and periodic["eval/solve_rate"] > state.best_rate
            ):
                if world.is_main:
                    state.best_rate, state.best_frames = periodic["eval/solve_rate"], state.frames
                state.save(agent, trainer, curriculum, cfg, path=state.best_path)
            if logger is not None:
                logger.log(metrics, step=state.frames)
            if crossed(previous, state.frames, cfg.checkpoint.every):
                state.save(agent, trainer, curriculum, cfg)
            progress.update(step_frames)
            progress.set_postfix(
                fps=f"{fps:.0f}",
                solve=f"{solve_rate:.2f}",
                loss=f"{trainer.loss(update):.3f}",
                level=curriculum.level,
            )

        # the final evaluation plays the whole held-out bank, also when the last periodic one
        # (on its first eval.periodic_puzzles) fell on the last frame
        if world.is_main and (last_eval != state.frames or periodic_held_out is not held_out):
            final = trainer.evaluate(eval_model, held_out, final=True)
            final["time/seconds"] = state.used_seconds()
            if keep_best and state.best_path.exists():
                final.update(_best_on_held_out(trainer, eval_model, state, held_out))
                log.info(
                    "best.pt: %.3f on the validation split at %d frames, %.3f held-out (the "
                    "last weights: %.3f)",
                    final["eval_best/valid_solve_rate"],
                    final["eval_best/frames"],
                    final["eval_best/solve_rate"],
                    final["eval/solve_rate"],
                )
            logger.log(final, step=state.frames)
        # always: the last checkpoint of the loop may predate the budget's last seconds and the
        # final evaluation, which a resumed run's budget must count
        state.save(agent, trainer, curriculum, cfg)
    finally:
        progress.close()
        trainer.shutdown()
        if logger is not None:
            logger.close()

    if world.is_main:
        print(logger.summary_table())
        curves = ["train/solve_rate", "eval/solve_rate", "curriculum/level", *CURVE_KEYS[kind]]
        if periodic_prefix != "eval/":
            curves.insert(2, f"{periodic_prefix}solve_rate")
        logger.plot_curves(run_dir / CURVES_FILE, curves)
        print(state.path)
    return state.path


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """``metrics`` (``eval/…`` keys) under ``prefix`` instead."""
    return {prefix + key.removeprefix("eval/"): value for key, value in metrics.items()}


def _best_on_held_out(trainer, eval_model, state: RunState, held_out: PuzzleSet) -> dict:
    """The held-out evaluation of ``best.pt``'s weights (EMA ones when the run keeps an EMA),
    under ``eval_best/``, with the frames and validation rate it was chosen at."""
    best = load_checkpoint(state.best_path)
    weights = best["ema"] if best.get("ema") is not None else best["model"]
    model = copy.deepcopy(eval_model)
    model.load_state_dict(weights)
    result = _prefixed(trainer.evaluate(model, held_out), "eval_best/")
    result["eval_best/frames"] = float(best["frames"])
    result["eval_best/valid_solve_rate"] = float(best["best_rate"])
    return result


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _held_out(
    rules: PuzzleRules, cfg: DictConfig, world: World
) -> tuple[PuzzleSet | None, PuzzleSet | None]:
    """The held-out bank (rank 0 alone evaluates; generating 9×9 puzzles takes a while) and the
    puzzles periodic evaluations play: the first ``eval.periodic_puzzles`` of it (the final
    evaluation plays all), or with ``eval.validation_puzzles`` a validation bank of that size
    that shares no puzzle with it."""
    if not world.is_main:
        return None, None
    held_out = held_out_puzzles(rules, cfg.env, cfg.eval.num_puzzles)
    count = cfg.eval.get("validation_puzzles")
    if count is not None:
        return held_out, validation_puzzles(rules, cfg.env, int(count), held_out)
    periodic = cfg.eval.get("periodic_puzzles")
    if periodic is not None and periodic < len(held_out):
        return held_out, held_out.subset(np.arange(periodic))
    return held_out, held_out


def _logger(cfg: DictConfig, run_dir: Path, world: World, resume: bool) -> RunLogger | None:
    if not world.is_main:
        return None
    config = OmegaConf.to_container(cfg, resolve=True)
    return RunLogger(run_dir, cfg.logger.backend, config=config, resume=resume)


def _start_from(model: torch.nn.Module, path: str, device: torch.device) -> None:
    """Load the weights of checkpoint ``path`` into ``model`` (its EMA weights where it kept
    them, as evaluation does); a :class:`CheckpointError` where they do not fit."""
    if not Path(path).is_file():
        raise CheckpointError(f"init={path}: no such checkpoint file")
    checkpoint = load_checkpoint(path, map_location=device)
    if "model" not in checkpoint:
        raise CheckpointError(f"init={path}: no 'model' entry; not a training checkpoint")
    model_of = (
        "this run's config builds (weights carry over between models of the same shapes: the "
        "same model settings and number of values; a maze of another size fits)"
    )
    load_weights(model, checkpoint.get("ema") or checkpoint["model"], f"init={path}", model_of)
    log.info("started from the weights of %s", path)


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
    """Hydra entry point: train, and turn a diverging loss or a checkpoint that cannot be resumed
    into a one-line error (exit code 1)."""
    logging.getLogger("torchrl").setLevel(logging.WARNING)  # one INFO line per PPO update
    try:
        train(cfg)
    except NonFiniteLossError as error:
        print(f"hrm_rl.train: stopped: {error}", file=sys.stderr)
        sys.exit(1)
    except CheckpointError as error:
        print(f"hrm_rl.train: stopped: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    register_hydra_configs()  # env configs of families (plugins too) that ship no YAML file
    main()
