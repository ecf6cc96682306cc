"""Maze family: rules against a plain-Python BFS, 30×30 maze files (self-made, and the public
Maze-Hard sample when present) played through both front-ends along their own and other shortest
paths, generator, readers, augmentation, rendering."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from equivalence import assert_same_trajectories
from gymnasium.utils.env_checker import check_env
from torchrl.envs.utils import check_env_specs

import hrm_rl  # noqa: F401  (registers the Gymnasium ids)
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.gym_env import PuzzleEnv
from hrm_rl.envs.maze.bfs import bfs_distances
from hrm_rl.envs.maze.generator import canonical_form, count_shortest_paths, generate
from hrm_rl.envs.maze.readers import read_mazes
from hrm_rl.envs.maze.rules import (
    BLANK,
    GOAL,
    OFF_PATH,
    PATH,
    START,
    WALL,
    MazeRules,
    dihedral_maps,
)
from hrm_rl.envs.registration import make_rules

V = 5
STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))
HARD = "maze30_hard_sample50.csv"  # in ../shared/data, third-party: the extra checks read it


# --- a plain-Python reference -----------------------------------------------------------------


def neighbours(cell, shape):
    r, c = cell
    for dr, dc in STEPS:
        if 0 <= r + dr < shape[0] and 0 <= c + dc < shape[1]:
            yield (r + dr, c + dc)


def distances(grid: np.ndarray, source, passable) -> dict:
    """Moves from ``source`` to every cell reachable through cells where ``passable`` holds."""
    found = {source: 0}
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        for nxt in neighbours(cell, grid.shape):
            if nxt not in found and passable(grid[nxt]):
                found[nxt] = found[cell] + 1
                queue.append(nxt)
    return found


def cell_of(grid: np.ndarray, token: int):
    return tuple(int(x) for x in np.argwhere(grid == token)[0])


def reference(grid: np.ndarray) -> dict:
    """Legal cells, sound cells, solved and placements to solve, straight from the definitions."""
    S, G = cell_of(grid, START), cell_of(grid, GOAL)
    to_goal = distances(grid, G, lambda t: t != WALL)
    D = to_goal.get(S, -1)
    path = {tuple(int(x) for x in p) for p in np.argwhere(grid == PATH)}
    k = len(path)
    chain = path | {S}
    if path:
        heads = [p for p in path if sum(n in chain for n in neighbours(p, grid.shape)) == 1]
    else:
        heads = [S]
    complete = any(G in neighbours(h, grid.shape) for h in heads)
    legal = set()
    if not complete:
        legal = {n for h in heads for n in neighbours(h, grid.shape) if grid[n] == BLANK}
    sound = {c for c, d in to_goal.items() if grid[c] == BLANK and d == D - k - 1}
    along = distances(grid, S, lambda t: t in (START, GOAL, PATH)).get(G, -1)
    solved = D > 0 and k == D - 1 and along == D
    return {"legal": legal, "sound": sound, "solved": solved, "to_solve": max(D - 1 - k, 0)}


def random_board(rng: np.random.Generator, shape) -> np.ndarray:
    """Random obstacles, S, G, and a path: a shortest-path prefix, whole, or with a stray cell."""
    while True:
        grid = np.where(rng.random(shape) < rng.uniform(0.1, 0.4), WALL, BLANK)
        open_cells = [tuple(c) for c in np.argwhere(grid == BLANK)]
        if len(open_cells) < 2:
            continue
        i, j = rng.choice(len(open_cells), 2, replace=False)
        S, G = open_cells[i], open_cells[j]
        grid[S], grid[G] = START, GOAL
        from_start = distances(grid, S, lambda t: t != WALL)
        if G in from_start:
            break
    cells, cell = [], G  # a random shortest path, walked back from G
    while from_start[cell] > 1:
        cell = [n for n in neighbours(cell, shape) if from_start.get(n) == from_start[cell] - 1]
        cell = cell[rng.integers(len(cell))]
        cells.append(cell)
    cells = cells[::-1]
    kind = rng.integers(4)
    keep = len(cells) if kind == 0 else int(rng.integers(len(cells) + 1))
    for c in cells[:keep]:
        grid[c] = PATH
    if kind == 3:  # a stray path cell anywhere open
        blanks = np.argwhere(grid == BLANK)
        if len(blanks):
            grid[tuple(blanks[rng.integers(len(blanks))])] = PATH
    return grid


@pytest.mark.parametrize("shape", [(7, 7), (6, 9)])
def test_rules_agree_with_a_plain_python_bfs_on_random_boards(shape):
    rng = np.random.default_rng(3)
    rules = MazeRules(*shape)
    grids = [random_board(rng, shape) for _ in range(120)]
    boards = torch.as_tensor(np.stack([g.reshape(-1) for g in grids])).long()
    legal = rules.legal_mask(boards)
    solved = rules.is_solved(boards)
    to_solve = rules.placements_to_solve(boards)
    L = rules.num_positions
    sound = rules.is_sound(  # every position of every board, as one batch
        boards.repeat_interleave(L, dim=0),
        torch.zeros(len(grids) * L, 1, L, dtype=torch.long),
        torch.ones(len(grids) * L, 1, dtype=torch.bool),
        torch.arange(L).repeat(len(grids)),
        torch.full((len(grids) * L,), PATH),
    ).view(len(grids), L)
    counts = {"solved": 0, "sound": 0, "legal": 0}
    for b, grid in enumerate(grids):
        want = reference(grid)
        legal_cells = {divmod(int(p), shape[1]) for p in legal[b, :, PATH - 1].nonzero()}
        assert legal_cells == want["legal"], grid
        assert not legal[b][:, [WALL - 1, START - 1, GOAL - 1, OFF_PATH - 1]].any()
        assert {divmod(int(p), shape[1]) for p in sound[b].nonzero()} == want["sound"], grid
        assert bool(solved[b]) == want["solved"], grid
        assert int(to_solve[b]) == want["to_solve"], grid
        counts["solved"] += want["solved"]
        counts["sound"] += bool(want["sound"] & want["legal"])
        counts["legal"] += bool(want["legal"])
    assert min(counts.values()) > 10  # the random boards exercise every outcome


def test_other_values_are_never_sound_and_may_be_solved_is_necessary():
    rng = np.random.default_rng(4)
    rules = MazeRules(7, 7)
    boards = torch.as_tensor(np.stack([random_board(rng, (7, 7)).ravel() for _ in range(60)]))
    boards = boards.long()
    assert not (rules.is_solved(boards) & ~rules.may_be_solved(boards)).any()
    position = rules.legal_mask(boards)[:, :, PATH - 1].float().argmax(dim=1)
    args = (boards, None, torch.ones(60, 1, dtype=torch.bool), position)
    for value in (WALL, START, GOAL, OFF_PATH):
        assert not rules.is_sound(*args, torch.full((60,), value)).any()


def test_bfs_distances_match_the_reference():
    rng = np.random.default_rng(5)
    grids = [random_board(rng, (8, 11)) for _ in range(20)]
    boards = torch.as_tensor(np.stack([g.ravel() for g in grids])).long()
    got = bfs_distances(boards != WALL, boards == GOAL, 11)
    for b, grid in enumerate(grids):
        want = np.full(grid.shape, -1)
        for cell, d in distances(grid, cell_of(grid, GOAL), lambda t: t != WALL).items():
            want[cell] = d
        np.testing.assert_array_equal(got[b].view(8, 11).numpy(), want)


def test_constraint_satisfaction_scores_solutions_one_and_shortcuts_less():
    rules = MazeRules(7, 7)
    puzzles = generate(np.random.default_rng(0), 30, size=(7, 7))
    solutions = torch.as_tensor(puzzles.solutions[:, 0]).long()
    boards = torch.as_tensor(puzzles.boards).long()
    assert torch.equal(rules.constraint_satisfaction(solutions), torch.ones(30))
    assert torch.equal(rules.constraint_satisfaction(boards), torch.zeros(30))
    everything = torch.where(boards == BLANK, PATH, boards)  # every open cell marked as path
    assert (rules.constraint_satisfaction(everything) < 1).all()
    assert not rules.is_solved(everything).any()


# --- 30×30 maze files: self-made, and the public Maze-Hard sample ------------------------------


@pytest.fixture(scope="module", params=["self-made", "shared"])
def hard(request: pytest.FixtureRequest):
    """The self-made ``question_answer.csv`` of tests/data (6 mazes), then the Maze-Hard sample
    of ../shared/data (50 mazes; skipped when that folder is absent)."""
    if request.param == "self-made":
        folder = request.getfixturevalue("self_made_data") / "maze"
        return read_mazes(folder / "question_answer.csv")
    return read_mazes(request.getfixturevalue("shared_data") / HARD)


def order_from_start(grid: np.ndarray, cells) -> list[int]:
    """Row-major positions of the path ``cells``, in order of their distance from S."""
    from_start = distances(grid, cell_of(grid, START), lambda t: t != WALL)
    ordered = sorted(cells, key=lambda c: from_start[c])
    return [r * grid.shape[1] + c for r, c in ordered]


def given_path(puzzles, i) -> list[int]:
    side = int(np.sqrt(puzzles.boards.shape[1]))
    grid = puzzles.boards[i].reshape(side, side)
    answer = puzzles.solutions[i, 0].reshape(side, side)
    return order_from_start(grid, [tuple(c) for c in np.argwhere(answer == PATH)])


def other_shortest_path(puzzles, i) -> list[int]:
    """A shortest path that leaves the stored one somewhere (needs 2+ shortest paths)."""
    side = int(np.sqrt(puzzles.boards.shape[1]))
    grid = puzzles.boards[i].reshape(side, side)
    answer = puzzles.solutions[i, 0].reshape(side, side)
    from_start = distances(grid, cell_of(grid, START), lambda t: t != WALL)
    cells, cell = [], cell_of(grid, GOAL)
    while from_start[cell] > 1:  # walk back from G, off the stored path whenever possible
        before = [
            n for n in neighbours(cell, grid.shape) if from_start.get(n) == from_start[cell] - 1
        ]
        cell = min(before, key=lambda n: answer[n] == PATH)
        cells.append(cell)
    return order_from_start(grid, cells)


def play(env: PuzzleEnv, index: int, positions: list[int]) -> tuple[float, bool, dict]:
    env.reset(options={"index": index})
    total, terminated, info = 0.0, False, {}
    for step, position in enumerate(positions):
        assert not terminated, f"ended early at step {step}"
        _, reward, terminated, truncated, info = env.step(position * V + PATH - 1)
        assert not truncated
        total += reward
    return total, terminated, info


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
    assert (boards != PATH).all()


def test_given_and_other_shortest_paths_solve_through_puzzle_env(hard):
    env = PuzzleEnv(family="maze", size=(30, 30), puzzles=hard, solve_bonus=0.5)
    several = [i for i in range(len(hard)) if count_shortest_paths(hard.boards[i], (30, 30)) > 1]
    assert len(several) >= 0.8 * len(hard)  # these mazes nearly always have several
    for i in several[:1]:  # one maze (a 30×30 step here is ~10 ms); all 50 play batched below
        for path in (given_path(hard, i), other_shortest_path(hard, i)):
            total, terminated, info = play(env, i, path)
            assert terminated and info["solved"] and not info["mistake"]
            assert total == pytest.approx(1.5)
        assert other_shortest_path(hard, i) != given_path(hard, i)


def test_every_hard_maze_solves_along_two_paths_in_the_batched_env(hard):
    """All N given paths and N other shortest paths, played in one batch of 2N slots."""
    n = len(hard)
    paths = [given_path(hard, i) for i in range(n)] + [
        other_shortest_path(hard, i) for i in range(n)
    ]
    env = BatchedPuzzleEnv(
        MazeRules(30, 30), hard, batch_size=2 * n, augment=False, solve_bonus=1.0
    )
    td = env.reset(puzzle_index=torch.arange(2 * n) % n)
    total = torch.zeros(2 * n, dtype=torch.float64)
    done = torch.zeros(2 * n, dtype=torch.bool)
    for step in range(max(map(len, paths))):
        action = [p[min(step, len(p) - 1)] * V + PATH - 1 for p in paths]
        td["action"] = torch.tensor(action)
        td = env.step(td)
        reward = td["next", "reward"].squeeze(1).double()
        total += torch.where(done, 0.0, reward)
        newly = td["next", "done"].squeeze(1) & ~done
        ends = torch.tensor([len(p) == step + 1 for p in paths])
        assert torch.equal(newly, ends & ~done)  # every slot ends exactly at its last cell
        assert td["next", "solved"].squeeze(1)[newly].all()
        done |= newly
        td = td["next"]
    assert done.all()
    assert torch.allclose(total, torch.full((2 * n,), 2.0, dtype=torch.float64))


def test_hrm_built_maze_folder_plays_through_puzzle_env_read_from_data(self_made_data):
    """``data=`` an HRM built split: read through MazeRules.read, each given path solves."""
    split = self_made_data / "maze" / "hrm_maze" / "test"
    env = PuzzleEnv(family="maze", size=(30, 30), data=str(split), solve_bonus=0.5)
    mazes = env.puzzles
    assert len(mazes) == 4 and mazes.origin[0] == "test/all__inputs.npy:row 0"
    for i in range(len(mazes)):
        total, terminated, info = play(env, i, given_path(mazes, i))
        assert terminated and info["solved"] and total == pytest.approx(1.5)


def test_a_placement_off_every_shortest_path_is_a_mistake(hard):
    env = PuzzleEnv(family="maze", size=(30, 30), puzzles=hard, mistake_reward=-1.0)
    rules = env.rules
    for i in range(len(hard)):
        board = torch.as_tensor(hard.boards[i]).long().view(1, -1)
        legal = rules.legal_mask(board)[0, :, PATH - 1].nonzero().view(-1)
        sound = rules.is_sound(
            board.expand(len(legal), -1), None, None, legal, torch.full((len(legal),), PATH)
        )
        if (~sound).any():
            break
    else:
        pytest.fail("no maze of the sample has a legal first move off every shortest path")
    env.reset(options={"index": i})
    _, reward, terminated, _, info = env.step(int(legal[~sound][0]) * V + PATH - 1)
    assert terminated and info["mistake"] and not info["solved"] and not info["illegal"]
    assert reward == -1.0


# --- augmentation ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 7), (6, 9)])
def test_every_dihedral_map_keeps_solutions_solved(shape):
    rules = MazeRules(*shape)
    puzzles = generate(np.random.default_rng(1), 20, size=shape)
    solutions = torch.as_tensor(puzzles.solutions[:, 0]).long()
    maps = dihedral_maps(*shape)
    assert len(maps) == (8 if shape[0] == shape[1] else 4)
    assert len({tuple(m.tolist()) for m in maps}) == len(maps)
    for m in maps:
        assert rules.is_solved(solutions[:, m]).all()


def test_augment_moves_board_and_solutions_together_and_keeps_them_valid():
    rules = MazeRules(7, 7)
    puzzles = generate(np.random.default_rng(2), 64, size=(7, 7))
    boards = torch.as_tensor(puzzles.boards).long()
    solutions = torch.as_tensor(puzzles.solutions).long()
    generator = torch.Generator().manual_seed(0)
    moved, moved_solutions = rules.augment(boards, solutions, generator)
    assert moved.shape == boards.shape and moved_solutions.shape == solutions.shape
    assert rules.is_solved(moved_solutions[:, 0]).all()
    assert ((moved == START).sum(1) == 1).all() and ((moved == GOAL).sum(1) == 1).all()
    assert torch.equal(
        torch.where(moved_solutions[:, 0] == PATH, BLANK, moved_solutions[:, 0]), moved
    )
    assert torch.equal(rules.shortest_distance(moved), rules.shortest_distance(boards))
    assert (moved != boards).any(dim=1).float().mean() > 0.5  # most puzzles actually moved


# --- generator ---------------------------------------------------------------------------------


def test_generator_refuses_a_maze_with_nothing_to_place():
    with pytest.raises(ValueError, match="min_path must be at least 2 moves"):
        generate(np.random.default_rng(0), 1, size=(7, 7), min_path=1)


def test_generator_is_seeded_and_respects_min_path():
    a = generate(np.random.default_rng(7), 40, size=(9, 9), min_path=20)
    b = generate(np.random.default_rng(7), 40, size=(9, 9), min_path=20)
    c = generate(np.random.default_rng(8), 40, size=(9, 9), min_path=20)
    np.testing.assert_array_equal(a.boards, b.boards)
    np.testing.assert_array_equal(a.solutions, b.solutions)
    assert not np.array_equal(a.boards, c.boards)
    D = MazeRules(9, 9).shortest_distance(torch.as_tensor(a.boards).long())
    assert (D >= 20).all()
    assert not a.has_answer.any() and (a.num_solutions == 1).all()


@pytest.mark.parametrize("size", [(7, 7), (30, 30)])
def test_generated_mazes_are_valid_and_often_have_several_shortest_paths(size):
    puzzles = generate(np.random.default_rng(0), 30, size=size)
    rules = MazeRules(*size)
    boards = torch.as_tensor(puzzles.boards).long()
    assert ((boards == START).sum(1) == 1).all() and ((boards == GOAL).sum(1) == 1).all()
    assert set(boards.unique().tolist()) == {BLANK, WALL, START, GOAL}
    assert (rules.shortest_distance(boards) >= size[0] + size[1] - 2).all()  # the default
    assert rules.is_solved(torch.as_tensor(puzzles.solutions[:, 0]).long()).all()
    several = [count_shortest_paths(board, size) > 1 for board in puzzles.boards]
    assert np.mean(several) > 0.5


def test_held_out_mazes_never_appear_in_training_even_rotated():
    size = (7, 7)
    train = generate(np.random.default_rng(0), 300, size=size, held_out=False)
    test = generate(np.random.default_rng(0), 100, size=size, held_out=True)
    train_keys = {canonical_form(b, size).tobytes() for b in train.boards}
    test_keys = {canonical_form(b, size).tobytes() for b in test.boards}
    assert not train_keys & test_keys
    maps = dihedral_maps(*size).numpy()
    rotated = test.boards[0][maps[1]]
    assert canonical_form(rotated, size).tobytes() in test_keys


def test_generate_refuses_a_givens_count():
    with pytest.raises(ValueError, match="no givens count"):
        MazeRules(7, 7).generate(np.random.default_rng(0), 1, givens=(3, 5))


# --- readers -----------------------------------------------------------------------------------


def small_maze() -> tuple[str, str]:
    """A 4×4 question and its only shortest answer (9 moves, 8 path cells)."""
    question = "S   " + "### " + "    " + "G## "
    answer = "Sooo" + "###o" + "oooo" + "G## "
    return question, answer


def write_csv(tmp_path: Path, rows: list[tuple[str, str]], header: str = "question,answer"):
    path = tmp_path / "mazes.csv"
    path.write_text(header + "\n" + "".join(f"{q},{a}\n" for q, a in rows))
    return path


def test_reader_reads_a_good_file(tmp_path):
    question, answer = small_maze()
    mazes = read_mazes(write_csv(tmp_path, [(question, answer)] * 2))
    assert len(mazes) == 2 and mazes.origin == ["mazes.csv:2", "mazes.csv:3"]
    assert mazes.boards[0].tolist()[:5] == [START, BLANK, BLANK, BLANK, WALL]
    assert MazeRules(4, 4).is_solved(torch.as_tensor(mazes.solutions[:, 0]).long()).all()


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


def test_rules_read_refuses_another_size(self_made_data):
    with pytest.raises(ValueError, match="this env plays 7x7"):
        MazeRules(7, 7).read(str(self_made_data / "maze" / "question_answer.csv"))


# --- rendering, registration, configs ----------------------------------------------------------


def test_render_ansi_and_rgb():
    question, answer = small_maze()
    board = read_mazes_text(answer)
    rules = MazeRules(4, 4)
    text = rules.render_ansi(board, board != BLANK)
    assert text.splitlines() == ["Sooo", "###o", "oooo", "G## "]
    image = rules.render_rgb(board, board != BLANK)
    assert image.dtype == np.uint8 and image.shape[2] == 3 and image.shape[0] == image.shape[1]
    centre = image.shape[0] // 8  # the middle of cell (0, 0): S
    colours = {
        tuple(image[centre + 12 * r, centre + 12 * c])
        for r, c in [(0, 0), (1, 0), (0, 1), (3, 0), (3, 3)]
    }
    assert len(colours) == 5  # S, wall, path, G, open are told apart
    off = np.where(board == BLANK, OFF_PATH, board)
    assert rules.render_ansi(off, board != BLANK) == text


def read_mazes_text(text: str) -> np.ndarray:
    return np.array([{"#": WALL, " ": BLANK, "S": START, "G": GOAL, "o": PATH}[ch] for ch in text])


@pytest.mark.parametrize("action_mode", ["cell", "grid"])
def test_gymnasium_check_env(action_mode):
    env = gym.make("hrm_rl/Maze7x7-v0", action_mode=action_mode, render_mode="ansi").unwrapped
    check_env(env, skip_render_check=False)
    assert repr(env.rules) == "MazeRules(7x7)"


def test_registered_ids_and_configs():
    assert repr(make_rules("maze", size=(15, 15))) == "MazeRules(15x15)"
    assert repr(gym.make("hrm_rl/Maze-v0").unwrapped.rules) == "MazeRules(30x30)"
    from omegaconf import OmegaConf

    from hrm_rl.envs.registration import rules_from_config

    configs = Path(__file__).resolve().parents[2] / "configs" / "env"
    for name, side in [("maze", 30), ("maze7x7", 7), ("maze9x9", 9), ("maze15x15", 15)]:
        cfg = OmegaConf.load(configs / f"{name}.yaml")
        assert cfg.givens is None and cfg.curriculum.mode == "off"
        assert repr(rules_from_config(cfg)) == f"MazeRules({side}x{side})"


# --- the batched env ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bank7():
    return generate(np.random.default_rng(0), 40, size=(7, 7))


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("action_mode", ["cell", "grid"])
def test_check_env_specs(bank7, batch, action_mode):
    env = BatchedPuzzleEnv(
        MazeRules(7, 7), bank7, batch_size=batch, action_mode=action_mode, seed=0
    )
    check_env_specs(env)


def test_same_mazes_and_actions_give_identical_trajectories(bank7):
    """B slots play against B Gymnasium envs reset to the maze each slot drew (as for Sudoku)."""
    _, solved = assert_same_trajectories(MazeRules(7, 7), bank7, batch_size=6, steps=80)
    assert solved >= 1  # episodes ended by mistakes and by solves


def test_grid_mode_solves_with_a_shortest_path_and_not_without(bank7):
    rules = MazeRules(7, 7)
    env = BatchedPuzzleEnv(
        rules, bank7, batch_size=4, action_mode="grid", augment=False, shaping=0.5, seed=1
    )
    td = env.reset()
    solutions = torch.as_tensor(bank7.solutions[td["puzzle_index"].numpy(), 0]).long()
    td["action"] = torch.where(solutions == BLANK, OFF_PATH, solutions) - 1
    out = env.step(td)["next"]
    assert out["terminated"].all() and out["solved"].all()
    assert torch.equal(out["reward"], torch.ones(4, 1))
    td = env.reset()
    td["action"] = torch.where(td["board"] == BLANK, OFF_PATH, td["board"]) - 1  # no path at all
    out = env.step(td)["next"]
    assert not out["terminated"].any() and torch.equal(out["reward"], torch.zeros(4, 1))


def test_a_grid_proposal_that_adds_walls_never_solves_in_either_env(bank7):
    """A proposal may only mark path or off-path at open cells: a correct path with one new wall
    elsewhere is refused by both front-ends, although the board alone would look solved."""
    rules = MazeRules(7, 7)
    solution = torch.as_tensor(bank7.solutions[0, 0]).long()
    proposal = torch.where(solution == BLANK, OFF_PATH, solution)
    extra = int((solution == BLANK).nonzero()[0])
    proposal[extra] = WALL
    assert bool(rules.is_solved(proposal.unsqueeze(0))[0])  # the rules see only the board

    batched = BatchedPuzzleEnv(rules, bank7, batch_size=1, action_mode="grid", augment=False)
    td = batched.reset(puzzle_index=torch.tensor([0]))
    td["action"] = (proposal - 1).unsqueeze(0)
    assert not batched.step(td)["next", "solved"].any()

    single = PuzzleEnv(rules=rules, puzzles=bank7, action_mode="grid")
    single.reset(options={"index": 0})
    _, reward, terminated, _, info = single.step((proposal - 1).numpy())
    assert not terminated and not info["solved"] and reward == 0.0
    proposal[extra] = OFF_PATH
    _, reward, terminated, _, info = single.step((proposal - 1).numpy())
    assert terminated and info["solved"] and reward == 1.0
