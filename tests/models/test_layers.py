"""HRM transformer layers agree with hand-written attention and keep HRM's sizes and precision."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hrm_rl.models.layers import (
    Block,
    CrossAttention,
    HeadMasks,
    LearnedPositions,
    ReasoningModule,
    RMSNorm,
    RotaryEmbedding,
    SelfAttention,
    SwiGLU,
    trunc_normal_init_,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def manual_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(QKᵀ/√hd)V over [B, H, S, hd] tensors, written out."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, H, Sq, Sk]
    return scores.softmax(dim=-1) @ v


def heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    B, S, d = x.shape
    return x.reshape(B, S, num_heads, d // num_heads).permute(0, 2, 1, 3)


def unheads(x: torch.Tensor) -> torch.Tensor:
    B, H, S, hd = x.shape
    return x.permute(0, 2, 1, 3).reshape(B, S, H * hd)


# --- initialisation ---------------------------------------------------------------------------


def test_trunc_normal_has_the_requested_std_after_truncation():
    for std in (1.0, 0.02):
        w = trunc_normal_init_(torch.empty(1000, 1000), std=std)
        assert abs(w.std().item() - std) < 0.05 * std
        # the untruncated normal is wider than `std`; samples stop at ±2 of its deviations
        assert w.abs().max().item() <= 2 * std / 0.87


def test_trunc_normal_is_reproducible_with_a_generator_and_zero_std_gives_zeros():
    a = trunc_normal_init_(torch.empty(64), generator=torch.Generator().manual_seed(3))
    b = trunc_normal_init_(torch.empty(64), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(trunc_normal_init_(torch.ones(5), std=0.0), torch.zeros(5))


def test_linear_weights_use_lecun_std():
    attn = SelfAttention(512, 8)
    assert abs(attn.qkv.weight.std().item() - 1 / math.sqrt(512)) < 0.05 / math.sqrt(512)
    mlp = SwiGLU(512, 4.0, multiple_of=256)
    assert abs(mlp.down.weight.std().item() - 1 / math.sqrt(1536)) < 0.05 / math.sqrt(1536)


# --- RMSNorm ----------------------------------------------------------------------------------


def test_rms_norm_gives_unit_rms_and_keeps_bf16():
    x = 3.0 * torch.randn(4, 7, 64) + 1.0
    y = RMSNorm(64)(x)
    assert torch.allclose(y.pow(2).mean(-1).sqrt(), torch.ones(4, 7), atol=1e-4)

    y16 = RMSNorm(64)(x.bfloat16())
    assert y16.dtype == torch.bfloat16
    assert torch.allclose(y16.float().pow(2).mean(-1).sqrt(), torch.ones(4, 7), atol=2e-2)


def test_rms_norm_of_bf16_is_computed_in_float32():
    x = (100.0 * torch.randn(8, 256)).bfloat16()
    assert torch.equal(RMSNorm(256)(x), RMSNorm(256)(x.float()).bfloat16())


def test_rms_norm_has_parameters_only_when_learnable():
    assert list(RMSNorm(32).parameters()) == []
    assert sum(p.numel() for p in RMSNorm(32, learnable=True).parameters()) == 32


# --- positions --------------------------------------------------------------------------------


def test_rope_preserves_norms_and_dtype():
    rope = RotaryEmbedding(head_dim=16, max_positions=32)
    q, k = torch.randn(2, 3, 32, 16), torch.randn(2, 3, 32, 16)
    rq, rk = rope(q, k)
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    assert torch.allclose(rk.norm(dim=-1), k.norm(dim=-1), atol=1e-5)
    assert not torch.allclose(rq, q)
    rq16, _ = rope(q.bfloat16(), k.bfloat16())
    assert rq16.dtype == torch.bfloat16


def test_rope_of_bf16_is_computed_in_float32():
    rope = RotaryEmbedding(head_dim=64, max_positions=512)
    q, k = torch.randn(1, 2, 512, 64).bfloat16(), torch.randn(1, 2, 512, 64).bfloat16()
    rq, rk = rope(q, k)
    rq32, rk32 = rope(q.float(), k.float())
    assert torch.equal(rq, rq32.bfloat16()) and torch.equal(rk, rk32.bfloat16())


def test_rope_dot_product_depends_only_on_relative_offset():
    S, hd = 24, 16
    rope = RotaryEmbedding(hd, max_positions=S)
    q = torch.randn(hd).expand(1, 1, S, hd)  # the same query at every position
    k = torch.randn(hd).expand(1, 1, S, hd)  # the same key at every position
    rq, rk = rope(q, k)
    dots = (rq @ rk.transpose(-2, -1))[0, 0]  # [S, S]: dots[m, n] = q_m · k_n
    for m, n, shift in [(0, 3, 5), (7, 2, 10), (4, 4, 19)]:
        assert torch.allclose(dots[m, n], dots[m + shift, n + shift], atol=1e-4)
    assert not torch.allclose(dots[0, 1], dots[0, 5], atol=1e-3)  # yet offsets do matter


def test_rope2d_dot_product_depends_only_on_row_and_column_offsets():
    rows, cols, hd = 5, 7, 16
    rope = RotaryEmbedding.grid(hd, (rows, cols), prefix=1)
    S = 1 + rows * cols
    q = torch.randn(hd).expand(1, 1, S, hd)
    k = torch.randn(hd).expand(1, 1, S, hd)
    rq, rk = rope(q, k)
    dots = (rq @ rk.transpose(-2, -1))[0, 0]  # [S, S]

    def at(r: int, c: int) -> int:
        return 1 + r * cols + c

    # the same (row, column) offset gives the same score anywhere on the grid
    assert torch.allclose(dots[at(0, 0), at(1, 2)], dots[at(3, 4), at(4, 6)], atol=1e-4)
    assert torch.allclose(dots[at(2, 6), at(2, 1)], dots[at(4, 5), at(4, 0)], atol=1e-4)
    # positions next to each other in reading order but on different rows are not "offset 1"
    assert not torch.allclose(dots[at(0, 6), at(1, 0)], dots[at(0, 0), at(0, 1)], atol=1e-3)
    assert torch.allclose(rq[0, 0, 0], q[0, 0, 0])  # the prefix token sits at (0, 0): unrotated


def test_rope2d_needs_head_dim_divisible_by_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        RotaryEmbedding.grid(6, (3, 3), prefix=0)


def test_head_masks_give_union_then_one_relation_per_head_and_open_prefix():
    L = 4
    first = torch.zeros(L, L, dtype=torch.bool)
    first[0, 1] = first[1, 0] = True
    second = torch.zeros(L, L, dtype=torch.bool)
    second[2, 3] = second[3, 2] = True
    mask = HeadMasks(torch.stack([first, second]), num_heads=4, prefix=1).mask  # [4, 5, 5]
    eye = torch.eye(L, dtype=torch.bool)
    assert torch.equal(mask[0, 1:, 1:], first | second | eye)
    assert torch.equal(mask[1, 1:, 1:], first | eye)
    assert torch.equal(mask[2, 1:, 1:], second | eye)
    assert torch.equal(mask[3, 1:, 1:], first | second | eye)  # round again: the union
    assert mask[:, 0].all() and mask[:, :, 0].all()  # the prefix token sees and is seen by all
    few = HeadMasks(torch.stack([first, second]), num_heads=2, prefix=0).mask
    assert torch.equal(few[0], first | second | eye) and torch.equal(few[1], few[0])


def test_graph_attention_only_mixes_related_positions():
    d, H, L = 16, 2, 6
    graph = torch.zeros(1, L, L, dtype=torch.bool)
    graph[0, 0, 1] = graph[0, 1, 0] = True  # 0 and 1 are related; nothing else is
    attn = SelfAttention(d, H, RotaryEmbedding(d // H, L), HeadMasks(graph, H, prefix=0))
    x = torch.randn(1, L, d)
    unrelated, related = x.clone(), x.clone()
    unrelated[0, 4] += 1.0
    related[0, 1] += 1.0
    assert torch.allclose(attn(x)[0, 0], attn(unrelated)[0, 0], atol=1e-6)
    assert not torch.allclose(attn(x)[0, 0], attn(related)[0, 0], atol=1e-4)
    with pytest.raises(ValueError, match="head masks"):
        SelfAttention(d, 4, None, HeadMasks(graph, H, prefix=0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_attention_bias_is_the_boolean_mask_added_as_zero_or_minus_infinity(dtype):
    graph = torch.rand(2, 7, 7) < 0.3
    masks = HeadMasks(graph | graph.transpose(1, 2), num_heads=4, prefix=2)
    bias = masks(dtype)
    assert bias.shape == (1, 4, 9, 9) and bias.dtype == dtype
    assert torch.equal(bias[0] == 0, masks.mask) and torch.isinf(bias[0][~masks.mask]).all()
    q, k, v = (torch.randn(3, 4, 9, 8, dtype=dtype) for _ in range(3))
    with_bias = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    with_mask = F.scaled_dot_product_attention(q, k, v, attn_mask=masks.mask)
    atol = 1e-2 if dtype == torch.bfloat16 else 1e-6  # fused and math kernels round apart
    torch.testing.assert_close(with_bias.float(), with_mask.float(), atol=atol, rtol=0)


def test_rope_rejects_odd_head_dim_and_too_long_sequences():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(head_dim=15, max_positions=8)
    rope = RotaryEmbedding(head_dim=8, max_positions=8)
    with pytest.raises(ValueError, match="max_positions"):
        rope(torch.randn(1, 1, 9, 8), torch.randn(1, 1, 9, 8))
    attn = SelfAttention(16, 2, rope)
    with pytest.raises(ValueError, match="max_positions"):
        attn(torch.randn(1, 9, 16))


def test_rope_cache_is_not_saved_in_the_state_dict():
    assert RotaryEmbedding(8, 16).state_dict() == {}


def test_learned_positions_add_one_vector_per_position():
    pos = LearnedPositions(max_positions=10, d=8)
    x = torch.zeros(2, 6, 8)
    assert torch.equal(pos(x), pos.pos[:6].expand(2, 6, 8))
    assert pos(x.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="max_positions"):
        pos(torch.zeros(1, 11, 8))


# --- attention --------------------------------------------------------------------------------


@pytest.mark.parametrize("use_rope", [False, True])
def test_self_attention_matches_manual_softmax(use_rope: bool):
    d, H, S = 32, 4, 10
    rope = RotaryEmbedding(d // H, max_positions=S) if use_rope else None
    attn = SelfAttention(d, H, rope)
    x = torch.randn(3, S, d)

    q, k, v = (x @ attn.qkv.weight.T).split(d, dim=-1)
    q, k, v = heads(q, H), heads(k, H), heads(v, H)
    if rope is not None:
        q, k = rope(q, k)
    expected = unheads(manual_attention(q, k, v)) @ attn.out.weight.T

    assert attn(x).shape == (3, S, d)
    assert torch.allclose(attn(x), expected, atol=1e-5)


def test_cross_attention_attends_from_sq_queries_over_sk_keys():
    d, H, Sq, Sk = 32, 4, 5, 11
    attn = CrossAttention(d, H)
    queries, keys_values = torch.randn(2, Sq, d), torch.randn(2, Sk, d)

    q = heads(queries @ attn.q.weight.T, H)
    k, v = (keys_values @ attn.kv.weight.T).split(d, dim=-1)
    expected = unheads(manual_attention(q, heads(k, H), heads(v, H))) @ attn.out.weight.T

    y = attn(queries, keys_values)
    assert y.shape == (2, Sq, d)
    assert torch.allclose(y, expected, atol=1e-5)


def test_self_attention_is_bidirectional():
    attn = SelfAttention(16, 2, RotaryEmbedding(8, 12))
    x = torch.randn(1, 12, 16)
    changed = x.clone()
    changed[0, -1] += 1.0  # only the last token differs
    assert not torch.allclose(attn(x)[0, 0], attn(changed)[0, 0])


def test_attention_rejects_bad_head_counts():
    with pytest.raises(ValueError, match="divisible"):
        SelfAttention(30, 4)
    with pytest.raises(ValueError, match="divisible"):
        CrossAttention(30, 4)
    with pytest.raises(ValueError, match="head_dim"):
        SelfAttention(32, 4, RotaryEmbedding(16, 8))


# --- feed-forward and blocks ------------------------------------------------------------------


def test_swiglu_hidden_width_rounds_up_like_hrm():
    mlp = SwiGLU(512, 4.0, multiple_of=256)
    assert mlp.hidden == 1536
    assert mlp.gate_up.weight.shape == (2 * 1536, 512)
    assert mlp.down.weight.shape == (512, 1536)
    assert SwiGLU(512).hidden == 1408  # 1365 rounded up to a multiple of 64
    assert SwiGLU(64, 2.0, multiple_of=1).hidden == 85


def test_swiglu_is_silu_gate_times_up():
    mlp = SwiGLU(16, 2.0, multiple_of=8)
    x = torch.randn(2, 3, 16)
    gate, up = (x @ mlp.gate_up.weight.T).split(mlp.hidden, dim=-1)
    assert torch.allclose(mlp(x), (F.silu(gate) * up) @ mlp.down.weight.T, atol=1e-6)


def test_block_has_hrm_parameter_count():
    block = Block(512, 8, expansion=4.0, multiple_of=256)
    assert sum(p.numel() for p in block.attn.parameters()) == 786_432 + 262_144
    assert sum(p.numel() for p in block.mlp.parameters()) == 2_359_296
    assert sum(p.numel() for p in block.parameters()) == 3_407_872
    rope_block = Block(512, 8, expansion=4.0, rope=RotaryEmbedding(64, 82), multiple_of=256)
    assert sum(p.numel() for p in rope_block.parameters()) == 3_407_872


def test_block_is_post_norm():
    block = Block(16, 2)
    x = 5.0 * torch.randn(2, 4, 16)
    after_attn = block.attn_norm(x + block.attn(x))
    expected = block.mlp_norm(after_attn + block.mlp(after_attn))
    y = block(x)
    assert torch.allclose(y, expected)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(2, 4), atol=1e-4)  # ends on a norm


def test_reasoning_module_runs_its_blocks_on_hidden_plus_injection():
    rope = RotaryEmbedding(8, 9)
    module = ReasoningModule(32, 4, num_layers=3, expansion=2.0, rope=rope)
    hidden, injection = torch.randn(2, 9, 32), torch.randn(2, 9, 32)

    x = hidden + injection
    for block in module.blocks:
        x = block(x)

    y = module(hidden, injection)
    assert y.shape == (2, 9, 32)
    assert len(module.blocks) == 3
    assert torch.allclose(y, x)
    assert not torch.allclose(y, module(hidden, torch.zeros_like(injection)))
    with pytest.raises(ValueError, match="num_layers"):
        ReasoningModule(32, 4, num_layers=0)


def test_bf16_autocast_forward_and_backward_give_finite_grads():
    module = ReasoningModule(64, 4, num_layers=2, rope=RotaryEmbedding(16, 12))
    hidden, injection = torch.randn(2, 12, 64), torch.randn(2, 12, 64, requires_grad=True)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = module(hidden, injection)
    y.float().pow(2).sum().backward()
    assert torch.isfinite(y.float()).all()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.dtype == torch.float32
    assert torch.isfinite(injection.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_trains_under_bf16_autocast():
    module = ReasoningModule(64, 4, num_layers=2, rope=RotaryEmbedding(16, 12))
    hidden, injection = torch.randn(2, 12, 64), torch.randn(2, 12, 64)
    expected = module(hidden, injection)

    module = module.cuda()
    with torch.no_grad():
        y = module(hidden.cuda(), injection.cuda())
    assert torch.allclose(y.cpu(), expected, atol=1e-3)

    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        y16 = module(hidden.cuda(), injection.cuda())
    y16.float().pow(2).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())
    assert torch.allclose(y16.float().cpu(), expected, atol=0.1)


@pytest.mark.parametrize("axes", [1, 2])
def test_rope_rotates_each_pair_by_its_angle_in_float32_under_autocast(axes):
    """Each axis's part of a head is split in halves (x0, x1), rotated to
    (x0·cos − x1·sin, x1·cos + x0·sin); under bf16 autocast the angles stay in float32."""
    hd, S = 16, 26
    if axes == 1:
        rope = RotaryEmbedding(hd, max_positions=S)
    else:
        rope = RotaryEmbedding.grid(hd, (5, 5), prefix=1)
    q, k = torch.randn(2, 3, S, hd), torch.randn(2, 3, S, hd)
    parts = q.unflatten(-1, (axes, 2, -1))  # [B, H, S, A, 2, hd/2A]
    x0, x1 = parts[..., 0, :], parts[..., 1, :]
    cos = rope.cos.unflatten(-1, (axes, 2, -1))[..., 0, :]  # [S, A, hd/2A]: one angle a pair
    sin = rope.sin.unflatten(-1, (axes, 2, -1))[..., 0, :]
    expected = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-2).flatten(-3)
    rq, _ = rope(q, k)
    torch.testing.assert_close(rq, expected, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rq_auto, _ = rope(q, k)
    assert rq_auto.dtype == torch.float32
    torch.testing.assert_close(rq_auto, expected, atol=1e-5, rtol=1e-5)
