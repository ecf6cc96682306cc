"""The HRM/TRM baseline: the same backbone trained by supervision on stored solutions.

One update takes a batch of puzzles ``[B, L]`` and their stored solutions, and runs up to
``segments`` deep-supervision segments (HRM's M_max, TRM's N_sup) from a fresh carry. Each segment
is one backbone call in `grid` mode (the whole board is proposed at once) followed by its own
optimizer step; the carry is detached between segments (the model does this), so every segment is
trained by the gradient mode of the model config (``one_step``: HRM; ``last_cycle``: TRM).

The loss of a segment is cross-entropy of the proposal logits against the stored solution at the
blank positions, plus ``halt_weight`` times the binary cross-entropy of the halting logit against
"the whole proposal equals the stored solution" (TRM's ACT target). A puzzle whose halting logit
is positive stops being trained in later segments of the batch; when all have stopped the update
ends early. On puzzles with several solutions the target is the first stored one only, which is
this baseline's known weakness: a different valid answer is penalised. Evaluation
(:func:`play_supervised`) runs every segment, as HRM and TRM do at test time, and the rules judge
the last proposal like every other agent's board.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from torch import nn

from hrm_rl.agents.evaluation import PlayResults, evaluation_env, play
from hrm_rl.agents.learner import (
    check_precision,
    make_ema,
    optimizer_and_schedule,
    update_ema,
    uses_bf16,
    warmup_cosine_factor,
)
from hrm_rl.agents.ranks import Ranks
from hrm_rl.envs.base import PuzzleRules, PuzzleSet
from hrm_rl.models.hrm import HRM

__all__ = ["SupervisedAgent", "SupervisedConfig", "play_supervised"]


@dataclass
class SupervisedConfig:
    """Hyperparameters of the supervised baseline; the Hydra ``agent/supervised.yaml`` fills it."""

    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_iterations: int = 5
    total_iterations: int = 1000  # for the cosine schedule (one iteration = one batch)
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    segments: int = 8  # M_max deep-supervision segments per batch (HRM: 16)
    halt_weight: float = 0.5  # weight of the halting BCE (HRM's q loss: 0.5)
    ema_decay: float | None = None  # e.g. 0.999 (TRM: EMA of the weights matters)
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; or bf16, fp32

    def __post_init__(self) -> None:
        if self.segments < 1:
            raise ValueError(f"agent.segments must be at least 1, got {self.segments}")
        check_precision(self.precision, "agent.precision")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"agent.ema_decay must lie in (0, 1) or be null, got {self.ema_decay}")


class SupervisedAgent(nn.Module):
    """Deep supervision with ACT halting on the HRM backbone (see the module docstring)."""

    def __init__(self, model: HRM, rules: PuzzleRules, config: SupervisedConfig) -> None:
        super().__init__()
        if model.config.num_positions != rules.num_positions:
            raise ValueError(
                f"the model has {model.config.num_positions} positions, {rules!r} has "
                f"{rules.num_positions}"
            )
        self.model = model
        self.rules = rules
        self.config = config
        self.optimizer, self.scheduler = optimizer_and_schedule(
            model.parameters(), config, self._lr_factor
        )
        self.ema = make_ema(model, config.ema_decay)
        self.iteration = 0
        # a data-parallel run's ranks (see join): gradients are averaged every segment and the
        # batch ends when every rank's puzzles have halted
        self.world: Ranks | None = None

    def join(self, world: Ranks) -> None:
        """Train data-parallel with the other ranks of ``world`` (nothing when it is alone)."""
        if world.joined:
            self.world = world

    def _lr_factor(self, iteration: int) -> float:
        return warmup_cosine_factor(iteration, self.config)

    def update(self, boards: torch.Tensor, solutions: torch.Tensor) -> dict[str, float]:
        """Up to ``segments`` supervised segments on ``boards`` ``[B, L]`` with their stored
        solutions ``[B, S, L]`` (the first is the target); returns metrics, among them
        ``forwards`` (puzzle-segments computed) and ``solved`` (a ``bool[B]`` tensor: the last
        proposal of each puzzle solves it by the rules)."""
        cfg, model, rules = self.config, self.model, self.rules
        B = boards.shape[0]
        model.train()
        mask = rules.proposal_mask(boards)  # [B, L, V]
        target = rules.proposal_of(solutions[:, 0]).long()  # [B, L], values 1..V
        blank = boards == 0  # [B, L]: the positions the loss trains
        carry = model.initial_carry(B, boards.device)
        active = torch.ones(B, dtype=torch.bool, device=boards.device)
        solved = torch.zeros_like(active)
        sums: dict[str, float] = {}
        forwards = segments = 0
        bf16 = uses_bf16(cfg.precision, boards.device)
        for _ in range(cfg.segments):
            with torch.autocast(boards.device.type, torch.bfloat16, enabled=bf16):
                out = model(boards, carry, mask if model.config.candidates else None)
            carry = out.carry  # detached by the model: gradient stays in this segment
            logits = out.grid_logits.float().masked_fill(~mask, -1e4)  # [B, L, V]
            proposal = torch.where(blank, logits.argmax(dim=-1) + 1, boards.long())
            exact = (proposal == target).all(dim=1)  # [B]: the halting target
            cell_loss = F.cross_entropy(logits.transpose(1, 2), target - 1, reduction="none")
            per_puzzle = (cell_loss * blank).sum(dim=1) / blank.sum(dim=1).clamp(min=1)
            halt_logit = out.halt_logit.float()
            halt_loss = F.binary_cross_entropy_with_logits(
                halt_logit, exact.float(), reduction="none"
            )
            weight = active.float() / active.sum().clamp(min=1)  # this rank's mean
            loss = ((per_puzzle + cfg.halt_weight * halt_loss) * weight).sum()
            self.optimizer.zero_grad(set_to_none=True)
            if self.world is None:
                loss.backward()
            else:  # averaged over ranks, the gradient of the mean over all ranks' active puzzles
                everywhere = max(self.world.sum(int(active.sum())), 1)
                (loss * (self.world.size * int(active.sum()) / everywhere)).backward()
                self.world.average_gradients(model.parameters(), True)
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            self._update_ema()

            with torch.no_grad():
                judged = rules.is_solved(proposal)
                solved = torch.where(active, judged, solved)
                correct = ((proposal == target) | ~blank).float().mean(dim=1)
                halted = halt_logit > 0
                for name, value in (
                    ("loss", loss),
                    ("loss_cells", (per_puzzle * weight).sum()),
                    ("loss_halt", (halt_loss * weight).sum()),
                    ("cell_accuracy", (correct * weight).sum()),
                    ("exact_match", (exact.float() * weight).sum()),
                    ("halt_accuracy", ((halted == exact).float() * weight).sum()),
                    ("grad_norm", grad_norm),
                ):
                    sums[name] = sums.get(name, 0.0) + float(value)
            forwards += int(active.sum())
            segments += 1
            active = active & ~halted
            if not (active.any() if self.world is None else self.world.any(bool(active.any()))):
                break  # every puzzle (of every rank) has halted
        self.scheduler.step()
        self.iteration += 1
        metrics: dict = {name: value / segments for name, value in sums.items()}
        metrics.update(
            segments=float(segments),
            forwards=forwards,
            lr=self.optimizer.param_groups[0]["lr"],
            solved=solved,
        )
        return metrics

    def _update_ema(self) -> None:
        update_ema(self.ema, self.model, self.config.ema_decay)


class PuzzleSampler:
    """Random batches of a bank's puzzles (with a random augmentation each), seeded."""

    def __init__(
        self,
        rules: PuzzleRules,
        bank: PuzzleSet,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        augment: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.rules = rules
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.augment = augment
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        self.set_bank(bank)

    def set_bank(self, bank: PuzzleSet) -> None:
        """Draw from ``bank`` from now on (a new curriculum level)."""
        if len(bank) == 0:
            raise ValueError("the puzzle bank is empty")
        self.boards = torch.as_tensor(bank.boards, device=self.device).long()
        self.solutions = torch.as_tensor(bank.solutions, device=self.device).long()

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boards [B, L], solutions [B, S, L])``: B puzzles drawn with replacement."""
        index = torch.randint(
            len(self.boards), (self.batch_size,), generator=self.generator, device=self.device
        )
        self.last_index = index  # the bank rows of this batch
        boards, solutions = self.boards[index], self.solutions[index]
        if self.augment:
            boards, solutions = self.rules.augment(boards, solutions, self.generator)
        return boards, solutions

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def play_supervised(
    model: HRM,
    rules: PuzzleRules,
    puzzles: PuzzleSet,
    *,
    segments: int,
    device: torch.device | str = "cpu",
    sample: bool = False,
    generator: torch.Generator | None = None,
    precision: str = "auto",
    batch_size: int = 1024,
) -> PlayResults:
    """Run ``segments`` segments on every puzzle and judge the last proposal by the rules.

    Greedy (``sample=False``) proposes the most likely admissible value at every blank; sampled
    draws each blank's value from the softmax over admissible values (for pass@K). The proposal
    is one ``grid`` step of :func:`~hrm_rl.agents.evaluation.play` (``max_segments=1``), played
    ``batch_size`` puzzles at a time. ``PlayResults.moves`` is the number of segments and
    ``mistake`` marks unsolved proposals.
    """
    model.eval()
    device = torch.device(device)
    bf16 = uses_bf16(precision, device)

    @torch.no_grad()
    def propose(tensordict: TensorDictBase, playing: torch.Tensor) -> TensorDictBase:
        boards = tensordict["board"]
        mask = rules.proposal_mask(boards)
        carry = model.initial_carry(boards.shape[0], device)
        cells = []
        for _ in range(segments):
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                out = model(
                    boards,
                    carry,
                    mask if model.config.candidates else None,
                    deterministic=not sample,
                    generator=generator,
                )
            carry = out.carry
            if out.selections is not None:
                cells.append(out.selections)
        logits = out.grid_logits.float().masked_fill(~mask, -math.inf)
        if sample:
            flat = torch.softmax(logits, dim=-1).flatten(0, 1)
            values = torch.multinomial(flat, 1, generator=generator).view(boards.shape)
        else:
            values = logits.argmax(dim=-1)
        tensordict.set("action", values)
        if cells:
            tensordict.set("selections", torch.cat(cells, dim=1))  # [P, segments·N, k]
        return tensordict

    num_cells = model.config.num_cells if model.config.selections_per_cycle > 0 else 0
    parts = []
    for first in range(0, len(puzzles), batch_size):
        chunk = puzzles.subset(np.arange(first, min(first + batch_size, len(puzzles))))
        env = evaluation_env(rules, chunk, device, action_mode="grid", max_segments=1)
        parts.append(play(env, propose, num_cells))
    played = PlayResults.concatenate(parts)
    played.moves = np.full(len(puzzles), segments, dtype=np.int64)
    return played
