"""Side-by-side comparison: every contender trained for the same wall-clock budget, then judged.

``python -m hrm_rl.bench compare --env sudoku4x4 --budget-minutes 3 --out docs/results/x.json``
trains the contenders one after another (so they share the machine fairly), each in a fresh
process with the same seed and the same env config, and evaluates each on the same held-out split
(the one training evaluates on: ``hrm_rl.build.held_out_puzzles``). Our agents run
``python -m hrm_rl.train ... time_budget.minutes=B`` (setup and periodic evaluations count toward
the budget) and then ``python -m hrm_rl.evaluate`` on the final checkpoint; the generic-library
contender is :func:`hrm_rl.bench.sb3.run_maskable_ppo` on the Gymnasium env, with the same budget
and the same training bank.

``--seeds N`` trains each contender N times, with seeds ``--seed`` .. ``--seed + N - 1`` (seed 0
of every contender first, then seed 1, ...). ``--eval FILE ...`` also judges each final checkpoint
greedily (pass@1) on puzzle files, read with the env's own reader: ``python -m hrm_rl.evaluate
data=FILE attempts=1`` for our agents, the same play as the held-out split for MaskablePPO. The
files are read before any training, so one that is missing or does not fit the env's board stops
the comparison at once.

The result is a JSON file at ``--out`` with one row per contender (parameters, frames seen, held-out
greedy solve rate = pass@1, pass@K, exact match, mistakes, pass@1 per --eval file, and the
solve-rate-against-time curve; with several seeds, median, min and max of each number and every
seed's row: :func:`hrm_rl.bench.compare_report.summarize`), a Markdown table beside it (``.md``)
and a PNG of the curves (``.png``). Each run's row is also kept in
``<out>_runs/<contender>/seed<k>/row.json`` with the settings it ran under; ``--keep`` reuses such
rows made under the same settings (also those of single-seed comparisons made before ``--seeds``,
in ``<out>_runs/<contender>/row.json``) and runs only the missing (contender, seed) pairs, so a
long comparison can be split over several sittings.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from hrm_rl.bench.compare_report import summarize
from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.registration import rules_from_config

log = logging.getLogger(__name__)

# name -> (label, overrides of python -m hrm_rl.train); "sb3_maskable_ppo" runs in this process
CONTENDERS: dict[str, tuple[str, list[str]]] = {
    "ppo_multicell": ("PPO + multicell memory (ours)", ["agent=ppo", "model.h_module=multicell"]),
    "ppo_multicell_uniform": (
        "PPO + multicell, cells drawn uniformly (ablation)",
        ["agent=ppo", "model.h_module=multicell", "model.cell_choice=uniform"],
    ),
    "ppo_multicell_topk": (
        "PPO + multicell, top-k cells by score (ablation)",
        ["agent=ppo", "model.h_module=multicell", "model.cell_choice=topk"],
    ),
    "ppo_bicross": ("PPO + bicross memory", ["agent=ppo", "model.h_module=bicross"]),
    "ppo_hrm": ("PPO + HRM, no memory", ["agent=ppo", "model.h_module=hrm"]),
    "supervised_one_step": (
        "supervised HRM, one-step gradient (HRM-style)",
        ["agent=supervised", "env.action_mode=grid", "model.h_module=hrm", "model.grad=one_step"],
    ),
    "supervised_last_cycle": (
        "supervised HRM, last-cycle gradient (TRM-style)",
        ["agent=supervised", "env.action_mode=grid", "model.h_module=hrm", "model.grad=last_cycle"],
    ),
    "sb3_maskable_ppo": ("sb3-contrib MaskablePPO, default MlpPolicy", []),
}
CURVE_POINTS = 6  # periodic held-out evaluations per contender, spread over the budget
ROW_FILE = "row.json"  # a contender's result and the settings it ran under, in its run folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="env config name (sudoku4x4, sudoku6x6, ...)")
    parser.add_argument(
        "--budget-minutes", type=float, required=True, help="wall-clock minutes per contender"
    )
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=list(CONTENDERS),
        default=list(CONTENDERS),
        help="which contenders to run, in this order (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the (first) seed of every contender")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="runs per contender, seeded --seed, --seed+1, ...; reported as median (min–max)",
    )
    parser.add_argument("--attempts", type=int, default=8, help="K of pass@K")
    parser.add_argument("--num-puzzles", type=int, default=500, help="held-out puzzles")
    parser.add_argument(
        "--eval",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="puzzle files to judge every final checkpoint on as well (greedy pass@1), e.g. "
        "../shared/data/easy50.txt; one column each, named by the file's stem",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra overrides for every contender, e.g. env.givens=[31,41] batch_size=128",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="reuse the rows of runs already made with these settings (<out>_runs/*/*/row.json)",
    )


def run(args: argparse.Namespace) -> dict:
    """Train and evaluate every chosen contender on every seed; returns the results (see the
    module doc)."""
    if args.budget_minutes <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    if args.out is None:
        raise ValueError("compare needs --out PATH (the JSON file; .md and .png go beside it)")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    runs_dir = args.out.with_suffix("")  # docs/results/x.json -> docs/results/x_runs/<contender>
    runs_dir = runs_dir.parent / f"{runs_dir.name}_runs"
    seeds = list(range(args.seed, args.seed + args.seeds))
    extra = read_eval_files(args.eval, args.env, args.set)  # before any training
    settings = {seed: run_settings(args, seed) for seed in seeds}
    kept = (
        {
            (name, seed): _kept_row(runs_dir / name, settings[seed])
            for name in args.contenders
            for seed in seeds
        }
        if args.keep
        else {}
    )
    runs: dict[str, list[dict]] = {name: [] for name in args.contenders}
    for seed in seeds:  # seed 0 of every contender first, so a stopped comparison still compares
        for name in args.contenders:
            row = kept.get((name, seed))
            if row is not None:
                log.warning("compare: %s, seed %d, kept", name, seed)
            else:
                run_dir = runs_dir / name / f"seed{seed}"
                row = run_contender(name, seed, run_dir, args, extra)
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / ROW_FILE).write_text(
                    json.dumps({"settings": settings[seed], "row": row}, indent=2) + "\n"
                )
            runs[name].append(row)
    return {
        "env": args.env,
        "overrides": args.set,
        "budget_minutes": args.budget_minutes,
        "seeds": seeds,
        "attempts": args.attempts,
        "held_out_puzzles": args.num_puzzles,
        "eval": [str(path) for path in args.eval],
        "contenders": [summarize(runs[name], args.attempts) for name in args.contenders],
    }


def run_settings(args: argparse.Namespace, seed: int) -> dict:
    """What a run's numbers depend on besides its contender; ``--keep`` reuses a row only when
    these are equal."""
    settings = {
        "env": args.env,
        "overrides": args.set,
        "budget_minutes": args.budget_minutes,
        "seed": seed,
        "attempts": args.attempts,
        "held_out_puzzles": args.num_puzzles,
    }
    if args.eval:  # absent without --eval, as in the rows made before it
        settings["eval"] = [str(path) for path in args.eval]
    return settings


def read_eval_files(paths: list[Path], env: str, overrides: list[str]) -> dict[str, PuzzleSet]:
    """The ``--eval`` files by stem, read with the env's own reader; a missing file, one whose
    puzzles do not fit the env's board, or two files with one stem is an error, raised here
    before any training."""
    if not paths:
        return {}
    rules = rules_from_config(_compose([f"env={env}", *overrides]).env)
    puzzles: dict[str, PuzzleSet] = {}
    for path in paths:
        if path.stem in puzzles:
            raise ValueError(
                f"--eval: two files have the stem {path.stem!r}, which names a column of the "
                f"table; copy {path} under another name"
            )
        try:
            puzzles[path.stem] = rules.read(str(path))
        except FileNotFoundError as error:
            raise FileNotFoundError(f"--eval: {error}") from error
        except ValueError as error:
            raise ValueError(f"--eval: {error} (env {env!r} plays {rules!r})") from error
    return puzzles


def run_contender(
    name: str, seed: int, run_dir: Path, args: argparse.Namespace, extra: dict[str, PuzzleSet]
) -> dict:
    """Train one contender with one seed and judge it; its row (see the module doc)."""
    label, overrides = CONTENDERS[name]
    log.warning("compare: %s, seed %d, for %.1f minutes", name, seed, args.budget_minutes)
    common = [
        f"env={args.env}",
        f"seed={seed}",
        f"eval.num_puzzles={args.num_puzzles}",
        *args.set,
    ]
    if name == "sb3_maskable_ppo":
        row = run_sb3(common, args, seed, extra)
    else:
        row = run_ours(run_dir, [*common, *overrides], args, seed)
    return {"contender": name, "label": label, "seed": seed, **row}


def run_ours(run_dir: Path, overrides: list[str], args: argparse.Namespace, seed: int) -> dict:
    """``python -m hrm_rl.train`` for the budget, then ``python -m hrm_rl.evaluate`` on the
    held-out split and on each ``--eval`` file."""
    train = [
        sys.executable,
        "-m",
        "hrm_rl.train",
        *overrides,
        "logger=csv",
        f"time_budget.minutes={args.budget_minutes}",
        "time_budget.clock=wall",
        "total_frames=null",  # the budget stops the run, and the learning rate follows it
        "agent.total_iterations=null",
        "eval.every=0",
        f"eval.minutes={args.budget_minutes / CURVE_POINTS}",
        "checkpoint.every=0",
        f"hydra.run.dir={run_dir}",
    ]
    started = time.perf_counter()
    checkpoint = Path(_run(train).strip().splitlines()[-1])
    seconds = time.perf_counter() - started
    report = _evaluate_checkpoint(
        checkpoint,
        run_dir / "eval_heldout.json",
        [f"num_puzzles={args.num_puzzles}", f"attempts={args.attempts}", f"seed={seed}"],
    )
    row = {
        "parameters": _parameters(checkpoint),
        "frames": _last(run_dir, "frames"),
        "seconds": seconds,
        "pass@1": report["pass@1"],
        f"pass@{args.attempts}": report[f"pass@{args.attempts}"],
        "exact_match": report["exact_match"],
        "mistakes": report["mistakes"],
        "curve": _curve(run_dir),
        "command": " ".join(["python", *train[1:]]),
        "run_dir": str(run_dir),
    }
    if args.eval:
        row["eval"] = {}
        for path in args.eval:
            report = _evaluate_checkpoint(
                checkpoint, run_dir / f"eval_{path.stem}.json", [f"data={path}", "attempts=1"]
            )
            row["eval"][path.stem] = {"pass@1": report["pass@1"], "puzzles": report["puzzles"]}
    return row


def run_sb3(
    common: list[str], args: argparse.Namespace, seed: int, extra: dict[str, PuzzleSet]
) -> dict:
    """MaskablePPO on the same training bank and held-out split as our agents."""
    from hrm_rl.bench.sb3 import run_maskable_ppo
    from hrm_rl.build import env_options, held_out_puzzles, make_curriculum

    cfg = _compose(common)
    rules = rules_from_config(cfg.env)
    options = env_options(cfg.env)
    result = run_maskable_ppo(
        rules,
        make_curriculum(rules, cfg.env, cfg.seed).bank(),
        held_out_puzzles(rules, cfg.env, args.num_puzzles),
        budget_seconds=60.0 * args.budget_minutes,
        seed=seed,
        attempts=args.attempts,
        curve_points=CURVE_POINTS,
        env_options={key: options[key] for key in ("solve_bonus", "mistake_reward")},
        extra_eval=extra or None,
    )
    result.pop("contender", None)
    return result


def _kept_row(contender_dir: Path, settings: dict) -> dict | None:
    """The row of this contender saved under ``settings["seed"]`` (None if there is none); an
    error when it was made under other settings, which would not compare.

    A row is looked for in ``seed<k>/row.json``, then in the contender folder itself, where
    single-seed comparisons made before ``--seeds`` kept theirs (used only when its seed is k).
    """
    seed = settings["seed"]
    for path in (contender_dir / f"seed{seed}" / ROW_FILE, contender_dir / ROW_FILE):
        if not path.is_file():
            continue
        saved = json.loads(path.read_text())
        if saved["settings"].get("seed") != seed:
            continue
        if saved["settings"] != settings:
            raise ValueError(
                f"--keep: {path} was run with {saved['settings']}, not {settings}; run it again "
                "without --keep or delete that file"
            )
        return {**saved["row"], "seed": seed}  # rows made before --seeds do not name it
    return None


def _evaluate_checkpoint(checkpoint: Path, out: Path, options: list[str]) -> dict:
    """``python -m hrm_rl.evaluate checkpoint=... out=... *options``; the report it wrote."""
    evaluate = [
        sys.executable,
        "-m",
        "hrm_rl.evaluate",
        f"checkpoint={checkpoint}",
        *options,
        f"out={out}",
    ]
    return json.loads(Path(_run(evaluate).strip().splitlines()[-1]).read_text())


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_module

    from hrm_rl.envs.registration import register_hydra_configs

    register_hydra_configs()
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        return compose("config", overrides=overrides)


def _run(command: list[str]) -> str:
    """Run a subprocess with W&B off; its stdout, or a RuntimeError with its stderr's tail."""
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:4])} ... failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _parameters(checkpoint: Path) -> int:
    import torch

    from hrm_rl.build import load_policy

    _, _, model, _ = load_policy(checkpoint, torch.device("cpu"))
    return model.num_parameters()


def _metric_rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _last(run_dir: Path, key: str) -> int:
    values = [float(row["value"]) for row in _metric_rows(run_dir) if row["key"] == key]
    return int(values[-1]) if values else 0


def _curve(run_dir: Path) -> list[dict]:
    """(seconds, frames, held-out greedy solve rate) at every evaluation of the run."""
    by_step: dict[int, dict] = {}
    for row in _metric_rows(run_dir):
        if row["key"] in ("eval/solve_rate", "time/seconds"):
            by_step.setdefault(int(row["step"]), {})[row["key"]] = float(row["value"])
    return [
        {"seconds": values["time/seconds"], "frames": step, "solve_rate": values["eval/solve_rate"]}
        for step, values in sorted(by_step.items())
        if "eval/solve_rate" in values and "time/seconds" in values
    ]
