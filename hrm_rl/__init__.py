"""hrm_rl: reinforcement learning of recurrent reasoning models on puzzles.

Importing the package loads the puzzle plugins (entry-point group ``hrm_rl.puzzles``) and registers
the Gymnasium ids of every family: ``hrm_rl/Sudoku-v0``, ``hrm_rl/Sudoku4x4-v0``,
``hrm_rl/Sudoku6x6-v0``, ``hrm_rl/Maze-v0`` (30×30), ``hrm_rl/Maze7x7-v0``, ``hrm_rl/Maze9x9-v0``,
``hrm_rl/Maze15x15-v0``, and the plugins' own.
"""

from hrm_rl.envs.registration import register_gym_ids

__version__ = "0.1.0"

register_gym_ids()
