"""The maze family's registration: its rules by name, its Gymnasium ids and its env configs."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
from omegaconf import OmegaConf

import hrm_rl  # noqa: F401  (registers the Gymnasium ids)
from hrm_rl.envs.registration import make_rules, rules_from_config


def test_registered_ids_and_configs():
    assert repr(make_rules("maze", size=(15, 15))) == "MazeRules(15x15)"
    assert repr(gym.make("hrm_rl/Maze-v0").unwrapped.rules) == "MazeRules(30x30)"
    configs = Path(__file__).resolve().parents[3] / "configs" / "env"
    for name, side in [("maze", 30), ("maze7x7", 7), ("maze9x9", 9), ("maze15x15", 15)]:
        cfg = OmegaConf.load(configs / f"{name}.yaml")
        assert cfg.givens is None and cfg.curriculum.mode == "off"
        assert repr(rules_from_config(cfg)) == f"MazeRules({side}x{side})"
