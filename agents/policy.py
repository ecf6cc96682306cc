"""The HRM as a TorchRL policy: one backbone forward gives the move, the cells and the value.

The joint action of one step is ``{action, cells}``: the move (``MaskedCategorical`` over L·V
placements) and the cells chosen in each of the N cycles (``[N, k]``). Its log-probability is
``log π(move) + Σ_n log PL(cells_n | s_n)``, so ``ClipPPOLoss`` clips the ratio of the whole
reasoning step.

The cells of cycle n are drawn *inside* the backbone, because cycle n's scores depend on what the
cells chosen in earlier cycles wrote. The policy module therefore outputs the draw together with
the per-cycle scores, and :class:`ChosenCells` is a distribution whose ``sample`` returns that
draw and whose ``log_prob`` is the Plackett–Luce probability under those scores. In *replay*
(TorchRL's recurrent mode, which every loss module switches on, or :func:`replay_mode`), the module
runs from the step's stored input carry with the stored cells forced, which is exactly the graph
the step had (one-step gradient included), so the recomputed log-probability equals the collected
one.

The carry ``(z_H, z_L, memory)`` lives in the tensordict: the env gets an ``InitTracker`` and a
``TensorDictPrimer`` (see :func:`carry_transforms`), the module reads the carry at the root and
writes the next one under ``"next"``.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.nn import CompositeDistribution, TensorDictModuleBase
from torch.distributions import Distribution
from torchrl.data import Unbounded
from torchrl.envs import Compose, InitTracker, TensorDictPrimer
from torchrl.envs.utils import ExplorationType, exploration_type
from torchrl.modules import MaskedCategorical, ProbabilisticActor, recurrent_mode
from torchrl.modules import set_recurrent_mode as replay_mode

from hrm_rl.models.hrm import HRM
from hrm_rl.models.selection import TopKSelection

__all__ = ["ChosenCells", "PolicyModule", "build_actor", "carry_transforms", "replay_mode"]

CARRY_KEYS = ("z_H", "z_L", "memory")
PRECISIONS = ("auto", "bf16", "fp32")


class ChosenCells(Distribution):
    """The cells the backbone drew, ``[*batch, N, k]``, under per-cycle scores ``[*batch, N, M]``.

    ``sample`` (and ``deterministic_sample``) return the draw the backbone made; ``log_prob`` is
    ``Σ_n log PL(value_n | scores_n)`` and ``entropy`` ``Σ_n H(TopKSelection(scores_n))``, both
    ``[*batch]``.
    """

    has_rsample = False
    arg_constraints = {}

    def __init__(self, scores: torch.Tensor, chosen: torch.Tensor, validate_args=False) -> None:
        self.per_cycle = TopKSelection(scores, chosen.shape[-1])
        self.chosen = chosen
        super().__init__(scores.shape[:-2], chosen.shape[-2:], validate_args=False)

    def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        return self.chosen.expand(*sample_shape, *self.chosen.shape)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.chosen

    @property
    def mode(self) -> torch.Tensor:
        return self.chosen

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.per_cycle.log_prob(value.long()).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        return self.per_cycle.entropy().sum(dim=-1)


class PolicyModule(TensorDictModuleBase):
    """Reads board, mask and carry from a tensordict, runs the HRM once, writes params and carry.

    Outputs: ``("params", "action", "logits"|"mask")``, ``("params", "cells", "scores"|"chosen")``
    (multicell only), ``value_pred`` and the next carry under ``"next"``. In replay mode the stored
    ``cells`` action is forced; otherwise cells are drawn (top-k under deterministic exploration).
    """

    def __init__(self, model: HRM, precision: str = "auto") -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model = model
        self.precision = precision
        self.with_cells = model.config.selections_per_cycle > 0
        self.carry_keys = list(CARRY_KEYS if model.has_memory else CARRY_KEYS[:2])
        self.in_keys = ["board", "action_mask", "is_init", *self.carry_keys]
        out = [("params", "action", "logits"), ("params", "action", "mask"), "value_pred"]
        if self.with_cells:
            out += [("params", "cells", "scores"), ("params", "cells", "chosen")]
        self.out_keys = out + [("next", key) for key in self.carry_keys]
        self.last_output = None  # the agent reads the auxiliary losses from here

    def forward(self, tensordict):
        model = self.model
        board, mask = tensordict["board"], tensordict["action_mask"]
        B = board.shape[0]
        is_init = tensordict["is_init"].reshape(B)
        carry = TensorDict(
            {_MODEL_KEY[key]: tensordict[key] for key in self.carry_keys},
            batch_size=[B],
            device=board.device,
        )
        carry["fresh"] = torch.zeros(B, dtype=torch.bool, device=board.device)
        carry = model.reset_carry(carry, is_init)
        if model.has_memory and model.config.memory_scope == "lifelong":
            never_written = (tensordict["memory"] == 0).flatten(1).all(dim=1)
            carry["fresh"] = is_init & never_written  # lifelong: initial cells only once
        replay = bool(recurrent_mode())
        forced = tensordict.get("cells", None) if replay and self.with_cells else None
        if replay and self.with_cells and forced is None:
            raise KeyError("replay needs the stored 'cells' action in the tensordict")
        with torch.autocast(board.device.type, torch.bfloat16, enabled=self.uses_bf16(board)):
            out = model(
                board,
                carry,
                mask.view(B, -1, model.config.num_values) if model.config.candidates else None,
                selections=forced,
                deterministic=exploration_type() == ExplorationType.DETERMINISTIC,
            )
        self.last_output = out
        # distributions, values and the stored carry stay in float32 under autocast
        tensordict.set(("params", "action", "logits"), out.move_logits.float())
        tensordict.set(("params", "action", "mask"), mask)
        tensordict.set("value_pred", out.value.float().unsqueeze(-1))
        if self.with_cells:
            tensordict.set(("params", "cells", "scores"), out.selection_scores.float())
            tensordict.set(("params", "cells", "chosen"), out.selections)
        for key in self.carry_keys:
            tensordict.set(("next", key), out.carry[_MODEL_KEY[key]].float())
        return tensordict

    def uses_bf16(self, board: torch.Tensor) -> bool:
        """``auto``: bf16 autocast on CUDA only; ``bf16``: on any device; ``fp32``: never."""
        if self.precision == "auto":
            return board.device.type == "cuda"
        return self.precision == "bf16"


_MODEL_KEY = {"z_H": "z_H", "z_L": "z_L", "memory": "cells"}  # tensordict key -> model key


def build_actor(model: HRM, precision: str = "auto") -> tuple[ProbabilisticActor, PolicyModule]:
    """The probabilistic actor over ``{action, cells}`` (or ``action`` alone without a policy).

    ``precision``: ``auto`` runs the backbone under bf16 autocast on CUDA and in float32 on the
    CPU; ``bf16`` and ``fp32`` force one. Logits, values and the carry come out in float32.
    """
    module = PolicyModule(model, precision)
    if not module.with_cells:
        actor = ProbabilisticActor(
            module,
            in_keys={
                "logits": ("params", "action", "logits"),
                "mask": ("params", "action", "mask"),
            },
            out_keys=["action"],
            distribution_class=MaskedCategorical,
            return_log_prob=True,
            default_interaction_type=ExplorationType.RANDOM,
        )
        return actor, module
    distribution_map = {"action": MaskedCategorical, "cells": ChosenCells}
    actor = ProbabilisticActor(
        module,
        in_keys=["params"],
        out_keys=list(distribution_map),
        distribution_class=CompositeDistribution,
        distribution_kwargs={
            "distribution_map": distribution_map,
            "name_map": {name: name for name in distribution_map},
        },
        return_log_prob=True,
        default_interaction_type=ExplorationType.RANDOM,
    )
    return actor, module


def carry_transforms(model: HRM, device: torch.device | str) -> Compose:
    """``InitTracker`` + a primer that declares (and zero-fills at reset) the carry entries."""
    cfg = model.config
    S, d = cfg.prefix_tokens + cfg.num_positions, cfg.d_model
    specs = {
        "z_H": Unbounded((S, d), device=device),
        "z_L": Unbounded((S, d), device=device),
    }
    if model.has_memory:
        cells = model.H_update.initial_cells
        specs["memory"] = Unbounded(tuple(cells.shape), device=device)
    return Compose(InitTracker(), TensorDictPrimer(specs, expand_specs=True))
