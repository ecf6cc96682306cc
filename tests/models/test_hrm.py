"""The HRM backbone: gradient modes (by inspecting which applications carry gradient), replay of
stored selections, the carry, parameter counting (the memory H-modules and their auxiliary losses:
test_memory.py)."""

from __future__ import annotations

import math

import pytest
import torch

from hrm_rl.envs.sudoku.rules import SudokuRules
from hrm_rl.models.hrm import HRM, HRMConfig

L, V = 16, 4  # a 4x4 Sudoku board


def make_model(graph=None, grid_shape=None, **overrides) -> HRM:
    torch.manual_seed(0)
    options = dict(num_positions=L, num_values=V, d_model=32, num_heads=2, N=3, T=2)
    options.update(overrides)
    return HRM(HRMConfig(**options), graph=graph, grid_shape=grid_shape)


def inputs(batch: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V + 1, (batch, L), generator=generator)
    candidates = torch.rand(batch, L, V, generator=generator) < 0.5
    return tokens, candidates


def tracked_applications(model: HRM, carry=None) -> dict[str, int]:
    """How many L-net and H-update applications produced an output that carries gradient."""
    counts = {"L": 0, "H": 0, "L_total": 0, "H_total": 0}

    def hook(kind):
        def record(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            counts[f"{kind}_total"] += 1
            counts[kind] += int(out.requires_grad)

        return record

    handles = [
        model.L_net.register_forward_hook(hook("L")),
        model.H_update.register_forward_hook(hook("H")),
    ]
    tokens, candidates = inputs()
    carry = carry if carry is not None else model.initial_carry(tokens.shape[0])
    model(tokens, carry, candidates)
    for handle in handles:
        handle.remove()
    return counts


@pytest.mark.parametrize("h_module", ["hrm", "bicross", "multicell"])
@pytest.mark.parametrize(
    "grad, expected_L, expected_H",
    [("one_step", 1, 1), ("last_cycle", 2, 1), ("full", 6, 3)],  # N = 3, T = 2
)
def test_gradient_modes_track_exactly_the_promised_applications(
    h_module, grad, expected_L, expected_H
):
    model = make_model(h_module=h_module, grad=grad)
    # a carry from an earlier segment (detached states) and a fresh one both count the same
    for carry in (None, model(*_tok_carry(model)).carry):
        counts = tracked_applications(model, carry)
        assert counts["L_total"] == 6 and counts["H_total"] == 3
        assert (counts["L"], counts["H"]) == (expected_L, expected_H)


def _tok_carry(model):
    tokens, candidates = inputs()
    return tokens, model.initial_carry(tokens.shape[0]), candidates


@pytest.mark.parametrize("grad", ["one_step", "last_cycle", "full"])
@pytest.mark.parametrize(
    "always_active_first, law", [(False, "ordered"), (True, "ordered"), (False, "set")]
)
def test_replay_with_forced_selections_reproduces_the_step(grad, always_active_first, law):
    model = make_model(
        h_module="multicell",
        grad=grad,
        num_cells=5,
        top_k=2,
        always_active_first=always_active_first,
        selection_law=law,
    )
    tokens, candidates = inputs()
    carry = model(tokens, model.initial_carry(5), candidates).carry  # a mid-episode carry
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        acted = model(tokens, carry, candidates, generator=generator)
    replayed = model(tokens, carry, candidates, selections=acted.selections)
    for name in ("move_logits", "grid_logits", "value", "selection_log_prob"):
        torch.testing.assert_close(getattr(replayed, name), getattr(acted, name), atol=1e-6, rtol=0)
    for key in ("z_H", "z_L", "cells"):
        torch.testing.assert_close(replayed.carry[key], acted.carry[key], atol=1e-6, rtol=0)
    assert torch.equal(replayed.selections, acted.selections)
    # and the replay has a graph: the recomputed log-probability trains the policy
    replayed.selection_log_prob.sum().backward()
    assert model.H_update.W_r.grad.abs().sum() > 0


@pytest.mark.parametrize("grad", ["one_step", "last_cycle", "full"])
@pytest.mark.parametrize(
    "h_module, always_active_first",
    [("hrm", False), ("bicross", False), ("multicell", False), ("multicell", True)],
)
def test_resuming_after_the_untracked_prefix_gives_the_same_outputs_and_gradients(
    grad, h_module, always_active_first
):
    model = make_model(
        h_module=h_module, grad=grad, num_cells=5, top_k=2, always_active_first=always_active_first
    )
    tokens, candidates = inputs()
    carry = model(tokens, model.initial_carry(5), candidates).carry
    carry["fresh"] = torch.tensor([True, False, True, False, False])  # new and running episodes
    with torch.no_grad():
        acted = model(
            tokens, carry, candidates, generator=torch.Generator().manual_seed(3), keep_resume=True
        )

    def replay(resume):
        model.zero_grad()
        out = model(tokens, carry, candidates, selections=acted.selections, resume=resume)
        loss = out.move_logits.logsumexp(1).sum() + out.value.sum() + out.selection_log_prob.sum()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out, grads

    full, full_grads = replay(None)
    resumed, resumed_grads = replay(acted.resume)
    for name in ("move_logits", "value", "selection_log_prob", "selection_entropy"):
        torch.testing.assert_close(getattr(resumed, name), getattr(full, name), atol=1e-6, rtol=0)
        torch.testing.assert_close(getattr(resumed, name), getattr(acted, name), atol=1e-6, rtol=0)
    assert set(resumed_grads) == set(full_grads)
    for name, grad_full in full_grads.items():
        torch.testing.assert_close(resumed_grads[name], grad_full, atol=1e-5, rtol=1e-4)
    if h_module == "multicell":  # the first cycle's choice trains the learned initial CLS
        assert full_grads["H_update.initial_cells"][:, 0].abs().sum() > 0
        assert "H_update.W_r" in resumed_grads
    # one_step skips all but the last L step and the last H update
    L_calls = []
    hook = model.L_net.register_forward_hook(lambda *_: L_calls.append(1))
    model(tokens, carry, candidates, selections=acted.selections, resume=acted.resume)
    hook.remove()
    expected = {
        "one_step": 1,
        "last_cycle": model.config.T,
        "full": model.config.N * model.config.T,
    }
    assert len(L_calls) == expected[grad]


def test_resuming_a_multicell_segment_needs_its_selections():
    model = make_model(h_module="multicell")
    tokens, carry, candidates = _tok_carry(model)
    with torch.no_grad():
        acted = model(tokens, carry, candidates, keep_resume=True)
    assert model(tokens, carry, candidates).resume is None  # only stored when asked for
    with pytest.raises(ValueError, match="stored selections"):
        model(tokens, carry, candidates, resume=acted.resume)


def test_sampled_selections_vary_and_deterministic_mode_is_top_k():
    model = make_model(h_module="multicell", num_cells=6, top_k=2)
    tokens, carry, candidates = _tok_carry(model)
    with torch.no_grad():
        draws = {
            tuple(
                model(tokens, carry, candidates, generator=torch.Generator().manual_seed(s))
                .selections.flatten()
                .tolist()
            )
            for s in range(6)
        }
        greedy = model(tokens, carry, candidates, deterministic=True)
    assert len(draws) > 1
    first_scores = greedy.selection_scores[:, 0]
    assert torch.equal(greedy.selections[:, 0], first_scores.topk(2, dim=1).indices)


@pytest.mark.parametrize("h_module", ["hrm", "bicross", "multicell"])
def test_returned_carry_never_requires_grad(h_module):
    model = make_model(h_module=h_module, grad="full")
    out = model(*_tok_carry(model))
    assert out.move_logits.requires_grad
    assert all(not value.requires_grad for value in out.carry.values())


def test_candidates_input_changes_the_output_and_can_be_turned_off():
    model = make_model()
    tokens, carry, candidates = _tok_carry(model)
    with torch.no_grad():
        a = model(tokens, carry, candidates, deterministic=True).move_logits
        b = model(tokens, carry, ~candidates, deterministic=True).move_logits
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="candidates"):
        model(tokens, carry, None)
    plain = make_model(candidates=False)
    assert plain(tokens, plain.initial_carry(5)).move_logits.shape == (5, L * V)


