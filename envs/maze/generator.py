"""Random mazes with several shortest paths, seeded and reproducible.

One attempt builds a *braided* maze on the H×W grid:

1. a random spanning tree of "rooms" (the cells at even offsets of an odd-sized core, placed at a
   random offset when a side is even), carved by a depth-first backtracker: long winding corridors;
2. each remaining wall between two rooms is knocked out with probability ``loops``, so routes
   branch and rejoin;
3. each "post" (the cell between four rooms) is opened with its four walls with probability
   ``open_squares``, giving 3×3 open squares that a shortest path can cross by several equally
   short staircases. Together these make most mazes have more than one shortest path;
4. S is a random open cell and G a random open cell at least ``min_path`` moves away (BFS).

An attempt with no such G, or on the wrong side of the train/test split (``held_out``), is thrown
away; after ``MAX_FAILED_ATTEMPTS`` failures in a row ``generate`` raises ``RuntimeError``.
The split hashes a canonical form: the smallest of the maze's shape-keeping dihedral images (with
S and G interchangeable), so a rotated or mirrored copy of a test maze is a test maze too.
"""

from __future__ import annotations

import functools
import logging
from collections import deque

import numpy as np

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.maze.grid import BLANK, GOAL, PATH, START, WALL, dihedral_maps
from hrm_rl.envs.splits import canonical_key, in_test_split

logger = logging.getLogger(__name__)

MAX_FAILED_ATTEMPTS = 1000  # consecutive thrown-away attempts before giving up on a request
DEFAULT_LOOPS = 0.0
DEFAULT_OPEN_SQUARES = 1.0
_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def default_min_path(size: tuple[int, int]) -> int:
    """H + W − 2: the corner-to-corner distance of an empty grid (12 for 7×7, 58 for 30×30).

    Every maze then needs at least a full crossing of the board; the braided mazes reach it
    easily (their corridors wind), so requests for longer paths (HRM's Maze-Hard 30×30: 109–153
    moves) can pass ``min_path`` explicitly.
    """
    return size[0] + size[1] - 2


