"""The PPO agent: an update that trains every part, both replay modes, its diagnostics and its
options (the policy's acting, exact replay and precision: test_policy.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from collected import collect

from hrm_rl.agents.ppo import PPOConfig, clipped_surrogate
from hrm_rl.envs.maze.generator import generate as generate_mazes
from hrm_rl.envs.maze.rules import MazeRules


def test_one_update_trains_actor_critic_and_cell_policy(bank):
    agent, data = collect(bank, "one_step")
    before = {name: p.detach().clone() for name, p in agent.model.named_parameters()}
    metrics = agent.update(data)
    for key in ("loss_objective", "loss_critic", "loss_entropy", "grad_norm", "lr"):
        assert np.isfinite(metrics[key]), key
    changed = {n for n, p in agent.model.named_parameters() if not torch.equal(p, before[n])}
    for name in ("f_O.weight", "f_V.weight", "H_update.W_r", "H_update.initial_cells"):
        assert name in changed, name


def test_both_replay_modes_give_the_same_loss_and_gradients(bank):
    """Replaying from the stored resume state changes the cost, not the update."""
    agent, data = collect(bank, "one_step", replay="resume")
    batch = agent.compute_advantages(data).reshape(-1)
    results = []
    for replay in ("resume", "recompute"):
        agent.config.replay = replay
        agent.model.zero_grad()
        loss, stats = agent.loss(batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in agent.model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-6)
    assert set(results[0][1]) == set(results[1][1])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], atol=1e-6, rtol=1e-4)


def test_target_kl_stops_the_epochs_of_an_iteration_early(bank):
    agent, data = collect(bank, "one_step", epochs=4, target_kl=0.0)
    metrics = agent.update(data)
    assert metrics["epochs"] == 1 and metrics["approx_kl"] > 0
    agent, data = collect(bank, "one_step", epochs=4)
    assert agent.update(data)["epochs"] == 4


def test_an_iteration_logs_what_the_issue_asks_for(bank):
    agent, data = collect(bank, "one_step")
    metrics = agent.update(data)
    for key in (
        "clip_fraction",
        "approx_kl",
        "explained_variance",
        "entropy_move",
        "entropy_cells",
        "entropy_cells_share",
        "mistakes_per_step",
        "sampled_solve_rate",
    ):
        assert np.isfinite(metrics[key]), key
    assert 0.0 < metrics["entropy_cells_share"] <= 1.0
    done = data["next", "done"] & ~data["next", "solved"] & ~data["next", "truncated"]
    assert metrics["mistakes_per_step"] == pytest.approx(done.float().mean().item())


def test_an_iteration_logs_how_the_cells_are_used(bank):
    agent, data = collect(bank, "one_step")
    metrics = agent.update(data)
    usage = [metrics[f"cell_usage_{i}"] for i in range(4)]
    assert sum(usage) == pytest.approx(1.0) and "cell_usage_4" not in metrics
    picks = torch.bincount(data["selections"].reshape(-1), minlength=4).float()
    assert usage == pytest.approx((picks / picks.sum()).tolist())
    for key in ("greedy_cells_change_cycle", "greedy_cells_change_step"):
        assert 0.0 <= metrics[key] <= 1.0, key
    greedy = data["selections_greedy"]  # [B, T, N, k]: sorted top-k per cycle
    assert (greedy[..., 1:] > greedy[..., :-1]).all()
    changed = (greedy[:, :, 1] != greedy[:, :, 0]).any(dim=-1).float().mean()
    assert metrics["greedy_cells_change_cycle"] == pytest.approx(changed.item())


def test_ablation_contenders_train_without_a_selection_ratio(bank):
    for choice in ("uniform", "topk"):
        agent, data = collect(bank, "one_step", cell_choice=choice)
        assert (data["log_prob_selections"] == 0).all()
        metrics = agent.update(data)
        assert np.isfinite(metrics["loss_objective"]) and "entropy_cells_share" not in metrics


def test_an_unknown_replay_mode_is_an_error():
    with pytest.raises(ValueError, match="agent.replay"):
        PPOConfig(replay="sometimes")


def test_advantages_use_the_values_of_the_next_step(bank):
    agent, data = collect(bank, "one_step")
    data = agent.compute_advantages(data)
    next_value = data["next", "state_value"]
    not_last = ~data["next", "truncated"][:, :-1]
    expected = data["value_pred"][:, 1:][not_last]
    torch.testing.assert_close(next_value[:, :-1][not_last], expected)
    assert torch.isfinite(data["advantage"]).all()


def test_hrm_module_without_cells_trains_too(bank):
    agent, data = collect(bank, "one_step", h_module="hrm")
    assert "selections" not in data.keys()
    metrics = agent.update(data)
    assert metrics["replay_max_abs_log_ratio"] < 1e-5
    assert np.isfinite(metrics["loss_objective"])


# --- the selection policy's own trust region ---------------------------------------------------


def test_the_cells_ratio_clipped_on_its_own_no_longer_clips_the_moves(bank):
    agent, data = collect(bank, "one_step", selection={"clip": 0.2})
    batch = agent.compute_advantages(data).reshape(-1)
    assert "log_prob_selections" in batch.keys()
    with torch.no_grad():
        agent.model.H_update.W_r.mul_(4.0)  # a policy change of the cell scores alone
    loss, stats = agent.loss(batch)
    assert np.isfinite(loss.item())
    assert stats["clip_fraction_cells"] > 0.3
    assert stats["clip_fraction_move"] < stats["clip_fraction_cells"] / 2
    assert stats["clip_fraction"] > stats["clip_fraction_move"]  # the joint ratio would clip
    terms = agent.actor.replay(batch)
    cells = terms["log_prob_selections"] - batch["log_prob_selections"]
    move = terms["log_prob"] - batch["log_prob"] - cells
    advantage = batch["advantage"].view(-1)
    advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    expected = clipped_surrogate(move, advantage, 0.2) + clipped_surrogate(cells, advantage, 0.2)
    assert stats["loss_objective"] == pytest.approx(expected.item(), abs=1e-5)


def test_selection_lr_scale_gives_the_relevance_projections_their_own_step_size(bank):
    agent, _ = collect(bank, "one_step", selection={"lr_scale": 3.0})
    groups = agent.optimizer.param_groups
    assert len(groups) == 2 and groups[1]["params"] == [agent.model.H_update.W_r]
    assert groups[1]["lr"] == pytest.approx(3.0 * groups[0]["lr"])
    count = sum(p.numel() for g in groups for p in g["params"])
    assert count == sum(p.numel() for p in agent.model.parameters())
    agent, _ = collect(bank, "one_step")
    assert len(agent.optimizer.param_groups) == 1  # as checkpoints without the option have


def test_bad_selection_options_are_refused():
    with pytest.raises(ValueError, match="selection.clip"):
        PPOConfig(selection={"clip": 0.0})
    with pytest.raises(ValueError, match="lr_scale"):
        PPOConfig(selection={"lr_scale": -1.0})
    with pytest.raises(ValueError, match="unknown keys"):
        PPOConfig(selection={"entropy": 0.1})


def test_first_move_weight_weighs_each_episodes_first_move_in_the_policy_loss(bank):
    """``first_step`` marks an episode's first move even after a warm-up cleared ``is_init``;
    ``first_move_weight=w`` weighs those steps w against 1 in the clipped objective."""
    agent, data = collect(bank, "one_step", warmup_segments=2, first_move_weight=5.0)
    first = data["first_step"].squeeze(-1)  # [B, T]
    assert not data["is_init"].any()  # the warm-up cleared it
    assert first[:, 0].all()  # the collector's first steps start every slot's first puzzle
    done = data["next", "done"].squeeze(-1)
    assert torch.equal(first[:, 1:], done[:, :-1])  # after an episode ends, the next one starts
    assert first.any() and not first.all()
    metrics = agent.update(data)
    mistakes = done & ~data["next", "solved"].squeeze(-1) & ~data["next", "truncated"].squeeze(-1)
    assert metrics["first_move_mistakes"] == pytest.approx(mistakes[first].float().mean().item())

    agent, data = collect(bank, "one_step", first_move_weight=5.0)
    batch = agent.compute_advantages(data).reshape(-1)
    advantage = batch["advantage"].view(-1)
    advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    weight = 1.0 + 4.0 * batch["first_step"].view(-1).float()
    _, stats = agent.loss(batch)  # before any update the ratio is 1: the loss is −mean(w·Â)
    expected = -(weight / weight.mean() * advantage).mean()
    assert stats["loss_objective"] == pytest.approx(expected.item(), abs=1e-5)
    assert abs(expected.item()) > 1e-3  # unweighted, −mean(Â) would be 0
    agent.config.first_move_weight = 1.0
    assert abs(agent.loss(batch)[1]["loss_objective"]) < 1e-5


def test_a_first_move_weight_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match="first_move_weight"):
        PPOConfig(first_move_weight=0.0)


def test_the_board_weight_trains_the_grid_head_toward_the_shortest_path_cells():
    """``aux_weights.board``: the grid head's cross-entropy against the rules' target board (the
    cells of shortest S–G paths) joins the loss, is logged with the head's accuracy, and falls
    as the agent trains on it; at weight 0 the grid head is left alone."""
    rules = MazeRules(5, 5)
    mazes = generate_mazes(np.random.default_rng(0), 32, size=(5, 5))
    agent, data = collect(mazes, "one_step", rules=rules, aux_weights={"board": 1.0}, epochs=4)
    batch = agent.compute_advantages(data.clone()).reshape(-1)
    _, stats = agent.loss(batch)
    with torch.no_grad():  # the loss by hand: per board, the mean over its open cells
        out = agent.actor.backbone(batch, selections=batch["selections"])
    target, counted = rules.target_board(batch["board"])
    ce = torch.nn.functional.cross_entropy(
        out.grid_logits.transpose(1, 2), target - 1, reduction="none"
    )
    expected = ((ce * counted).sum(1) / counted.sum(1)).mean()
    assert stats["loss_board"] == pytest.approx(expected.item(), rel=1e-4)
    grid_before = agent.model.f_grid.weight.detach().clone()
    first = agent.update(data.clone())
    for _ in range(5):
        last = agent.update(data.clone())
    assert last["loss_board"] < 0.8 * first["loss_board"]
    assert (
        0.0 <= first["board_accuracy"] <= 1.0 and last["board_accuracy"] > first["board_accuracy"]
    )
    assert not torch.equal(agent.model.f_grid.weight, grid_before)

    agent, data = collect(mazes, "one_step", rules=rules)
    grid_before = agent.model.f_grid.weight.detach().clone()
    metrics = agent.update(data)
    assert "loss_board" not in metrics
    assert torch.equal(agent.model.f_grid.weight, grid_before)


def test_board_on_warmup_supervises_each_warm_up_segment_from_a_fresh_carry():
    """``agent.board_on_warmup``: the first moves' warm-up segments are thought over again with
    gradient from the initial carry, each scored against the target board (deep supervision);
    the loss is their mean, it falls under updates, and the option refuses settings where it
    would do nothing."""
    rules = MazeRules(5, 5)
    mazes = generate_mazes(np.random.default_rng(1), 32, size=(5, 5))
    options = {"aux_weights": {"board": 1.0}, "board_on_warmup": True, "epochs": 4}
    agent, data = collect(mazes, "one_step", rules=rules, warmup_segments=2, **options)
    batch = agent.compute_advantages(data.clone()).reshape(-1)
    first = batch["first_step"].view(-1)
    assert 0 < int(first.sum()) < len(first)  # some first moves, and moves after them
    _, stats = agent.loss(batch)
    model = agent.model
    chosen = batch[first]
    boards = chosen["board"]
    candidates = chosen["action_mask"].view(len(boards), rules.num_positions, -1)
    carry = model.initial_carry(len(boards))
    target, counted = rules.target_board(boards)
    expected = []
    with torch.no_grad():  # by hand: the segments from the initial carry, as acting's warm-up
        for _ in range(2):
            out = model(boards, carry, candidates, deterministic=True)
            ce = torch.nn.functional.cross_entropy(
                out.grid_logits.transpose(1, 2), target - 1, reduction="none"
            )
            expected.append(((ce * counted).sum(1) / counted.sum(1)).mean())
            carry = out.carry
    assert stats["loss_board_warmup"] == pytest.approx(
        torch.stack(expected).mean().item(), rel=1e-4
    )
    assert expected[0] != pytest.approx(expected[1].item())  # the second segment's own input
    first_stats = agent.update(data.clone())
    for _ in range(5):
        last = agent.update(data.clone())
    assert last["loss_board_warmup"] < 0.8 * first_stats["loss_board_warmup"]

    agent, data = collect(
        mazes, "one_step", rules=rules, warmup_segments=2, aux_weights={"board": 1.0}
    )
    assert "loss_board_warmup" not in agent.update(data)
    with pytest.raises(ValueError, match="board_on_warmup needs"):
        collect(mazes, "one_step", rules=rules, warmup_segments=0, **options)
    with pytest.raises(ValueError, match="board_on_warmup needs"):
        collect(mazes, "one_step", rules=rules, warmup_segments=2, board_on_warmup=True)


@pytest.mark.parametrize("checkpointed", [True, False])
def test_board_on_warmup_gradient_is_that_of_the_segments_thought_with_it(checkpointed):
    """The warm-up's board loss thinks its segments under activation checkpointing (to keep the
    memory of ten segments near that of one) unless ``agent.warmup_checkpoint=false``; either
    way the gradient it gives every weight is the one of the same segments thought with their
    whole graph kept, and only checkpointing thinks each segment a second time in backward."""
    rules = MazeRules(5, 5)
    mazes = generate_mazes(np.random.default_rng(2), 32, size=(5, 5))
    options = {"aux_weights": {"board": 1.0}, "board_on_warmup": True}
    options["warmup_checkpoint"] = checkpointed
    agent, data = collect(mazes, "one_step", rules=rules, warmup_segments=3, **options)
    batch = agent.compute_advantages(data.clone()).reshape(-1)
    model = agent.model
    model.zero_grad()
    passes = []
    run_model = agent.actor.run_model

    def counted(*args, **kwargs):
        passes.append(1)
        return run_model(*args, **kwargs)

    agent.actor.run_model = counted
    agent.warmup_board_loss(batch).backward()
    del agent.actor.run_model
    assert len(passes) == (6 if checkpointed else 3)
    thought = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    chosen = batch[batch["first_step"].view(-1)]
    boards = chosen["board"]
    candidates = chosen["action_mask"].view(len(boards), rules.num_positions, -1)
    carry = model.initial_carry(len(boards))
    losses = []
    for _ in range(3):
        out = model(boards, carry, candidates, deterministic=True)
        losses.append(agent.board_loss(boards, out.grid_logits)[0])
        carry = out.carry
    torch.stack(losses).mean().backward()
    plain = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert thought.keys() == plain.keys() and len(plain) > 5
    for name, grad in plain.items():
        assert torch.allclose(thought[name], grad, rtol=1e-4, atol=1e-7), name
    assert any(float(grad.abs().max()) > 0 for grad in plain.values())


def test_board_target_picks_which_of_the_rules_targets_the_grid_head_learns():
    rules = MazeRules(5, 5)
    mazes = generate_mazes(np.random.default_rng(2), 16, size=(5, 5))
    options = {"aux_weights": {"board": 1.0}, "board_target": "goal_distance"}
    agent, data = collect(mazes, "one_step", rules=rules, **options)
    batch = agent.compute_advantages(data.clone()).reshape(-1)
    _, stats = agent.loss(batch)
    with torch.no_grad():
        out = agent.actor.backbone(batch, selections=batch["selections"])
    losses = {}
    for kind in rules.board_targets:
        target, counted = rules.target_board(batch["board"], kind=kind)
        ce = torch.nn.functional.cross_entropy(
            out.grid_logits.transpose(1, 2), target - 1, reduction="none"
        )
        losses[kind] = ((ce * counted).sum(1) / counted.sum(1)).mean().item()
    assert stats["loss_board"] == pytest.approx(losses["goal_distance"], abs=1e-5)
    assert stats["loss_board"] != pytest.approx(losses["paths"], abs=1e-4)
    with pytest.raises(ValueError, match="maze board targets"):
        collect(mazes, "one_step", rules=rules, aux_weights={"board": 1.0}, board_target="dist")
