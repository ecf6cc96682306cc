"""The Gymnasium ids of every puzzle family (``hrm_rl/Sudoku-v0``, …, the plugins' own).

Importing this module registers them (``import hrm_rl`` imports it once Gymnasium is imported);
the env classes are named by their import paths, so registering loads no env code.
``gymnasium.make(id)`` builds a :class:`~hrm_rl.envs.gym_env.PuzzleEnv`;
``gymnasium.make_vec(id, num_envs=N)`` a :class:`~hrm_rl.envs.vector_env.PuzzleVectorEnv` (the
``vector_entry_point``), or with ``vectorization_mode="sync"`` a ``SyncVectorEnv`` of N
``PuzzleEnv``.
"""

from __future__ import annotations

import gymnasium as gym

from hrm_rl.envs.registration import FAMILIES, PuzzleFamily, load_plugins, on_new_family

ENTRY_POINT = "hrm_rl.envs.gym_env:PuzzleEnv"
VECTOR_ENTRY_POINT = "hrm_rl.envs.vector_env:PuzzleVectorEnv"
_ids_registered = False


def register_gym_ids() -> None:
    """Register the Gymnasium ids of every family, plugins and families added later included
    (re-calling is harmless)."""
    global _ids_registered
    load_plugins()
    if not _ids_registered:
        _ids_registered = True
        on_new_family(_register_ids)
    for spec in list(FAMILIES.values()):
        _register_ids(spec)


def _register_ids(spec: PuzzleFamily) -> None:
    for env_id, options in spec.gym_ids.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point=ENTRY_POINT,
                vector_entry_point=VECTOR_ENTRY_POINT,
                kwargs={"family": spec.name, **dict(options)},
            )


register_gym_ids()
