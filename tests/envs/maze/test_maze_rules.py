"""Maze rules: legal, sound and solved boards against a plain-Python BFS, constraint
satisfaction, augmentation, and the family's generate and read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from maze_reference import cell_of, distances, neighbours, random_board

from hrm_rl.envs.maze.generator import generate
from hrm_rl.envs.maze.rules import (
    BLANK,
    GOAL,
    OFF_PATH,
    PATH,
    START,
    WALL,
    MazeRules,
)

# --- a plain-Python reference -----------------------------------------------------------------


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


def test_the_target_board_marks_the_cells_of_every_shortest_path_and_counts_open_cells():
    rng = np.random.default_rng(5)
    rules = MazeRules(7, 7)
    grids = [random_board(rng, (7, 7)) for _ in range(60)]
    boards = torch.as_tensor(np.stack([g.reshape(-1) for g in grids])).long()
    target, counted = rules.target_board(boards)
    widest = 0
    for b, grid in enumerate(grids):
        from_start = distances(grid, cell_of(grid, START), lambda t: t != WALL)
        to_goal = distances(grid, cell_of(grid, GOAL), lambda t: t != WALL)
        D = from_start.get(cell_of(grid, GOAL), -1)
        on_path = {c for c, d in from_start.items() if D > 0 and d + to_goal.get(c, -D) == D}
        want = {c for c in on_path if grid[c] in (BLANK, PATH)}
        marked = {divmod(int(p), 7) for p in ((target[b] == PATH) & counted[b]).nonzero()}
        assert marked == want, grid
        assert torch.equal(counted[b], torch.as_tensor(np.isin(grid.ravel(), (BLANK, PATH))))
        assert set(target[b].tolist()) <= {PATH, OFF_PATH}
        if D > 0:
            widest = max(widest, len(want) - (D - 1))
    assert widest > 0  # some boards have more than one shortest path: all of them are marked
    no_goal = torch.where(boards == GOAL, BLANK, boards)[:1]
    assert (rules.target_board(no_goal)[0] == OFF_PATH).all()


def test_the_goal_distance_target_is_bfs_distance_mod_3_and_descending_it_walks_shortest():
    rng = np.random.default_rng(6)
    rules = MazeRules(7, 7)
    grids = [random_board(rng, (7, 7)) for _ in range(40)]
    grids += [g.reshape(7, 7) for g in generate(rng, 20, size=(7, 7)).boards]
    boards = torch.as_tensor(np.stack([g.reshape(-1) for g in grids])).long()
    target, counted = rules.target_board(boards, kind="goal_distance")
    walked = 0
    for b, grid in enumerate(grids):
        to_goal = distances(grid, cell_of(grid, GOAL), lambda t: t != WALL)
        want = {c for c in to_goal if grid[c] in (BLANK, PATH)}
        assert {divmod(int(p), 7) for p in counted[b].nonzero()} == want, grid
        for cell in want:
            assert int(target[b, cell[0] * 7 + cell[1]]) == 1 + to_goal[cell] % 3
        if cell_of(grid, START) not in to_goal:
            continue
        classes = {c: 1 + d % 3 for c, d in to_goal.items()}  # S and G read like open cells
        here, moves = cell_of(grid, START), 0
        while here != cell_of(grid, GOAL):  # step to any neighbour one class below, mod 3
            r, c = here
            steps = [(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))]
            here = next(n for n in steps if classes.get(n) == 1 + (classes[here] - 2) % 3)
            moves += 1
        assert moves == to_goal[cell_of(grid, START)]
        walked += 1
    assert walked >= 20
    with pytest.raises(ValueError, match="goal_distance"):
        rules.target_board(boards, kind="distance")


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


# --- augmentation ------------------------------------------------------------------------------


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


# --- the family's generate and read ------------------------------------------------------------


def test_generate_refuses_a_givens_count():
    with pytest.raises(ValueError, match="no givens count"):
        MazeRules(7, 7).generate(np.random.default_rng(0), 1, givens=(3, 5))


def test_rules_read_refuses_another_size(self_made_data):
    with pytest.raises(ValueError, match="this env plays 7x7"):
        MazeRules(7, 7).read(str(self_made_data / "maze" / "question_answer.csv"))
