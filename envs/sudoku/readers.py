"""Read Sudoku puzzles from the files people bring, checking every puzzle against the rules.

Four formats are recognised from the path and its first line:

* plain text, one puzzle a line: n² cells with ``.`` or ``0`` for blanks, optionally followed by
  ``,`` or whitespace and the n²-cell solution; lines starting with ``#`` are comments;
* Kaggle CSV with the header ``quizzes,solutions``;
* HRM's Sudoku-Extreme CSV with the header ``source,question,answer,rating``;
* HRM's built dataset folder (a split such as ``test/``): ``dataset.json`` next to
  ``all__inputs.npy`` and ``all__labels.npy``, tokens 0 = pad, 1 = blank, 2..n+1 = digits 1..n.

Every puzzle is solved up to ``cap`` solutions, so the returned :class:`PuzzleSet` knows all of
them; an answer stored in the file must be one of them and is placed first. Anything wrong raises a
``ValueError`` whose message starts with ``"<file>:<line>: "``; nothing is skipped or repaired.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.hrm_folders import read_metadata, token_sets
from hrm_rl.envs.sudoku.solver import BOX_SHAPES, conflicts, solve

logger = logging.getLogger(__name__)

BLANK_CHARACTERS = ".0"
KAGGLE_HEADER = ("quizzes", "solutions")
EXTREME_HEADER = ("source", "question", "answer", "rating")
MAZE_HEADER = ("question", "answer")
MAZE_CHARSET = "# SGo"  # HRM's Maze tokens 1..5
PROGRESS_MIN_PUZZLES = 5000  # show a progress bar only for files larger than this
_FIELD_SEPARATOR = re.compile(r"\s*,\s*|\s+")


def read_puzzles(
    path: str | os.PathLike,
    *,
    box: tuple[int, int] | None = None,
    cap: int = 8,
    limit: int | None = None,
) -> PuzzleSet:
    """Read, check and solve the Sudoku puzzles in a file or an HRM dataset folder.

    ``box`` is the box shape (rows, columns); by default it follows from the number of cells
    (16 → 2x2, 36 → 2x3, 81 → 3x3). Each puzzle gets all its solutions up to ``cap``; ``limit``
    stops after that many puzzles. ``origin[i]`` is ``"<file>:<line>"`` (1-based, header counted)
    or, for a folder, ``"<folder>/all__inputs.npy:row <k>"`` (0-based row of the array).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file or folder; expected a puzzle file or an HRM dataset folder"
        )
    if cap < 1:
        raise ValueError(f"cap must be at least 1 (solutions kept per puzzle), got {cap}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of puzzles or None, got {limit}")
    collector = _PuzzleCollector(box, cap)
    if path.is_dir():
        _read_hrm_folder(path, collector, limit)
    else:
        header = _first_line_fields(path)
        if header == KAGGLE_HEADER or header == EXTREME_HEADER:
            _read_csv(path, collector, limit)
        elif path.suffix.lower() == ".csv":
            _reject_csv_header(path, header)
        else:
            _read_text(path, collector, limit)
    puzzles = collector.to_puzzle_set(path.name)
    logger.info(
        "read %d puzzles from %s (%d with a stored answer, %d with several solutions)",
        len(puzzles),
        path,
        int(puzzles.has_answer.sum()),
        int((puzzles.num_solutions > 1).sum()),
    )
    return puzzles


def write_puzzles(path: str | os.PathLike, puzzles: PuzzleSet) -> None:
    """Write puzzles in the plain-text format: ``.`` for blanks, then ``,`` and the stored answer.

    Puzzles without a stored answer (``has_answer`` false) are written without a solution field.
    """
    num_positions = puzzles.boards.shape[1]
    side = math.isqrt(num_positions)
    if side * side != num_positions or side > 9:
        raise ValueError(
            f"cannot write {num_positions}-cell puzzles as text: one character a cell fits "
            "square boards up to 9x9"
        )
    for name, values in (("boards", puzzles.boards), ("solutions", puzzles.solutions)):
        if values.size and (values.min() < 0 or values.max() > side):
            raise ValueError(
                f"{name} hold values outside 0..{side}; expected a {side}x{side} Sudoku"
            )
    characters = np.frombuffer(b".123456789", dtype=np.uint8)  # value -> its character
    with open(path, "w", encoding="ascii", newline="\n") as file:
        for board, solutions, has_answer in zip(
            puzzles.boards, puzzles.solutions, puzzles.has_answer, strict=True
        ):
            line = characters[board].tobytes().decode()
            if has_answer:
                line += "," + characters[solutions[0]].tobytes().decode()
            file.write(line + "\n")


