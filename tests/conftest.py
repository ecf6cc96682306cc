"""Shared fixtures: the public puzzle files of ../shared/data and quiet, seeded defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")  # tests never touch the network

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of public puzzle files; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public puzzle files not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA
