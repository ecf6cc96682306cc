"""Train/test splits of a puzzle file never share a puzzle, even up to relabelled digits."""

from __future__ import annotations

import numpy as np
import pytest

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.splits import canonical_key, split_puzzles
from hrm_rl.envs.sudoku.readers import read_puzzles


@pytest.fixture(scope="module", params=["self-made", "shared"])
def kaggle(request: pytest.FixtureRequest) -> PuzzleSet:
    """Kaggle-format puzzles: the self-made file of tests/data (50 puzzles, six of them
    in the test split), then the 1000 of ../shared/data (skipped when that is absent)."""
    if request.param == "self-made":
        return read_puzzles(request.getfixturevalue("self_made_data") / "sudoku" / "kaggle.csv")
    return read_puzzles(request.getfixturevalue("shared_data") / "kaggle_format_test1000.csv")


def relabelled(puzzles: PuzzleSet, seed: int) -> PuzzleSet:
    """The puzzles with their digits renamed by one random permutation (0 stays blank)."""
    rename = np.concatenate([[0], np.random.default_rng(seed).permutation(9) + 1]).astype(np.int8)
    return PuzzleSet(
        boards=rename[puzzles.boards],
        solutions=rename[puzzles.solutions],
        num_solutions=puzzles.num_solutions.copy(),
        has_answer=puzzles.has_answer.copy(),
        origin=[f"relabelled {o}" for o in puzzles.origin],
    )


def test_train_and_test_share_no_canonical_key(kaggle: PuzzleSet) -> None:
    train, test = split_puzzles(kaggle, test_fraction=0.2)

    assert len(train) + len(test) == len(kaggle)
    assert 0 < len(test) < len(kaggle)
    if len(kaggle) >= 1000:
        assert 100 < len(test) < 300  # about a fifth
    train_keys = {canonical_key(b) for b in train.boards}
    test_keys = {canonical_key(b) for b in test.boards}
    assert not train_keys & test_keys


def test_relabelled_copy_of_a_test_puzzle_lands_in_test(kaggle: PuzzleSet) -> None:
    _, test = split_puzzles(kaggle, test_fraction=0.2)
    copies = relabelled(test.subset(np.arange(5)), seed=0)
    assert not (copies.boards == test.boards[:5]).all(axis=1).any()

    train, test_again = split_puzzles(PuzzleSet.concatenate([kaggle, copies]), test_fraction=0.2)

    assert len(test_again) == len(test) + 5
    assert len(train) == len(kaggle) - len(test)
    moved = {b.tobytes() for b in test_again.boards}
    assert all(b.tobytes() in moved for b in copies.boards)
