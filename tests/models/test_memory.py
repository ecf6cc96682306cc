"""The memory H-modules (``bicross``, ``multicell``): which cells are read and written, what the
cell selection trains, memory cells across resets, and the auxiliary losses, computed by hand."""

from __future__ import annotations

import pytest
import torch

from hrm_rl.models.hrm import HRM, HRMConfig
from hrm_rl.models.memory import balance_loss, diversity_loss, selfsup_loss

L, V = 16, 4  # a 4x4 Sudoku board


def make_model(**overrides) -> HRM:
    torch.manual_seed(0)
    options = dict(num_positions=L, num_values=V, d_model=32, num_heads=2, N=3, T=2)
    options.update(overrides)
    return HRM(HRMConfig(**options))


def inputs(batch: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V + 1, (batch, L), generator=generator)
    candidates = torch.rand(batch, L, V, generator=generator) < 0.5
    return tokens, candidates


def _tok_carry(model):
    tokens, candidates = inputs()
    return tokens, model.initial_carry(tokens.shape[0]), candidates


# --- memory cells: read, written, selected, reset ----------------------------------------------


@pytest.mark.parametrize("grad", ["one_step", "last_cycle", "full"])
def test_first_cycle_selection_trains_relevance_and_initial_cls(grad):
    model = make_model(h_module="multicell", grad=grad, num_cells=5, top_k=2)
    out = model(*_tok_carry(model))
    out.selection_log_probs[:, 0].sum().backward()
    W_r, cells = model.H_update.W_r, model.H_update.initial_cells
    assert W_r.grad is not None and W_r.grad.abs().sum() > 0
    assert cells.grad is not None and cells.grad[:, 0].abs().sum() > 0  # the CLS tokens
    assert torch.isfinite(W_r.grad).all() and torch.isfinite(cells.grad).all()


def test_choosing_other_cells_changes_what_is_read():
    """The initial cells differ, so which cells a cycle reads changes the step's outputs."""
    tokens, candidates = inputs()
    model = make_model(h_module="multicell", num_cells=4, top_k=2)
    cells = model.H_update.initial_cells
    assert not torch.allclose(cells[0], cells[1]) and not torch.allclose(cells[0, 0], cells[2, 0])
    carry = model.initial_carry(5)
    with torch.no_grad():
        first = model(tokens, carry, candidates, selections=torch.tensor([[0, 1]]).repeat(5, 3, 1))
        other = model(tokens, carry, candidates, selections=torch.tensor([[2, 3]]).repeat(5, 3, 1))
    assert (first.move_logits - other.move_logits).abs().max() > 1e-3
    assert not torch.allclose(first.value, other.value)


def test_only_the_selected_cells_are_written():
    model = make_model(h_module="multicell", num_cells=5, top_k=2, N=1)
    tokens, candidates = inputs()
    carry = model(tokens, model.initial_carry(5), candidates).carry
    with torch.no_grad():
        out = model(tokens, carry, candidates)
    for b in range(5):
        chosen = set(out.selections[b, 0].tolist())
        for cell in range(5):
            same = torch.equal(out.carry["cells"][b, cell], carry["cells"][b, cell])
            assert same == (cell not in chosen), (b, cell, chosen)


@pytest.mark.parametrize("h_module", ["bicross", "multicell"])
def test_reset_restores_initial_cells_in_episode_scope_and_keeps_them_in_lifelong(h_module):
    tokens, candidates = inputs()
    reset = torch.tensor([True, False, True, False, False])
    for scope in ("episode", "lifelong"):
        model = make_model(h_module=h_module, memory_scope=scope)
        carry = model(tokens, model.initial_carry(5), candidates).carry
        carry = model(tokens, carry, candidates).carry
        initial = model.H_update.initial_cells.detach()
        assert not torch.allclose(carry["cells"][0], initial)  # the memory was written
        after = model.reset_carry(carry, reset)
        for b in range(5):
            torch.testing.assert_close(
                after["z_H"][b],
                model.H_init.expand_as(after["z_H"][b]) if reset[b] else carry["z_H"][b],
            )
        if scope == "episode":
            torch.testing.assert_close(after["cells"][0], initial)
            assert after["fresh"].tolist() == reset.tolist()
        else:
            torch.testing.assert_close(after["cells"], carry["cells"])
            assert not after["fresh"].any()
        torch.testing.assert_close(after["cells"][1], carry["cells"][1])  # not reset


# --- auxiliary losses, computed by hand ----------------------------------------------------


def test_diversity_loss_by_hand():
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.7, 0.2]])
    # p = [0.3, 0.475, 0.225], mean 1/3; population variance = 0.010972...
    p = [0.3, 0.475, 0.225]
    expected = -sum((x - 1 / 3) ** 2 for x in p) / 3
    assert diversity_loss(probs).item() == pytest.approx(expected, abs=1e-7)
    assert diversity_loss(torch.full((4, 3), 1 / 3)).item() == pytest.approx(0.0, abs=1e-9)


def test_balance_loss_by_hand_excludes_the_always_active_cell():
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.9, 0.1, 0.0]])
    # p = [0.9, 0.075, 0.025]; without cell 1: mean 0.05, variance 0.000625 -> CV² = 0.25
    assert balance_loss(probs, weight=2.0, exclude_first=True).item() == pytest.approx(
        0.5, rel=1e-5
    )
    # with it: mean 1/3, var = ((0.9-1/3)²+(0.075-1/3)²+(0.025-1/3)²)/3
    p = [0.9, 0.075, 0.025]
    var = sum((x - 1 / 3) ** 2 for x in p) / 3
    assert balance_loss(probs).item() == pytest.approx(var / (1 / 3) ** 2, rel=1e-5)


def test_selfsup_loss_by_hand():
    delta_z = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])  # [B=1, S=2, d=2]
    best = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    # squared norms per token: 5 and 25 -> mean 15
    assert selfsup_loss(delta_z, best).item() == pytest.approx(15.0)
