"""hrm_rl: reinforcement learning of recurrent reasoning models on puzzles."""

__version__ = "0.1.0"
