"""A puzzle family from another package (examples/latin_square) plugged in by entry point.

The acceptance test pip-installs the example into a throw-away folder and runs the CLIs on it in
subprocesses; the other tests import the example straight from examples/latin_square.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from equivalence import assert_same_trajectories
from gymnasium.utils.env_checker import check_env
from torchrl.envs.utils import check_env_specs

import hrm_rl  # noqa: F401  (loads the plugins, registers the Gymnasium ids)
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.gym_env import PuzzleEnv
from hrm_rl.envs.registration import make_rules

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "latin_square"


def pip_install(source: Path, tmp: Path) -> Path:
    """Copy the package at ``source`` into ``tmp`` and pip-install it (offline) to ``tmp/site``."""
    copy = tmp / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = tmp / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*command, "--no-index", "--quiet", "--target", str(site), str(copy)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return site


def run_python(site: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGUMENTS`` with ``site`` on PYTHONPATH and W&B off."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def latin_site(tmp_path_factory) -> Path:
    """examples/latin_square pip-installed into a throw-away folder (put it on PYTHONPATH)."""
    return pip_install(EXAMPLE, tmp_path_factory.mktemp("latin"))


@pytest.fixture(scope="module")
def latin():
    """The example package, imported from the repository (this registers the family)."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        import hrm_rl_latin
    finally:
        sys.path.remove(str(EXAMPLE))
    return hrm_rl_latin


@pytest.fixture(scope="module")
def bank(latin):
    return latin.LatinRules(5).generate(np.random.default_rng(0), 40)


# --- the acceptance test: install, train, evaluate, gymnasium.make -----------------------------


