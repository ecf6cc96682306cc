"""hrm_rl: reinforcement learning of recurrent reasoning models on puzzles.

Importing the package registers the Gymnasium ids of every family, the puzzle plugins' (entry-point
group ``hrm_rl.puzzles``) included: ``hrm_rl/Sudoku-v0``, ``hrm_rl/Sudoku4x4-v0``,
``hrm_rl/Sudoku6x6-v0``, ``hrm_rl/Maze-v0`` (30×30), ``hrm_rl/Maze7x7-v0``, ``hrm_rl/Maze9x9-v0``,
``hrm_rl/Maze15x15-v0``, and the plugins' own. It does so once Gymnasium is imported (at once when
it already is), so ``import hrm_rl.models`` alone loads neither Gymnasium nor any puzzle family.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"


def _register_gym_ids() -> None:
    importlib.import_module("hrm_rl.envs.gym_ids")  # registers the ids as it loads


class _RegisterWithGymnasium(importlib.abc.MetaPathFinder):
    """Registers hrm_rl's Gymnasium ids right after ``gymnasium`` has been imported (a mere
    ``importlib.util.find_spec("gymnasium")``, as torchrl does, imports nothing and registers
    nothing)."""

    searching = False

    def find_spec(self, name, path=None, target=None):
        if name != "gymnasium" or self.searching:
            return None
        self.searching = True  # the normal finders locate Gymnasium
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.searching = False
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            run_module(module)
            _register_gym_ids()

        spec.loader.exec_module = exec_module
        return spec


if "gymnasium" in sys.modules:
    _register_gym_ids()
else:
    sys.meta_path.insert(0, _RegisterWithGymnasium())
