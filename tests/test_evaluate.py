"""``python -m hrm_rl.evaluate`` on a tiny 4x4 checkpoint: metrics, reports and CLI errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.readers import write_puzzles
from hrm_rl.evaluate import markdown_report, unsolved_by_move

NUM_CELLS = 4  # model.num_cells of the default model config


def run_module(module: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m module arguments`` with wandb off; output captured as text."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def train_tiny(folder: Path, *overrides: str) -> Path:
    """A 32-frame 4x4 training run in ``folder``; its checkpoint.pt."""
    result = run_module(
        "hrm_rl.train",
        "env=sudoku4x4",
        "batch_size=8",
        "rollout=4",
        "total_frames=32",
        "eval.num_puzzles=8",
        *overrides,
        f"hydra.run.dir={folder / 'run'}",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32-frame 4x4 training run's checkpoint.pt."""
    folder = tmp_path_factory.mktemp("evaluate")
    return train_tiny(folder, "logger=none", "eval.every=32", "checkpoint.every=32")


def test_held_out_split_metrics_and_reports(checkpoint: Path) -> None:
    result = run_module(
        "hrm_rl.evaluate",
        f"checkpoint={checkpoint}",
        "num_puzzles=16",
        "attempts=3",
        cwd=checkpoint.parent,
    )
    assert result.returncode == 0, result.stderr
    json_path = Path(result.stdout.strip().splitlines()[-1])
    assert json_path == checkpoint.parent / "eval_heldout.json"
    metrics = json.loads(json_path.read_text())
    assert 0.0 <= metrics["pass@1"] <= metrics["pass@3"] <= 1.0
    assert sum(row["puzzles"] for row in metrics["by_givens"]) == 16
    assert sum(row["puzzles"] for row in metrics["by_difficulty"]) == 16
    assert {row["difficulty"] for row in metrics["by_difficulty"]} <= {"singles", "search"}
    assert len(metrics["cell_usage"]["counts"]) == NUM_CELLS
    assert sum(metrics["cell_usage"]["counts"]) > 0
    assert 0.0 <= metrics["mistakes"] <= 1.0 and metrics["mean_moves"] >= 1.0
    unsolved = round((1.0 - metrics["pass@1"]) * 16)
    assert sum(row["puzzles"] for row in metrics["unsolved_by_move"]) == unsolved
    report = json_path.with_suffix(".md").read_text()
    assert ("## Where the unsolved greedy episodes ended" in report) == (unsolved > 0)
    assert "| pass@1 (greedy) |" in report and report in result.stdout
    assert json_path.with_suffix(".png").stat().st_size > 0


