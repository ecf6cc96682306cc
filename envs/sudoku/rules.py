"""Sudoku rules for any box shape r×c, batched on torch tensors.

A board of side n = r·c has L = n² positions (row-major) and values 1..n (0 = empty). The rules are
three kinds of *units* (rows, columns, boxes), each of which must hold every value exactly once.
Everything below is a few tensor operations over a fixed position-unit incidence matrix, so one
board on the CPU and thousands on a GPU run the same code.
"""

from __future__ import annotations

import torch

from hrm_rl.envs.base import PuzzleRules

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
        incidence = torch.zeros(self.num_positions, 3 * n)
        incidence[self.units.reshape(-1), torch.arange(3 * n).repeat_interleave(n)] = 1.0
        self._incidence = {torch.device("cpu"): incidence}  # [L, U], cached per device

    def __repr__(self) -> str:
        return f"SudokuRules({self.box_rows}x{self.box_cols})"

    def incidence(self, device: torch.device) -> torch.Tensor:
        """``float[L, U]``: 1 where a position belongs to a unit."""
        device = torch.device(device)
        if device not in self._incidence:
            self._incidence[device] = self._incidence[torch.device("cpu")].to(device)
        return self._incidence[device]

    def value_counts(self, boards: torch.Tensor) -> torch.Tensor:
        """``float[B, U, V]``: how often each value appears in each unit."""
        one_hot = torch.nn.functional.one_hot(boards.long(), self.num_values + 1)[..., 1:]
        return torch.einsum("blv,lu->buv", one_hot.float(), self.incidence(boards.device))

    def legal_mask(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, L, V]``: empty positions and the values none of their units holds yet."""
        present = (self.value_counts(boards) > 0).float()  # [B, U, V]
        conflicts = torch.einsum("buv,lu->blv", present, self.incidence(boards.device))
        return (boards == 0).unsqueeze(-1) & (conflicts == 0)

    def is_solved(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: every position filled and every unit holds each value exactly once."""
        counts = self.value_counts(boards)
        return (boards != 0).all(dim=-1) & (counts == 1).all(dim=-1).all(dim=-1)

    def breaks_rules(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: some unit holds a value twice (empty positions are ignored)."""
        return (self.value_counts(boards) > 1).flatten(1).any(dim=1)

    def constraint_satisfaction(self, boards: torch.Tensor) -> torch.Tensor:
        """``float[B]``: the share of units that hold every value exactly once."""
        counts = self.value_counts(boards)
        return (counts == 1).all(dim=-1).float().mean(dim=-1)


def rules_for_size(n: int) -> SudokuRules:
    """The standard box shape for side ``n`` (4 → 2×2, 6 → 2×3, 9 → 3×3)."""
    if n not in BOX_SHAPES:
        raise ValueError(f"no standard box shape for side {n}; known sides: {sorted(BOX_SHAPES)}")
    return SudokuRules(*BOX_SHAPES[n])
