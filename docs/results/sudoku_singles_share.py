"""What share of each 9x9 puzzle set naked singles alone finish, and naked + hidden singles.

A greedy PPO policy that has learned naked singles and nothing more solves about the first share;
the second is the ceiling of a policy that has learned both kinds of single.

    python docs/results/sudoku_singles_share.py --out docs/results/sudoku_singles_share.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from hrm_rl.envs.sudoku.readers import read_puzzles
from hrm_rl.envs.sudoku.rules import SudokuRules
from hrm_rl.envs.sudoku.solver import rate


def shares(rules: SudokuRules, boards: np.ndarray) -> dict:
    filled = rules.fill_forced(torch.as_tensor(boards, dtype=torch.long))
    naked = (filled != 0).all(dim=1).float().mean().item()
    singles = float(np.mean([rate(board).level == "singles" for board in boards]))
    return {"puzzles": len(boards), "naked_singles_only": naked, "naked_and_hidden": singles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="generated puzzles per range")
    parser.add_argument(
        "--files",
        nargs="*",
        default=["../shared/data/easy50.txt", "../shared/data/kaggle_format_test1000.csv"],
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rules = SudokuRules(3, 3)
    result = {}
    for lo, hi in [(31, 41), (22, 36)]:
        puzzles = rules.generate(np.random.default_rng(123), args.n, givens=(lo, hi), held_out=True)
        result[f"generated held-out, {lo}-{hi} givens"] = shares(rules, puzzles.boards)
    for path in args.files:
        result[path] = shares(rules, read_puzzles(path).boards)
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
