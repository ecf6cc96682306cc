"""Maze readers: CSV files and HRM built folders read back, and bad input names its line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from maze_reference import HARD, read_mazes_text, small_maze

from hrm_rl.envs.maze.readers import read_mazes
from hrm_rl.envs.maze.rules import BLANK, PATH, START, WALL, MazeRules


def write_csv(tmp_path: Path, rows: list[tuple[str, str]], header: str = "question,answer"):
    path = tmp_path / "mazes.csv"
    path.write_text(header + "\n" + "".join(f"{q},{a}\n" for q, a in rows))
    return path


# --- 30×30 maze files: self-made, and the public Maze-Hard sample ------------------------------


def test_hard_sample_loads_with_shortest_answers(hard):
    rules = MazeRules(30, 30)
    assert hard.has_answer.all()
    boards = torch.as_tensor(hard.boards).long()
    D = rules.shortest_distance(boards)
    if hard.origin[0].startswith(HARD):
        assert len(hard) == 50
        assert 109 <= int(D.min()) and int(D.max()) <= 153  # as the data README states
    else:
        assert len(hard) == 6 and int(D.min()) >= 90  # made with min_path=90
    assert rules.is_solved(torch.as_tensor(hard.solutions[:, 0]).long()).all()
    assert torch.equal(rules.placements_to_solve(boards), D - 1)
    measure, sizes = rules.size_measure(hard.boards)  # evaluation's table: by path, not walls
    assert measure == "shortest_path" and np.array_equal(sizes, D.numpy())
    assert (boards != PATH).all()


# --- CSV files ---------------------------------------------------------------------------------


def test_reader_reads_a_good_file(tmp_path):
    question, answer = small_maze()
    mazes = read_mazes(write_csv(tmp_path, [(question, answer)] * 2))
    assert len(mazes) == 2 and mazes.origin == ["mazes.csv:2", "mazes.csv:3"]
    assert mazes.boards[0].tolist()[:5] == [START, BLANK, BLANK, BLANK, WALL]
    assert MazeRules(4, 4).is_solved(torch.as_tensor(mazes.solutions[:, 0]).long()).all()


def test_a_file_of_another_size_says_which_env_size_plays_it(tmp_path):
    question, answer = small_maze()  # 4x4
    path = write_csv(tmp_path, [(question, answer)])
    with pytest.raises(ValueError, match=r"16-cell mazes.*7x7.*pass env\.size=\[4,4\]"):
        MazeRules(7, 7).read(str(path))
    assert len(MazeRules(4, 4).read(str(path))) == 1


@pytest.mark.parametrize(
    ("question", "answer", "line", "reason"),
    [
        ("S   ### ", "Sooo### ", 2, "expected a square board"),
        ("S   ### x   G## ", "Sooo###oxoooG## ", 2, "unknown character 'x'"),
        ("S   ### S   G## ", "Sooo###o    G## ", 2, "holds 2 'S'"),
        ("S   ###        #", "Sooo###o    oooo", 2, "holds 0 'G'"),
        ("S   ###     G## ", "Sooo###oooooG###", 2, "differs from the question outside path"),
        ("S   ###     G## ", "Sooo###o oooG## ", 2, "not a shortest S–G path"),
        ("S   ########G## ", "Sooo########G## ", 2, "G is unreachable"),
        ("S o ###     G## ", "Sooo###oooooG## ", 2, "holds a path cell 'o'"),
        ("SG  ###     ### ", "SG  ###     ### ", 2, "S is next to G"),
    ],
    ids=[
        "length",
        "character",
        "two-S",
        "no-G",
        "differs",
        "not-shortest",
        "unreachable",
        "o",
        "S-G",
    ],
)
def test_reader_names_file_line_and_reason(tmp_path, question, answer, line, reason):
    good_q, good_a = small_maze()
    rows = [(question, answer)] if line == 2 else [(good_q, good_a), (question, answer)]
    with pytest.raises(ValueError, match=f"^mazes.csv:{line}: .*{reason}"):
        read_mazes(write_csv(tmp_path, rows))


def test_reader_names_a_size_change_and_an_unknown_header(tmp_path):
    good_q, good_a = small_maze()
    with pytest.raises(ValueError, match="^mazes.csv:3: .*expected 16 like mazes.csv:2"):
        read_mazes(
            write_csv(tmp_path, [(good_q, good_a), ("S" + " " * 23 + "G", "S" + " " * 23 + "G")])
        )
    with pytest.raises(ValueError, match="^mazes.csv:1: unknown CSV header"):
        read_mazes(write_csv(tmp_path, [(good_q, good_a)], header="quizzes,solutions"))


def test_csv_with_hrm_columns_file(self_made_data):
    """``source,question,answer,rating``: question and answer come from columns 2 and 3."""
    path = self_made_data / "maze" / "hrm_columns.csv"
    rows = path.read_text().splitlines()
    assert rows[0] == "source,question,answer,rating"
    mazes = read_mazes(path)
    assert mazes.boards.shape == (len(rows) - 1, 100)
    assert mazes.origin == [f"hrm_columns.csv:{line}" for line in range(2, len(rows) + 1)]
    for board, row in zip(mazes.boards, rows[1:], strict=True):
        question = row.split(",")[1]
        assert board.tolist() == read_mazes_text(question).tolist()
    assert MazeRules(10, 10).is_solved(torch.as_tensor(mazes.solutions[:, 0]).long()).all()


# --- HRM built folders -------------------------------------------------------------------------


def build_hrm_folder(root: Path, inputs: np.ndarray, labels: np.ndarray) -> Path:
    split = root / "test"
    split.mkdir(parents=True)
    meta = {"seq_len": inputs.shape[1], "vocab_size": 6, "pad_id": 0, "sets": ["all"]}
    (split / "dataset.json").write_text(json.dumps(meta))
    np.save(split / "all__inputs.npy", inputs)
    np.save(split / "all__labels.npy", labels)
    return split


def hrm_tokens(text: str) -> np.ndarray:
    return np.array(["# SGo".index(ch) + 1 for ch in text], dtype=np.uint8)


def test_hrm_built_folder_reads_like_the_csv(tmp_path):
    question, answer = small_maze()
    split = build_hrm_folder(
        tmp_path, np.stack([hrm_tokens(question)] * 3), np.stack([hrm_tokens(answer)] * 3)
    )
    from_folder = read_mazes(split)
    from_csv = read_mazes(write_csv(tmp_path, [(question, answer)]))
    np.testing.assert_array_equal(from_folder.boards[0], from_csv.boards[0])
    np.testing.assert_array_equal(from_folder.solutions[0], from_csv.solutions[0])
    assert from_folder.origin[2] == "test/all__inputs.npy:row 2"


def test_hrm_folder_names_a_padding_token_and_a_bad_answer(tmp_path):
    question, answer = small_maze()
    inputs = np.stack([hrm_tokens(question)] * 2)
    inputs[1, 5] = 0
    with pytest.raises(ValueError, match=r"^test/all__inputs.npy:row 1: unknown input token 0"):
        read_mazes(build_hrm_folder(tmp_path / "a", inputs, np.stack([hrm_tokens(answer)] * 2)))
    detour = hrm_tokens("Sooo###o oooG## ")
    with pytest.raises(ValueError, match=r"^test/all__inputs.npy:row 0: .*not a shortest"):
        read_mazes(build_hrm_folder(tmp_path / "b", inputs[:1], detour[None]))


def test_hrm_built_maze_folder_file_reads_like_the_csv_it_was_made_from(self_made_data):
    split = self_made_data / "maze" / "hrm_maze" / "test"
    inputs = np.load(split / "all__inputs.npy")
    assert inputs.dtype == np.uint8 and inputs.shape == (4, 900)
    from_folder = read_mazes(split)
    from_csv = read_mazes(self_made_data / "maze" / "question_answer.csv", limit=4)
    np.testing.assert_array_equal(from_folder.boards, from_csv.boards)
    np.testing.assert_array_equal(from_folder.solutions, from_csv.solutions)
    assert from_folder.origin == [f"test/all__inputs.npy:row {k}" for k in range(4)]
    assert from_csv.origin[-1] == "question_answer.csv:5"
    with pytest.raises(ValueError, match="hrm_maze: holds the splits test; pass one of them"):
        read_mazes(split.parent)
