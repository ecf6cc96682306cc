"""PPO training throughput by update variant: ``python -m hrm_rl.bench ppo``.

Trains the same config (default: 9×9 Sudoku, the default model and batch) a few PPO iterations
once per *variant*, a named list of Hydra overrides, and reports frames/s between the first and
the last iteration (the first, with start-up, is not counted), read from each run's
``metrics.csv``, exactly as ``python -m hrm_rl.bench ranks`` measures one rank. The variants run
in turn, ``--repeats`` rounds of all of them, and the median per variant is reported with the
ratio to the first variant; the machine's noise hits every variant alike.

The default variants are the update before issue 14 (the whole segment recomputed in every epoch,
4 epochs of 512-frame minibatches, 5 warm-up iterations, and the model without the rule features
``candidate_counts`` and ``move_features``, which came later), today's update without the rule
features, and today's defaults (with them) in each replay mode.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from hrm_rl.bench.ranks import add_run_arguments, add_variants_argument, check_iterations, measure

NO_RULE_FEATURES = ["model.candidate_counts=false", "model.move_features=false"]
VARIANTS = {  # name -> (label, overrides)
    "before": (
        "before: recompute, 4 epochs x 512",
        [
            "agent.replay=recompute",
            "agent.epochs=4",
            "agent.minibatch_size=512",
            "agent.warmup_iterations=5",
            *NO_RULE_FEATURES,
        ],
    ),
    "resume_4x512": (
        "resume, 4 epochs x 512",
        ["agent.replay=resume", "agent.epochs=4", "agent.minibatch_size=512"]
        + ["agent.warmup_iterations=5"],
    ),
    "no_features": ("defaults, no rule features", NO_RULE_FEATURES),
    "defaults_recompute": ("defaults, recompute", ["agent.replay=recompute"]),
    "defaults": ("defaults (resume)", []),
    # the memory's cost (issue 15: multicell at most 1.15x bicross per frame): run these with
    # --variants bicross defaults multicell_set
    "bicross": ("defaults, bicross memory", ["model.h_module=bicross"]),
    "multicell_set": ("defaults, multicell, set law", ["model.selection_law=set"]),
    # attention along the constraint graph against all pairs: --variants defaults graph
    "graph": (
        "defaults, graph attention + rope2d",
        ["model.attention=graph", "model.pos_encoding=rope2d"],
    ),
    # the warm-up's board loss without activation checkpointing, under a preset that sets
    # agent.board_on_warmup: --set experiment=maze15x15 --variants defaults no_warmup_checkpoint
    "no_warmup_checkpoint": (
        "warm-up segments not checkpointed",
        ["agent.warmup_checkpoint=false"],
    ),
}
DEFAULT_VARIANTS = ["before", "no_features", "defaults_recompute", "defaults"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m hrm_rl.bench ppo``."""
    add_run_arguments(parser, iterations=4)
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all variants")
    add_variants_argument(parser, VARIANTS, "variants", default=DEFAULT_VARIANTS)


def run(args: argparse.Namespace) -> dict:
    """Train every variant ``--repeats`` times; median frames/s and the ratio to the first."""
    check_iterations(args.iterations)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    samples: dict[str, list[float]] = {name: [] for name in args.variants}
    commands: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hrm_rl_bench_ppo_") as scratch:
        for round_ in range(args.repeats):
            for i, name in enumerate(args.variants):
                options = argparse.Namespace(
                    env=args.env,
                    device=args.device,
                    iterations=args.iterations,
                    set=[*args.set, *VARIANTS[name][1]],
                )
                row = measure(1, options, Path(scratch) / f"round{round_}_variant{i}")
                samples[name].append(row["frames_per_second"])
                commands[name] = row["command"]
    rows = []
    for name in args.variants:
        rows.append(
            {
                "variant": name,
                "label": VARIANTS[name][0],
                "overrides": VARIANTS[name][1],
                "frames_per_second": statistics.median(samples[name]),
                "samples": samples[name],
                "command": commands[name],
            }
        )
    base = rows[0]["frames_per_second"]
    for row in rows:
        row["ratio"] = row["frames_per_second"] / base if base else float("nan")
    return {
        "env": args.env,
        "device": args.device,
        "iterations": args.iterations,
        "overrides": args.set,
        "rows": rows,
    }


def table(results: dict) -> str:
    """The results as a plain-text table."""
    lines = [
        f"PPO training throughput by update variant: env={results['env']}, "
        f"device={results['device']}, {results['iterations']} iterations per run"
        + (f" ({' '.join(results['overrides'])})" if results["overrides"] else ""),
        f"{'variant':<36} | {'frames/s':>9} | {'ratio':>6} | samples",
        "-" * 72,
    ]
    for r in results["rows"]:
        samples = ", ".join(f"{s:.0f}" for s in r["samples"])
        fps, ratio = r["frames_per_second"], r["ratio"]
        label = r.get("label", r["variant"])
        lines.append(f"{label:<36} | {fps:>9,.1f} | {ratio:>5.2f}x | {samples}")
    return "\n".join(lines)
