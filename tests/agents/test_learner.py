"""The learner plumbing both agents share: precision, schedule, optimizer, EMA."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from hrm_rl.agents.learner import (
    check_precision,
    make_ema,
    optimizer_and_schedule,
    update_ema,
    uses_bf16,
    warmup_cosine_factor,
)


def schedule(**overrides):
    options = dict(warmup_iterations=4, total_iterations=104, min_lr_ratio=0.1)
    options.update(overrides)
    return SimpleNamespace(**options)


def test_learning_rate_warms_up_linearly_then_falls_along_a_cosine_to_its_floor():
    config = schedule()
    assert [warmup_cosine_factor(i, config) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine_factor(4, config) == pytest.approx(1.0)
    assert warmup_cosine_factor(54, config) == pytest.approx(0.55)  # half-way: (1 + 0.1) / 2
    assert warmup_cosine_factor(104, config) == pytest.approx(0.1)
    assert warmup_cosine_factor(10_000, config) == pytest.approx(0.1)  # stays at the floor


def test_the_time_budget_ends_the_cosine_when_it_runs_out_first():
    config = schedule(total_iterations=None)
    assert warmup_cosine_factor(10, config, time_progress=0.0) == pytest.approx(1.0)
    assert warmup_cosine_factor(10, config, time_progress=0.5) == pytest.approx(0.55)
    assert warmup_cosine_factor(10, config, time_progress=1.0) == pytest.approx(0.1)
    # with both, whichever is further along
    assert warmup_cosine_factor(54, schedule(), time_progress=1.0) == pytest.approx(0.1)


def test_optimizer_follows_the_schedule_and_parameter_groups_keep_their_own_rate():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    config = SimpleNamespace(lr=1e-2, betas=(0.9, 0.95), weight_decay=0.0, **vars(schedule()))
    groups = [{"params": [a], "lr": 1e-2}, {"params": [b], "lr": 1e-3}]
    optimizer, scheduler = optimizer_and_schedule(
        groups, config, lambda i: warmup_cosine_factor(i, config)
    )
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2.5e-3, 2.5e-4])
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-2, 1e-3])


def test_precision_choice_and_ema():
    assert uses_bf16("auto", "cuda") and not uses_bf16("auto", "cpu")
    assert uses_bf16("bf16", "cpu") and not uses_bf16("fp32", "cuda")
    with pytest.raises(ValueError, match="agent.precision must be one of"):
        check_precision("fp16", "agent.precision")

    model = nn.Linear(2, 1, bias=False)
    assert make_ema(model, None) is None
    ema = make_ema(model, 0.75)
    assert not any(p.requires_grad for p in ema.parameters())
    before = ema.weight.clone()
    with torch.no_grad():
        model.weight.add_(4.0)
    update_ema(ema, model, 0.75)
    assert torch.allclose(ema.weight, before + 1.0)  # a quarter of the way to the new weights
    assert math.isclose(float((model.weight - ema.weight).detach().mean()), 3.0, rel_tol=1e-6)
