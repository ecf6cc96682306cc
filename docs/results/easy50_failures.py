"""Greedy play of a puzzle file by a 9x9 PPO checkpoint, and each failed puzzle's fatal move:
its probability, whether it was a naked or hidden single, and how much probability the policy gave
the singles on that board. DECODE is ``joint`` (the evaluation's argmax over every placement) or
``cellmass`` (the cell with the most probability, then its most likely value).

    python docs/results/easy50_failures.py CHECKPOINT FILE [DECODE ...]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from greedy_failures import singles  # noqa: E402

from hrm_rl.build import load_policy  # noqa: E402


def choose(probs: torch.Tensor, decode: str, num_values: int) -> torch.Tensor:
    """``[B]`` placements from the masked move probabilities ``[B, L·V]``."""
    if decode == "joint":
        return probs.argmax(1)
    if decode != "cellmass":
        raise ValueError(f"DECODE must be joint or cellmass, got {decode!r}")
    per_cell = probs.view(len(probs), -1, num_values)
    cell = per_cell.sum(-1).argmax(1)
    return cell * num_values + per_cell[torch.arange(len(probs)), cell].argmax(-1)


def play(model, rules, puzzles, labels: list[str], decode: str) -> None:
    boards = torch.as_tensor(puzzles.boards, dtype=torch.long).clone()
    answer = torch.as_tensor(puzzles.solutions[:, 0], dtype=torch.long)
    rows = torch.arange(len(boards))
    alive = torch.ones(len(boards), dtype=torch.bool)
    carry = model.initial_carry(len(boards))
    V = rules.num_values
    failures = []
    with torch.no_grad():
        while alive.any():
            legal, naked, hidden = singles(rules, boards)
            out = model(boards, carry, legal, deterministic=True)
            carry = out.carry
            logits = out.move_logits.float().masked_fill(~legal.flatten(1), float("-inf"))
            probs = logits.softmax(1)
            action = choose(probs, decode, V)
            position, value = action // V, action % V + 1
            sound = answer[rows, position] == value
            single = (naked | hidden).flatten(1)
            for i in (alive & ~sound).nonzero().flatten().tolist():
                on_singles = probs[i][single[i]]
                failures.append(
                    {
                        "puzzle": i,
                        "difficulty": labels[i],
                        "blanks": int((boards[i] == 0).sum()),
                        "p_move": round(float(probs[i, action[i]]), 4),
                        "move_is_single": bool(single[i, action[i]]),
                        "singles_on_board": int(single[i].sum()),
                        "p_all_singles": round(float(on_singles.sum()), 4),
                    }
                )
            ok = alive & sound
            boards[rows[ok], position[ok]] = value[ok]
            alive = ok & (boards == 0).any(1)
    solved = (boards == answer).all(1).tolist()
    by_label = Counter(label for label, done in zip(labels, solved, strict=True) if done)
    print(f"{decode}: solved {sum(solved)}/{len(solved)} {dict(by_label)}")
    for failure in failures:
        print("  ", failure)


def main() -> None:
    checkpoint, data, *decodes = sys.argv[1:]
    _, rules, model, _ = load_policy(Path(checkpoint), torch.device("cpu"), "auto")
    puzzles = rules.read(data)
    labels = list(rules.difficulty_labels(torch.as_tensor(puzzles.boards)))
    for decode in decodes or ["joint"]:
        play(model, rules, puzzles, labels, decode)


if __name__ == "__main__":
    main()
