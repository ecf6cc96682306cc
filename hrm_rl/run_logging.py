"""Scalars of a training run: a long-format CSV, Weights & Biases, a summary table, a PNG of curves.

``RunLogger`` is what ``python -m hrm_rl.train`` calls once per iteration::

    logger = RunLogger(run_dir, "wandb", config=cfg_dict, run_name="ppo-sudoku4")
    logger.log({"train/solve_rate": 0.25, "loss/policy": loss}, step=frames)
    ...
    print(logger.summary_table())
    logger.plot_curves(run_dir / "curves.png", ["train/solve_rate", "eval/solve_rate"])
    logger.close()

The CSV at ``run_dir/metrics.csv`` has one row per scalar (``step,key,value``), so a key that
first appears at iteration 500 needs no change of header; ``pandas.read_csv(...).pivot(...)``
turns it into a wide table. Weights & Biases runs offline unless the user sets ``WANDB_MODE``
(``offline`` and ``disabled`` need no account; ``wandb sync run_dir/wandb/offline-run-*`` uploads
an offline run later).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

LOGGER_BACKENDS = ("wandb", "csv", "none")

METRICS_FILE = "metrics.csv"
WANDB_ID_FILE = "wandb_run_id.txt"
CSV_HEADER = ("step", "key", "value")
# W&B modes that run without an account; any other mode ("online", "shared") needs credentials.
WANDB_MODES_WITHOUT_LOGIN = ("offline", "dryrun", "disabled")


def _as_float(key: str, value: float | int | torch.Tensor) -> float:
    """One metric value as a Python float; a tensor must hold exactly one element."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"metric {key!r}: expected a scalar tensor, got shape {tuple(value.shape)}; "
                "reduce it (e.g. .mean()) before logging"
            )
        return float(value.detach().item())
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metric {key!r}: expected a number, got {value!r}") from err


def _format_number(value: float) -> str:
    """A short, readable rendering of one value for the summary table."""
    return f"{value:.6g}"


