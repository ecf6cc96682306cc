"""From a run's config to the objects a run needs: rules, curriculum, held-out puzzles, model,
agent, and a trained policy back from its checkpoint.

``hrm_rl.train``, ``hrm_rl.evaluate`` and ``hrm_rl.bench`` all build through here, so no entry
point imports another and the three agree on what a config means.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from hrm_rl.agents.policy import HRMPolicy
from hrm_rl.agents.ppo import PPOAgent, PPOConfig
from hrm_rl.agents.supervised import SupervisedAgent, SupervisedConfig
from hrm_rl.checkpoint import CheckpointError, load_checkpoint, load_weights
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.curriculum import Curriculum
from hrm_rl.envs.registration import rules_from_config
from hrm_rl.envs.splits import canonical_key
from hrm_rl.envs.transition import MAX_SEGMENTS, SHAPING
from hrm_rl.models import HRM, HRMConfig

log = logging.getLogger(__name__)

# The held-out bank does not depend on `seed`, so that runs of different seeds compare.
HELD_OUT_SEED = 20_240_917
# The validation bank (eval.validation_puzzles): the same split and difficulty, other instances
VALIDATION_SEED = 20_241_203
AGENTS = ("ppo", "supervised")  # agent.name


def agent_name(agent_cfg: DictConfig) -> str:
    """``agent.name``: ``ppo`` (also for configs written before the key existed) or
    ``supervised``."""
    name = agent_cfg.get("name", "ppo")
    if name not in AGENTS:
        raise ValueError(f"agent.name must be one of {AGENTS}, got {name!r}")
    return name


def env_options(env_cfg: DictConfig) -> dict:
    """The env config's action mode, rewards and grid-mode knobs, as ``BatchedPuzzleEnv``
    keyword arguments (configs saved before ``shaping`` and ``max_segments`` existed get the
    defaults)."""
    return {
        "action_mode": env_cfg.action_mode,
        "solve_bonus": env_cfg.solve_bonus,
        "mistake_reward": env_cfg.mistake_reward,
        "shaping": env_cfg.get("shaping", SHAPING),
        "max_segments": env_cfg.get("max_segments", MAX_SEGMENTS),
    }


def generator_options(env_cfg: DictConfig) -> dict:
    """``env.generate`` (the family generator's keyword arguments), plus ``givens`` when set."""
    generate = env_cfg.get("generate")
    options = {} if generate is None else dict(OmegaConf.to_container(generate, resolve=True))
    if env_cfg.get("givens") is not None:
        options["givens"] = tuple(env_cfg.givens)
    return options


def make_curriculum(rules: PuzzleRules, env_cfg: DictConfig, seed: int) -> Curriculum:
    """The training bank's curriculum; ``env.givens`` pins one difficulty (curriculum off only)."""
    options = env_cfg.curriculum
    mode, levels, fixed_level = options.mode, None, options.level
    extra = options.get("extra_levels")
    extra = [] if not extra else OmegaConf.to_container(extra, resolve=True)
    if not all(isinstance(level, dict) for level in extra):
        raise ValueError(
            "env.curriculum.extra_levels must be a list of generator keyword arguments "
            f"(e.g. [{{difficulty: search}}]), got {extra}"
        )
    if extra and (mode == "off" or env_cfg.givens is not None):
        log.info("env.curriculum.extra_levels %s unused: one difficulty, no levels", extra)
    elif extra:
        levels = list(rules.difficulty_levels()) + extra
    if env_cfg.givens is not None:
        if mode != "off":
            raise ValueError(
                f"env.givens={list(env_cfg.givens)} sets one difficulty, but "
                f"env.curriculum.mode={mode}; use env.curriculum.mode=off with env.givens, or "
                "env.givens=null to let the curriculum choose the givens"
            )
        mode, levels, fixed_level = "fixed", [{"givens": tuple(env_cfg.givens)}], 0
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
        stuck_share=options.get("stuck_share", 0.0),
    )


def _changed_env(env_cfg: DictConfig, changes: dict[str, str], path: str | Path) -> DictConfig:
    """The checkpoint's env config with ``changes`` (key: value as text, parsed as YAML)."""
    unknown = sorted(key.split(".")[0] for key in changes if key.split(".")[0] not in env_cfg)
    if unknown:
        raise ValueError(
            f"env.{unknown[0]}: not a key of the env config {path} was trained with "
            f"(keys: {', '.join(str(key) for key in env_cfg)})"
        )
    if "family" in changes:
        raise ValueError("env.family cannot change: the weights belong to one puzzle family")
    dotlist = [f"{key}={value}" for key, value in changes.items()]
    return OmegaConf.merge(env_cfg, OmegaConf.from_dotlist(dotlist))


def held_out_puzzles(rules: PuzzleRules, env_cfg: DictConfig, count: int) -> PuzzleSet:
    """The held-out split: seed-independent, at the env's difficulty (``givens`` or default)."""
    return rules.generate(
        np.random.default_rng(HELD_OUT_SEED), count, held_out=True, **generator_options(env_cfg)
    )


