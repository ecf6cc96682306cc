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
from typing import NamedTuple

import torch
from tensordict import TensorDict
from torch import nn

from hrm_rl.models.layers import (
    HeadMasks,
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
    pool,
    selfsup_loss,
)
from hrm_rl.models.selection import LAWS, TopKSelection

H_MODULES = ("hrm", "bicross", "multicell")
GRAD_MODES = ("one_step", "last_cycle", "full")
MEMORY_SCOPES = ("episode", "lifelong")
POSITION_ENCODINGS = ("rope", "rope2d", "learned")
ATTENTIONS = ("full", "graph")
CELL_CHOICES = ("policy", "uniform", "topk")


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
    pos_encoding: str = "rope"  # rope2d: rows and columns of the board on halves of each head
    attention: str = "full"  # graph: board positions attend along the family's constraint graph
    candidates: bool = True  # embed the legal-value mask of every position into the input
    # also embed, per relation of the constraint graph and per value, how many *other* related
    # positions still allow that value (saturating: c / (c + 1)); needs candidates
    candidate_counts: bool = False
    # also score every move (position, value) from its own rule features, [legal, the least of
    # the counts above over the relations, 1 / legal values of the position], by one small MLP
    # that all values share, added to the move logits; needs candidates
    move_features: bool = False
    h_module: str = "multicell"
    num_cells: int = 4  # N_c
    cell_tokens: int = 8  # C content tokens per cell (a CLS token is added in multicell)
    top_k: int = 2  # k cells activated per cycle
    selection_law: str = "ordered"  # the choice's law: ordered tuple, or set (order ignored)
    # who chooses the k cells: the policy π_θ (sampled, trained by PPO), uniformly at random, or
    # the top-k scores (deterministic); the last two are ablations whose scores learn through α only
    cell_choice: str = "policy"
    relevance_projections: int = 2  # R
    always_active_first: bool = False  # cell 1 always read and written, k more are chosen
    memory_scope: str = "episode"
    grad: str = "one_step"
    # segments a fresh puzzle is thought over before its first move (no move, no gradient, the
    # top-k cells); the PPO policy runs them (HRMPolicy.warm_up). 0: the first move comes after
    # one segment, each later one after as many as moves before it
    warmup_segments: int = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("h_module", self.h_module, H_MODULES),
            ("grad", self.grad, GRAD_MODES),
            ("memory_scope", self.memory_scope, MEMORY_SCOPES),
            ("pos_encoding", self.pos_encoding, POSITION_ENCODINGS),
            ("attention", self.attention, ATTENTIONS),
            ("selection_law", self.selection_law, LAWS),
            ("cell_choice", self.cell_choice, CELL_CHOICES),
        ):
            if value not in allowed:
                raise ValueError(f"model.{name} must be one of {allowed}, got {value!r}")
        if self.candidate_counts and not self.candidates:
            raise ValueError(
                "model.candidate_counts needs model.candidates=true (it counts them); with "
                "model.candidates=false set model.candidate_counts=false model.move_features=false"
            )
        if self.move_features and not self.candidates:
            raise ValueError(
                "model.move_features needs model.candidates=true (it reads them); with "
                "model.candidates=false set model.move_features=false"
            )
        if self.warmup_segments < 0:
            raise ValueError(f"model.warmup_segments must be >= 0, got {self.warmup_segments}")
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
    selection_log_probs: torch.Tensor  # [B, N]: log π(A_n | s_n) per cycle ([B, 0] without)
    selection_entropy: torch.Tensor  # [B]: Σ_n H(π(· | s_n)) (see TopKSelection.entropy)
    selection_scores: torch.Tensor | None  # [B, N, N_choosable]: the policy's scores per cycle
    aux_losses: dict[str, torch.Tensor]  # diverse, balance, selfsup (unweighted)
    cell_usage: torch.Tensor | None  # [N_c]: how often each cell was active in this call
    # with keep_resume, where the tracked part of the segment starts (see HRM.forward): z_H, z_L,
    # cells, and what the prefix cycles' selections were scored from: pool(ĥ) h_pooled [B, n, d]
    # and the cells' CLS tokens cls_seen [B, n, N_c, d]
    resume: TensorDict | None = None

    @property
    def selection_log_prob(self) -> torch.Tensor:
        """``[B]``: Σ_n log π(A_n | s_n), the selections' part of the joint log-probability."""
        return self.selection_log_probs.sum(dim=1)


