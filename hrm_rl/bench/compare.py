"""Side-by-side comparison: every contender trained for the same wall-clock budget, then judged.

``python -m hrm_rl.bench compare --env sudoku4x4 --budget-minutes 3 --out docs/results/x.json``
trains the contenders one after another (so they share the machine fairly), each in a fresh
process with the same seed and the same env config, and evaluates each on the same held-out split
(the one training evaluates on: ``hrm_rl.train.held_out_puzzles``). Our agents run
``python -m hrm_rl.train ... time_budget.minutes=B`` (setup and periodic evaluations count toward
the budget) and then ``python -m hrm_rl.evaluate`` on the final checkpoint; the generic-library
contender is :func:`hrm_rl.bench.sb3.run_maskable_ppo` on the Gymnasium env, with the same budget
and the same training bank.

The result is a JSON file at ``--out`` with one row per contender (parameters, frames seen, held-out
greedy solve rate = pass@1, pass@K, exact match, mistakes, and the solve-rate-against-time curve),
a Markdown table beside it (``.md``) and a PNG of the curves (``.png``). Each contender's row is
also kept in ``<out>_runs/<contender>/row.json`` with the settings it ran under; ``--keep`` reuses
such rows made under the same settings and runs only the missing contenders, so a long comparison
can be split over several sittings.
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

log = logging.getLogger(__name__)

# name -> (label, overrides of python -m hrm_rl.train); "sb3_maskable_ppo" runs in this process
CONTENDERS: dict[str, tuple[str, list[str]]] = {
    "ppo_multicell": ("PPO + multicell memory (ours)", ["agent=ppo", "model.h_module=multicell"]),
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
    parser.add_argument("--seed", type=int, default=0, help="the seed of every contender")
    parser.add_argument("--attempts", type=int, default=8, help="K of pass@K")
    parser.add_argument("--num-puzzles", type=int, default=500, help="held-out puzzles")
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
        help="reuse the rows of contenders already run with these settings (<out>_runs/*/row.json)",
    )


def run(args: argparse.Namespace) -> dict:
    """Train and evaluate every chosen contender; returns the results (see the module doc)."""
    if args.budget_minutes <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    if args.out is None:
        raise ValueError("compare needs --out PATH (the JSON file; .md and .png go beside it)")
    runs_dir = args.out.with_suffix("")  # docs/results/x.json -> docs/results/x/<contender>
    runs_dir = runs_dir.parent / f"{runs_dir.name}_runs"
    common = [
        f"env={args.env}",
        f"seed={args.seed}",
        f"eval.num_puzzles={args.num_puzzles}",
        *args.set,
    ]
    settings = {
        "env": args.env,
        "overrides": args.set,
        "budget_minutes": args.budget_minutes,
        "seed": args.seed,
        "attempts": args.attempts,
        "held_out_puzzles": args.num_puzzles,
    }
    kept = (
        {name: _kept_row(runs_dir / name, settings) for name in args.contenders}
        if args.keep
        else {}
    )
    rows = []
    for name in args.contenders:
        label, overrides = CONTENDERS[name]
        if kept.get(name) is not None:
            log.warning("compare: %s kept from %s", name, runs_dir / name / ROW_FILE)
            rows.append(kept[name])
            continue
        log.warning("compare: %s for %.1f minutes", name, args.budget_minutes)
        if name == "sb3_maskable_ppo":
            row = run_sb3(common, args)
        else:
            row = run_ours(runs_dir / name, [*common, *overrides], args)
        row = {"contender": name, "label": label, **row}
        (runs_dir / name).mkdir(parents=True, exist_ok=True)
        (runs_dir / name / ROW_FILE).write_text(
            json.dumps({"settings": settings, "row": row}, indent=2) + "\n"
        )
        rows.append(row)
    return {**settings, "contenders": rows}


def run_ours(run_dir: Path, overrides: list[str], args: argparse.Namespace) -> dict:
    """``python -m hrm_rl.train`` for the budget, then ``python -m hrm_rl.evaluate``."""
    train = [
        sys.executable,
        "-m",
        "hrm_rl.train",
        *overrides,
        "logger=csv",
        f"time_budget.minutes={args.budget_minutes}",
        "time_budget.clock=wall",
        "total_frames=1000000000000",  # the budget stops the run
        "agent.total_iterations=null",
        "eval.every=0",
        f"eval.minutes={args.budget_minutes / CURVE_POINTS}",
        "checkpoint.every=0",
        f"hydra.run.dir={run_dir}",
    ]
    started = time.perf_counter()
    checkpoint = Path(_run(train).strip().splitlines()[-1])
    seconds = time.perf_counter() - started
    evaluate = [
        sys.executable,
        "-m",
        "hrm_rl.evaluate",
        f"checkpoint={checkpoint}",
        f"num_puzzles={args.num_puzzles}",
        f"attempts={args.attempts}",
        f"seed={args.seed}",
        f"out={run_dir / 'eval_heldout.json'}",
    ]
    report = json.loads(Path(_run(evaluate).strip().splitlines()[-1]).read_text())
    return {
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


def run_sb3(common: list[str], args: argparse.Namespace) -> dict:
    """MaskablePPO on the same training bank and held-out split as our agents."""
    from hrm_rl.bench.sb3 import run_maskable_ppo
    from hrm_rl.envs.registration import rules_from_config
    from hrm_rl.train import env_options, held_out_puzzles, make_curriculum

    cfg = _compose(common)
    rules = rules_from_config(cfg.env)
    options = env_options(cfg.env)
    result = run_maskable_ppo(
        rules,
        make_curriculum(rules, cfg.env, cfg.seed).bank(),
        held_out_puzzles(rules, cfg.env, args.num_puzzles),
        budget_seconds=60.0 * args.budget_minutes,
        seed=args.seed,
        attempts=args.attempts,
        curve_points=CURVE_POINTS,
        env_options={key: options[key] for key in ("solve_bonus", "mistake_reward")},
    )
    result.pop("contender", None)
    return result


def _kept_row(run_dir: Path, settings: dict) -> dict | None:
    """The row saved in ``run_dir`` (None if there is none); an error when it was made under
    other settings, which would not compare."""
    path = run_dir / ROW_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved["settings"] != settings:
        raise ValueError(
            f"--keep: {path} was run with {saved['settings']}, not {settings}; run it again "
            "without --keep or delete that file"
        )
    return saved["row"]


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

    from hrm_rl.evaluate import load_policy

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


def table(results: dict) -> str:
    """The comparison as a Markdown table."""
    k = results["attempts"]
    lines = [
        f"Env `{results['env']}`"
        + (f" ({' '.join(results['overrides'])})" if results["overrides"] else "")
        + f", {results['budget_minutes']:g} wall-clock minutes per contender, seed "
        f"{results['seed']}, {results['held_out_puzzles']} held-out puzzles.",
        "",
        "| contender | parameters | frames | pass@1 (greedy) | "
        f"pass@{k} | exact match | mistakes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["contenders"]:
        exact = row["exact_match"]
        lines.append(
            f"| {row['label']} | {row['parameters']:,} | {row['frames']:,} | "
            f"{row['pass@1']:.3f} | {row[f'pass@{k}']:.3f} | "
            f"{'n/a' if exact is None else f'{exact:.3f}'} | {row['mistakes']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Held-out greedy solve rate against wall-clock seconds, one line per contender."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for row in results["contenders"]:
        curve = row["curve"]
        ax.plot(
            [p["seconds"] for p in curve],
            [p["solve_rate"] for p in curve],
            marker=".",
            label=row["label"],
        )
    ax.set(
        xlabel="wall-clock seconds",
        ylabel="held-out greedy solve rate",
        ylim=(-0.02, 1.02),
        title=f"{results['env']}: {results['budget_minutes']:g} minutes per contender",
    )
    ax.legend(fontsize=7)
    figure.savefig(path, dpi=100)
