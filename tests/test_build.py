"""hrm_rl.build: what a config turns into, for train, evaluate and bench alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from hrm_rl.agents.ppo import PPOAgent, PPOConfig
from hrm_rl.build import (
    build_agent,
    build_model,
    env_options,
    held_out_puzzles,
    make_curriculum,
    validation_puzzles,
)
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.registration import rules_from_config
from hrm_rl.envs.splits import canonical_key, in_test_split
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.solver import rate


def test_grid_mode_knobs_reach_the_env_from_the_command_line():
    overrides = ["env=sudoku4x4", "env.action_mode=grid", "env.shaping=0.5", "env.max_segments=3"]
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    options = env_options(cfg.env)
    assert options["shaping"] == 0.5 and options["max_segments"] == 3
    rules = rules_from_config(cfg.env)
    env = BatchedPuzzleEnv(rules, generate(np.random.default_rng(0), 2, box=(2, 2)), 2, **options)
    assert env.action_mode == "grid" and env.max_segments == 3 and env.transition.shaping == 0.5


def test_a_config_saved_before_the_grid_knobs_existed_gets_their_defaults():
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=["env=sudoku4x4"])
    old = OmegaConf.to_container(cfg.env)
    del old["shaping"], old["max_segments"]
    options = env_options(OmegaConf.create(old))
    assert options["shaping"] == 0.0 and options["max_segments"] == 16


def test_a_model_config_saved_with_the_old_empty_extra_still_builds():
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=["env=sudoku4x4"])
    rules = rules_from_config(cfg.env)
    old = OmegaConf.to_container(cfg.model)
    old["extra"] = {}
    model = build_model(rules, OmegaConf.create(old), torch.device("cpu"))
    assert model.config == build_model(rules, cfg.model, torch.device("cpu")).config
    old["extra"] = {"depth": 2}
    with pytest.raises(ValueError, match="model.extra"):
        build_model(rules, OmegaConf.create(old), torch.device("cpu"))


def test_the_board_target_weight_needs_rules_that_give_a_target_board():
    """agent.aux_weights.board > 0 builds for mazes (their rules give the shortest-path cells)
    and is refused, naming the option, for Sudoku (no target from the board alone)."""
    for env, works in (("maze7x7", True), ("sudoku4x4", False)):
        with initialize_config_module("hrm_rl.configs", version_base="1.3"):
            cfg = compose("config", overrides=[f"env={env}", "agent.aux_weights.board=0.5"])
        rules = rules_from_config(cfg.env)
        model = build_model(rules, cfg.model, torch.device("cpu"))
        if works:
            agent, _ = build_agent(cfg, model, rules)
            assert agent.config.aux_weights["board"] == 0.5 and agent.target_board is not None
        else:
            with pytest.raises(ValueError, match="agent.aux_weights.board"):
                build_agent(cfg, model, rules)
    with pytest.raises(ValueError, match="target_board"):  # the agent alone refuses it too
        PPOAgent(model, PPOConfig(aux_weights={"board": 0.5}))
    assert PPOAgent(model, PPOConfig(), rules.target_board)  # weight 0: nothing is asked


def test_extra_levels_put_puzzles_singles_cannot_finish_into_the_mixed_bank():
    overrides = [
        "env=sudoku",
        "env.bank_size=12",
        "env.curriculum.extra_levels=[{difficulty:search}]",
    ]
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    rules = rules_from_config(cfg.env)
    curriculum = make_curriculum(rules, cfg.env, seed=0)
    assert curriculum.num_levels == len(rules.difficulty_levels()) + 1
    assert curriculum.levels[-1] == {"difficulty": "search"}
    bank = curriculum.bank()
    levels = [rate(board).level for board in bank.boards]
    # 6 levels of 2: the last two need search, the easy levels never do
    assert levels[-2:] == ["search", "search"] and levels[:2] == ["singles", "singles"]

    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        off = compose("config", overrides=[*overrides, "env.curriculum.mode=off"])
        bad = compose("config", overrides=["env=sudoku", "env.curriculum.extra_levels=[search]"])
    assert make_curriculum(rules, off.env, seed=0).levels == [None]  # one difficulty: unused
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        none = compose("config", overrides=["env=sudoku", "env.curriculum.extra_levels=[]"])
    assert make_curriculum(rules, none.env, seed=0).num_levels == len(rules.difficulty_levels())
    with pytest.raises(ValueError, match="extra_levels"):
        make_curriculum(rules, bad.env, seed=0)


def test_the_validation_bank_never_repeats_a_held_out_puzzle_and_does_not_depend_on_the_seed():
    # 4x4 boards are few, so the generator repeats held-out puzzles often: the bank must skip them
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=["env=sudoku4x4", "seed=1"])
    rules = rules_from_config(cfg.env)
    held_out = held_out_puzzles(rules, cfg.env, 200)
    validation = validation_puzzles(rules, cfg.env, 100, held_out)
    assert len(validation) == 100
    taken = {canonical_key(board) for board in held_out.boards}
    keys = [canonical_key(board) for board in validation.boards]
    assert not taken & set(keys) and len(set(keys)) == 100
    assert all(in_test_split(board, 0.1) for board in validation.boards)  # never trained on
    again = validation_puzzles(rules, cfg.env, 100, held_out)
    assert np.array_equal(again.boards, validation.boards)
    with pytest.raises(ValueError, match="validation_puzzles must be at least 1"):
        validation_puzzles(rules, cfg.env, 0, held_out)
