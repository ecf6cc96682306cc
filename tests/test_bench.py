"""`python -m hrm_rl.bench env` runs end to end and writes the JSON it promises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hrm_rl.bench import compare
from hrm_rl.bench.__main__ import main
from hrm_rl.bench.compare_report import summarize, table
from hrm_rl.bench.env import DEFAULT_EASY50, solver_puzzles_per_second
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.readers import write_puzzles

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def test_env_benchmark_writes_table_and_json(tmp_path, capsys, self_made_data):
    out = tmp_path / "env.json"
    solver_input = self_made_data / "sudoku" / "zeros_crlf.txt"  # easy50.txt's format
    results = main(
        [
            "env",
            "--families",
            "sudoku9x9",
            "maze7x7",
            "--batch-sizes",
            "1",
            "4",
            "--seconds",
            "0.2",
            "--bank",
            "4",
            "--easy50",
            str(solver_input),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "BatchedPuzzleEnv steps/s" in printed and "puzzles/s" in printed
    assert "PuzzleVectorEnv steps/s" in printed
    written = json.loads(out.read_text())
    assert written["play"] == results["play"]
    assert [(row["family"], row["batch"]) for row in written["play"]] == [
        ("sudoku9x9", 1),
        ("sudoku9x9", 4),
        ("maze7x7", 1),
        ("maze7x7", 4),
    ]
    for row in written["play"]:
        assert row["gym_sync_vector_steps_per_second"] > 0
        assert row["batched_steps_per_second"] > 0
        assert row["vector_env_steps_per_second"] > 0
        sync = row["gym_sync_vector_steps_per_second"]
        assert abs(row["speedup"] - row["batched_steps_per_second"] / sync) < 1e-9
        assert abs(row["vector_speedup"] - row["vector_env_steps_per_second"] / sync) < 1e-9
    assert written["solver"]["file"] == "zeros_crlf.txt"
    assert written["solver"]["unique"] == written["solver"]["puzzles"] == 8
    assert written["generator"]["puzzles"] >= 1
    assert 0.0 <= written["generator"]["share_singles"] <= 1.0


def test_env_benchmark_solver_reads_the_shared_easy50_by_default(shared_data):
    assert DEFAULT_EASY50 == shared_data / "easy50.txt"
    solver = solver_puzzles_per_second(DEFAULT_EASY50)
    assert solver["file"] == "easy50.txt"
    assert solver["unique"] == solver["puzzles"] == 50


def test_model_benchmark_reports_every_grad_mode_and_one_step_memory_stays_flat(tmp_path, capsys):
    out = tmp_path / "model.json"
    results = main(
        [
            "model",
            "--presets",
            "small",
            "--batch",
            "4",
            "1",
            "--seconds",
            "0.05",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert "segments/s" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert [row["grad"] for row in written["rows"]] == ["one_step", "last_cycle", "full"]
    assert all(row["segments_per_second"] > 0 for row in written["rows"])
    depth = {row["grad"]: row["ratio"] for row in results["depth"]}
    # the O(1)-memory claim of the one-step gradient, and the growth of the others
    assert depth["one_step"] <= 1.3
    assert depth["last_cycle"] > 1.5 and depth["full"] > depth["last_cycle"]


@pytest.mark.slow
def test_compare_trains_each_contender_for_the_budget_and_writes_json_markdown_png(
    tmp_path, capsys
):
    out = tmp_path / "compare.json"
    contenders = ["ppo_hrm", "supervised_one_step", "sb3_maskable_ppo"]
    extra = tmp_path / "tiny4x4.txt"  # an --eval file besides the held-out split
    write_puzzles(extra, generate(np.random.default_rng(7), 5, box=(2, 2)))
    argv = [
        "compare",
        "--env",
        "sudoku4x4",
        "--budget-minutes",
        "0.15",
        "--contenders",
        *contenders,
        "--num-puzzles",
        "16",
        "--attempts",
        "2",
        "--set",
        "batch_size=16",
        "model.d_model=32",
        "model.num_heads=2",
        "--eval",
        str(extra),
        "--out",
        str(out),
    ]
    results = main(argv)
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    assert [row["contender"] for row in written["contenders"]] == contenders
    assert written["contenders"] == results["contenders"]
    for row in written["contenders"]:
        assert row["label"] in printed
        assert row["parameters"] > 0 and row["frames"] > 0
        assert 0.0 <= row["pass@1"] <= row["pass@2"] <= 1.0
        assert 0.0 <= row["exact_match"] <= 1.0 and 0.0 <= row["mistakes"] <= 1.0
        assert row["curve"], row["contender"]
        assert row["seed"] == 0 and row["eval"]["tiny4x4"]["puzzles"] == 5
        assert 0.0 <= row["eval"]["tiny4x4"]["pass@1"] <= 1.0
        # the budget (9 s) bounds training; the final evaluation comes on top
        assert row["seconds"] < 9 + 60, row
    ours = written["contenders"][:2]
    assert all("model.d_model=32" in row["command"] for row in ours)
    assert ours[1]["parameters"] == ours[0]["parameters"]  # the same backbone, other training
    assert (tmp_path / "compare.md").read_text().count("\n| ") == 1 + len(contenders)
    assert (tmp_path / "compare.png").stat().st_size > 0

    # --keep: the same settings again reuse every row instead of training (order as asked)
    argv[argv.index("--contenders") + 1 : argv.index("--num-puzzles")] = contenders[::-1]
    again = main([*argv, "--keep"])
    assert again["contenders"] == written["contenders"][::-1]


def test_compare_needs_an_output_path_and_a_positive_budget():
    with pytest.raises(ValueError, match="--out"):
        main(["compare", "--env", "sudoku4x4", "--budget-minutes", "1"])
    with pytest.raises(ValueError, match="budget"):
        main(["compare", "--env", "sudoku4x4", "--budget-minutes", "0", "--out", "x.json"])


@pytest.mark.slow
def test_ranks_benchmark_trains_on_one_and_two_ranks_and_reports_global_frames(tmp_path, capsys):
    out = tmp_path / "ranks.json"
    argv = ["ranks", "--env", "sudoku4x4", "--iterations", "2", "--out", str(out)]
    main([*argv, "--set", "batch_size=8", "rollout=4"])
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    rows = results["rows"]
    assert [r["ranks"] for r in rows] == [1, 2]
    assert [r["frames"] for r in rows] == [2 * 32, 2 * 2 * 32]  # global: every rank's batches
    assert all(r["frames_per_second"] > 0 for r in rows)
    assert rows[0]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(
        rows[1]["frames_per_second"] / rows[0]["frames_per_second"]
    )
    assert "torch.distributed.run --standalone --nproc_per_node=2" in rows[1]["command"]
    assert printed.count("\n") >= 4 and "speed-up" in printed


def test_ranks_benchmark_needs_two_iterations():
    with pytest.raises(ValueError, match="--iterations must be at least 2"):
        main(["ranks", "--iterations", "1"])


@pytest.mark.slow
def test_ppo_benchmark_times_update_variants_side_by_side(tmp_path, capsys):
    out = tmp_path / "ppo.json"
    argv = ["ppo", "--env", "sudoku4x4", "--iterations", "2", "--variants", "before", "defaults"]
    main([*argv, "--set", "batch_size=8", "rollout=4", "--out", str(out)])
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["before", "defaults"]
    assert "agent.replay=recompute" in rows[0]["command"] and "agent.epochs=4" in rows[0]["command"]
    assert "model.move_features=false" in rows[0]["command"]  # the model before the rule features
    assert all(r["frames_per_second"] > 0 and len(r["samples"]) == 1 for r in rows)
    assert rows[0]["ratio"] == 1.0
    assert rows[1]["ratio"] == pytest.approx(
        rows[1]["frames_per_second"] / rows[0]["frames_per_second"]
    )
    assert "before: recompute, 4 epochs x 512" in printed and "defaults (resume)" in printed


def test_ppo_benchmark_refuses_unknown_variants_and_too_few_iterations():
    with pytest.raises(ValueError, match="--iterations must be at least 2"):
        main(["ppo", "--iterations", "1"])
    with pytest.raises(SystemExit):
        main(["ppo", "--variants", "fastest"])


def test_singles_probe_trains_each_variant_and_judges_stuck_states(tmp_path, capsys):
    out = tmp_path / "singles.json"
    argv = ["singles", "--variants", "full", "graph", "--steps", "3", "--every", "2"]
    main([*argv, "--batch", "8", "--puzzles", "12", "--eval-puzzles", "12", "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["settings"]["held_out_states"]["stuck"] > 0
    rows = results["rows"]
    assert [r["variant"] for r in rows] == ["full", "graph"]
    assert [p["step"] for p in rows[0]["curve"]] == [2, 3]
    assert all(0.0 <= r["random"] <= 1.0 and 0.0 <= r["stuck"] <= 1.0 for r in rows)
    assert rows[0]["stuck"] != rows[1]["stuck"] or rows[0]["loss"] != rows[1]["loss"]
    assert "graph" in capsys.readouterr().out


def test_compare_keep_refuses_a_row_made_under_other_settings(tmp_path):
    row_file = tmp_path / "c_runs" / "ppo_hrm" / "row.json"
    row_file.parent.mkdir(parents=True)
    settings = {"env": "sudoku4x4", "overrides": [], "budget_minutes": 5.0, "seed": 0}
    row_file.write_text(json.dumps({"settings": settings, "row": {"contender": "ppo_hrm"}}))
    argv = ["compare", "--env", "sudoku4x4", "--budget-minutes", "3", "--keep"]
    with pytest.raises(ValueError, match="was run with"):
        main([*argv, "--contenders", "ppo_hrm", "--out", str(tmp_path / "c.json")])


def _run_row(seed: int, pass1: float, frames: int, easy: float | None = None) -> dict:
    """A made-up row of one run, shaped as compare writes it."""
    row = {
        "contender": "ppo_hrm",
        "label": "PPO + HRM, no memory",
        "seed": seed,
        "parameters": 1000,
        "frames": frames,
        "seconds": 10.0 + seed,
        "pass@1": pass1,
        "pass@8": min(1.0, pass1 + 0.1),
        "exact_match": None,
        "mistakes": 1.0 - pass1,
        "curve": [{"seconds": 0.0, "frames": 0, "solve_rate": 0.0}],
    }
    if easy is not None:
        row["eval"] = {"easy50": {"pass@1": easy, "puzzles": 50}}
    return row


def test_summarize_gives_median_min_and_max_over_seeds_and_keeps_every_run():
    runs = [_run_row(0, 0.5, 300, 0.1), _run_row(1, 0.2, 100, 0.3), _run_row(2, 0.4, 200, 0.2)]
    row = summarize(runs, attempts=8)
    assert row["seeds"] == [0, 1, 2] and row["runs"] == runs and row["parameters"] == 1000
    assert row["median"]["pass@1"] == 0.4 and row["min"]["pass@1"] == 0.2
    assert row["max"]["pass@1"] == 0.5
    assert (row["min"]["frames"], row["median"]["frames"], row["max"]["frames"]) == (100, 200, 300)
    assert row["median"]["seconds"] == 11.0 and row["max"]["pass@8"] == pytest.approx(0.6)
    assert (row["min"]["easy50/pass@1"], row["max"]["easy50/pass@1"]) == (0.1, 0.3)
    assert row["median"]["exact_match"] is None  # no stored answers: no number, not a zero
    assert summarize(runs[:1], attempts=8) is runs[0]  # one seed: the run is the row


def test_table_shows_median_and_range_with_seeds_and_a_column_per_eval_file():
    results = {
        "env": "sudoku4x4",
        "overrides": [],
        "budget_minutes": 3.0,
        "seeds": [0, 1],
        "attempts": 8,
        "held_out_puzzles": 500,
        "eval": ["../shared/data/easy50.txt"],
        "contenders": [summarize([_run_row(0, 0.5, 1000, 0.1), _run_row(1, 0.25, 3001, 0.3)], 8)],
    }
    text = table(results)
    assert "seeds 0–1 (median (min–max) over 2 runs)" in text
    assert "| mistakes | easy50 pass@1 |" in text
    row = text.splitlines()[-1]
    assert row.startswith("| PPO + HRM, no memory | 1,000 | 2,000 (1,000–3,001) | ")
    assert "| 0.375 (0.250–0.500) |" in row and "| n/a |" in row
    assert row.endswith("| 0.200 (0.100–0.300) |")


@pytest.mark.parametrize("name", ["sudoku4x4", "sudoku6x6", "sudoku6x6_multi", "sudoku9x9"])
def test_committed_single_seed_comparisons_render_as_committed(name):
    results = json.loads((RESULTS / f"compare_{name}.json").read_text())
    assert table(results) == (RESULTS / f"compare_{name}.md").read_text()


def _fake_training(calls: list):
    """A stand-in for compare.run_contender that records (contender, seed) and trains nothing."""

    def run_contender(name, seed, run_dir, args, extra):
        calls.append((name, seed))
        row = _run_row(seed, 0.1 * (seed + 1), 100 * (seed + 1))
        if extra:  # the --eval files, read before training
            row["eval"] = {stem: {"pass@1": 0.5, "puzzles": len(p)} for stem, p in extra.items()}
        return {**row, "contender": name, "label": compare.CONTENDERS[name][0]}

    return run_contender


def test_compare_with_seeds_runs_every_contender_and_seed_and_keep_reuses_each_pair(
    tmp_path, monkeypatch
):
    calls: list = []
    monkeypatch.setattr(compare, "run_contender", _fake_training(calls))
    out = tmp_path / "c.json"
    argv = ["compare", "--env", "sudoku4x4", "--budget-minutes", "3", "--out", str(out)]
    argv += ["--contenders", "ppo_hrm", "ppo_bicross"]
    # a single-seed row made before --seeds, in the contender folder itself: kept for seed 0
    legacy = tmp_path / "c_runs" / "ppo_hrm" / "row.json"
    legacy.parent.mkdir(parents=True)
    settings = {
        "env": "sudoku4x4",
        "overrides": [],
        "budget_minutes": 3.0,
        "seed": 0,
        "attempts": 8,
        "held_out_puzzles": 500,
    }
    old_row = {**_run_row(0, 0.9, 50), "label": "PPO + HRM, no memory"}
    del old_row["seed"]
    legacy.write_text(json.dumps({"settings": settings, "row": old_row}))

    results = main([*argv, "--seeds", "2", "--keep"])
    assert calls == [("ppo_bicross", 0), ("ppo_hrm", 1), ("ppo_bicross", 1)]  # seed by seed
    hrm, bicross = results["contenders"]
    assert results["seeds"] == [0, 1] and hrm["seeds"] == [0, 1]
    assert hrm["runs"][0] == {**old_row, "seed": 0}
    assert bicross["median"]["frames"] == 150 and bicross["max"]["pass@1"] == 0.2
    saved = json.loads((tmp_path / "c_runs" / "ppo_bicross" / "seed1" / "row.json").read_text())
    assert saved["settings"]["seed"] == 1 and saved["row"]["seed"] == 1
    assert "(min–max)" in (tmp_path / "c.md").read_text()
    assert (tmp_path / "c.png").stat().st_size > 0

    calls.clear()
    again = main([*argv, "--seeds", "3", "--keep"])
    assert calls == [("ppo_hrm", 2), ("ppo_bicross", 2)]  # seeds 0 and 1 kept
    assert again["contenders"][1]["runs"][:2] == bicross["runs"]

    calls.clear()
    single = main([*argv, "--seed", "1", "--keep"])
    assert calls == [] and single["contenders"][0] == hrm["runs"][1]  # one seed: its run


def test_compare_eval_files_that_cannot_be_read_stop_it_before_any_training(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(compare, "run_contender", _fake_training(calls))
    nine = tmp_path / "nine.txt"
    write_puzzles(nine, generate(np.random.default_rng(0), 2, box=(3, 3)))
    four = tmp_path / "four.txt"
    write_puzzles(four, generate(np.random.default_rng(0), 2, box=(2, 2)))
    (tmp_path / "other").mkdir()
    write_puzzles(
        tmp_path / "other" / "four.txt", generate(np.random.default_rng(1), 2, box=(2, 2))
    )
    argv = ["compare", "--env", "sudoku4x4", "--budget-minutes", "1", "--contenders", "ppo_hrm"]
    argv += ["--out", str(tmp_path / "c.json"), "--eval", str(four)]
    with pytest.raises(FileNotFoundError, match="--eval: .*missing.txt: no such file"):
        main([*argv, str(tmp_path / "missing.txt")])
    with pytest.raises(ValueError, match="--eval: nine.txt:1: a puzzle of 81 cells; expected 16"):
        main([*argv, str(nine)])
    with pytest.raises(ValueError, match="two files have the stem 'four'"):
        main([*argv, str(tmp_path / "other" / "four.txt")])
    assert calls == [] and not (tmp_path / "c_runs").exists()
    with pytest.raises(ValueError, match="--seeds must be at least 1"):
        main([*argv, "--seeds", "0"])

    results = main(argv)  # a file that fits: read, then named in the settings of every run
    assert calls == [("ppo_hrm", 0)] and results["eval"] == [str(four)]
    saved = json.loads((tmp_path / "c_runs" / "ppo_hrm" / "seed0" / "row.json").read_text())
    assert saved["settings"]["eval"] == [str(four)]
    assert saved["row"]["eval"] == {"four": {"pass@1": 0.5, "puzzles": 2}}
    assert "| four pass@1 |" in (tmp_path / "c.md").read_text()
