"""Training throughput by number of data-parallel ranks: ``python -m hrm_rl.bench ranks``.

For each rank count R it runs real training for a few PPO iterations (the same command a user
runs): ``python -m hrm_rl.train …`` for R = 1, ``python -m torch.distributed.run --standalone
--nproc_per_node=R -m hrm_rl.train …`` for more, each rank on its own batch of ``batch_size``
puzzles. Throughput is global frames per second between the first and the last iteration (the
first, which includes start-up, is not counted), read from the run's ``metrics.csv``. torchrun
gives every rank one CPU thread (``OMP_NUM_THREADS=1``) unless the variable is already set, while
a single process uses torch's default, all cores: the ratio is what a user gets by default.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m hrm_rl.bench ranks``."""
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts")
    add_run_arguments(parser, iterations=6)


def add_variants_argument(
    parser: argparse.ArgumentParser, variants: dict, what: str, default: list | None = None
) -> None:
    """``--variants NAME ...``: which of ``variants`` to run, in order (default: all)."""
    default = list(variants) if default is None else default
    parser.add_argument(
        "--variants",
        nargs="+",
        default=default,
        choices=list(variants),
        metavar="NAME",
        help=f"which {what}, in order (default: {', '.join(default)}; also: "
        f"{', '.join(v for v in variants if v not in default) or 'none'})",
    )


def add_run_arguments(parser: argparse.ArgumentParser, iterations: int) -> None:
    """``--env``, ``--iterations``, ``--device``, ``--set``: what :func:`measure` reads."""
    parser.add_argument("--env", default="sudoku", help="env config name (default: 9x9 Sudoku)")
    parser.add_argument("--iterations", type=int, default=iterations, help="PPO iterations per run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda (one GPU per rank) or auto")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="Hydra overrides, e.g. model=hrm"
    )


def check_iterations(iterations: int) -> None:
    """A throughput measurement needs a start-up iteration and at least one more."""
    if iterations < 2:
        raise ValueError(f"--iterations must be at least 2 (one is start-up), got {iterations}")


def run(args: argparse.Namespace) -> dict:
    """Train once per rank count; frames/s and the speed-up over the first count."""
    check_iterations(args.iterations)
    if any(r < 1 for r in args.ranks):
        raise ValueError(f"--ranks must be positive, got {args.ranks}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hrm_rl_ranks_") as scratch:
        for ranks in args.ranks:
            rows.append(measure(ranks, args, Path(scratch) / f"ranks{ranks}"))
    base = rows[0]["frames_per_second"]
    for row in rows:
        row["speedup"] = row["frames_per_second"] / base if base else float("nan")
    return {"env": args.env, "device": args.device, "overrides": args.set, "rows": rows}


def measure(ranks: int, args: argparse.Namespace, run_dir: Path) -> dict:
    """One training run on ``ranks`` ranks; its steady frames/s."""
    overrides = [
        f"env={args.env}",
        f"device={args.device}",
        *args.set,
        "logger=csv",
        "eval.every=0",
        "eval.num_puzzles=16",
        "checkpoint.every=0",
        f"hydra.run.dir={run_dir}",
    ]
    batch, rollout = _frames_per_iteration(overrides)
    total = args.iterations * batch * rollout * ranks
    command = [sys.executable, "-m"]
    if ranks > 1:
        command += ["torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", "-m"]
    command += ["hrm_rl.train", *overrides, f"total_frames={total}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"training on {ranks} ranks failed:\n{result.stderr[-3000:]}")
    points = _frames_and_seconds(run_dir)
    (f0, t0), (f1, t1) = points[0], points[-1]
    return {
        "ranks": ranks,
        "frames": f1,
        "frames_per_second": (f1 - f0) / (t1 - t0),
        "wall_seconds": seconds,
        "threads_per_rank": os.environ.get("OMP_NUM_THREADS", "default" if ranks == 1 else "1"),
        "command": " ".join(["python", *command[1:]]),
    }


def _frames_per_iteration(overrides: list[str]) -> tuple[int, int]:
    """(batch_size, rollout) of the config these overrides give."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=[o for o in overrides if not o.startswith("hydra.")])
    return int(cfg.batch_size), int(cfg.rollout)


def _frames_and_seconds(run_dir: Path) -> list[tuple[int, float]]:
    """(global frames, seconds since start) after every iteration of the run."""
    with (run_dir / "metrics.csv").open(newline="") as file:
        rows = [r for r in csv.DictReader(file) if r["key"] == "time/seconds"]
    first: dict[int, float] = {}  # the end's evaluation logs the last step's time again
    for r in rows:
        first.setdefault(int(r["step"]), float(r["value"]))
    points = sorted(first.items())
    if len(points) < 2:
        raise RuntimeError(f"{run_dir} logged {len(points)} iterations; need at least 2")
    return points


def table(results: dict) -> str:
    """The results as a plain-text table."""
    lines = [
        f"Training throughput by data-parallel ranks: env={results['env']}, "
        f"device={results['device']}"
        + (f" ({' '.join(results['overrides'])})" if results["overrides"] else ""),
        f"{'ranks':>5} | {'threads/rank':>12} | {'frames/s':>9} | {'speed-up':>8} | {'wall s':>7}",
        "-" * 55,
    ]
    for r in results["rows"]:
        lines.append(
            f"{r['ranks']:>5} | {r['threads_per_rank']:>12} | {r['frames_per_second']:>9,.0f} | "
            f"{r['speedup']:>7.2f}x | {r['wall_seconds']:>7.1f}"
        )
    return "\n".join(lines)
