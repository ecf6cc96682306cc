"""RunLogger: long-format CSV, resume, summary table, learning-curve PNG, offline W&B."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from hrm_rl.run_logging import LOGGER_BACKENDS, RunLogger

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B in offline mode with its folders under tmp_path; returns WANDB_DIR."""
    wandb_dir = tmp_path / "wandb_dir"
    wandb_dir.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return wandb_dir


def test_csv_backend_writes_long_format_rows(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path / "run", "csv")
    logger.log({"loss": torch.tensor(0.5), "solve_rate": 0.25}, step=10)
    logger.log({"loss": float("nan"), "eval/solve_rate": 1}, step=20)  # a key appears later

    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert lines == [
        "step,key,value",
        "10,loss,0.5",
        "10,solve_rate,0.25",
        "20,loss,nan",
        "20,eval/solve_rate,1.0",
    ]
    loss = logger.history("loss")
    assert loss[0] == (10, 0.5) and isinstance(loss[0][1], float)
    assert loss[1][0] == 20 and math.isnan(loss[1][1])
    assert logger.history("solve_rate") == [(10, 0.25)]
    assert logger.history("eval/solve_rate") == [(20, 1.0)]
    assert logger.history("never_logged") == []
    logger.close()


def test_non_scalar_tensor_is_refused_with_its_key(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, "csv")
    with pytest.raises(ValueError, match="'returns'.*shape \\(3,\\)"):
        logger.log({"returns": torch.zeros(3)}, step=0)
    logger.close()


def test_resume_appends_and_reloads_history(tmp_path: Path) -> None:
    first = RunLogger(tmp_path, "csv")
    first.log({"loss": 2.0, "reward": float("-inf")}, step=1)
    first.close()

    second = RunLogger(tmp_path, "csv", resume=True)
    assert second.history("loss") == [(1, 2.0)]
    second.log({"loss": 1.0}, step=2)
    second.close()

    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["step,key,value", "1,loss,2.0", "1,reward,-inf", "2,loss,1.0"]
    assert second.history("loss") == [(1, 2.0), (2, 1.0)]
    assert second.history("reward") == [(1, float("-inf"))]

    fresh = RunLogger(tmp_path, "csv")  # without resume the file starts afresh
    fresh.close()
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["step,key,value"]


def test_resume_drops_a_half_written_last_row(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("step,key,value\n1,loss,2.0\n2,lo")
    logger = RunLogger(tmp_path, "csv", resume=True)
    logger.log({"loss": 1.5}, step=2)
    logger.close()
    assert logger.history("loss") == [(1, 2.0), (2, 1.5)]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["step,key,value", "1,loss,2.0", "2,loss,1.5"]


def test_resume_names_file_and_line_of_a_bad_row(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("step,key,value\n1,loss,2.0\n2,loss,oops\n")
    with pytest.raises(ValueError, match="metrics.csv:3"):
        RunLogger(tmp_path, "csv", resume=True)


def test_summary_table_shows_last_best_and_count(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, "none")
    logger.log({"solve_rate": 0.25, "loss": 3.0}, step=1)
    logger.log({"solve_rate": 0.75, "loss": float("nan")}, step=2)
    logger.log({"solve_rate": 0.5}, step=3)

    table = logger.summary_table()
    lines = table.splitlines()
    assert lines[0].split(" | ") == ["key       ", "last", "best (max)", "steps logged"]
    rows = {
        line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]] for line in lines[2:]
    }
    assert list(rows) == ["loss", "solve_rate"]  # all keys, sorted
    assert rows["solve_rate"] == ["0.5", "0.75", "3"]
    assert rows["loss"] == ["nan", "3", "2"]  # NaN is the last value but never the best

    only = logger.summary_table(["solve_rate", "missing"]).splitlines()
    assert [line.split("|")[0].strip() for line in only[2:]] == ["solve_rate", "missing"]
    assert only[-1].split("|")[1].strip() == "-"
    assert not (tmp_path / "metrics.csv").exists()  # backend "none" writes nothing


def test_plot_curves_writes_png_with_agg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered_by = []
    print_png = FigureCanvasAgg.print_png

    def spy(canvas: FigureCanvasAgg, filename_or_obj: object, **kwargs: object) -> None:
        rendered_by.append(type(canvas))
        return print_png(canvas, filename_or_obj)

    monkeypatch.setattr(FigureCanvasAgg, "print_png", spy)
    logger = RunLogger(tmp_path, "none")
    for step in range(5):
        logger.log({"train/solve_rate": step / 4, "loss": 1.0 / (step + 1)}, step=step * 100)

    out = logger.plot_curves(tmp_path / "plots" / "curves.png", ["train/solve_rate", "loss", "x"])
    assert out == tmp_path / "plots" / "curves.png"
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert rendered_by and set(rendered_by) == {FigureCanvasAgg}  # Agg drew it, no GUI canvas


def test_unknown_backend_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tensorboard") as err:
        RunLogger(tmp_path, "tensorboard")
    for name in LOGGER_BACKENDS:
        assert name in str(err.value)


def test_wandb_offline_run_and_resume(tmp_path: Path, offline_wandb: Path) -> None:
    run_dir = tmp_path / "run"
    logger = RunLogger(run_dir, "wandb", config={"seed": 3}, run_name="test")
    logger.log({"loss": torch.tensor(1.0), "solve_rate": float("nan")}, step=1)
    logger.close()
    logger.close()  # idempotent

    run_id = (run_dir / "wandb_run_id.txt").read_text().strip()
    offline_runs = sorted(run_dir.glob("wandb/offline-run-*")) + sorted(
        offline_wandb.glob("wandb/offline-run-*")
    )
    assert [p.name.rsplit("-", 1)[-1] for p in offline_runs] == [run_id]
    assert (run_dir / "metrics.csv").read_text().splitlines()[1:] == [
        "1,loss,1.0",
        "1,solve_rate,nan",
    ]

    with RunLogger(run_dir, "wandb", resume=True) as resumed:
        resumed.log({"loss": 0.5}, step=2)
    assert (run_dir / "wandb_run_id.txt").read_text().strip() == run_id
    assert resumed.history("loss") == [(1, 1.0), (2, 0.5)]


def test_wandb_disabled_writes_csv_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    logger = RunLogger(tmp_path / "run", "wandb")
    logger.log({"loss": 1.0}, step=1)
    logger.close()
    assert (tmp_path / "run" / "metrics.csv").read_text().splitlines() == [
        "step,key,value",
        "1,loss,1.0",
    ]
    assert not list(tmp_path.rglob("wandb*"))  # no wandb/ folder, no run id file


def test_wandb_online_without_credentials_raises_instead_of_prompting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setattr(wandb, "login", lambda **kwargs: False)

    def no_init(**kwargs: object) -> None:
        raise AssertionError("wandb.init must not run without credentials")

    monkeypatch.setattr(wandb, "init", no_init)
    with pytest.raises(RuntimeError, match="wandb login.*WANDB_MODE=offline"):
        RunLogger(tmp_path, "wandb")
