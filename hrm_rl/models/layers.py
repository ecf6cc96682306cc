"""Transformer layers of the HRM reference architecture, in plain PyTorch.

The blocks follow sapientinc/HRM (`models/layers.py`, `models/hrm/hrm_act_v1.py`):

    Block(x):              x = RMSNorm(x + Attn(x));  x = RMSNorm(x + SwiGLU(x))      (post-norm)
    ReasoningModule(h, u): Block_L(... Block_1(h + u))                    (input injection by sum)

Attention is bidirectional multi-head attention through `F.scaled_dot_product_attention`, so the
same code runs on CPU, CUDA and MPS without flash-attn. Norms and rotary embeddings are computed in
float32 and cast back, which keeps them accurate under `torch.autocast(dtype=torch.bfloat16)`.
Every linear layer has no bias and a truncated LeCun normal initialisation (std 1/sqrt(fan_in)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "trunc_normal_init_",
    "RMSNorm",
    "RotaryEmbedding",
    "HeadMasks",
    "LearnedPositions",
    "SelfAttention",
    "CrossAttention",
    "SwiGLU",
    "Block",
    "ReasoningModule",
]


def trunc_normal_init_(
    tensor: torch.Tensor,
    std: float = 1.0,
    lower: float = -2.0,
    upper: float = 2.0,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill `tensor` in place from a normal truncated to [lower, upper] standard deviations.

    Truncation shrinks the spread, so the underlying normal is widened by the factor that makes
    the standard deviation of the *truncated* samples equal `std` (the JAX convention HRM uses).
    For a standard normal cut to [a, b] with Z = Φ(b) - Φ(a), the variance is
    1 + (a φ(a) - b φ(b)) / Z - ((φ(a) - φ(b)) / Z)².
    """
    if not lower < upper:
        raise ValueError(f"trunc_normal_init_: need lower < upper, got [{lower}, {upper}]")
    if std < 0:
        raise ValueError(f"trunc_normal_init_: std must be >= 0, got {std}")
    if std == 0:
        with torch.no_grad():
            return tensor.zero_()

    def pdf(t: float) -> float:
        return math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)

    def cdf(t: float) -> float:
        return 0.5 * (1 + math.erf(t / math.sqrt(2)))

    mass = cdf(upper) - cdf(lower)
    variance = (
        1
        + (lower * pdf(lower) - upper * pdf(upper)) / mass
        - ((pdf(lower) - pdf(upper)) / mass) ** 2
    )
    sigma = std / math.sqrt(variance)  # std of the normal before truncation
    return nn.init.trunc_normal_(
        tensor, mean=0.0, std=sigma, a=lower * sigma, b=upper * sigma, generator=generator
    )


def _linear(d_in: int, d_out: int) -> nn.Linear:
    """A bias-free linear layer with HRM's truncated LeCun normal weights (std 1/sqrt(d_in))."""
    layer = nn.Linear(d_in, d_out, bias=False)
    trunc_normal_init_(layer.weight, std=1.0 / math.sqrt(d_in))
    return layer


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, S, d] -> [B, H, S, hd]."""
    B, S, d = x.shape
    return x.view(B, S, num_heads, d // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, S, hd] -> [B, S, d]."""
    B, H, S, hd = x.shape
    return x.transpose(1, 2).reshape(B, S, H * hd)


def _check_heads(d: int, num_heads: int, where: str) -> None:
    if d < 1 or num_heads < 1:
        raise ValueError(
            f"{where}: d and num_heads must be positive, got d={d}, num_heads={num_heads}"
        )
    if d % num_heads:
        raise ValueError(f"{where}: d={d} is not divisible by num_heads={num_heads}")


