"""Rewrite the self-made puzzle files of tests/data, one per format the readers accept.

README: these fixtures were made by ``python tests/data/make_fixtures.py`` from hrm_rl's own
generator and solver with the fixed seeds below; rerun it (and commit the result) to remake them.

They stand in for the third-party files of ``../shared/data`` (no licence, so never copied here),
so a lone clone of the repository still tests every reader format and the envs on real files:

``sudoku/kaggle.csv``
    Kaggle CSV, header ``quizzes,solutions``, ``0`` = blank; unique 9x9 puzzles that singles solve.
``sudoku/zeros_crlf.txt``
    easy50.txt's format: one puzzle a line, ``0`` = blank, CRLF line ends, no solutions.
``sudoku/dots_answers.txt``
    one puzzle a line, ``.`` = blank, ``#`` comments and blank lines; the solution follows after
    ``,`` on some lines, after whitespace on others, and is absent on the rest.
``sudoku/multi6x6.txt``
    6x6 puzzles with several solutions, ``.`` = blank; only the first line stores an answer.
``sudoku/extreme.csv``
    HRM's Sudoku-Extreme CSV, header ``source,question,answer,rating``, ``.`` = blank; 9x9
    puzzles that need search (rating = the solver's branch count).
``sudoku/hrm_sudoku/test/``
    HRM's built dataset split as ``build_sudoku_dataset.py`` writes it: ``dataset.json``,
    ``all__{inputs,labels,puzzle_identifiers,puzzle_indices,group_indices}.npy`` (uint8 tokens,
    0 = pad, 1 = blank, 2..10 = digits 1..9), with ``identifiers.json`` beside the split.
``maze/question_answer.csv``
    Maze CSV, header ``question,answer``, 30x30 row-major over ``# SGo``; one shortest path each.
``maze/hrm_columns.csv``
    the same layout under HRM's header ``source,question,answer,rating``, 10x10 mazes.
``maze/hrm_maze/test/``
    HRM's built Maze split (``build_maze_dataset.py``): the first mazes of
    ``question_answer.csv`` as uint8 tokens 1..5 = ``# SGo``, ``vocab_size`` 6, ``seq_len`` 900.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.maze.grid import BLANK, GOAL, PATH, START, WALL
from hrm_rl.envs.maze.rules import MazeRules
from hrm_rl.envs.sudoku.generator import generate
from hrm_rl.envs.sudoku.solver import solve

HERE = Path(__file__).resolve().parent
MAZE_CHARACTERS = {WALL: "#", BLANK: " ", START: "S", GOAL: "G", PATH: "o"}
MAZE_HRM_TOKENS = {token: "# SGo".index(ch) + 1 for token, ch in MAZE_CHARACTERS.items()}


def sudoku_text(values: np.ndarray, blank: str) -> str:
    """One text field: digits 1..9 and ``blank`` for empty cells."""
    return "".join(blank if v == 0 else str(v) for v in values)


def maze_text(values: np.ndarray) -> str:
    """One ``# SGo`` field, row-major."""
    return "".join(MAZE_CHARACTERS[int(v)] for v in values)


def hrm_metadata(seq_len: int, vocab_size: int, count: int) -> dict:
    """``dataset.json`` as HRM's ``PuzzleDatasetMetadata`` writes it (one example per group)."""
    return {
        "pad_id": 0,
        "ignore_label_id": 0,
        "blank_identifier_id": 0,
        "vocab_size": vocab_size,
        "seq_len": seq_len,
        "num_puzzle_identifiers": 1,
        "total_groups": count,
        "mean_puzzle_examples": 1.0,
        "sets": ["all"],
    }


