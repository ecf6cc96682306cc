"""Mazes on an H×W grid: rules, generator, readers and rendering; any shortest path solves."""

from hrm_rl.envs.maze.generator import count_shortest_paths, generate
from hrm_rl.envs.maze.readers import read_mazes
from hrm_rl.envs.maze.rules import (
    BLANK,
    GOAL,
    OFF_PATH,
    PATH,
    START,
    WALL,
    MazeRules,
    dihedral_maps,
)

__all__ = [
    "BLANK",
    "GOAL",
    "OFF_PATH",
    "PATH",
    "START",
    "WALL",
    "MazeRules",
    "count_shortest_paths",
    "dihedral_maps",
    "generate",
    "read_mazes",
]
