"""Shared fixtures: the self-made puzzle files of tests/data, the third-party files of
../shared/data, and quiet, seeded defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")  # tests never touch the network

TEST_DATA = Path(__file__).resolve().parent / "data"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def self_made_data() -> Path:
    """The self-made puzzle files, one per reader format (remade by tests/data/make_fixtures.py)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The third-party puzzle files; the extra checks that read them skip when they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"third-party puzzle files not found at {SHARED_DATA}: they have no licence and live "
            "beside the repository, not in it (see shared/data/README.md); the same checks run on "
            "the self-made files of tests/data"
        )
    return SHARED_DATA


@pytest.fixture
def warm_ups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every warm-up a PPO policy thinks from here on, as (segments, puzzles warmed up)."""
    from hrm_rl.agents.policy import HRMPolicy

    thought: list[tuple[int, int]] = []
    original = HRMPolicy.think

    def counting_think(self, tensordict, *args, **kwargs):
        outputs, carry = original(self, tensordict, *args, **kwargs)
        thought.append((len(outputs), int(tensordict.shape[0])))
        return outputs, carry

    monkeypatch.setattr(HRMPolicy, "think", counting_think)
    return thought
