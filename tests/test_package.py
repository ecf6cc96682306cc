"""What a user gets from `import hrm_rl`: registered ids and the shipped configs."""

from __future__ import annotations

from importlib import resources

import gymnasium as gym

import hrm_rl


def test_import_registers_the_sudoku_ids():
    for env_id, side in [
        ("hrm_rl/Sudoku-v0", 9),
        ("hrm_rl/Sudoku4x4-v0", 4),
        ("hrm_rl/Sudoku6x6-v0", 6),
    ]:
        env = gym.make(env_id)
        assert env.observation_space["board"].shape == (side * side,)
        assert env.action_space.n == side**3


def test_configs_ship_as_package_data():
    configs = resources.files("hrm_rl.configs")
    assert (configs / "config.yaml").is_file()
    for name in ("sudoku", "sudoku4x4", "sudoku6x6"):
        assert (configs / "env" / f"{name}.yaml").is_file()
    assert hrm_rl.__version__