def test_the_set_law_scores_a_choice_whatever_its_order():
    tokens, candidates = inputs()
    model = make_model(h_module="multicell", num_cells=4, top_k=2, selection_law="set")
    carry = model.initial_carry(5)
    with torch.no_grad():
        acted = model(tokens, carry, candidates, generator=torch.Generator().manual_seed(0))
        flipped = model(tokens, carry, candidates, selections=acted.selections.flip(-1))
        ordered = make_model(h_module="multicell", num_cells=4, top_k=2)
        as_tuple = ordered(tokens, carry, candidates, selections=acted.selections)
        other_order = ordered(tokens, carry, candidates, selections=acted.selections.flip(-1))
    torch.testing.assert_close(flipped.selection_log_prob, acted.selection_log_prob)
    torch.testing.assert_close(flipped.move_logits, acted.move_logits)  # order is not read
    # per cycle, the set's probability is the sum of its two orders' probabilities
    both = torch.logaddexp(as_tuple.selection_log_probs, other_order.selection_log_probs)
    torch.testing.assert_close(acted.selection_log_probs, both)
    assert acted.selection_entropy.max() <= 3 * math.log(math.comb(4, 2)) + 1e-5


def test_ablation_choices_are_top_k_or_uniform_and_no_policy_action():
    tokens, candidates = inputs(batch=64)
    topk = make_model(h_module="multicell", num_cells=4, top_k=2, cell_choice="topk")
    carry = topk.initial_carry(64)
    out = topk(tokens, carry, candidates, generator=torch.Generator().manual_seed(0))
    greedy = topk(tokens, carry, candidates, deterministic=True)
    assert torch.equal(out.selections, greedy.selections)  # never sampled
    assert torch.equal(out.selection_log_probs, torch.zeros(64, 3))
    assert torch.equal(out.selection_entropy, torch.zeros(64))

    uniform = make_model(h_module="multicell", num_cells=4, top_k=2, cell_choice="uniform")
    with torch.no_grad():
        uniform.H_update.W_r.mul_(1000.0)  # scores that a policy would follow
    out = uniform(tokens, carry, candidates, generator=torch.Generator().manual_seed(0))
    usage = torch.bincount(out.selections.reshape(-1), minlength=4).float() / out.selections.numel()
    assert (usage - 0.25).abs().max() < 0.08  # 384 picks, uniform over the 4 cells
    assert torch.equal(out.selection_log_probs, torch.zeros(64, 3))
    (out.move_logits.logsumexp(dim=1).sum()).backward()
    assert uniform.H_update.W_r.grad.abs().sum() > 0  # the scores still learn, through α
    with pytest.raises(ValueError, match="cell_choice"):
        HRMConfig(num_positions=L, num_values=V, cell_choice="random")


