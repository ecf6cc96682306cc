"""`python -m hrm_rl.bench env` runs end to end and writes the JSON it promises."""

from __future__ import annotations

import json

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
