"""The HRM as a TorchRL policy: one backbone forward gives the move, the cells and the value.

The joint action of one step is ``{action, selections}``: the move (a ``MaskedCategorical``
over the L·V placements) and the cells chosen in each of the N cycles (``[N, k]``). Its
log-probability is

    log π(action, cells | s) = log π(move | s) + Σ_n log π(A_n | s_n)          (joint_log_prob)

so PPO clips the ratio of the whole reasoning step (or, with ``agent.selection.clip``, the move's
and the cells' ratios each on its own; acting also stores the cells' part as
``log_prob_selections``).
The cells of cycle n are drawn *inside* the backbone, because cycle n's scores depend on what the
cells chosen in earlier cycles wrote.

Acting (:class:`HRMPolicy` as a TensorDict module, e.g. in a ``Collector``) draws the move and the
cells (top move and top-k cells under ``ExplorationType.DETERMINISTIC``) and writes ``action``,
``selections`` (with ``log_prob_selections``, its part of the log-probability, and
``selections_greedy``, the top-k cells by score per cycle), ``log_prob``, ``value_pred``, the
next carry under ``"next"`` and, when ``keep_resume`` is set, the state where the segment's
tracked part starts under ``"resume"``.
Replaying (:meth:`HRMPolicy.replay`) runs a stored step again with its cells forced: from the
stored ``resume`` state (only what carries gradient is recomputed) or, with ``resume=False``, the
whole segment from the stored input carry. Both give the collected log-probability back.

The carry ``(z_H, z_L, cells)`` (the model's names: ``cells`` are the memory cells' contents)
lives in the tensordict: the env gets an ``InitTracker`` and a
``TensorDictPrimer`` (see :func:`carry_transforms`), the module reads the carry at the root and
writes the next one under ``"next"``.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch.utils.checkpoint import checkpoint
from torchrl.data import Unbounded
from torchrl.envs import Compose, InitTracker, TensorDictPrimer
from torchrl.envs.utils import ExplorationType, exploration_type
from torchrl.modules import MaskedCategorical

from hrm_rl.agents.learner import check_precision, uses_bf16
from hrm_rl.models.hrm import HRM, HRMOutput

__all__ = ["HRMPolicy", "carry_transforms", "joint_log_prob"]

CARRY_KEYS = ("z_H", "z_L", "cells")


def joint_log_prob(move: MaskedCategorical, action: torch.Tensor, out: HRMOutput) -> torch.Tensor:
    """``log π(move) + Σ_n log π(A_n | s_n)``, ``[B]``: the log-probability PPO's ratio uses."""
    return move.log_prob(action) + out.selection_log_prob


