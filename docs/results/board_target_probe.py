"""How a maze checkpoint's grid head and first move improve with segments of thought.

Fresh held-out mazes are thought over for 1..K segments without a move (greedy cells, as in a
warm-up); after each segment it prints the grid head's per-cell accuracy against the rules'
target board (KIND ``paths``, the default: the cells of every shortest S–G path, open cells only,
and then also its recall of the path cells; ``goal_distance``: 1 + d_G mod 3 on the open cells
that reach G), and the share of greedy first moves that would be sound. README "A board target
next to the reward" quotes it.

    python docs/results/board_target_probe.py CHECKPOINT SIZE [MAZES] [SEGMENTS] [KIND]
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from tensordict import TensorDict

from hrm_rl.build import load_policy
from hrm_rl.envs.maze.grid import PATH


def main(
    checkpoint: str, size: int, mazes: int = 100, segments: int = 12, kind: str = "paths"
) -> None:
    torch.set_num_threads(1)
    env = {"size": f"[{size},{size}]"}
    _, rules, model, actor = load_policy(checkpoint, torch.device("cpu"), env=env)
    boards = torch.as_tensor(
        rules.generate(np.random.default_rng(12345), mazes, held_out=True).boards
    )
    boards = boards.long()
    target, counted = rules.target_board(boards, kind=kind)
    on_path = (target == PATH) & counted if kind == "paths" else None
    mask = rules.legal_mask(boards)
    cfg = model.config
    width = cfg.prefix_tokens + cfg.num_positions
    state = {
        "board": boards,
        "action_mask": mask.flatten(1),
        "is_init": torch.ones(mazes, 1, dtype=torch.bool),
        "z_H": torch.zeros(mazes, width, cfg.d_model),
        "z_L": torch.zeros(mazes, width, cfg.d_model),
    }
    if model.has_memory:
        state["cells"] = torch.zeros(mazes, *model.H_update.initial_cells.shape)
    td = TensorDict(state, batch_size=[mazes])
    carry = actor.start_carry(td)
    with torch.no_grad():
        for k in range(1, segments + 1):
            out = actor.run_model(td, carry, deterministic=True)
            carry = out.carry
            guess = out.grid_logits.argmax(dim=-1) + 1
            accuracy = float(((guess == target) & counted).sum() / counted.sum())
            recall = ""
            if on_path is not None:
                hits = ((guess == PATH) & on_path).sum() / on_path.sum()
                recall = f" path recall {float(hits):.3f}"
            move = out.move_logits.masked_fill(~mask.flatten(1), -1e9).argmax(dim=-1)
            cell = move // rules.num_values
            sound = rules.is_sound(boards, None, None, cell, torch.full_like(cell, PATH))
            print(
                f"segments {k:2d}: board accuracy {accuracy:.3f}{recall} "
                f"first move sound {float(sound.float().mean()):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    counts = (int(a) for a in sys.argv[3:5])
    main(sys.argv[1], int(sys.argv[2]), *counts, *sys.argv[5:6])
