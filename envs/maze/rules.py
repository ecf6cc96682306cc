"""Maze rules on an H×W grid, batched on torch tensors: extend a path from S to G, shortest only.

Board tokens (row-major, L = H·W positions; defined in :mod:`hrm_rl.envs.maze.grid`)::

    0 BLANK     open cell, not (yet) on the path   -- the "empty" value agents fill
    1 WALL      given
    2 START     S, given
    3 GOAL      G, given
    4 PATH      a path cell placed by the agent
    5 OFF_PATH  open and off the path (only whole-board `grid` proposals use it)

In `cell` mode the only move is value 4 at a blank cell next to the path's *head* (S while the
path is empty, else its last cell). A move is *sound* when the new cell lies on a shortest S–G path
that continues the path so far: ``d_G(cell) == D - k - 1``, with ``d_G`` the BFS distance to G
through non-wall cells, ``D = d_G(S)`` and ``k`` the path cells before the move. Mazes can have
exponentially many shortest paths, so soundness and "solved" are decided by these rules from the
board alone; no stored solution is consulted. Any shortest path counts.

Distances come from the bit-packed batched BFS of :mod:`hrm_rl.envs.maze.bfs`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.envs.maze.bfs import (
    MAX_WIDTH,
    bfs_distances,
    pack,
    probe_distances,
    reached_within,
)
from hrm_rl.envs.maze.generator import generate
from hrm_rl.envs.maze.grid import (
    BLANK,
    GOAL,
    NUM_TOKENS,
    OFF_PATH,
    PATH,
    START,
    WALL,
    dihedral_maps,
    neighbour_count,
)
from hrm_rl.envs.maze.readers import read_mazes
from hrm_rl.envs.maze.render import render_ansi, render_rgb
from hrm_rl.envs.registration import register_family


class MazeRules(PuzzleRules):
    """Rules of H×W mazes: 5 values (wall, S, G, path, off-path), only ``PATH`` is ever placed."""

    name = "maze"
    num_values = 5

    def __init__(self, height: int = 30, width: int = 30) -> None:
        if height < 2 or width < 2:
            raise ValueError(f"a maze needs at least 2x2 cells, got {height}x{width}")
        if width > MAX_WIDTH:
            raise ValueError(f"maze widths up to {MAX_WIDTH} are supported, got {width}")
        self.height, self.width = int(height), int(width)
        self.num_positions = self.height * self.width
        self._maps: dict[torch.device, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"MazeRules({self.height}x{self.width})"

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.size

    def difficulty_levels(self, num_levels: int = 5) -> list[dict]:
        """Bands of the shortest S–G path length from 2 moves (one path cell to place) up to just
        below the generator's default minimum (H + W − 2, ``generator.default_min_path``), then
        the default."""
        if num_levels < 1:
            raise ValueError(f"num_levels must be at least 1, got {num_levels}")
        shortest, longest = 2, self.height + self.width - 3  # the easier bands end below default
        bands = min(num_levels - 1, longest - shortest + 1)
        span = longest - shortest + 1
        edges = [shortest + (i * span) // bands for i in range(bands + 1)] if bands else []
        levels = [{"min_path": edges[i], "max_path": edges[i + 1] - 1} for i in range(bands)]
        return levels + [{}]

    def constraint_graph(self) -> torch.Tensor:
        """``bool[1, L, L]``: 4-neighbours (and each cell with itself), where a path moves."""
        rows = torch.arange(self.num_positions) // self.width
        cols = torch.arange(self.num_positions) % self.width
        steps = (rows[:, None] - rows[None]).abs() + (cols[:, None] - cols[None]).abs()
        return (steps <= 1).unsqueeze(0)

    def _grid(self, cells: torch.Tensor) -> torch.Tensor:
        return cells.view(cells.shape[0], self.height, self.width)

    def _where(self, boards: torch.Tensor, token: int) -> torch.Tensor:
        """``int64[B, 1]``: the first position holding ``token`` (0 when there is none)."""
        return (boards == token).long().argmax(dim=1, keepdim=True)

    # --- distances --------------------------------------------------------------------------

    def shortest_distance(self, boards: torch.Tensor) -> torch.Tensor:
        """``int64[B]``: D, the fewest moves from S to G through non-wall cells (-1: none)."""
        return probe_distances(
            boards != WALL, boards == START, self._where(boards, GOAL), self.width
        )[:, 0]

    def size_measure(self, boards: np.ndarray) -> tuple[str, np.ndarray]:
        """``"shortest_path"``: the fewest moves from S to G of each maze (its walls would count
        as givens, which says little about how hard it is)."""
        distances = self.shortest_distance(torch.as_tensor(np.asarray(boards)).long())
        return "shortest_path", distances.numpy()

    # --- cell mode ---------------------------------------------------------------------------

    def head(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, H, W]``: the path's head: S while no path cell exists, else the path cell
        with exactly one 4-neighbour in {S} ∪ path (on a sound path there is exactly one)."""
        grid = self._grid(boards)
        path = grid == PATH
        chained = neighbour_count(path | (grid == START))
        has_path = path.flatten(1).any(dim=1).view(-1, 1, 1)
        return torch.where(has_path, path & (chained == 1), grid == START)

    def legal_mask(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, L, V]``: only ``PATH``, only on a blank cell next to the head, and nothing
        once the head touches G (the path is complete)."""
        grid = self._grid(boards)
        head = self.head(boards)
        complete = (head & (neighbour_count(grid == GOAL) > 0)).flatten(1).any(dim=1)
        moves = (neighbour_count(head) > 0) & (grid == BLANK) & ~complete.view(-1, 1, 1)
        mask = torch.zeros(
            boards.shape[0],
            self.num_positions,
            self.num_values,
            dtype=torch.bool,
            device=boards.device,
        )
        mask[:, :, PATH - 1] = moves.flatten(1)
        return mask

    def is_sound(
        self,
        boards: torch.Tensor,
        solutions: torch.Tensor,
        alive: torch.Tensor,
        position: torch.Tensor,
        value: torch.Tensor,
    ) -> torch.Tensor:
        """``bool[B]``: ``PATH`` on a blank cell with ``d_G(cell) == D - k - 1`` (by the rules;
        ``solutions`` and ``alive`` are not consulted)."""
        position = position.long().view(-1, 1)
        probes = torch.cat([self._where(boards, START), position], dim=1)  # [B, 2]: S, the cell
        to_goal = probe_distances(
            boards != WALL, boards == GOAL, probes, self.width, until_first=True
        )
        D, d_cell = to_goal[:, 0], to_goal[:, 1]
        k = (boards == PATH).sum(dim=1)
        blank = boards.gather(1, position).squeeze(1) == BLANK
        has_start = (boards == START).any(dim=1)
        return (value.view(-1) == PATH) & blank & has_start & (d_cell >= 0) & (d_cell == D - k - 1)

    def update_alive(
        self,
        boards: torch.Tensor,
        solutions: torch.Tensor,
        alive: torch.Tensor,
        position: torch.Tensor,
        value: torch.Tensor,
    ) -> torch.Tensor:
        """Unchanged: soundness never reads the stored solutions."""
        return alive

    board_targets = ("paths", "goal_distance")

    def target_board(
        self, boards: torch.Tensor, kind: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``kind="paths"``: ``PATH`` on every open cell of some shortest S–G path
        (``d_S + d_G == D``), ``OFF_PATH`` on the other open cells; the blank and path cells
        count, walls, S and G do not. The union of all shortest paths, so no one solution is
        preferred (and a board without S, G or a route marks every open cell ``OFF_PATH``).

        ``kind="goal_distance"``: ``1 + d_G mod 3`` on every open cell that reaches G (classes
        1, 2, 3; the tokens' meanings do not apply), the others do not count. A walk that steps
        to the neighbour one class below (mod 3) descends ``d_G``, so it follows a shortest
        path; and a breadth-first wave from G computes it with no count beyond 3."""
        kind = kind or self.board_targets[0]
        if kind not in self.board_targets:
            raise ValueError(f"maze board targets are {self.board_targets}, got {kind!r}")
        open_cells = (boards == BLANK) | (boards == PATH)
        if kind == "goal_distance":
            to_goal = bfs_distances(boards != WALL, boards == GOAL, self.width)
            return 1 + to_goal.clamp(min=0) % 3, open_cells & (to_goal >= 0)
        passable = (boards != WALL).repeat(2, 1)
        sources = torch.cat([boards == START, boards == GOAL])
        distances = bfs_distances(passable, sources, self.width)
        from_start, to_goal = distances.chunk(2)
        D = from_start.gather(1, self._where(boards, GOAL))  # [B, 1]; -1 without a route
        has_goal = (boards == GOAL).any(dim=1, keepdim=True)
        on_path = (from_start >= 0) & (to_goal >= 0) & (from_start + to_goal == D) & has_goal
        target = torch.where(on_path, PATH, OFF_PATH)
        return target, open_cells

    def may_be_solved(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: S or some path cell touches G (necessary for a complete path)."""
        grid = self._grid(boards)
        chain = (grid == START) | (grid == PATH)
        return ((neighbour_count(chain) > 0) & (grid == GOAL)).flatten(1).any(dim=1)

    def placements_to_solve(self, boards: torch.Tensor) -> torch.Tensor:
        """``int64[B]``: D − 1 − (path cells on the board), at least 0."""
        k = (boards == PATH).sum(dim=1)
        return (self.shortest_distance(boards) - 1 - k).clamp(min=0)

    def is_solved(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: one S, one G, tokens 0..5, D − 1 path cells, and S reaches G in D moves
        through S, G and path cells alone; so the path cells form *a* shortest path, any one."""
        solved = torch.zeros(boards.shape[0], dtype=torch.bool, device=boards.device)
        one_each = ((boards == START).sum(dim=1) == 1) & ((boards == GOAL).sum(dim=1) == 1)
        tokens_ok = ((boards >= 0) & (boards < NUM_TOKENS)).all(dim=1)
        rows = (one_each & tokens_ok & self.may_be_solved(boards)).nonzero().squeeze(1)
        if rows.numel() == 0:
            return solved
        candidates = boards[rows]
        n = candidates.shape[0]
        on_path = (candidates == START) | (candidates == GOAL) | (candidates == PATH)
        passable = torch.cat([candidates != WALL, on_path])  # [2n, L]: any route, the path only
        starts = (candidates == START).repeat(2, 1)
        goals = self._where(candidates, GOAL).repeat(2, 1)
        distance = probe_distances(passable, starts, goals, self.width)[:, 0]
        D, along_path = distance[:n], distance[n:]
        k = (candidates == PATH).sum(dim=1)
        solved[rows] = (D > 0) & (k == D - 1) & (along_path == D)
        return solved

    # --- grid mode ---------------------------------------------------------------------------

    def proposal_mask(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, L, V]``: walls, S and G admit only themselves; every other cell PATH or
        OFF_PATH."""
        given = (boards == WALL) | (boards == START) | (boards == GOAL)
        own = torch.nn.functional.one_hot(boards.long().clamp(0, self.num_values), NUM_TOKENS)
        own = own[..., 1:].bool()
        free = torch.zeros_like(own)
        free[..., PATH - 1] = True
        free[..., OFF_PATH - 1] = True
        return torch.where(given.unsqueeze(-1), own, free)

    def proposal_of(self, solutions: torch.Tensor) -> torch.Tensor:
        """Stored solutions keep off-path cells blank; a proposal marks them ``OFF_PATH``."""
        return torch.where(solutions == BLANK, torch.full_like(solutions, OFF_PATH), solutions)

    def constraint_satisfaction(self, boards: torch.Tensor) -> torch.Tensor:
        """``float[B]``: the steps of a shortest path the path cells cover, over max(D − 1, path
        cells).

        A cell lies on some shortest S–G path when ``d_S(cell) + d_G(cell) == D``; step ``t`` of
        1..D−1 is *covered* when some path cell with ``d_S == t`` lies on a shortest path. Dividing
        by the larger of the needed and the proposed number of path cells rewards neither gaps
        nor extra cells (marking every shortest-path cell scores (D − 1) / their count). A solved
        board scores 1 (also when D = 1 and no cell is needed); a board without one S, one G or a
        route between them scores 0. Chaining is not checked (``is_solved`` does).
        """
        B = boards.shape[0]
        one_each = ((boards == START).sum(dim=1) == 1) & ((boards == GOAL).sum(dim=1) == 1)
        D = self.shortest_distance(boards)
        T = max(int(D.max()), 0) if B else 0
        # within[t, b]: cells within t moves of S (rows :B) and of G (rows B:)
        within = reached_within(
            (boards != WALL).repeat(2, 1),
            torch.cat([boards == START, boards == GOAL]),
            self.width,
            T,
        )
        exactly = within & ~torch.nn.functional.pad(within[:-1], (0, 0, 0, 0, 1, 0))
        from_start, to_goal = exactly[:, :B], exactly[:, B:]  # [T + 1, B, H + 1]
        t = torch.arange(T + 1, device=boards.device).view(-1, 1)
        rest = D.view(1, -1) - t  # [T + 1, B]: a shortest path's moves left after t
        rest_words = to_goal.gather(0, rest.clamp(min=0).unsqueeze(-1).expand_as(to_goal))
        on_shortest = torch.where((rest >= 0).unsqueeze(-1), from_start & rest_words, 0)
        path = pack(boards == PATH, self.width)
        covered = ((on_shortest & path) != 0).any(dim=-1)  # [T + 1, B]: step t has a path cell
        good = covered.sum(dim=0)
        needed = (D - 1).clamp(min=0)
        denominator = torch.maximum(needed, (boards == PATH).sum(dim=1))
        share = torch.where(denominator > 0, good / denominator.clamp(min=1), 1.0)
        return torch.where(one_each & (D > 0), share, 0.0).float()

    # --- instances, augmentation and presentation --------------------------------------------

    def generate(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        givens: object = None,
        held_out: bool | None = False,
        min_path: int | None = None,
        **options,
    ) -> PuzzleSet:
        """``n`` generated mazes (see :func:`hrm_rl.envs.maze.generator.generate`)."""
        if givens is not None:
            raise ValueError(
                f"mazes have no givens count (got givens={givens}); set the difficulty with "
                "min_path (the shortest S–G path length, in moves) instead"
            )
        return generate(rng, n, size=self.size, min_path=min_path, held_out=held_out, **options)

    def read(self, path: str, **options) -> PuzzleSet:
        """Mazes from a file (see :func:`hrm_rl.envs.maze.readers.read_mazes`)."""
        mazes = read_mazes(path, **options)
        cells = mazes.boards.shape[1]
        if cells != self.num_positions:
            side = math.isqrt(cells)
            hint = (
                f"; for {side}x{side} mazes pass env.size=[{side},{side}] (a maze model plays "
                "any size)"
                if side * side == cells
                else ""
            )
            raise ValueError(
                f"{path}: holds {cells}-cell mazes, this env plays "
                f"{self.height}x{self.width} ({self.num_positions} cells){hint}"
            )
        return mazes

    def augment(
        self, boards: torch.Tensor, solutions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One random shape-keeping dihedral map per puzzle, applied to it and its solutions."""
        device = boards.device
        if device not in self._maps:
            self._maps[device] = dihedral_maps(self.height, self.width).to(device)
        maps = self._maps[device]
        choice = torch.randint(len(maps), (boards.shape[0],), generator=generator, device=device)
        position_map = maps[choice]  # [B, L]
        moved_solutions = solutions.gather(
            2, position_map.unsqueeze(1).expand(-1, solutions.shape[1], -1)
        )
        return boards.gather(1, position_map), moved_solutions

    def render_ansi(self, board: np.ndarray, givens: np.ndarray) -> str:
        """Text grid over ``# SGo`` (see :mod:`hrm_rl.envs.maze.render`)."""
        return render_ansi(board, self.size)

    def render_rgb(self, board: np.ndarray, givens: np.ndarray) -> np.ndarray:
        """Picture with one coloured square per cell (see :mod:`hrm_rl.envs.maze.render`)."""
        return render_rgb(board, self.size)


@register_family(
    "maze",
    options=("size",),
    gym_ids={
        "hrm_rl/Maze-v0": {"size": (30, 30)},
        "hrm_rl/Maze7x7-v0": {"size": (7, 7)},
        "hrm_rl/Maze9x9-v0": {"size": (9, 9)},
        "hrm_rl/Maze15x15-v0": {"size": (15, 15)},
    },
)
def maze(size: tuple[int, int] | list[int] | int = (30, 30)) -> MazeRules:
    """Mazes of ``size = (height, width)`` cells (an int means a square)."""
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2:
        raise ValueError(f"maze size must be [height, width], got {list(size)}")
    return MazeRules(int(size[0]), int(size[1]))
