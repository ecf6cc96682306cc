"""Fixtures of the agent tests."""

from __future__ import annotations

import numpy as np
import pytest

from hrm_rl.envs.sudoku.generator import generate


@pytest.fixture(scope="module")
def bank():
    """64 unique-solution 4x4 puzzles."""
    return generate(np.random.default_rng(0), 64, box=(2, 2))
