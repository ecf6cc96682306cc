"""Data-parallel training: ``torchrun --nproc_per_node=2 -m hrm_rl.train`` on two gloo CPU ranks.

Every run here is launched the way users launch one (``python -m torch.distributed.run``, the
module behind ``torchrun``), with ``distributed.trace=true`` so that each rank writes one line
per update: the global and its own frame counters, the SHA-256 of its parameters and the bank rows
it played. The tests read those files and the checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from hrm_rl.build import build_model
from hrm_rl.checkpoint import load_checkpoint
from hrm_rl.distributed import World, init_world, parameter_digest
from hrm_rl.envs.registration import rules_from_config

TINY_PPO = [
    "device=cpu",  # gloo CPU ranks, also where a GPU is present
    "env=sudoku4x4",
    "batch_size=8",
    "rollout=4",
    "eval.every=0",
    "eval.num_puzzles=16",
    "checkpoint.every=64",
    "logger=none",
    "distributed.trace=true",
    "agent.total_iterations=10",  # the LR schedule must not depend on total_frames (resume)
]


def torchrun(cwd: Path, *args: str, ranks: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=RANKS ARGS`` from ``cwd``, W&B off, one thread
    per rank."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={ranks}",
            *args,
        ],
        cwd=cwd,
        env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def train(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    result = torchrun(cwd, "-m", "hrm_rl.train", *overrides)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def traces(run_dir: Path, ranks: int = 2) -> list[list[dict]]:
    """Each rank's trace lines, in rank order."""
    return [
        [
            json.loads(line)
            for line in (run_dir / "ranks" / f"rank{r}.jsonl").read_text().split("\n")
            if line
        ]
        for r in range(ranks)
    ]


def updates(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["event"] == "update"]


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    """A 2-rank PPO run of 192 global frames (3 updates of 2 × 8 × 4 frames); its run dir."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    train(run_dir.parent, *TINY_PPO, "total_frames=192", f"hydra.run.dir={run_dir}")
    return run_dir


@pytest.mark.slow
def test_two_ranks_keep_bit_identical_parameters_and_play_different_puzzles(ppo_run):
    rank0, rank1 = (updates(lines) for lines in traces(ppo_run))
    assert [u["iteration"] for u in rank0] == [u["iteration"] for u in rank1] == [1, 2, 3]
    for a, b in zip(rank0, rank1, strict=True):
        assert a["params"] == b["params"], f"ranks differ after update {a['iteration']}"
        assert a["puzzles"] != b["puzzles"], "both ranks played the same puzzles"
        assert a["frames"] == a["rank_frames"] + b["rank_frames"]  # the global counter
    assert len({u["params"] for u in rank0}) == 3  # and the parameters did train

    checkpoint = load_checkpoint(ppo_run / "checkpoint.pt")
    assert checkpoint["world_size"] == 2
    assert checkpoint["rank_frames"] == [96, 96]
    assert checkpoint["frames"] == sum(checkpoint["rank_frames"]) == 192
    assert len(checkpoint["rank_states"]) == 1  # rank 1's episodes, beside rank 0's at the top


@pytest.mark.slow
def test_a_resumed_two_rank_run_continues_in_sync_exactly_as_an_unbroken_one(ppo_run, tmp_path):
    checkpoint = load_checkpoint(ppo_run / "checkpoint.pt")
    train(tmp_path, f"resume={ppo_run / 'checkpoint.pt'}", "total_frames=320")
    resumed = traces(ppo_run)
    starts = [[line for line in lines if line["event"] == "start"][-1] for lines in resumed]
    assert [s["frames"] for s in starts] == [192, 192]
    assert [s["rank_frames"] for s in starts] == [96, 96]
    assert starts[0]["params"] == starts[1]["params"] == _digest_of(checkpoint)
    after = [updates(lines)[3:] for lines in resumed]
    assert [u["iteration"] for u in after[0]] == [4, 5]
    for a, b in zip(*after, strict=True):
        assert a["params"] == b["params"], f"ranks differ after resumed update {a['iteration']}"
        assert a["frames"] == a["rank_frames"] + b["rank_frames"]

    unbroken = tmp_path / "unbroken"
    train(tmp_path, *TINY_PPO, "total_frames=320", f"hydra.run.dir={unbroken}")
    assert updates(traces(unbroken)[0])[-1]["params"] == after[0][-1]["params"]


@pytest.mark.slow
def test_the_supervised_agent_trains_data_parallel_too(tmp_path):
    run_dir = tmp_path / "run"
    train(
        tmp_path,
        "device=cpu",
        "agent=supervised",
        "agent.segments=2",
        "env=sudoku4x4",
        "env.action_mode=grid",
        "model.attention=graph",  # graph attention and 2-D positions under torch.distributed too
        "model.pos_encoding=rope2d",
        "batch_size=8",
        "total_frames=64",
        "eval.every=0",
        "eval.num_puzzles=16",
        "logger=none",
        "distributed.trace=true",
        f"hydra.run.dir={run_dir}",
    )
    rank0, rank1 = (updates(lines) for lines in traces(run_dir))
    assert len(rank0) == len(rank1) >= 2
    for a, b in zip(rank0, rank1, strict=True):
        assert a["params"] == b["params"]
        assert a["puzzles"] != b["puzzles"]
        assert a["frames"] == a["rank_frames"] + b["rank_frames"]
    assert load_checkpoint(run_dir / "checkpoint.pt")["frames"] == rank0[-1]["frames"] >= 64


AVERAGE_SCRIPT = """
import json, sys, torch
from hrm_rl.distributed import init_world
world, _ = init_world("cpu")
a, b, unused = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
a.grad = torch.full((3,), float(world.rank + 1))       # rank 0: 1, rank 1: 2
if world.rank == 1:
    b.grad = torch.tensor([4.0, 6.0, 8.0])             # rank 0 has no gradient for b
