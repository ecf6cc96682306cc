"""The one evaluation loop: each puzzle's first episode, each slot on its own, judged by rules."""

from __future__ import annotations

import numpy as np
import torch

from hrm_rl.agents.evaluation import PlayResults, evaluation_env, play, play_first_episodes
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


# --- the one loop, with scripted choosers --------------------------------------------------


def _first_blank_from_the_answer(rules, puzzles):
    """A chooser that fills the first blank with the stored answer's value (``wrong``: one off)."""
    answers = torch.as_tensor(puzzles.solutions[:, 0]).long()

    def choose(tensordict, playing, wrong=False):
        board = tensordict["board"]
        position = (board == 0).long().argmax(dim=1)
        value = answers.gather(1, position.unsqueeze(1)).squeeze(1)
        if wrong:
            value = value % rules.num_values + 1  # another digit: unsound
        tensordict.set("action", position * rules.num_values + value - 1)
        return tensordict

    return choose


def test_a_chooser_that_plays_the_answer_solves_all_in_one_move_per_blank():
    rules = SudokuRules(2, 2)
    puzzles = generate(np.random.default_rng(5), 8, box=(2, 2))
    choose = _first_blank_from_the_answer(rules, puzzles)
    played = play(evaluation_env(rules, puzzles), choose)
    assert played.solved.all() and not played.mistake.any()
    assert np.array_equal(played.moves, (puzzles.boards == 0).sum(axis=1))
    assert np.array_equal(played.final_board, puzzles.solutions[:, 0])
    assert played.cell_counts is None

    wrong = play(evaluation_env(rules, puzzles), lambda td, p: choose(td, p, wrong=True))
    assert wrong.mistake.all() and not wrong.solved.any()
    assert (wrong.moves == 1).all()  # the first unsound placement ends each episode


def test_grid_mode_keeps_the_proposal_as_the_final_board():
    rules = SudokuRules(2, 2)
    puzzles = generate(np.random.default_rng(6), 6, box=(2, 2))
    answers = torch.as_tensor(puzzles.solutions[:, 0]).long()
    swapped = answers.clone()
    swapped[:3] = answers[:3] % 4 + 1  # the first three proposals are wrong everywhere

    def propose(tensordict, playing):
        tensordict.set("action", swapped - 1)
        return tensordict

    env = evaluation_env(rules, puzzles, action_mode="grid", max_segments=2)
    played = play(env, propose)
    assert played.solved.tolist() == [False] * 3 + [True] * 3
    assert played.moves.tolist() == [2] * 3 + [1] * 3  # wrong ones are truncated at max_segments
    givens = puzzles.boards != 0
    expected = np.where(givens, puzzles.boards, swapped.numpy())
    assert np.array_equal(played.final_board, expected)


def test_results_of_chunks_concatenate_in_order():
    rules = SudokuRules(2, 2)
    puzzles = generate(np.random.default_rng(7), 10, box=(2, 2))
    torch.manual_seed(0)
    model = HRM(HRMConfig(num_positions=16, num_values=4, d_model=32, num_heads=2))
    actor = HRMPolicy(model)
    whole = play_first_episodes(actor, model, rules, puzzles)
    parts = PlayResults.concatenate(
        [play_first_episodes(actor, model, rules, puzzles.subset(i)) for i in ([0, 1, 2], [3, 4])]
        + [play_first_episodes(actor, model, rules, puzzles.subset(range(5, 10)))]
    )
    for name in ("solved", "moves", "mistake", "final_board", "cell_counts"):
        assert np.array_equal(getattr(parts, name), getattr(whole, name)), name
