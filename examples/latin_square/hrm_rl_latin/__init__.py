"""An hrm_rl puzzle family from another package: Latin-square completion.

Importing this module registers the family ``latin`` (``hrm_rl_latin.rules``), its Gymnasium id
``hrm_rl_latin/Latin5-v0`` and its Hydra env configs ``latin5`` and ``latin4``; hrm_rl imports it
through the entry point ``[project.entry-points."hrm_rl.puzzles"] latin = "hrm_rl_latin"``.
"""

from hrm_rl_latin.rules import LatinRules, latin

__all__ = ["LatinRules", "latin"]
