"""Which model can learn hidden singles? ``python -m hrm_rl.bench singles``.

A quick, supervised probe of a model's inductive bias on 9×9 Sudoku, apart from RL. The model
(the ``small`` preset with each variant's overrides) is trained with Adam to put its move
probability on *sound* moves, ``-log Σ_{a sound} π(a | board)``, on two kinds of states from
generated training puzzles (22–36 givens): boards with a random share of their blanks filled from
the solution, and **stuck** boards, where filling every naked single (a position with one legal
value, which the candidates input shows directly) has left no naked single. Each stuck board of
the generator's puzzles has a hidden single (a value with one place left in a row, column or
box) or needs search. Every ``--every`` steps the greedy move (argmax over legal moves, one
segment from a fresh carry) is judged on held-out states of both kinds: the share of sound moves.

A model that only reads the candidates input scores about 0.99 on random states and about 0.5 on
stuck ones (it guesses among the positions with two or three legal values); the stuck score is
what hidden singles, and so ``easy50.txt`` and the 22–36-givens split, need.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from hrm_rl.bench.ranks import add_variants_argument
from hrm_rl.envs.sudoku.rules import SudokuRules
from hrm_rl.models import HRM, HRMConfig

VARIANTS = {  # name -> model overrides on the small preset
    "full": {},
    "graph": {"attention": "graph"},
    "graph_rope2d": {"attention": "graph", "pos_encoding": "rope2d"},
    "full_rope2d": {"pos_encoding": "rope2d"},
    "counts": {"candidate_counts": True},
    "move_features": {"move_features": True},
    "counts_move_features": {"candidate_counts": True, "move_features": True},
    "graph_rope2d_counts": {
        "attention": "graph",
        "pos_encoding": "rope2d",
        "candidate_counts": True,
    },
}
GIVENS = (22, 36)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m hrm_rl.bench singles``."""
    add_variants_argument(parser, VARIANTS, "model variants")
    parser.add_argument("--steps", type=int, default=600, help="Adam steps per variant")
    parser.add_argument("--every", type=int, default=100, help="evaluate every this many steps")
    parser.add_argument("--batch", type=int, default=256, help="states per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--puzzles", type=int, default=3000, help="training puzzles")
    parser.add_argument("--eval-puzzles", type=int, default=1000, help="held-out puzzles")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and the batches")


def run(args: argparse.Namespace) -> dict:
    """Train and judge every variant on the same states; returns its curves."""
    for name in ("steps", "every", "batch", "puzzles", "eval_puzzles"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    rules = SudokuRules(3, 3)
    train = _states(rules, np.random.default_rng(1), args.puzzles, held_out=False)
    held_out = _states(rules, np.random.default_rng(2), args.eval_puzzles, held_out=True)
    rows = [_train_variant(rules, name, train, held_out, args) for name in args.variants]
    return {
        "settings": {
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "givens": list(GIVENS),
            "train_states": {kind: len(boards) for kind, (boards, _) in train.items()},
            "held_out_states": {kind: len(boards) for kind, (boards, _) in held_out.items()},
        },
        "rows": rows,
    }


def _states(rules: SudokuRules, rng: np.random.Generator, n: int, held_out: bool) -> dict:
    """``{"random": (boards, solutions), "stuck": (boards, solutions)}`` from ``n`` puzzles."""
    puzzles = rules.generate(rng, n, givens=GIVENS, held_out=held_out)
    boards = torch.as_tensor(puzzles.boards, dtype=torch.long)
    solutions = torch.as_tensor(puzzles.solutions[:, 0], dtype=torch.long)
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    share = torch.rand(len(boards), 1, generator=generator) * 0.8
    fill = (torch.rand(boards.shape, generator=generator) < share) & (boards == 0)
    stuck = rules.fill_forced(boards)
    open_ = (stuck == 0).any(dim=1)
    return {
        "random": (torch.where(fill, solutions, boards), solutions),
        "stuck": (stuck[open_], solutions[open_]),
    }


def _sound(boards: torch.Tensor, solutions: torch.Tensor, num_values: int) -> torch.Tensor:
    """``bool[B, L·V]``: the placements that agree with the (unique) solution."""
    right = F.one_hot(solutions - 1, num_values).bool()  # [B, L, V]
    return ((boards == 0).unsqueeze(-1) & right).flatten(1)


def _logits(model: HRM, rules: SudokuRules, boards: torch.Tensor) -> torch.Tensor:
    legal = rules.legal_mask(boards)
    out = model(boards, model.initial_carry(len(boards)), legal, deterministic=True)
    return out.move_logits.masked_fill(~legal.flatten(1), float("-inf"))


def _accuracy(model: HRM, rules: SudokuRules, boards, solutions) -> float:
    """Share of boards whose greedy legal move is sound."""
    with torch.no_grad():
        moves = _logits(model, rules, boards).argmax(dim=1, keepdim=True)
    return _sound(boards, solutions, rules.num_values).gather(1, moves).float().mean().item()


def _train_variant(rules: SudokuRules, name: str, train: dict, held_out: dict, args) -> dict:
    torch.manual_seed(args.seed)
    config = HRMConfig(rules.num_positions, rules.num_values, **VARIANTS[name])
    model = HRM(config, graph=rules.constraint_graph(), grid_shape=rules.grid_shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    boards = torch.cat([train["random"][0], train["stuck"][0]])
    solutions = torch.cat([train["random"][1], train["stuck"][1]])
    generator = torch.Generator().manual_seed(args.seed)
    curve, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        pick = torch.randint(0, len(boards), (args.batch,), generator=generator)
        b, s = boards[pick], solutions[pick]
        log_probs = _logits(model, rules, b).log_softmax(dim=1)
        sound = _sound(b, s, rules.num_values)
        loss = -log_probs.masked_fill(~sound, float("-inf")).logsumexp(dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            point = {"step": step, "seconds": time.perf_counter() - start, "loss": loss.item()}
            for kind, (kb, ks) in held_out.items():
                point[kind] = _accuracy(model, rules, kb, ks)
            curve.append(point)
    return {"variant": name, "overrides": VARIANTS[name], "curve": curve, **curve[-1]}


def table(results: dict) -> str:
    """The final accuracies and the stuck-state curve of every variant."""
    settings = results["settings"]
    lines = [
        f"Sound greedy moves after {settings['steps']} supervised steps (batch "
        f"{settings['batch']}, 9x9, givens {settings['givens'][0]}-{settings['givens'][1]}); "
        f"held-out states: {settings['held_out_states']}",
        f"{'variant':>13} | {'seconds':>7} | {'random':>6} | {'stuck':>6} | stuck by step",
        "-" * 72,
    ]
    for row in results["rows"]:
        curve = " ".join(f"{p['step']}:{p['stuck']:.2f}" for p in row["curve"])
        lines.append(
            f"{row['variant']:>13} | {row['seconds']:7.0f} | {row['random']:6.3f} | "
            f"{row['stuck']:6.3f} | {curve}"
        )
    return "\n".join(lines)