class HRMPolicy(TensorDictModuleBase):
    """Reads board, mask and carry from a tensordict, runs the HRM once, acts and writes back.

    Args:
        model: the backbone.
        precision: ``auto`` runs it under bf16 autocast on CUDA and in float32 on the CPU;
            ``bf16`` and ``fp32`` force one. Logits, values and the carry come out in float32.
        keep_resume: store the state where the tracked part of the segment starts (under
            ``"resume"``), so that :meth:`replay` can skip the untracked prefix.
        warmup_segments: segments each fresh puzzle thinks before its first move; None: the
            model's ``warmup_segments``, as trained (more is test-time thinking).
    """

    def __init__(
        self,
        model: HRM,
        precision: str = "auto",
        keep_resume: bool = False,
        warmup_segments: int | None = None,
    ) -> None:
        super().__init__()
        check_precision(precision)
        self.model = model
        self.precision = precision
        self.keep_resume = keep_resume
        trained = model.config.warmup_segments
        self.warmup_segments = trained if warmup_segments is None else warmup_segments
        self.with_cells = model.config.selections_per_cycle > 0
        self.carry_keys = list(CARRY_KEYS if model.has_memory else CARRY_KEYS[:2])
        self.in_keys = ["board", "action_mask", "is_init", *self.carry_keys]
        chosen = ["selections", "log_prob_selections", "selections_greedy"]
        self.out_keys = ["action", "log_prob", "value_pred", "first_step"]
        self.out_keys += chosen if self.with_cells else []
        self.out_keys += [("next", key) for key in self.carry_keys]

    # --- acting -------------------------------------------------------------------------------

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        deterministic = exploration_type() == ExplorationType.DETERMINISTIC
        # an episode's first move (read by agent.first_move_weight), before a warm-up clears it
        tensordict.set("first_step", tensordict["is_init"].clone())
        if self.warmup_segments > 0:
            self.warm_up(tensordict)
        out = self.backbone(tensordict, deterministic=deterministic, keep_resume=self.keep_resume)
        move = self.move_distribution(out, tensordict["action_mask"])
        action = move.deterministic_sample if deterministic else move.sample()
        tensordict.set("action", action)
        tensordict.set("log_prob", joint_log_prob(move, action, out).detach())
        tensordict.set("value_pred", out.value.detach().float().unsqueeze(-1))
        if self.with_cells:
            tensordict.set("selections", out.selections)
            tensordict.set("log_prob_selections", out.selection_log_prob.detach().float())
            # the top-k cells by score in each cycle, ascending: diagnostics only
            top = out.selection_scores.detach().topk(self.model.config.top_k, dim=-1).indices
            tensordict.set("selections_greedy", top.sort(dim=-1).values)
        for key in self.carry_keys:
            tensordict.set(("next", key), out.carry[key].float())
        if self.keep_resume:
            tensordict.set("resume", out.resume.float())
        return tensordict

    @torch.no_grad()
    def warm_up(self, tensordict: TensorDictBase) -> None:
        """Let each fresh puzzle (``is_init``) think ``warmup_segments`` segments before its
        first move: no move, no gradient, the top-k cells. The warmed carry replaces the row's
        stored carry and its ``is_init`` is cleared, so that acting and any replay of the step
        (both read the stored carry) start from it. The first move otherwise comes after one
        segment from the initial states, while every later one has the segments of the moves
        before it in its carry; on 7×7 mazes most failures were that first move."""
        B = tensordict["board"].shape[0]
        fresh = tensordict["is_init"].reshape(B)
        if not bool(fresh.any()):
            return
        rows = fresh.nonzero().squeeze(1)
        _, carry = self.think(tensordict[rows])
        for key in self.carry_keys:
            warmed = tensordict[key].clone()
            warmed[rows] = carry[key].to(warmed.dtype)
            tensordict.set(key, warmed)
        tensordict.set("is_init", torch.zeros_like(tensordict["is_init"]))

    def think(
        self, tensordict: TensorDictBase, checkpointed: bool = True
    ) -> tuple[list[HRMOutput], TensorDict]:
        """The ``warmup_segments`` segments of a warm-up on the tensordict's rows (their
        ``is_init`` set: each starts from a fresh carry): no move, the top-k cells, each segment
        from the (detached, float32) carry of the one before. Returns their outputs and the last
        carry; with gradient when called with it (``agent.board_on_warmup``) and
        ``checkpointed``, each segment under activation checkpointing: only its inputs are kept,
        and backward thinks it again (the carries between segments are detached, so memory stays
        that of one segment, for a second forward pass of each)."""
        carry = self.start_carry(tensordict)
        outputs = []
        for _ in range(self.warmup_segments):
            if checkpointed and torch.is_grad_enabled():  # keep its inputs, recompute in backward
                out = checkpoint(
                    self.run_model, tensordict, carry, use_reentrant=False, deterministic=True
                )
            else:
                out = self.run_model(tensordict, carry, deterministic=True)
            outputs.append(out)
            carry = outputs[-1].carry.apply(
                lambda value: value.float() if value.is_floating_point() else value
            )
        return outputs, carry

    # --- replaying ----------------------------------------------------------------------------

    def replay(self, batch: TensorDictBase, resume: bool = True) -> TensorDict:
        """Recompute a batch of stored steps with their cells forced, with gradient.

        Returns ``log_prob`` (:func:`joint_log_prob` of the stored action), its cells' part
        ``log_prob_selections`` (Σ_n log π(A_n | s_n), 0 without cells), ``value``, the entropies
        ``entropy_move`` and ``entropy_cells`` (Σ over cycles), and the memory's auxiliary
        losses under ``aux`` (each batch-wide loss repeated on every row), all ``[B]``; and the
        grid head's ``grid_logits`` ``[B, L, V]``.
        """
        if resume and "resume" not in batch.keys():
            raise KeyError("replay from the resume state needs 'resume' (keep_resume=True)")
        out = self.backbone(
            batch,
            selections=batch["selections"] if self.with_cells else None,
            resume=batch["resume"] if resume else None,
        )
        move = self.move_distribution(out, batch["action_mask"])
        B = batch.shape[0]
        terms = TensorDict(
            {
                "log_prob": joint_log_prob(move, batch["action"], out),
                "log_prob_selections": out.selection_log_prob.float(),
                "value": out.value.float(),
                "entropy_move": move.entropy(),
                "entropy_cells": out.selection_entropy.float(),
                "grid_logits": out.grid_logits.float(),  # read by the board target's loss
            },
            batch_size=[B],
        )
        # the batch's memory losses, one value repeated per row (their mean is the loss)
        aux = {name: value.expand(B) for name, value in out.aux_losses.items()}
        terms["aux"] = TensorDict(aux, batch_size=[B])
        return terms

    # --- the backbone -------------------------------------------------------------------------

    def backbone(self, tensordict: TensorDictBase, **options) -> HRMOutput:
        """One HRM segment from the tensordict's board, mask and carry (reset where ``is_init``)."""
        return self.run_model(tensordict, self.start_carry(tensordict), **options)

    def start_carry(self, tensordict: TensorDictBase) -> TensorDict:
        """The tensordict's carry, reset where ``is_init`` (with the ``fresh`` flag the model
        reads its learned initial cells by)."""
        model = self.model
        board = tensordict["board"]
        B = board.shape[0]
        is_init = tensordict["is_init"].reshape(B)
        carry = TensorDict(
            {key: tensordict[key] for key in self.carry_keys},
            batch_size=[B],
            device=board.device,
        )
        carry["fresh"] = torch.zeros(B, dtype=torch.bool, device=board.device)
        carry = model.reset_carry(carry, is_init)
        if model.has_memory and model.config.memory_scope == "lifelong":
            never_written = (tensordict["cells"] == 0).flatten(1).all(dim=1)
            carry["fresh"] = is_init & never_written  # lifelong: initial cells only once
        return carry

    def run_model(self, tensordict: TensorDictBase, carry: TensorDict, **options) -> HRMOutput:
        """One HRM segment on the tensordict's board and mask from ``carry``."""
        model = self.model
        board, mask = tensordict["board"], tensordict["action_mask"]
        B = board.shape[0]
        candidates = mask.view(B, -1, model.config.num_values) if model.config.candidates else None
        with torch.autocast(board.device.type, torch.bfloat16, enabled=self.uses_bf16(board)):
            return model(board, carry, candidates, **options)

    @staticmethod
    def move_distribution(out: HRMOutput, mask: torch.Tensor) -> MaskedCategorical:
        """π(move | s): the masked categorical over the L·V placements (float32 logits)."""
        return MaskedCategorical(logits=out.move_logits.float(), mask=mask)

    @property
    def num_choosable_cells(self) -> int:
        """How many cells the selection chooses from (0 without a selection)."""
        cfg = self.model.config
        return cfg.num_cells - int(cfg.always_active_first) if self.with_cells else 0

    def max_cells_entropy(self) -> float:
        """The selection's largest entropy over a segment's N cycles: N · log C(N_c, k) for the
        set law, N · log(N_c! / (N_c − k)!) for ordered tuples (uniform scores)."""
        cfg = self.model.config
        if not self.with_cells or cfg.cell_choice != "policy":  # no policy: nothing to spread
            return 0.0
        count = math.comb if cfg.selection_law == "set" else math.perm
        return cfg.N * math.log(count(self.num_choosable_cells, cfg.top_k))

    def uses_bf16(self, board: torch.Tensor) -> bool:
        """Whether the backbone runs under bf16 autocast for ``board``'s device."""
        return uses_bf16(self.precision, board.device)


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
        specs["cells"] = Unbounded(tuple(cells.shape), device=device)
    return Compose(InitTracker(), TensorDictPrimer(specs, expand_specs=True))