class RMSNorm(nn.Module):
    """Root-mean-square norm x / sqrt(mean(x²) + eps), computed in float32 over the last axis.

    HRM's norm has no parameters; `learnable=True` adds a per-channel scale initialised to one.
    """

    def __init__(self, d: int, eps: float = 1e-5, learnable: bool = False) -> None:
        super().__init__()
        if d < 1:
            raise ValueError(f"RMSNorm: d must be positive, got {d}")
        self.d = d
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d)) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()  # [..., d]
        y = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        if self.weight is not None:
            y = y * self.weight.float()
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.d}, eps={self.eps}, learnable={self.weight is not None}"


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) of queries and keys.

    Each token has a position on A axes (A = 1: its index in the sequence; A = 2: its row and
    column on a grid). The head dimension is split into A equal parts, one per axis; in each part
    pair i is rotated by the angle p_a · base^(-2i/part), so the dot product of a rotated query and
    key depends on their positions only through the offset between them, axis by axis.
    """

    def __init__(
        self,
        head_dim: int,
        max_positions: int | None = None,
        base: float = 10000.0,
        *,
        positions: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if (max_positions is None) == (positions is None):
            raise ValueError("RotaryEmbedding: give either max_positions or positions")
        if positions is None:
            if max_positions < 1:
                raise ValueError(
                    f"RotaryEmbedding: max_positions must be >= 1, got {max_positions}"
                )
            positions = torch.arange(max_positions).unsqueeze(1)  # [P, 1]
        axes = positions.shape[1]
        if head_dim < 2 * axes or head_dim % (2 * axes):
            raise ValueError(
                f"RotaryEmbedding: head_dim must be even, and a multiple of {2 * axes} for "
                f"{axes} axes, got {head_dim}"
            )
        self.head_dim = head_dim
        self.axes = axes
        self.max_positions = positions.shape[0]
        self.base = base
        part = head_dim // axes
        inv_freq = base ** (-torch.arange(0, part, 2, dtype=torch.float32) / part)
        angles = [torch.outer(positions[:, a].float(), inv_freq) for a in range(axes)]
        angles = torch.cat([torch.cat([ang, ang], dim=-1) for ang in angles], dim=-1)  # [P, hd]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        # x @ swap = rotate_half(x) in each axis's part: (x0, x1) -> (-x1, x0) on its halves
        half = part // 2
        swap = torch.zeros(head_dim, head_dim)
        for start in range(0, head_dim, part):
            low = torch.arange(start, start + half)
            swap[low + half, low] = -1.0
            swap[low, low + half] = 1.0
        self.register_buffer("swap", swap, persistent=False)

    @classmethod
    def grid(
        cls, head_dim: int, grid_shape: tuple[int, int], prefix: int, base: float = 10000.0
    ) -> RotaryEmbedding:
        """2-D RoPE for ``prefix`` tokens followed by a ``rows × cols`` grid read row by row:
        grid position p sits at (row p // cols + 1, column p % cols + 1), prefix tokens at
        (0, 0)."""
        rows, cols = grid_shape
        cells = torch.arange(rows * cols)
        grid = torch.stack([cells // cols + 1, cells % cols + 1], dim=1)
        positions = torch.cat([torch.zeros(prefix, 2, dtype=torch.long), grid])  # [P+L, 2]
        return cls(head_dim, base=base, positions=positions)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        S = q.shape[-2]  # q, k: [B, H, S, hd]
        if k.shape[-2] != S:
            raise ValueError(f"RotaryEmbedding: q has {S} positions but k has {k.shape[-2]}")
        if S > self.max_positions:
            raise ValueError(
                f"RotaryEmbedding: sequence of {S} positions exceeds max_positions="
                f"{self.max_positions}; build the RotaryEmbedding with a larger max_positions"
            )
        if q.shape[-1] != self.head_dim or k.shape[-1] != self.head_dim:
            raise ValueError(
                f"RotaryEmbedding: expected head_dim {self.head_dim}, got q {q.shape[-1]}, "
                f"k {k.shape[-1]}"
            )
        # one [hd, hd] matrix per position: x_s @ turn[s] = x_s · cos_s + rotate_half(x_s) · sin_s
        # (one batched matmul, forward and backward about 2.5x faster than slicing the halves)
        cos, sin = self.cos[:S].float(), self.sin[:S].float()  # float32 even in a bf16-cast model
        turn = torch.diag_embed(cos) + self.swap.float() * sin.unsqueeze(1)
        return self._rotate(q, turn), self._rotate(k, turn)

    @staticmethod
    def _rotate(x: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # angles in float32, even under bf16
            return torch.einsum("...sd,sde->...se", x.float(), turn).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"head_dim={self.head_dim}, axes={self.axes}, max_positions={self.max_positions}, "
            f"base={self.base}"
        )


class HeadMasks(nn.Module):
    """Which tokens each attention head may attend to: ``bool[H, S, S]`` (query, key).

    Built from a constraint graph ``bool[R, L, L]`` (R kinds of relation between the L board
    positions): with one relation every head follows it; with R > 1 head 0 follows their union
    and heads 1..R one relation each (then round again; with fewer than R + 1 heads every head
    follows the union). The P prefix tokens see and are seen by every token, and every token sees
    itself.
    """

    def __init__(self, graph: torch.Tensor, num_heads: int, prefix: int) -> None:
        super().__init__()
        if graph.dim() != 3 or graph.shape[1] != graph.shape[2]:
            raise ValueError(f"HeadMasks: graph must be bool[R, L, L], got {tuple(graph.shape)}")
        graph = graph.bool().cpu()
        kinds = [graph[0]] if graph.shape[0] == 1 else [graph.any(dim=0), *graph]
        if num_heads < len(kinds):  # too few heads for one per relation: all follow the union
            kinds = [graph.any(dim=0)]
        L = graph.shape[1]
        S = prefix + L
        masks = torch.ones(num_heads, S, S, dtype=torch.bool)
        for h in range(num_heads):
            masks[h, prefix:, prefix:] = kinds[h % len(kinds)] | torch.eye(L, dtype=torch.bool)
        self.register_buffer("mask", masks, persistent=False)
        # the same mask as an additive bias [1, H, S, S] (0 or −inf): on the CPU, SDPA runs a
        # 4-D float mask through its fused kernel, a 3-D boolean one through the slow math path
        # (about 3x slower on 9x9 Sudoku; `python -m hrm_rl.bench model` shows the cost)
        bias = torch.zeros(1, num_heads, S, S).masked_fill(~masks, float("-inf"))
        self.register_buffer("bias", bias, persistent=False)
        self._cast: torch.Tensor | None = None  # the bias in the last other dtype asked for

    def forward(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The additive attention bias ``[1, H, S, S]`` in ``dtype`` (the queries' dtype); a cast
        (bf16 under autocast) is made once, not in every attention call."""
        if dtype == self.bias.dtype:
            return self.bias
        cast = self._cast
        if cast is None or cast.dtype != dtype or cast.device != self.bias.device:
            self._cast = cast = self.bias.to(dtype)
        return cast

    def extra_repr(self) -> str:
        H, S, _ = self.mask.shape
        return f"heads={H}, tokens={S}, density={self.mask.float().mean().item():.3f}"


class LearnedPositions(nn.Module):
    """A learned vector per position added to the input: x + pos[:S]."""

    def __init__(self, max_positions: int, d: int) -> None:
        super().__init__()
        if max_positions < 1 or d < 1:
            raise ValueError(
                f"LearnedPositions: max_positions and d must be positive, got {max_positions}, {d}"
            )
        self.max_positions = max_positions
        self.pos = nn.Parameter(trunc_normal_init_(torch.empty(max_positions, d), std=d**-0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S = x.shape[-2]  # x: [B, S, d]
        if S > self.max_positions:
            raise ValueError(
                f"LearnedPositions: sequence of {S} positions exceeds max_positions="
                f"{self.max_positions}"
            )
        return x + self.pos[:S].to(x.dtype)


class SelfAttention(nn.Module):
    """Bidirectional multi-head self-attention softmax(QKᵀ/√hd)V with optional RoPE on Q and K,
    and optionally restricted per head by :class:`HeadMasks` (graph attention)."""

    def __init__(
        self,
        d: int,
        num_heads: int,
        rope: RotaryEmbedding | None = None,
        masks: HeadMasks | None = None,
    ) -> None:
        super().__init__()
        _check_heads(d, num_heads, "SelfAttention")
        if rope is not None and rope.head_dim != d // num_heads:
            raise ValueError(
                f"SelfAttention: rope.head_dim={rope.head_dim} but d/num_heads={d // num_heads}"
            )
        self.num_heads = num_heads
        self.qkv = _linear(d, 3 * d)  # fused [W_Q; W_K; W_V]
        self.out = _linear(d, d)  # W_O
        self.rope = rope
        if masks is not None and masks.mask.shape[0] != num_heads:
            raise ValueError(
                f"SelfAttention: {masks.mask.shape[0]} head masks for {num_heads} heads"
            )
        self.masks = masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 × [B, S, d]
        q, k, v = (_split_heads(t, self.num_heads) for t in (q, k, v))  # [B, H, S, hd]
        if self.rope is not None:
            q, k = self.rope(q, k)
        bias = None if self.masks is None else self.masks(q.dtype)  # [1, H, S, S]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # [B, H, S, hd]
        return self.out(_merge_heads(y))  # [B, S, d]


class CrossAttention(nn.Module):
    """Multi-head attention of queries over a separate key/value sequence, without RoPE."""

    def __init__(self, d: int, num_heads: int) -> None:
        super().__init__()
        _check_heads(d, num_heads, "CrossAttention")
        self.num_heads = num_heads
        self.q = _linear(d, d)  # W_Q
        self.kv = _linear(d, 2 * d)  # fused [W_K; W_V]
        self.out = _linear(d, d)  # W_O

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor) -> torch.Tensor:
        q = _split_heads(self.q(queries), self.num_heads)  # [B, H, Sq, hd]
        k, v = self.kv(keys_values).chunk(2, dim=-1)  # 2 × [B, Sk, d]
        k, v = _split_heads(k, self.num_heads), _split_heads(v, self.num_heads)  # [B, H, Sk, hd]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # [B, H, Sq, hd]
        return self.out(_merge_heads(y))  # [B, Sq, d]


class SwiGLU(nn.Module):
    """Gated feed-forward W_down(SiLU(x W_gate) ⊙ x W_up).

    The hidden width is round(expansion · d · 2/3) rounded up to a multiple of `multiple_of`
    (the 2/3 keeps the parameter count of a plain MLP of width expansion · d; HRM: 512 -> 1536).
    """

    def __init__(self, d: int, expansion: float = 4.0, multiple_of: int = 64) -> None:
        super().__init__()
        if d < 1 or expansion <= 0 or multiple_of < 1:
            raise ValueError(
                f"SwiGLU: need d >= 1, expansion > 0, multiple_of >= 1; got d={d}, "
                f"expansion={expansion}, multiple_of={multiple_of}"
            )
        hidden = round(expansion * d * 2 / 3)
        self.hidden = -(-hidden // multiple_of) * multiple_of  # ceil to a multiple
        self.gate_up = _linear(d, 2 * self.hidden)  # fused [W_gate; W_up]
        self.down = _linear(self.hidden, d)  # W_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # 2 × [B, S, hidden]
        return self.down(F.silu(gate) * up)  # [B, S, d]


class Block(nn.Module):
    """Post-norm transformer block: x = norm(x + Attn(x)); x = norm(x + SwiGLU(x))."""

    def __init__(
        self,
        d: int,
        num_heads: int,
        expansion: float = 4.0,
        rope: RotaryEmbedding | None = None,
        multiple_of: int = 64,
        masks: HeadMasks | None = None,
    ) -> None:
        super().__init__()
        self.attn = SelfAttention(d, num_heads, rope, masks)
        self.attn_norm = RMSNorm(d)
        self.mlp = SwiGLU(d, expansion, multiple_of)
        self.mlp_norm = RMSNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn_norm(x + self.attn(x))  # [B, S, d]
        return self.mlp_norm(x + self.mlp(x))  # [B, S, d]


class ReasoningModule(nn.Module):
    """A stack of Blocks with input injection: blocks(hidden + injection).

    HRM's low level is called as L_net(z_L, z_H + x̃) and its high level as H_net(z_H, z_L).
    """

    def __init__(
        self,
        d: int,
        num_heads: int,
        num_layers: int,
        expansion: float = 4.0,
        rope: RotaryEmbedding | None = None,
        multiple_of: int = 64,
        masks: HeadMasks | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"ReasoningModule: num_layers must be >= 1, got {num_layers}")
        self.blocks = nn.ModuleList(
            Block(d, num_heads, expansion, rope, multiple_of, masks) for _ in range(num_layers)
        )

    def forward(self, hidden: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        x = hidden + injection  # [B, S, d]
        for block in self.blocks:
            x = block(x)
        return x  # [B, S, d]
