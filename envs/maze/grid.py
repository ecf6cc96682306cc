"""The maze board's tokens and the grid helpers every maze module shares.

A maze is an H×W grid stored row-major as L = H·W tokens: ``BLANK`` (open, not on the path),
``WALL``, ``START`` (S), ``GOAL`` (G), ``PATH`` (a path cell the agent placed) and ``OFF_PATH``
(open and off the path, written only by whole-board proposals). The rules, the generator, the
readers and the renderer all speak these tokens, so they live here, below all of them: this module
imports nothing from the maze package, which keeps the package free of import cycles.
"""

from __future__ import annotations

import torch

BLANK, WALL, START, GOAL, PATH, OFF_PATH = 0, 1, 2, 3, 4, 5
NUM_TOKENS = 6
GIVEN_TOKENS = (WALL, START, GOAL)


def neighbour_count(cells: torch.Tensor) -> torch.Tensor:
    """``int8[B, H, W]``: how many 4-neighbours of each cell lie in ``cells`` (same shape)."""
    x = cells.to(torch.int8)
    count = torch.zeros_like(x)
    count[:, 1:] += x[:, :-1]
    count[:, :-1] += x[:, 1:]
    count[:, :, 1:] += x[:, :, :-1]
    count[:, :, :-1] += x[:, :, 1:]
    return count


def dihedral_maps(height: int, width: int) -> torch.Tensor:
    """``int64[M, L]``: the grid symmetries that keep an H×W board's shape, as position maps.

    ``new[i] = old[maps[m, i]]``. Square grids have all 8 (rotations and reflections), others the
    4 that keep H×W: identity, the two flips and the half turn. Row 0 is the identity.
    """
    grid = torch.arange(height * width).view(height, width)
    maps = [grid, grid.flip(0), grid.flip(1), grid.flip(0, 1)]
    if height == width:
        maps += [grid.t(), grid.t().flip(0), grid.t().flip(1), grid.t().flip(0, 1)]
    return torch.stack([m.reshape(-1) for m in maps])
