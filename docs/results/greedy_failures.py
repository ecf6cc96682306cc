"""Where greedy play fails on 9x9 Sudoku (31-41 givens): plays 500 held-out puzzles greedily, the
recurrent carry kept from move to move as in evaluation, and sorts the boards on which each
puzzle's first unsound move was made: a naked single was on the board, only a hidden single
was (no naked one), or neither. It also counts the boards of each kind that play went through, so
``1 - failures / visits`` is the per-move soundness on that kind of board.

    python docs/results/greedy_failures.py CHECKPOINT [CHECKPOINT ...]
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from hrm_rl.build import load_policy
from hrm_rl.envs.sudoku.rules import SudokuRules


def singles(rules: SudokuRules, boards: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``bool[B, L, V]`` each: the legal placements, the naked singles, the hidden singles."""
    legal = rules.legal_mask(boards)
    naked = legal & (legal.sum(-1, keepdim=True) == 1)
    hidden = torch.zeros_like(legal)
    for unit in np.asarray(rules.units):
        cells = torch.as_tensor(unit, dtype=torch.long)
        in_unit = legal[:, cells]  # [B, 9, V]
        hidden[:, cells] |= in_unit & (in_unit.sum(1, keepdim=True) == 1)
    return legal, naked, hidden


def play(model, rules: SudokuRules, puzzles) -> dict:
    boards = torch.as_tensor(puzzles.boards, dtype=torch.long).clone()
    solutions = torch.as_tensor(puzzles.solutions[:, 0], dtype=torch.long)
    rows = torch.arange(len(boards))
    alive = torch.ones(len(boards), dtype=torch.bool)
    carry = model.initial_carry(len(boards))
    kinds = ("naked single on the board", "hidden single only", "neither")
    visits = dict.fromkeys(kinds, 0)
    failures = dict.fromkeys(kinds, 0)
    with torch.no_grad():
        while alive.any():
            legal, naked, hidden = singles(rules, boards)
            out = model(boards, carry, legal, deterministic=True)
            carry = out.carry
            action = out.move_logits.masked_fill(~legal.flatten(1), float("-inf")).argmax(1)
            position, value = action // rules.num_values, action % rules.num_values + 1
            sound = solutions[rows, position] == value
            has_naked = naked.flatten(1).any(1)
            has_hidden = hidden.flatten(1).any(1)
            kind = [has_naked, ~has_naked & has_hidden, ~has_naked & ~has_hidden]
            for name, where in zip(kinds, kind, strict=True):
                visits[name] += int((alive & where).sum())
                failures[name] += int((alive & where & ~sound).sum())
            ok = alive & sound
            boards[rows[ok], position[ok]] = value[ok]
            alive = ok & (boards == 0).any(1)
    solved = (boards == solutions).all(1).float().mean().item()
    return {"solved": round(solved, 4), "failures": failures, "visits": visits}


def main() -> None:
    torch.set_num_threads(1)
    rules = SudokuRules(3, 3)
    puzzles = rules.generate(np.random.default_rng(11), 500, givens=(31, 41), held_out=True)
    for path in sys.argv[1:]:
        _, _, model, _ = load_policy(path, torch.device("cpu"))
        print(json.dumps({"checkpoint": path, **play(model, rules, puzzles)}), flush=True)


if __name__ == "__main__":
    main()
