"""The batched env against the Gymnasium front-end on the same puzzles and actions, for any family.

Imported by the test modules as a plain module (``tests/envs`` is on pytest's ``pythonpath``).
"""

from __future__ import annotations

import numpy as np
import torch

from hrm_rl.envs.base import PuzzleSet
from hrm_rl.envs.batched import BatchedPuzzleEnv
from hrm_rl.envs.gym_env import PuzzleEnv


def random_actions(mask: torch.Tensor, generator: torch.Generator, illegal_share: float):
    """Mostly legal random actions, with some arbitrary (often illegal) ones mixed in."""
    legal = torch.multinomial(mask.float() + 1e-9, 1, generator=generator).squeeze(-1)
    anything = torch.randint(mask.shape[1], legal.shape, generator=generator)
    pick = torch.rand(legal.shape, generator=generator) < illegal_share
    return torch.where(pick, anything, legal)


def assert_same_trajectories(
    rules,
    bank: PuzzleSet,
    *,
    batch_size: int = 6,
    steps: int = 60,
    illegal_share: float = 0.05,
    env_seed: int = 5,
    action_seed: int = 0,
) -> tuple[int, int]:
    """Play ``batch_size`` batched slots against as many Gymnasium envs, each reset to the puzzle
    its slot drew, with the same random actions for ``steps`` steps; assert that observations,
    rewards, ends and ``solved`` agree throughout and that slots were reset mid-batch at least
    ``batch_size`` times. Returns (episodes ended, episodes solved)."""
    batched = BatchedPuzzleEnv(rules, bank, batch_size=batch_size, augment=False, seed=env_seed)
    singles = [PuzzleEnv(rules=rules, puzzles=bank) for _ in range(batch_size)]
    generator = torch.Generator().manual_seed(action_seed)
    td = batched.reset()
    gym_obs = [
        env.reset(options={"index": int(i)})[0]
        for env, i in zip(singles, td["puzzle_index"], strict=True)
    ]
    resets = solved = 0
    for _ in range(steps):
        for b in range(batch_size):
            np.testing.assert_array_equal(td["board"][b].numpy(), gym_obs[b]["board"])
            np.testing.assert_array_equal(td["givens"][b].numpy(), gym_obs[b]["givens"] == 1)
            np.testing.assert_array_equal(
                td["action_mask"][b].numpy(), gym_obs[b]["action_mask"] == 1
            )
        td["action"] = random_actions(td["action_mask"], generator, illegal_share=illegal_share)
        td, next_td = batched.step_and_maybe_reset(td)
        for b, env in enumerate(singles):
            obs, reward, terminated, truncated, info = env.step(int(td["action"][b]))
            assert np.float32(reward) == td["next", "reward"][b, 0].item()
            assert terminated == td["next", "terminated"][b, 0].item()
            assert truncated == td["next", "truncated"][b, 0].item()
            assert info["solved"] == td["next", "solved"][b, 0].item()
            np.testing.assert_array_equal(td["next", "board"][b].numpy(), obs["board"])
            if terminated or truncated:  # the batched env already reset this slot alone
                resets += 1
                solved += info["solved"]
                obs, _ = env.reset(options={"index": int(next_td["puzzle_index"][b])})
            gym_obs[b] = obs
        td = next_td
    assert resets >= batch_size  # partial resets happened mid-batch, several times
    return resets, solved
