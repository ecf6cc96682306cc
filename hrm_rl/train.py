"""Train an HRM with PPO on a puzzle family: ``python -m hrm_rl.train [group=choice] [key=value]``.

The whole run is :func:`train`, read top to bottom: build (rules, curriculum bank, held-out bank,
env, model, agent, collector) → loop over collected ``[B, T]`` batches: PPO update → curriculum →
log → greedy held-out evaluation every ``eval.every`` frames → checkpoint every
``checkpoint.every`` frames → at the end a final evaluation and checkpoint, the summary table,
``learning_curves.png``, and the checkpoint's absolute path as the last line of stdout.

Configs live in ``hrm_rl/configs`` (``config.yaml`` plus the groups agent, env, model, logger);
files go to the Hydra run dir (``outputs/<date>/<time>`` under the current folder by default).
``resume=PATH`` continues the run of a ``checkpoint.pt`` in its own folder: its stored config, with
every key or group named on this command line taking this command line's value.
"""

from __future__ import annotations

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
from hrm_rl.agents.policy import build_actor, carry_transforms
from hrm_rl.agents.ppo import NonFiniteLossError, PPOAgent, PPOConfig
from hrm_rl.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.curriculum import Curriculum
from hrm_rl.envs.registration import register_hydra_configs, rules_from_config
from hrm_rl.models import HRM, HRMConfig
from hrm_rl.run_logging import RunLogger

log = logging.getLogger("hrm_rl.train")

