"""Learner plumbing both agents share: precision, AdamW with the warm-up + cosine schedule, EMA.

:func:`uses_bf16` is the one place that decides whether a forward runs under bf16 autocast;
:func:`optimizer_and_schedule` builds AdamW and the learning-rate schedule
(:func:`warmup_cosine_factor`); :func:`make_ema` / :func:`update_ema` keep an optional
exponential moving average of the weights for evaluation and checkpoints.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

__all__ = [
    "PRECISIONS",
    "check_precision",
    "make_ema",
    "optimizer_and_schedule",
    "update_ema",
    "uses_bf16",
    "warmup_cosine_factor",
]

PRECISIONS = ("auto", "bf16", "fp32")


def check_precision(precision: str, where: str = "precision") -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"{where} must be one of {PRECISIONS}, got {precision!r}")


def uses_bf16(precision: str, device: torch.device | str) -> bool:
    """``auto``: bf16 autocast on CUDA only; ``bf16``: on any device; ``fp32``: never."""
    if precision == "auto":
        return torch.device(device).type == "cuda"
    return precision == "bf16"


def optimizer_and_schedule(
    parameters: Iterable[nn.Parameter] | list[dict], config, factor: Callable[[int], float]
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``parameters`` (or parameter groups with their own ``lr``) at ``config.lr``,
    ``config.betas`` and ``config.weight_decay``, and the schedule multiplying the learning rate
    by ``factor(iteration)``."""
    optimizer = torch.optim.AdamW(
        parameters, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_cosine_factor(iteration: int, config, time_progress: float = 0.0) -> float:
    """The LR multiplier: linear warm-up over ``config.warmup_iterations``, then cosine decay to
    ``config.min_lr_ratio`` at ``config.total_iterations`` or at the end of the time budget
    (``time_progress`` = 1), whichever comes first."""
    if iteration < config.warmup_iterations:
        return (iteration + 1) / config.warmup_iterations
    progress = time_progress
    if config.total_iterations is not None:
        span = max(1, config.total_iterations - config.warmup_iterations)
        progress = max(progress, (iteration - config.warmup_iterations) / span)
    progress = min(1.0, progress)
    ratio = config.min_lr_ratio
    return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_ema(model: nn.Module, decay: float | None) -> nn.Module | None:
    """A frozen copy of ``model`` to average into (None when ``decay`` is unset)."""
    return copy.deepcopy(model).requires_grad_(False) if decay else None


@torch.no_grad()
def update_ema(ema: nn.Module | None, model: nn.Module, decay: float | None) -> None:
    """ema ← decay · ema + (1 − decay) · model, parameter by parameter (nothing without an EMA)."""
    if ema is None:
        return
    for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
        ema_p.lerp_(p, 1.0 - decay)