def test_puzzle_file_gives_exact_match(checkpoint: Path, tmp_path: Path) -> None:
    data = tmp_path / "small4x4.txt"
    write_puzzles(data, generate(np.random.default_rng(0), 6, box=(2, 2)))
    out = tmp_path / "reports" / "small.json"
    result = run_module(
        "hrm_rl.evaluate",
        f"checkpoint={checkpoint}",
        f"data={data}",
        "attempts=2",
        f"out={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1]) == out.resolve()
    metrics = json.loads(out.read_text())
    assert metrics["puzzles"] == 6 and metrics["puzzles_with_answer"] == 6
    assert 0.0 <= metrics["exact_match"] <= 1.0
    assert out.with_suffix(".md").is_file() and out.with_suffix(".png").is_file()


def test_unknown_key_lists_the_valid_keys(checkpoint: Path) -> None:
    result = run_module(
        "hrm_rl.evaluate", f"checkpoint={checkpoint}", "puzzles=3", cwd=checkpoint.parent
    )
    assert result.returncode != 0
    assert "'puzzles=3'" in result.stderr
    for key in ("checkpoint", "data", "attempts", "num_puzzles", "out"):
        assert key in result.stderr


def test_help_lists_the_keys_without_needing_a_checkpoint(tmp_path: Path) -> None:
    result = run_module("hrm_rl.evaluate", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for key in ("checkpoint", "data", "split", "attempts", "warmup_segments", "env."):
        assert key in result.stdout
    assert not list(tmp_path.iterdir())  # it evaluated nothing and wrote nothing


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "checkpoint.pt"
    result = run_module("hrm_rl.evaluate", f"checkpoint={missing}", cwd=tmp_path)
    assert result.returncode != 0
    assert str(missing) in result.stderr and "no such checkpoint file" in result.stderr
    assert "Traceback" not in result.stderr


def test_unsolved_episodes_are_counted_by_the_move_they_ended_on():
    solved = np.array([False, False, True, False, False, False, True])
    moves = np.array([1, 1, 30, 3, 2, 9, 1])
    rows = unsolved_by_move(solved, moves)
    assert rows == [
        {"moves": "1", "puzzles": 2, "share": 2 / 7},
        {"moves": "2-3", "puzzles": 2, "share": 2 / 7},
        {"moves": "8-15", "puzzles": 1, "share": 1 / 7},  # no band for 4-7 or the solved 30
    ]
    assert unsolved_by_move(np.ones(3, dtype=bool), np.array([5, 6, 7])) == []
    metrics = {
        "checkpoint": "run/checkpoint.pt",
        "data": "held-out split",
        "puzzles": 7,
        "env": "MazeRules(15x15)",
        "attempts": 1,
        "seed": 0,
        "pass@1": 2 / 7,
        "exact_match": None,
        "puzzles_with_answer": 0,
        "mean_moves": 6.7,
        "mistakes": 5 / 7,
        "unsolved_by_move": rows,
        "puzzles_per_second": 10.0,
        "measure": "shortest_path",
        "by_shortest_path": [{"shortest_path": 28, "puzzles": 7, "pass@1": 2 / 7}],
        "by_difficulty": None,
        "cell_usage": None,
    }
    report = markdown_report(metrics)
    assert "| 1 | 2 | 0.286 |" in report and "| 8-15 | 1 | 0.143 |" in report


@pytest.mark.parametrize("attempts", [1, 4])
def test_the_markdown_report_shows_pass_at_k_only_when_sampled_attempts_were_made(attempts):
    metrics = {
        "checkpoint": "run/checkpoint.pt",
        "data": "held-out split",
        "puzzles": 2,
        "env": "SudokuRules(2x2)",
        "attempts": attempts,
        "seed": 0,
        "pass@1": 0.5,
        f"pass@{attempts}": 0.5 + 0.1 * attempts,
        "exact_match": None,
        "puzzles_with_answer": 0,
        "mean_moves": 3.0,
        "mistakes": 0.5,
        "puzzles_per_second": 10.0,
        "measure": "givens",
        "by_givens": [
            {"givens": 6, "puzzles": 2, "pass@1": 0.5, f"pass@{attempts}": 0.5 + 0.1 * attempts}
        ],
        "by_difficulty": [
            {"difficulty": "singles", "puzzles": 1, "pass@1": 1.0, f"pass@{attempts}": 1.0},
            {"difficulty": "search", "puzzles": 1, "pass@1": 0.0, f"pass@{attempts}": 0.0},
        ],
        "cell_usage": None,
    }
    report = markdown_report(metrics)
    assert "| givens | puzzles | pass@1 |" in report
    assert "| search | 1 | 0.000 |" in report and "| singles | 1 | 1.000 |" in report
    assert report.count("pass@1") == 3  # the summary row, the by-givens and by-difficulty columns
    assert ("pass@4" in report) == (attempts == 4)


def test_weights_chooses_between_the_trained_and_the_ema_weights(checkpoint: Path, tmp_path):
    import torch

    from hrm_rl.build import load_policy
    from hrm_rl.checkpoint import CheckpointError, load_checkpoint

    saved = load_checkpoint(checkpoint, map_location="cpu")
    assert not saved.get("ema")  # the fixture's run kept no EMA
    with pytest.raises(CheckpointError, match="kept no EMA weights"):
        load_policy(checkpoint, torch.device("cpu"), "ema")
    ema = {
        key: value + 1.0 if value.is_floating_point() else value
        for key, value in saved["model"].items()
    }
    with_ema = tmp_path / "with_ema.pt"
    torch.save({**saved, "ema": ema}, with_ema)
    for weights, expected in (("auto", ema), ("ema", ema), ("model", saved["model"])):
        _, _, model, _ = load_policy(with_ema, torch.device("cpu"), weights)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, expected[key], msg=f"{weights}: {key}")
    result = run_module(
        "hrm_rl.evaluate", f"checkpoint={checkpoint}", "weights=best", cwd=checkpoint.parent
    )
    assert result.returncode != 0 and "weights must be one of auto, ema, model" in result.stderr


def test_a_checkpoint_of_a_model_with_other_shapes_is_a_clear_error(checkpoint: Path, tmp_path):
    import torch

    from hrm_rl.checkpoint import load_checkpoint

    saved = load_checkpoint(checkpoint, map_location="cpu")
    weights = dict(saved["model"])
    first = weights["move_mlp.0.weight"]  # before 2026-12-06: [legal, 3 counts, share] in
    weights["move_mlp.0.weight"] = torch.zeros(first.shape[0], 5)
    older = tmp_path / "older.pt"
    torch.save({**saved, "model": weights}, older)
    for command in (
        ("hrm_rl.evaluate", f"checkpoint={older}"),
        ("hrm_rl.train", f"resume={older}", "logger=none", f"hydra.run.dir={tmp_path / 'on'}"),
    ):
        result = run_module(*command, cwd=tmp_path)
        assert result.returncode != 0
        assert "do not fit the model" in result.stderr and "move_mlp.0.weight" in result.stderr
        assert "Traceback" not in result.stderr


def test_an_env_change_the_weights_cannot_follow_is_a_clear_error(checkpoint: Path) -> None:
    for change, message in (
        ("env.box=[3,3]", "do not fit the model of the env with env.box=[3,3]"),
        ("env.boxes=[3,3]", "env.boxes: not a key of the env config"),
        ("env.family=maze", "env.family cannot change"),
    ):
        result = run_module(
            "hrm_rl.evaluate", f"checkpoint={checkpoint}", change, cwd=checkpoint.parent
        )
        assert result.returncode != 0, change
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_warmup_segments_makes_the_policy_think_longer_before_each_first_move(
    checkpoint: Path, tmp_path: Path, warm_ups: list[tuple[int, int]]
) -> None:
    from hrm_rl.evaluate import parse_arguments, run

    plain = json.loads(
        run(
            parse_arguments(
                [
                    f"checkpoint={checkpoint}",
                    "num_puzzles=6",
                    "attempts=1",
                    f"out={tmp_path / 'plain.json'}",
                ]
            )
        ).read_text()
    )
    assert warm_ups == [] and plain["warmup_segments"] == plain["trained_warmup_segments"] == 0
    path = run(
        parse_arguments(
            [f"checkpoint={checkpoint}", "num_puzzles=6", "attempts=1", "warmup_segments=3"]
        )
    )
    assert path == checkpoint.parent / "eval_heldout_warmup3.json"
    assert warm_ups and {segments for segments, _ in warm_ups} == {3}
    assert sum(rows for _, rows in warm_ups) == 6  # every puzzle warmed up once, at its start
    metrics = json.loads(path.read_text())
    assert metrics["warmup_segments"] == 3 and metrics["trained_warmup_segments"] == 0
    assert "3 segments (trained with 0)" in path.with_suffix(".md").read_text()
    with pytest.raises(ValueError, match="warmup_segments must be an integer >= 0"):
        parse_arguments([f"checkpoint={checkpoint}", "warmup_segments=-1"])


def test_a_run_with_eval_warmup_segments_is_evaluated_with_them_by_default(
    checkpoint: Path, tmp_path: Path, warm_ups: list[tuple[int, int]]
) -> None:
    from omegaconf import OmegaConf

    from hrm_rl.checkpoint import load_checkpoint, save_checkpoint
    from hrm_rl.evaluate import parse_arguments, run

    state = load_checkpoint(checkpoint)
    config = OmegaConf.create(state["config"])
    config.eval.warmup_segments = 2  # the run's evaluations thought 2 segments
    state["config"] = OmegaConf.to_yaml(config)
    path = tmp_path / "thinking" / "checkpoint.pt"
    path.parent.mkdir()
    save_checkpoint(path, state)
    metrics = json.loads(
        run(parse_arguments([f"checkpoint={path}", "num_puzzles=4", "attempts=1"])).read_text()
    )
    assert {segments for segments, _ in warm_ups} == {2} and metrics["warmup_segments"] == 2
    assert metrics["trained_warmup_segments"] == 0
    assert (path.parent / "eval_heldout_warmup2.json").is_file()
    warm_ups.clear()
    args = [f"checkpoint={path}", "num_puzzles=4", "attempts=1", "warmup_segments=0"]
    assert json.loads(run(parse_arguments(args)).read_text())["warmup_segments"] == 0
    assert warm_ups == []  # the command line wins over the run's setting


def test_a_run_that_chose_its_warm_up_is_evaluated_with_the_same_choice(tmp_path: Path) -> None:
    """``eval.warmup_segments=[0,2]``: the run's final evaluation chooses on validation puzzles;
    ``python -m hrm_rl.evaluate`` of its checkpoint, with no warmup_segments given, makes the
    same choice on the same puzzles and prints the same held-out rate."""
    import csv

    checkpoint = train_tiny(
        tmp_path,
        "env.givens=[10,12]",
        "logger=csv",
        "eval.every=0",
        "eval.choice_puzzles=6",
        "eval.warmup_segments=[0,2]",
    )
    with (checkpoint.parent / "metrics.csv").open(newline="") as file:
        logged = {row["key"]: float(row["value"]) for row in csv.DictReader(file)}
    assert logged["eval/warmup_segments"] in (0, 2)
    result = run_module(
        "hrm_rl.evaluate", f"checkpoint={checkpoint}", "num_puzzles=8", "attempts=1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    choice = metrics["warmup_choice"]
    assert choice["validation_puzzles"] == 6
    assert choice["chosen"] == metrics["warmup_segments"] == logged["eval/warmup_segments"]
    for segments in ("0", "2"):
        rate = logged[f"valid/solve_rate_warmup{segments}"]
        assert choice["validation_pass@1"][segments] == pytest.approx(rate)
    assert metrics["pass@1"] == pytest.approx(logged["eval/solve_rate"])
    result = run_module(
        "hrm_rl.evaluate", f"checkpoint={checkpoint}", "split=validation", cwd=tmp_path
    )
    assert result.returncode != 0 and "give warmup_segments=N" in result.stderr


def test_split_validation_plays_the_training_validation_bank(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import hrm_rl.evaluate as evaluate
    from hrm_rl.build import held_out_puzzles, load_policy, validation_puzzles
    from hrm_rl.evaluate import parse_arguments, run

    played = []  # the boards of every batch of episodes the evaluation plays
    original = evaluate.play_first_episodes

    def recording(actor, model, rules, puzzles, *args, **kwargs):
        played.append(np.asarray(puzzles.boards))
        return original(actor, model, rules, puzzles, *args, **kwargs)

    monkeypatch.setattr(evaluate, "play_first_episodes", recording)
    path = run(
        parse_arguments(
            [f"checkpoint={checkpoint}", "split=validation", "num_puzzles=5", "attempts=1"]
        )
    )
    assert path == checkpoint.parent / "eval_validation.json"
    metrics = json.loads(path.read_text())
    assert metrics["data"] == "validation split" and metrics["puzzles"] == 5
    assert "validation split (5)" in path.with_suffix(".md").read_text()
    cfg, rules, _, _ = load_policy(checkpoint, torch.device("cpu"))
    held_out = held_out_puzzles(rules, cfg.env, int(cfg.eval.num_puzzles))
    bank = validation_puzzles(rules, cfg.env, 5, held_out)
    assert len(played) == 1 and np.array_equal(played[0], np.asarray(bank.boards))
    assert not any((board == np.asarray(held_out.boards)).all(axis=1).any() for board in played[0])
    with pytest.raises(ValueError, match="split must be one of heldout, validation"):
        parse_arguments([f"checkpoint={checkpoint}", "split=test"])
    with pytest.raises(ValueError, match="give one"):
        parse_arguments([f"checkpoint={checkpoint}", "split=validation", f"data={tmp_path}"])


def test_several_warmup_segments_are_chosen_among_on_validation_puzzles(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import hrm_rl.evaluate as evaluate
    from hrm_rl.build import held_out_puzzles, load_policy, validation_puzzles
    from hrm_rl.evaluate import parse_arguments, run

    original = evaluate.evaluation_report
    rates = {0: 0.25, 1: 0.5, 3: 0.5}  # what each count "solves" of the validation puzzles
    calls = []  # (segments, boards) of every evaluation

    def rigged(actor, model, rules, puzzles, *args, **kwargs):
        calls.append((actor.warmup_segments, np.asarray(puzzles.boards)))
        report = original(actor, model, rules, puzzles, *args, **kwargs)
        return {**report, "pass@1": rates[actor.warmup_segments]} if len(calls) <= 3 else report

    monkeypatch.setattr(evaluate, "evaluation_report", rigged)
    args = [f"checkpoint={checkpoint}", "num_puzzles=3", "attempts=1", "choice_puzzles=4"]
    path = run(parse_arguments([*args, "warmup_segments=3,0,1"]))
    assert path == checkpoint.parent / "eval_heldout_warmup0-1-3.json"
    metrics = json.loads(path.read_text())
    choice = metrics["warmup_choice"]
    assert choice["validation_pass@1"] == {"0": 0.25, "1": 0.5, "3": 0.5}
    assert choice["chosen"] == metrics["warmup_segments"] == 1  # the tie goes to fewer segments
    assert "chosen 1" in path.with_suffix(".md").read_text()
    cfg, rules, _, _ = load_policy(checkpoint, torch.device("cpu"))
    held_out = held_out_puzzles(rules, cfg.env, int(cfg.eval.num_puzzles))
    bank = np.asarray(validation_puzzles(rules, cfg.env, 4, held_out).boards)
    assert [segments for segments, _ in calls] == [0, 1, 3, 1]
    assert all(np.array_equal(boards, bank) for _, boards in calls[:3])
    reported = np.asarray(held_out_puzzles(rules, cfg.env, 3).boards)
    assert np.array_equal(calls[3][1], reported)  # the choice is reported on held-out puzzles
    with pytest.raises(ValueError, match="not on the puzzles it was chosen on"):
        parse_arguments([*args, "warmup_segments=0,1", "split=validation"])
    with pytest.raises(ValueError, match="two or more different counts"):
        parse_arguments([*args, "warmup_segments=2,2"])
    with pytest.raises(ValueError, match="or several"):
        parse_arguments([*args, "warmup_segments=2,x"])
