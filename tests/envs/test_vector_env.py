"""PuzzleVectorEnv: `gymnasium.make_vec`, the vector-env contract, and step-for-step agreement
with a SyncVectorEnv of PuzzleEnv (same seeds, same actions, same infos)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

import hrm_rl  # noqa: F401  (registers the ids)
from hrm_rl.envs.registration import make_rules
from hrm_rl.envs.vector_env import PuzzleVectorEnv

MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP]


@pytest.fixture(scope="module")
def sudoku4():
    rules = make_rules("sudoku", box=(2, 2))
    return rules, rules.generate(np.random.default_rng(0), 6)


@pytest.fixture(scope="module")
def maze7():
    rules = make_rules("maze", size=(7, 7))
    return rules, rules.generate(np.random.default_rng(0), 6)


def make_pair(env_id: str, num_envs: int, autoreset_mode: AutoresetMode, **kwargs):
    """The native vector env and a SyncVectorEnv of PuzzleEnv, both through `make_vec`."""
    vector = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode=autoreset_mode,
        **kwargs,
    )
    sync = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": autoreset_mode},
        **kwargs,
    )
    return vector, sync


def assert_same(a, b, where: str = "") -> None:
    """Equal values, types and dtypes, through dicts and object arrays."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{k}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, a.keys(), b.keys())
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert (x is None) == (y is None), (where, i)
            if x is not None:
                assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, (where, a.dtype, b)
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, (where, a, b)


def scripted_actions(vector: PuzzleVectorEnv, rng: np.random.Generator) -> np.ndarray:
    """Mostly sound moves (so puzzles get solved), some random legal ones (mistakes) and some
    arbitrary ones (illegal actions); grid mode proposes the solution or random boards."""
    episodes, rules = vector.unwrapped._episodes, vector.unwrapped.rules
    N, L, V = vector.num_envs, rules.num_positions, rules.num_values
    target = rules.proposal_of(episodes.solutions[:, 0]).numpy()  # [N, L], values 1..V
    if vector.unwrapped.action_mode == "grid":
        random = rng.integers(V, size=(N, L))
        return np.where(rng.random((N, 1)) < 0.4, target - 1, random)
    mask = episodes.mask.numpy()
    actions = np.empty(N, dtype=np.int64)
    for i in range(N):
        u = rng.random()
        sound = [p * V + target[i, p] - 1 for p in range(L) if mask[i, p * V + target[i, p] - 1]]
        if u < 0.8 and sound:
            actions[i] = rng.choice(sound)
        elif u < 0.93 and mask[i].any():
            actions[i] = rng.choice(np.flatnonzero(mask[i]))
        else:
            actions[i] = rng.integers(L * V)
    return actions


def play_both(vector, sync, steps: int, seed: int = 3) -> dict[str, int]:
    """Step both envs with the same actions; assert every return agrees; count the events."""
    rng = np.random.default_rng(seed)
    assert_same(vector.reset(seed=seed), sync.reset(seed=seed), "reset")
    counts = dict.fromkeys(("solved", "illegal", "mistake", "truncated", "ended"), 0)
    for t in range(steps):
        actions = scripted_actions(vector, rng)
        out_v, out_s = vector.step(actions), sync.step(actions)
        assert_same(out_v, out_s, f"step {t}")
        _, reward, terminated, truncated, info = out_v
        assert reward.dtype == np.float64 and reward.shape == (vector.num_envs,)
        assert vector.observation_space.contains(out_v[0])
        ended = info["final_info"] if "final_info" in info else info
        counts["ended"] += int((terminated | truncated).sum())
        counts["truncated"] += int(truncated.sum())
        for key in ("solved", "illegal", "mistake"):
            counts[key] += int((ended[key] & (terminated | truncated)).sum())
    return counts


@pytest.mark.parametrize("autoreset_mode", MODES)
def test_cell_mode_matches_sync_vector_env_of_puzzle_envs(sudoku4, autoreset_mode):
    _, puzzles = sudoku4
    vector, sync = make_pair("hrm_rl/Sudoku4x4-v0", 5, autoreset_mode, puzzles=puzzles)
    assert isinstance(vector, PuzzleVectorEnv) and isinstance(sync, SyncVectorEnv)
    counts = play_both(vector, sync, steps=40)
    assert counts["solved"] >= 3 and counts["illegal"] >= 1 and counts["mistake"] >= 2, counts


@pytest.mark.parametrize("autoreset_mode", MODES)
def test_grid_mode_matches_sync_vector_env_of_puzzle_envs(sudoku4, autoreset_mode):
    _, puzzles = sudoku4
    vector, sync = make_pair(
        "hrm_rl/Sudoku4x4-v0",
        4,
        autoreset_mode,
        puzzles=puzzles,
        action_mode="grid",
        shaping=0.5,
        max_segments=3,
    )
    counts = play_both(vector, sync, steps=20)
    assert counts["solved"] >= 2 and counts["truncated"] >= 1, counts


