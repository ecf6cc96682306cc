"""The MaskablePPO contender trains within its wall-clock budget and reports what it promises."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from hrm_rl.bench.sb3 import run_maskable_ppo
from hrm_rl.envs.registration import make_rules

sb3_contrib = pytest.importorskip("sb3_contrib", reason="sb3-contrib is part of the dev extra")

KEYS = {
    "contender",
    "agent",
    "parameters",
    "frames",
    "seconds",
    "pass@1",
    "pass@4",
    "attempts",
    "exact_match",
    "mistakes",
    "puzzles",
    "curve",
}


@pytest.fixture(scope="module")
def sudoku4x4():
    """4x4 Sudoku rules with disjoint training and held-out puzzles."""
    rules = make_rules("sudoku", box=(2, 2))
    train = rules.generate(np.random.default_rng(0), 200, held_out=False)
    held_out = rules.generate(np.random.default_rng(1), 30, held_out=True)
    return rules, train, held_out


@pytest.mark.slow
def test_trains_for_the_budget_and_reports_pass_at_k(sudoku4x4):
    rules, train, held_out = sudoku4x4
    budget = 8.0
    result = run_maskable_ppo(
        rules, train, held_out, budget_seconds=budget, seed=0, attempts=4, curve_points=3, n_envs=4
    )
    assert set(result) == KEYS
    assert json.loads(json.dumps(result)) == result  # JSON-serialisable as it stands
    assert result["contender"] == "sb3_maskable_ppo"
    assert result["parameters"] > 0 and result["frames"] > 0
    assert result["puzzles"] == len(held_out) and result["attempts"] == 4
    assert 0.0 <= result["pass@1"] <= result["pass@4"] <= 1.0
    assert result["mistakes"] == pytest.approx(1.0 - result["pass@1"])
    assert isinstance(result["exact_match"], float) and 0.0 <= result["exact_match"] <= 1.0
    # the budget holds up to one PPO update's overrun; the final evaluation comes on top
    assert budget <= result["seconds"] <= budget + 20.0

    curve = result["curve"]
    assert len(curve) >= 2
    assert curve[0]["frames"] == 0  # the untrained policy
    assert curve[-1]["frames"] == result["frames"]
    assert curve[-1]["solve_rate"] == result["pass@1"]
    for earlier, later in zip(curve[:-1], curve[1:], strict=True):
        assert earlier["seconds"] <= later["seconds"]
        assert earlier["frames"] <= later["frames"]
    assert all(0.0 <= point["solve_rate"] <= 1.0 for point in curve)


def test_a_spent_budget_still_gives_a_final_evaluation(sudoku4x4):
    rules, train, held_out = sudoku4x4
    result = run_maskable_ppo(
        rules,
        train,
        held_out,
        budget_seconds=0.0,
        attempts=2,
        env_options={"solve_bonus": 0.5, "mistake_reward": -0.5},
        n_envs=2,
        extra_eval={"again": held_out.subset(np.arange(5))},
    )
    assert result["frames"] >= 0 and result["puzzles"] == len(held_out)
    assert result["eval"]["again"]["puzzles"] == 5  # greedy, like the first 5 held-out games
    assert 0.0 <= result["eval"]["again"]["pass@1"] <= 1.0
    assert 0.0 <= result["pass@1"] <= result["pass@2"] <= 1.0
    assert result["curve"][-1] == {
        "seconds": result["curve"][-1]["seconds"],
        "frames": result["frames"],
        "solve_rate": result["pass@1"],
    }


def test_rejects_options_it_cannot_honour(sudoku4x4):
    rules, train, held_out = sudoku4x4
    with pytest.raises(ValueError, match="action_mode"):
        run_maskable_ppo(
            rules, train, held_out, budget_seconds=0.0, env_options={"action_mode": "grid"}
        )
    with pytest.raises(ValueError, match="shaping"):
        run_maskable_ppo(rules, train, held_out, budget_seconds=0.0, env_options={"shaping": 0.1})
    defaults = {"shaping": 0.0, "max_segments": 16}  # what env_options of any env config holds
    result = run_maskable_ppo(
        rules, train, held_out.subset([0]), budget_seconds=0.0, env_options=defaults
    )
    assert result["puzzles"] == 1
    nine = make_rules("sudoku", box=(3, 3)).generate(np.random.default_rng(0), 2)
    with pytest.raises(ValueError, match=r"extra_eval\['nine'\] has 81-position boards"):
        run_maskable_ppo(rules, train, held_out, budget_seconds=0.0, extra_eval={"nine": nine})


def test_missing_sb3_contrib_says_how_to_install_it(sudoku4x4, monkeypatch):
    rules, train, held_out = sudoku4x4
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # makes `import sb3_contrib` fail
    with pytest.raises(ImportError, match="pip install sb3-contrib"):
        run_maskable_ppo(rules, train, held_out, budget_seconds=0.0)
