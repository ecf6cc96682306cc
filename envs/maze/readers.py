"""Read mazes from the files people bring, checking every maze and its answer against the rules.

Two formats:

* CSV with the header ``question,answer`` (HRM's ``source,question,answer,rating`` is accepted
  too): each field one square board, row-major, over HRM's charset ``# SGo`` (wall, open, S, G,
  path); the question holds no path, the answer one shortest path;
* HRM's built dataset folder (a split such as ``test/``): ``dataset.json`` next to
  ``all__inputs.npy`` and ``all__labels.npy``, one maze a row, tokens 0 = pad, 1..5 = ``# SGo``.

The answer becomes ``solutions[i, 0]`` (path cells = ``PATH``, ``has_answer`` True); any other
shortest path is as valid, and the rules accept it. Anything wrong raises a ``ValueError`` whose
message starts with ``"<file>:<line>: "`` (``"<folder>/all__inputs.npy:row <k>: "`` for folders,
0-based rows); nothing is skipped or repaired.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path

import numpy as np

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.hrm_folders import read_metadata, token_sets
from hrm_rl.envs.maze.generator import distances_from
from hrm_rl.envs.maze.grid import BLANK, GOAL, PATH, START, WALL

logger = logging.getLogger(__name__)

CHARSET = "# SGo"  # HRM's tokens 1..5
CHARACTER_TOKENS = {"#": WALL, " ": BLANK, "S": START, "G": GOAL, "o": PATH}
TOKEN_CHARACTERS = {token: ch for ch, token in CHARACTER_TOKENS.items()}
HRM_TOKENS = np.array([-1, WALL, BLANK, START, GOAL, PATH], dtype=np.int8)  # HRM token -> ours
CSV_HEADERS = {("question", "answer"): (0, 1), ("source", "question", "answer", "rating"): (1, 2)}


def read_mazes(path: str | os.PathLike, *, limit: int | None = None) -> PuzzleSet:
    """Read and check the mazes of a ``question,answer`` CSV or an HRM dataset folder.

    ``limit`` stops after that many mazes. ``origin[i]`` is ``"<file>:<line>"`` (1-based, header
    counted) or ``"<folder>/all__inputs.npy:row <k>"``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file or folder; expected a maze CSV or an HRM dataset folder"
        )
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of mazes or None, got {limit}")
    collector = _MazeCollector()
    if path.is_dir():
        _read_hrm_folder(path, collector, limit)
    else:
        _read_csv(path, collector, limit)
    if not collector.boards:
        raise ValueError(f"{path.name}: holds no mazes")
    boards = np.stack(collector.boards)
    mazes = PuzzleSet(
        boards=boards,
        solutions=np.stack(collector.answers)[:, None, :],
        num_solutions=np.ones(len(boards), dtype=np.int64),
        has_answer=np.ones(len(boards), dtype=bool),
        origin=collector.origin,
    )
    logger.info("read %d mazes from %s", len(mazes), path)
    return mazes


class _MazeCollector:
    """Checks mazes one at a time and gathers them (all of one size)."""

    def __init__(self) -> None:
        self.boards: list[np.ndarray] = []
        self.answers: list[np.ndarray] = []
        self.origin: list[str] = []
        self.length: int | None = None
        self.first_where = ""

    def expect_length(self, length: int, where: str, field: str) -> int:
        """The side of a square board of ``length`` cells, the same for the whole file."""
        side = math.isqrt(length)
        if side * side != length or side < 2:
            raise ValueError(
                f"{where}: the {field} has {length} cells; expected a square board "
                "(side × side cells, row-major)"
            )
        if self.length is None:
            self.length, self.first_where = length, where
        elif length != self.length:
            raise ValueError(
                f"{where}: the {field} has {length} cells; expected {self.length} like "
                f"{self.first_where}"
            )
        return side

    def add(self, board: np.ndarray, answer: np.ndarray, where: str) -> None:
        """Check the maze and its answer by the rules; keep them."""
        side = math.isqrt(board.size)
        grid, solved = board.reshape(side, side), answer.reshape(side, side)
        for token, name in ((START, "S"), (GOAL, "G")):
            count = int((grid == token).sum())
            if count != 1:
                raise ValueError(f"{where}: the question holds {count} '{name}'; expected one")
        if (grid == PATH).any():
            cell = np.argwhere(grid == PATH)[0]
            raise ValueError(
                f"{where}: the question holds a path cell 'o' at {_cell_name(cell)}; expected "
                "only '# SG'"
            )
        differs = (solved != grid) & ~((solved == PATH) & (grid == BLANK))
        if differs.any():
            cell = tuple(np.argwhere(differs)[0])
            raise ValueError(
                f"{where}: the answer differs from the question outside path cells: "
                f"{TOKEN_CHARACTERS[int(solved[cell])]!r} where the question has "
                f"{TOKEN_CHARACTERS[int(grid[cell])]!r} at {_cell_name(cell)}"
            )
        start = tuple(np.argwhere(grid == START)[0])
        goal = tuple(np.argwhere(grid == GOAL)[0])
        shortest = int(distances_from(grid != WALL, start)[goal])
        if shortest < 0:
            raise ValueError(f"{where}: G is unreachable from S (walls cut every route)")
        if shortest < 2:
            raise ValueError(f"{where}: S is next to G, so the maze has no path cell to place")
        along = int(distances_from((solved != WALL) & (solved != BLANK), start)[goal])
        placed = int((solved == PATH).sum())
        if placed != shortest - 1 or along != shortest:
            route = f"joins S to G in {along} moves" if along > 0 else "does not join S to G"
            raise ValueError(
                f"{where}: the answer path is not a shortest S–G path: {placed} 'o' cells that "
                f"{route}; the shortest path takes {shortest} moves ({shortest - 1} 'o' cells)"
            )
        self.boards.append(board)
        self.answers.append(answer)
        self.origin.append(where)


