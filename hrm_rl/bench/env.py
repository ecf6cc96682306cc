"""Environment throughput: random legal play through Gymnasium's ``SyncVectorEnv`` of
``PuzzleEnv``, the native Gymnasium vector env ``PuzzleVectorEnv`` and the batched TorchRL env on
the same puzzles, for each puzzle family (``--families``: 9×9 Sudoku, 7×7 and 30×30 Maze by
default), plus Sudoku solver and generator throughput.

All front-ends play the same pre-generated bank, so generation cost is measured separately and
no side pays it during play. Random legal play: each step picks a uniformly random legal action of
each board; unsound placements end episodes, which are reset at once (Gymnasium's ``SAME_STEP``
autoreset, TorchRL's ``step_and_maybe_reset``). Ratios are against ``SyncVectorEnv`` at the same
batch size.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.gym_env import PuzzleEnv
from hrm_rl.envs.registration import make_rules
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.readers import read_puzzles
from hrm_rl.envs.sudoku.solver import rate, solve
from hrm_rl.envs.vector_env import PuzzleVectorEnv

# --families choices: (family, factory options) of each benchmarked board
FAMILIES = {
    "sudoku9x9": ("sudoku", {"box": (3, 3)}),
    "sudoku4x4": ("sudoku", {"box": (2, 2)}),
    "maze7x7": ("maze", {"size": (7, 7)}),
    "maze15x15": ("maze", {"size": (15, 15)}),
    "maze30x30": ("maze", {"size": (30, 30)}),
}
DEFAULT_EASY50 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "easy50.txt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m hrm_rl.bench env``."""
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument(
        "--families",
        nargs="+",
        choices=list(FAMILIES),
        default=["sudoku9x9", "maze7x7", "maze30x30"],
        help="boards to play",
    )
    parser.add_argument("--bank", type=int, default=64, help="puzzles generated per family")
    parser.add_argument(
        "--device", default="cpu", help="device of the batched env and the vector env's tensors"
    )
    parser.add_argument("--easy50", type=Path, default=DEFAULT_EASY50, help="solver input file")
    parser.add_argument("--seed", type=int, default=0)


