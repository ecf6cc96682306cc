"""`python -m hrm_rl.train`: a tiny run end to end, resuming it, and the config errors users see."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from hrm_rl.agents.ppo import PPOConfig
from hrm_rl.agents.supervised import SupervisedConfig
from hrm_rl.checkpoint import load_checkpoint, save_checkpoint
from hrm_rl.models import HRMConfig
from hrm_rl.run_state import crossed

TINY_RUN = [
    "env=sudoku4x4",
    "logger=csv",
    "batch_size=8",
    "rollout=4",
    "eval.every=64",
    "eval.num_puzzles=16",
    "checkpoint.every=64",
]


def run_train(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``python -m hrm_rl.train OVERRIDES`` from ``cwd``, with W&B off."""
    return subprocess.run(
        [sys.executable, "-m", "hrm_rl.train", *overrides],
        cwd=cwd,
        env={**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def metric_rows(run_dir: Path, key: str) -> list[tuple[int, float]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [(int(r["step"]), float(r["value"])) for r in csv.DictReader(f) if r["key"] == key]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """A 96-frame 4x4 run started from an unrelated folder: (run dir, final checkpoint)."""
    cwd = tmp_path_factory.mktemp("cwd")
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_train(cwd, *TINY_RUN, "total_frames=96", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, Path(last_line(result.stdout))


@pytest.mark.slow
def test_a_tiny_run_writes_metrics_curves_and_prints_its_checkpoint_last(tiny_run):
    run_dir, checkpoint_path = tiny_run
    assert checkpoint_path.is_absolute() and checkpoint_path.is_file()
    assert checkpoint_path.parent == run_dir
    assert [step for step, _ in metric_rows(run_dir, "eval/solve_rate")] == [64, 96]
    assert (run_dir / "learning_curves.png").stat().st_size > 0
    state = load_checkpoint(checkpoint_path)
    assert state["frames"] == 96 and state["iteration"] == 3
    assert {"model", "optimizer", "scheduler", "rng", "curriculum", "config"} <= state.keys()
    assert "sudoku4x4" not in state["config"] and "box:\n  - 2\n  - 2" in state["config"]


@pytest.mark.slow
def test_the_final_evaluation_plays_every_held_out_puzzle_even_on_a_periodic_frame(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        *TINY_RUN,
        "total_frames=64",
        "eval.periodic_puzzles=4",
        f"hydra.run.dir={run_dir}",
    ]
    result = run_train(tmp_path, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    # the periodic evaluation at frame 64 plays 4 puzzles, the final one all 16
    assert [step for step, _ in metric_rows(run_dir, "eval/solve_rate")] == [64, 64]


@pytest.mark.slow
def test_resume_continues_the_run_to_the_global_frame_budget(tiny_run, tmp_path):
    run_dir, checkpoint_path = tiny_run
    before = load_checkpoint(checkpoint_path)
    # Only the budget is given: the 4x4 env, batch and model come from the checkpoint.
    result = run_train(
        tmp_path,
        f"resume={checkpoint_path}",
        "total_frames=160",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resumed_path = Path(last_line(result.stdout))
    assert resumed_path == checkpoint_path  # same run dir, same file
    after = load_checkpoint(resumed_path)
    assert after["frames"] == 160
    assert after["iteration"] == before["iteration"] + 2
    assert not torch.equal(after["rng"]["torch"], before["rng"]["torch"])
    steps = [step for step, _ in metric_rows(run_dir, "frames")]
    assert steps == [32, 64, 96, 128, 160]  # appended to the same metrics.csv


def test_an_unknown_env_lists_the_valid_choices(tmp_path):
    result = run_train(tmp_path, "env=nope")
    assert result.returncode != 0
    assert "Could not find 'env/nope'" in result.stderr
    for choice in ("sudoku", "sudoku4x4", "sudoku6x6"):
        assert choice in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_an_unknown_key_is_an_error(tmp_path):
    result = run_train(tmp_path, "foo=1")
    assert result.returncode != 0
    assert "Key 'foo' is not in struct" in result.stderr


@pytest.mark.parametrize("model", ["small", "hrm"])
def test_the_model_and_agent_groups_fill_every_field_of_their_config(model):
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model}"])
    sizes_from_env = {"num_positions", "num_values"}
    assert set(cfg.model) == {f.name for f in dataclasses.fields(HRMConfig)} - sizes_from_env
    assert set(cfg.agent) - {"name"} == {f.name for f in dataclasses.fields(PPOConfig)}
    assert cfg.agent.name == "ppo"


def test_the_supervised_agent_config_fills_every_field_of_its_dataclass():
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=["agent=supervised"])
    assert set(cfg.agent) - {"name"} == {f.name for f in dataclasses.fields(SupervisedConfig)}
    assert cfg.agent.name == "supervised"


def test_the_supervised_agent_needs_grid_mode_and_no_warm_up(tmp_path):
    result = run_train(tmp_path, "agent=supervised", "env=sudoku4x4", "logger=none")
    assert result.returncode != 0
    assert "env.action_mode=grid" in result.stderr
    warmed = ("agent=supervised", "env=sudoku4x4", "env.action_mode=grid", "logger=none")
    result = run_train(tmp_path, *warmed, "model.warmup_segments=2")
    assert result.returncode != 0
    assert "model.warmup_segments" in result.stderr


@pytest.mark.slow
def test_a_supervised_run_trains_resumes_and_its_checkpoint_evaluates(tmp_path):
    run_dir = tmp_path / "supervised"
    common = ["logger=csv", "eval.every=256", "eval.num_puzzles=16", "checkpoint.every=256"]
    first = run_train(
        tmp_path,
        "agent=supervised",
        "agent.segments=2",
        "env=sudoku4x4",
        "env.action_mode=grid",
        "batch_size=64",
        "total_frames=256",
        *common,
        f"hydra.run.dir={run_dir}",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = Path(last_line(first.stdout))
    assert load_checkpoint(checkpoint)["frames"] == 256
    resumed = run_train(tmp_path, f"resume={checkpoint}", "total_frames=512")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(checkpoint)["frames"] == 512
    assert f"its outputs go on in {run_dir.resolve()}" in resumed.stdout + resumed.stderr
    steps = [step for step, _ in metric_rows(run_dir, "supervised/loss")]
    assert steps == sorted(steps) and steps[-1] == 512 and len(set(steps)) == len(steps)
    assert [step for step, _ in metric_rows(run_dir, "eval/solve_rate")] == [256, 512]
    evaluated = subprocess.run(
        [sys.executable, "-m", "hrm_rl.evaluate", f"checkpoint={checkpoint}", "num_puzzles=16"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads(Path(last_line(evaluated.stdout)).read_text())
    assert report["puzzles"] == 16 and report["mean_moves"] == 2.0
    assert 0.0 <= report["pass@1"] <= report["pass@8"] <= 1.0


@pytest.mark.parametrize("env", ["sudoku", "sudoku4x4", "sudoku6x6"])
def test_every_env_config_names_a_curriculum_mode_as_a_string(env):
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=[f"env={env}"])
    assert cfg.env.curriculum.mode in ("off", "fixed", "auto", "mix")  # YAML: a bare off is False


def test_periodic_events_fire_once_per_multiple_of_their_interval():
    fired = [frames for frames in range(32, 321, 32) if crossed(frames - 32, frames, 100)]
    assert fired == [128, 224, 320]
    assert not any(crossed(frames - 32, frames, 0) for frames in range(32, 321, 32))


@pytest.mark.slow
def test_sigkill_after_the_first_checkpoint_then_resume_continues_exactly(tmp_path):
    """A run killed with SIGKILL right after its first checkpoint, then resumed, logs exactly
    what an uninterrupted run logs: same frames, optimizer steps, batches and losses."""
    fixed = [*TINY_RUN, "agent.total_iterations=4"]  # the lr schedule must not depend on the budget
    straight = tmp_path / "straight"
    assert (
        run_train(tmp_path, *fixed, "total_frames=128", f"hydra.run.dir={straight}").returncode == 0
    )

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hrm_rl.train",
            *fixed,
            "total_frames=100000",
            f"hydra.run.dir={killed}",
        ],
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = killed / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    first = load_checkpoint(checkpoint)
    assert first["frames"] == 64 and first["iteration"] == 2

    resumed = run_train(tmp_path, f"resume={checkpoint}", "total_frames=128")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    end_straight = load_checkpoint(straight / "checkpoint.pt")
    end_resumed = load_checkpoint(killed / "checkpoint.pt")
    assert end_resumed["frames"] == end_straight["frames"] == 128
    assert end_resumed["iteration"] == end_straight["iteration"] == 4
    steps = [s["step"] for s in end_straight["optimizer"]["state"].values()]
    assert [s["step"] for s in end_resumed["optimizer"]["state"].values()] == steps
    for name, value in end_straight["model"].items():
        torch.testing.assert_close(end_resumed["model"][name], value, rtol=0, atol=0)
    # the batches after the checkpoint were the same: same training solve rates and losses
    for key in ("train/solve_rate", "train/episodes", "ppo/loss_objective"):
        after = {step: value for step, value in metric_rows(killed, key) if step > 64}
        assert after == {step: value for step, value in metric_rows(straight, key) if step > 64}


@pytest.mark.slow
def test_a_checkpoint_with_the_old_carry_key_names_resumes_like_a_new_one(tmp_path):
    """Checkpoints written before the tensordict took the model's names ("memory" for the cells'
    contents, "cells" for the chosen cells) resume to the very same weights."""
    fixed = [*TINY_RUN, "agent.total_iterations=4"]
    first = tmp_path / "first"
    assert run_train(tmp_path, *fixed, "total_frames=64", f"hydra.run.dir={first}").returncode == 0
    state = load_checkpoint(first / "checkpoint.pt")
    old_names = {"cells": "memory", "selections": "cells", "log_prob_selections": "log_prob_cells"}
    old_names["selections_greedy"] = "cells_greedy"
    renamed = {}
    for key, value in state["carrier"].items():
        *path, leaf = key.split("/")
        renamed["/".join([*path, old_names.get(leaf, leaf)])] = value
    assert (
        any(key.endswith("memory") for key in renamed) and renamed.keys() != state["carrier"].keys()
    )
    ends = {}
    for name, carrier in (("new", state["carrier"]), ("old", renamed)):
        (tmp_path / name).mkdir()
        save_checkpoint(tmp_path / name / "checkpoint.pt", {**state, "carrier": carrier})
        resumed = run_train(
            tmp_path, f"resume={tmp_path / name / 'checkpoint.pt'}", "total_frames=128"
        )
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        ends[name] = load_checkpoint(tmp_path / name / "checkpoint.pt")
    assert ends["old"]["frames"] == ends["new"]["frames"] == 128
    for name, value in ends["new"]["model"].items():
        torch.testing.assert_close(ends["old"]["model"][name], value, rtol=0, atol=0)


@pytest.mark.slow
def test_the_final_checkpoint_counts_the_seconds_of_the_final_evaluation(tmp_path):
    """The last update lands on a checkpoint frame and the evaluation comes after the loop: the
    checkpoint a resume reads must still count those seconds against the time budget."""
    run_dir = tmp_path / "final"
    no_periodic_eval = [arg for arg in TINY_RUN if not arg.startswith("eval.every=")]
    result = run_train(
        tmp_path,
        *no_periodic_eval,
        "eval.every=1000",
        "total_frames=64",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(Path(last_line(result.stdout)))
    [(step, seconds)] = metric_rows(run_dir, "time/seconds")[-1:]
    assert step == state["frames"] == 64
    assert [step for step, _ in metric_rows(run_dir, "eval/solve_rate")] == [64]
    assert state["spent_seconds"] >= seconds


@pytest.mark.slow
def test_a_time_budget_stops_the_run_early_with_a_final_checkpoint(tmp_path):
    run_dir = tmp_path / "budget"
    result = run_train(
        tmp_path,
        *TINY_RUN,
        "total_frames=1000000",
        "time_budget.minutes=0.15",
        "time_budget.clock=cpu",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "time budget of 0.15 cpu minutes used up" in result.stdout + result.stderr
    state = load_checkpoint(Path(last_line(result.stdout)))
    assert 0 < state["frames"] < 1_000_000
    assert state["spent_seconds"] >= 9.0  # 0.15 minutes
    assert [step for step, _ in metric_rows(run_dir, "eval/solve_rate")][-1] == state["frames"]


def test_a_run_with_neither_a_frame_limit_nor_a_time_budget_is_refused(tmp_path):
    result = run_train(tmp_path, *TINY_RUN, "total_frames=null", "time_budget.minutes=null")
    assert result.returncode != 0
    assert "nothing would stop the run" in result.stderr


def test_an_unknown_time_budget_clock_is_an_error(tmp_path):
    result = run_train(tmp_path, *TINY_RUN, "time_budget.clock=sundial")
    assert result.returncode != 0
    assert "time_budget.clock must be one of ['cpu', 'wall'], got 'sundial'" in result.stderr


@pytest.mark.slow
def test_a_tiny_maze_run_trains_evaluates_and_its_weights_carry_to_larger_mazes(tmp_path):
    run_dir = tmp_path / "maze"
    result = run_train(
        tmp_path,
        "env=maze7x7",
        "logger=none",
        "batch_size=8",
        "rollout=4",
        "total_frames=64",
        "eval.every=64",
        "eval.num_puzzles=8",
        "checkpoint.every=64",
        "env.bank_size=64",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = Path(last_line(result.stdout))
    assert "family: maze" in load_checkpoint(checkpoint)["config"]
    evaluated = subprocess.run(
        [sys.executable, "-m", "hrm_rl.evaluate", f"checkpoint={checkpoint}", "num_puzzles=8"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads(Path(last_line(evaluated.stdout)).read_text())
    assert report["env"] == "MazeRules(7x7)" and report["puzzles"] == 8
    paths = [row["shortest_path"] for row in report["by_shortest_path"]]  # not walls as givens
    assert report["measure"] == "shortest_path" and min(paths) >= 12  # the 7x7 held-out minimum
    assert sum(row["puzzles"] for row in report["by_shortest_path"]) == 8
    trained = load_checkpoint(checkpoint)["model"]

    # the same weights play 9x9 mazes: evaluate with env.size ...
    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "hrm_rl.evaluate",
            f"checkpoint={checkpoint}",
            "env.size=[9,9]",
            "num_puzzles=6",
            "attempts=1",
            f"out={tmp_path / 'eval9.json'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads((tmp_path / "eval9.json").read_text())
    assert report["env"] == "MazeRules(9x9)" and report["puzzles"] == 6
    # ... and a 9x9 run starts from them with init= (lr 0: they stay the 7x7 run's weights)
    larger = tmp_path / "maze9"
    result = run_train(
        tmp_path,
        "env=maze9x9",
        f"init={checkpoint}",
        "agent.lr=0",
        "seed=1",
        "logger=none",
        "batch_size=8",
        "rollout=4",
        "total_frames=32",
        "eval.every=32",
        "eval.num_puzzles=4",
        "checkpoint.every=32",
        "env.bank_size=16",
        f"hydra.run.dir={larger}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    started = load_checkpoint(Path(last_line(result.stdout)))
    assert "size:\n  - 9\n  - 9" in started["config"]
    for key, value in trained.items():
        assert torch.equal(started["model"][key], value), key
    # ... and that run resumes: its own weights, not the init= checkpoint's (moved away here)
    checkpoint.rename(tmp_path / "moved.pt")
    resumed = run_train(tmp_path, f"resume={last_line(result.stdout)}", "total_frames=64")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(Path(last_line(result.stdout)))["frames"] == 64
    (tmp_path / "moved.pt").rename(checkpoint)
    # giving both on one command line is refused
    result = run_train(tmp_path, f"resume={last_line(result.stdout)}", f"init={checkpoint}")
    assert result.returncode != 0 and "give one of them" in result.stderr

    # weights that cannot fit (4 Sudoku values, not one path value) are a one-line error
    result = run_train(
        tmp_path, "env=sudoku4x4", f"init={checkpoint}", f"hydra.run.dir={tmp_path / 'no'}"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "do not fit the model this run's config builds" in result.stderr


def test_experiment_presets_set_the_run_they_document():
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        long_run = compose("config", overrides=["experiment=sudoku9x9_60cpumin"])
        fast = compose("config", overrides=["experiment=sudoku4x4_fast", "seed=3"])
        maze = compose("config", overrides=["experiment=maze7x7"])
        maze15 = compose("config", overrides=["experiment=maze15x15"])
    assert long_run.env.box == [3, 3] and long_run.batch_size == 256
    assert long_run.time_budget.minutes == 60 and long_run.time_budget.clock == "cpu"
    assert fast.env.box == [2, 2] and list(fast.env.givens) == [4, 8] and fast.seed == 3
    assert fast.total_frames == 49152
    assert maze.env.size == [7, 7] and maze.model.attention == "graph"
    assert maze.model.warmup_segments == 3 and maze.eval.keep_best
    assert maze.eval.validation_puzzles == 200 and maze.time_budget.minutes == 20
    assert maze15.env.size == [15, 15] and maze15.model.grad == "full"
    assert maze15.agent.board_on_warmup and maze15.agent.aux_weights.board == 1.0
    assert not maze15.agent.warmup_checkpoint  # as its README runs were measured
    assert maze15.model.warmup_segments == 3 and list(maze15.eval.warmup_segments) == [3, 10]


def test_an_unknown_experiment_lists_the_presets(tmp_path):
    result = run_train(tmp_path, "experiment=nope")
    assert result.returncode != 0
    assert "sudoku4x4_fast" in result.stderr and "sudoku9x9_60cpumin" in result.stderr


@pytest.mark.slow
def test_keep_best_saves_the_checkpoint_of_the_best_validation_rate_and_tests_it(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        *TINY_RUN,
        "total_frames=128",
        "eval.every=32",
        "eval.validation_puzzles=8",
        "eval.keep_best=true",
        f"hydra.run.dir={run_dir}",
    ]
    result = run_train(tmp_path, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    # periodic evaluations play the validation bank (valid/), the final one the held-out bank
    valid = metric_rows(run_dir, "valid/solve_rate")
    assert [step for step, _ in valid] == [32, 64, 96, 128]
    assert [step for step, _ in metric_rows(run_dir, "eval/solve_rate")] == [128]
    best_rate = max(rate for _, rate in valid)
    best_step = next(step for step, rate in valid if rate == best_rate)  # the first best
    best = load_checkpoint(run_dir / "best.pt")
    assert best["frames"] == best_step and best["best_rate"] == best_rate
    assert load_checkpoint(run_dir / "checkpoint.pt")["frames"] == 128
    assert metric_rows(run_dir, "eval_best/frames") == [(128, float(best_step))]
    [(_, held_out)] = metric_rows(run_dir, "eval_best/solve_rate")
    assert 0.0 <= held_out <= 1.0
    # the same held-out puzzles played from best.pt by the evaluation command
    result = subprocess.run(
        [sys.executable, "-m", "hrm_rl.evaluate", f"checkpoint={run_dir / 'best.pt'}"]
        + ["num_puzzles=16", "attempts=1", f"out={tmp_path / 'best.json'}"],
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "best.json").read_text())["pass@1"] == held_out


def test_keep_best_without_a_validation_bank_is_refused(tmp_path):
    result = run_train(tmp_path, *TINY_RUN, "total_frames=32", "eval.keep_best=true")
    assert result.returncode != 0
    assert "eval.validation_puzzles" in result.stderr


def test_the_trainer_evaluates_the_weights_it_is_given_not_only_its_own():
    # best.pt's held-out rate comes from trainer.evaluate(best weights): it must play them
    from hrm_rl.build import build_agent, build_model, held_out_puzzles, make_curriculum
    from hrm_rl.envs.registration import rules_from_config
    from hrm_rl.trainers import make_trainer

    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=["env=sudoku4x4", "batch_size=4", "rollout=2"])
    rules = rules_from_config(cfg.env)
    model = build_model(rules, cfg.model, torch.device("cpu"))
    agent, _ = build_agent(cfg, model, rules)
    bank = make_curriculum(rules, cfg.env, 0).bank()
    trainer = make_trainer(agent, rules, bank, cfg, torch.device("cpu"), 0)
    puzzles = held_out_puzzles(rules, cfg.env, 8)
    other = build_model(rules, cfg.model, torch.device("cpu"))
    other.load_state_dict(model.state_dict())
    calls = {"own": 0, "other": 0}
    model.register_forward_hook(lambda *_: calls.__setitem__("own", calls["own"] + 1))
    other.register_forward_hook(lambda *_: calls.__setitem__("other", calls["other"] + 1))
    try:
        mine = trainer.evaluate(model, puzzles)
        assert calls["own"] > 0 and calls["other"] == 0
        calls["own"] = 0
        theirs = trainer.evaluate(other, puzzles)
        assert calls["other"] > 0 and calls["own"] == 0
        assert theirs == mine  # the same weights play the same greedy games
    finally:
        trainer.shutdown()


def test_a_list_of_eval_warmup_segments_is_chosen_among_on_validation_puzzles_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
):
    """``eval.warmup_segments=[3,0,2]``: periodic evaluations think as trained; the final one
    plays ``eval.choice_puzzles`` validation puzzles (none held out) with each count, keeps the
    best (the fewer on a tie) and plays the held-out puzzles with it."""
    import numpy as np

    import hrm_rl.trainers as trainers
    from hrm_rl.build import (
        build_agent,
        build_model,
        held_out_puzzles,
        make_curriculum,
        validation_puzzles,
    )
    from hrm_rl.envs.registration import rules_from_config

    base = ["env=sudoku4x4", "batch_size=4", "rollout=2", "model.warmup_segments=1"]
    base.append("eval.choice_puzzles=5")
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=[*base, "eval.warmup_segments=[3,0,2]"])
        bad = [
            compose("config", overrides=[*base, f"eval.warmup_segments={counts}"])
            for counts in ("[2,2]", "[-1,3]", "[1,x]")
        ]
    rules = rules_from_config(cfg.env)
    model = build_model(rules, cfg.model, torch.device("cpu"))
    agent, _ = build_agent(cfg, model, rules)
    bank = make_curriculum(rules, cfg.env, 0).bank()
    held_out = held_out_puzzles(rules, cfg.env, 8)
    validation = np.asarray(validation_puzzles(rules, cfg.env, 5, held_out).boards)
    rates = {0: 0.25, 2: 0.5, 3: 0.5}  # what each count "solves" of the validation puzzles
    played = []  # (segments, boards) of every greedy evaluation
    original = trainers.greedy_solve_rate

    def rigged(actor, model, rules, puzzles, *args, **kwargs):
        played.append((actor.warmup_segments, np.asarray(puzzles.boards)))
        result = original(actor, model, rules, puzzles, *args, **kwargs)
        if len(puzzles) == 5:
            result["solve_rate"] = rates[actor.warmup_segments]
        return result

    monkeypatch.setattr(trainers, "greedy_solve_rate", rigged)
    trainer = trainers.make_trainer(agent, rules, bank, cfg, torch.device("cpu"), 0)
    try:
        periodic = trainer.evaluate(model, held_out)
        assert [segments for segments, _ in played] == [1]  # as trained
        assert "eval/warmup_segments" not in periodic
        played.clear()
        final = trainer.evaluate(model, held_out, final=True)
    finally:
        trainer.shutdown()
    assert [segments for segments, _ in played] == [0, 2, 3, 2]
    assert all(np.array_equal(boards, validation) for _, boards in played[:3])
    assert np.array_equal(played[3][1], np.asarray(held_out.boards))
    assert final["eval/warmup_segments"] == 2  # 2 and 3 tie: the fewer
    assert final["valid/solve_rate_warmup0"] == 0.25 and final["valid/solve_rate_warmup3"] == 0.5
    assert 0.0 <= final["eval/solve_rate"] <= 1.0
    assert trainer.eval_actor.warmup_segments == 1  # later evaluations think as trained again
    for config in bad:
        with pytest.raises(ValueError, match="two or more different integers >= 0"):
            trainers.make_trainer(agent, rules, bank, config, torch.device("cpu"), 0)
    cfg.eval.choice_puzzles = 0
    with pytest.raises(ValueError, match="eval.choice_puzzles must be at least 1"):
        trainers.make_trainer(agent, rules, bank, cfg, torch.device("cpu"), 0)


def test_eval_warmup_segments_thinks_longer_in_evaluations_and_leaves_training_alone(
    warm_ups: list[tuple[int, int]],
):
    from hrm_rl.build import build_agent, build_model, held_out_puzzles, make_curriculum
    from hrm_rl.envs.registration import rules_from_config
    from hrm_rl.trainers import make_trainer

    def segments() -> set[int]:  # the segment counts of the warm-ups since the last clear()
        return {count for count, _ in warm_ups}

    base = ["env=sudoku4x4", "batch_size=4", "rollout=2", "model.warmup_segments=1"]
    with initialize_config_module("hrm_rl.configs", version_base="1.3"):
        cfg = compose("config", overrides=[*base, "eval.warmup_segments=3"])
        plain = compose("config", overrides=base)
        bad = compose("config", overrides=[*base, "eval.warmup_segments=-2"])
        supervised = compose(
            "config",
            overrides=["agent=supervised", "env=sudoku4x4", "env.action_mode=grid"]
            + ["eval.warmup_segments=3"],
        )
    rules = rules_from_config(cfg.env)
    model = build_model(rules, cfg.model, torch.device("cpu"))
    agent, _ = build_agent(cfg, model, rules)
    bank = make_curriculum(rules, cfg.env, 0).bank()
    puzzles = held_out_puzzles(rules, cfg.env, 8)
    trainer = make_trainer(agent, rules, bank, cfg, torch.device("cpu"), 0)
    warm_ups.clear()  # the collector may act once as it starts
    try:
        trainer.evaluate(model, puzzles)
        assert warm_ups and segments() == {3}  # every fresh puzzle: three segments
        warm_ups.clear()
        trainer.step(0.0)  # acting in training keeps the trained warm-up
        assert warm_ups and segments() == {1}
    finally:
        trainer.shutdown()
    trainer = make_trainer(agent, rules, bank, plain, torch.device("cpu"), 0)
    warm_ups.clear()
    try:
        trainer.evaluate(model, puzzles)  # null: evaluations think as trained
        assert warm_ups and segments() == {1}
    finally:
        trainer.shutdown()
    with pytest.raises(ValueError, match="eval.warmup_segments must be null, an integer"):
        make_trainer(agent, rules, bank, bad, torch.device("cpu"), 0)
    sup_rules = rules_from_config(supervised.env)
    sup_model = build_model(sup_rules, supervised.model, torch.device("cpu"))
    sup_agent, _ = build_agent(supervised, sup_model, sup_rules)
    with pytest.raises(ValueError, match="agent=supervised runs agent.segments"):
        make_trainer(sup_agent, sup_rules, bank, supervised, torch.device("cpu"), 0)
