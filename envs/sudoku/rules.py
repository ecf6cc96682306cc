"""Sudoku rules for any box shape r×c, batched on torch tensors.

A board of side n = r·c has L = n² positions (row-major) and values 1..n (0 = empty). The rules are
three kinds of *units* (rows, columns, boxes), each of which must hold every value exactly once.
Everything below is a few gathers and bit operations over the fixed unit table, so one
board on the CPU and thousands on a GPU run the same code.
"""

from __future__ import annotations

import numpy as np
import torch

from hrm_rl.envs.base import PuzzleRules, PuzzleSet

BOX_SHAPES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}


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
        self._unit_cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._free_cache: dict[torch.device, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"SudokuRules({self.box_rows}x{self.box_cols})"

    def _units_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``units [U, n]`` and ``position_units [L, 3]`` (the row, column and box of each cell)."""
        device = torch.device(device)
        if device not in self._unit_cache:
            units = self.units.to(device)
            position_units = torch.empty(self.num_positions, 3, dtype=torch.int64)
            for u, members in enumerate(self.units.tolist()):
                position_units[members, u // self.size] = u
            self._unit_cache[device] = (units, position_units.to(device))
        return self._unit_cache[device]

    def unit_bits(self, boards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(any, total)``, both ``int64[B, U]``: bit v set for each value v a unit holds.

        Value v is the bit ``1 << v`` (empty positions contribute nothing); ``any`` ORs a unit's
        bits, ``total`` adds them. The two agree exactly when no value repeats (a repeat carries
        into a higher bit), which is how repeats are detected without sorting.
        """
        units, _ = self._units_on(boards.device)
        boards = boards.long()
        bits = torch.where(boards > 0, torch.ones_like(boards) << boards, 0)
        bits = bits.index_select(1, units.view(-1)).view(-1, *units.shape)  # [B, U, n]
        any_bits = bits[..., 0]
        for j in range(1, bits.shape[-1]):
            any_bits = any_bits | bits[..., j]
        return any_bits, bits.sum(dim=-1)

    def legal_mask(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, L, V]``: empty positions and the values none of their units holds yet."""
        _, position_units = self._units_on(boards.device)
        any_bits, _ = self.unit_bits(boards)
        taken = any_bits.index_select(1, position_units[:, 0])  # [B, L]: row | column | box
        taken = taken | any_bits.index_select(1, position_units[:, 1])
        taken = taken | any_bits.index_select(1, position_units[:, 2])
        taken = taken | (boards != 0).long()  # bit 0 marks a filled position: nothing is free
        return self._free_values(taken.device).index_select(0, taken.view(-1)).view(
            *taken.shape, self.num_values
        )

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

    def generate(self, rng: np.random.Generator, n: int, **options) -> PuzzleSet:
        """``n`` generated puzzles (see :func:`hrm_rl.envs.sudoku.generator.generate`)."""
        from hrm_rl.envs.sudoku.generator import generate

        return generate(rng, n, box=self.box, **options)

    def read(self, path: str, **options) -> PuzzleSet:
        """Puzzles from a file (see :func:`hrm_rl.envs.sudoku.readers.read_puzzles`)."""
        from hrm_rl.envs.sudoku.readers import read_puzzles

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
        from hrm_rl.envs.sudoku.augment import apply_transforms, random_transforms

        position_map, value_map = random_transforms(
            self, boards.shape[0], generator, device=boards.device
        )
        return (
            apply_transforms(boards, position_map, value_map),
            apply_transforms(solutions, position_map, value_map),
        )

    def render_ansi(self, board: np.ndarray, givens: np.ndarray) -> str:
        """Text grid with box separators (see :mod:`hrm_rl.envs.sudoku.render`)."""
        from hrm_rl.envs.sudoku.render import render_ansi

        return render_ansi(board, givens, self.box)

    def render_rgb(self, board: np.ndarray, givens: np.ndarray) -> np.ndarray:
        """Picture with givens and placed digits in different colours and box lines."""
        from hrm_rl.envs.sudoku.render import render_rgb

        return render_rgb(board, givens, self.box)


def rules_for_size(n: int) -> SudokuRules:
    """The standard box shape for side ``n`` (4 → 2×2, 6 → 2×3, 9 → 3×3)."""
    if n not in BOX_SHAPES:
        raise ValueError(f"no standard box shape for side {n}; known sides: {sorted(BOX_SHAPES)}")
    return SudokuRules(*BOX_SHAPES[n])