def write_hrm_split(root: Path, inputs: np.ndarray, labels: np.ndarray, vocab_size: int) -> None:
    """``root/test/`` with HRM's arrays and metadata, and ``root/identifiers.json``."""
    split = root / "test"
    split.mkdir(parents=True, exist_ok=True)
    count, seq_len = inputs.shape
    arrays = {
        "inputs": inputs.astype(np.uint8),
        "labels": labels.astype(np.uint8),
        "puzzle_identifiers": np.zeros(count, dtype=np.int32),
        "puzzle_indices": np.arange(count + 1, dtype=np.int32),
        "group_indices": np.arange(count + 1, dtype=np.int32),
    }
    for name, values in arrays.items():
        np.save(split / f"all__{name}.npy", values)
    metadata = hrm_metadata(seq_len, vocab_size, count)
    (split / "dataset.json").write_text(json.dumps(metadata, indent=2) + "\n")
    (root / "identifiers.json").write_text(json.dumps(["<blank>"]) + "\n")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="ascii") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def make_sudoku(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)

    easy = generate(np.random.default_rng(17), 50, box=(3, 3), difficulty="singles")
    write_csv(
        folder / "kaggle.csv",
        ["quizzes", "solutions"],
        [
            [sudoku_text(b, "0"), sudoku_text(s[0], "0")]
            for b, s in zip(easy.boards, easy.solutions, strict=True)
        ],
    )

    plain = generate(np.random.default_rng(18), 8, box=(3, 3))
    lines = [sudoku_text(board, "0") for board in plain.boards]
    (folder / "zeros_crlf.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))

    dotted = generate(np.random.default_rng(19), 6, box=(3, 3))
    lines = ["# self-made puzzles; '.' = blank, an optional solution after ',' or whitespace", ""]
    for i, (board, solutions) in enumerate(zip(dotted.boards, dotted.solutions, strict=True)):
        (solution,) = solve(board, (3, 3), cap=2)  # the solver agrees: exactly one solution
        assert np.array_equal(solution, solutions[0])
        puzzle, answer = sudoku_text(board, "."), sudoku_text(solution, ".")
        lines.append([f"{puzzle},{answer}", f"{puzzle} {answer}", puzzle][i % 3])
        if i == 2:
            lines += ["# a comment between puzzles", ""]
    (folder / "dots_answers.txt").write_text("\n".join(lines) + "\n", encoding="ascii")

    multi = generate(np.random.default_rng(20), 4, box=(2, 3), mode="multi", cap=4)
    lines = [sudoku_text(board, ".") for board in multi.boards]
    lines[0] += "," + sudoku_text(multi.solutions[0, 0], ".")
    (folder / "multi6x6.txt").write_text("\n".join(lines) + "\n", encoding="ascii")

    hard = generate(np.random.default_rng(21), 4, box=(3, 3), difficulty="search")
    write_csv(
        folder / "extreme.csv",
        ["source", "question", "answer", "rating"],
        [
            ["self_made_search", sudoku_text(b, "."), sudoku_text(s[0], "."), str(int(r))]
            for b, s, r in zip(hard.boards, hard.solutions, hard.branches, strict=True)
        ],
    )

    mixed = PuzzleSet.concatenate(
        [
            generate(np.random.default_rng(22), 3, box=(3, 3)),
            generate(np.random.default_rng(23), 2, box=(3, 3), difficulty="search"),
        ]
    )
    write_hrm_split(
        folder / "hrm_sudoku", mixed.boards + 1, mixed.solutions[:, 0] + 1, vocab_size=11
    )


def make_maze(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)

    large = MazeRules(30, 30).generate(np.random.default_rng(30), 6, min_path=90, held_out=None)
    write_csv(
        folder / "question_answer.csv",
        ["question", "answer"],
        [
            [maze_text(b), maze_text(s[0])]
            for b, s in zip(large.boards, large.solutions, strict=True)
        ],
    )

    small = MazeRules(10, 10).generate(np.random.default_rng(31), 3, held_out=None)
    write_csv(
        folder / "hrm_columns.csv",
        ["source", "question", "answer", "rating"],
        [
            ["self_made", maze_text(b), maze_text(s[0]), "0"]
            for b, s in zip(small.boards, small.solutions, strict=True)
        ],
    )

    tokens = np.zeros(PATH + 1, dtype=np.uint8)
    for token, hrm_token in MAZE_HRM_TOKENS.items():
        tokens[token] = hrm_token
    first = large.subset(np.arange(4))
    write_hrm_split(
        folder / "hrm_maze", tokens[first.boards], tokens[first.solutions[:, 0]], vocab_size=6
    )


def main() -> None:
    make_sudoku(HERE / "sudoku")
    make_maze(HERE / "maze")


if __name__ == "__main__":
    main()