def distances_from(open_cells: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """``int64[H, W]``: BFS moves from ``source`` through ``open_cells`` (``bool[H, W]``), -1 if
    unreachable."""
    height, width = open_cells.shape
    distance = np.full((height, width), -1, dtype=np.int64)
    distance[source] = 0
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for dr, dc in _STEPS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < height and 0 <= nc < width and open_cells[nr, nc] and distance[nr, nc] < 0:
                distance[nr, nc] = distance[r, c] + 1
                queue.append((nr, nc))
    return distance


def count_shortest_paths(board: np.ndarray, size: tuple[int, int]) -> int:
    """How many shortest S–G paths the maze ``board`` (``[L]``, tokens of rules.py) has; 0 if G
    is unreachable. Counts by dynamic programming over the BFS layers from S."""
    grid = np.asarray(board).reshape(size)
    start = tuple(np.argwhere(grid == START)[0])
    goal = tuple(np.argwhere(grid == GOAL)[0])
    distance = distances_from(grid != WALL, start)
    if distance[goal] < 0:
        return 0
    ways = np.zeros(size, dtype=object)  # Python ints: counts can exceed 64 bits
    ways[start] = 1
    for level in range(1, int(distance[goal]) + 1):
        for r, c in np.argwhere(distance == level):
            ways[r, c] = sum(
                ways[r + dr, c + dc]
                for dr, dc in _STEPS
                if 0 <= r + dr < size[0]
                and 0 <= c + dc < size[1]
                and distance[r + dr, c + dc] == level - 1
            )
    return int(ways[goal])


def canonical_form(board: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``uint8[L]``: the smallest relabelled key over the maze's shape-keeping dihedral images.

    The relabelling of :func:`hrm_rl.envs.splits.canonical_key` renames tokens by first
    appearance, which also makes S and G interchangeable (they bound the same paths).
    """
    board = np.asarray(board).reshape(-1)
    maps = _position_maps(tuple(size))
    return np.frombuffer(min(canonical_key(board[m]) for m in maps), dtype=np.uint8)


@functools.lru_cache(maxsize=16)
def _position_maps(size: tuple[int, int]) -> np.ndarray:
    return dihedral_maps(*size).numpy()


def carve(
    rng: np.random.Generator, size: tuple[int, int], loops: float, open_squares: float
) -> np.ndarray:
    """``bool[H, W]`` open cells of a braided maze (steps 1–3 of the module docstring)."""
    height, width = size
    core_h, core_w = height - (1 - height % 2), width - (1 - width % 2)  # odd sides
    rooms_h, rooms_w = (core_h + 1) // 2, (core_w + 1) // 2
    core = np.zeros((core_h, core_w), dtype=bool)
    visited = np.zeros((rooms_h, rooms_w), dtype=bool)
    first = (int(rng.integers(rooms_h)), int(rng.integers(rooms_w)))
    visited[first] = True
    core[2 * first[0], 2 * first[1]] = True
    stack = [first]
    while stack:  # depth-first backtracker over the rooms
        r, c = stack[-1]
        unvisited = [
            (dr, dc)
            for dr, dc in _STEPS
            if 0 <= r + dr < rooms_h and 0 <= c + dc < rooms_w and not visited[r + dr, c + dc]
        ]
        if not unvisited:
            stack.pop()
            continue
        dr, dc = unvisited[int(rng.integers(len(unvisited)))]
        visited[r + dr, c + dc] = True
        core[2 * r + dr, 2 * c + dc] = True  # the wall between the two rooms
        core[2 * (r + dr), 2 * (c + dc)] = True
        stack.append((r + dr, c + dc))

    rows, cols = np.indices(core.shape)
    between_rooms = (rows % 2) != (cols % 2)
    core |= between_rooms & (rng.random(core.shape) < loops)
    for r, c in np.argwhere(((rows % 2) == 1) & ((cols % 2) == 1)):
        walls = [(r + dr, c + dc) for dr, dc in _STEPS]
        # only where the four rooms already form a U (3 of the 4 walls open): the square then
        # shortens routes by at most 4 moves, but offers several equally short crossings
        if sum(core[w] for w in walls) == 3 and rng.random() < open_squares:
            core[r, c] = True
            for w in walls:
                core[w] = True

    open_cells = np.zeros(size, dtype=bool)
    top = int(rng.integers(height - core_h + 1))
    left = int(rng.integers(width - core_w + 1))
    open_cells[top : top + core_h, left : left + core_w] = core
    return open_cells


def random_shortest_path(
    rng: np.random.Generator, distance: np.ndarray, goal: tuple[int, int]
) -> list[tuple[int, int]]:
    """The cells strictly between S and G of a random shortest path (walked back from G)."""
    height, width = distance.shape
    cells = []
    r, c = goal
    while distance[r, c] > 1:
        before = [
            (r + dr, c + dc)
            for dr, dc in _STEPS
            if 0 <= r + dr < height
            and 0 <= c + dc < width
            and distance[r + dr, c + dc] == distance[r, c] - 1
        ]
        r, c = before[int(rng.integers(len(before)))]
        cells.append((r, c))
    return cells[::-1]


def generate(
    rng: np.random.Generator,
    n: int,
    *,
    size: tuple[int, int] = (30, 30),
    min_path: int | None = None,
    max_path: int | None = None,
    held_out: bool | None = False,
    test_fraction: float = 0.1,
    loops: float = DEFAULT_LOOPS,
    open_squares: float = DEFAULT_OPEN_SQUARES,
) -> PuzzleSet:
    """``n`` random mazes with one shortest path each, reproducible from ``rng``.

    Args:
        rng: the only source of randomness; the same seed gives an identical PuzzleSet.
        n: how many mazes.
        size: ``(height, width)``, 7×7 up to 30×30 (any size from 3×3 works).
        min_path: the fewest moves of the shortest S–G path; None uses
            :func:`default_min_path` (H + W − 2).
        max_path: the most moves of the shortest S–G path; None: no limit. With ``min_path``
            it makes a difficulty band (the Maze curriculum's levels).
        held_out: False (the default) keeps only training-split mazes, True only held-out ones,
            None every maze; the split hashes :func:`canonical_form` (see ``in_test_split``).
        test_fraction: the held-out share passed to ``in_test_split``.
        loops: probability of knocking out each wall between two rooms left by the tree.
        open_squares: probability of opening each post with its four walls (a 3×3 square).

    Returns:
        A PuzzleSet whose boards hold walls, S, G and blanks; ``solutions[:, 0]`` is the board
        with one random shortest path set to ``PATH`` (``num_solutions`` 1, ``has_answer``
        False: any other shortest path is as good, and the rules accept it).

    Raises:
        ValueError: a size below 3×3, negative ``n``, probabilities outside [0, 1], a
            ``held_out`` side that ``test_fraction`` leaves empty.
        RuntimeError: ``MAX_FAILED_ATTEMPTS`` attempts in a row found no G ``min_path`` moves
            from S (e.g. ``min_path`` too long for the size).
    """
    height, width = (int(s) for s in size)
    size = (height, width)
    min_path = default_min_path(size) if min_path is None else int(min_path)
    if height < 3 or width < 3:
        raise ValueError(f"mazes need at least 3x3 cells, got {height}x{width}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if min_path < 2:  # S next to G leaves no path cell to place: nothing to solve
        raise ValueError(f"min_path must be at least 2 moves, got {min_path}")
    if max_path is not None and max_path < min_path:
        raise ValueError(f"max_path must be at least min_path={min_path}, got {max_path}")
    for name, p in (("loops", loops), ("open_squares", open_squares)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} is a probability in [0, 1], got {p}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1], got {test_fraction}")
    if (held_out is True and test_fraction == 0.0) or (held_out is False and test_fraction == 1.0):
        raise ValueError(f"held_out={held_out} with test_fraction={test_fraction} keeps nothing")
    band = f"{min_path}..{max_path}" if max_path is not None else f"{min_path}.."
    request = f"{n} mazes {height}x{width}, shortest path {band} moves, held_out {held_out}"

    L = height * width
    boards = np.zeros((n, L), dtype=np.int8)
    solutions = np.zeros((n, 1, L), dtype=np.int8)
    made = failed = attempts = 0
    reason = ""
    while made < n:
        if failed >= MAX_FAILED_ATTEMPTS:
            raise RuntimeError(
                f"could not generate maze {made + 1} of {request}: {failed} attempts in a row "
                f"were thrown away (last reason: {reason}); lower min_path or relax held_out"
            )
        attempts += 1
        failed += 1
        open_cells = carve(rng, size, loops, open_squares)
        open_positions = np.argwhere(open_cells)
        start = tuple(open_positions[int(rng.integers(len(open_positions)))])
        distance = distances_from(open_cells, start)
        reachable = distance >= min_path
        if max_path is not None:
            reachable &= distance <= max_path
        far = np.argwhere(reachable)
        if len(far) == 0:
            reason = f"no open cell {band} moves from S (farthest: {distance.max()})"
            continue
        goal = tuple(far[int(rng.integers(len(far)))])
        grid = np.where(open_cells, BLANK, WALL).astype(np.int8)
        grid[start], grid[goal] = START, GOAL
        if held_out is not None and in_test_split(canonical_form(grid, size), test_fraction) != (
            held_out
        ):
            reason = f"maze is on the {'train' if held_out else 'test'} side of the split"
            continue
        solution = grid.copy()
        for cell in random_shortest_path(rng, distance, goal):
            solution[cell] = PATH
        boards[made] = grid.reshape(-1)
        solutions[made, 0] = solution.reshape(-1)
        made += 1
        failed = 0

    logger.info("generated %s in %d attempts", request, attempts)
    return PuzzleSet(
        boards=boards,
        solutions=solutions,
        num_solutions=np.ones(n, dtype=np.int64),
        has_answer=np.zeros(n, dtype=bool),
        origin=["generated"] * n,
    )
