"""PPO for the HRM agent (DESIGN §4), one iteration read top to bottom in :meth:`PPOAgent.update`.

collect (a TorchRL ``Collector`` over ``BatchedPuzzleEnv`` with :class:`HRMPolicy`, outside this
module) → advantages (TorchRL's ``GAE``) → ``epochs`` passes over shuffled minibatches of the
clipped-ratio loss on the joint log-probability of move and cells (:func:`joint_log_prob`), the
value loss, both heads' entropies and the weighted memory losses → AdamW with gradient clipping,
a warm-up + cosine learning rate, an approx-KL early stop per epoch, optional weight EMA.

Each stored step is replayed with its cells forced. With ``replay="resume"`` (the default) the
replay starts where the step's tracked part starts (the state stored at collection), so an epoch
costs the steps that carry gradient (one L step and one H update under the one-step gradient)
instead of the whole segment; ``replay="recompute"`` runs the whole segment again from the stored
input carry. Both give the collected log-probability back before the first optimizer step, and
the same gradients.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.objectives.value import GAE

from hrm_rl.agents.learner import (
    make_ema,
    optimizer_and_schedule,
    update_ema,
    warmup_cosine_factor,
)
from hrm_rl.agents.policy import HRMPolicy
from hrm_rl.agents.ranks import Ranks
from hrm_rl.models.hrm import HRM

REPLAY_MODES = ("resume", "recompute")


@dataclass
class PPOConfig:
    """Hyperparameters of PPO; the Hydra ``agent/ppo.yaml`` fills it (and says why each value)."""

    lr: float = 3e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_iterations: int = 1
    total_iterations: int | None = 1000  # the cosine schedule's length (None: the time budget's)
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    gamma: float = 1.0  # episodes are short and a full solve sums to 1 + bonus
    gae_lambda: float = 0.2
    clip_epsilon: float = 0.2
    epochs: int = 2
    minibatch_size: int = 256
    target_kl: float | None = None  # stop the epochs once one's mean approx-KL exceeds it
    critic_coeff: float = 0.5
    entropy_move: float = 0.003  # 0.01 kept the policy moving after nearly every move was sound
    entropy_cells: float = 0.001
    normalize_advantage: bool = True
    first_move_weight: float = 1.0  # the policy loss's weight on an episode's first move
    ema_decay: float | None = None  # e.g. 0.999 (TRM reports EMA matters)
    # the memory's losses, and "board": the grid head predicts the rules' target board
    aux_weights: dict[str, float] = field(
        default_factory=lambda: {"diverse": 0.0, "balance": 0.01, "selfsup": 0.0, "board": 0.0}
    )
    board_target: str | None = None  # which of the rules' target boards (None: their default)
    # the board loss also on each warm-up segment of the minibatch's first moves (deep supervision)
    board_on_warmup: bool = False
    # think those segments again under activation checkpointing: memory for a second forward pass
    warmup_checkpoint: bool = True
    max_bad_updates: int = 5  # non-finite losses in a row before the run stops
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU; or bf16, fp32
    replay: str = "resume"  # resume: replay only what carries gradient; recompute: whole segment
    # the cell-selection policy's own trust region and step size (see PPOAgent.loss)
    selection: dict = field(default_factory=lambda: {"clip": None, "lr_scale": 1.0})

    def __post_init__(self) -> None:
        unknown = set(self.selection) - {"clip", "lr_scale"}
        if unknown:
            raise ValueError(f"agent.selection has unknown keys {sorted(unknown)}: clip, lr_scale")
        self.selection = {"clip": None, "lr_scale": 1.0, **self.selection}
        clip, scale = self.selection["clip"], self.selection["lr_scale"]
        if clip is not None and not clip > 0:
            raise ValueError(f"agent.selection.clip must be null or > 0, got {clip}")
        if not scale > 0:
            raise ValueError(f"agent.selection.lr_scale must be > 0, got {scale}")
        if self.replay not in REPLAY_MODES:
            raise ValueError(f"agent.replay must be one of {REPLAY_MODES}, got {self.replay!r}")
        if not self.first_move_weight > 0:
            raise ValueError(f"agent.first_move_weight must be > 0, got {self.first_move_weight}")
        if self.epochs < 1 or self.minibatch_size < 1:
            raise ValueError(
                f"agent.epochs and agent.minibatch_size must be at least 1, got "
                f"{self.epochs} and {self.minibatch_size}"
            )


class NonFiniteLossError(RuntimeError):
    """The loss was NaN or infinite too many updates in a row."""


class PPOAgent(nn.Module):
    """The HRM policy, its PPO loss, optimiser, schedule and (optional) EMA weights."""

    def __init__(
        self,
        model: HRM,
        config: PPOConfig,
        target_board: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]
        | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        # boards [M, L] -> (values, positions that count), PuzzleRules.target_board: needed
        # when aux_weights.board > 0, and then it must give one (checked on an empty board)
        if config.board_target is not None and target_board is not None:
            target_board = functools.partial(target_board, kind=config.board_target)
        self.target_board = target_board
        if config.aux_weights.get("board", 0.0):
            empty = torch.zeros(1, model.config.num_positions, dtype=torch.long)
            if target_board is None or target_board(empty) is None:
                raise ValueError(
                    "agent.aux_weights.board > 0, but the rules give no target board "
                    "(PuzzleRules.target_board; mazes do); set agent.aux_weights.board=0"
                )
        if config.board_on_warmup and not (
            config.aux_weights.get("board", 0.0) and model.config.warmup_segments > 0
        ):
            raise ValueError(
                "agent.board_on_warmup needs agent.aux_weights.board > 0 and "
                f"model.warmup_segments > 0 (got {config.aux_weights.get('board', 0.0)} and "
                f"{model.config.warmup_segments})"
            )
        # the actor a Collector runs: it stores the resume state when the update replays from it
        self.actor = HRMPolicy(model, config.precision, keep_resume=config.replay == "resume")
        self.advantage = GAE(
            gamma=config.gamma,
            lmbda=config.gae_lambda,
            value_network=None,  # values are filled in by compute_advantages
            average_gae=False,
            deactivate_vmap=True,
        )
        self.time_progress = 0.0  # share of the run's time budget used (see update)
        self.optimizer, self.scheduler = optimizer_and_schedule(
            parameter_groups(model, config), config, self._lr_factor
        )
        self.ema = make_ema(model, config.ema_decay)
        self.iteration = 0
        self.bad_updates = 0
        # data-parallel runs set this to Ranks.average_gradients: (parameters, this rank's loss
        # is finite) -> averaged gradients in place, and whether every rank's loss was finite
        self.gradient_sync: Callable[[Iterable[nn.Parameter], bool], bool] | None = None

    def join(self, world: Ranks) -> None:
        """Train data-parallel with the other ranks of ``world`` (nothing when it is alone)."""
        if world.joined:
            self.gradient_sync = world.average_gradients

    def _lr_factor(self, iteration: int) -> float:
        return warmup_cosine_factor(iteration, self.config, self.time_progress)

    # --- one PPO iteration --------------------------------------------------------------------

    def update(self, data: TensorDictBase, time_progress: float = 0.0) -> dict[str, float]:
        """One iteration on a collected ``[B, T]`` batch: advantages, then ``epochs`` passes over
        shuffled minibatches (fewer when approx-KL passes ``target_kl``); returns the metrics.

        ``time_progress`` is the share of the run's time budget used so far (0 without one): the
        cosine schedule follows it or the iteration count, whichever is further along."""
        cfg = self.config
        device = next(self.model.parameters()).device  # minibatches go where the model is
        data = data.to(device)
        metrics = rollout_metrics(data, self.actor.num_choosable_cells)
        data = self.compute_advantages(data).reshape(-1)  # [B·T]
        metrics["explained_variance"] = explained_variance(data["value_pred"], data["value_target"])
        size = min(cfg.minibatch_size, data.numel())
        sums: dict[str, float] = {}
        steps = epochs = skipped = 0
        for _ in range(cfg.epochs):
            epoch_kl = []
            for index in torch.randperm(data.numel(), device=device).split(size):
                loss, stats = self.loss(data[index])
                largest = stats.pop("max_abs_log_ratio")
                if "replay_max_abs_log_ratio" not in metrics:  # before the first step: ρ ≡ 1
                    metrics["replay_max_abs_log_ratio"] = largest
                if not self.step(loss, stats):
                    skipped += 1
                    continue
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value
                epoch_kl.append(stats["approx_kl"])
                steps += 1
            epochs += 1
            mean_kl = sum(epoch_kl) / max(len(epoch_kl), 1)
            if cfg.target_kl is not None and mean_kl > cfg.target_kl:
                break  # the policy moved far enough from the one that collected the batch
        self.time_progress = time_progress
        self.scheduler.step()  # the next iteration's learning rate
        self.iteration += 1
        metrics.update({key: value / max(steps, 1) for key, value in sums.items()})
        metrics.update(epochs=epochs, optimizer_steps=steps)
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["skipped_updates"] = float(skipped)
        return metrics

    def loss(self, batch: TensorDictBase) -> tuple[torch.Tensor, dict[str, float]]:
        """The PPO loss of one minibatch of stored steps, and its diagnostics.

        ``L = −min(ρ·Â, clip(ρ, 1±ε)·Â) + c_V·(V − R)² − c_move·H_move − c_cells·H_cells
        + Σ w·L_aux`` with ``ρ = exp(log π_θ(a, A | s) − log π_old(a, A | s))``; the auxiliary
        losses are the memory's and the board target's (:meth:`board_loss`).
        """
        cfg = self.config
        terms = self.actor.replay(batch, resume=cfg.replay == "resume")
        log_ratio = terms["log_prob"] - batch["log_prob"]  # [M]
        ratio = log_ratio.exp()
        advantage = batch["advantage"].view(-1)
        if cfg.normalize_advantage and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        stats = {}
        weight = None
        if cfg.first_move_weight != 1.0:  # first moves weigh w, the rest 1; mean 1 per minibatch
            first = batch["first_step"].view(-1).float()
            weight = 1.0 + (cfg.first_move_weight - 1.0) * first
            weight = weight / weight.mean()
        selection_clip = cfg.selection["clip"]
        if selection_clip is None or not self.actor.with_cells:  # one ratio for the whole step
            loss_objective = clipped_surrogate(log_ratio, advantage, cfg.clip_epsilon, weight)
        else:  # the move's and the cells' ratios, each clipped on its own
            cells_log_ratio = terms["log_prob_selections"] - batch["log_prob_selections"]
            move_log_ratio = log_ratio - cells_log_ratio
            loss_objective = clipped_surrogate(
                move_log_ratio, advantage, cfg.clip_epsilon, weight
            ) + clipped_surrogate(cells_log_ratio, advantage, selection_clip, weight)
            with torch.no_grad():
                stats["clip_fraction_move"] = clip_fraction(move_log_ratio, cfg.clip_epsilon)
                stats["clip_fraction_cells"] = clip_fraction(cells_log_ratio, selection_clip)
        loss_critic = (terms["value"] - batch["value_target"].view(-1)).pow(2).mean()
        entropy_move, entropy_cells = terms["entropy_move"].mean(), terms["entropy_cells"].mean()
        loss_entropy = -(cfg.entropy_move * entropy_move + cfg.entropy_cells * entropy_cells)
        loss = loss_objective + cfg.critic_coeff * loss_critic + loss_entropy
        if cfg.aux_weights.get("board", 0.0):
            board_loss, accuracy = self.board_loss(batch["board"], terms["grid_logits"])
            loss = loss + cfg.aux_weights["board"] * board_loss
            stats.update(loss_board=float(board_loss.detach()), board_accuracy=accuracy)
            if cfg.board_on_warmup:
                warmup_loss = self.warmup_board_loss(batch)
                if warmup_loss is not None:
                    loss = loss + cfg.aux_weights["board"] * warmup_loss
                    stats["loss_board_warmup"] = float(warmup_loss.detach())
        for name, weight in cfg.aux_weights.items():
            if name in terms["aux"].keys():
                aux = terms["aux", name].mean()
                stats[f"loss_{name}"] = float(aux.detach())
                if weight:
                    loss = loss + weight * aux
        with torch.no_grad():
            stats.update(
                loss_objective=float(loss_objective),
                loss_critic=float(loss_critic),
                loss_entropy=float(loss_entropy),
                entropy_move=float(entropy_move),
                entropy_cells=float(entropy_cells),
                approx_kl=float(((ratio - 1.0) - log_ratio).mean()),  # k3 estimator, ≥ 0
                clip_fraction=clip_fraction(log_ratio, cfg.clip_epsilon),
                max_abs_log_ratio=float(log_ratio.abs().max()),
            )
            if self.actor.max_cells_entropy() > 0:
                share = stats["entropy_cells"] / self.actor.max_cells_entropy()
                stats["entropy_cells_share"] = share
        return loss, stats

    def board_loss(
        self, boards: torch.Tensor, grid_logits: torch.Tensor
    ) -> tuple[torch.Tensor, float]:
        """The auxiliary board loss: the grid head's cross-entropy against the rules' target
        board at the positions that count, averaged per board and then over the boards; and the
        share of those positions whose top grid value is the target."""
        values, counted = self.target_board(boards)
        classes = values.long() - 1  # values 1..V -> logits 0..V-1
        per_position = nn.functional.cross_entropy(
            grid_logits.flatten(0, 1), classes.flatten(), reduction="none"
        ).view_as(counted)
        weight = counted.float()
        per_board = (per_position * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
        with torch.no_grad():
            hits = (grid_logits.argmax(dim=-1) == classes) & counted
            accuracy = float(hits.sum() / counted.sum().clamp(min=1))
        return per_board.mean(), accuracy

    def warmup_board_loss(self, batch: TensorDictBase) -> torch.Tensor | None:
        """The board loss of each warm-up segment of the minibatch's first moves, thought over
        again with gradient from a fresh carry, each segment from the detached carry of the one
        before (HRM's deep supervision); averaged over the segments. None without a first move.

        Acting thinks those segments without gradient and the replay starts after them, so
        otherwise no segment from a fresh carry ever learns."""
        first = batch["first_step"].view(-1)
        if not bool(first.any()):
            return None
        actor = self.actor
        chosen = batch[first.nonzero().squeeze(1)].select(
            "board", "action_mask", "is_init", *actor.carry_keys
        )
        chosen.set("is_init", torch.ones_like(chosen["is_init"]))
        outputs, _ = actor.think(chosen, checkpointed=self.config.warmup_checkpoint)
        losses = [self.board_loss(chosen["board"], out.grid_logits.float())[0] for out in outputs]
        return torch.stack(losses).mean()

    def step(self, loss: torch.Tensor, stats: dict[str, float]) -> bool:
        """Backward, average over ranks, clip, AdamW step, EMA; False when the loss was not
        finite (on any rank), in which case nothing changes."""
        cfg = self.config
        finite = bool(torch.isfinite(loss))
        self.optimizer.zero_grad(set_to_none=True)
        if finite:
            loss.backward()
        if self.gradient_sync is not None:  # average over ranks; skip if any was bad
            finite = self.gradient_sync(self.model.parameters(), finite)
        if not finite:
            self.bad_updates += 1
            self.optimizer.zero_grad(set_to_none=True)
            if self.bad_updates >= cfg.max_bad_updates:
                raise NonFiniteLossError(
                    f"the PPO loss was not finite in {self.bad_updates} updates in a row "
                    f"(iteration {self.iteration}); lower agent.lr or check the inputs"
                )
            return False
        self.bad_updates = 0
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        stats["grad_norm"] = float(grad_norm)
        self.optimizer.step()
        update_ema(self.ema, self.model, cfg.ema_decay)
        return True

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
        pending = next_data[rows].select(*[k for k in self.actor.in_keys if k != "is_init"])
        pending.set("is_init", torch.zeros(len(pending), 1, dtype=torch.bool, device=value.device))
        out = self.actor.backbone(pending, deterministic=True)
        next_value[rows] = out.value.float().unsqueeze(-1)
        next_data.set("state_value", next_value)
        self.advantage(data)
        return data

    @torch.no_grad()
    def replay_max_abs_log_ratio(self, batch: TensorDictBase) -> float:
        """max |log π_now(a, A|s) − log π_collected(a, A|s)| over ``batch`` (0 before any step)."""
        terms = self.actor.replay(batch, resume=self.config.replay == "resume")
        return float((terms["log_prob"] - batch["log_prob"]).abs().max())


def clipped_surrogate(
    log_ratio: torch.Tensor,
    advantage: torch.Tensor,
    epsilon: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """PPO's clipped objective as a loss: ``−mean(w·min(ρ·Â, clip(ρ, 1 ± ε)·Â))`` (w ≡ 1 unless
    per-step weights are given)."""
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1.0 - epsilon, 1.0 + epsilon)
    objective = torch.min(ratio * advantage, clipped * advantage)
    if weight is not None:
        objective = objective * weight
    return -objective.mean()


def clip_fraction(log_ratio: torch.Tensor, epsilon: float) -> float:
    """Share of steps whose ratio lies outside ``1 ± ε``."""
    return float(((log_ratio.exp() - 1.0).abs() > epsilon).float().mean())


def parameter_groups(model: HRM, config: PPOConfig) -> list[dict]:
    """AdamW parameter groups: the selection policy's own parameters (the relevance projections
    W_r, which only score the cells) at ``lr · selection.lr_scale``, everything else at ``lr``
    (one group while the scale is 1, as checkpoints made before the option have)."""
    selection = getattr(model.H_update, "W_r", None)
    own = [] if selection is None or config.selection["lr_scale"] == 1.0 else [selection]
    rest = [p for p in model.parameters() if all(p is not q for q in own)]
    groups = [{"params": rest, "lr": config.lr}]
    if own:
        groups.append({"params": own, "lr": config.lr * config.selection["lr_scale"]})
    return groups


def rollout_metrics(data: TensorDictBase, num_cells: int) -> dict[str, float]:
    """What sampled play did in a collected ``[B, T]`` batch: mistakes per step (an episode that
    ended neither solved nor truncated) and the share of finished episodes solved."""
    done = data["next", "done"].view(-1)
    solved = data["next", "solved"].view(-1)
    mistakes = done & ~solved & ~data["next", "truncated"].view(-1)
    finished = int(done.sum())
    metrics = {
        "mistakes_per_step": float(mistakes.float().mean()),
        "sampled_solve_rate": float(solved[done].float().mean()) if finished else float("nan"),
    }
    if "first_step" in data.keys():  # how often sampled play's first move ended the episode
        first = data["first_step"].view(-1)
        if first.any():
            metrics["first_move_mistakes"] = float(mistakes[first].float().mean())
    if "selections" in data.keys():
        metrics.update(selection_metrics(data, num_cells))
    return metrics


def selection_metrics(data: TensorDictBase, num_cells: int) -> dict[str, float]:
    """How the cells were used in a collected ``[B, T]`` batch: each of the ``num_cells``
    choosable cells' share of the sampled picks (``cell_usage_i``; 1/N_c each when uniform),
    and how often the greedy
    (top-k by score) set changes from one cycle to the next within a step
    (``greedy_cells_change_cycle``) and from one step to the next within an episode, in the
    first cycle (``greedy_cells_change_step``)."""
    cells = data["selections"].long()  # [B, T, N, k]
    greedy = data["selections_greedy"]  # [B, T, N, k], each set sorted
    usage = torch.bincount(cells.reshape(-1), minlength=num_cells).float()
    metrics = {f"cell_usage_{i}": float(u) for i, u in enumerate(usage / usage.sum())}
    if greedy.shape[2] > 1:
        changed = (greedy[:, :, 1:] != greedy[:, :, :-1]).any(dim=-1)  # [B, T, N-1]
        metrics["greedy_cells_change_cycle"] = float(changed.float().mean())
    if greedy.shape[1] > 1:
        # step t + 1 continues step t's episode unless t ended it (is_init may be cleared by a
        # warm-up, model.warmup_segments)
        same_episode = ~data["next", "done"][:, :-1].reshape(greedy.shape[0], -1)  # [B, T-1]
        changed = (greedy[:, 1:, 0] != greedy[:, :-1, 0]).any(dim=-1)  # [B, T-1]
        if same_episode.any():
            metrics["greedy_cells_change_step"] = float(changed[same_episode].float().mean())
    return metrics


def explained_variance(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """``1 − Var(R − V) / Var(R)``: 1 for a perfect critic, ≤ 0 for no better than a constant."""
    prediction, target = prediction.reshape(-1), target.reshape(-1)
    variance = target.var()
    if variance == 0:
        return float("nan")
    return float(1.0 - (target - prediction).var() / variance)