def validation_puzzles(
    rules: PuzzleRules, env_cfg: DictConfig, count: int, held_out: PuzzleSet
) -> PuzzleSet:
    """``count`` puzzles for choosing among checkpoints: from the held-out split (so never
    trained on) at the held-out bank's difficulty, seed-independent, and none of them in
    ``held_out`` itself (not even relabelled) nor twice, so the held-out rate of a checkpoint
    chosen on them stays an unbiased test."""
    if count < 1:
        raise ValueError(f"eval.validation_puzzles must be at least 1 (or null), got {count}")
    taken = {canonical_key(board) for board in held_out.boards}
    rng = np.random.default_rng(VALIDATION_SEED)
    options = generator_options(env_cfg)
    kept, tries = [], 0
    while sum(len(part) for part in kept) < count:
        tries += 1
        if tries > 20:
            raise ValueError(
                f"could not draw {count} validation puzzles outside the held-out bank in 20 "
                "rounds: the generator repeats itself at this difficulty; lower "
                "eval.validation_puzzles"
            )
        batch = rules.generate(rng, count, held_out=True, **options)
        fresh = []
        for i, board in enumerate(batch.boards):
            key = canonical_key(board)
            if key not in taken:  # nor a repeat within the validation bank
                taken.add(key)
                fresh.append(i)
        kept.append(batch.subset(np.asarray(fresh, dtype=np.int64)))
    return PuzzleSet.concatenate(kept).subset(np.arange(count))


def build_model(rules: PuzzleRules, model_cfg: DictConfig, device: torch.device) -> HRM:
    """The HRM the ``model`` config describes, sized for the rules' board."""
    options = OmegaConf.to_container(model_cfg, resolve=True)
    if options.pop("extra", None):  # a key of older configs that nothing ever read
        raise ValueError(f"model.extra is not an HRM option (got {model_cfg.extra})")
    config = HRMConfig(num_positions=rules.num_positions, num_values=rules.num_values, **options)
    return HRM(config, graph=rules.constraint_graph(), grid_shape=rules.grid_shape).to(device)


def build_agent(
    cfg: DictConfig, model: HRM, rules: PuzzleRules, world_size: int = 1
) -> tuple[PPOAgent | SupervisedAgent, int]:
    """The ``agent`` config's learner around ``model``, and the frames one of its updates plays
    on one rank (PPO: ``batch_size × rollout``; supervised: ``batch_size × segments`` at most).
    With ``total_frames`` set and no ``agent.total_iterations``, the cosine schedule spans the
    run's iterations over all ``world_size`` ranks."""
    kind = agent_name(cfg.agent)
    options = OmegaConf.to_container(cfg.agent, resolve=True)
    options.pop("name", None)
    options["betas"] = tuple(options["betas"])
    per_puzzle = options.get("segments", 1) if kind == "supervised" else cfg.rollout
    frames_per_batch = cfg.batch_size * per_puzzle
    if options["total_iterations"] is None and cfg.total_frames is not None:
        options["total_iterations"] = max(1, cfg.total_frames // (frames_per_batch * world_size))
    if kind == "supervised":
        return SupervisedAgent(model, rules, SupervisedConfig(**options)), frames_per_batch
    return PPOAgent(model, PPOConfig(**options), rules.target_board), frames_per_batch


WEIGHTS = ("auto", "ema", "model")


def load_policy(
    path: str | Path,
    device: torch.device,
    weights: str = "auto",
    env: dict[str, str] | None = None,
) -> tuple[DictConfig, PuzzleRules, HRM, torch.nn.Module | None]:
    """Config, rules, model and greedy-capable actor (None for a supervised checkpoint, which
    plays whole-board proposals without an env). ``weights``: ``auto`` loads the EMA weights when
    the run kept them (``agent.ema_decay``) and the trained ones otherwise; ``ema`` or ``model``
    asks for one of them. ``env``: keys of the checkpoint's env config to change, as text
    (``{"size": "[30,30]"}``), e.g. to play the weights on a larger board of the same family;
    it works where no weight depends on the board (mazes: yes; Sudoku of another box size: no,
    the values differ), and is a :class:`CheckpointError` naming the first misfit otherwise."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path}: no such checkpoint file; pass checkpoint=PATH to the checkpoint.pt a "
            "training run wrote (its path is the last line python -m hrm_rl.train prints)"
        )
    checkpoint = load_checkpoint(path, map_location=device)
    if "config" not in checkpoint or "model" not in checkpoint:
        raise CheckpointError(f"{path}: no 'config' or 'model' entry; not a training checkpoint")
    cfg = OmegaConf.create(checkpoint["config"])
    if env:
        cfg.env = _changed_env(cfg.env, env, path)
    rules = rules_from_config(cfg.env)
    model = build_model(rules, cfg.model, device)
    if weights == "ema" and not checkpoint.get("ema"):
        raise CheckpointError(
            f"{path}: weights=ema, but this run kept no EMA weights (agent.ema_decay was null); "
            "use weights=model or weights=auto"
        )
    chosen = checkpoint["model"] if weights == "model" else checkpoint.get("ema")
    changed = " ".join(f"env.{key}={value}" for key, value in (env or {}).items())
    model_of = (
        f"of the env with {changed} (only a change that leaves every weight's shape alone can "
        "reuse them: a maze of another size can, a Sudoku of another box size cannot)"
    )
    load_weights(model, chosen or checkpoint["model"], path, model_of if env else None)
    model.eval()
    if agent_name(cfg.agent) == "supervised":
        return cfg, rules, model, None
    actor = HRMPolicy(model, OmegaConf.select(cfg, "agent.precision", default="auto"))
    return cfg, rules, model, actor