@pytest.mark.slow
def test_an_installed_plugin_trains_evaluates_and_makes_its_gym_env(latin_site, tmp_path):
    run_dir = tmp_path / "run"
    train = run_python(
        latin_site,
        "-m",
        "hrm_rl.train",
        "env=latin5",
        "logger=none",
        "total_frames=192",
        "batch_size=8",
        "rollout=8",
        "eval.every=128",
        "eval.num_puzzles=16",
        "checkpoint.every=128",
        "env.bank_size=64",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = Path(train.stdout.strip().splitlines()[-1])
    assert checkpoint == run_dir / "checkpoint.pt" and checkpoint.is_file()

    evaluate = run_python(
        latin_site,
        "-m",
        "hrm_rl.evaluate",
        f"checkpoint={checkpoint}",
        "num_puzzles=16",
        "attempts=2",
        cwd=tmp_path,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    metrics = json.loads(Path(evaluate.stdout.strip().splitlines()[-1]).read_text())
    assert metrics["env"] == "LatinRules(5x5)" and metrics["puzzles"] == 16
    assert 0.0 <= metrics["pass@1"] <= metrics["pass@2"] <= 1.0

    script = (
        'import gymnasium, hrm_rl; print(gymnasium.make("hrm_rl_latin/Latin5-v0").unwrapped.rules)'
    )
    made = run_python(latin_site, "-c", script, cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    assert made.stdout.strip() == "LatinRules(5x5)"


def test_an_unknown_env_in_train_lists_the_plugged_configs_too(latin_site, tmp_path):
    result = run_python(latin_site, "-m", "hrm_rl.train", "env=nope", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'env/nope'" in result.stderr
    for choice in ("latin4", "latin5", "sudoku4x4"):
        assert choice in result.stderr


def test_a_plugin_that_fails_to_import_is_a_warning_then_named_when_requested(tmp_path):
    source = tmp_path / "broken_src"
    (source / "broken_puzzle").mkdir(parents=True)
    (source / "broken_puzzle" / "__init__.py").write_text('raise RuntimeError("no rules here")\n')
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "broken-puzzle"\nversion = "0.1"\n'
        '[project.entry-points."hrm_rl.puzzles"]\nbroken = "broken_puzzle"\n'
    )
    site = pip_install(source, tmp_path / "install")

    # the plugins load when hrm_rl registers the Gymnasium ids, i.e. once Gymnasium is imported
    script = "import hrm_rl, gymnasium; print('imported')"
    imported = run_python(site, "-c", script, cwd=tmp_path)
    assert imported.returncode == 0 and imported.stdout.strip() == "imported"
    assert "puzzle plugin 'broken'" in imported.stderr
    assert "RuntimeError: no rules here" in imported.stderr

    script = "from hrm_rl.envs.registration import make_rules; make_rules('broken')"
    requested = run_python(site, "-W", "ignore", "-c", script, cwd=tmp_path)
    assert requested.returncode != 0
    last = requested.stderr.strip().splitlines()[-1]
    assert "unknown puzzle family 'broken'" in last and "'sudoku'" in last
    assert "failed to load: {'broken': 'RuntimeError: no rules here'}" in last


def test_an_unknown_family_lists_the_known_ones(latin):
    with pytest.raises(ValueError, match=r"unknown puzzle family 'nope'; known families: \[.*"):
        make_rules("nope")
    with pytest.raises(ValueError, match="'latin'.*'sudoku'"):
        make_rules("nope")
    with pytest.raises(ValueError, match=r"takes the options \['size'\], got \['box'\]"):
        make_rules("latin", box=(2, 2))


# --- the plugged family behind both front-ends ----------------------------------------------


@pytest.mark.parametrize("action_mode", ["cell", "grid"])
def test_gymnasium_check_env_passes(latin, action_mode):
    env = gym.make("hrm_rl_latin/Latin5-v0", action_mode=action_mode)
    assert repr(env.unwrapped.rules) == "LatinRules(5x5)"
    check_env(env.unwrapped)


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("action_mode", ["cell", "grid"])
def test_torchrl_check_env_specs_passes(latin, bank, batch, action_mode):
    rules = latin.LatinRules(5)
    check_env_specs(
        BatchedPuzzleEnv(rules, bank, batch_size=batch, action_mode=action_mode, seed=0)
    )


def test_same_puzzles_and_actions_give_identical_trajectories(latin, bank):
    """B batched slots play against B Gymnasium envs reset to the puzzle each slot drew."""
    _, solved = assert_same_trajectories(latin.LatinRules(5), bank, batch_size=6, steps=60)
    assert solved >= 1


# --- any valid solution counts --------------------------------------------------------------


def play(env: PuzzleEnv, solution: np.ndarray, rng: np.random.Generator) -> tuple[float, dict]:
    """Place ``solution``'s value at every blank in random order: (total reward, last info)."""
    board, V = env._board[0].numpy(), env.rules.num_values
    total, info = 0.0, {}
    for position in rng.permutation(np.flatnonzero(board == 0)):
        _, reward, terminated, _, info = env.step(int(position) * V + int(solution[position]) - 1)
        total += reward
        assert not info["mistake"]
    assert terminated
    return total, info


def test_every_stored_solution_played_through_the_env_is_solved_with_full_reward(latin, bank):
    env = PuzzleEnv(rules=latin.LatinRules(5), puzzles=bank)
    rng = np.random.default_rng(0)
    index = int(np.flatnonzero(bank.num_solutions >= 2)[0])
    for k in range(2):
        env.reset(options={"index": index})
        total, info = play(env, bank.solutions[index, k], rng)
        assert info["solved"] and total == pytest.approx(2.0)  # 1 for the placements + bonus


def test_a_valid_solution_other_than_the_answer_is_solved_but_not_an_exact_match(latin, bank):
    rules = latin.LatinRules(5)
    index = int(np.flatnonzero(bank.num_solutions >= 2)[0])
    answer, other = bank.solutions[index, 0], bank.solutions[index, 1]
    assert not np.array_equal(other, answer)  # not an exact match ...
    board = torch.as_tensor(np.stack([answer, other])).long()
    assert rules.is_solved(board).tolist() == [True, True]  # ... but solved by the rules


# --- the example's rules, generator, reader and augmentation ----------------------------------


def test_generated_puzzles_store_all_their_two_to_cap_completions(latin):
    from hrm_rl_latin.squares import solve

    puzzles = latin.LatinRules(4).generate(np.random.default_rng(1), 12, cap=5)
    assert puzzles.solutions.shape == (12, 5, 16)
    for board, solutions, count in zip(
        puzzles.boards, puzzles.solutions, puzzles.num_solutions, strict=True
    ):
        assert 2 <= count <= 5
        every = sorted(map(tuple, solve(board, 4, cap=6)))
        assert sorted(map(tuple, solutions[:count].tolist())) == every
        assert (solutions[count:] == 0).all()


def test_train_and_held_out_puzzles_are_disjoint_and_reproducible(latin):
    rules = latin.LatinRules(4)
    train = rules.generate(np.random.default_rng(0), 30)
    test = rules.generate(np.random.default_rng(0), 30, held_out=True)
    assert not {b.tobytes() for b in train.boards} & {b.tobytes() for b in test.boards}
    np.testing.assert_array_equal(train.boards, rules.generate(np.random.default_rng(0), 30).boards)


def test_legal_mask_and_constraint_satisfaction(latin):
    rules = latin.LatinRules(3)
    board = torch.tensor([[1, 0, 0, 0, 2, 0, 0, 0, 0]])
    mask = rules.legal_mask(board)[0]  # [9, 3]
    assert mask[1].tolist() == [False, False, True]  # row holds 1, column holds 2
    assert mask[3].tolist() == [False, False, True]  # column holds 1, row holds 2
    assert not mask[0].any() and mask[8].all()
    square = torch.tensor([[1, 2, 3, 2, 3, 1, 3, 1, 2], [1, 2, 3, 2, 3, 1, 3, 2, 1]])
    assert rules.is_solved(square).tolist() == [True, False]
    assert rules.constraint_satisfaction(square).tolist() == [1.0, pytest.approx(4 / 6)]


def test_augment_keeps_puzzles_and_solutions_valid_and_consistent(latin, bank):
    rules = latin.LatinRules(5)
    boards = torch.as_tensor(bank.boards).long()
    solutions = torch.as_tensor(bank.solutions).long()
    new_boards, new_solutions = rules.augment(boards, solutions, torch.Generator().manual_seed(0))
    alive = torch.arange(solutions.shape[1]) < torch.as_tensor(bank.num_solutions).unsqueeze(1)
    assert not torch.equal(new_boards, boards)
    assert torch.equal(rules.is_solved(new_solutions.flatten(0, 1)).view(alive.shape), alive)
    assert torch.equal((new_boards != 0).sum(1), (boards != 0).sum(1))
    given = new_boards != 0
    assert (new_solutions[:, 0][given] == new_boards[given]).all()


def test_read_serves_a_file_and_names_file_and_line_on_errors(latin, tmp_path):
    rules = latin.LatinRules(4)
    good = tmp_path / "latin4.txt"
    good.write_text("# two puzzles\n12..21..........\n\n1234341221434321\n")
    puzzles = rules.read(str(good))
    assert puzzles.num_solutions.tolist() == [8, 1] and not puzzles.has_answer.any()
    assert puzzles.origin == [f"{good}:2", f"{good}:4"]
    env = PuzzleEnv(rules=rules, data=str(good))
    assert env.reset(options={"index": 0})[0]["board"].tolist()[:4] == [1, 2, 0, 0]
    for line, message in [
        ("12..21.........", "expected 16 cells for 4x4, got 15"),
        ("12..21.........x", "unexpected character 'x'"),
        ("11..............", "value 1 appears twice in row 1"),
        ("................", "more than 8 completions"),
    ]:
        bad = tmp_path / "bad.txt"
        bad.write_text(f"1234341221434321\n{line}\n")
        with pytest.raises(ValueError, match=f"bad.txt:2: {message}"):
            rules.read(str(bad))


def test_render_ansi_and_rgb(latin, bank):
    rules = latin.LatinRules(5)
    board = bank.solutions[0, 0].copy()
    text = rules.render_ansi(board, bank.boards[0])
    assert len(text.splitlines()) == 5 and "*" in text and "." not in text
    image = rules.render_rgb(board, bank.boards[0])
    assert image.dtype == np.uint8 and image.shape[2] == 3 and image.min() == 0
