"""Sudoku readers: every format reads back the puzzles and answers, and bad input names its line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.sudoku.readers import read_puzzles, write_puzzles
from hrm_rl.envs.sudoku.rules import SudokuRules


def known_solution(box_rows: int, box_cols: int) -> np.ndarray:
    """A valid solved board, row-major: each row is the first one shifted along."""
    n = box_rows * box_cols
    return np.array(
        [
            (box_cols * (r % box_rows) + r // box_rows + c) % n + 1
            for r in range(n)
            for c in range(n)
        ],
        dtype=np.int8,
    )


def blanked(solution: np.ndarray, every: int) -> np.ndarray:
    """The solution with every ``every``-th position (from position 1 on) made blank."""
    board = solution.copy()
    board[1::every] = 0
    return board


def as_text(values: np.ndarray) -> str:
    """Values as one text field, ``.`` for blank."""
    return "".join(".123456789"[v] for v in values)


def is_solution(board: np.ndarray, solution: np.ndarray, box: tuple[int, int]) -> bool:
    """The solution is complete and valid and keeps every given of the board."""
    solved = SudokuRules(*box).is_solved(torch.as_tensor(solution[None]).long())
    return bool(solved[0]) and bool(np.all((board == 0) | (board == solution)))


# --- the self-made files of tests/data: one per format ------------------------------------


def csv_rows(path: Path) -> list[list[str]]:
    """The data rows of a CSV file (its header dropped), read by the csv module alone."""
    with open(path, newline="") as file:
        return list(csv.reader(file))[1:]


def digits(text: str) -> np.ndarray:
    """Values of one text field: digits, with ``.`` or ``0`` as blank."""
    return np.array([0 if ch == "." else int(ch) for ch in text], dtype=np.int8)


def check_kaggle_csv(path: Path) -> PuzzleSet:
    """Every row comes back with its stored answer, and that answer is the only solution."""
    rows = csv_rows(path)

    puzzles = read_puzzles(path)

    assert len(puzzles) == len(rows)
    assert puzzles.has_answer.all()
    assert (puzzles.num_solutions == 1).all()
    np.testing.assert_array_equal(puzzles.boards, np.stack([digits(q) for q, _ in rows]))
    np.testing.assert_array_equal(puzzles.solutions[:, 0], np.stack([digits(a) for _, a in rows]))
    assert puzzles.origin[0] == f"{path.name}:2"
    assert puzzles.origin[-1] == f"{path.name}:{len(rows) + 1}"
    return puzzles


def check_zeros_text_without_answers(path: Path) -> PuzzleSet:
    """One puzzle a line, ``0`` = blank, CRLF: each has one solution and no stored answer."""
    lines = path.read_bytes().decode().split("\r\n")
    assert lines[-1] == "" and all("\n" not in line for line in lines)  # really CRLF
    lines = lines[:-1]

    puzzles = read_puzzles(path)

    assert len(puzzles) == len(lines)
    assert (puzzles.num_solutions == 1).all()
    assert not puzzles.has_answer.any()
    assert puzzles.origin == [f"{path.name}:{i}" for i in range(1, len(lines) + 1)]
    np.testing.assert_array_equal(puzzles.boards, np.stack([digits(line) for line in lines]))
    for board, solution in zip(puzzles.boards, puzzles.solutions[:, 0], strict=True):
        assert is_solution(board, solution, (3, 3))
    return puzzles


def test_kaggle_csv_reads_every_puzzle_with_its_unique_answer(self_made_data: Path) -> None:
    puzzles = check_kaggle_csv(self_made_data / "sudoku" / "kaggle.csv")
    assert len(puzzles) == 50


def test_limit_stops_after_that_many_puzzles(self_made_data: Path) -> None:
    puzzles = read_puzzles(self_made_data / "sudoku" / "kaggle.csv", limit=7)
    assert len(puzzles) == 7
    assert puzzles.origin[-1] == "kaggle.csv:8"
    folder = read_puzzles(self_made_data / "sudoku" / "hrm_sudoku" / "test", limit=2)
    assert folder.origin == ["test/all__inputs.npy:row 0", "test/all__inputs.npy:row 1"]


def test_zero_blank_crlf_text_reads_puzzles_without_answers(self_made_data: Path) -> None:
    puzzles = check_zeros_text_without_answers(self_made_data / "sudoku" / "zeros_crlf.txt")
    assert len(puzzles) == 8


def test_dot_blank_text_with_comments_and_both_answer_separators(self_made_data: Path) -> None:
    path = self_made_data / "sudoku" / "dots_answers.txt"
    lines = path.read_text().splitlines()
    numbered = [
        (number, line.replace(",", " ").split())
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.startswith("#")
    ]
    assert {len(fields) for _, fields in numbered} == {1, 2}
    assert any("," in line for line in lines) and any(" " in line[81:82] for line in lines)

    puzzles = read_puzzles(path)

    assert puzzles.origin == [f"dots_answers.txt:{number}" for number, _ in numbered]
    np.testing.assert_array_equal(puzzles.boards, np.stack([digits(f[0]) for _, f in numbered]))
    assert puzzles.has_answer.tolist() == [len(f) == 2 for _, f in numbered]
    assert (puzzles.num_solutions == 1).all()
    for i, (_, fields) in enumerate(numbered):
        if len(fields) == 2:
            np.testing.assert_array_equal(puzzles.solutions[i, 0], digits(fields[1]))
        assert is_solution(puzzles.boards[i], puzzles.solutions[i, 0], (3, 3))


def test_six_by_six_text_keeps_every_solution_of_a_multi_solution_puzzle(
    self_made_data: Path,
) -> None:
    path = self_made_data / "sudoku" / "multi6x6.txt"
    first_answer = digits(path.read_text().splitlines()[0].split(",")[1])

    puzzles = read_puzzles(path)

    assert puzzles.boards.shape == (4, 36)
    assert (puzzles.num_solutions >= 2).all()
    assert puzzles.has_answer.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(puzzles.solutions[0, 0], first_answer)
    for board, found, count in zip(
        puzzles.boards, puzzles.solutions, puzzles.num_solutions, strict=True
    ):
        assert all(is_solution(board, s, (2, 3)) for s in found[:count])
        assert len({s.tobytes() for s in found[:count]}) == count


def test_sudoku_extreme_csv_file(self_made_data: Path) -> None:
    path = self_made_data / "sudoku" / "extreme.csv"
    rows = csv_rows(path)
    assert all("." in question and "0" not in question for _, question, _, _ in rows)

    puzzles = read_puzzles(path)

    assert puzzles.origin == [f"extreme.csv:{line}" for line in range(2, len(rows) + 2)]
    assert puzzles.has_answer.all() and (puzzles.num_solutions == 1).all()
    np.testing.assert_array_equal(puzzles.boards, np.stack([digits(r[1]) for r in rows]))
    np.testing.assert_array_equal(puzzles.solutions[:, 0], np.stack([digits(r[2]) for r in rows]))


def test_hrm_built_sudoku_folder_file(self_made_data: Path) -> None:
    split = self_made_data / "sudoku" / "hrm_sudoku" / "test"
    inputs = np.load(split / "all__inputs.npy")
    labels = np.load(split / "all__labels.npy")
    assert inputs.dtype == np.uint8 and inputs.min() == 1  # HRM tokens: 1 = blank

    puzzles = read_puzzles(split)

    np.testing.assert_array_equal(puzzles.boards, inputs.astype(np.int8) - 1)
    np.testing.assert_array_equal(puzzles.solutions[:, 0], labels.astype(np.int8) - 1)
    assert puzzles.has_answer.all() and (puzzles.num_solutions == 1).all()
    assert puzzles.origin == [f"test/all__inputs.npy:row {k}" for k in range(len(inputs))]
    with pytest.raises(ValueError, match="hrm_sudoku: holds the splits test; pass one of them"):
        read_puzzles(split.parent)


# --- the third-party files of ../shared/data (extra checks; skipped when absent) ----------------


def test_shared_kaggle_csv_reads_1000_puzzles_with_their_unique_answers(shared_data: Path) -> None:
    puzzles = check_kaggle_csv(shared_data / "kaggle_format_test1000.csv")
    assert len(puzzles) == 1000


def test_shared_easy50_crlf_text_reads_50_unique_puzzles_without_answers(
    shared_data: Path,
) -> None:
    puzzles = check_zeros_text_without_answers(shared_data / "easy50.txt")
    assert len(puzzles) == 50


# --- formats built here -----------------------------------------------------------------------


def test_write_then_read_gives_the_same_puzzles(tmp_path: Path) -> None:
    solution = known_solution(3, 3)
    boards = np.stack([blanked(solution, 2), blanked(solution, 3), blanked(solution[::-1], 3)])
    source = tmp_path / "source.txt"
    source.write_text(
        f"{as_text(boards[0])},{as_text(solution)}\n"
        f"{as_text(boards[1])}\n"
        f"{as_text(boards[2])} {as_text(solution[::-1])}\n"
    )
    original = read_puzzles(source)
    assert original.has_answer.tolist() == [True, False, True]

    copy = tmp_path / "copy.txt"
    write_puzzles(copy, original)
    again = read_puzzles(copy)

    np.testing.assert_array_equal(again.boards, original.boards)
    np.testing.assert_array_equal(again.solutions, original.solutions)
    np.testing.assert_array_equal(again.num_solutions, original.num_solutions)
    np.testing.assert_array_equal(again.has_answer, original.has_answer)
    assert copy.read_text().splitlines()[1] == as_text(boards[1])


def test_dot_blank_text_with_comments_blank_lines_and_crlf(tmp_path: Path) -> None:
    solution = known_solution(3, 3)
    board = blanked(solution, 4)
    path = tmp_path / "dots.txt"
    lines = [
        "# a comment",
        "",
        as_text(board),
        "   ",
        "# another comment",
        as_text(board).replace(".", "0") + " , " + as_text(solution),
    ]
    path.write_bytes("\r\n".join(lines).encode())

    puzzles = read_puzzles(path)

    assert puzzles.origin == ["dots.txt:3", "dots.txt:6"]
    np.testing.assert_array_equal(puzzles.boards, np.stack([board, board]))
    assert puzzles.has_answer.tolist() == [False, True]
    np.testing.assert_array_equal(puzzles.solutions[1, 0], solution)


@pytest.mark.parametrize("box", [(2, 2), (2, 3)])
def test_small_boards_get_their_side_from_the_length(tmp_path: Path, box: tuple[int, int]) -> None:
    solution = known_solution(*box)
    boards = [blanked(solution, 2), blanked(solution, 5)]
    path = tmp_path / f"small{box[0] * box[1]}.txt"
    path.write_text(f"{as_text(boards[0])},{as_text(solution)}\n{as_text(boards[1])}\n")

    puzzles = read_puzzles(path)

    assert puzzles.boards.shape == (2, solution.size)
    assert puzzles.has_answer.tolist() == [True, False]
    np.testing.assert_array_equal(puzzles.solutions[0, 0], solution)
    for i, board in enumerate(boards):
        found = puzzles.solutions[i, : puzzles.num_solutions[i]]
        assert all(is_solution(board, s, box) for s in found)
        assert len({s.tobytes() for s in found}) == len(found)


@pytest.mark.parametrize("cap", [1, 3])  # the answer is the solver's second find
def test_stored_answer_comes_first_even_past_the_cap(tmp_path: Path, cap: int) -> None:
    solution = known_solution(2, 2)
    board = np.zeros_like(solution)
    board[0] = solution[0]  # one given: 72 solutions, far more than the cap
    path = tmp_path / "open.txt"
    path.write_text(f"{as_text(board)},{as_text(solution)}\n")

    puzzles = read_puzzles(path, cap=cap)

    assert puzzles.num_solutions.tolist() == [cap]
    np.testing.assert_array_equal(puzzles.solutions[0, 0], solution)
    assert len({s.tobytes() for s in puzzles.solutions[0]}) == cap
    assert all(is_solution(board, s, (2, 2)) for s in puzzles.solutions[0])


def test_sudoku_extreme_csv(tmp_path: Path) -> None:
    solution = known_solution(3, 3)
    board = blanked(solution, 3)
    path = tmp_path / "extreme.csv"
    path.write_text(
        "source,question,answer,rating\n"
        f"puzzles0_kaggle,{as_text(board)},{as_text(solution)},0\n"
        f"puzzles2_17_clue,{as_text(board)},{as_text(solution)},12\n"
    )

    puzzles = read_puzzles(path)

    assert puzzles.origin == ["extreme.csv:2", "extreme.csv:3"]
    assert puzzles.has_answer.all()
    np.testing.assert_array_equal(puzzles.boards[0], board)
    np.testing.assert_array_equal(puzzles.solutions[:, 0], np.stack([solution, solution]))


def build_hrm_folder(root: Path, inputs: np.ndarray, labels: np.ndarray, **meta) -> Path:
    """An HRM built dataset as ``build_sudoku_dataset.py`` writes it; returns its test split."""
    split = root / "test"
    split.mkdir(parents=True)
    metadata = {
        "pad_id": 0,
        "ignore_label_id": 0,
        "blank_identifier_id": 0,
        "vocab_size": 11,
        "seq_len": 81,
        "num_puzzle_identifiers": 1,
        "total_groups": len(inputs),
        "mean_puzzle_examples": 1,
        "sets": ["all"],
    } | meta
    (split / "dataset.json").write_text(json.dumps(metadata))
    np.save(split / "all__inputs.npy", inputs)
    np.save(split / "all__labels.npy", labels)
    np.save(split / "all__puzzle_identifiers.npy", np.zeros(len(inputs), dtype=np.int32))
    return split


def test_hrm_built_folder(tmp_path: Path) -> None:
    solution = known_solution(3, 3)
    boards = np.stack([blanked(solution, 2), blanked(solution, 3)])
    split = build_hrm_folder(
        tmp_path / "sudoku-extreme",
        (boards + 1).astype(np.uint8),
        np.stack([solution, solution]).astype(np.uint8) + 1,
    )

    puzzles = read_puzzles(split)

    np.testing.assert_array_equal(puzzles.boards, boards)
    np.testing.assert_array_equal(puzzles.solutions[:, 0], np.stack([solution, solution]))
    assert puzzles.has_answer.all()
    assert puzzles.origin == ["test/all__inputs.npy:row 0", "test/all__inputs.npy:row 1"]
    with pytest.raises(ValueError, match="holds the splits test; pass one of them"):
        read_puzzles(tmp_path / "sudoku-extreme")


def test_hrm_folder_with_a_blank_label_names_its_row(tmp_path: Path) -> None:
    solution = known_solution(3, 3)
    labels = np.stack([solution, solution]).astype(np.uint8) + 1
    labels[1, 5] = 1  # a blank in the solution
    split = build_hrm_folder(tmp_path / "data", labels.copy(), labels)
    with pytest.raises(
        ValueError, match=r"^test/all__labels.npy:row 1: the solution is incomplete"
    ):
        read_puzzles(split)


def test_hrm_maze_folder_is_refused_with_a_pointer_to_the_maze_reader(tmp_path: Path) -> None:
    tokens = np.ones((2, 900), dtype=np.uint8)
    split = build_hrm_folder(tmp_path / "maze", tokens, tokens, vocab_size=6, seq_len=900)
    with pytest.raises(ValueError, match="not Sudoku; read it with the maze family"):
        read_puzzles(split)


# --- malformed input ------------------------------------------------------------------------

SOLUTION = known_solution(3, 3)
BOARD = blanked(SOLUTION, 3)
GOOD_LINE = as_text(BOARD)


def read_bad(tmp_path: Path, name: str, lines: list[str]) -> str:
    """The message of the ValueError raised when reading these lines."""
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as error:
        read_puzzles(path)
    return str(error.value)


def test_wrong_length(tmp_path: Path) -> None:
    message = read_bad(tmp_path, "bad.txt", ["# comment", GOOD_LINE, GOOD_LINE[:-1]])
    assert message.startswith("bad.txt:3: ")
    assert "80 cells; expected 81 cells" in message


def test_unknown_character(tmp_path: Path) -> None:
    message = read_bad(tmp_path, "bad.txt", [GOOD_LINE, "x" + GOOD_LINE[1:]])
    assert message.startswith("bad.txt:2: ")
    assert "unknown character 'x'" in message and "row 1, column 1" in message


def test_givens_that_break_a_rule(tmp_path: Path) -> None:
    clashing = "55" + "." * 79
    message = read_bad(tmp_path, "bad.txt", [GOOD_LINE, "", clashing])
    assert message.startswith("bad.txt:3: the givens break the rules")
    assert "row 1, column 1" in message and "row 1, column 2" in message


def test_puzzle_without_a_solution(tmp_path: Path) -> None:
    # row 1 needs a 9 in its last cell, but the column already holds one two rows down
    dead_end = "12345678." + "." * 9 + "........9" + "." * 54
    message = read_bad(tmp_path, "bad.txt", [GOOD_LINE, dead_end])
    assert message.startswith("bad.txt:2: the puzzle has no solution")


def test_solution_contradicting_its_givens(tmp_path: Path) -> None:
    relabelled = np.where(SOLUTION == 1, 2, np.where(SOLUTION == 2, 1, SOLUTION))  # still valid
    message = read_bad(tmp_path, "bad.txt", [f"{GOOD_LINE},{as_text(relabelled)}"])
    assert message.startswith("bad.txt:1: the solution contradicts its givens")


def test_solution_breaking_the_rules(tmp_path: Path) -> None:
    broken = SOLUTION.copy()
    broken[1] = broken[0]  # position 1 is blank in BOARD, so the givens still agree
    message = read_bad(tmp_path, "bad.txt", [GOOD_LINE, f"{GOOD_LINE},{as_text(broken)}"])
    assert message.startswith("bad.txt:2: the solution breaks the rules")
    assert "row 1, column 1" in message and "row 1, column 2" in message


def test_incomplete_solution(tmp_path: Path) -> None:
    message = read_bad(tmp_path, "bad.csv", ["quizzes,solutions", f"{GOOD_LINE},{GOOD_LINE}"])
    assert message.startswith("bad.csv:2: the solution is incomplete")


def test_csv_with_an_unknown_header(tmp_path: Path) -> None:
    message = read_bad(tmp_path, "bad.csv", ["puzzle,answer", f"{GOOD_LINE},{as_text(SOLUTION)}"])
    assert message.startswith("bad.csv:1: unknown CSV header")
    assert "quizzes,solutions" in message


def test_csv_with_a_wrong_number_of_fields(tmp_path: Path) -> None:
    row = f"{GOOD_LINE},{as_text(SOLUTION)}"
    message = read_bad(tmp_path, "bad.csv", ["quizzes,solutions", row, row + ",extra"])
    assert message.startswith("bad.csv:3: expected 2 fields (quizzes,solutions), got 3")


def test_missing_file_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        read_puzzles(tmp_path / "nowhere.txt")


def test_write_refuses_boards_larger_than_9x9(tmp_path: Path) -> None:
    empty = np.zeros((1, 256), dtype=np.int8)
    puzzles = PuzzleSet(empty, empty[:, None] + 1, np.ones(1, np.int64), np.zeros(1, bool))
    with pytest.raises(ValueError, match="up to 9x9"):
        write_puzzles(tmp_path / "big.txt", puzzles)