class HRM(nn.Module):
    """HRM backbone with an H-module of choice, heads for moves, proposals and value.

    ``graph`` (``bool[R, L, L]``, :meth:`PuzzleRules.constraint_graph`) is what
    ``attention=graph`` follows (all pairs when not given); ``grid_shape`` ``(rows, cols)`` places
    the board for ``pos_encoding=rope2d``.
    """

    def __init__(
        self,
        config: HRMConfig,
        graph: torch.Tensor | None = None,
        grid_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.config = cfg = config
        d, S = cfg.d_model, cfg.prefix_tokens + cfg.num_positions
        self.tok_emb = nn.Embedding(cfg.num_values + 1, d)
        trunc_normal_init_(self.tok_emb.weight, std=1.0 / math.sqrt(d))
        self.cand_emb = nn.Linear(cfg.num_values, d, bias=False) if cfg.candidates else None
        if self.cand_emb is not None:
            trunc_normal_init_(self.cand_emb.weight, std=1.0 / math.sqrt(d))
        self.count_emb = self.move_mlp = None
        if cfg.candidate_counts or cfg.move_features:
            relations = self._relations(graph)  # [R, L, L], 1 where another position relates
            self.register_buffer("relations", relations, persistent=False)
        if cfg.move_features:  # the same weights for every value: a rule learned once serves all
            hidden = 32
            self.move_mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, 1))
            nn.init.zeros_(self.move_mlp[2].bias)
            trunc_normal_init_(self.move_mlp[2].weight, std=0.01 / math.sqrt(hidden))
            self._build_move_table(relations)
        if cfg.candidate_counts:
            self.count_emb = nn.Linear(relations.shape[0] * cfg.num_values, d, bias=False)
            trunc_normal_init_(self.count_emb.weight, std=1.0 / math.sqrt(d))
        self.task_emb = nn.Parameter(torch.zeros(cfg.prefix_tokens, d))  # P prefix tokens
        self.positions = LearnedPositions(S, d) if cfg.pos_encoding == "learned" else None
        rope = self._rope(grid_shape)
        masks = self._head_masks(graph)
        self.L_net = ReasoningModule(
            d, cfg.num_heads, cfg.L_layers, cfg.expansion, rope, cfg.multiple_of, masks
        )
        if cfg.h_module == "hrm":
            self.H_update = HRMUpdate(
                d, cfg.num_heads, cfg.H_layers, cfg.expansion, rope, cfg.multiple_of, masks
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

    def _rope(self, grid_shape: tuple[int, int] | None) -> RotaryEmbedding | None:
        cfg = self.config
        head_dim, S = cfg.d_model // cfg.num_heads, cfg.prefix_tokens + cfg.num_positions
        if cfg.pos_encoding == "rope":
            return RotaryEmbedding(head_dim, S)
        if cfg.pos_encoding != "rope2d":
            return None
        if grid_shape is None or grid_shape[0] * grid_shape[1] != cfg.num_positions:
            raise ValueError(
                f"model.pos_encoding=rope2d needs the board's grid (rows, cols) with rows·cols = "
                f"{cfg.num_positions}, got {grid_shape}; this family has no grid: use rope"
            )
        return RotaryEmbedding.grid(head_dim, tuple(grid_shape), cfg.prefix_tokens)

    def _relations(self, graph: torch.Tensor | None) -> torch.Tensor:
        """``float[R, L, L]``: 1 where position j is another position that relation r ties to
        position i (the constraint graph without its diagonal; all pairs without a graph)."""
        L = self.config.num_positions
        graph = torch.ones(1, L, L, dtype=torch.bool) if graph is None else self._checked(graph)
        others = ~torch.eye(L, dtype=torch.bool)
        return (graph.bool().cpu() & others).float()

    def _checked(self, graph: torch.Tensor) -> torch.Tensor:
        """``graph`` itself, or a ValueError when it is not ``bool[R, L, L]`` for this board."""
        L = self.config.num_positions
        if graph.dim() != 3 or tuple(graph.shape[1:]) != (L, L):
            raise ValueError(
                f"the constraint graph must be bool[R, {L}, {L}], got {tuple(graph.shape)}"
            )
        return graph

    def _build_move_table(self, relations: torch.Tensor) -> None:
        """Every distinct input of the move-feature MLP, in the order :meth:`_move_index` numbers
        them: with V values and relation r tying a position to at most m_r others, a move's
        features take 2 · V · (min_r m_r + 1) values (162 on 9×9 Sudoku). When a batch holds
        more moves than that, :meth:`move_scores` runs the MLP once per distinct input and looks
        the moves up: the same scores and gradients for far less work (the update replays
        minibatches of 256 · 729 moves)."""
        V = self.config.num_values
        most = int(relations.sum(-1).amax(-1).min())  # the least count is at most min_r m_r
        rows = torch.arange(2 * V * (most + 1))
        share = 1.0 / (rows % V + 1).float()  # 1 / (legal values at the position)
        legal = (rows // V % 2).float()
        least = (rows // (2 * V)).float()
        features = [legal, least / (least + 1.0), share]
        self.register_buffer("move_table", torch.stack(features, -1), persistent=False)

    def _move_index(self, candidates: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """``long[B, L·V]``: each move's row in the move table."""
        V = self.config.num_values
        least = counts.amin(2).long()  # [B, L, V]
        legal = candidates.long()
        index = legal.sum(-1, keepdim=True).clamp(min=1) - 1 + V * (legal + 2 * least)
        return index.flatten(1)

    def related_counts(self, candidates: torch.Tensor) -> torch.Tensor:
        """``[B, L, R, V]``: c, how many other positions relation r ties to position i allow
        value v (what :meth:`candidate_counts` and :meth:`move_scores` read)."""
        cand = candidates.to(self.relations.dtype)  # [B, L, V]
        with torch.autocast(cand.device.type, enabled=False):  # exact integers, even under bf16
            return torch.einsum("rij,bjv->birv", self.relations, cand)

    def candidate_counts(
        self, candidates: torch.Tensor, counts: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, L, R·V]``: for each position, relation r and value v, c / (c + 1) where c counts
        the other positions r ties it to whose legal values include v. c = 0 on a position that
        allows v is a hidden single of that relation (Sudoku: v fits nowhere else in the row).
        ``counts``: :meth:`related_counts`, when the caller has them already."""
        counts = self.related_counts(candidates) if counts is None else counts
        return (counts / (counts + 1.0)).flatten(2)

    def move_scores(
        self, candidates: torch.Tensor, counts: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, L·V]``: the ``move_features`` term of the move logits. Each move (position p,
        value v) is scored from three numbers, [v legal at p, c / (c + 1) for the least c over
        the relations, 1 / (legal values at p)], by one MLP shared by all values: a naked single
        has 1 / legal = 1 and a hidden single least c = 0, whatever else the board holds, so
        each is one number and one rule for every v. (The MLP used to read c / (c + 1) for
        every relation instead of the least: "c = 0 in *some* relation" was then an OR it had
        to learn, and PPO learned instead that low counts everywhere are likely, which ranked
        some naked singles below guesses; README 'Move features'.)"""
        counts = self.related_counts(candidates) if counts is None else counts
        dtype = self.move_mlp[0].weight.dtype
        if self.move_table.shape[0] < candidates.numel():
            table = self.move_mlp(self.move_table.to(dtype)).squeeze(-1)  # [moves' inputs]
            index = self._move_index(candidates, counts)
            return table.index_select(0, index.flatten()).view(index.shape)
        return self._scored_moves(candidates, counts)

    def _scored_moves(self, candidates: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """:meth:`move_scores`, the MLP run on every move's own features."""
        cand = candidates.to(self.relations.dtype)  # [B, L, V]
        least = counts.amin(2).unsqueeze(-1)  # [B, L, V, 1]: the fewest others over relations
        share = 1.0 / cand.sum(-1, keepdim=True).clamp(min=1.0)  # [B, L, 1]
        features = torch.cat(
            [cand.unsqueeze(-1), least / (least + 1.0), share.unsqueeze(-1).expand_as(least)], -1
        )
        return self.move_mlp(features.to(self.move_mlp[0].weight.dtype)).squeeze(-1).flatten(1)

    def _head_masks(self, graph: torch.Tensor | None) -> HeadMasks | None:
        cfg = self.config
        if cfg.attention == "full" or graph is None:  # no graph: every pair, i.e. no mask
            return None
        return HeadMasks(self._checked(graph), cfg.num_heads, cfg.prefix_tokens)

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

    def embed(
        self,
        tokens: torch.Tensor,
        candidates: torch.Tensor | None,
        counts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x̂``: √d-scaled token (+ candidates) embedding with the P task tokens in front;
        ``counts``: :meth:`related_counts`, when the caller has them already."""
        cfg = self.config
        x = self.tok_emb(tokens.long())  # [B, L, d]
        if self.cand_emb is not None:
            if candidates is None:
                raise ValueError("model.candidates is on: pass the legal-value mask [B, L, V]")
            x = x + self.cand_emb(candidates.to(x.dtype))
            if self.count_emb is not None:
                counts = self.candidate_counts(candidates, counts)
                x = x + self.count_emb(counts.to(x.dtype))
        prefix = self.task_emb.unsqueeze(0).expand(x.shape[0], -1, -1)
        x = torch.cat([prefix, x], dim=1)  # [B, P+L, d]
        if self.positions is not None:
            x = self.positions(x) / math.sqrt(2.0)
        return math.sqrt(cfg.d_model) * x

    # --- the schedule of one segment ------------------------------------------------------------

    def schedule(self) -> list[tuple[int, int]]:
        """The applications of one segment in order: ``(n, t)`` for ``t < T`` is the L step t of
        cycle n, and ``(n, T)`` the H update that ends cycle n."""
        cfg = self.config
        return [(n, t) for n in range(cfg.N) for t in range(cfg.T + 1)]

    @property
    def first_tracked(self) -> int:
        """Index in :meth:`schedule` of the first application with gradient; every later one has
        gradient too (``one_step``: the last L step; ``last_cycle``: the last cycle; ``full``: 0).
        What comes before it is the segment's *untracked prefix*."""
        cfg = self.config
        last_cycle = (cfg.N - 1) * (cfg.T + 1)
        return {"full": 0, "last_cycle": last_cycle, "one_step": last_cycle + cfg.T - 1}[cfg.grad]

    @property
    def prefix_cycles(self) -> int:
        """How many H updates (cycles) end inside the untracked prefix."""
        return self.first_tracked // (self.config.T + 1)

    # --- forward ----------------------------------------------------------------------------

    def forward(
        self,
        tokens: torch.Tensor,
        carry: TensorDict,
        candidates: torch.Tensor | None = None,
        *,
        selections: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        resume: TensorDict | None = None,
        keep_resume: bool = False,
    ) -> HRMOutput:
        """One segment from ``carry``; ``selections`` ``[B, N, k]`` forces the cells (replay).

        The untracked prefix of the schedule runs without gradient; with ``keep_resume`` what it
        ends with is returned as ``out.resume``: the states and cells where the tracked part
        starts, and the inputs ``(pool(ĥ), CLS)`` of the prefix cycles' selections. Passing that
        ``resume`` back (with the same tokens, carry and forced selections) skips the prefix: the
        segment continues from the stored states and rescores the prefix selections, with
        gradient, from their stored inputs. Both ways give the same outputs and the same gradients.
        """
        cfg = self.config
        if resume is not None and self.config.h_module == "multicell" and selections is None:
            raise ValueError("resuming a segment needs its stored selections (selections=...)")
        counts = None  # the rule features' counts, computed once for both their uses
        if candidates is not None and (self.count_emb is not None or self.move_mlp is not None):
            counts = self.related_counts(candidates)
        x = self.embed(tokens, candidates, counts)  # [B, P+L, d]
        state = {"z_H": carry["z_H"], "z_L": carry["z_L"]}
        if self.has_memory:  # fresh episodes read the learned initial cells (with gradient)
            B = tokens.shape[0]
            initial = self.H_update.initial_cells.unsqueeze(0).expand_as(carry["cells"])
            state["cells"] = torch.where(carry["fresh"].view(B, 1, 1, 1), initial, carry["cells"])
        start, trace = state, CycleTrace()
        draw = Draw(selections, deterministic, generator)
        steps, split = self.schedule(), self.first_tracked
        if resume is None:
            with torch.no_grad():
                state = self._run(steps[:split], x, state, trace, draw)
        else:
            state = self._resume(state, resume, trace, selections)
        prefix = self._prefix_record(state, trace) if keep_resume and resume is None else resume
        if cfg.h_module == "multicell" and (resume is not None or torch.is_grad_enabled()):
            # with gradient: the prefix cycles' policy learns too
            self._score_prefix(trace, start["cells"])
        state = self._run(steps[split:], x, state, trace, draw)
        out = self._output(state, trace, prefix)
        if self.move_mlp is not None:
            scores = self.move_scores(candidates, counts)
            out.move_logits = out.move_logits + scores.to(out.move_logits.dtype)
        return out

    def _run(self, steps, x, state, trace: CycleTrace, draw: Draw) -> dict:
        """Apply ``steps`` of the schedule to the state ``{z_H, z_L, cells}``: DESIGN §3's loop."""
        z_H, z_L, cells = state["z_H"], state["z_L"], state.get("cells")
        for n, t in steps:
            if t < self.config.T:
                z_L = self.L_net(z_L, z_H + x)  # z_L = L_net(z_L + z_H + x̂), [B, S, d]
            elif not self.has_memory:
                z_H = self.H_update(z_H, z_L)  # z_H = H_net(z_H + z_L)
            else:
                h_hat = self.H_update.combine(z_H, z_L)  # ĥ = LN(z_H + z_L)
                chosen, weights = self._choose(trace, h_hat, cells, draw, n)
                # multicell with gradient: the read of the cell with the largest α, for L_selfsup
                best = weights.argmax(dim=1) if torch.is_grad_enabled() and trace.scores else None
                z_H, cells, delta_z, best_read = self.H_update(
                    z_H, z_L, cells, h_hat, chosen, weights, best
                )
                if best_read is not None:
                    trace.reads.append((delta_z, best_read))
        return {"z_H": z_H, "z_L": z_L} | ({} if cells is None else {"cells": cells})

    def _choose(self, trace: CycleTrace, h_hat, cells, draw: Draw, n: int):
        """The cells this H update reads and writes, and their weights α = softmax(s_A).

        ``multicell``: score the cells, draw (or force) the choice A and record it in ``trace``;
        ``bicross``: its one cell, with weight 1.
        """
        B = h_hat.shape[0]
        if self.config.h_module != "multicell":
            return h_hat.new_zeros(B, 1, dtype=torch.long), h_hat.new_ones(B, 1)
        pooled, cls = pool(h_hat), cells[:, :, 0]  # what the scores read: [B, d], [B, N_c, d]
        scores = self.H_update.score(pooled, cls)  # [B, N_c]
        choosable = self._choosable(scores)
        cfg = self.config
        if draw.selections is not None:  # replay: the stored choice
            choice = draw.selections[:, n].long()
        elif cfg.cell_choice == "uniform":  # ablation: scores ignored by the draw
            uniform = torch.zeros_like(choosable, dtype=torch.float32)
            choice = TopKSelection(uniform, cfg.top_k, generator=draw.generator).sample()
        else:
            dist = TopKSelection(choosable.float(), cfg.top_k, generator=draw.generator)
            greedy = draw.deterministic or cfg.cell_choice == "topk"
            choice = dist.deterministic_sample if greedy else dist.sample()
        trace.record(pooled, cls, scores, choice)
        selection = self._full_selection(choice)
        return selection, torch.softmax(scores.gather(1, selection).float(), dim=1)

    def _choosable(self, scores: torch.Tensor) -> torch.Tensor:
        """The scores of the cells the policy chooses from (all but an always-on cell 1)."""
        return scores[..., 1:] if self.config.always_active_first else scores

    def _prefix_record(self, state: dict, trace: CycleTrace) -> TensorDict:
        """What :meth:`forward` needs to skip the untracked prefix, detached."""
        B = state["z_H"].shape[0]
        record = TensorDict({key: value.detach() for key, value in state.items()}, batch_size=[B])
        if trace.pooled:  # the prefix cycles' selection inputs: [B, prefix_cycles, ...]
            record["h_pooled"] = torch.stack(trace.pooled, dim=1).detach()
            record["cls_seen"] = torch.stack(trace.cls, dim=1).detach()
        return record

    def _resume(self, state: dict, resume: TensorDict, trace: CycleTrace, selections) -> dict:
        """The state where the tracked part starts, read from ``resume``; the prefix cycles'
        selection inputs go into ``trace`` (cycle 1 reads the carry's cells, as in a full run)."""
        start = {"z_H": resume["z_H"], "z_L": resume["z_L"]}
        if self.has_memory:  # without a prefix cycle the cells are the carry's, with gradient
            start["cells"] = resume["cells"] if self.prefix_cycles else state["cells"]
        for n in range(self.prefix_cycles if "h_pooled" in resume.keys() else 0):
            cls = resume["cls_seen"][:, n]
            trace.record(resume["h_pooled"][:, n], cls, None, selections[:, n].long())
        return start

    def _score_prefix(self, trace: CycleTrace, cells: torch.Tensor) -> None:
        """Recompute the prefix cycles' cell scores from their recorded inputs; cycle 1 reads
        the CLS tokens of ``cells``, the segment's starting cells, with gradient."""
        for n in range(self.prefix_cycles):
            cls = cells[:, :, 0] if n == 0 else trace.cls[n]
            trace.scores[n] = self.H_update.score(trace.pooled[n], cls)

    def _output(self, state: dict, trace: CycleTrace, prefix: TensorDict | None) -> HRMOutput:
        """Heads, the detached carry, and the selection's log-probabilities and losses."""
        cfg = self.config
        z_H = state["z_H"]
        B = z_H.shape[0]
        tokens_out = z_H[:, cfg.prefix_tokens :]  # [B, L, d]
        pooled = z_H[:, 0] if cfg.prefix_tokens > 0 else z_H.mean(dim=1)  # [B, d]
        carry = TensorDict({key: value.detach() for key, value in state.items()}, batch_size=[B])
        carry["fresh"] = torch.zeros(B, dtype=torch.bool, device=z_H.device)
        out = HRMOutput(
            move_logits=self.f_O(tokens_out).flatten(1),
            grid_logits=self.f_grid(tokens_out),
            value=self.f_V(pooled).squeeze(-1),
            halt_logit=self.f_halt(pooled).squeeze(-1),
            carry=carry,
            selections=None,
            selection_log_probs=z_H.new_zeros(B, 0),
            selection_entropy=z_H.new_zeros(B),
            selection_scores=None,
            aux_losses={},
            cell_usage=None,
            resume=prefix,
        )
        if not trace.scores:
            return out
        scores = torch.stack(trace.scores, dim=1).float()  # [B, N, N_c]
        chosen = torch.stack(trace.choice, dim=1)  # [B, N, k]
        choosable = self._choosable(scores)
        law = TopKSelection(choosable, cfg.top_k, law=cfg.selection_law)
        probs = torch.softmax(scores, dim=-1)  # [B, N, N_c]
        out.selections = chosen
        if cfg.cell_choice == "policy":  # the ablations' choices are no policy's actions
            out.selection_log_probs = law.log_prob(chosen)  # [B, N]: log π(A_n | s_n)
            out.selection_entropy = law.entropy().sum(dim=1)
        else:
            out.selection_log_probs = scores.new_zeros(B, cfg.N)
        out.selection_scores = choosable
        active = self._full_selection(chosen.view(B * cfg.N, -1))
        out.cell_usage = torch.bincount(active.reshape(-1), minlength=cfg.num_cells)
        out.aux_losses = {
            "diverse": diversity_loss(probs),
            "balance": balance_loss(probs, exclude_first=cfg.always_active_first),
            "selfsup": trace.selfsup_loss(z_H),
        }
        return out

    def _full_selection(self, choice: torch.Tensor) -> torch.Tensor:
        """Cell indices actually read and written: the policy's choice (+ cell 1 if always on)."""
        if not self.config.always_active_first:
            return choice
        first = torch.zeros(choice.shape[0], 1, dtype=choice.dtype, device=choice.device)
        return torch.cat([first, choice + 1], dim=1)

    def num_parameters(self) -> int:
        """Every trainable number: layers, embeddings, task tokens and memory cells included."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class Draw(NamedTuple):
    """How a segment's cells are chosen: forced (replay), top-k, or sampled with ``generator``."""

    selections: torch.Tensor | None
    deterministic: bool
    generator: torch.Generator | None


@dataclass
class CycleTrace:
    """The cycles of one segment as the selection policy saw them (``multicell``): per cycle
    what the scores read (pool(ĥ) ``[B, d]`` and the cells' CLS tokens ``[B, N_c, d]``), the
    scores ``[B, N_c]`` and the choice ``[B, k]``; and for the cycles with gradient the
    α-weighted sum Δz of the reads and the read of the cell with the largest α, ``[B, S, d]``
    each (L_selfsup)."""

    pooled: list = field(default_factory=list)
    cls: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    choice: list = field(default_factory=list)
    reads: list = field(default_factory=list)

    def record(self, pooled, cls, scores, choice) -> None:
        self.pooled.append(pooled)
        self.cls.append(cls)
        self.scores.append(scores)
        self.choice.append(choice)

    def selfsup_loss(self, like: torch.Tensor) -> torch.Tensor:
        """``L_selfsup`` averaged over the cycles with gradient (0 when none has)."""
        losses = [selfsup_loss(delta_z, best_read) for delta_z, best_read in self.reads]
        return torch.stack(losses).mean() if losses else like.new_zeros(())


def _where_rows(rows: torch.Tensor, new: TensorDict, old: TensorDict) -> TensorDict:
    """``new`` where ``rows`` is set, ``old`` elsewhere, key by key."""
    out = old.clone()
    for key, value in new.items():
        mask = rows.view(-1, *([1] * (value.dim() - 1)))
        out[key] = torch.where(mask, value, old[key])
    return out
