"""HRMPolicy, the HRM as a TorchRL policy: greedy acting picks the best legal move and hands the
carry on under "next", collected steps replay to the same joint log-probability, and the
precision it runs the backbone in."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from collected import collect
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type, step_mdp

from hrm_rl.agents.policy import HRMPolicy, carry_transforms, joint_log_prob
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.sudoku.rules import SudokuRules
from hrm_rl.models import HRM, HRMConfig

# --- acting ------------------------------------------------------------------------------------


def test_greedy_policy_plays_the_best_legal_move_and_hands_the_carry_on_under_next(bank):
    torch.manual_seed(0)
    config = dict(num_positions=16, num_values=4, d_model=32, num_heads=2, N=2, T=2)
    model = HRM(HRMConfig(**config, h_module="multicell", num_cells=4, top_k=2))
    env = TransformedEnv(
        BatchedPuzzleEnv(SudokuRules(2, 2), bank, batch_size=8, seed=0),
        carry_transforms(model, "cpu"),
    )
    policy = HRMPolicy(model)
    td = env.reset()
    assert td["is_init"].all()  # the primer declared the carry and zero-filled it
    assert all((td[key] == 0).all() for key in ("z_H", "z_L", "cells"))
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        acted = policy(td.clone())
        out = policy.backbone(td, deterministic=True)
        mask = td["action_mask"]
        best_legal = out.move_logits.masked_fill(~mask, float("-inf")).argmax(dim=-1)
        assert (out.move_logits.argmax(dim=-1) != best_legal).any()  # the mask matters here
        assert torch.equal(acted["action"], best_legal)
        assert mask.gather(1, acted["action"].unsqueeze(1)).all()  # never an illegal move
        move = HRMPolicy.move_distribution(out, mask)
        torch.testing.assert_close(acted["log_prob"], joint_log_prob(move, best_legal, out))
        assert torch.equal(acted["selections"], out.selections)  # the top-k cells of each cycle
        for key in ("z_H", "z_L", "cells"):  # the model's carry, under the model's names
            torch.testing.assert_close(acted["next", key], out.carry[key])
            assert not (acted["next", key] == 0).all(), key

        # the env step keeps that carry, and the next step reads it instead of a fresh one
        following = step_mdp(env.step(acted))
        assert not following["is_init"].any()
        torch.testing.assert_close(following["z_H"], acted["next", "z_H"])
        carried = policy(following.clone())
        fresh = following.clone()
        fresh["is_init"] = torch.ones_like(fresh["is_init"])
        assert not torch.allclose(carried["value_pred"], policy(fresh)["value_pred"])


def test_warm_up_segments_think_over_a_fresh_puzzle_before_its_first_move(bank):
    torch.manual_seed(0)
    config = dict(num_positions=16, num_values=4, d_model=32, num_heads=2, N=2, T=2)
    model = HRM(HRMConfig(**config, num_cells=4, top_k=2, warmup_segments=2))
    env = TransformedEnv(
        BatchedPuzzleEnv(SudokuRules(2, 2), bank, batch_size=8, seed=0),
        carry_transforms(model, "cpu"),
    )
    policy = HRMPolicy(model)
    td = env.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        thought = td.clone()
        thought["is_init"][2:] = False  # rows 2.. are mid-episode (their zero carry is kept)
        acted = policy(thought)
        # rows 0 and 1: the move of a third segment from the initial carry, top-k cells
        carry = policy.start_carry(td[:2])
        for _ in range(3):
            out = policy.run_model(td[:2], carry, deterministic=True)
            carry = out.carry
        move = HRMPolicy.move_distribution(out, td["action_mask"][:2])
        assert torch.equal(acted["action"][:2], move.deterministic_sample)
        torch.testing.assert_close(acted["next", "z_H"][:2], carry["z_H"])
        # the warmed carry is stored as the step's input and is_init cleared, so a replay of
        # the step starts from it; mid-episode rows are not warmed
        assert not acted["is_init"].any()
        assert not (acted["z_H"][:2] == 0).all() and (acted["z_H"][2:] == 0).all()
        plain = td.clone()
        plain["is_init"][2:] = False
        policy.warmup_segments = 0
        assert torch.equal(policy(plain)["action"][2:], acted["action"][2:])
        assert not torch.equal(policy(plain)["next", "z_H"][:2], acted["next", "z_H"][:2])


# --- replaying ----------------------------------------------------------------------------------


@pytest.mark.parametrize("replay", ["resume", "recompute"])
@pytest.mark.parametrize("grad", ["one_step", "last_cycle", "full"])
def test_recomputed_joint_log_probs_equal_the_collected_ones_before_any_step(bank, grad, replay):
    agent, data = collect(bank, grad, replay=replay)
    assert ("resume" in data.keys()) == (replay == "resume")  # stored only when replayed from
    flat = data.reshape(-1)
    assert flat["is_init"].any() and (~flat["is_init"]).any()  # fresh and mid-episode steps
    assert agent.replay_max_abs_log_ratio(flat) < 1e-5
    metrics = agent.update(data)
    assert metrics["replay_max_abs_log_ratio"] < 1e-5
    # after the update the policy moved, so the same check now sees a difference
    assert agent.replay_max_abs_log_ratio(flat) > 1e-5


@pytest.mark.parametrize("replay", ["resume", "recompute"])
def test_steps_after_a_warm_up_replay_to_the_collected_log_probs(bank, replay):
    agent, data = collect(bank, "one_step", warmup_segments=2, replay=replay)
    flat = data.reshape(-1)
    assert not flat["is_init"].any()  # every fresh step was warmed: its stored carry is used
    assert not (data["z_H"][:, 0] == 0).all()  # step 0 was fresh in every slot
    assert agent.replay_max_abs_log_ratio(flat) < 1e-5
    assert agent.update(data)["replay_max_abs_log_ratio"] < 1e-5


# --- precision ---------------------------------------------------------------------------------


def linear_output_dtypes(agent) -> tuple[list[torch.dtype], list]:
    """Hooks that record the output dtype of every Linear layer: (the record, the hooks)."""
    seen = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        for module in agent.model.modules()
        if isinstance(module, torch.nn.Linear)
    ]
    return seen, hooks


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])
def test_bf16_autocast_runs_the_backbone_in_bf16_and_keeps_the_outputs_float32(bank, precision):
    agent, data = collect(bank, "one_step", precision=precision)
    seen, hooks = linear_output_dtypes(agent)
    metrics = agent.update(data)
    for hook in hooks:
        hook.remove()
    # on this CPU, auto means float32; bf16 autocasts every Linear of the backbone
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert seen and set(seen) == {expected}
    for key in ("log_prob", "value_pred", ("next", "z_H"), ("resume", "z_L")):
        assert data[key].dtype == torch.float32, key
    assert all(p.dtype == torch.float32 for p in agent.model.parameters())
    assert np.isfinite(metrics["loss_objective"]) and np.isfinite(metrics["grad_norm"])
    # the minibatch shapes differ from the collection's, so bf16 replays only approximately
    assert metrics["replay_max_abs_log_ratio"] < (0.1 if precision == "bf16" else 1e-5)


def test_an_unknown_precision_is_an_error(bank):
    with pytest.raises(ValueError, match="precision must be one of"):
        collect(bank, "one_step", precision="fp8")
