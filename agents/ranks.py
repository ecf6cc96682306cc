"""What an agent needs from the other ranks of a data-parallel run, as an interface.

:class:`hrm_rl.distributed.World` provides it; the agents depend only on this protocol, so they
do not import the entry points' process-group code (and a test or another launcher can pass its
own).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from torch import nn


class Ranks(Protocol):
    """The collectives an agent calls during an update (each is the identity when alone)."""

    size: int

    @property
    def joined(self) -> bool:
        """Whether other ranks take part (collectives talk to them)."""
        ...

    def sum(self, value: int | float) -> int | float:
        """The sum of ``value`` over the ranks."""
        ...

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank."""
        ...

    def average_gradients(self, parameters: Iterable[nn.Parameter], finite: bool) -> bool:
        """Average the parameters' gradients over the ranks; whether every rank's loss was
        finite."""
        ...
