"""PPO for the HRM agent on TorchRL primitives (DESIGN §4).

collect (``Collector`` over ``BatchedPuzzleEnv``) → advantages (``GAE``) → epochs of minibatches
without replacement (``SamplerWithoutReplacement``) → ``ClipPPOLoss`` on the joint log-probability
of move and cells, plus the weighted memory losses → AdamW, gradient clipping, warm-up + cosine
learning rate, optional weight EMA.

Every stored step carries its *input* carry and its cells, and the loss replays each step from
them with the cells forced (TorchRL runs losses in recurrent mode, which the policy reads as
"replay"), so the update differentiates exactly the one-step-gradient graph of the step. The same
backbone forward serves actor and critic: the actor writes ``value_pred`` (with gradient) into the
loss's tensordict, and the critic the loss sees only renames it to ``state_value``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, set_composite_lp_aggregate
from torch import nn
from torchrl.data import LazyTensorStorage, SamplerWithoutReplacement, TensorDictReplayBuffer
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from hrm_rl.agents.policy import PolicyModule, build_actor, replay_mode
from hrm_rl.distributed import World
from hrm_rl.models.hrm import HRM

set_composite_lp_aggregate(False).set()  # one log-prob per head: action_log_prob, cells_log_prob


@dataclass
class PPOConfig:
    """Hyperparameters of PPO; the Hydra ``agent/ppo.yaml`` fills it."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_iterations: int = 5
    total_iterations: int = 1000  # for the cosine schedule
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    gamma: float = 1.0  # episodes are short and a full solve sums to 1 + bonus
    gae_lambda: float = 0.95
    clip_epsilon: float = 0.2
    epochs: int = 4
    minibatch_size: int = 512
    critic_coeff: float = 0.5
    entropy_move: float = 0.01
    entropy_cells: float = 0.001
    normalize_advantage: bool = True
    ema_decay: float | None = None  # e.g. 0.999 (TRM reports EMA matters)
    aux_weights: dict[str, float] = field(
        default_factory=lambda: {"diverse": 0.0, "balance": 0.01, "selfsup": 0.0}
    )
    max_bad_updates: int = 5  # non-finite losses in a row before the run stops
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; or bf16, fp32


