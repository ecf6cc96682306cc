"""Sudoku rules for any box shape r×c, batched on torch tensors.

A board of side n = r·c has L = n² positions (row-major) and values 1..n (0 = empty). The rules are
three kinds of *units* (rows, columns, boxes), each of which must hold every value exactly once.
Everything below is a few gathers and bit operations over the fixed unit table, so one
board on the CPU and thousands on a GPU run the same code.
"""

from __future__ import annotations

import numpy as np
import torch

from hrm_rl.envs.base import PuzzleRules, PuzzleSet, fill_naked_singles, same_group
from hrm_rl.envs.registration import register_family
from hrm_rl.envs.sudoku.augment import apply_transforms, random_transforms
from hrm_rl.envs.sudoku.generator import blank_levels, generate
from hrm_rl.envs.sudoku.readers import read_puzzles
from hrm_rl.envs.sudoku.render import render_ansi, render_rgb
from hrm_rl.envs.sudoku.solver import BOX_SHAPES, rate


def unit_positions(box_rows: int, box_cols: int) -> torch.Tensor:
    """``int64[3n, n]``: the positions of every row, column and box (in that order)."""
    n = box_rows * box_cols
    grid = torch.arange(n * n).view(n, n)
    rows = grid
    cols = grid.t()
    # box b covers rows of band b // box_rows... boxes are box_rows tall and box_cols wide
    boxes = (
        grid.view(n // box_rows, box_rows, n // box_cols, box_cols)
        .permute(0, 2, 1, 3)
        .reshape(n, n)
    )
    return torch.cat([rows, cols, boxes])


class SudokuRules(PuzzleRules):
    """Rules of n×n Sudoku with boxes of ``box_rows`` × ``box_cols`` cells (n = r·c)."""

    name = "sudoku"

    def __init__(self, box_rows: int = 3, box_cols: int = 3) -> None:
        if box_rows < 1 or box_cols < 1:
            raise ValueError(f"box must be at least 1×1, got {box_rows}×{box_cols}")
        self.box_rows, self.box_cols = box_rows, box_cols
        self.size = n = box_rows * box_cols
        self.num_positions = n * n
        self.num_values = n
        self.units = unit_positions(box_rows, box_cols)  # [U=3n, n]
        if n > 16:
            raise ValueError(f"sides above 16 are not supported yet, got {n}")
        self._free_cache: dict[torch.device, torch.Tensor] = {}
        self._bits_cache: dict[torch.device, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"SudokuRules({self.box_rows}x{self.box_cols})"

    def unit_bits(self, boards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(any, total)``, both ``[B, U]`` (rows, columns, boxes): bit v set for each value v.

        Value v is the bit ``1 << v`` (empty positions contribute nothing); ``any`` ORs a unit's
        bits, ``total`` adds them. The two agree exactly when no value repeats (a repeat carries
        into a higher bit), which is how repeats are detected without sorting.
        """
        rows, cols, boxes = self._line_and_box_bits(boards)
        B = boards.shape[0]
        any_bits = torch.cat([rows[0], cols[0], boxes[0].reshape(B, self.size)], dim=1)
        total = torch.cat([rows[1], cols[1], boxes[1].reshape(B, self.size)], dim=1)
        return any_bits, total

    def _line_and_box_bits(self, boards: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], ...]:
        """(any, total) bits of rows ``[B, n]``, columns ``[B, n]``, boxes ``[B, n/r, n/c]``.

        Works on the board's grid shape directly (strided views, no gathers), which is what
        keeps a batched step cheap.
        """
        n, r, c = self.size, self.box_rows, self.box_cols
        B = boards.shape[0]
        bits = self._value_bits(boards.device).index_select(0, boards.reshape(-1).long())
        grid = bits.view(B, n, n)
        blocks = bits.view(B, n // r, r, n // c, c)
        rows_any, cols_any, boxes_any = grid[:, :, 0], grid[:, 0, :], blocks[:, :, 0, :, 0]
        for j in range(1, n):
            rows_any = rows_any | grid[:, :, j]
            cols_any = cols_any | grid[:, j, :]
            boxes_any = boxes_any | blocks[:, :, j // c, :, j % c]
        return (
            (rows_any, grid.sum(dim=2)),
            (cols_any, grid.sum(dim=1)),
            (boxes_any, blocks.sum(dim=(2, 4))),
        )

    def legal_mask(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, L, V]``: empty positions and the values none of their units holds yet."""
        n, r, c = self.size, self.box_rows, self.box_cols
        B = boards.shape[0]
        (rows, _), (cols, _), (boxes, _) = self._line_and_box_bits(boards)
        taken = rows.view(B, n, 1) | cols.view(B, 1, n)  # [B, n, n]: row | column
        taken = taken.view(B, n // r, r, n // c, c) | boxes.view(B, n // r, 1, n // c, 1)
        taken = taken.reshape(B, n * n) | (boards != 0).int()  # bit 0: filled, nothing is free
        return (
            self._free_values(boards.device)
            .index_select(0, taken.view(-1).long())
            .view(B, n * n, self.num_values)
        )

    def _value_bits(self, device: torch.device) -> torch.Tensor:
        """``int32[V+1]``: the bit of each value, ``1 << v``, and 0 for an empty position."""
        device = torch.device(device)
        if device not in self._bits_cache:
            bits = torch.ones(self.num_values + 1, dtype=torch.int32) << torch.arange(
                self.num_values + 1, dtype=torch.int32
            )
            bits[0] = 0
            self._bits_cache[device] = bits.to(device)
        return self._bits_cache[device]

    def _free_values(self, device: torch.device) -> torch.Tensor:
        """``bool[2^(n+1), V]``: for each set of taken bits, the values still free (a lookup)."""
        device = torch.device(device)
        if device not in self._free_cache:
            taken = torch.arange(1 << (self.size + 1)).unsqueeze(1)
            values = torch.arange(1, self.num_values + 1)
            free = (((taken >> values) & 1) == 0) & ((taken & 1) == 0)
            self._free_cache[device] = free.to(device)
        return self._free_cache[device]

    def _complete_units(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, U]``: the unit holds each value 1..n exactly once."""
        _, total = self.unit_bits(boards)
        return total == (1 << (self.size + 1)) - 2  # bits 1..n, each once

    def is_solved(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: every unit holds each value exactly once (so every position is filled)."""
        return self._complete_units(boards).all(dim=-1)

    def breaks_rules(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: some unit holds a value twice (empty positions are ignored)."""
        any_bits, total = self.unit_bits(boards)
        return (any_bits != total).any(dim=-1)

    def constraint_satisfaction(self, boards: torch.Tensor) -> torch.Tensor:
        """``float[B]``: the share of units that hold every value exactly once."""
        return self._complete_units(boards).float().mean(dim=-1)

    # --- instances, augmentation and presentation --------------------------------------------

    @property
    def box(self) -> tuple[int, int]:
        """``(box_rows, box_cols)``."""
        return (self.box_rows, self.box_cols)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    def difficulty_levels(self, num_levels: int = 5) -> list[dict]:
        """Givens ranges from few blanks up to the generator's default range
        (:func:`hrm_rl.envs.sudoku.generator.blank_levels`)."""
        return [{"givens": level} for level in blank_levels(self.box, num_levels)]

    def difficulty_labels(self, boards: np.ndarray) -> list[str]:
        """``"singles"`` where naked and hidden singles alone finish the puzzle, else ``"search"``
        (:func:`hrm_rl.envs.sudoku.solver.rate`)."""
        return [rate(board, self.box).level for board in np.asarray(boards)]

    def fill_forced(self, boards: torch.Tensor) -> torch.Tensor:
        """Naked singles (a blank with one legal value), filled until none is left."""
        return fill_naked_singles(self, boards)

    def constraint_graph(self) -> torch.Tensor:
        """``bool[3, L, L]``: same row, same column, same box (each with itself)."""
        n, L = self.size, self.num_positions
        return torch.stack([same_group(self.units[k * n : (k + 1) * n], L) for k in range(3)])

    def generate(self, rng: np.random.Generator, n: int, **options) -> PuzzleSet:
        """``n`` generated puzzles (see :func:`hrm_rl.envs.sudoku.generator.generate`)."""
        return generate(rng, n, box=self.box, **options)

    def read(self, path: str, **options) -> PuzzleSet:
        """Puzzles from a file (see :func:`hrm_rl.envs.sudoku.readers.read_puzzles`)."""
        puzzles = read_puzzles(path, box=options.pop("box", self.box), **options)
        if puzzles.boards.shape[1] != self.num_positions:
            raise ValueError(
                f"{path}: holds {puzzles.boards.shape[1]}-cell puzzles, this env plays "
                f"{self.size}x{self.size} ({self.num_positions} cells)"
            )
        return puzzles

    def augment(
        self, boards: torch.Tensor, solutions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Relabel digits, transpose, shuffle bands/stacks and rows/columns within them."""
        position_map, value_map = random_transforms(
            self, boards.shape[0], generator, device=boards.device
        )
        return (
            apply_transforms(boards, position_map, value_map),
            apply_transforms(solutions, position_map, value_map),
        )

    def render_ansi(self, board: np.ndarray, givens: np.ndarray) -> str:
        """Text grid with box separators (see :mod:`hrm_rl.envs.sudoku.render`)."""
        return render_ansi(board, givens, self.box)

    def render_rgb(self, board: np.ndarray, givens: np.ndarray) -> np.ndarray:
        """Picture with givens and placed digits in different colours and box lines."""
        return render_rgb(board, givens, self.box)


def rules_for_size(n: int) -> SudokuRules:
    """The standard box shape for side ``n`` (4 → 2×2, 6 → 2×3, 9 → 3×3)."""
    if n not in BOX_SHAPES:
        raise ValueError(f"no standard box shape for side {n}; known sides: {sorted(BOX_SHAPES)}")
    return SudokuRules(*BOX_SHAPES[n])


@register_family(
    "sudoku",
    options=("box",),
    gym_ids={
        "hrm_rl/Sudoku-v0": {"box": (3, 3)},
        "hrm_rl/Sudoku4x4-v0": {"box": (2, 2)},
        "hrm_rl/Sudoku6x6-v0": {"box": (2, 3)},
    },
)
def sudoku(box: tuple[int, int] | list[int] = (3, 3)) -> SudokuRules:
    """Sudoku with boxes of ``box = (rows, cols)``; the board is (rows·cols)²."""
    if len(box) != 2:
        raise ValueError(f"sudoku box must be [rows, cols], got {list(box)}")
    return SudokuRules(int(box[0]), int(box[1]))
