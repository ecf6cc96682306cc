"""`python -m hrm_rl.bench env` runs end to end and writes the JSON it promises."""

from __future__ import annotations

import json

import pytest

from hrm_rl.bench.__main__ import main


def test_env_benchmark_writes_table_and_json(tmp_path, capsys, shared_data):
    out = tmp_path / "env.json"
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
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "BatchedPuzzleEnv steps/s" in printed and "puzzles/s" in printed
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
        ratio = row["batched_steps_per_second"] / row["gym_sync_vector_steps_per_second"]
        assert abs(row["speedup"] - ratio) < 1e-9
    assert written["solver"]["unique"] == written["solver"]["puzzles"] == 50
    assert written["generator"]["puzzles"] >= 1
    assert 0.0 <= written["generator"]["share_singles"] <= 1.0


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


def test_compare_keep_refuses_a_row_made_under_other_settings(tmp_path):
    row_file = tmp_path / "c_runs" / "ppo_hrm" / "row.json"
    row_file.parent.mkdir(parents=True)
    settings = {"env": "sudoku4x4", "overrides": [], "budget_minutes": 5.0, "seed": 0}
    row_file.write_text(json.dumps({"settings": settings, "row": {"contender": "ppo_hrm"}}))
    argv = ["compare", "--env", "sudoku4x4", "--budget-minutes", "3", "--keep"]
    with pytest.raises(ValueError, match="was run with"):
        main([*argv, "--contenders", "ppo_hrm", "--out", str(tmp_path / "c.json")])
