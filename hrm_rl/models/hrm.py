"""The Hierarchical Reasoning Model with long-term memory cells (DESIGN §3).

One call is one *segment* (one env step): N cycles of T low-level steps,

    for n in 1..N:
        for t in 1..T:  z_L = L_net(z_L + z_H + x̂)
        z_H, M = H_update(z_H, M, z_L)          # every T steps
    y = f_O(z_H)  move logits        v = f_V(z_H)  value        q = f_halt(z_H)  halting logit

with the carry ``(z_H, z_L, M)`` detached between segments. Which applications carry gradient is
the gradient mode (``one_step``: the last L step and the last H update; ``last_cycle``: the last
cycle; ``full``: all). In the ``multicell`` H-module the k cells of every cycle are chosen by the
selection policy π_θ(A | ĥ, CLS) (:class:`~hrm_rl.models.selection.TopKSelection`); its scores
are computed with gradient at every cycle, from whatever the states are (detached in cycles the
gradient mode leaves out), so the selection policy learns at every cycle even under ``one_step``.

The model knows nothing of environments beyond shapes: token ids ``[B, L]`` (0..V) and, when
``candidates`` is on, a legal-value mask ``bool[B, L, V]`` in; logits, value and the new carry out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tensordict import TensorDict
from torch import nn

from hrm_rl.models.layers import (
    LearnedPositions,
    ReasoningModule,
    RotaryEmbedding,
    trunc_normal_init_,
)
from hrm_rl.models.memory import (
    HRMUpdate,
    MemoryUpdate,
    balance_loss,
    diversity_loss,
    selfsup_loss,
)
from hrm_rl.models.selection import TopKSelection

H_MODULES = ("hrm", "bicross", "multicell")
GRAD_MODES = ("one_step", "last_cycle", "full")
MEMORY_SCOPES = ("episode", "lifelong")
POSITION_ENCODINGS = ("rope", "learned")


@dataclass
class HRMConfig:
    """Every size and option of the model; the Hydra ``model/`` group fills it."""

    num_positions: int  # L
    num_values: int  # V: the board holds 0..V, moves place 1..V
    d_model: int = 64
    num_heads: int = 4
    expansion: float = 4.0
    multiple_of: int = 64  # SwiGLU width rounding (HRM: 256, giving 1536 at d = 512)
    L_layers: int = 1
    H_layers: int = 1
    N: int = 2  # cycles per segment
    T: int = 2  # low-level steps per cycle
    prefix_tokens: int = 1  # P zero-initialised task-embedding tokens
    pos_encoding: str = "rope"
    candidates: bool = True  # embed the legal-value mask of every position into the input
    h_module: str = "multicell"
    num_cells: int = 4  # N_c
    cell_tokens: int = 8  # C content tokens per cell (a CLS token is added in multicell)
    top_k: int = 2  # k cells activated per cycle
    relevance_projections: int = 2  # R
    always_active_first: bool = False  # cell 1 always read and written, k more are chosen
    memory_scope: str = "episode"
    grad: str = "one_step"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("h_module", self.h_module, H_MODULES),
            ("grad", self.grad, GRAD_MODES),
            ("memory_scope", self.memory_scope, MEMORY_SCOPES),
            ("pos_encoding", self.pos_encoding, POSITION_ENCODINGS),
        ):
            if value not in allowed:
                raise ValueError(f"model.{name} must be one of {allowed}, got {value!r}")
        if self.N < 1 or self.T < 1:
            raise ValueError(f"model.N and model.T must be at least 1, got N={self.N}, T={self.T}")
        if self.h_module == "multicell":
            choosable = self.num_cells - int(self.always_active_first)
            if not 1 <= self.top_k <= choosable:
                raise ValueError(
                    f"model.top_k must lie in [1, {choosable}] with num_cells={self.num_cells}"
                    f"{' and cell 1 always active' if self.always_active_first else ''}, "
                    f"got {self.top_k}"
                )

    @property
    def selections_per_cycle(self) -> int:
        """How many cells the policy picks per cycle (0 without a selection policy)."""
        return self.top_k if self.h_module == "multicell" else 0


@dataclass
class HRMOutput:
    """What one segment produces."""

    move_logits: torch.Tensor  # [B, L·V]: action a = position·V + (value − 1)
    grid_logits: torch.Tensor  # [B, L, V]
    value: torch.Tensor  # [B]
    halt_logit: torch.Tensor  # [B]: "the current proposal is right, stop" (supervised ACT)
    carry: TensorDict  # detached, for the next segment
    selections: torch.Tensor | None  # int64 [B, N, k], the cells chosen in each cycle
    selection_log_probs: torch.Tensor  # [B, N]: log PL(A_n | s_n) per cycle ([B, 0] without)
    selection_entropy: torch.Tensor  # [B]: Σ_n H(π(· | s_n)) (see TopKSelection.entropy)
    selection_scores: torch.Tensor | None  # [B, N, N_choosable]: the policy's scores per cycle
    selection_probs: torch.Tensor | None  # [B, N, N_c]: softmax of the cell scores per cycle
    aux_losses: dict[str, torch.Tensor]  # diverse, balance, selfsup (unweighted)
    cell_usage: torch.Tensor | None  # [N_c]: how often each cell was active in this call

    @property
    def selection_log_prob(self) -> torch.Tensor:
        """``[B]``: Σ_n log PL(A_n | s_n), the selections' part of the joint log-probability."""
        return self.selection_log_probs.sum(dim=1)


