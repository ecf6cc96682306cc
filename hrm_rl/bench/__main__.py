"""Command line of the benchmarks:
``python -m hrm_rl.bench {env,model,compare,ranks,ppo,singles} [--out PATH]``."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path

import torch

from hrm_rl.bench import compare as compare_bench
from hrm_rl.bench import compare_report
from hrm_rl.bench import env as env_bench
from hrm_rl.bench import model as model_bench
from hrm_rl.bench import ppo as ppo_bench
from hrm_rl.bench import ranks as ranks_bench
from hrm_rl.bench import singles as singles_bench


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the chosen benchmark, print its table, write JSON to ``--out``; returns the results."""
    parser = argparse.ArgumentParser(prog="python -m hrm_rl.bench", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    env_parser = sub.add_parser("env", help="environment, solver and generator throughput")
    env_bench.add_arguments(env_parser)
    model_parser = sub.add_parser("model", help="model segments/s and training memory by grad mode")
    model_bench.add_arguments(model_parser)
    compare_parser = sub.add_parser(
        "compare", help="train every contender for the same budget, then judge them side by side"
    )
    compare_bench.add_arguments(compare_parser)
    ranks_parser = sub.add_parser(
        "ranks", help="training frames/s on 1, 2, ... data-parallel ranks (torchrun)"
    )
    ranks_bench.add_arguments(ranks_parser)
    ppo_parser = sub.add_parser(
        "ppo", help="PPO training frames/s by update variant (replay mode, epochs, minibatch)"
    )
    ppo_bench.add_arguments(ppo_parser)
    singles_parser = sub.add_parser(
        "singles", help="supervised probe: can a model variant learn hidden singles (9x9)?"
    )
    singles_bench.add_arguments(singles_parser)
    for p in sub.choices.values():
        p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    results = {"benchmark": args.what, "machine": machine()}
    if args.what == "env":
        results.update(env_bench.run(args))
        print(env_bench.table(results))
    elif args.what == "model":
        results.update(model_bench.run(args))
        print(model_bench.table(results))
    elif args.what == "compare":
        results.update(compare_bench.run(args))
        print(compare_report.table(results))
    elif args.what == "ranks":
        results.update(ranks_bench.run(args))
        print(ranks_bench.table(results))
    elif args.what == "ppo":
        results.update(ppo_bench.run(args))
        print(ppo_bench.table(results))
    elif args.what == "singles":
        results.update(singles_bench.run(args))
        print(singles_bench.table(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        if args.what == "compare":
            args.out.with_suffix(".md").write_text(compare_report.table(results))
            compare_report.plot(results, args.out.with_suffix(".png"))
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
