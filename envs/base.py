"""The puzzle-family interface: rules stated once, batched on torch tensors.

A family knows the shape of its boards (``num_positions`` L, ``num_values`` V; value 0 is an
empty position) and answers, for a batch of boards ``[B, L]`` on any device:

* ``legal_mask(boards) -> bool[B, L, V]``: the placements the rules allow right now;
* ``is_solved(boards) -> bool[B]``: complete and valid by the rules (no stored answer consulted).

Soundness of a placement is the same for every family and lives here: a placement is sound when it
agrees with at least one of the instance's known solutions that is still *alive*, i.e. consistent
with every placement made so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class PuzzleSet:
    """Puzzles of one family together with all their known solutions.

    ``solutions[i, :num_solutions[i]]`` are the solutions of puzzle ``i``; the remaining rows are
    zero padding. When the source stored an answer (``has_answer[i]``), it is ``solutions[i, 0]``,
    so "exact match" can be judged against it. ``origin[i]`` says where the puzzle came from
    (``"file.csv:12"`` or ``"generated"``) for error messages and reports.
    """

    boards: np.ndarray  # int8 [N, L], 0 = blank
    solutions: np.ndarray  # int8 [N, S, L], zero-padded past num_solutions
    num_solutions: np.ndarray  # int64 [N], >= 1
    has_answer: np.ndarray  # bool [N]
    origin: list[str] = field(default_factory=list)
    branches: np.ndarray | None = None  # int64 [N]: solver search branches, 0 = singles suffice

    def __post_init__(self) -> None:
        n = len(self.boards)
        if self.solutions.ndim != 3 or self.solutions.shape[0] != n:
            raise ValueError(f"solutions must be [N, S, L] with N={n}, got {self.solutions.shape}")
        if self.num_solutions.shape != (n,) or self.has_answer.shape != (n,):
            raise ValueError("num_solutions and has_answer must have one entry per puzzle")
        if n and int(self.num_solutions.min()) < 1:
            raise ValueError("every puzzle needs at least one known solution")
        if not self.origin:
            self.origin = ["generated"] * n

    def __len__(self) -> int:
        return len(self.boards)

    def subset(self, index: np.ndarray | list[int]) -> PuzzleSet:
        """The puzzles at ``index``, in that order."""
        index = np.asarray(index, dtype=np.int64)
        return PuzzleSet(
            boards=self.boards[index],
            solutions=self.solutions[index],
            num_solutions=self.num_solutions[index],
            has_answer=self.has_answer[index],
            origin=[self.origin[i] for i in index],
            branches=None if self.branches is None else self.branches[index],
        )

    @staticmethod
    def concatenate(sets: list[PuzzleSet]) -> PuzzleSet:
        """Join puzzle sets of the same family, padding solutions to the largest count."""
        s_max = max(s.solutions.shape[1] for s in sets)
        padded = [
            np.pad(s.solutions, ((0, 0), (0, s_max - s.solutions.shape[1]), (0, 0))) for s in sets
        ]
        return PuzzleSet(
            boards=np.concatenate([s.boards for s in sets]),
            solutions=np.concatenate(padded),
            num_solutions=np.concatenate([s.num_solutions for s in sets]),
            has_answer=np.concatenate([s.has_answer for s in sets]),
            origin=[o for s in sets for o in s.origin],
            branches=None
            if any(s.branches is None for s in sets)
            else np.concatenate([s.branches for s in sets]),
        )


class PuzzleRules:
    """Rules of a puzzle family, batched on torch tensors (CPU or CUDA alike)."""

    name: str = "puzzle"
    num_positions: int  # L
    num_values: int  # V; values are 1..V, 0 = empty

    @property
    def grid_shape(self) -> tuple[int, int] | None:
        """``(rows, cols)`` when the L positions lie row by row on a grid (for 2-D positional
        encodings); ``None`` for a family without one."""
        return None

    def constraint_graph(self) -> torch.Tensor:
        """``bool[R, L, L]``: R kinds of relation between positions that constrain each other
        (Sudoku: same row, same column, same box); graph attention lets a position attend to
        the positions a relation ties it to. Default: one relation, all pairs (no restriction).
        """
        L = self.num_positions
        return torch.ones(1, L, L, dtype=torch.bool)

    def legal_mask(self, boards: torch.Tensor) -> torch.Tensor:
        """Placements the rules allow now: ``bool[B, L, V]`` for boards ``[B, L]``."""
        raise NotImplementedError

    def difficulty_levels(self, num_levels: int = 5) -> list[dict]:
        """The curriculum's levels, easiest first: each a dict of ``generate`` keyword arguments
        (Sudoku: ``givens`` ranges; Maze: shortest-path bands ``min_path``..``max_path``), the
        last one the env's normal difficulty. Default: none (the curriculum must stay off)."""
        return []

    def difficulty_labels(self, boards: np.ndarray) -> list[str] | None:
        """A label per puzzle ``boards`` ``[n, L]`` of what it takes to solve (Sudoku:
        ``"singles"`` or ``"search"``), for evaluation reports. Default: ``None`` (not rated)."""
        return None

    def size_measure(self, boards: np.ndarray) -> tuple[str, np.ndarray]:
        """A name and an ``int`` per puzzle ``boards`` ``[n, L]`` that evaluation groups its
        results by, a table row per value (Sudoku: ``"givens"``, the filled positions; Maze:
        ``"shortest_path"``, the moves from S to G). Default: ``"givens"``, the non-blank
        positions."""
        return "givens", (np.asarray(boards) != 0).sum(axis=1)

    def fill_forced(self, boards: torch.Tensor) -> torch.Tensor:
        """``boards`` with every placement the rules force made, until none is left (used for
        curriculum banks that start where the easy moves run out: ``curriculum.stuck_share``).
        Default: none known, the boards come back unchanged."""
        return boards

    def is_solved(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: the board is complete and valid by the rules; any valid solution counts."""
        raise NotImplementedError

    def constraint_satisfaction(self, boards: torch.Tensor) -> torch.Tensor:
        """``float[B]`` in [0, 1]: the share of the family's constraints a full board satisfies."""
        raise NotImplementedError

    def proposal_mask(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, L, V]`` for whole-board proposals: a filled position admits only its value.

        This is the per-position mask of `grid` mode, where every position needs a value.
        """
        filled = torch.nn.functional.one_hot(boards.long(), self.num_values + 1)[..., 1:].bool()
        return torch.where((boards != 0).unsqueeze(-1), filled, self.legal_mask(boards))

    def proposal_of(self, solutions: torch.Tensor) -> torch.Tensor:
        """The whole-board proposal (values 1..V at every position) that a stored solution
        stands for: the target of supervised training and of exact match in `grid` mode.

        Default: the solution itself (families that fill every position). A family whose stored
        solutions leave positions empty maps them to the value a proposal uses there.
        """
        return solutions

    board_targets: tuple[str, ...] = ()  # the kinds target_board knows, its default first

    def target_board(
        self, boards: torch.Tensor, kind: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """What a full solution holds at each position, worked out from the board alone:
        ``(int64[B, L] values 1..V, bool[B, L] positions that count)``, or ``None`` when the
        family cannot say without a stored solution (the default). PPO's optional auxiliary loss
        (``agent.aux_weights.board``) trains the grid head to predict it (Maze: which open cells
        lie on some shortest S–G path). A family may know several kinds of target
        (:attr:`board_targets`, ``agent.board_target`` picks one)."""
        return None

    def placements_to_solve(self, boards: torch.Tensor) -> torch.Tensor:
        """``int64[B]``: sound placements that take each board to solved (cell mode).

        A sound placement earns ``1 / placements_to_solve`` of the start board, so a solve sums
        to 1. Default: the blanks (families that fill every position).
        """
        return (boards == 0).sum(dim=-1)

    def may_be_solved(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: a cheap necessary condition for ``is_solved`` (default: no blank left)."""
        return (boards != 0).all(dim=-1)

    # --- instances, augmentation and presentation (family specific) ------------------------

    def generate(self, rng: np.random.Generator, n: int, **options) -> PuzzleSet:
        """``n`` fresh instances with all their solutions, reproducible from ``rng``."""
        raise NotImplementedError

    def read(self, path: str, **options) -> PuzzleSet:
        """Instances from a file in any format the family knows; errors name file and line."""
        raise NotImplementedError

    def augment(
        self, boards: torch.Tensor, solutions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random validity-preserving transform applied to each puzzle and its solutions.

        ``boards`` is ``[B, L]``, ``solutions`` ``[B, S, L]``; returns tensors of the same shapes.
        """
        return boards, solutions

    def render_ansi(self, board: np.ndarray, givens: np.ndarray) -> str:
        """A readable text picture of one board."""
        raise NotImplementedError

    def render_rgb(self, board: np.ndarray, givens: np.ndarray) -> np.ndarray:
        """A ``uint8[H, W, 3]`` picture of one board."""
        raise NotImplementedError

    # --- soundness: by default against the known solutions (a family may override) --------

    def sound_mask(self, solutions: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """``bool[B, L, V]``: placements that agree with at least one alive known solution.

        ``solutions`` is ``[B, S, L]`` (values 1..V, padding rows arbitrary) and ``alive`` is
        ``bool[B, S]`` (padding rows must be ``False``).
        """
        values = torch.arange(1, self.num_values + 1, device=solutions.device)
        agrees = solutions.unsqueeze(-1) == values  # [B, S, L, V]
        return (agrees & alive[:, :, None, None]).any(dim=1)

    def is_sound(
        self,
        boards: torch.Tensor,
        solutions: torch.Tensor,
        alive: torch.Tensor,
        position: torch.Tensor,
        value: torch.Tensor,
    ) -> torch.Tensor:
        """``bool[B]``: placing ``value[b]`` at ``position[b]`` of ``boards[b]`` (before the
        placement) keeps a solution reachable; here: agrees with an alive known solution.

        A family whose solutions are too many to store (Maze: every shortest path) decides this
        from the board by its rules instead.
        """
        at_position = solutions.gather(2, position.view(-1, 1, 1).expand(-1, solutions.shape[1], 1))
        return ((at_position.squeeze(2) == value.view(-1, 1)) & alive).any(dim=1)

    def update_alive(
        self,
        boards: torch.Tensor,
        solutions: torch.Tensor,
        alive: torch.Tensor,
        position: torch.Tensor,
        value: torch.Tensor,
    ) -> torch.Tensor:
        """``bool[B, S]``: the known solutions still consistent after the placement."""
        at_position = solutions.gather(2, position.view(-1, 1, 1).expand(-1, solutions.shape[1], 1))
        return alive & (at_position.squeeze(2) == value.view(-1, 1))


def same_group(groups: torch.Tensor, num_positions: int) -> torch.Tensor:
    """``bool[L, L]``: positions ``i`` and ``j`` share one of ``groups`` (``int64[G, m]``, each row
    the positions of one group: a row, a column, a box), ``i == j`` included."""
    member = torch.zeros(groups.shape[0], num_positions)
    member.scatter_(1, groups.long(), 1.0)  # [G, L]
    return (member.t() @ member) > 0


def fill_naked_singles(rules: PuzzleRules, boards: torch.Tensor) -> torch.Tensor:
    """``boards`` ``[B, L]`` with every blank that has exactly one legal value filled with it,
    again and again until none is left: the forced moves of a family whose legal mask rules out
    exactly the values a completion cannot hold there (Sudoku, Latin squares)."""
    for _ in range(rules.num_positions):
        legal = rules.legal_mask(boards)  # [B, L, V]
        single = (legal.sum(dim=-1) == 1) & (boards == 0)
        if not single.any():
            break
        boards = torch.where(
            single, legal.to(torch.uint8).argmax(dim=-1).to(boards.dtype) + 1, boards
        )
    return boards