class HRM(nn.Module):
    """HRM backbone with an H-module of choice, heads for moves, proposals and value."""

    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d, S = cfg.d_model, cfg.prefix_tokens + cfg.num_positions
        self.tok_emb = nn.Embedding(cfg.num_values + 1, d)
        trunc_normal_init_(self.tok_emb.weight, std=1.0 / math.sqrt(d))
        self.cand_emb = nn.Linear(cfg.num_values, d, bias=False) if cfg.candidates else None
        if self.cand_emb is not None:
            trunc_normal_init_(self.cand_emb.weight, std=1.0 / math.sqrt(d))
        self.task_emb = nn.Parameter(torch.zeros(cfg.prefix_tokens, d))  # P prefix tokens
        self.positions = LearnedPositions(S, d) if cfg.pos_encoding == "learned" else None
        rope = RotaryEmbedding(d // cfg.num_heads, S) if cfg.pos_encoding == "rope" else None
        self.L_net = ReasoningModule(
            d, cfg.num_heads, cfg.L_layers, cfg.expansion, rope, multiple_of=cfg.multiple_of
        )
        if cfg.h_module == "hrm":
            self.H_update = HRMUpdate(
                d, cfg.num_heads, cfg.H_layers, cfg.expansion, rope, cfg.multiple_of
            )
        else:
            multi = cfg.h_module == "multicell"
            self.H_update = MemoryUpdate(
                d,
                cfg.num_heads,
                cfg.expansion,
                num_cells=cfg.num_cells if multi else 1,
                tokens_per_cell=cfg.cell_tokens + int(multi),
                relevance_projections=cfg.relevance_projections,
                multiple_of=cfg.multiple_of,
            )
        # fixed random initial states (HRM: truncated normal, std 1, never trained)
        self.register_buffer("H_init", trunc_normal_init_(torch.empty(d), std=1.0))
        self.register_buffer("L_init", trunc_normal_init_(torch.empty(d), std=1.0))
        self.f_O = nn.Linear(d, cfg.num_values)  # cell moves: V logits per position
        self.f_grid = nn.Linear(d, cfg.num_values)  # grid proposals
        self.f_V = nn.Linear(d, 1)  # value
        for head in (self.f_O, self.f_grid, self.f_V):
            nn.init.zeros_(head.bias)
            trunc_normal_init_(head.weight, std=0.01 / math.sqrt(d))
        # ACT halting head of the supervised agent (HRM's Q head starts the same way: zero
        # weights, bias -5, so nothing halts early before it learns). Built without drawing from
        # the global generator, so that it changes no seeded run of the other agents.
        with torch.random.fork_rng(devices=[]):
            self.f_halt = nn.Linear(d, 1)
        nn.init.zeros_(self.f_halt.weight)
        nn.init.constant_(self.f_halt.bias, -5.0)

    # --- carry ------------------------------------------------------------------------------

    @property
    def has_memory(self) -> bool:
        return isinstance(self.H_update, MemoryUpdate)

    def initial_carry(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> TensorDict:
        """The carry of fresh episodes: initial states, and the learned initial cells."""
        device = device if device is not None else self.H_init.device
        S, d = self.config.prefix_tokens + self.config.num_positions, self.config.d_model
        carry = TensorDict(
            {
                "z_H": self.H_init.detach().expand(batch_size, S, d).clone(),
                "z_L": self.L_init.detach().expand(batch_size, S, d).clone(),
                "fresh": torch.ones(batch_size, dtype=torch.bool),
            },
            batch_size=[batch_size],
        ).to(device)
        if self.has_memory:
            cells = self.H_update.initial_cells.detach()
            carry["cells"] = cells.expand(batch_size, *cells.shape).clone().to(device)
        return carry

    def reset_carry(self, carry: TensorDict, reset: torch.Tensor) -> TensorDict:
        """Reset the rows where ``reset`` (bool ``[B]``) is set; returns a new carry.

        States always go back to the initial states. Memory cells go back to the learned initial
        cells under ``memory.scope=episode`` and are kept under ``lifelong`` (each env slot keeps
        adapting its memory across puzzles without weight updates).
        """
        reset = reset.view(-1).to(carry.device)
        fresh = self.initial_carry(carry.batch_size[0], carry.device)
        if self.config.memory_scope == "lifelong" and self.has_memory:
            fresh["cells"] = carry["cells"]
            fresh["fresh"] = carry["fresh"]
        return _where_rows(reset, fresh, carry)

    # --- forward ----------------------------------------------------------------------------

    def embed(self, tokens: torch.Tensor, candidates: torch.Tensor | None) -> torch.Tensor:
        """``x̂``: √d-scaled token (+ candidates) embedding with the P task tokens in front."""
        cfg = self.config
        x = self.tok_emb(tokens.long())  # [B, L, d]
        if self.cand_emb is not None:
            if candidates is None:
                raise ValueError("model.candidates is on: pass the legal-value mask [B, L, V]")
            x = x + self.cand_emb(candidates.to(x.dtype))
        prefix = self.task_emb.unsqueeze(0).expand(x.shape[0], -1, -1)
        x = torch.cat([prefix, x], dim=1)  # [B, P+L, d]
        if self.positions is not None:
            x = self.positions(x) / math.sqrt(2.0)
        return math.sqrt(cfg.d_model) * x

    def _tracked(self, n: int, t: int | None = None) -> bool:
        """Whether the L step (n, t) — or with ``t=None`` the H update of cycle n — has gradient."""
        cfg = self.config
        if cfg.grad == "full":
            return True
        last_cycle = n == cfg.N - 1
        if cfg.grad == "last_cycle" or t is None:
            return last_cycle
        return last_cycle and t == cfg.T - 1  # one_step

    def forward(
        self,
        tokens: torch.Tensor,
        carry: TensorDict,
        candidates: torch.Tensor | None = None,
        *,
        selections: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> HRMOutput:
        """One segment from ``carry``; ``selections`` ``[B, N, k]`` forces the cells (replay)."""
        cfg = self.config
        grad_on = torch.is_grad_enabled()
        B = tokens.shape[0]
        x = self.embed(tokens, candidates)
        z_H, z_L = carry["z_H"], carry["z_L"]
        cells = None
        if self.has_memory:
            initial = self.H_update.initial_cells.unsqueeze(0).expand_as(carry["cells"])
            fresh = carry["fresh"].view(B, 1, 1, 1)
            cells = torch.where(fresh, initial, carry["cells"])  # learned cells get gradient

        policy = cfg.h_module == "multicell"
        chosen, log_probs, entropy, probs, scores, selfsup = [], [], x.new_zeros(B), [], [], []
        for n in range(cfg.N):
            for t in range(cfg.T):
                with torch.set_grad_enabled(grad_on and self._tracked(n, t)):
                    z_L = self.L_net(z_L, z_H + x)
            tracked = grad_on and self._tracked(n)
            if not self.has_memory:
                with torch.set_grad_enabled(tracked):
                    z_H = self.H_update(z_H, z_L)
                continue
            with torch.set_grad_enabled(tracked):
                h_hat = self.H_update.combine(z_H, z_L)
            if policy:
                forced = None if selections is None else selections[:, n]
                selection, weights, step = self._select(
                    h_hat, cells, forced, deterministic, generator
                )
                chosen.append(step["choice"])
                log_probs.append(step["log_prob"])
                entropy = entropy + step["entropy"]
                probs.append(step["probs"])
                scores.append(step["scores"])
            else:
                selection = torch.zeros(B, 1, dtype=torch.long, device=x.device)
                weights = torch.ones(B, 1, device=x.device)
            with torch.set_grad_enabled(tracked):
                z_H, cells, reads = self.H_update(z_H, z_L, cells, h_hat, selection, weights)
                if policy:
                    delta_z = (weights.view(B, -1, 1, 1) * reads).sum(dim=1)
                    best = weights.argmax(dim=1).view(B, 1, 1, 1).expand(B, 1, *reads.shape[2:])
                    selfsup.append(selfsup_loss(delta_z, reads.gather(1, best).squeeze(1)))

        P = cfg.prefix_tokens
        tokens_out = z_H[:, P:]  # [B, L, d]
        pooled = z_H[:, 0] if P > 0 else z_H.mean(dim=1)
        new_carry = TensorDict(
            {
                "z_H": z_H.detach(),
                "z_L": z_L.detach(),
                "fresh": torch.zeros(B, dtype=torch.bool, device=x.device),
            },
            batch_size=[B],
        )
        if cells is not None:
            new_carry["cells"] = cells.detach()
        aux, usage, probs_t, chosen_t = {}, None, None, None
        if policy:
            chosen_t = torch.stack(chosen, dim=1)  # [B, N, k]
            probs_t = torch.stack(probs, dim=1)  # [B, N, N_c]
            active = self._full_selection(chosen_t.view(B * cfg.N, -1))
            usage = torch.bincount(active.reshape(-1), minlength=cfg.num_cells)
            aux = {
                "diverse": diversity_loss(probs_t),
                "balance": balance_loss(probs_t, exclude_first=cfg.always_active_first),
                "selfsup": torch.stack(selfsup).mean(),
            }
        return HRMOutput(
            move_logits=self.f_O(tokens_out).flatten(1),
            grid_logits=self.f_grid(tokens_out),
            value=self.f_V(pooled).squeeze(-1),
            halt_logit=self.f_halt(pooled).squeeze(-1),
            carry=new_carry,
            selections=chosen_t,
            selection_log_probs=torch.stack(log_probs, dim=1) if log_probs else x.new_zeros(B, 0),
            selection_entropy=entropy,
            selection_scores=torch.stack(scores, dim=1) if scores else None,
            selection_probs=probs_t,
            aux_losses=aux,
            cell_usage=usage,
        )

    def _full_selection(self, choice: torch.Tensor) -> torch.Tensor:
        """Cell indices actually read and written: the policy's choice (+ cell 1 if always on)."""
        if not self.config.always_active_first:
            return choice
        first = torch.zeros(choice.shape[0], 1, dtype=choice.dtype, device=choice.device)
        return torch.cat([first, choice + 1], dim=1)

    def _select(self, h_hat, cells, forced, deterministic, generator):
        """Score the cells, draw (or force) this cycle's choice; α = softmax(s_A)."""
        scores = self.H_update.relevance(h_hat, cells)  # [B, N_c]
        choosable = scores[:, 1:] if self.config.always_active_first else scores
        dist = TopKSelection(choosable.float(), self.config.top_k, generator=generator)
        if forced is not None:
            choice = forced.long()
        elif deterministic:
            choice = dist.deterministic_sample
        else:
            choice = dist.sample()
        selection = self._full_selection(choice)
        weights = torch.softmax(scores.gather(1, selection).float(), dim=1)
        step = {
            "choice": choice,
            "log_prob": dist.log_prob(choice),
            "entropy": dist.entropy(),
            "probs": torch.softmax(scores.float(), dim=1),
            "scores": choosable,
        }
        return selection, weights, step

    def num_parameters(self) -> int:
        """Every trainable number: layers, embeddings, task tokens and memory cells included."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _where_rows(rows: torch.Tensor, new: TensorDict, old: TensorDict) -> TensorDict:
    """``new`` where ``rows`` is set, ``old`` elsewhere, key by key."""
    out = old.clone()
    for key, value in new.items():
        mask = rows.view(-1, *([1] * (value.dim() - 1)))
        out[key] = torch.where(mask, value, old[key])
    return out
