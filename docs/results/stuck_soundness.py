"""How often a trained policy's greedy first move is sound on *stuck* 9x9 boards: held-out puzzles
(31-41 givens) with every naked single filled, where the next sound move needs a hidden single
(or search). Guessing among the positions with two or three legal values gives about 0.5.

    python docs/results/stuck_soundness.py CHECKPOINT [CHECKPOINT ...]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from hrm_rl.bench.singles import _accuracy
from hrm_rl.build import load_policy
from hrm_rl.envs.sudoku.rules import SudokuRules


def main() -> None:
    rules = SudokuRules(3, 3)
    puzzles = rules.generate(np.random.default_rng(7), 400, givens=(31, 41), held_out=True)
    boards = torch.as_tensor(puzzles.boards, dtype=torch.long)
    solutions = torch.as_tensor(puzzles.solutions[:, 0], dtype=torch.long)
    stuck = rules.fill_forced(boards)
    open_ = (stuck == 0).any(dim=1)
    print(f"stuck boards: {int(open_.sum())} of {len(boards)} held-out puzzles")
    for path in sys.argv[1:]:
        _, _, model, _ = load_policy(path, torch.device("cpu"))
        sound = _accuracy(model, rules, stuck[open_], solutions[open_])
        print(f"{path}: greedy first move sound on {sound:.3f} of the stuck boards")


if __name__ == "__main__":
    main()
