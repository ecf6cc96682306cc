"""Pictures of Sudoku boards: plain text for logs and terminals, RGB arrays for videos.

Both renderers take the current ``board`` (values 1..n, 0 = blank) and the ``givens`` (the puzzle
as posed, or a boolean mask of its given positions), so a reader can tell the clues apart from the
digits an agent placed:

* :func:`render_ansi` marks a placed digit with a trailing ``*`` (no colour codes, so a log file
  stays readable); givens are plain and blanks are ``.``;
* :func:`render_rgb` draws givens in black and placed digits in blue, on a white grid with thin
  grey cell lines and thick black box lines. Digits come from a hand-made 5×7 bitmap font, scaled
  into the cell, which covers values 1..9 (sides n ≤ 9).
"""

from __future__ import annotations

import numpy as np

BACKGROUND = (255, 255, 255)
CELL_LINE = (170, 170, 170)  # thin grey
BOX_LINE = (0, 0, 0)  # thick black
GIVEN_DIGIT = (0, 0, 0)  # black
PLACED_DIGIT = (30, 80, 220)  # blue
PLACED_MARK = "*"

# 5 wide × 7 tall glyphs for the digits 1..9; "#" is ink
_GLYPH_ROWS = {
    1: ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    2: [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    3: ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
    4: ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    5: ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
    6: ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
    7: ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
    8: [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
    9: [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
}
GLYPHS = {
    digit: np.array([[ch == "#" for ch in row] for row in rows])
    for digit, rows in _GLYPH_ROWS.items()
}  # bool[7, 5] each
GLYPH_HEIGHT, GLYPH_WIDTH = 7, 5
MAX_FONT_VALUE = max(GLYPHS)


def _board_and_givens(
    board: np.ndarray, givens: np.ndarray, box: tuple[int, int], caller: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Check the inputs; return the board as ``int64[n, n]``, the given mask ``bool[n, n]``, n."""
    box_rows, box_cols = box
    n = box_rows * box_cols
    board = np.asarray(board)
    givens = np.asarray(givens)
    if board.size != n * n:
        raise ValueError(
            f"{caller}: box {box_rows}x{box_cols} needs {n * n} cells, got {board.size}"
        )
    if givens.shape != board.shape:
        raise ValueError(
            f"{caller}: givens must have the board's shape {board.shape}, got {givens.shape}"
        )
    board = board.reshape(n, n).astype(np.int64)
    given_values = givens.reshape(n, n)
    if board.min() < 0 or board.max() > n:
        raise ValueError(f"{caller}: values must lie in 0..{n}, got {board.min()}..{board.max()}")
    is_given = given_values != 0
    if given_values.dtype != bool and not np.array_equal(board[is_given], given_values[is_given]):
        raise ValueError(f"{caller}: the board disagrees with the puzzle's givens")
    return board, is_given, n


def render_ansi(board: np.ndarray, givens: np.ndarray, box: tuple[int, int]) -> str:
    """The board as plain text: box separators ``|`` and ``-+-``, ``.`` blanks, placed digits ``*``.

    ``board`` holds ``n*n`` values (flat or ``[n, n]``); ``givens`` is the puzzle as posed (its
    non-zero positions are givens) or a boolean mask of the same shape. For example (2×2 boxes)::

        1  2  | .  4
        .  4* | 1  .
        ------+------
        ...
    """
    board, is_given, n = _board_and_givens(board, givens, box, "render_ansi")
    box_rows, box_cols = box
    width = len(str(n))

    def cell(r: int, c: int) -> str:
        value = board[r, c]
        if value == 0:
            return ".".rjust(width) + " "
        return str(value).rjust(width) + (" " if is_given[r, c] else PLACED_MARK)

    lines = []
    for r in range(n):
        if r and r % box_rows == 0:
            lines.append(None)  # a box separator, drawn once the row width is known
        stacks = [
            " ".join(cell(r, c) for c in range(left, left + box_cols))
            for left in range(0, n, box_cols)
        ]
        lines.append(" | ".join(stacks))
    template = next(line for line in lines if line is not None)
    separator = "".join("+" if ch == "|" else "-" for ch in template)
    return "\n".join((separator if line is None else line).rstrip() for line in lines) + "\n"


def line_widths(cell_px: int) -> tuple[int, int]:
    """``(thin, thick)``: pixel widths of cell lines and box lines for cells of ``cell_px``."""
    return 1, max(3, cell_px // 10)


def cell_origins(box: tuple[int, int], cell_px: int) -> tuple[np.ndarray, np.ndarray]:
    """``(top, left)``: the first pixel row of each cell row and first pixel column of each column.

    Every cell's interior is ``cell_px`` × ``cell_px`` pixels starting there; the lines lie between
    the interiors, thick before every box boundary (and around the board), thin elsewhere.
    """
    box_rows, box_cols = box
    n = box_rows * box_cols
    thin, thick = line_widths(cell_px)

    def origins(group: int) -> np.ndarray:
        widths = np.where(np.arange(n) % group == 0, thick, thin)  # the line before each cell
        return np.cumsum(widths) + np.arange(n) * cell_px

    return origins(box_rows), origins(box_cols)


def render_rgb(
    board: np.ndarray, givens: np.ndarray, box: tuple[int, int], cell_px: int = 32
) -> np.ndarray:
    """The board as a picture ``uint8[H, W, 3]``: givens black, placed digits blue, blanks empty.

    ``board`` and ``givens`` are as for :func:`render_ansi`. Each cell is ``cell_px`` pixels square
    inside its lines; the digits are the 5×7 font scaled by a whole factor to about 60 % of the
    cell height. Values above 9 have no glyph yet and raise ``ValueError``.
    """
    board, is_given, n = _board_and_givens(board, givens, box, "render_rgb")
    if n > MAX_FONT_VALUE:
        raise ValueError(
            f"render_rgb: the bitmap font draws values 1..{MAX_FONT_VALUE}, but boxes of "
            f"{box[0]}x{box[1]} have values up to {n}; add glyphs to GLYPHS for larger boards"
        )
    if cell_px < GLYPH_HEIGHT + 2:
        raise ValueError(f"render_rgb: cell_px must be at least {GLYPH_HEIGHT + 2}, got {cell_px}")
    box_rows, box_cols = box
    thin, thick = line_widths(cell_px)
    top, left = cell_origins(box, cell_px)
    height, width = top[-1] + cell_px + thick, left[-1] + cell_px + thick
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = CELL_LINE
    for y in top:
        for x in left:
            image[y : y + cell_px, x : x + cell_px] = BACKGROUND
    # box lines: the `thick` pixels before each box's first cell, and after the last cell
    for y in [*top[::box_rows] - thick, height - thick]:
        image[y : y + thick, :] = BOX_LINE
    for x in [*left[::box_cols] - thick, width - thick]:
        image[:, x : x + thick] = BOX_LINE

    scale = max(1, int(0.6 * cell_px) // GLYPH_HEIGHT)
    glyph_h, glyph_w = GLYPH_HEIGHT * scale, GLYPH_WIDTH * scale
    dy, dx = (cell_px - glyph_h) // 2, (cell_px - glyph_w) // 2
    for r in range(n):
        for c in range(n):
            value = board[r, c]
            if value == 0:
                continue
            ink = np.kron(GLYPHS[value], np.ones((scale, scale), dtype=bool))  # [glyph_h, glyph_w]
            y, x = top[r] + dy, left[c] + dx
            colour = GIVEN_DIGIT if is_given[r, c] else PLACED_DIGIT
            image[y : y + glyph_h, x : x + glyph_w][ink] = colour
    return image
