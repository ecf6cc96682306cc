"""Sudoku pictures: text for logs, RGB arrays with givens and placed digits told apart."""

from __future__ import annotations

import numpy as np
import pytest

from hrm_rl.envs.sudoku.render import cell_origins, render_ansi, render_rgb

SHAPES = [(2, 2), (2, 3), (3, 3)]
SHAPE_IDS = ["4x4", "6x6", "9x9"]
CELL_PX = 32


def known_solution(box_rows: int, box_cols: int) -> np.ndarray:
    """``int64[L]``: a valid solved board, row-major."""
    n = box_rows * box_cols
    r, c = np.divmod(np.arange(n * n), n)
    return (box_cols * (r % box_rows) + r // box_rows + c) % n + 1


def board_with_three_kinds(box_rows: int, box_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(board, puzzle)``: every third cell a given, every third placed, every third blank."""
    solution = known_solution(box_rows, box_cols)
    kind = np.arange(solution.size) % 3  # 0 given, 1 placed, 2 blank
    puzzle = np.where(kind == 0, solution, 0)
    board = np.where(kind == 2, 0, solution)
    return board, puzzle


def cell_pixels(image: np.ndarray, box: tuple[int, int], position: int) -> np.ndarray:
    """``uint8[cell_px, cell_px, 3]``: the interior of the cell at ``position``."""
    n = box[0] * box[1]
    top, left = cell_origins(box, CELL_PX)
    r, c = divmod(position, n)
    return image[top[r] : top[r] + CELL_PX, left[c] : left[c] + CELL_PX]


def is_black(pixels: np.ndarray) -> np.ndarray:
    return (pixels < 60).all(axis=-1)


def is_blue(pixels: np.ndarray) -> np.ndarray:
    return (pixels[..., 2] > 150) & (pixels[..., 0] < 100) & (pixels[..., 1] < 150)


# --- text -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_ansi_shows_digits_blanks_marks_and_separators(box_rows: int, box_cols: int) -> None:
    n = box_rows * box_cols
    board, puzzle = board_with_three_kinds(box_rows, box_cols)
    text = render_ansi(board, puzzle, (box_rows, box_cols))
    lines = text.splitlines()
    assert len(lines) == n + n // box_rows - 1  # one separator between bands
    separators = [line for line in lines if set(line) <= {"-", "+"}]
    assert len(separators) == n // box_rows - 1
    assert all(line.count("+") == n // box_cols - 1 for line in separators)
    grid_rows = [line for line in lines if line not in separators]
    for r, line in enumerate(grid_rows):
        assert line.count("|") == n // box_cols - 1
        tokens = line.replace("|", " ").split()
        assert len(tokens) == n
        for c, token in enumerate(tokens):
            i = r * n + c
            if puzzle[i]:
                assert token == str(puzzle[i])
            elif board[i]:
                assert token == f"{board[i]}*"
            else:
                assert token == "."
    assert "\x1b" not in text  # no colour codes in log files


def test_ansi_aligns_separators_with_bars() -> None:
    board, puzzle = board_with_three_kinds(3, 3)
    lines = render_ansi(board, puzzle, (3, 3)).splitlines()
    separator = lines[3]
    bars = [i for i, ch in enumerate(lines[0]) if ch == "|"]
    assert [i for i, ch in enumerate(separator) if ch == "+"] == bars


def test_ansi_accepts_square_boards_and_boolean_givens() -> None:
    board, puzzle = board_with_three_kinds(2, 2)
    flat = render_ansi(board, puzzle, (2, 2))
    assert render_ansi(board.reshape(4, 4), puzzle.reshape(4, 4), (2, 2)) == flat
    assert render_ansi(board, puzzle != 0, (2, 2)) == flat


def test_ansi_refuses_a_board_that_contradicts_its_givens() -> None:
    board, puzzle = board_with_three_kinds(2, 2)
    board[0] = board[0] % 4 + 1
    with pytest.raises(ValueError, match="givens"):
        render_ansi(board, puzzle, (2, 2))


def test_wrong_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="needs 81 cells, got 16"):
        render_ansi(np.zeros(16, dtype=int), np.zeros(16, dtype=int), (3, 3))
    with pytest.raises(ValueError, match="values must lie in 0..4"):
        render_rgb(np.full(16, 5), np.zeros(16, dtype=int), (2, 2))


# --- pictures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_rgb_shape_and_dtype(box_rows: int, box_cols: int) -> None:
    n = box_rows * box_cols
    board, puzzle = board_with_three_kinds(box_rows, box_cols)
    image = render_rgb(board, puzzle, (box_rows, box_cols), cell_px=CELL_PX)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert n * CELL_PX < image.shape[0] < n * (CELL_PX + 4)
    assert n * CELL_PX < image.shape[1] < n * (CELL_PX + 4)


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_rgb_tells_givens_placed_digits_and_blanks_apart(box_rows: int, box_cols: int) -> None:
    box = (box_rows, box_cols)
    board, puzzle = board_with_three_kinds(box_rows, box_cols)
    image = render_rgb(board, puzzle, box, cell_px=CELL_PX)
    for i in range(board.size):
        cell = cell_pixels(image, box, i)
        if puzzle[i]:
            assert is_black(cell).sum() > 10 and not is_blue(cell).any()
        elif board[i]:
            assert is_blue(cell).sum() > 10 and not is_black(cell).any()
        else:
            assert (cell == 255).all()


def test_rgb_draws_different_digits_differently() -> None:
    solution = known_solution(3, 3)
    image = render_rgb(solution, solution, (3, 3), cell_px=CELL_PX)
    first_row = [is_black(cell_pixels(image, (3, 3), c)).tobytes() for c in range(9)]
    assert len(set(first_row)) == 9


@pytest.mark.parametrize(("box_rows", "box_cols"), SHAPES, ids=SHAPE_IDS)
def test_box_lines_are_thicker_than_cell_lines(box_rows: int, box_cols: int) -> None:
    n = box_rows * box_cols
    empty = np.zeros(n * n, dtype=int)
    image = render_rgb(empty, empty, (box_rows, box_cols), cell_px=CELL_PX)
    top, left = cell_origins((box_rows, box_cols), CELL_PX)

    def line_runs(scanline: np.ndarray) -> list[int]:
        """Lengths of the runs of non-white pixels along a scanline through empty cells."""
        off_white = (scanline != 255).any(axis=-1).astype(int)
        edges = np.diff(np.concatenate([[0], off_white, [0]]))
        return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))

    across = line_runs(image[top[0] + CELL_PX // 2])  # crosses the vertical lines
    down = line_runs(image[:, left[0] + CELL_PX // 2])  # crosses the horizontal lines
    for runs, group in ((across, box_cols), (down, box_rows)):
        assert len(runs) == n + 1
        thick = [run for k, run in enumerate(runs) if k % group == 0]
        thin = [run for k, run in enumerate(runs) if k % group != 0]
        assert min(thick) > max(thin)
    # box lines are black, cell lines a lighter grey
    middle_row = image[top[0] + CELL_PX // 2]
    assert is_black(middle_row[left[0] - 1]) and is_black(middle_row[left[box_cols] - 1])
    assert not is_black(middle_row[left[1] - 1]) and (middle_row[left[1] - 1] < 255).all()


def test_rgb_refuses_values_without_a_glyph() -> None:
    empty = np.zeros(16 * 16, dtype=int)
    with pytest.raises(ValueError, match="bitmap font draws values 1..9"):
        render_rgb(empty, empty, (4, 4))


def test_rgb_scales_with_the_cell_size() -> None:
    board, puzzle = board_with_three_kinds(2, 2)
    small = render_rgb(board, puzzle, (2, 2), cell_px=16)
    large = render_rgb(board, puzzle, (2, 2), cell_px=64)
    assert large.shape[0] > 3 * small.shape[0]
    assert is_black(large).sum() > 4 * is_black(small).sum()