CHECKPOINT_FILE = "checkpoint.pt"
CURVES_FILE = "learning_curves.png"
# time_budget.clock: elapsed time, or this process's CPU time (all threads together)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
# The held-out bank does not depend on `seed`, so that runs of different seeds compare.
HELD_OUT_SEED = 20_240_917
CURVE_KEYS = [
    "train/solve_rate",
    "eval/solve_rate",
    "curriculum/level",
    "ppo/loss_objective",
    "ppo/entropy",
    "ppo/lr",
]


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
    if cfg.time_budget.clock not in CLOCKS:
        raise ValueError(
            f"time_budget.clock must be one of {sorted(CLOCKS)}, got {cfg.time_budget.clock!r}"
        )
    clock, clock_start = CLOCKS[cfg.time_budget.clock], clock_starts[cfg.time_budget.clock]
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    )
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # --- puzzles: the training bank (curriculum level) and the held-out evaluation bank --------
    rules = rules_from_config(cfg.env)
    curriculum = make_curriculum(rules, cfg.env, cfg.seed)
    if checkpoint is not None:
        curriculum.load_state_dict(checkpoint["curriculum"])
    held_out = held_out_puzzles(rules, cfg.env, cfg.eval.num_puzzles)

    # --- model, agent, env, collector -----------------------------------------------------------
    model = build_model(rules, cfg.model, device)
    frames_per_batch = cfg.batch_size * cfg.rollout
    agent_options = OmegaConf.to_container(cfg.agent, resolve=True)
    agent_options["betas"] = tuple(agent_options["betas"])
    if agent_options["total_iterations"] is None:  # the cosine schedule spans the whole run
        agent_options["total_iterations"] = max(1, cfg.total_frames // frames_per_batch)
    agent = PPOAgent(model, PPOConfig(**agent_options)).to(device)
    env = TransformedEnv(
        BatchedPuzzleEnv(
            rules,
            curriculum.bank(),
            cfg.batch_size,
            device=device,
            seed=cfg.seed,
            augment=cfg.env.augment,
            **env_options(cfg.env),
        ),
        carry_transforms(model, device),
    )
    # Greedy evaluation plays the EMA weights when the agent keeps them.
    eval_model = agent.model if agent.ema is None else agent.ema
    eval_actor = (
        agent.actor if agent.ema is None else build_actor(agent.ema, agent.config.precision)[0]
    )
    collector = Collector(
        env,
        agent.actor,
        frames_per_batch=frames_per_batch,
        total_frames=-1,  # endless: the loop below stops at cfg.total_frames
        auto_register_policy_transforms=False,
    )

    frames, spent = 0, 0.0  # spent: seconds of the time budget's clock used by earlier sessions
    if checkpoint is not None:
        agent.model.load_state_dict(checkpoint["model"])
        agent.optimizer.load_state_dict(checkpoint["optimizer"])
        agent.scheduler.load_state_dict(checkpoint["scheduler"])
        if agent.ema is not None:
            agent.ema.load_state_dict(checkpoint["ema"] or checkpoint["model"])
        agent.iteration = checkpoint["iteration"]
        frames = checkpoint["frames"]
        spent = checkpoint.get("spent_seconds", 0.0)
        restore_rng_state(checkpoint["rng"], {"env": env.base_env._generator})
        # continue the very episodes the checkpoint saw: env internals and the collector's carrier
        # (its root tensordict with the carry; torchrl 0.14 keeps it in `Collector._carrier`)
        env.base_env.load_episode_state(checkpoint["episodes"])
        collector._carrier.update(
            {
                tuple(key.split("/")): value.to(device)
                for key, value in checkpoint["carrier"].items()
            }
        )
        log.info("resumed %s at %d frames, iteration %d", cfg.resume, frames, agent.iteration)

    logger = RunLogger(
        run_dir,
        cfg.logger.backend,
        config=OmegaConf.to_container(cfg, resolve=True),
        resume=checkpoint is not None,
    )
    log.info(
        "run dir %s | %s on %s | model %.2fM parameters | %d frames per batch (B=%d, T=%d)",
        run_dir,
        rules,
        device,
        model.num_parameters() / 1e6,
        frames_per_batch,
        cfg.batch_size,
        cfg.rollout,
    )

    def used_seconds() -> float:
        return spent + clock() - clock_start

    def save() -> Path:
        """Everything a resume needs, written atomically to run_dir/checkpoint.pt."""
        state = {
            "model": agent.model.state_dict(),
            "optimizer": agent.optimizer.state_dict(),
            "scheduler": agent.scheduler.state_dict(),
            "ema": None if agent.ema is None else agent.ema.state_dict(),
            "rng": capture_rng_state({"env": env.base_env._generator}),
            "frames": frames,
            "spent_seconds": used_seconds(),
            "iteration": agent.iteration,
            "curriculum": curriculum.state_dict(),
            "config": OmegaConf.to_yaml(cfg, resolve=True),
            "episodes": env.base_env.episode_state(),
            "carrier": {
                "/".join(key) if isinstance(key, tuple) else key: value.detach().cpu()
                for key, value in collector._carrier.items(include_nested=True, leaves_only=True)
                if (key[0] if isinstance(key, tuple) else key) != "collector"
            },
        }
        return save_checkpoint(run_dir / CHECKPOINT_FILE, state).resolve()

    # --- the loop: collect → update → curriculum → log → eval → checkpoint ----------------------
    batches = iter(collector)
    progress = tqdm(total=cfg.total_frames, initial=frames, unit="frame", dynamic_ncols=True)
    start, start_frames = time.perf_counter(), frames
    last_eval = last_checkpoint = None
    budget = None if cfg.time_budget.minutes is None else 60.0 * cfg.time_budget.minutes
    try:
        while frames < cfg.total_frames:
            if budget is not None and used_seconds() >= budget:
                log.warning(
                    "time budget of %s %s minutes used up at %d frames",
                    cfg.time_budget.minutes,
                    cfg.time_budget.clock,
                    frames,
                )
                break
            data = next(batches)  # [B, T]
            frames += data.numel()
            update = agent.update(data)

            finished = data["next", "done"].squeeze(-1)  # [B, T]
            solved = data["next", "solved"].squeeze(-1)[finished]
            if curriculum.update(solved):
                env.base_env.set_bank(curriculum.bank())  # running episodes finish on the old bank

            fps = (frames - start_frames) / (time.perf_counter() - start)
            solve_rate = solved.float().mean().item() if solved.numel() else float("nan")
            metrics = {
                "frames": frames,
                "iteration": agent.iteration,
                "fps": fps,
                "train/solve_rate": solve_rate,
                "train/episodes": solved.numel(),
                **{f"ppo/{key}": value for key, value in update.items()},
                **curriculum.metrics(),
            }
            if crossed(frames, frames_per_batch, cfg.eval.every):
                metrics.update(evaluate(eval_actor, eval_model, rules, held_out, cfg.env, device))
                last_eval = frames
            logger.log(metrics, step=frames)
            if crossed(frames, frames_per_batch, cfg.checkpoint.every):
                save()
                last_checkpoint = frames

            progress.update(data.numel())
            loss = sum(update.get(key, 0.0) for key in ("loss_objective", "loss_critic"))
            progress.set_postfix(
                fps=f"{fps:.0f}",
                solve=f"{solve_rate:.2f}",
                loss=f"{loss:.3f}",
                level=curriculum.level,
            )

        if last_eval != frames:
            final = evaluate(eval_actor, eval_model, rules, held_out, cfg.env, device)
            logger.log(final, step=frames)
        path = save() if last_checkpoint != frames else (run_dir / CHECKPOINT_FILE).resolve()
    finally:
        progress.close()
        collector.shutdown()
        logger.close()

    print(logger.summary_table())
    logger.plot_curves(run_dir / CURVES_FILE, CURVE_KEYS)
    print(path)
    return path


def crossed(frames: int, step: int, every: int) -> bool:
    """Whether the last ``step`` frames, ending at ``frames``, passed a multiple of ``every``."""
    return every > 0 and frames // every > (frames - step) // every


def make_curriculum(rules: PuzzleRules, env_cfg: DictConfig, seed: int) -> Curriculum:
    """The training bank's curriculum; ``env.givens`` pins one difficulty (curriculum off only)."""
    options = env_cfg.curriculum
    mode, levels, fixed_level = options.mode, None, options.level
    if env_cfg.givens is not None:
        if mode != "off":
            raise ValueError(
                f"env.givens={list(env_cfg.givens)} sets one difficulty, but "
                f"env.curriculum.mode={mode}; use env.curriculum.mode=off with env.givens, or "
                "env.givens=null to let the curriculum choose the givens"
            )
        mode, levels, fixed_level = "fixed", [tuple(env_cfg.givens)], 0
    return Curriculum(
        rules,
        mode,
        levels=levels,
        fixed_level=fixed_level,
        threshold=options.threshold,
        window=options.window,
        bank_size=env_cfg.bank_size,
        seed=seed,
        generator_options={k: v for k, v in generator_options(env_cfg).items() if k != "givens"},
    )


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


def env_options(env_cfg: DictConfig) -> dict:
    """The env config's action mode and rewards, as ``BatchedPuzzleEnv`` keyword arguments."""
    return {
        "action_mode": env_cfg.action_mode,
        "solve_bonus": env_cfg.solve_bonus,
        "mistake_reward": env_cfg.mistake_reward,
    }


def build_model(rules: PuzzleRules, model_cfg: DictConfig, device: torch.device) -> HRM:
    """The HRM the ``model`` config describes, sized for the rules' board."""
    options = OmegaConf.to_container(model_cfg, resolve=True)
    config = HRMConfig(num_positions=rules.num_positions, num_values=rules.num_values, **options)
    return HRM(config).to(device)


def held_out_puzzles(rules: PuzzleRules, env_cfg: DictConfig, count: int) -> PuzzleSet:
    """The held-out split: seed-independent, at the env's difficulty (``givens`` or default)."""
    return rules.generate(
        np.random.default_rng(HELD_OUT_SEED), count, held_out=True, **generator_options(env_cfg)
    )


def generator_options(env_cfg: DictConfig) -> dict:
    """``env.generate`` (the family generator's keyword arguments), plus ``givens`` when set."""
    generate = env_cfg.get("generate")
    options = {} if generate is None else dict(OmegaConf.to_container(generate, resolve=True))
    if env_cfg.get("givens") is not None:
        options["givens"] = tuple(env_cfg.givens)
    return options


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
