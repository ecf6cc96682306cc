"""Train/test splits that never share an instance, exactly or up to relabelling of values.

Every puzzle has a *canonical key*: its board with the values renamed in order of first appearance
(row-major), so two puzzles that differ only by a relabelling of digits share a key. Which split a
puzzle belongs to is a function of a hash of that key, never of its position in a file or of a
random draw, so a relabelled copy of a test puzzle always lands in the test split too.
"""

from __future__ import annotations

import hashlib

import numpy as np

from hrm_rl.envs.base import PuzzleSet

HELD_OUT_SALT = "hrm_rl-held-out-v1"  # fixed: every run holds out the same generated instances
HASH_BUCKETS = 1_000_000


def canonical_key(board: np.ndarray) -> bytes:
    """The board with values renamed 1, 2, … in order of first appearance (0 stays 0)."""
    board = np.asarray(board).ravel()
    relabel = np.zeros(int(board.max(initial=0)) + 1, dtype=np.int64)
    next_label = 1
    for value in board:
        if value and not relabel[value]:
            relabel[value] = next_label
            next_label += 1
    return relabel[board].astype(np.uint8).tobytes()


def in_test_split(board: np.ndarray, test_fraction: float, salt: str = HELD_OUT_SALT) -> bool:
    """Whether the puzzle belongs to the held-out split of the given size."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1], got {test_fraction}")
    digest = hashlib.blake2b(canonical_key(board), digest_size=8, key=salt.encode()).digest()
    return int.from_bytes(digest, "little") % HASH_BUCKETS < round(test_fraction * HASH_BUCKETS)


def split_puzzles(
    puzzles: PuzzleSet, test_fraction: float, salt: str = HELD_OUT_SALT
) -> tuple[PuzzleSet, PuzzleSet]:
    """Split into (train, test) by canonical-key hash; relabelled duplicates share a side."""
    in_test = np.array([in_test_split(b, test_fraction, salt) for b in puzzles.boards], dtype=bool)
    return puzzles.subset(np.flatnonzero(~in_test)), puzzles.subset(np.flatnonzero(in_test))
