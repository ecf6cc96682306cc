"""`python -m hrm_rl.bench env` runs end to end and writes the JSON it promises."""

from __future__ import annotations

import json

from hrm_rl.bench.__main__ import main


def test_env_benchmark_writes_table_and_json(tmp_path, capsys, shared_data):
    out = tmp_path / "env.json"
    results = main(
        ["env", "--batch-sizes", "1", "4", "--seconds", "0.2", "--bank", "4", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert "BatchedPuzzleEnv steps/s" in printed and "puzzles/s" in printed
    written = json.loads(out.read_text())
    assert written["play"] == results["play"]
    assert [row["batch"] for row in written["play"]] == [1, 4]
    for row in written["play"]:
        assert row["gym_sync_vector_steps_per_second"] > 0
        assert row["batched_steps_per_second"] > 0
        ratio = row["batched_steps_per_second"] / row["gym_sync_vector_steps_per_second"]
        assert abs(row["speedup"] - ratio) < 1e-9
    assert written["solver"]["unique"] == written["solver"]["puzzles"] == 50
    assert written["generator"]["puzzles"] >= 1
    assert 0.0 <= written["generator"]["share_singles"] <= 1.0
