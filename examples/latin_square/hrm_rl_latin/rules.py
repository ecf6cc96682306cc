"""Latin-square completion as an hrm_rl puzzle family: rules, batched on torch tensors.

An n×n board (L = n² positions, row-major) takes values 1..n (0 = blank); every row and every
column must hold each value exactly once. A partial square can have many completions, and any of
them counts as solved: ``is_solved`` asks the rules, never a stored answer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.functional import one_hot

from hrm_rl.envs.base import PuzzleRules, PuzzleSet, fill_naked_singles, same_group
from hrm_rl.envs.registration import register_family
from hrm_rl_latin import squares


class LatinRules(PuzzleRules):
    """Rules of n×n Latin squares: each row and each column is a permutation of 1..n."""

    name = "latin"

    def __init__(self, size: int = 5) -> None:
        if not 2 <= size <= 9:
            raise ValueError(f"latin size must lie in 2..9 (one digit per cell), got {size}")
        self.size = size
        self.num_positions = size * size
        self.num_values = size

    def __repr__(self) -> str:
        return f"LatinRules({self.size}x{self.size})"

    def _counts(self, boards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """How often each value occurs in each row and each column: two ``int[B, n, V]``."""
        n = self.size
        values = one_hot(boards.long(), n + 1)[..., 1:].view(-1, n, n, n)  # [B, row, col, V]
        return values.sum(dim=2), values.sum(dim=1)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    def fill_forced(self, boards: torch.Tensor) -> torch.Tensor:
        """A blank with one value left by its row and column takes it in every completion."""
        return fill_naked_singles(self, boards)

    def constraint_graph(self) -> torch.Tensor:
        """``bool[2, L, L]``: same row, same column (each with itself)."""
        grid = torch.arange(self.num_positions).view(self.size, self.size)
        return torch.stack([same_group(lines, self.num_positions) for lines in (grid, grid.t())])

    def legal_mask(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, L, V]``: blank cells and the values neither their row nor column holds."""
        n = self.size
        in_row, in_col = self._counts(boards)  # [B, n, V] each
        taken = (in_row > 0).unsqueeze(2) | (in_col > 0).unsqueeze(1)  # [B, row, col, V]
        blank = (boards == 0).view(-1, n, n, 1)
        return (blank & ~taken).view(-1, n * n, n)

    def _complete_lines(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B, 2n]``: which rows, then columns, hold every value exactly once."""
        in_row, in_col = self._counts(boards)
        return torch.cat([(in_row == 1).all(dim=-1), (in_col == 1).all(dim=-1)], dim=1)

    def is_solved(self, boards: torch.Tensor) -> torch.Tensor:
        """``bool[B]``: every row and column is a permutation of 1..n (so no blank is left)."""
        return self._complete_lines(boards).all(dim=-1)

    def constraint_satisfaction(self, boards: torch.Tensor) -> torch.Tensor:
        """``float[B]``: the share of rows and columns that are permutations of 1..n."""
        return self._complete_lines(boards).float().mean(dim=-1)

    # --- instances, augmentation and presentation --------------------------------------------

    def generate(
        self,
        rng: np.random.Generator,
        n_puzzles: int,
        *,
        givens: tuple[int, int] | None = None,
        held_out: bool | None = False,
        cap: int = 8,
    ) -> PuzzleSet:
        """Partial squares with 2..``cap`` completions, all stored (see ``squares.generate``)."""
        return squares.generate(
            rng, n_puzzles, self.size, givens=givens, held_out=held_out, cap=cap
        )

    def read(self, path: str, *, cap: int = 8) -> PuzzleSet:
        """Puzzles from a text file, one a line (see ``squares.read``)."""
        return squares.read(path, self.size, cap=cap)

    def augment(
        self, boards: torch.Tensor, solutions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per puzzle: permute rows, columns and symbols, and transpose half of the time."""
        B, S, n = boards.shape[0], solutions.shape[1], self.size
        device = boards.device

        def permutations() -> torch.Tensor:  # [B, n], a random permutation of 0..n-1 per row
            return torch.rand(B, n, generator=generator, device=device).argsort(dim=1)

        rows, cols = permutations(), permutations()
        source = rows.unsqueeze(2) * n + cols.unsqueeze(1)  # [B, n, n]: old position of (r, c)
        transpose = torch.rand(B, generator=generator, device=device) < 0.5
        source = torch.where(transpose.view(B, 1, 1), source.transpose(1, 2), source).reshape(B, -1)
        blank = torch.zeros(B, 1, dtype=torch.long, device=device)
        relabel = torch.cat([blank, permutations() + 1], dim=1)  # [B, V+1]: old value -> new

        moved_boards = boards.gather(1, source)
        moved_solutions = solutions.gather(2, source.unsqueeze(1).expand(B, S, -1))
        new_boards = relabel.gather(1, moved_boards.long()).to(boards.dtype)
        new_solutions = relabel.gather(1, moved_solutions.long().view(B, -1))
        return new_boards, new_solutions.view(B, S, -1).to(solutions.dtype)

    def render_ansi(self, board: np.ndarray, givens: np.ndarray) -> str:
        """The square as text: ``.`` blanks, placed values marked ``*``, givens plain."""
        grid = np.asarray(board).reshape(self.size, self.size)
        given = np.asarray(givens).reshape(self.size, self.size) != 0
        lines = []
        for r in range(self.size):
            cells = [
                "." if v == 0 else f"{v}{'' if given[r, c] else '*'}" for c, v in enumerate(grid[r])
            ]
            lines.append(" ".join(f"{cell:<2}" for cell in cells).rstrip())
        return "\n".join(lines) + "\n"

    def render_rgb(self, board: np.ndarray, givens: np.ndarray, cell_px: int = 32) -> np.ndarray:
        """The square as ``uint8[H, W, 3]``: grey lines, givens black, placed values blue."""
        from hrm_rl.envs.sudoku.render import GLYPH_HEIGHT, GLYPH_WIDTH, GLYPHS  # reuse the font

        n = self.size
        grid = np.asarray(board).reshape(n, n)
        given = np.asarray(givens).reshape(n, n) != 0
        side = n * (cell_px + 1) + 1  # a 1-pixel line before every cell and after the last
        image = np.full((side, side, 3), 255, dtype=np.uint8)
        image[:: cell_px + 1, :] = image[:, :: cell_px + 1] = 160
        scale = max(1, int(0.6 * cell_px) // GLYPH_HEIGHT)
        dy, dx = (cell_px - GLYPH_HEIGHT * scale) // 2, (cell_px - GLYPH_WIDTH * scale) // 2
        for (r, c), value in np.ndenumerate(grid):
            if value:
                ink = np.kron(GLYPHS[int(value)], np.ones((scale, scale), dtype=bool))
                y, x = 1 + r * (cell_px + 1) + dy, 1 + c * (cell_px + 1) + dx
                patch = image[y : y + ink.shape[0], x : x + ink.shape[1]]
                patch[ink] = (0, 0, 0) if given[r, c] else (30, 80, 220)
        return image


@register_family(
    "latin",
    options=("size",),
    gym_ids={"hrm_rl_latin/Latin5-v0": {"size": 5}},
    configs={"latin5": {"size": 5}, "latin4": {"size": 4}},
)
def latin(size: int = 5) -> LatinRules:
    """Latin-square completion on an n×n board (``size`` = n)."""
    return LatinRules(int(size))