def test_output_shapes():
    model = make_model(h_module="multicell", num_cells=4, top_k=2)
    out = model(*_tok_carry(model))
    assert out.move_logits.shape == (5, L * V)
    assert out.grid_logits.shape == (5, L, V)
    assert out.value.shape == (5,)
    assert out.selections.shape == (5, 3, 2)
    assert out.selection_log_probs.shape == (5, 3)
    assert out.cell_usage.sum() == 5 * 3 * 2
    assert set(out.aux_losses) == {"diverse", "balance", "selfsup"}


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="h_module"):
        HRMConfig(num_positions=L, num_values=V, h_module="lstm")
    with pytest.raises(ValueError, match="grad"):
        HRMConfig(num_positions=L, num_values=V, grad="two_step")
    with pytest.raises(ValueError, match="top_k"):
        HRMConfig(num_positions=L, num_values=V, num_cells=3, top_k=3, always_active_first=True)
    with pytest.raises(ValueError, match="attention"):
        HRMConfig(num_positions=L, num_values=V, attention="sparse")
    with pytest.raises(ValueError, match="selection_law"):
        HRMConfig(num_positions=L, num_values=V, selection_law="bag")
    with pytest.raises(ValueError, match="grid"):
        make_model(pos_encoding="rope2d")  # a family without a grid
    with pytest.raises(ValueError, match="grid"):
        make_model(pos_encoding="rope2d", grid_shape=(3, 5))  # 15 positions, not 16
    with pytest.raises(ValueError, match="constraint graph"):
        make_model(attention="graph", graph=torch.ones(1, 9, 9, dtype=torch.bool))


