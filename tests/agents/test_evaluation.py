"""Greedy evaluation plays every puzzle's first episode, each slot on its own."""

from __future__ import annotations

import numpy as np
import torch

from hrm_rl.agents.evaluation import play_first_episodes
from hrm_rl.agents.policy import HRMPolicy
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.rules import SudokuRules
from hrm_rl.models import HRM, HRMConfig


def test_each_puzzle_is_played_as_if_alone_while_finished_slots_idle():
    rules = SudokuRules(2, 2)
    puzzles = generate(np.random.default_rng(4), 12, box=(2, 2))
    torch.manual_seed(0)
    model = HRM(HRMConfig(num_positions=16, num_values=4, d_model=32, num_heads=2))
    actor = HRMPolicy(model)
    together = play_first_episodes(actor, model, rules, puzzles)
    assert together.moves.min() < together.moves.max()  # slots finish at different steps
    for i in range(len(puzzles)):
        alone = play_first_episodes(actor, model, rules, puzzles.subset([i]))
        assert alone.solved[0] == together.solved[i], i
        assert alone.moves[0] == together.moves[i], i
        assert np.array_equal(alone.final_board[0], together.final_board[i]), i
    counts = sum(
        play_first_episodes(actor, model, rules, puzzles.subset([i])).cell_counts
        for i in range(len(puzzles))
    )
    assert np.array_equal(counts, together.cell_counts)  # only the playing slots' choices
