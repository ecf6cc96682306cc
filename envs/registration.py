"""Puzzle families by name: the built-in ones, the ``@register_family`` decorator, and plugins.

A *family* is a factory of :class:`~hrm_rl.envs.base.PuzzleRules` plus what the rest of the
package needs to serve it without edits: the env-config keys its factory takes (Sudoku: ``box``),
its Gymnasium ids, and its Hydra ``env`` configs. Register one inside a module with::

    @register_family("latin", options=("size",), gym_ids={"me/Latin5-v0": {"size": 5}},
                     configs={"latin5": {"size": 5}})
    def latin(size: int = 5) -> LatinRules:
        return LatinRules(size)

or, from another package, point the entry-point group ``hrm_rl.puzzles`` at the module holding
that decorated factory (or at a :class:`PuzzleFamily` object)::

    [project.entry-points."hrm_rl.puzzles"]
    latin = "my_package.latin"

``import hrm_rl`` registers every family's Gymnasium ids (plugins too) as soon as Gymnasium is
imported (:func:`hrm_rl.envs.gym_ids.register_gym_ids`); this module itself never loads it;
``python -m hrm_rl.train env=<config>`` finds the families' Hydra configs.
"""

from __future__ import annotations

import importlib.resources
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from hydra.core.config_store import ConfigStore

from hrm_rl.envs.base import PuzzleRules
from hrm_rl.envs.transition import MAX_SEGMENTS, MISTAKE_REWARD, SHAPING, SOLVE_BONUS

log = logging.getLogger(__name__)

PLUGIN_GROUP = "hrm_rl.puzzles"
BUILTIN_MODULES = ("hrm_rl.envs.sudoku.rules", "hrm_rl.envs.maze.rules")

# The env-config keys every family shares (configs/env/*.yaml spell them out for the built-in
# families; a plugged family's `configs` entries are laid over these).
ENV_DEFAULTS: dict[str, Any] = {
    "action_mode": "cell",  # cell: one placement per step; grid: a full proposal per step
    "solve_bonus": SOLVE_BONUS,
    "mistake_reward": MISTAKE_REWARD,
    "shaping": SHAPING,  # grid mode: weight of the share of satisfied constraints when unsolved
    "max_segments": MAX_SEGMENTS,  # grid mode: proposals before an episode is truncated
    "givens": None,  # [lo, hi] givens per puzzle, for families whose generator takes them
    "generate": {},  # further keyword arguments of the family's generator
    "bank_size": 2048,  # training puzzles per curriculum level
    "augment": True,  # random validity-preserving transform of each drawn puzzle
    "curriculum": {
        "mode": "off",
        "level": 0,
        "threshold": 0.8,
        "window": 1000,
        "stuck_share": 0.0,
        "extra_levels": [],
    },
}


@dataclass(frozen=True)
class PuzzleFamily:
    """One puzzle family: its rules factory and how the package serves it.

    ``rules(**options)`` builds the rules; ``options`` names the env-config keys passed to it.
    ``gym_ids`` maps each Gymnasium id to its factory options; ``configs`` maps each Hydra env
    config name to its keys (the factory options and any of :data:`ENV_DEFAULTS`).
    """

    name: str
    rules: Callable[..., PuzzleRules]
    options: tuple[str, ...] = ()
    gym_ids: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def env_config(self, config_name: str) -> dict[str, Any]:
        """The full Hydra env config ``config_name``: the shared defaults, the family, its keys."""
        return {**ENV_DEFAULTS, "family": self.name, **dict(self.configs[config_name])}


FAMILIES: dict[str, PuzzleFamily] = {}
_LISTENERS: list[Callable[[PuzzleFamily], None]] = []  # told of each family added
_PLUGIN_ERRORS: dict[str, str] = {}  # entry-point name -> why it failed to load
_plugins_loaded = False


