"""A real external client of the Gymnasium API: sb3-contrib's MaskablePPO trains on our env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hrm_rl  # noqa: F401  (registers the ids)

sb3_contrib = pytest.importorskip("sb3_contrib", reason="sb3-contrib is part of the dev extra")


@pytest.mark.slow
def test_maskable_ppo_learns_for_2000_steps_on_4x4():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger

    venv = make_vec_env("hrm_rl/Sudoku4x4-v0", n_envs=2, seed=0)
    model = MaskablePPO(
        "MultiInputPolicy", venv, n_steps=256, batch_size=64, n_epochs=2, seed=0, device="cpu"
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # no /tmp/SB3-<time> folder
    model.learn(total_timesteps=2000)
    assert model.num_timesteps >= 2000
    # the masks MaskablePPO reads are ours, and its greedy moves respect them
    env = gym.make("hrm_rl/Sudoku4x4-v0")
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        masks = get_action_masks(env)
        action, _ = model.predict(obs, action_masks=masks, deterministic=True)
        assert masks[int(action)]
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()
    assert np.asarray(masks).dtype == bool