class RunLogger:
    """Scalars of one training run to CSV and (optionally) wandb; summary table; learning-curve PNG.

    Args:
        run_dir: folder of the run; ``metrics.csv``, ``wandb_run_id.txt`` and ``wandb/`` go here.
        backend: ``"wandb"`` (CSV and W&B), ``"csv"`` (CSV only) or ``"none"`` (nothing written
            except what ``plot_curves`` is asked for). See ``LOGGER_BACKENDS``.
        config: the run's configuration, stored with the W&B run.
        project: W&B project name.
        run_name: W&B display name; W&B picks one when ``None``.
        resume: continue the run in ``run_dir``: append to ``metrics.csv`` and reload its history,
            and reuse the W&B run id stored in ``wandb_run_id.txt``. Without it an existing
            ``metrics.csv`` is started afresh.

    The W&B mode is ``$WANDB_MODE`` when the user set it, else ``"offline"``; with
    ``WANDB_MODE=disabled`` W&B is not imported at all. A mode that needs an account (``online``)
    raises instead of prompting for a login when no credentials are configured.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        backend: str = "wandb",
        *,
        config: dict | None = None,
        project: str = "hrm_rl",
        run_name: str | None = None,
        resume: bool = False,
    ) -> None:
        if backend not in LOGGER_BACKENDS:
            raise ValueError(
                f"unknown logger backend {backend!r}; choose one of {', '.join(LOGGER_BACKENDS)}"
            )
        self.run_dir = Path(run_dir)
        self.backend = backend
        self.resume = resume
        self.csv_path = self.run_dir / METRICS_FILE
        self._history: dict[str, list[tuple[int, float]]] = {}
        self._csv_file = None
        self._csv_writer = None
        self._wandb_run: Any = None
        self._closed = False

        if backend in ("wandb", "csv"):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._open_csv()
        if backend == "wandb":
            self._init_wandb(config=config, project=project, run_name=run_name)

    # -- CSV ---------------------------------------------------------------------------------

    def _open_csv(self) -> None:
        """Open ``metrics.csv``: append after reloading its rows on resume, else start afresh."""
        if self.resume and self.csv_path.exists():
            self._reload_csv()
            self._csv_file = self.csv_path.open("a", newline="", encoding="utf-8")
            self._csv_writer = csv.writer(self._csv_file)
            return
        if self.csv_path.exists():
            log.warning("%s exists and resume is off: starting it afresh", self.csv_path)
        self._csv_file = self.csv_path.open("w", newline="", encoding="utf-8")
        self._csv_writer = csv.writer(self._csv_file)
        self._csv_writer.writerow(CSV_HEADER)
        self._csv_file.flush()

    def _reload_csv(self) -> None:
        """Read the rows of an earlier session into the history; cut a half-written last row."""
        raw = self.csv_path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            # A run killed in the middle of a write leaves a partial row; it was never a value.
            keep = raw.rfind(b"\n") + 1
            log.warning("%s: dropping the half-written last row %r", self.csv_path, raw[keep:][:80])
            with self.csv_path.open("r+b") as f:
                f.truncate(keep)
        with self.csv_path.open(newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if header is None:  # empty file: nothing to reload, write the header
                with self.csv_path.open("w", newline="", encoding="utf-8") as out:
                    csv.writer(out).writerow(CSV_HEADER)
                return
            if tuple(header) != CSV_HEADER:
                raise ValueError(
                    f"{self.csv_path}:1: expected header {','.join(CSV_HEADER)!r}, got "
                    f"{','.join(header)!r}; is this a metrics file of hrm_rl?"
                )
            for line_no, row in enumerate(rows, start=2):
                if len(row) != 3:
                    raise ValueError(
                        f"{self.csv_path}:{line_no}: expected 3 fields (step,key,value), got {row}"
                    )
                step, key, value = row
                try:
                    self._history.setdefault(key, []).append((int(step), float(value)))
                except ValueError as err:
                    raise ValueError(
                        f"{self.csv_path}:{line_no}: cannot read step {step!r} or value {value!r}"
                    ) from err
        log.info(
            "resumed %s: %d keys, %d rows",
            self.csv_path,
            len(self._history),
            sum(len(v) for v in self._history.values()),
        )

    # -- Weights & Biases --------------------------------------------------------------------

    def _init_wandb(self, *, config: dict | None, project: str, run_name: str | None) -> None:
        """Start (or resume) the W&B run in the mode the user chose, offline by default."""
        mode = os.environ.get("WANDB_MODE", "").strip().lower() or "offline"
        if mode == "disabled":
            log.info("WANDB_MODE=disabled: logging to %s only", self.csv_path)
            return
        import wandb  # imported here: it takes about a second and only this backend needs it

        if mode not in WANDB_MODES_WITHOUT_LOGIN and not wandb.login(prompt=False):
            raise RuntimeError(
                f"WANDB_MODE={mode} needs W&B credentials and none are configured: run "
                "`wandb login` or set WANDB_API_KEY, or set WANDB_MODE=offline (sync later with "
                "`wandb sync`), or pick logger=csv"
            )
        id_path = self.run_dir / WANDB_ID_FILE
        run_id = None
        if self.resume:
            if id_path.exists():
                run_id = id_path.read_text(encoding="utf-8").strip() or None
            if run_id is None:
                log.warning("resume: no W&B run id in %s, starting a new W&B run", id_path)
        self._wandb_run = wandb.init(
            project=project,
            name=run_name,
            dir=str(self.run_dir),
            config=config,
            mode=mode,
            id=run_id,
            resume="allow" if run_id is not None else None,
        )
        id_path.write_text(f"{self._wandb_run.id}\n", encoding="utf-8")
        log.info("W&B run %s (%s) under %s", self._wandb_run.id, mode, self.run_dir / "wandb")

    # -- logging -----------------------------------------------------------------------------

    def log(self, metrics: dict[str, float | int | torch.Tensor], step: int) -> None:
        """Record one value per key at ``step`` (frames, iterations: the caller's x axis).

        Tensors become floats; NaN and infinities are kept (written as ``nan``/``inf``), since a
        diverging loss is worth seeing. The CSV is flushed before returning.
        """
        if self._closed:
            raise RuntimeError(f"RunLogger of {self.run_dir} is closed; cannot log step {step}")
        step = int(step)
        values = {key: _as_float(key, value) for key, value in metrics.items()}
        for key, value in values.items():
            self._history.setdefault(key, []).append((step, value))
        if self._csv_writer is not None:
            self._csv_writer.writerows((step, key, repr(value)) for key, value in values.items())
            self._csv_file.flush()
        if self._wandb_run is not None:
            self._wandb_run.log(values, step=step)

    def history(self, key: str) -> list[tuple[int, float]]:
        """The ``(step, value)`` pairs logged for ``key``, oldest first; empty if never logged."""
        return list(self._history.get(key, []))

    # -- reports -----------------------------------------------------------------------------

    def summary_table(self, keys: list[str] | None = None) -> str:
        """A plain-text table of ``key | last | best (max) | steps logged``, one row per key.

        ``keys`` defaults to every key logged, sorted. ``best`` is the largest value that is not
        NaN (for a loss, read it as the worst); a key never logged shows ``-``.
        """
        keys = sorted(self._history) if keys is None else list(keys)
        header = ("key", "last", "best (max)", "steps logged")
        rows = []
        for key in keys:
            points = self._history.get(key, [])
            if not points:
                rows.append((key, "-", "-", "0"))
                continue
            finite = [v for _, v in points if not math.isnan(v)]
            best = max(finite) if finite else math.nan
            rows.append(
                (key, _format_number(points[-1][1]), _format_number(best), str(len(points)))
            )
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def line(cells: tuple[str, ...]) -> str:
            first = cells[0].ljust(widths[0])
            rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
            return " | ".join([first, *rest]).rstrip()

        rule = "-+-".join("-" * width for width in widths)
        return "\n".join([line(header), rule, *(line(row) for row in rows)])

    def plot_curves(
        self, path: str | os.PathLike, keys: list[str], x_label: str = "frames"
    ) -> Path:
        """Write one PNG with a subplot per key that has data (title = key); returns the path.

        Renders with matplotlib's Agg canvas directly, so no window opens and the global
        ``pyplot`` backend is left alone. NaN values are left out of a curve and counted in its
        corner, so a sparse key (logged as NaN between evaluations) still draws as a line.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        with_data = [key for key in keys if self._history.get(key)]
        missing = [key for key in keys if key not in with_data]
        if missing:
            log.warning("plot_curves: no data for %s; leaving them out of %s", missing, path)
        n_cols = min(3, max(1, len(with_data)))
        n_rows = max(1, math.ceil(len(with_data) / n_cols))
        figure = Figure(figsize=(4.5 * n_cols, 3.2 * n_rows), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
        for ax, key in zip(axes, with_data, strict=False):
            points = [(step, value) for step, value in self._history[key] if not math.isnan(value)]
            n_nan = len(self._history[key]) - len(points)
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="." if len(steps) < 30 else None)
            if n_nan:
                ax.text(
                    0.99,
                    0.02,
                    f"{n_nan} NaN not drawn",
                    transform=ax.transAxes,
                    ha="right",
                    va="bottom",
                    color="tab:red",
                    fontsize="small",
                )
            ax.set_title(key)
            ax.set_xlabel(x_label)
            ax.grid(alpha=0.3)
        for ax in axes[len(with_data) :]:
            ax.set_axis_off()
        if not with_data:
            axes[0].text(0.5, 0.5, "no data logged", ha="center", va="center")
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        return path

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the CSV and finish the W&B run; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None
            self._csv_writer = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def __enter__(self) -> RunLogger:
        """Use as ``with RunLogger(...) as logger:``; closes on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the logger, also when the block raised."""
        self.close()
