"""Evaluate a checkpoint: ``python -m hrm_rl.evaluate checkpoint=PATH [key=value ...]``.

Keys: ``checkpoint`` (required), ``data`` (a puzzle file or HRM dataset folder; default: the
checkpoint env's held-out split, as in training), ``split`` (``heldout``, the default, or
``validation``: the bank training's ``eval.validation_puzzles`` draws, none of them in the held-out
split; for choosing settings such as ``warmup_segments`` without touching the puzzles you report),
``num_puzzles`` (how many of the split, 500), ``attempts`` (K attempts per puzzle for pass@K, 8),
``seed`` (of the sampled attempts, 0), ``device`` (``auto``, ``cpu``, ``cuda``),
``warmup_segments`` (how many segments a PPO policy thinks over each fresh puzzle before its first
move; default: the checkpoint's ``eval.warmup_segments`` where its run set one, else its
``model.warmup_segments``; more is test-time thinking the weights were not trained at; several,
``warmup_segments=3,10``, play ``choice_puzzles`` (the run's ``eval.choice_puzzles``, 200 by
default) of the validation split with each, keep the count with the best greedy rate, the fewer on
a tie, and evaluate with it, the JSON's ``warmup_choice`` recording the rates; a run whose
``eval.warmup_segments`` was such a list is evaluated that way by default), ``weights``
(``auto``: the EMA weights when the run kept them, else the trained ones; ``ema``; ``model``: the
trained weights), ``out`` (the JSON path;
default ``<checkpoint dir>/eval_<data stem or split>.json``, ``_warmupN`` added with
``warmup_segments``, ``_warmup3-10`` with a choice),
and ``env.<key>=value`` to change the checkpoint's env config, e.g. ``env.size=[30,30]`` to play a
7x7 maze model on 30x30 mazes (where no weight depends on the board's size; otherwise a one-line
error).

Every puzzle is played once greedily (pass@1) and ``attempts - 1`` more times with sampled moves
and cells (pass@K: solved by any of the K attempts, the greedy one included, so pass@K >= pass@1);
the env's rules judge ``solved``. A supervised checkpoint (``agent=supervised``) proposes whole
boards: each attempt runs all its segments and the rules judge the last proposal (sampled attempts
draw each blank's value from the proposal softmax). The metrics go to a JSON file, a Markdown
report (printed to stdout) and a PNG beside it; the last line of stdout is the JSON path.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from torchrl.envs.utils import ExplorationType

from hrm_rl.agents.evaluation import best_warmup, play_first_episodes
from hrm_rl.agents.supervised import play_supervised
from hrm_rl.build import WEIGHTS, env_options, held_out_puzzles, load_policy, validation_puzzles
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.models import HRM

log = logging.getLogger("hrm_rl.evaluate")

SPLITS = ("heldout", "validation")

DEFAULTS: dict[str, str | None] = {
    "checkpoint": None,
    "data": None,
    "split": "heldout",
    "num_puzzles": "500",
    "attempts": "8",
    "seed": "0",
    "device": "auto",
    "weights": "auto",
    "warmup_segments": None,
    "choice_puzzles": None,  # the checkpoint's eval.choice_puzzles, else 200
    "out": None,
}


def parse_arguments(argv: list[str]) -> dict[str, str | None]:
    """``key=value`` arguments over :data:`DEFAULTS`; an unknown or malformed one is an error."""
    options = dict(DEFAULTS)
    for argument in argv:
        key, sep, value = argument.partition("=")
        if not sep or (key not in DEFAULTS and not (key.startswith("env.") and key[4:])):
            raise ValueError(
                f"unknown argument {argument!r}; valid keys: {', '.join(DEFAULTS)} and "
                "env.<key> (as key=value, e.g. checkpoint=outputs/run/checkpoint.pt)"
            )
        options[key] = value
    if options["weights"] not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {options['weights']!r}")
    if not options["checkpoint"]:
        raise ValueError("checkpoint=PATH is required (the checkpoint.pt of a training run)")
    for key in ("num_puzzles", "attempts", "seed", "choice_puzzles"):
        if options[key] is None:
            continue
        try:
            number = int(options[key])
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {options[key]!r}") from None
        if number < (0 if key == "seed" else 1):
            raise ValueError(f"{key} must be at least {0 if key == 'seed' else 1}, got {number}")
    if options["split"] not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {options['split']!r}")
    if options["data"] and options["split"] != "heldout":
        raise ValueError("data= plays a puzzle file; split= picks a generated split: give one")
    segments = options["warmup_segments"]
    if segments is not None and not all(part.isdigit() for part in segments.split(",")):
        raise ValueError(
            "warmup_segments must be an integer >= 0, or several (3,10) to choose among on "
            f"validation puzzles, got {segments!r}"
        )
    if segments is not None and "," in segments:
        if len(set(map(int, segments.split(",")))) < 2:
            raise ValueError(f"warmup_segments={segments}: give two or more different counts")
        if options["split"] == "validation":
            raise ValueError(
                f"warmup_segments={segments} is chosen on the validation split; report the "
                "choice on split=heldout or a data= file, not on the puzzles it was chosen on"
            )
    return options


def validation_split(rules: PuzzleRules, cfg: DictConfig, puzzles: int) -> PuzzleSet:
    """``puzzles`` of the bank training validates on (``eval.validation_puzzles``' draws): none
    of them in the held-out split of ``eval.num_puzzles`` puzzles."""
    held_out = held_out_puzzles(rules, cfg.env, int(cfg.eval.num_puzzles))
    return validation_puzzles(rules, cfg.env, puzzles, held_out)


def choose_warmup(
    actor: torch.nn.Module,
    model: HRM,
    rules: PuzzleRules,
    cfg: DictConfig,
    device: torch.device,
    candidates: list[int],
    puzzles: int,
    seed: int,
) -> dict:
    """The warm-up count among ``candidates`` with the best greedy solve rate on ``puzzles`` of
    the validation split (the draws training's ``eval.validation_puzzles`` validates on, none of
    them held out); a tie goes to the fewer segments. Leaves ``actor`` thinking that many."""
    bank = validation_split(rules, cfg, puzzles)
    rates = {}
    for segments in sorted(set(candidates)):
        actor.warmup_segments = segments
        report = evaluation_report(
            actor, model, rules, bank, cfg.env, device, 1, seed, agent_cfg=cfg.agent
        )
        rates[segments] = report["pass@1"]
        log.warning(
            "warmup_segments=%d: %.3f on %d validation puzzles", segments, rates[segments], puzzles
        )
    chosen = best_warmup(rates)
    actor.warmup_segments = chosen
    return {
        "validation_puzzles": puzzles,
        "validation_pass@1": {str(segments): rate for segments, rate in rates.items()},
        "chosen": chosen,
    }


def unsolved_by_move(solved: np.ndarray, moves: np.ndarray) -> list[dict]:
    """Where the unsolved episodes ended: a row per band of the move they ended on (1, 2–3,
    4–7, 8–15, …: powers of two), each with its count and its share of all ``len(solved)``
    episodes; bands no episode ended in are left out. A large first band means the policy's
    first decision is what fails (on 15×15 mazes, for instance), not the long tail of a path."""
    ended = np.asarray(moves)[~np.asarray(solved, dtype=bool)]
    rows = []
    low = 1
    while ended.size and low <= ended.max():
        high = 2 * low - 1
        count = int(((ended >= low) & (ended <= high)).sum())
        if count:
            band = str(low) if low == high else f"{low}-{high}"
            rows.append({"moves": band, "puzzles": count, "share": count / len(solved)})
        low *= 2
    return rows


def evaluation_report(
    actor: torch.nn.Module | None,
    model: HRM,
    rules: PuzzleRules,
    puzzles: PuzzleSet,
    env_cfg: DictConfig,
    device: torch.device,
    attempts: int,
    seed: int,
    agent_cfg: DictConfig | None = None,
) -> dict:
    """pass@1 (greedy), pass@K (greedy + K−1 sampled), exact match, where the unsolved greedy
    episodes ended (:func:`unsolved_by_move`), by size (key
    ``by_<measure>``, ``rules.size_measure``: Sudoku's givens, a maze's shortest path), by
    difficulty (``rules.difficulty_labels``: Sudoku's singles/search; ``None`` where not rated),
    cell usage.

    ``actor=None`` evaluates a supervised model (``agent_cfg`` gives its segments and precision).
    """
    options = env_options(env_cfg)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)

    def play(exploration: ExplorationType):
        if actor is None:
            return play_supervised(
                model,
                rules,
                puzzles,
                segments=int(agent_cfg.segments),
                device=device,
                sample=exploration == ExplorationType.RANDOM,
                generator=generator,
                precision=agent_cfg.precision,
            )
        return play_first_episodes(actor, model, rules, puzzles, device, exploration, **options)

    greedy = play(ExplorationType.DETERMINISTIC)
    torch.manual_seed(seed)
    any_solved = greedy.solved.copy()  # attempt 1 is the greedy one, so pass@K >= pass@1
    for _ in range(attempts - 1):
        any_solved |= play(ExplorationType.RANDOM).solved

    with_answer = puzzles.has_answer
    answers = torch.as_tensor(puzzles.solutions[:, 0])
    if actor is None:  # whole-board proposals: compare with the proposal the answer stands for
        answers = rules.proposal_of(answers)
    matches = (greedy.final_board == answers.numpy()).all(axis=1)
    measure, sizes = rules.size_measure(puzzles.boards)
    by_size = [
        {
            measure: int(size),
            "puzzles": int((sizes == size).sum()),
            "pass@1": float(greedy.solved[sizes == size].mean()),
            f"pass@{attempts}": float(any_solved[sizes == size].mean()),
        }
        for size in np.unique(sizes)
    ]
    labels = rules.difficulty_labels(puzzles.boards)
    by_difficulty = None
    if labels is not None:
        labels = np.asarray(labels)
        by_difficulty = [
            {
                "difficulty": str(label),
                "puzzles": int((labels == label).sum()),
                "pass@1": float(greedy.solved[labels == label].mean()),
                f"pass@{attempts}": float(any_solved[labels == label].mean()),
            }
            for label in dict.fromkeys(sorted(labels))
        ]
    cell_usage = None
    if greedy.cell_counts is not None:
        total = max(int(greedy.cell_counts.sum()), 1)
        cell_usage = {
            "counts": greedy.cell_counts.tolist(),
            "shares": (greedy.cell_counts / total).tolist(),
        }
    return {
        "puzzles": len(puzzles),
        "attempts": attempts,
        "seed": seed,
        "pass@1": float(greedy.solved.mean()),
        f"pass@{attempts}": float(any_solved.mean()),
        "exact_match": float(matches[with_answer].mean()) if with_answer.any() else None,
        "puzzles_with_answer": int(with_answer.sum()),
        "mean_moves": float(greedy.moves.mean()),
        "mistakes": float(greedy.mistake.mean()),
        "unsolved_by_move": unsolved_by_move(greedy.solved, greedy.moves),
        "measure": measure,
        f"by_{measure}": by_size,
        "by_difficulty": by_difficulty,
        "cell_usage": cell_usage,
        "puzzles_per_second": len(puzzles) / max(greedy.seconds, 1e-9),
    }


def markdown_report(metrics: dict) -> str:
    """The metrics as Markdown tables: summary, by size (givens, path length), by difficulty
    (families that rate their puzzles), where unsolved episodes ended, cell usage (multicell
    only)."""
    k = metrics["attempts"]
    exact = metrics["exact_match"]
    measure = metrics["measure"]
    title = measure.replace("_", " ")
    lines = [
        f"# Evaluation of `{metrics['checkpoint']}`",
        "",
        f"Puzzles: {metrics['data']} ({metrics['puzzles']}); {metrics['env']}",
        "",
        *(
            [
                f"Warm-up before the first move: {metrics['warmup_segments']} segments (trained "
                f"with {metrics['trained_warmup_segments']})",
                "",
            ]
            if metrics.get("warmup_segments") is not None
            and metrics["warmup_segments"] != metrics.get("trained_warmup_segments")
            else []
        ),
        *(
            [
                "Warm-up chosen on "
                f"{metrics['warmup_choice']['validation_puzzles']} validation puzzles (pass@1): "
                + ", ".join(
                    f"{segments} segments {rate:.3f}"
                    for segments, rate in metrics["warmup_choice"]["validation_pass@1"].items()
                )
                + f"; chosen {metrics['warmup_choice']['chosen']}",
                "",
            ]
            if metrics.get("warmup_choice")
            else []
        ),
        "| metric | value |",
        "|---|---:|",
        f"| pass@1 (greedy) | {metrics['pass@1']:.3f} |",
        *(
            [
                f"| pass@{k} (greedy + {k - 1} sampled, seed {metrics['seed']}) "
                f"| {metrics[f'pass@{k}']:.3f} |"
            ]
            if k > 1
            else []
        ),
        "| exact match (greedy, "
        f"{metrics['puzzles_with_answer']} with answer) | "
        f"{'n/a' if exact is None else f'{exact:.3f}'} |",
        f"| mean moves | {metrics['mean_moves']:.2f} |",
        f"| mistakes (greedy, ended unsolved) | {metrics['mistakes']:.3f} |",
        f"| puzzles/s (greedy) | {metrics['puzzles_per_second']:.1f} |",
        "",
        f"## By {title}",
        "",
        f"| {title} | puzzles | pass@1 |" + (f" pass@{k} |" if k > 1 else ""),
        "|---:|---:|---:|" + ("---:|" if k > 1 else ""),
    ]
    for row in metrics[f"by_{measure}"]:
        sampled = f" {row[f'pass@{k}']:.3f} |" if k > 1 else ""
        lines.append(f"| {row[measure]} | {row['puzzles']} | {row['pass@1']:.3f} |{sampled}")
    if metrics.get("by_difficulty"):
        lines += [
            "",
            "## By difficulty",
            "",
            "| difficulty | puzzles | pass@1 |" + (f" pass@{k} |" if k > 1 else ""),
            "|---|---:|---:|" + ("---:|" if k > 1 else ""),
        ]
        for row in metrics["by_difficulty"]:
            sampled = f" {row[f'pass@{k}']:.3f} |" if k > 1 else ""
            lines.append(
                f"| {row['difficulty']} | {row['puzzles']} | {row['pass@1']:.3f} |{sampled}"
            )
    if metrics.get("unsolved_by_move"):
        lines += [
            "",
            "## Where the unsolved greedy episodes ended",
            "",
            "| move | puzzles | share of all |",
            "|---:|---:|---:|",
        ]
        for row in metrics["unsolved_by_move"]:
            lines.append(f"| {row['moves']} | {row['puzzles']} | {row['share']:.3f} |")
    if metrics["cell_usage"] is not None:
        lines += [
            "",
            "## Memory-cell usage (greedy)",
            "",
            "| cell | count | share |",
            "|---:|---:|---:|",
        ]
        usage = metrics["cell_usage"]
        for cell, (count, share) in enumerate(zip(usage["counts"], usage["shares"], strict=True)):
            lines.append(f"| {cell} | {count} | {share:.3f} |")
    return "\n".join(lines) + "\n"


def plot_report(metrics: dict, path: Path) -> None:
    """pass@1 by size (givens, path length) as bars and, for a multicell model, the cell-usage
    histogram."""
    panels = 1 if metrics["cell_usage"] is None else 2
    figure = Figure(figsize=(5 * panels, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    by_size = figure.add_subplot(1, panels, 1)
    measure = metrics["measure"]
    rows = metrics[f"by_{measure}"]
    by_size.bar([str(row[measure]) for row in rows], [row["pass@1"] for row in rows])
    by_size.set(
        xlabel=measure.replace("_", " "), ylabel="pass@1", ylim=(0, 1), title="greedy solve rate"
    )
    if panels == 2:
        usage = figure.add_subplot(1, 2, 2)
        counts = metrics["cell_usage"]["counts"]
        usage.bar([str(cell) for cell in range(len(counts))], counts)
        usage.set(xlabel="memory cell", ylabel="times chosen", title="cell usage (greedy)")
    figure.savefig(path, dpi=100)


def run(options: dict[str, str | None]) -> Path:
    """Evaluate as ``options`` (from :func:`parse_arguments`) say; returns the JSON path."""
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu")
        if options["device"] == "auto"
        else options["device"]
    )
    checkpoint = Path(options["checkpoint"])
    env = {key[4:]: value for key, value in options.items() if key.startswith("env.")}
    cfg, rules, model, actor = load_policy(checkpoint, device, options["weights"], env)
    trained_segments = model.config.warmup_segments
    segments, choice = options["warmup_segments"], None
    if segments is None and actor is not None:  # the run's own evaluations' warm-up, if set
        segments = OmegaConf.select(cfg, "eval.warmup_segments")
        if OmegaConf.is_list(segments):  # the run chose among these at its end: choose again
            segments = ",".join(str(n) for n in segments)
            if options["split"] == "validation":
                raise ValueError(
                    f"this run's eval.warmup_segments=[{segments}] is chosen on the validation "
                    "split; give warmup_segments=N to play split=validation with N segments"
                )
    if segments is not None:
        if actor is None:
            raise ValueError(
                "warmup_segments is the warm-up of a PPO policy's first move; a supervised "
                "checkpoint (agent=supervised) runs agent.segments over every puzzle instead"
            )
        if "," in str(segments):
            choice = choose_warmup(
                actor,
                model,
                rules,
                cfg,
                device,
                [int(part) for part in segments.split(",")],
                int(
                    options["choice_puzzles"]
                    or OmegaConf.select(cfg, "eval.choice_puzzles", default=None)
                    or 200
                ),
                int(options["seed"]),
            )
        else:
            actor.warmup_segments = int(segments)
    if options["data"]:
        puzzles = rules.read(options["data"])
        stem, label = Path(options["data"]).stem, str(Path(options["data"]).resolve())
    elif options["split"] == "validation":
        puzzles = validation_split(rules, cfg, int(options["num_puzzles"]))
        stem, label = "validation", "validation split"
    else:
        puzzles = held_out_puzzles(rules, cfg.env, int(options["num_puzzles"]))
        stem, label = "heldout", "held-out split"
    if choice is not None:
        stem += "_warmup" + "-".join(choice["validation_pass@1"])
    elif actor is not None and actor.warmup_segments != trained_segments:
        stem += f"_warmup{actor.warmup_segments}"
    metrics = evaluation_report(
        actor,
        model,
        rules,
        puzzles,
        cfg.env,
        device,
        attempts=int(options["attempts"]),
        seed=int(options["seed"]),
        agent_cfg=cfg.agent,
    )
    metrics = {
        "checkpoint": str(checkpoint.resolve()),
        "data": label,
        "env": repr(rules),
        "weights": options["weights"],
        "warmup_segments": None if actor is None else actor.warmup_segments,
        "trained_warmup_segments": None if actor is None else trained_segments,
        "warmup_choice": choice,
        **metrics,
    }
    json_path = Path(options["out"]) if options["out"] else checkpoint.parent / f"eval_{stem}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(metrics, indent=2) + "\n")
    report = markdown_report(metrics)
    json_path.with_suffix(".md").write_text(report)
    plot_report(metrics, json_path.with_suffix(".png"))
    print(report)
    return json_path.resolve()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; ``--help`` prints the keys; a bad argument or file is a one-line
    error (exit code 2)."""
    logging.basicConfig(level=logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    if any(argument in ("-h", "--help", "help") for argument in argv):
        print(__doc__)
        return
    try:
        path = run(parse_arguments(argv))
    except (ValueError, FileNotFoundError) as error:  # CheckpointError is a ValueError
        print(f"hrm_rl.evaluate: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(path)


if __name__ == "__main__":
    main()