class _PuzzleCollector:
    """Checks puzzles one at a time, solves them, and gathers them into a :class:`PuzzleSet`."""

    def __init__(self, box: tuple[int, int] | None, cap: int) -> None:
        if box is not None and (len(box) != 2 or min(box) < 1):
            raise ValueError(f"box must be (rows, columns) with both at least 1, got {box}")
        self.box = None if box is None else (int(box[0]), int(box[1]))
        self.size_source = "box=" + str(self.box)  # what fixed the board size, for messages
        self.cap = cap
        self.boards: list[np.ndarray] = []
        self.solutions: list[list[np.ndarray]] = []
        self.has_answer: list[bool] = []
        self.origin: list[str] = []
        self._cell_values: np.ndarray | None = None

    @property
    def side(self) -> int:
        """The side n of the board (only once the size is known)."""
        return self.box[0] * self.box[1]

    def expect_length(self, length: int, where: str) -> None:
        """Fix the board size from the first puzzle, or check a later one against it."""
        if self.box is None:
            side = math.isqrt(length)
            if side * side != length or side not in BOX_SHAPES:
                *first, last = (str(n * n) for n in sorted(BOX_SHAPES))
                expected = f"{', '.join(first)} or {last}"
                raise ValueError(
                    f"{where}: a puzzle of {length} cells; expected {expected} cells "
                    "(4x4, 6x6 or 9x9 Sudoku), or pass box=(rows, columns) for other shapes"
                )
            self.box = BOX_SHAPES[side]
            self.size_source = "as on " + where
        if length != self.side**2:
            raise ValueError(
                f"{where}: a puzzle of {length} cells; expected {self.side**2} cells "
                f"({self.side}x{self.side} Sudoku, {self.size_source}); all puzzles in a file "
                "must have the same size"
            )

    def decode(self, text: str, where: str, field: str) -> np.ndarray:
        """``int8[L]`` values of a text field: digits 1..n, ``.`` or ``0`` as blank (0)."""
        if self._cell_values is None:
            if self.side > 9:
                raise ValueError(
                    f"{where}: text formats hold one character a cell, so at most 9x9 Sudoku; "
                    f"got box={self.box}"
                )
            self._cell_values = np.full(128, -1, dtype=np.int8)
            for character in BLANK_CHARACTERS:
                self._cell_values[ord(character)] = 0
            for value in range(1, self.side + 1):
                self._cell_values[ord(str(value))] = value
        try:
            values = self._cell_values[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
        except UnicodeEncodeError as error:
            bad = error.start
        else:
            unknown = np.flatnonzero(values < 0)
            if not unknown.size:
                return values
            bad = int(unknown[0])
        raise ValueError(
            f"{where}: unknown character {text[bad]!r} in the {field} at "
            f"{_cell_name(bad, self.side)}; expected digits 1-{self.side}, with '.' or '0' "
            "for blanks"
        )

    def add(
        self, board: np.ndarray, answer: np.ndarray | None, where: str, answer_where: str
    ) -> None:
        """Solve a puzzle, check it (and its stored answer) and keep it.

        The rule checks run only when solving fails or the answer is not among the solutions
        found, so a well-formed puzzle costs one call of the solver.
        """
        found = solve(board, self.box, self.cap)
        if not found:
            clash = conflicts(board, self.box)
            if clash:
                raise ValueError(
                    f"{where}: the givens break the rules: "
                    f"{_clash_text(board, clash[0], self.side)}; expected each digit at most once "
                    "per row, column and box"
                )
            raise ValueError(f"{where}: the puzzle has no solution; expected a solvable puzzle")
        if answer is not None:
            found = self._answer_first(board, answer, found, answer_where)
        self.boards.append(board)
        self.solutions.append(found)
        self.has_answer.append(answer is not None)
        self.origin.append(where)

    def _answer_first(
        self, board: np.ndarray, answer: np.ndarray, found: list[np.ndarray], where: str
    ) -> list[np.ndarray]:
        """The found solutions reordered so that the stored answer comes first.

        Raises unless the answer is complete, keeps every given and obeys the rules.
        """
        blank = np.flatnonzero(answer == 0)
        if blank.size:
            raise ValueError(
                f"{where}: the solution is incomplete: {_cell_name(blank[0], self.side)} is "
                f"blank; expected a digit 1-{self.side} in every cell"
            )
        changed = np.flatnonzero((board != 0) & (board != answer))
        if changed.size:
            cell = changed[0]
            raise ValueError(
                f"{where}: the solution contradicts its givens at "
                f"{_cell_name(cell, self.side)}: given {board[cell]}, solution {answer[cell]}; "
                "expected the solution to keep every given"
            )
        for k, solution in enumerate(found):
            if np.array_equal(solution, answer):
                return [solution] + found[:k] + found[k + 1 :]
        clash = conflicts(answer, self.box)
        if clash:
            raise ValueError(
                f"{where}: the solution breaks the rules: "
                f"{_clash_text(answer, clash[0], self.side)}; expected each digit exactly once "
                "per row, column and box"
            )
        if len(found) == self.cap:  # more solutions than cap; the answer was not among those kept
            return [answer] + found[:-1]
        raise RuntimeError(
            f"{where}: the stored answer is a valid solution but solve() did not find it; "
            "this is a bug in hrm_rl.envs.sudoku.solver"
        )

    def to_puzzle_set(self, name: str) -> PuzzleSet:
        """All kept puzzles as one :class:`PuzzleSet`."""
        if not self.boards:
            raise ValueError(f"{name}: holds no puzzles; expected at least one puzzle")
        width = max(len(found) for found in self.solutions)
        solutions = np.zeros((len(self.boards), width, self.side**2), dtype=np.int8)
        for i, found in enumerate(self.solutions):
            solutions[i, : len(found)] = found
        return PuzzleSet(
            boards=np.stack(self.boards).astype(np.int8),
            solutions=solutions,
            num_solutions=np.array([len(found) for found in self.solutions], dtype=np.int64),
            has_answer=np.array(self.has_answer, dtype=bool),
            origin=self.origin,
        )


# --- text formats ---------------------------------------------------------------------------


def _read_text(path: Path, collector: _PuzzleCollector, limit: int | None) -> None:
    """Plain text: one puzzle a line, optionally followed by its solution."""
    with _progress(path, _count_lines(path), limit) as progress:
        with open(path, encoding="utf-8-sig") as file:
            for line_number, line in enumerate(file, start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                fields = _FIELD_SEPARATOR.split(line)
                where = f"{path.name}:{line_number}"
                if len(fields) > 2:
                    raise ValueError(
                        f"{where}: {len(fields)} fields; expected a puzzle, optionally followed "
                        "by ',' or whitespace and its solution"
                    )
                answer = fields[1] if len(fields) > 1 else None
                _add_text_puzzle(collector, fields[0], answer, where)
                progress.update()
                if len(collector.boards) == limit:
                    return


def _read_csv(path: Path, collector: _PuzzleCollector, limit: int | None) -> None:
    """Kaggle (``quizzes,solutions``) or Sudoku-Extreme (``source,question,answer,rating``) CSV."""
    with _progress(path, _count_lines(path) - 1, limit) as progress:
        with open(path, encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            try:
                header = tuple(field.strip().lower() for field in next(reader))
                puzzle_column, answer_column = (0, 1) if header == KAGGLE_HEADER else (1, 2)
                for row in reader:
                    if not row:  # an empty line holds no puzzle
                        continue
                    where = f"{path.name}:{reader.line_num}"
                    if len(row) != len(header):
                        raise ValueError(
                            f"{where}: expected {len(header)} fields ({','.join(header)}), "
                            f"got {len(row)}"
                        )
                    puzzle, answer = row[puzzle_column].strip(), row[answer_column].strip()
                    _add_text_puzzle(collector, puzzle, answer, where)
                    progress.update()
                    if len(collector.boards) == limit:
                        return
            except csv.Error as error:
                raise ValueError(
                    f"{path.name}:{reader.line_num}: malformed CSV ({error}); expected "
                    "comma-separated fields, one puzzle a line"
                ) from error


def _add_text_puzzle(
    collector: _PuzzleCollector, puzzle: str, answer: str | None, where: str
) -> None:
    """Decode a puzzle field (and its solution field) and hand them to the collector."""
    collector.expect_length(len(puzzle), where)
    board = collector.decode(puzzle, where, "puzzle")
    if answer is None:
        collector.add(board, None, where, where)
        return
    if len(answer) != len(puzzle):
        raise ValueError(
            f"{where}: the solution has {len(answer)} cells; expected {len(puzzle)} like its puzzle"
        )
    collector.add(board, collector.decode(answer, where, "solution"), where, where)


def _first_line_fields(path: Path) -> tuple[str, ...]:
    """The first line split at commas, stripped and lower-cased (for recognising CSV headers)."""
    with open(path, encoding="utf-8-sig", errors="replace") as file:
        first = file.readline()
    return tuple(field.strip().lower() for field in first.split(","))


def _reject_csv_header(path: Path, header: tuple[str, ...]) -> None:
    """Raise the error for a ``.csv`` file whose header is not one of a known Sudoku format."""
    if header == MAZE_HEADER:
        raise ValueError(
            f"{path.name}:1: header 'question,answer' is HRM's Maze CSV format, not Sudoku; read "
            "it with the maze family (env=maze, MazeRules.read or hrm_rl.envs.maze.read_mazes)"
        )
    raise ValueError(
        f"{path.name}:1: unknown CSV header {','.join(header)!r}; expected "
        f"{','.join(KAGGLE_HEADER)!r} (Kaggle) or {','.join(EXTREME_HEADER)!r} "
        "(HRM Sudoku-Extreme)"
    )


# --- HRM built dataset folders --------------------------------------------------------------


def _read_hrm_folder(folder: Path, collector: _PuzzleCollector, limit: int | None) -> None:
    """HRM's ``build_sudoku_dataset.py`` output: ``dataset.json`` and ``<set>__{inputs,labels}``."""
    meta_name, meta = read_metadata(folder)
    seq_len, vocab_size = meta["seq_len"], meta["vocab_size"]
    if vocab_size == len(MAZE_CHARSET) + 1 and seq_len != 16:
        raise ValueError(
            f"{meta_name}: vocab_size {vocab_size} and seq_len {seq_len} are a Maze folder "
            f"(tokens for {MAZE_CHARSET!r}), not Sudoku; read it with the maze family (env=maze, "
            "MazeRules.read or hrm_rl.envs.maze.read_mazes)"
        )
    collector.expect_length(seq_len, meta_name)
    side = collector.side
    if vocab_size != side + 2:
        raise ValueError(
            f"{meta_name}: vocab_size {vocab_size} does not fit {side}x{side} Sudoku; expected "
            f"{side + 2} (pad, blank, digits 1..{side})"
        )
    arrays = list(token_sets(folder, meta))
    total = sum(len(inputs) for _, inputs, _ in arrays)
    with _progress(folder, total, limit) as progress:
        for set_name, inputs, labels in arrays:
            for row in range(len(inputs)):
                where = f"{folder.name}/{set_name}__inputs.npy:row {row}"
                answer_where = f"{folder.name}/{set_name}__labels.npy:row {row}"
                board = _token_values(inputs[row], side, where, "input")
                answer = _token_values(labels[row], side, answer_where, "label")
                collector.add(board, answer, where, answer_where)
                progress.update()
                if len(collector.boards) == limit:
                    return


def _token_values(tokens: np.ndarray, side: int, where: str, field: str) -> np.ndarray:
    """``int8[L]`` values from HRM tokens (1 = blank → 0, 2..n+1 → 1..n)."""
    values = tokens.astype(np.int16) - 1
    unknown = np.flatnonzero((values < 0) | (values > side))
    if unknown.size:
        cell = unknown[0]
        raise ValueError(
            f"{where}: unknown {field} token {tokens[cell]} at {_cell_name(cell, side)}; "
            f"expected 1 (blank) or 2..{side + 1} (digits 1..{side})"
        )
    return values.astype(np.int8)


# --- helpers --------------------------------------------------------------------------------


def _cell_name(position: int, side: int) -> str:
    """``"row r, column c"`` (1-based) of a row-major position."""
    row, column = divmod(int(position), side)
    return f"row {row + 1}, column {column + 1}"


def _clash_text(board: np.ndarray, pair: tuple[int, int], side: int) -> str:
    """Describe two positions that hold the same value in one unit."""
    first, second = pair
    if first // side == second // side:
        unit = "row"
    elif first % side == second % side:
        unit = "column"
    else:
        unit = "box"
    return (
        f"{board[first]} at {_cell_name(first, side)} and at {_cell_name(second, side)} "
        f"(same {unit})"
    )


def _count_lines(path: Path) -> int:
    """Number of lines in a file, counted in binary chunks (for the progress bar's total)."""
    count = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _progress(path: Path, total: int, limit: int | None) -> tqdm:
    """A progress bar over puzzles, shown only when there are more than a few thousand."""
    if limit is not None:
        total = min(total, limit)
    return tqdm(total=total, desc=path.name, unit="puzzle", disable=total <= PROGRESS_MIN_PUZZLES)
