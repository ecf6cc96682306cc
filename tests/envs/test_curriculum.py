"""The difficulty curriculum: blank levels, level moves by solve rate, banks, env swap, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.curriculum import CURRICULUM_MODES, Curriculum
from hrm_rl.envs.sudoku.generator import DEFAULT_GIVENS, blank_levels
from hrm_rl.envs.sudoku.rules import SudokuRules

BOXES = [(2, 2), (2, 3)]


def givens_counts(boards) -> np.ndarray:
    """Givens per board of a numpy or torch batch ``[N, L]``."""
    return np.asarray((boards != 0).sum(-1))


def small(rules: SudokuRules, mode: str = "auto", **kwargs) -> Curriculum:
    """A curriculum with a small bank and window, quick enough for tests."""
    kwargs.setdefault("bank_size", 32)
    kwargs.setdefault("window", 10)
    return Curriculum(rules, mode, **kwargs)


def solved_batch(n: int, solved: int) -> torch.Tensor:
    """``n`` finished episodes, the first ``solved`` of them solved."""
    return torch.arange(n) < solved


@pytest.mark.parametrize("box", BOXES)
def test_blank_levels_get_harder_and_end_at_the_default_range(box):
    rules = SudokuRules(*box)
    levels = blank_levels(rules.box)
    assert len(levels) == 5
    assert levels[-1] == DEFAULT_GIVENS[box]
    for (lo, hi), (next_lo, next_hi) in zip(levels, levels[1:], strict=False):
        assert lo <= hi and next_lo <= next_hi
        assert next_hi < lo  # strictly fewer givens, i.e. more blanks
    assert levels[0][1] < rules.num_positions  # even the easiest level has a blank
    for k, givens in enumerate(levels):
        bank = rules.generate(np.random.default_rng(k), 8, givens=givens)
        counts = givens_counts(bank.boards)
        assert ((counts >= givens[0]) & (counts <= givens[1])).all()


def test_blank_levels_options_and_infeasible_requests():
    rules = SudokuRules(2, 2)
    assert blank_levels(rules.box, num_levels=1) == [DEFAULT_GIVENS[(2, 2)]]
    levels = blank_levels(rules.box, num_levels=3, min_blanks=1, max_blanks=12)
    assert levels[0][1] == 15 and levels[-1][0] == 4
    with pytest.raises(ValueError, match="max_blanks"):
        blank_levels(rules.box, max_blanks=13)  # 3 givens: no unique 4x4 puzzle
    with pytest.raises(ValueError, match="min_blanks"):
        blank_levels(rules.box, num_levels=5, min_blanks=7)
    with pytest.raises(ValueError, match="num_levels"):
        blank_levels(rules.box, num_levels=0)


def test_invalid_settings_are_rejected():
    rules = SudokuRules(2, 2)
    with pytest.raises(ValueError, match="one of"):
        Curriculum(rules, "sometimes")
    with pytest.raises(ValueError, match="fixed_level"):
        Curriculum(rules, "fixed")
    with pytest.raises(ValueError, match="fixed_level"):
        Curriculum(rules, "fixed", fixed_level=5)
    for threshold in (0.0, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            Curriculum(rules, threshold=threshold)
    with pytest.raises(ValueError, match="window"):
        Curriculum(rules, window=0)
    with pytest.raises(ValueError, match="givens"):
        Curriculum(rules, generator_options={"givens": (4, 8)})
    with pytest.raises(ValueError, match=r"levels\[1\]"):
        Curriculum(rules, levels=[(10, 12), (9, 20)])
    assert set(CURRICULUM_MODES) == {"off", "fixed", "auto", "mix"}


def test_auto_moves_up_once_when_the_full_window_is_solved():
    curriculum = small(SudokuRules(2, 2), window=10)
    assert curriculum.level == 0 and math.isnan(curriculum.solve_rate)
    assert curriculum.update(solved_batch(6, 6)) is False  # window not full yet
    assert curriculum.solve_rate == 1.0
    assert curriculum.update(solved_batch(6, 6)) is True
    assert curriculum.level == 1
    assert math.isnan(curriculum.solve_rate)  # window cleared
    assert curriculum.update(solved_batch(4, 4)) is False
    assert curriculum.level == 1
    assert curriculum.metrics() == {"curriculum/level": 1.0, "curriculum/solve_rate": 1.0}


def test_auto_stays_while_mostly_failing_and_never_moves_down():
    curriculum = small(SudokuRules(2, 2), window=10, threshold=0.9)
    for _ in range(20):
        assert curriculum.update(solved_batch(8, 2)) is False
    assert curriculum.level == 0
    assert curriculum.solve_rate == pytest.approx(0.2)  # the last 10 of 8-episode batches
    assert curriculum.update(solved_batch(10, 10)) is True
    for _ in range(20):
        assert curriculum.update(solved_batch(8, 0)) is False
    assert curriculum.level == 1 and curriculum.solve_rate == 0.0


def test_auto_stops_at_the_last_level():
    curriculum = small(SudokuRules(2, 2), window=4)
    moves = sum(curriculum.update(solved_batch(4, 4)) for _ in range(3 * curriculum.num_levels))
    assert moves == curriculum.num_levels - 1
    assert curriculum.level == curriculum.num_levels - 1
    assert curriculum.solve_rate == 1.0  # the window keeps rolling for the log


def test_update_takes_any_shape_and_device():
    curriculum = small(SudokuRules(2, 2), window=4)
    curriculum.update(torch.tensor([[True], [False]]))
    curriculum.update(torch.tensor([], dtype=torch.bool))
    assert curriculum.solve_rate == 0.5
    if torch.cuda.is_available():
        curriculum.update(torch.ones(2, dtype=torch.bool, device="cuda"))
        assert curriculum.solve_rate == 0.75


@pytest.mark.parametrize("mode", ["off", "fixed"])
def test_off_and_fixed_never_move(mode):
    curriculum = small(SudokuRules(2, 2), mode, fixed_level=1, window=4)
    start = curriculum.level
    for _ in range(10):
        assert curriculum.update(solved_batch(4, 4)) is False
    assert curriculum.level == start and curriculum.solve_rate == 1.0


def test_off_plays_the_default_range_and_fixed_the_chosen_level():
    rules = SudokuRules(2, 2)
    off = small(rules, "off")
    assert off.num_levels == 1 and off.level == 0
    counts = givens_counts(off.bank().boards)
    lo, hi = DEFAULT_GIVENS[(2, 2)]
    assert ((counts >= lo) & (counts <= hi)).all()

    fixed = small(rules, "fixed", fixed_level=2)
    lo, hi = fixed.levels[2]["givens"]
    assert fixed.level == 2
    counts = givens_counts(fixed.bank().boards)
    assert ((counts >= lo) & (counts <= hi)).all()


@pytest.mark.parametrize("box", BOXES)
def test_banks_are_reproducible_per_level_and_differ_across_levels(box):
    rules = SudokuRules(*box)
    first, again = small(rules, seed=3), small(rules, seed=3)
    bank0 = first.bank()
    assert first.bank() is bank0  # cached
    assert np.array_equal(bank0.boards, again.bank().boards)
    assert np.array_equal(bank0.solutions, again.bank().solutions)
    assert not np.array_equal(bank0.boards, small(rules, seed=4).bank().boards)
    first.update(solved_batch(10, 10))
    assert first.level == 1
    bank1 = first.bank()
    assert not np.array_equal(bank0.boards, bank1.boards)
    assert bank1.solutions.shape[1] == bank0.solutions.shape[1] == 1
    for level, bank in ((0, bank0), (1, bank1)):
        lo, hi = first.levels[level]["givens"]
        counts = givens_counts(bank.boards)
        assert ((counts >= lo) & (counts <= hi)).all()


def test_training_banks_hold_no_held_out_puzzles():
    from hrm_rl.envs.splits import in_test_split

    bank = small(SudokuRules(2, 2), bank_size=64).bank()
    assert not any(in_test_split(board, 0.1) for board in bank.boards)


def test_a_new_bank_reaches_a_live_env_after_reset():
    rules = SudokuRules(2, 2)
    curriculum = small(rules, window=4)
    env = BatchedPuzzleEnv(rules, curriculum.bank(), batch_size=16, seed=0)
    old_lo, old_hi = curriculum.levels[0]["givens"]
    td = env.reset()
    counts = givens_counts(td["givens"].long())
    assert ((counts >= old_lo) & (counts <= old_hi)).all()

    assert curriculum.update(solved_batch(4, 4)) is True
    env.set_bank(curriculum.bank())

    # running episodes go on with their old puzzles
    action = td["action_mask"].float().argmax(-1)
    td["action"] = action
    out = env.step(td)["next"]
    assert torch.equal(out["givens"], td["givens"])
    changed = out["board"] != td["board"]
    assert (changed.sum(-1) == 1).all()  # exactly the one placement, on the old board
    assert torch.equal(changed.nonzero()[:, 1], action // rules.num_values)

    new_lo, new_hi = curriculum.levels[1]["givens"]
    counts = givens_counts(env.reset()["givens"].long())
    assert ((counts >= new_lo) & (counts <= new_hi)).all()
    assert new_hi < old_lo


def test_state_dict_round_trip_restores_level_and_window(tmp_path):
    rules = SudokuRules(2, 2)
    curriculum = small(rules, window=6)
    curriculum.update(solved_batch(6, 6))
    curriculum.update(torch.tensor([True, False, False]))
    path = tmp_path / "curriculum.pt"
    torch.save(curriculum.state_dict(), path)

    resumed = small(rules, window=6)
    resumed.load_state_dict(torch.load(path, weights_only=True))
    assert resumed.level == curriculum.level == 1
    assert resumed.solve_rate == curriculum.solve_rate == pytest.approx(1 / 3)
    # the restored window counts towards the next move exactly like the original one
    assert resumed.update(solved_batch(3, 3)) is curriculum.update(solved_batch(3, 3)) is False
    assert resumed.update(solved_batch(3, 3)) is curriculum.update(solved_batch(3, 3)) is True
    assert resumed.level == curriculum.level == 2

    with pytest.raises(ValueError, match="levels"):
        small(rules, levels=[(12, 14), (4, 8)]).load_state_dict(curriculum.state_dict())


def test_each_level_draws_its_own_puzzles_even_for_equal_ranges():
    curriculum = small(SudokuRules(2, 2), levels=[(9, 11), (9, 11)], window=2)
    bank0 = curriculum.bank()
    assert curriculum.update(solved_batch(2, 2)) is True
    assert not np.array_equal(bank0.boards, curriculum.bank().boards)


def test_mix_plays_every_level_from_the_start_and_never_moves():
    rules = SudokuRules(2, 2)
    levels = blank_levels(rules.box, num_levels=3, min_blanks=2, max_blanks=12)
    curriculum = small(rules, "mix", levels=levels, bank_size=30)
    bank = curriculum.bank()
    assert len(bank) == 30  # 10 of each level
    counts = givens_counts(bank.boards)
    for k, (lo, hi) in enumerate(levels):
        share = counts[10 * k : 10 * (k + 1)]
        assert ((share >= lo) & (share <= hi)).all(), k
    assert curriculum.level == 2
    assert not curriculum.update(solved_batch(10, 10))  # a perfect window moves nothing
    assert np.array_equal(curriculum.bank().boards, bank.boards)  # the same mix every time


def test_stuck_share_starts_puzzles_where_the_naked_singles_run_out():
    rules = SudokuRules(3, 3)
    plain = Curriculum(rules, "off", bank_size=40, seed=3).bank()
    curriculum = Curriculum(rules, "off", bank_size=40, seed=3, stuck_share=0.5)
    bank = curriculum.bank()
    boards = torch.as_tensor(bank.boards, dtype=torch.long)
    changed = (bank.boards != plain.boards).any(axis=1)
    filled = rules.fill_forced(torch.as_tensor(plain.boards, dtype=torch.long))
    stuck = (filled == 0).any(dim=1)  # the naked singles alone do not finish these
    # each board is the generated one or, for 20 of the 40 drawn among `stuck`, its filled form
    is_filled = (boards == filled).all(dim=1)
    assert (is_filled | torch.as_tensor(~changed)).all() and not (changed & ~stuck.numpy()).any()
    starts_stuck = ~((rules.legal_mask(boards).sum(dim=-1) == 1) & (boards == 0)).any(dim=1)
    assert int((starts_stuck & stuck).sum()) >= min(20, int(stuck.sum()))
    assert changed.sum() > 0
    solution = torch.as_tensor(bank.solutions[:, 0], dtype=torch.long)
    assert ((boards == 0) | (boards == solution)).all()  # still the same puzzles
    legal = rules.legal_mask(boards[torch.as_tensor(changed)])
    blank = boards[torch.as_tensor(changed)] == 0
    assert not ((legal.sum(dim=-1) == 1) & blank).any()  # their first move is no naked single
    assert blank.any(dim=1).all()
    again = Curriculum(rules, "off", bank_size=40, seed=3, stuck_share=0.5).bank()
    assert np.array_equal(again.boards, bank.boards)  # reproducible
    with pytest.raises(ValueError, match="stuck_share"):
        Curriculum(rules, "off", stuck_share=1.5)


def test_stuck_share_tops_the_bank_up_when_too_few_puzzles_can_start_stuck():
    """At 31-41 givens naked singles finish about four puzzles in five: asking 60% to start
    stuck generates more of the others, and the bank keeps its size and its difficulty."""
    rules = SudokuRules(3, 3)

    def bank(share: float):
        return Curriculum(
            rules,
            "fixed",
            levels=[(31, 41)],
            fixed_level=0,
            bank_size=50,
            seed=5,
            stuck_share=share,
        ).bank()

    plain, topped = bank(0.0), bank(0.6)
    unfinished = (rules.fill_forced(torch.as_tensor(plain.boards, dtype=torch.long)) == 0).any(1)
    assert int(unfinished.sum()) < 30  # the plain bank alone cannot give 30
    boards = torch.as_tensor(topped.boards, dtype=torch.long)
    blank = boards == 0
    starts_stuck = blank.any(1) & ~((rules.legal_mask(boards).sum(-1) == 1) & blank).any(1)
    assert len(topped) == 50 and int(starts_stuck.sum()) == 30
    solution = torch.as_tensor(topped.solutions[:, 0], dtype=torch.long)
    assert (blank | (boards == solution)).all()  # every board is still its puzzle's
    givens = (~blank[~starts_stuck]).sum(1)  # those that start as generated keep the range
    assert ((givens >= 31) & (givens <= 41)).all()
    assert np.array_equal(bank(0.6).boards, topped.boards)  # reproducible


def test_a_state_saved_with_bare_givens_pairs_still_loads():
    """Checkpoints made before family-defined levels stored each level as a [lo, hi] pair."""
    rules = SudokuRules(2, 2)
    curriculum = small(rules, window=6)
    state = curriculum.state_dict()
    state["levels"] = [list(level["givens"]) for level in state["levels"]]
    state["level"] = 1
    resumed = small(rules, window=6)
    resumed.load_state_dict(state)
    assert resumed.level == 1


def test_maze_levels_are_shortest_path_bands_and_mix_plays_them_all():
    from hrm_rl.envs.maze.rules import MazeRules

    rules = MazeRules(7, 7)
    levels = rules.difficulty_levels()
    assert levels[-1] == {}  # the env's normal difficulty (at least H + W - 2 moves)
    assert [level["min_path"] for level in levels[:-1]] == sorted(
        level["min_path"] for level in levels[:-1]
    )
    curriculum = Curriculum(rules, "mix", bank_size=50, seed=0)
    bank = curriculum.bank()
    distance = rules.shortest_distance(torch.as_tensor(bank.boards, dtype=torch.long))
    for k, level in enumerate(levels):  # 10 mazes of each level, in order
        band = distance[10 * k : 10 * (k + 1)]
        low, high = level.get("min_path", 12), level.get("max_path", 10**6)
        assert ((band >= low) & (band <= high)).all(), (k, band.tolist())
    boards = torch.as_tensor(bank.boards, dtype=torch.long)
    assert rules.legal_mask(boards).flatten(1).any(-1).all()  # even the shortest have a move
    state = curriculum.state_dict()
    torch.save(state, "/dev/null")  # storable as plain types
    Curriculum(rules, "mix", bank_size=50, seed=0).load_state_dict(state)


def test_a_family_without_levels_must_keep_the_curriculum_off():
    from hrm_rl.envs.base import PuzzleRules

    class Bare(PuzzleRules):
        name, num_positions, num_values = "bare", 4, 2

    with pytest.raises(ValueError, match="no difficulty levels"):
        Curriculum(Bare(), "mix")
    assert Curriculum(Bare(), "off").num_levels == 1


def test_a_level_the_generator_options_cannot_meet_names_the_level_and_the_way_out():
    # every 4x4 puzzle falls to singles, so difficulty='search' fails on every level; the error
    # must say which curriculum level failed and how to train on the target difficulty alone
    rules = SudokuRules(2, 2)
    curriculum = small(rules, "mix", generator_options={"difficulty": "search"})
    with pytest.raises(RuntimeError, match=r"level 0 of 5 .*env\.curriculum\.mode=off"):
        curriculum.bank()
    # playing the target alone already: the generator's own error, without that advice
    with pytest.raises(RuntimeError, match="could not generate") as raised:
        small(rules, "off", generator_options={"difficulty": "search"}).bank()
    assert "curriculum.mode=off" not in str(raised.value)
