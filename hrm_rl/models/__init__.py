"""Neural networks of hrm_rl: transformer layers and the reasoning models built on them."""

from hrm_rl.models.hrm import HRM, HRMConfig, HRMOutput
from hrm_rl.models.selection import TopKSelection

__all__ = ["HRM", "HRMConfig", "HRMOutput", "TopKSelection"]
