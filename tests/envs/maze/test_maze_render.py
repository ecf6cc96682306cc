"""Maze pictures: text over ``# SGo`` and an RGB array with every kind of cell told apart."""

from __future__ import annotations

import numpy as np
from maze_reference import read_mazes_text, small_maze

from hrm_rl.envs.maze.rules import BLANK, OFF_PATH, MazeRules


def test_render_ansi_and_rgb():
    question, answer = small_maze()
    board = read_mazes_text(answer)
    rules = MazeRules(4, 4)
    text = rules.render_ansi(board, board != BLANK)
    assert text.splitlines() == ["Sooo", "###o", "oooo", "G## "]
    image = rules.render_rgb(board, board != BLANK)
    assert image.dtype == np.uint8 and image.shape[2] == 3 and image.shape[0] == image.shape[1]
    centre = image.shape[0] // 8  # the middle of cell (0, 0): S
    colours = {
        tuple(image[centre + 12 * r, centre + 12 * c])
        for r, c in [(0, 0), (1, 0), (0, 1), (3, 0), (3, 3)]
    }
    assert len(colours) == 5  # S, wall, path, G, open are told apart
    off = np.where(board == BLANK, OFF_PATH, board)
    assert rules.render_ansi(off, board != BLANK) == text
