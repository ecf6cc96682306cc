"""Batched breadth-first search on H×W grids, one row of cells packed into one int64 word.

A set of cells of boards ``[B, L]`` (row-major, L = H·W) is held as ``int64[B, H + 1]``: bit ``c``
of word ``r`` is cell (r, c), and the extra last word is an always-empty row. One BFS level is one
dilation by the 4-neighbourhood, masked to the passable cells:

    next = (reached | reached << 1 | reached >> 1 | roll(reached, +1 row) | roll(reached, -1 row))
           & passable

The empty last row makes the row rolls exact (what wraps around is either that empty row or lands
on it, where nothing is passable), and bits at or above W are never passable, so the column shifts
need no masks. A level is therefore 9 elementwise ops on B·(H+1) words instead of B·H·W cells,
30× fewer elements on 30×30 mazes. Widths up to 63 fit a word (the top bit is never set before a
shift, so arithmetic right shifts are harmless).

Distances are BFS levels: 0 at the sources, -1 where no passable route leads.
"""

from __future__ import annotations

import torch

MAX_WIDTH = 63
CHECK_EVERY = 8  # levels between the checks whether a search may stop (each check syncs a GPU)


def pack(cells: torch.Tensor, width: int) -> torch.Tensor:
    """``int64[B, H + 1]`` row words of the cell set ``bool[B, L]`` (last word empty)."""
    B = cells.shape[0]
    weights = torch.ones(width, dtype=torch.int64, device=cells.device) << torch.arange(
        width, device=cells.device
    )
    words = (cells.view(B, -1, width).long() * weights).sum(dim=-1)  # distinct bits: sum == or
    return torch.nn.functional.pad(words, (0, 1))


def unpack(words: torch.Tensor, width: int) -> torch.Tensor:
    """``bool[B, L]``: the cells of row words ``int64[B, H + 1]`` (the empty last word dropped)."""
    columns = torch.arange(width, device=words.device)
    return ((words[:, :-1, None] >> columns) & 1).bool().flatten(1)


def dilate(reached: torch.Tensor, passable: torch.Tensor) -> torch.Tensor:
    """One BFS level: ``reached`` and its 4-neighbours, kept to the ``passable`` cells."""
    return (
        reached
        | (reached << 1)
        | (reached >> 1)
        | reached.roll(1, dims=1)
        | reached.roll(-1, dims=1)
    ) & passable


def bfs_distances(passable: torch.Tensor, sources: torch.Tensor, width: int) -> torch.Tensor:
    """``int64[B, L]``: BFS distance from the nearest source through passable cells, -1 if none.

    ``passable`` and ``sources`` are ``bool[B, L]``; sources that are not passable are ignored.
    Runs until no board gains a cell (one level per iteration).
    """
    open_words = pack(passable, width)
    reached = pack(sources, width) & open_words
    distance = torch.where(unpack(reached, width), 0, -1)
    level = 0
    while True:
        level += 1
        grown = dilate(reached, open_words)
        new = grown & ~reached
        if not bool(new.any()):
            return distance
        distance.masked_fill_(unpack(new, width), level)
        reached = grown


def reached_within(
    passable: torch.Tensor, sources: torch.Tensor, width: int, num_levels: int
) -> torch.Tensor:
    """``int64[T + 1, B, H + 1]`` row words: entry ``t`` holds the cells within ``t`` moves of a
    source (``T = num_levels``; a fixed number of levels, so no early stop and no GPU sync)."""
    open_words = pack(passable, width)
    reached = pack(sources, width) & open_words
    levels = [reached]
    for _ in range(num_levels):
        reached = dilate(reached, open_words)
        levels.append(reached)
    return torch.stack(levels)


def probe_distances(
    passable: torch.Tensor,
    sources: torch.Tensor,
    probes: torch.Tensor,
    width: int,
    *,
    until_first: bool = False,
) -> torch.Tensor:
    """``int64[B, P]``: BFS distance from the sources to the cells ``probes[b, p]``, -1 if none.

    Faster than :func:`bfs_distances` when only a few cells matter: the probes are read once
    every ``CHECK_EVERY`` levels (from the stacked row words of those levels), and the search
    stops once every board has reached its probes or stopped growing. With ``until_first``, a
    board needs no more levels once it reaches ``probes[:, 0]``; its other probes farther away
    then read -1.
    """
    B, P = probes.shape
    open_words = pack(passable, width)
    reached = pack(sources, width) & open_words
    rows, columns = probes // width, probes % width  # [B, P]
    chunk_rows, chunk_columns = rows.repeat(CHECK_EVERY, 1), columns.repeat(CHECK_EVERY, 1)
    found = _bits_at(reached, rows, columns)
    levels_before = (~found).long()  # per probe: levels searched without reaching it
    while True:
        before = reached
        chunk = []
        for _ in range(CHECK_EVERY):
            reached = dilate(reached, open_words)
            chunk.append(reached)
        words = torch.stack(chunk).view(CHECK_EVERY * B, -1)
        hits = _bits_at(words, chunk_rows, chunk_columns).view(CHECK_EVERY, B, P)
        levels_before += (~hits).sum(dim=0)
        found = hits[-1]
        needs_more = ~found[:, 0] if until_first else ~found.all(dim=1)
        growing = (reached != before).any(dim=1)
        if not bool((needs_more & growing).any()):
            break
    distance = torch.where(found, levels_before, -1)
    if until_first:  # beyond a reached probe 0 the search may have stopped: report those as -1
        first = distance[:, :1]
        distance = torch.where((first >= 0) & (distance > first), -1, distance)
    return distance


def _bits_at(words: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``bool[B, P]``: whether cell (rows[b, p], columns[b, p]) is in the row words ``[B, H+1]``."""
    return ((words.gather(1, rows) >> columns) & 1).bool()
