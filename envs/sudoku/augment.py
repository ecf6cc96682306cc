"""Validity-preserving Sudoku augmentations, batched on torch tensors.

Each transform maps every valid board to a valid board and every puzzle to a puzzle with the same
number of solutions. A transform is a pair of lookup tables:

* ``position_map int64[B, L]``: the new board takes position ``i`` from old position
  ``position_map[b, i]``;
* ``value_map int64[B, V+1]``: value ``v`` becomes ``value_map[b, v]`` (``value_map[:, 0] == 0``,
  so blanks stay blank).

so that ``new[b, i] = value_map[b, old[b, position_map[b, i]]]``. The maps compose:

* digit relabelling: a random permutation of 1..n;
* band shuffle: permute the bands (groups of ``box_rows`` rows), then the rows within each band;
* stack shuffle: permute the stacks (groups of ``box_cols`` columns), then the columns within each
  stack;
* transposition, on a fair coin per board, **only when the boxes are square**
  (``box_rows == box_cols``). Transposing a board with r×c boxes gives c×r boxes, a different
  family (a 6×6 board with 2×3 boxes would become one with 3×2 boxes), so for non-square boxes the
  ``transpose`` flag is accepted and has no effect.

Random permutations are argsorts of uniform keys drawn from the caller's ``torch.Generator``, so
the same generator state gives the same transforms, and the whole batch is drawn at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # for the annotation only: rules.py imports this module
    from hrm_rl.envs.sudoku.rules import SudokuRules


def _random_permutations(
    shape: tuple[int, ...], generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``int64[*shape]``: independent uniform permutations along the last dim."""
    keys = torch.rand(shape, generator=generator, device=device)
    return keys.argsort(dim=-1)


def _identity_permutations(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``int64[*shape]``: the identity permutation along the last dim, repeated."""
    return torch.arange(shape[-1], device=device).expand(shape)


def _line_permutations(
    batch: int,
    groups: int,
    group_size: int,
    generator: torch.Generator,
    device: torch.device,
    *,
    shuffle_groups: bool,
    shuffle_within: bool,
) -> torch.Tensor:
    """``int64[B, groups·group_size]``: new line ``k`` comes from old line ``result[b, k]``.

    Lines (rows or columns) are split into ``groups`` consecutive groups of ``group_size``; the
    groups are permuted as wholes and, independently, the lines within each group.
    """
    if shuffle_groups:
        group_perm = _random_permutations((batch, groups), generator, device)  # [B, G]
    else:
        group_perm = _identity_permutations((batch, groups), device)
    if shuffle_within:
        within_perm = _random_permutations((batch, groups, group_size), generator, device)
    else:
        within_perm = _identity_permutations((batch, groups, group_size), device)  # [B, G, g]
    # new line (group k, offset j) is old line (group group_perm[k], offset within_perm[k, j])
    return (group_perm.unsqueeze(-1) * group_size + within_perm).reshape(batch, groups * group_size)


def random_transforms(
    rules: SudokuRules,
    batch: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    *,
    relabel: bool = True,
    transpose: bool = True,
    bands: bool = True,
    rows: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch`` random validity-preserving transforms for boards of ``rules``.

    ``device`` defaults to the generator's device and must match it. ``bands`` shuffles bands and
    stacks as wholes; ``rows`` shuffles rows within bands and columns within stacks; ``transpose``
    flips a fair coin per board (square boxes only, see the module docstring); ``relabel`` permutes
    the digits. With every flag off the transforms are the identity.

    Returns ``(position_map int64[B, L], value_map int64[B, V+1])``; apply them with
    :func:`apply_transforms`.
    """
    device = torch.device(device) if device is not None else generator.device
    if device.type != generator.device.type:
        raise ValueError(
            f"random_transforms: generator lives on {generator.device} but device is {device}; "
            "create the generator on the device the transforms should live on"
        )
    n, box_rows, box_cols = rules.size, rules.box_rows, rules.box_cols

    # [B, n] each: new row R comes from old row row_source[b, R]; likewise for columns
    row_source = _line_permutations(
        batch, n // box_rows, box_rows, generator, device, shuffle_groups=bands, shuffle_within=rows
    )
    col_source = _line_permutations(
        batch, n // box_cols, box_cols, generator, device, shuffle_groups=bands, shuffle_within=rows
    )
    # shuffled[R, C] = old[row_source[R], col_source[C]]
    source_rows = row_source[:, :, None].expand(batch, n, n)
    source_cols = col_source[:, None, :].expand(batch, n, n)
    if transpose and box_rows == box_cols:
        # new[R, C] = shuffled[C, R] on the boards whose coin came up heads
        flip = (torch.rand(batch, generator=generator, device=device) < 0.5)[:, None, None]
        source_rows = torch.where(flip, source_rows.transpose(1, 2), source_rows)
        source_cols = torch.where(flip, source_cols.transpose(1, 2), source_cols)
    position_map = (source_rows * n + source_cols).reshape(batch, n * n)  # [B, L]

    if relabel:
        digits = _random_permutations((batch, n), generator, device) + 1  # [B, V]
    else:
        digits = _identity_permutations((batch, n), device) + 1
    blank = torch.zeros(batch, 1, dtype=torch.long, device=device)
    value_map = torch.cat([blank, digits], dim=1)  # [B, V+1]
    return position_map, value_map


def apply_transforms(
    boards: torch.Tensor, position_map: torch.Tensor, value_map: torch.Tensor
) -> torch.Tensor:
    """Apply one transform per board: ``new[b, ..., i] = value_map[b, boards[b, ..., pos[b, i]]]``.

    ``boards`` is ``[B, L]`` or ``[B, S, L]`` (e.g. a puzzle with its solutions, which must get the
    same transform to stay consistent with it). The result has the dtype and shape of ``boards``.
    """
    if boards.dim() not in (2, 3):
        raise ValueError(
            f"apply_transforms: boards must be [B, L] or [B, S, L], got {tuple(boards.shape)}"
        )
    batch, num_positions = boards.shape[0], boards.shape[-1]
    if position_map.shape != (batch, num_positions):
        raise ValueError(
            f"apply_transforms: position_map must be [B={batch}, L={num_positions}], "
            f"got {tuple(position_map.shape)}"
        )
    if value_map.dim() != 2 or value_map.shape[0] != batch:
        raise ValueError(
            f"apply_transforms: value_map must be [B={batch}, V+1], got {tuple(value_map.shape)}"
        )
    flat = boards.reshape(batch, -1, num_positions).long()  # [B, S, L]
    moved = flat.gather(2, position_map[:, None, :].expand_as(flat))
    relabelled = value_map.gather(1, moved.reshape(batch, -1)).view_as(moved)
    return relabelled.reshape(boards.shape).to(boards.dtype)
