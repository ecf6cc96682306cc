"""The supervised (HRM/TRM-style) baseline: deep supervision, ACT halting, rule-judged play."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from hrm_rl.agents.supervised import (
    PuzzleSampler,
    SupervisedAgent,
    SupervisedConfig,
    play_supervised,
)
from hrm_rl.envs.registration import make_rules
from hrm_rl.evaluate import evaluation_report
from hrm_rl.models import HRM, HRMConfig

ENV_CFG = OmegaConf.create({"action_mode": "grid", "solve_bonus": 1.0, "mistake_reward": -1.0})


def small_agent(rules, seed: int = 0, **options) -> SupervisedAgent:
    torch.manual_seed(seed)
    model = HRM(
        HRMConfig(
            num_positions=rules.num_positions,
            num_values=rules.num_values,
            d_model=32,
            num_heads=2,
            h_module="hrm",
        )
    )
    config = {"lr": 3e-3, "warmup_iterations": 1, "total_iterations": 10**6, **options}
    return SupervisedAgent(model, rules, SupervisedConfig(**config))


def tensors(puzzles) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(puzzles.boards).long(), torch.as_tensor(puzzles.solutions).long()


@pytest.fixture(scope="module")
def sudoku4():
    return make_rules("sudoku", box=(2, 2))


def test_the_loss_falls_and_the_halting_head_learns_on_a_fixed_batch(sudoku4):
    boards, solutions = tensors(sudoku4.generate(np.random.default_rng(0), 16))
    agent = small_agent(sudoku4, segments=2)
    first = agent.update(boards, solutions)
    for _ in range(150):
        last = agent.update(boards, solutions)
        if last["exact_match"] == 1.0 and last["segments"] == 1:
            break
    assert last["loss_cells"] < 0.2 * first["loss_cells"]
    assert last["exact_match"] == 1.0  # the 16 boards are memorised ...
    # ... and the halting head, which starts at "never halt" (bias -5), learned to say so:
    # every puzzle halts after its first segment, so the update ran one segment, not two
    assert first["segments"] == 2
    assert last["segments"] == 1
    with torch.no_grad():
        out = agent.model(boards, agent.model.initial_carry(16), sudoku4.proposal_mask(boards))
    assert (out.halt_logit > 0).all()


def test_halted_puzzles_stop_the_update_early(sudoku4):
    boards, solutions = tensors(sudoku4.generate(np.random.default_rng(1), 8))
    agent = small_agent(sudoku4, segments=4)
    assert agent.update(boards, solutions)["segments"] == 4  # nothing halts at the start
    torch.nn.init.constant_(agent.model.f_halt.bias, 10.0)  # everything halts at once
    assert agent.update(boards, solutions)["segments"] == 1


def test_the_other_solution_counts_as_solved_but_not_as_an_exact_match(sudoku4):
    """A puzzle with two solutions, trained on the *second*: the rules accept the model's board,
    exact match (against the stored answer, the first) does not."""
    puzzles = sudoku4.generate(np.random.default_rng(2), 4, mode="multi", cap=2)
    two = np.flatnonzero(puzzles.num_solutions == 2)[:1]
    assert len(two) == 1
    puzzle = puzzles.subset(two)
    boards, solutions = tensors(puzzle)
    assert not torch.equal(solutions[0, 0], solutions[0, 1])
    agent = small_agent(sudoku4, segments=2)
    swapped = solutions.flip(1)  # the target is the first stored solution: now the other one
    for _ in range(100):
        agent.update(boards, swapped)
        played = play_supervised(agent.model, sudoku4, puzzle, segments=2)
        if (played.final_board[0] == swapped[0, 0].numpy()).all():
            break
    assert (played.final_board[0] == swapped[0, 0].numpy()).all()
    agent_cfg = OmegaConf.create({"segments": 2, "precision": "fp32"})
    metrics = evaluation_report(None, agent.model, sudoku4, puzzle, ENV_CFG, "cpu", 1, 0, agent_cfg)
    assert metrics["pass@1"] == 1.0
    assert metrics["exact_match"] == 0.0


def test_maze_targets_mark_off_path_cells_and_a_wrong_proposal_is_not_solved():
    rules = make_rules("maze", size=(7, 7))
    mazes = rules.generate(np.random.default_rng(0), 4)
    boards, solutions = tensors(mazes)
    target = rules.proposal_of(solutions[:, 0])
    assert ((target == 4) | (target == 5) | (boards != 0)).all()
    assert rules.is_solved(torch.where(boards == 0, target, boards)).all()
    agent = small_agent(rules, segments=1)
    metrics = agent.update(boards, solutions)
    assert np.isfinite(metrics["loss"])
    played = play_supervised(agent.model, rules, mazes, segments=1)
    assert not played.solved.any()  # an untrained proposal is not a shortest path


def test_sampled_attempts_give_pass_at_k_at_least_pass_at_1(sudoku4):
    puzzles = sudoku4.generate(np.random.default_rng(3), 64)
    agent = small_agent(sudoku4, segments=2)
    sampler = PuzzleSampler(sudoku4, puzzles, 32, seed=0)
    for _ in range(10):
        agent.update(*sampler.draw())
    agent_cfg = OmegaConf.create({"segments": 2, "precision": "fp32"})
    metrics = evaluation_report(
        None, agent.model, sudoku4, puzzles, ENV_CFG, "cpu", 4, 0, agent_cfg
    )
    assert 0.0 <= metrics["pass@1"] <= metrics["pass@4"] <= 1.0
    assert metrics["pass@4"] > metrics["pass@1"]  # sampling finds boards greedy play misses


def test_the_sampler_is_seeded_and_follows_a_new_bank(sudoku4):
    bank = sudoku4.generate(np.random.default_rng(4), 32)
    a, b = PuzzleSampler(sudoku4, bank, 8, seed=7), PuzzleSampler(sudoku4, bank, 8, seed=7)
    assert torch.equal(a.draw()[0], b.draw()[0])
    state = a.state_dict()
    after = a.draw()[0]
    b.load_state_dict(state)
    assert torch.equal(b.draw()[0], after)
    with pytest.raises(ValueError, match="empty"):
        a.set_bank(bank.subset([]))


def test_a_bad_segment_count_is_an_error():
    with pytest.raises(ValueError, match="segments"):
        SupervisedConfig(segments=0)