def _random_legal(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random legal action per row of ``mask`` ``[B, A]``: the k-th legal one."""
    k = (rng.random(len(mask)) * mask.sum(axis=1)).astype(np.int64)
    return (mask.cumsum(axis=1) > k[:, None]).argmax(axis=1)


def _random_legal_torch(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The same sampler as :func:`_random_legal`, in torch on the mask's device."""
    u = torch.rand(mask.shape[0], 1, generator=generator, device=mask.device)
    counts = mask.to(torch.uint8).cumsum(dim=1, dtype=torch.int32)  # [B, A]
    k = (u * counts[:, -1:]).to(torch.int32)
    return torch.searchsorted(counts, k, right=True).squeeze(1)


def gym_vector_steps_per_second(puzzles, rules, batch: int, seconds: float, seed: int) -> float:
    """Steps per second of a ``SyncVectorEnv`` of ``batch`` PuzzleEnvs under random legal play."""
    gc.collect()  # leftovers of an earlier measurement must not slow this one
    vector = gym.vector.SyncVectorEnv(
        [lambda: PuzzleEnv(rules=rules, puzzles=puzzles) for _ in range(batch)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    return _vector_steps_per_second(vector, seconds, seed)


def vector_env_steps_per_second(
    puzzles, rules, batch: int, seconds: float, seed: int, device: str
) -> float:
    """Steps per second of the native ``PuzzleVectorEnv`` (what ``gymnasium.make_vec`` builds)
    with ``batch`` slots under random legal play."""
    gc.collect()
    vector = PuzzleVectorEnv(
        batch,
        rules=rules,
        puzzles=puzzles,
        device=device,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    return _vector_steps_per_second(vector, seconds, seed)


def _vector_steps_per_second(vector: gym.vector.VectorEnv, seconds: float, seed: int) -> float:
    """Random legal play through a Gymnasium vector env for ``seconds``: env steps per second."""
    rng = np.random.default_rng(seed)
    obs, _ = vector.reset(seed=seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps == 0:
        obs, *_ = vector.step(_random_legal(obs["action_mask"], rng))
        steps += 1
    elapsed = time.perf_counter() - start
    vector.close()
    return steps * vector.num_envs / elapsed


def batched_steps_per_second(
    puzzles, rules, batch: int, seconds: float, seed: int, device: str
) -> float:
    """Steps per second of ``BatchedPuzzleEnv`` (augmenting on reset) under random legal play."""
    gc.collect()  # leftovers of an earlier measurement (1024 Gymnasium envs) must not slow this one
    env = BatchedPuzzleEnv(rules, puzzles, batch_size=batch, device=device, seed=seed)
    generator = torch.Generator(device=env.device).manual_seed(seed)
    td = env.reset()
    steps = 0

    def one_step(td):
        td["action"] = _random_legal_torch(td["action_mask"], generator)
        return env.step_and_maybe_reset(td)[1]

    td = one_step(td)  # warm-up
    _sync(device)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or steps == 0:
        td = one_step(td)
        steps += 1
        if steps % 50 == 0:
            _sync(device)
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def solver_puzzles_per_second(path: Path) -> dict:
    """Puzzles per second of ``solve(cap=2)`` (which also decides uniqueness) on a file."""
    puzzles = read_puzzles(path, cap=1)
    start = time.perf_counter()
    counts = [len(solve(board, (3, 3), cap=2)) for board in puzzles.boards]
    elapsed = time.perf_counter() - start
    return {
        "file": path.name,
        "puzzles": len(puzzles),
        "unique": int(sum(c == 1 for c in counts)),
        "puzzles_per_second": len(puzzles) / elapsed,
    }


def generator_throughput(seconds: float, seed: int) -> dict:
    """Unique 9x9 puzzles per second (difficulty "any", default givens) and their ratings."""
    rng = np.random.default_rng(seed)
    made, singles, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds or made == 0:
        puzzle = generate(rng, 1, box=(3, 3))
        singles += rate(puzzle.boards[0], (3, 3)).level == "singles"
        made += 1
    elapsed = time.perf_counter() - start
    return {
        "puzzles_per_second": made / elapsed,
        "puzzles": made,
        "share_singles": singles / made,
        "share_search": 1 - singles / made,
        "singles_per_minute": 60 * singles / elapsed,
        "search_per_minute": 60 * (made - singles) / elapsed,
    }


def run(args: argparse.Namespace) -> dict:
    """All measurements of the env benchmark, in one run."""
    rows, banks = [], {}
    for name in args.families:
        family, options = FAMILIES[name]
        rules = make_rules(family, **options)
        start = time.perf_counter()
        puzzles = rules.generate(np.random.default_rng(args.seed), args.bank)
        banks[name] = time.perf_counter() - start
        for batch in args.batch_sizes:
            gym_sps = gym_vector_steps_per_second(puzzles, rules, batch, args.seconds, args.seed)
            vector_sps = vector_env_steps_per_second(
                puzzles, rules, batch, args.seconds, args.seed, args.device
            )
            torch_sps = batched_steps_per_second(
                puzzles, rules, batch, args.seconds, args.seed, args.device
            )
            rows.append(
                {
                    "family": name,
                    "batch": batch,
                    "gym_sync_vector_steps_per_second": gym_sps,
                    "vector_env_steps_per_second": vector_sps,
                    "vector_speedup": vector_sps / gym_sps,
                    "batched_steps_per_second": torch_sps,
                    "speedup": torch_sps / gym_sps,
                }
            )
    results = {
        "env": "cell mode, random legal play",
        "device": args.device,
        "bank_puzzles": args.bank,
        "bank_generation_seconds": banks,
        "play": rows,
        "generator": generator_throughput(args.seconds, args.seed),
    }
    if args.easy50.is_file():
        results["solver"] = solver_puzzles_per_second(args.easy50)
    else:
        results["solver"] = {"skipped": f"{args.easy50} not found (pass --easy50 PATH)"}
    return results


def table(results: dict) -> str:
    """The results as a plain-text table."""
    lines = [
        f"Environment throughput ({results['env']}; vector and batched env on "
        f"{results['device']}; ratios against SyncVectorEnv)",
        f"{'board':>10} | {'B':>5} | {'gym SyncVectorEnv steps/s':>26} | "
        f"{'PuzzleVectorEnv steps/s':>24} | {'ratio':>7} | "
        f"{'BatchedPuzzleEnv steps/s':>25} | {'ratio':>7}",
        "-" * 122,
    ]
    for row in results["play"]:
        lines.append(
            f"{row['family']:>10} | {row['batch']:>5} | "
            f"{row['gym_sync_vector_steps_per_second']:>26,.0f} | "
            f"{row['vector_env_steps_per_second']:>24,.0f} | {row['vector_speedup']:>6.1f}x | "
            f"{row['batched_steps_per_second']:>25,.0f} | {row['speedup']:>6.1f}x"
        )
    solver, gen = results["solver"], results["generator"]
    lines.append("")
    if "skipped" in solver:
        lines.append(f"solver: skipped, {solver['skipped']}")
    else:
        lines.append(
            f"solver (cap 2) on {solver['file']}: {solver['puzzles_per_second']:,.1f} puzzles/s "
            f"({solver['unique']}/{solver['puzzles']} unique)"
        )
    lines.append(
        f"generator, unique 9x9: {gen['puzzles_per_second']:.2f} puzzles/s "
        f"({gen['share_singles']:.0%} singles, {gen['share_search']:.0%} need search; "
        f"{gen['puzzles']} made), i.e. per minute {gen['singles_per_minute']:,.0f} singles "
        f"+ {gen['search_per_minute']:,.0f} search"
    )
    return "\n".join(lines)