# --- graph attention and 2-D positions ---------------------------------------------------------


@pytest.mark.parametrize("h_module", ["hrm", "multicell"])
def test_graph_attention_without_a_graph_is_full_attention(h_module):
    tokens, candidates = inputs()
    outputs = []
    for attention in ("full", "graph"):
        model = make_model(h_module=h_module, attention=attention)
        assert model.L_net.blocks[0].attn.masks is None  # nothing to restrict: no masked SDPA
        out = model(tokens, model.initial_carry(5), candidates, deterministic=True)
        outputs.append(out.move_logits)
    assert torch.allclose(*outputs, atol=1e-6)


@pytest.mark.parametrize("grad", ["one_step", "last_cycle", "full"])
@pytest.mark.parametrize("h_module", ["hrm", "bicross", "multicell"])
def test_sudoku_graph_and_rope2d_change_the_function_and_train(grad, h_module):
    rules = SudokuRules(2, 2)
    tokens, candidates = inputs()
    full = make_model(h_module=h_module, grad=grad)
    model = make_model(
        h_module=h_module,
        grad=grad,
        attention="graph",
        pos_encoding="rope2d",
        graph=rules.constraint_graph(),
        grid_shape=rules.grid_shape,
    )
    assert model.L_net.blocks[0].attn.masks is not None
    carry = model.initial_carry(5)
    out = model(tokens, carry, candidates, deterministic=True)
    reference = full(tokens, carry, candidates, deterministic=True)
    assert not torch.allclose(out.move_logits, reference.move_logits, atol=1e-4)
    (out.move_logits.logsumexp(dim=1) + out.value + out.selection_log_prob).sum().backward()
    grads = [p.grad for p in model.L_net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("grad", ["one_step", "last_cycle"])
@pytest.mark.parametrize("h_module", ["hrm", "bicross", "multicell"])
def test_graph_attention_on_cuda_matches_cpu_and_trains_under_bf16(grad, h_module):
    rules = SudokuRules(2, 2)
    tokens, candidates = inputs()
    model = make_model(
        h_module=h_module,
        grad=grad,
        attention="graph",
        pos_encoding="rope2d",
        graph=rules.constraint_graph(),
        grid_shape=rules.grid_shape,
    )
    expected = model(tokens, model.initial_carry(5), candidates, deterministic=True)

    model = model.cuda()
    tokens, candidates = tokens.cuda(), candidates.cuda()
    with torch.no_grad():
        out = model(tokens, model.initial_carry(5), candidates, deterministic=True)
    assert torch.allclose(out.move_logits.cpu(), expected.move_logits, atol=1e-3)
    if expected.selections is not None:  # the same cells chosen
        assert torch.equal(out.selections.cpu(), expected.selections)

    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        out = model(tokens, model.initial_carry(5), candidates)
    loss = out.move_logits.float().logsumexp(dim=1) + out.value.float() + out.selection_log_prob
    loss.sum().backward()
    grads = [p.grad for p in model.L_net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


# --- size and precision ----------------------------------------------------------------------


def test_num_parameters_counts_memory_cells_and_embeddings():
    model = make_model(h_module="multicell", num_cells=4, cell_tokens=8)
    total = model.num_parameters()
    assert total == sum(p.numel() for p in model.parameters())
    cells = model.H_update.initial_cells.numel()
    assert cells == 4 * 9 * 32
    model.H_update.initial_cells.requires_grad_(False)
    assert model.num_parameters() == total - cells
    assert model.tok_emb.weight.numel() + model.task_emb.numel() <= total


def test_hrm_size_matches_the_published_count_without_puzzle_embeddings():
    """HRM's Sudoku model has 27,275,266 parameters (notes/hrm-trm.md §8): 8 blocks, token
    embedding, lm head and q head. Ours differs only by stated parts: candidates embedding,
    one task token, the extra grid head, and a value head plus a 1-output halting head instead
    of the 2-way q head."""
    config = HRMConfig(
        num_positions=81,
        num_values=9,
        d_model=512,
        num_heads=8,
        L_layers=4,
        H_layers=4,
        h_module="hrm",
        multiple_of=256,
        prefix_tokens=1,
    )
    model = HRM(config)
    d = 512
    blocks = 8 * 3_407_872
    expected = (
        blocks
        + 10 * d  # token embedding (0..9)
        + 9 * d  # candidates embedding
        + d  # one task-embedding token
        + 2 * (d * 9 + 9)  # move head and grid head
        + (d + 1)  # value head
        + (d + 1)  # halting head (HRM's q head has 2 outputs, ours 1)
    )
    assert model.num_parameters() == expected


def test_bf16_autocast_forward_backward_is_finite():
    model = make_model(h_module="multicell", grad="last_cycle")
    tokens, carry, candidates = _tok_carry(model)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(tokens, carry, candidates)
        loss = out.move_logits.float().logsumexp(1).mean() + out.value.float().pow(2).mean()
        loss = loss - out.selection_log_prob.mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_candidate_counts_count_the_related_positions_that_allow_each_value():
    rules = SudokuRules(2, 2)
    board = torch.zeros(1, L, dtype=torch.long)
    board[0, [9, 14, 7]] = 1  # 1 at (2,1), (3,2), (1,3): in row 0, only (0,0) may still hold a 1
    legal = rules.legal_mask(board)  # [1, L, V]
    model = make_model(graph=rules.constraint_graph(), candidate_counts=True)
    features = model.candidate_counts(legal).view(1, L, 3, V)  # relations: row, column, box
    graph = rules.constraint_graph()
    for i in range(L):
        for r in range(3):
            others = [j for j in range(L) if j != i and graph[r, i, j]]
            for v in range(V):
                c = sum(bool(legal[0, j, v]) for j in others)
                assert features[0, i, r, v].item() == pytest.approx(c / (c + 1)), (i, r, v)
    # the hidden single: no other position of row 0 allows a 1
    assert legal[0, 0, 0] and features[0, 0, 0, 0] == 0


def test_candidate_counts_change_the_output_train_and_need_the_candidates():
    rules = SudokuRules(2, 2)
    tokens, candidates = inputs()
    model = make_model(graph=rules.constraint_graph(), candidate_counts=True)
    carry = model.initial_carry(5)
    with torch.no_grad():
        weight = model.count_emb.weight.clone()
        model.count_emb.weight.zero_()  # the counts switched off, all else the same
        without = model(tokens, carry, candidates, deterministic=True).move_logits
        model.count_emb.weight.copy_(weight)
    out = model(tokens, carry, candidates, deterministic=True)
    assert not torch.allclose(out.move_logits, without, atol=1e-4)
    out.move_logits.logsumexp(dim=1).sum().backward()
    assert model.count_emb.weight.grad.abs().sum() > 0
    no_graph = make_model(candidate_counts=True)  # a family without a graph: all pairs, R = 1
    assert no_graph.count_emb.in_features == V
    with pytest.raises(ValueError, match="candidate_counts needs model.candidates"):
        make_model(candidate_counts=True, candidates=False)


@pytest.mark.parametrize("options", [{"attention": "graph"}, {"candidate_counts": True}])
def test_a_graph_of_the_wrong_board_size_is_refused(options):
    wrong = SudokuRules(3, 3).constraint_graph()  # 81 positions, the model plays 16
    with pytest.raises(ValueError, match=r"constraint graph must be bool\[R, 16, 16\]"):
        make_model(graph=wrong, **options)


def test_move_features_score_every_value_by_the_same_rule_and_train():
    rules = SudokuRules(2, 2)
    board = torch.zeros(1, L, dtype=torch.long)
    board[0, [9, 14, 7]] = 1  # as above: (0,0) is row 0's hidden single for the value 1
    legal = rules.legal_mask(board)
    model = make_model(graph=rules.constraint_graph(), move_features=True, h_module="bicross")
    scores = model.move_scores(legal).view(1, L, V)
    # relabelling the values relabels the scores: one MLP serves every value
    order = torch.tensor([2, 0, 3, 1])
    relabelled = model.move_scores(legal[..., order]).view(1, L, V)
    torch.testing.assert_close(relabelled, scores[..., order])
    # the scores are part of the move logits, and they learn
    tokens = board
    carry = model.initial_carry(1)
    with torch.no_grad():
        without = model(tokens, carry, legal, deterministic=True).move_logits
        model.move_mlp[2].bias.add_(1.0)  # a shift of every move's feature score by 1
        shifted = model(tokens, carry, legal, deterministic=True).move_logits
    torch.testing.assert_close(shifted, without + 1.0)
    out = model(tokens, carry, legal, deterministic=True)
    out.move_logits[0, 0].backward()  # (0,0) = 1, the hidden single
    assert model.move_mlp[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="move_features needs model.candidates"):
        make_model(move_features=True, candidates=False)


def test_a_hidden_single_scores_alike_whichever_relation_makes_it_and_whatever_the_others_count():
    # 4x4, position 0 allows the values 1 and 2. Its row is 1-3, its column 4, 8, 12, its box
    # 1, 4, 5. The MLP reads the least count over the relations: a hidden single is one number
    # (0) to it, whatever the other relations count, so one rule learned covers all of them.
    model = make_model(graph=SudokuRules(2, 2).constraint_graph(), move_features=True)
    with torch.no_grad():  # weights far from their near-zero start, so that scores differ
        for parameter in model.move_mlp.parameters():
            parameter.normal_(generator=torch.Generator().manual_seed(2))

    def score_of_placing_1_at_0(*others_allowing_1: int) -> float:
        candidates = torch.zeros(1, L, V, dtype=torch.bool)
        candidates[0, 0, :2] = True
        candidates[0, list(others_allowing_1), 0] = True
        return float(model.move_scores(candidates)[0, 0])

    of_the_row = score_of_placing_1_at_0(4, 8, 12, 5)  # counts: row 0, column 3, box 2
    of_the_box = score_of_placing_1_at_0(8, 12, 2, 3)  # counts: row 2, column 2, box 0
    of_the_column = score_of_placing_1_at_0(1, 2, 3, 5)  # counts: row 3, column 0, box 2
    assert of_the_row == pytest.approx(of_the_box) == pytest.approx(of_the_column)
    not_a_single = score_of_placing_1_at_0(4, 8, 12, 1, 2, 3)  # counts: row 3, column 3, box 2
    assert not_a_single != pytest.approx(of_the_row, abs=1e-3)


def test_move_scores_looked_up_per_distinct_input_equal_the_mlp_on_every_move():
    model = make_model(graph=SudokuRules(2, 2).constraint_graph(), move_features=True)
    _, candidates = inputs(40)  # 40·64 moves: more than the 512 distinct inputs of 4x4
    candidates[0] = True  # every count at its largest (3 others per relation)
    candidates[1, :3] = False  # positions with no legal value (share 1/1, as one legal value)
    scores = model.move_scores(candidates)
    direct = model._scored_moves(candidates, model.related_counts(candidates))
    torch.testing.assert_close(scores, direct)
    weights = torch.randn(scores.shape, generator=torch.Generator().manual_seed(1))
    grads = [
        torch.autograd.grad((s * weights).sum(), model.move_mlp.parameters())
        for s in (
            model.move_scores(candidates),
            model._scored_moves(candidates, model.related_counts(candidates)),
        )
    ]
    for looked_up, computed in zip(*grads, strict=True):
        torch.testing.assert_close(looked_up, computed)


def test_move_features_start_near_zero_so_the_first_policy_stays_near_uniform():
    model = make_model(graph=SudokuRules(2, 2).constraint_graph(), move_features=True)
    tokens, candidates = inputs()
    scores = model.move_scores(candidates)
    assert scores.shape == (5, L * V)
    assert scores.abs().max() < 0.05