def _read_csv(path: Path, collector: _MazeCollector, limit: int | None) -> None:
    """``question,answer`` (or ``source,question,answer,rating``) CSV over ``# SGo``."""
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        try:
            header = tuple(field.strip().lower() for field in next(reader, []))
            if header not in CSV_HEADERS:
                known = " or ".join(repr(",".join(h)) for h in CSV_HEADERS)
                raise ValueError(
                    f"{path.name}:1: unknown CSV header {','.join(header)!r}; expected {known}"
                )
            question_column, answer_column = CSV_HEADERS[header]
            for row in reader:
                if not row:  # an empty line holds no maze
                    continue
                where = f"{path.name}:{reader.line_num}"
                if len(row) != len(header):
                    raise ValueError(
                        f"{where}: expected {len(header)} fields ({','.join(header)}), "
                        f"got {len(row)}"
                    )
                question, answer = row[question_column], row[answer_column]
                collector.expect_length(len(question), where, "question")
                collector.expect_length(len(answer), where, "answer")
                board = _decode(question, where, "question")
                collector.add(board, _decode(answer, where, "answer"), where)
                if len(collector.boards) == limit:
                    return
        except csv.Error as error:
            raise ValueError(
                f"{path.name}:{reader.line_num}: malformed CSV ({error}); expected "
                "comma-separated fields, one maze a line"
            ) from error


def _decode(text: str, where: str, field: str) -> np.ndarray:
    """``int8[L]`` tokens of a ``# SGo`` field, or an error naming the first unknown character."""
    side = math.isqrt(len(text))
    try:
        return np.array([CHARACTER_TOKENS[ch] for ch in text], dtype=np.int8)
    except KeyError:
        position = next(i for i, ch in enumerate(text) if ch not in CHARACTER_TOKENS)
        raise ValueError(
            f"{where}: unknown character {text[position]!r} in the {field} at "
            f"{_cell_name(divmod(position, side))}; expected one of {CHARSET!r}"
        ) from None


def _read_hrm_folder(folder: Path, collector: _MazeCollector, limit: int | None) -> None:
    """HRM's ``build_maze_dataset.py`` output: ``dataset.json`` and ``<set>__{inputs,labels}``."""
    meta_name, meta = read_metadata(folder)
    seq_len, vocab_size = meta["seq_len"], meta["vocab_size"]
    if vocab_size != len(CHARSET) + 1:
        raise ValueError(
            f"{meta_name}: vocab_size {vocab_size}; a Maze folder has {len(CHARSET) + 1} "
            f"(pad and {CHARSET!r})"
        )
    collector.expect_length(seq_len, meta_name, "seq_len")
    for set_name, inputs, labels in token_sets(folder, meta):
        for row in range(len(inputs)):
            where = f"{folder.name}/{set_name}__inputs.npy:row {row}"
            board = _token_values(inputs[row], where, "input")
            answer = _token_values(
                labels[row], f"{folder.name}/{set_name}__labels.npy:row {row}", "label"
            )
            collector.add(board, answer, where)
            if len(collector.boards) == limit:
                return


def _token_values(tokens: np.ndarray, where: str, field: str) -> np.ndarray:
    """``int8[L]`` board tokens from HRM tokens 1..5 (``# SGo``)."""
    tokens = np.asarray(tokens).astype(np.int64)
    unknown = np.flatnonzero((tokens < 1) | (tokens > len(CHARSET)))
    if unknown.size:
        cell = divmod(int(unknown[0]), math.isqrt(tokens.size))
        raise ValueError(
            f"{where}: unknown {field} token {tokens[unknown[0]]} at {_cell_name(cell)}; "
            f"expected 1..{len(CHARSET)} ({CHARSET!r}; 0 is padding, which a maze has none of)"
        )
    return HRM_TOKENS[tokens]


def _cell_name(cell: tuple[int, int] | np.ndarray) -> str:
    """``"row r, column c"`` (1-based)."""
    return f"row {int(cell[0]) + 1}, column {int(cell[1]) + 1}"
