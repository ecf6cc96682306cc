"""The results of ``python -m hrm_rl.bench compare`` as numbers, a Markdown table and a PNG.

A *run* is one contender trained with one seed: the row :mod:`hrm_rl.bench.compare` keeps in its
``row.json``. A contender with one seed is reported as that run; with several, as
:func:`summarize` makes it: the median, min and max over seeds of every number in
:func:`run_metrics`, with the runs themselves kept under ``runs``.
"""

from __future__ import annotations

import statistics
from pathlib import Path


def run_metrics(run: dict, attempts: int) -> dict[str, float | None]:
    """The numbers of one run the comparison reports: frames, seconds, pass@1, pass@K, exact
    match (None without stored answers), mistakes, and ``<stem>/pass@1`` for each --eval file."""
    keys = ("frames", "seconds", "pass@1", f"pass@{attempts}", "exact_match", "mistakes")
    metrics = {key: run[key] for key in keys}
    for stem, result in run.get("eval", {}).items():
        metrics[f"{stem}/pass@1"] = result["pass@1"]
    return metrics


def summarize(runs: list[dict], attempts: int) -> dict:
    """One contender's runs (one per seed) as one row of the comparison.

    One run is its own row. Several give ``contender``, ``label``, ``parameters`` (the same for
    every seed), ``seeds``, then ``median``, ``min`` and ``max``, each a dict over the keys of
    :func:`run_metrics` (a number that is None in any run is None in all three), and ``runs``.
    """
    if len(runs) == 1:
        return runs[0]
    per_run = [run_metrics(run, attempts) for run in runs]
    median, low, high = {}, {}, {}
    for key in per_run[0]:
        values = [metrics[key] for metrics in per_run]
        if any(value is None for value in values):
            median[key] = low[key] = high[key] = None
            continue
        median[key], low[key], high[key] = statistics.median(values), min(values), max(values)
    first = runs[0]
    return {
        "contender": first["contender"],
        "label": first["label"],
        "parameters": first["parameters"],
        "seeds": [run["seed"] for run in runs],
        "median": median,
        "min": low,
        "max": high,
        "runs": runs,
    }


def table(results: dict) -> str:
    """The comparison as a Markdown table; with several seeds each cell is "median (min–max)"."""
    k = results["attempts"]
    seeds = results.get("seeds") or [results["seed"]]  # comparisons made before --seeds
    stems = [Path(path).stem for path in results.get("eval", [])]
    if len(seeds) == 1:
        seed_text = f"seed {seeds[0]}"
    else:
        seed_text = f"seeds {seeds[0]}–{seeds[-1]} (median (min–max) over {len(seeds)} runs)"
    keys = ["frames", "pass@1", f"pass@{k}", "exact_match", "mistakes"]
    keys += [f"{stem}/pass@1" for stem in stems]
    lines = [
        f"Env `{results['env']}`"
        + (f" ({' '.join(results['overrides'])})" if results["overrides"] else "")
        + f", {results['budget_minutes']:g} wall-clock minutes per contender, {seed_text}, "
        f"{results['held_out_puzzles']} held-out puzzles.",
        "",
        "| contender | parameters | frames | pass@1 (greedy) | "
        f"pass@{k} | exact match | mistakes |" + "".join(f" {stem} pass@1 |" for stem in stems),
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(stems),
    ]
    for row in results["contenders"]:
        if "runs" in row:
            cells = [
                f"{_number(key, row['median'][key])} "
                f"({_number(key, row['min'][key])}–{_number(key, row['max'][key])})"
                if row["median"][key] is not None
                else "n/a"
                for key in keys
            ]
        else:
            metrics = run_metrics(row, k)
            cells = [_number(key, metrics[key]) for key in keys]
        lines.append(f"| {row['label']} | {row['parameters']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _number(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if key == "frames" else f"{value:.3f}"


def plot(results: dict, path: Path) -> None:
    """Held-out greedy solve rate against wall-clock seconds: one colour per contender, one line
    per seed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for index, row in enumerate(results["contenders"]):
        for number, run in enumerate(row.get("runs", [row])):
            curve = run["curve"]
            ax.plot(
                [p["seconds"] for p in curve],
                [p["solve_rate"] for p in curve],
                marker=".",
                color=f"C{index % 10}",
                label=row["label"] if number == 0 else None,
            )
    seeds = results.get("seeds") or [results["seed"]]
    ax.set(
        xlabel="wall-clock seconds",
        ylabel="held-out greedy solve rate",
        ylim=(-0.02, 1.02),
        title=f"{results['env']}: {results['budget_minutes']:g} minutes per contender"
        + (f", {len(seeds)} seeds" if len(seeds) > 1 else ""),
    )
    ax.legend(fontsize=7)
    figure.savefig(path, dpi=100)