class ValueFromActor(TensorDictModuleBase):
    """The critic the loss sees: this forward's ``value_pred`` (the actor's), as ``state_value``."""

    in_keys = ["value_pred"]
    out_keys = ["state_value"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict.set("state_value", tensordict["value_pred"])


class NonFiniteLossError(RuntimeError):
    """The loss was NaN or infinite too many updates in a row."""


class PPOAgent(nn.Module):
    """The HRM policy, its PPO loss, optimiser, schedule and (optional) EMA weights."""

    def __init__(self, model: HRM, config: PPOConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.actor, self.policy = build_actor(model, config.precision)
        self.value_module = _StateValueModule(self.policy)
        entropy: float | dict[str, float] = config.entropy_move
        if model.config.selections_per_cycle:
            entropy = {"action_entropy": config.entropy_move, "cells_entropy": config.entropy_cells}
        self.loss_module = ClipPPOLoss(
            self.actor,
            ValueFromActor(),
            clip_epsilon=config.clip_epsilon,
            entropy_coeff=entropy,
            critic_coeff=config.critic_coeff,
            loss_critic_type="l2",
            normalize_advantage=config.normalize_advantage,
        )
        self.loss_module.set_keys(value="state_value")
        self.advantage = GAE(
            gamma=config.gamma,
            lmbda=config.gae_lambda,
            value_network=None,  # values are filled in by compute_advantages
            average_gae=False,
            deactivate_vmap=True,
        )
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay else None
        self.iteration = 0
        self.bad_updates = 0
        # data-parallel runs set this to World.average_gradients: (parameters, this rank's loss
        # is finite) -> averaged gradients in place, and whether every rank's loss was finite
        self.gradient_sync: Callable[[Iterable[nn.Parameter], bool], bool] | None = None

    def join(self, world: World) -> None:
        """Train data-parallel with the other ranks of ``world`` (nothing when it is alone)."""
        if world.joined:
            self.gradient_sync = world.average_gradients

    def _lr_factor(self, iteration: int) -> float:
        return warmup_cosine_factor(iteration, self.config)

    # --- one PPO iteration --------------------------------------------------------------------

    @torch.no_grad()
    def compute_advantages(self, data: TensorDictBase) -> TensorDictBase:
        """GAE over the time dimension of a collected ``[B, T]`` batch.

        Values are the ones the actor computed while acting (``value_pred``). The value of the
        state after step t is the one acted on at t + 1, except after the last step of the
        rollout and after a truncation (the slot was reset), which are computed here.
        """
        value = data["value_pred"]  # [B, T, 1]
        data.set("state_value", value)
        next_data = data["next"]
        next_value = torch.empty_like(value)
        next_value[:, :-1] = value[:, 1:]
        needed = next_data["truncated"].squeeze(-1).clone()  # [B, T]
        needed[:, -1] = True
        rows = needed.nonzero(as_tuple=True)
        pending = next_data[rows].select(*[k for k in self.policy.in_keys if k != "is_init"])
        pending.set("is_init", torch.zeros(len(pending), 1, dtype=torch.bool, device=value.device))
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            next_value[rows] = self.value_module(pending)["state_value"]
        next_data.set("state_value", next_value)
        self.advantage(data)
        return data

    @torch.no_grad()
    def replay_max_abs_log_ratio(self, batch: TensorDictBase) -> float:
        """max |log π_now(a|s) − log π_collected(a|s)| over ``batch`` (0 before any update)."""
        with replay_mode(True):
            dist = self.actor.get_dist(batch.clone(False))
            if not self.policy.with_cells:  # a single head: the move
                new = dist.log_prob(batch["action"])
                return float((new - batch["action_log_prob"]).abs().max())
            new = dist.log_prob(batch.select(*self._action_keys()))
        ratio = torch.zeros_like(batch["action_log_prob"])
        for key in new.keys():
            ratio = ratio + new[key] - batch[key]
        return float(ratio.abs().max())

    def _action_keys(self) -> list[str]:
        return ["action", "cells"] if self.policy.with_cells else ["action"]

    def update(self, data: TensorDictBase, generator: torch.Generator | None = None) -> dict:
        """Advantages, then ``epochs`` passes over shuffled minibatches; returns mean metrics."""
        cfg = self.config
        device = next(self.model.parameters()).device  # minibatches go where the model is
        data = self.compute_advantages(data.to(device)).reshape(-1)
        buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(data.numel(), device=device),
            sampler=SamplerWithoutReplacement(),
            batch_size=min(cfg.minibatch_size, data.numel()),
        )
        buffer.extend(data)
        sums: dict[str, float] = {}
        count = 0
        metrics = {"replay_max_abs_log_ratio": self.replay_max_abs_log_ratio(data[:256])}
        for _ in range(cfg.epochs):
            for _ in range(math.ceil(data.numel() / buffer._batch_size)):
                batch = buffer.sample()
                losses = self.loss_module(batch)
                out = self.policy.last_output
                loss = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
                for name, weight in cfg.aux_weights.items():
                    if weight and name in out.aux_losses:
                        loss = loss + weight * out.aux_losses[name]
                        losses.set(f"loss_{name}", out.aux_losses[name].detach())
                finite = bool(torch.isfinite(loss))
                self.optimizer.zero_grad(set_to_none=True)
                if finite:
                    loss.backward()
                if self.gradient_sync is not None:  # average over ranks; skip if any was bad
                    finite = self.gradient_sync(self.model.parameters(), finite)
                if not finite:
                    self.bad_updates += 1
                    sums["skipped_updates"] = sums.get("skipped_updates", 0.0) + 1
                    if self.bad_updates >= cfg.max_bad_updates:
                        raise NonFiniteLossError(
                            f"the PPO loss was not finite in {self.bad_updates} updates in a row "
                            f"(iteration {self.iteration}); lower agent.lr or check the inputs"
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    continue
                self.bad_updates = 0
                grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                self._update_ema()
                for key in (
                    "loss_objective",
                    "loss_critic",
                    "loss_entropy",
                    "entropy",
                    "clip_fraction",
                    "kl_approx",
                    "explained_variance",
                ):
                    if key in losses.keys():
                        sums[key] = sums.get(key, 0.0) + float(losses[key].detach())
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm)
                count += 1
        self.scheduler.step()
        self.iteration += 1
        metrics.update({key: value / max(count, 1) for key, value in sums.items()})
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def _update_ema(self) -> None:
        update_ema(self.ema, self.model, self.config.ema_decay)


def warmup_cosine_factor(iteration: int, config) -> float:
    """The LR multiplier: linear warm-up over ``config.warmup_iterations``, then cosine decay to
    ``config.min_lr_ratio`` at ``config.total_iterations`` (shared by the PPO and supervised
    agents)."""
    if iteration < config.warmup_iterations:
        return (iteration + 1) / config.warmup_iterations
    span = max(1, config.total_iterations - config.warmup_iterations)
    progress = min(1.0, (iteration - config.warmup_iterations) / span)
    ratio = config.min_lr_ratio
    return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def update_ema(ema: nn.Module | None, model: nn.Module, decay: float | None) -> None:
    """ema ← decay · ema + (1 − decay) · model, parameter by parameter (nothing without an EMA)."""
    if ema is None:
        return
    for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
        ema_p.lerp_(p, 1.0 - decay)


class _StateValueModule(TensorDictModuleBase):
    """State values for GAE: one backbone forward (no gradient), written as ``state_value``."""

    def __init__(self, policy: PolicyModule) -> None:
        super().__init__()
        self.policy = policy
        self.in_keys = list(policy.in_keys)
        self.out_keys = ["state_value"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        scratch = tensordict.select(*self.in_keys).clone(False)
        value = self.policy(scratch)["value_pred"]
        return tensordict.set("state_value", value)