@pytest.mark.parametrize("action_mode", ["cell", "grid"])
def test_maze_matches_sync_vector_env_of_puzzle_envs(maze7, action_mode):
    _, puzzles = maze7
    vector, sync = make_pair(
        "hrm_rl/Maze-v0",
        4,
        AutoresetMode.SAME_STEP,
        puzzles=puzzles,
        size=(7, 7),
        action_mode=action_mode,
    )
    counts = play_both(vector, sync, steps=30)
    assert counts["solved"] >= 1 and counts["ended"] >= 4, counts


def test_generated_puzzles_match_sync_slot_by_slot():
    vector, sync = make_pair("hrm_rl/Sudoku4x4-v0", 3, AutoresetMode.NEXT_STEP)
    counts = play_both(vector, sync, steps=15, seed=11)
    assert counts["ended"] >= 3
    assert (vector.unwrapped._index == -1).all()


def test_spaces_dtypes_and_metadata_follow_the_single_env(sudoku4):
    _, puzzles = sudoku4
    env = gym.make_vec("hrm_rl/Sudoku4x4-v0", num_envs=3, puzzles=puzzles)  # the entry point
    single = gym.make("hrm_rl/Sudoku4x4-v0", puzzles=puzzles)
    assert isinstance(env, PuzzleVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space == batch_space(single.observation_space, 3)
    assert env.action_space == batch_space(single.action_space, 3)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert {k: (v.dtype, v.shape) for k, v in obs.items()} == {
        "board": (np.int64, (3, 16)),
        "givens": (np.int8, (3, 16)),
        "action_mask": (np.int8, (3, 64)),
    }
    masks = env.action_masks()
    assert masks.dtype == np.bool_ and masks.shape == (3, 64)
    np.testing.assert_array_equal(masks, obs["action_mask"] == 1)
    env.action_space.seed(0)
    for _ in range(5):  # arbitrary in-range actions are accepted
        previous = {k: v.copy() for k, v in obs.items()}
        obs_before = obs
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert reward.dtype == np.float64 and terminated.dtype == truncated.dtype == np.bool_
        assert_same(obs_before, previous)  # the env does not write into returned arrays
    assert env.render() is None


def test_seeding_is_reproducible_and_seeds_differ():
    def rollout(seed):
        env = gym.make_vec("hrm_rl/Sudoku4x4-v0", num_envs=4)
        obs, _ = env.reset(seed=seed)
        boards = [obs["board"]]
        for _ in range(6):
            actions = np.array([np.flatnonzero(m)[0] for m in env.action_masks()])
            obs, *_ = env.step(actions)
            boards.append(obs["board"])
        obs, _ = env.reset()  # unseeded: each slot's stream continues
        return np.stack(boards + [obs["board"]])

    np.testing.assert_array_equal(rollout(7), rollout(7))
    assert (rollout(7) != rollout(8)).any()


def test_reset_options_index_and_reset_mask(sudoku4):
    _, puzzles = sudoku4
    env = PuzzleVectorEnv(3, "sudoku", box=(2, 2), puzzles=puzzles, render_mode="ansi")
    obs, info = env.reset(seed=0, options={"index": [2, 0, 5]})
    np.testing.assert_array_equal(obs["board"], puzzles.boards[[2, 0, 5]])
    assert info["index"].tolist() == [2, 0, 5]
    assert len(env.render()) == 3 and all(isinstance(text, str) for text in env.render())
    mask = np.array([False, True, False])
    obs, info = env.reset(options={"index": 4, "reset_mask": mask})
    np.testing.assert_array_equal(obs["board"][1], puzzles.boards[4])
    assert info["index"].tolist() == [0, 4, 0] and info["_index"].tolist() == mask.tolist()


def test_bad_actions_and_illegal_ones_under_strict_are_refused(sudoku4):
    _, puzzles = sudoku4
    env = PuzzleVectorEnv(2, "sudoku", box=(2, 2), puzzles=puzzles, strict=True)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="lie in"):
        env.step(np.array([0, 64]))
    illegal = np.array([np.flatnonzero(obs["action_mask"][0] == 0)[0], 0])
    with pytest.raises(ValueError, match="illegal action .* in slot 0"):
        env.step(illegal)
    with pytest.raises(ValueError, match="autoreset_mode"):
        PuzzleVectorEnv(2, "sudoku", box=(2, 2), autoreset_mode=AutoresetMode.DISABLED)
