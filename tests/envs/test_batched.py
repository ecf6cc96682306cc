"""BatchedPuzzleEnv: TorchRL specs, partial resets, seeding, augmentation, and equivalence with
the Gymnasium front-end on the same puzzles and actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from equivalence import assert_same_trajectories, random_actions
from torchrl.envs.utils import check_env_specs

from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.gym_env import PuzzleEnv
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.rules import SudokuRules


@pytest.fixture(scope="module")
def bank4():
    return generate(np.random.default_rng(0), 40, box=(2, 2))


@pytest.fixture(scope="module")
def bank9(self_made_data):
    return SudokuRules(3, 3).read(str(self_made_data / "sudoku" / "kaggle.csv"))


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("action_mode", ["cell", "grid"])
def test_check_env_specs(bank9, batch, action_mode):
    env = BatchedPuzzleEnv(
        SudokuRules(3, 3), bank9, batch_size=batch, action_mode=action_mode, seed=0
    )
    check_env_specs(env)


@pytest.mark.parametrize("box", [(2, 2), (2, 3)])
def test_same_puzzles_and_actions_give_identical_trajectories(box):
    """B slots play against B Gymnasium envs that are reset to the puzzle each slot drew."""
    bank = generate(np.random.default_rng(1), 30, box=box, mode="multi", cap=3)
    assert_same_trajectories(SudokuRules(*box), bank, batch_size=6, steps=60)


def test_grid_mode_matches_gymnasium(bank4):
    rules = SudokuRules(2, 2)
    batched = BatchedPuzzleEnv(
        rules,
        bank4,
        batch_size=4,
        action_mode="grid",
        augment=False,
        seed=0,
        max_segments=3,
        shaping=0.5,
    )
    singles = [
        PuzzleEnv(rules=rules, puzzles=bank4, action_mode="grid", max_segments=3, shaping=0.5)
        for _ in range(4)
    ]
    td = batched.reset()
    for env, i in zip(singles, td["puzzle_index"], strict=True):
        env.reset(options={"index": int(i)})
    generator = torch.Generator().manual_seed(1)
    for _ in range(8):
        action = torch.randint(4, (4, 16), generator=generator)
        action[0] = torch.as_tensor(bank4.solutions[int(td["puzzle_index"][0]), 0]).long() - 1
        td["action"] = action
        td, next_td = batched.step_and_maybe_reset(td)
        for b, env in enumerate(singles):
            _, reward, terminated, truncated, _ = env.step(action[b].numpy())
            assert np.float32(reward) == pytest.approx(td["next", "reward"][b, 0].item())
            assert terminated == td["next", "terminated"][b, 0].item()
            assert truncated == td["next", "truncated"][b, 0].item()
            if terminated or truncated:
                env.reset(options={"index": int(next_td["puzzle_index"][b])})
        assert td["next", "terminated"][0].item()  # the true solution always solves
        td = next_td


def test_partial_reset_only_touches_the_masked_slots(bank4):
    env = BatchedPuzzleEnv(SudokuRules(2, 2), bank4, batch_size=8, seed=3)
    td = env.reset()
    td["action"] = torch.multinomial(td["action_mask"].float(), 1).squeeze(-1)
    td = env.step(td)["next"]  # one placement everywhere, so a fresh reset is visible
    before = td.clone()
    reset = torch.zeros(8, 1, dtype=torch.bool)
    reset[[1, 6]] = True
    td["_reset"] = reset
    after = env.reset(td)
    keep = ~reset.squeeze(1)
    torch.testing.assert_close(after["board"][keep], before["board"][keep])
    torch.testing.assert_close(env._board[keep], before["board"][keep])  # internal state too
    assert ((before["board"] != 0) != before["givens"]).any(1).all()  # all slots placed a value
    fresh = after["board"][~keep]
    assert ((fresh != 0) == after["givens"][~keep]).all()  # reset slots hold only givens
    td["_reset"] = reset
    chosen = env.reset(td, puzzle_index=torch.tensor([5, 9]))
    assert chosen["puzzle_index"][[1, 6]].tolist() == [5, 9]


def test_seeded_draws_are_reproducible_and_augmented_puzzles_stay_valid(bank4):
    rules = SudokuRules(2, 2)
    first = BatchedPuzzleEnv(rules, bank4, batch_size=32, seed=7).reset()
    again = BatchedPuzzleEnv(rules, bank4, batch_size=32, seed=7).reset()
    other = BatchedPuzzleEnv(rules, bank4, batch_size=32, seed=8).reset()
    torch.testing.assert_close(first["board"], again["board"])
    assert (first["board"] != other["board"]).any()
    # augmented instances are new boards, whose stored solutions still solve them
    env = BatchedPuzzleEnv(rules, bank4, batch_size=32, seed=7)
    td = env.reset()
    bank_boards = torch.as_tensor(bank4.boards).long()[td["puzzle_index"]]
    assert (td["board"] != bank_boards).any()
    solutions = env._solutions[:, 0]
    assert rules.is_solved(solutions).all()
    assert ((td["board"] == 0) | (td["board"] == solutions)).all()


def test_sequential_order_serves_the_bank_in_order(bank4):
    env = BatchedPuzzleEnv(
        SudokuRules(2, 2), bank4, batch_size=16, order="sequential", augment=False
    )
    assert env.reset()["puzzle_index"].tolist() == list(range(16))
    assert env.reset()["puzzle_index"].tolist() == list(range(16, 32))


def test_bad_arguments_are_refused(bank4):
    rules = SudokuRules(2, 2)
    with pytest.raises(ValueError, match="action_mode"):
        BatchedPuzzleEnv(rules, bank4, action_mode="row")
    with pytest.raises(ValueError, match="positions"):
        BatchedPuzzleEnv(SudokuRules(3, 3), bank4)
    env = BatchedPuzzleEnv(rules, bank4, batch_size=2)
    with pytest.raises(ValueError, match="puzzle_index"):
        env.reset(puzzle_index=torch.tensor([0, 99]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_runs_on_cuda(bank4):
    env = BatchedPuzzleEnv(SudokuRules(2, 2), bank4, batch_size=64, device="cuda", seed=0)
    td = env.reset()
    assert td["board"].device.type == "cuda"
    td["action"] = torch.multinomial(td["action_mask"].float(), 1).squeeze(-1)
    td, _ = env.step_and_maybe_reset(td)
    assert td["next", "reward"].device.type == "cuda"


def test_episode_state_round_trip_continues_the_same_episodes(bank4):
    rules = SudokuRules(2, 2)
    env = BatchedPuzzleEnv(rules, bank4, batch_size=8, seed=4)
    td = env.reset()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        td["action"] = random_actions(td["action_mask"], generator, illegal_share=0.1)
        _, td = env.step_and_maybe_reset(td)
    state = env.episode_state()
    twin = BatchedPuzzleEnv(rules, bank4, batch_size=8, seed=99)
    twin.reset()
    twin.load_episode_state(state)
    td_twin = td.clone()
    for _ in range(6):  # same actions, then resets draw the same puzzles and augmentations
        action = random_actions(td["action_mask"], generator, illegal_share=0.1)
        td["action"], td_twin["action"] = action, action.clone()
        out, td = env.step_and_maybe_reset(td)
        out_twin, td_twin = twin.step_and_maybe_reset(td_twin)
        torch.testing.assert_close(out["next"].to_dict(), out_twin["next"].to_dict())
        torch.testing.assert_close(td["board"], td_twin["board"])
    with pytest.raises(ValueError, match="episode state"):
        BatchedPuzzleEnv(rules, bank4, batch_size=4).load_episode_state(state)
