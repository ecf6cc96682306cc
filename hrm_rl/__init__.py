"""hrm_rl: reinforcement learning of recurrent reasoning models on puzzles.

Importing the package registers its Gymnasium ids (``hrm_rl/Sudoku-v0``, ``hrm_rl/Sudoku4x4-v0``,
``hrm_rl/Sudoku6x6-v0``).
"""

from hrm_rl.envs.registration import register_gym_ids

__version__ = "0.1.0"

register_gym_ids()
