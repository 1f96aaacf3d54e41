"""PushT's coverage measure and what the env reports with it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the tasks)
from envs.push_t import GOAL_POSE, GRID, coverage, outline_error


def test_the_grid_fills_the_t():
    assert len(GRID) == pytest.approx(2800, abs=1)  # 28 cm^2 at 1 mm


def test_coverage_of_known_poses():
    goal = np.array([0.2, 0.1, 0.3])
    assert coverage(goal, goal) == 1.0
    # Shifted 1 cm along the bar: bar overlap 7 x 2 cm, stem overlap 1 x 6 cm, of 28 cm^2.
    c, s = np.cos(goal[2]), np.sin(goal[2])
    shifted = goal + [0.01 * c, 0.01 * s, 0.0]
    assert coverage(shifted, goal) == pytest.approx(20 / 28, abs=0.005)
    # Turned half a turn about the bar's centre: only the bar overlaps.
    assert coverage(goal + [0, 0, np.pi], goal) == pytest.approx(16 / 28, abs=0.005)
    assert coverage(goal + [0.3, 0, 0], goal) == 0.0
    assert outline_error(goal, goal) == 0.0
    assert outline_error(shifted, goal) == pytest.approx(0.01)


def test_env_reports_coverage_and_succeeds_at_the_goal():
    env = gym.make("imitation/PushT-v0")
    obs, info = env.reset(seed=0)
    assert 0.0 <= info["coverage"] <= 0.5 and not info["is_success"]
    # Put the block on the goal: success, full reward, and the episode terminates.
    u = env.unwrapped
    q = u._block_qpos
    yaw = GOAL_POSE[2]
    u.data.qpos[q : q + 3] = [GOAL_POSE[0], GOAL_POSE[1], u.data.qpos[q + 2]]
    u.data.qpos[q + 3 : q + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
    obs, reward, terminated, truncated, info = env.step(obs["state"])
    assert info["coverage"] > 0.99 and info["is_success"] and terminated and reward == 1.0
    np.testing.assert_allclose(obs["env_state"][:2], obs["env_state"][9:11], atol=1e-3)
    np.testing.assert_allclose(obs["env_state"][23:27], [0, 0, 0, 1], atol=2e-3)  # nothing left to do


def test_env_state_holds_the_pusher_and_the_block_seen_from_the_goal():
    env = gym.make("imitation/PushT-v0")
    u = env.unwrapped
    for seed in range(3):
        s = env.reset(seed=seed)[0]["env_state"].astype(np.float64)
        assert s.shape == (27,)
        block = u.block_pose()
        ee = u.data.site_xpos[u.model.site("ee").id]
        np.testing.assert_allclose(s[18:21], ee, atol=1e-6)
        # The end effector, put back into the world from the block's frame, is where it is.
        c, si = np.cos(block[2]), np.sin(block[2])
        np.testing.assert_allclose(
            block[:2] + [c * s[21] - si * s[22], si * s[21] + c * s[22]], ee[:2], atol=1e-5
        )
        # The block's x-y from the goal, and its yaw relative to the goal's.
        c, si = np.cos(GOAL_POSE[2]), np.sin(GOAL_POSE[2])
        np.testing.assert_allclose(
            GOAL_POSE[:2] + [c * s[23] - si * s[24], si * s[23] + c * s[24]], block[:2], atol=1e-5
        )
        turn = np.arctan2(s[25], s[26])
        assert np.cos(turn - (block[2] - GOAL_POSE[2])) == pytest.approx(1.0, abs=1e-6)