def register_family(
    name: str,
    *,
    options: tuple[str, ...] = (),
    gym_ids: Mapping[str, Mapping[str, Any]] | None = None,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[Callable[..., PuzzleRules]], Callable[..., PuzzleRules]]:
    """Decorator: register the decorated rules factory as family ``name``."""

    def decorate(factory: Callable[..., PuzzleRules]) -> Callable[..., PuzzleRules]:
        add_family(PuzzleFamily(name, factory, tuple(options), gym_ids or {}, configs or {}))
        return factory

    return decorate


def add_family(family: PuzzleFamily) -> None:
    """Register ``family``; a second family of the same name is an error (re-adding it is not)."""
    if not isinstance(family, PuzzleFamily):
        raise TypeError(f"expected a PuzzleFamily, got {type(family).__name__}")
    known = FAMILIES.get(family.name)
    if known is not None and known.rules is not family.rules:
        raise ValueError(
            f"puzzle family {family.name!r} is already registered (by {known.rules.__module__})"
        )
    FAMILIES[family.name] = family
    for listener in _LISTENERS:
        listener(family)


def load_plugins() -> None:
    """Import every ``hrm_rl.puzzles`` entry point once; a broken one is reported, not fatal."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in BUILTIN_MODULES:  # the built-in families register when imported
        importlib.import_module(module)

    for point in entry_points(group=PLUGIN_GROUP):
        try:
            loaded = point.load()
        except Exception as error:  # a plugin's own bug must not break `import hrm_rl`
            _PLUGIN_ERRORS[point.name] = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"hrm_rl: the puzzle plugin {point.name!r} ({point.value}) failed to load: "
                f"{_PLUGIN_ERRORS[point.name]}",
                stacklevel=2,
            )
            continue
        if isinstance(loaded, PuzzleFamily):
            add_family(loaded)


def family(name: str) -> PuzzleFamily:
    """The registered family ``name``, or an error listing the known ones."""
    load_plugins()
    if name not in FAMILIES:
        broken = f"; plugins that failed to load: {_PLUGIN_ERRORS}" if _PLUGIN_ERRORS else ""
        raise ValueError(
            f"unknown puzzle family {name!r}; known families: {sorted(FAMILIES)}{broken}"
        )
    return FAMILIES[name]


def make_rules(name: str, **options: Any) -> PuzzleRules:
    """The rules of family ``name`` with its size options (Sudoku: ``box=(3, 3)``)."""
    spec = family(name)
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(
            f"puzzle family {name!r} takes the options {list(spec.options)}, got {sorted(unknown)}"
        )
    return spec.rules(**options)


def rules_from_config(env_cfg: Mapping[str, Any]) -> PuzzleRules:
    """The rules an env config (``family`` plus the family's option keys) describes."""
    spec = family(env_cfg["family"])
    options = {key: _plain(env_cfg[key]) for key in spec.options if key in env_cfg}
    return spec.rules(**options)


def _plain(value: Any) -> Any:
    """OmegaConf lists become tuples, so factories see ordinary Python values."""
    if hasattr(value, "_content") or isinstance(value, list):
        return tuple(value)
    return value


def on_new_family(listener: Callable[[PuzzleFamily], None]) -> None:
    """Call ``listener`` with every family added from now on (Gymnasium id registration)."""
    _LISTENERS.append(listener)


def register_hydra_configs() -> None:
    """Put every family's env configs that have no YAML file into Hydra's ``env`` group."""
    load_plugins()
    package_configs = importlib.resources.files("hrm_rl.configs") / "env"
    store = ConfigStore.instance()
    for spec in FAMILIES.values():
        for config_name in spec.configs:
            if not (package_configs / f"{config_name}.yaml").is_file():
                store.store(group="env", name=config_name, node=spec.env_config(config_name))


def gym_ids() -> dict[str, str]:
    """Every registered Gymnasium id of hrm_rl's families, with its family name."""
    load_plugins()
    return {env_id: spec.name for spec in FAMILIES.values() for env_id in spec.gym_ids}