finite = world.average_gradients([a, b, unused], finite=True)
bad = world.average_gradients([a], finite=world.rank == 0)
out = {"a": a.grad.tolist(), "b": b.grad.tolist(), "unused": unused.grad is None,
       "finite": finite, "bad": bad, "sum": world.sum(world.rank + 1),
       "any": world.any(world.rank == 1), "cat": world.cat(torch.arange(world.rank + 1)).tolist(),
       "seed": world.rank_seed(7)}
with open(sys.argv[1] + f"/rank{world.rank}.json", "w") as f:
    json.dump(out, f)
world.close()
"""


@pytest.mark.slow
def test_gradients_are_averaged_over_ranks_and_a_bad_loss_anywhere_skips_everywhere(tmp_path):
    script = tmp_path / "average.py"
    script.write_text(textwrap.dedent(AVERAGE_SCRIPT))
    result = torchrun(tmp_path, str(script), str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    out = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rank in out:
        assert rank["a"] == [1.5, 1.5, 1.5]  # the mean of 1 and 2
        assert rank["b"] == [2.0, 3.0, 4.0]  # a missing gradient counts as zero
        assert rank["unused"]  # no rank had one: stays None, as in a one-process run
        assert rank["finite"] is True and rank["bad"] is False
        assert rank["sum"] == 3 and rank["any"] is True
        assert rank["cat"] == [0, 0, 1]
    assert out[0]["seed"] == 7 and out[1]["seed"] != 7


def test_one_process_is_a_world_of_one_whose_collectives_return_their_input(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world, device = init_world("cpu")
    assert (world.rank, world.size, world.joined, world.is_main) == (0, 1, False, True)
    assert device == torch.device("cpu")
    assert world.sum(5) == 5 and world.any(False) is False
    solved = torch.tensor([True, False])
    assert world.cat(solved) is solved
    assert world.gather_objects({"x": 1}) == [{"x": 1}]
    assert world.rank_seed(3) == 3
    param = nn.Parameter(torch.ones(2))
    param.grad = torch.ones(2)
    assert world.average_gradients([param], finite=False) is False
    assert torch.equal(param.grad, torch.ones(2))  # untouched


def test_a_bad_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="distributed.backend must be one of"):
        init_world("cpu", backend="mpi")


def test_the_parameter_digest_sees_a_change_in_any_bit():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    before = parameter_digest(model)
    assert parameter_digest(model) == before
    with torch.no_grad():
        flat = model[1].bias.view(torch.int32)
        flat ^= 1  # flip the lowest bit of one float
    assert parameter_digest(model) != before


def test_rank_seeds_differ_between_ranks_and_keep_rank_zero_unchanged():
    seeds = [World(rank=r, size=4).rank_seed(11) for r in range(4)]
    assert seeds[0] == 11 and len(set(seeds)) == 4


def _digest_of(checkpoint: dict) -> str:
    """:func:`parameter_digest` of the model a checkpoint holds."""
    cfg = OmegaConf.create(checkpoint["config"])
    model = build_model(rules_from_config(cfg.env), cfg.model, torch.device("cpu"))
    model.load_state_dict(checkpoint["model"])
    return parameter_digest(model)


def test_more_ranks_on_a_node_than_gpus_is_a_clear_error(monkeypatch):
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="LOCAL_RANK=1 needs CUDA device 1, but this node has 1"):
        init_world("cuda")
