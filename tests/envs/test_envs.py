"""Every registered environment: gymnasium's API checks, seeded determinism, finite observations
inside their spaces, cameras that see something, and a scripted expert that succeeds."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
import envs.pick_place
from envs.so100 import ARM_JOINTS, ARM_XML, HOME_QPOS, ArmIK, load_arm_spec, tool_down_rotation

IDS = sorted(envs.ENVS)


def rollout(env, seed: int, n: int, policy=None) -> list[dict]:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rng = np.random.default_rng(seed)
    for _ in range(n):
        lo, hi = env.action_space.low, env.action_space.high
        a = policy(obs) if policy else lo + rng.random(lo.size) * (hi - lo)
        obs, *_ = env.step(a)
        out.append(obs)
    return out


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_api(env_id):
    first = gym.make(env_id).unwrapped.CAMERAS[0]
    env = gym.make(env_id, obs_mode="both", cameras=(first,), image_size=(32, 32))
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_actions_same_observations(env_id):
    a, b = gym.make(env_id), gym.make(env_id)
    ra, rb = rollout(a, 7, 30), rollout(b, 7, 30)
    for oa, ob in zip(ra, rb, strict=True):
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    assert not np.allclose(rollout(a, 8, 0)[0]["env_state"], ra[0]["env_state"])  # seeds matter


@pytest.mark.parametrize("env_id", IDS)
def test_observations_are_finite_and_inside_their_spaces(env_id):
    env = gym.make(env_id)
    for obs in rollout(env, 3, 50):
        assert env.observation_space.contains(obs)
        for k, v in obs.items():
            assert np.isfinite(v).all(), k


@pytest.mark.parametrize("env_id", IDS)
def test_cameras_render_and_state_mode_never_renders(env_id, monkeypatch):
    cameras = gym.make(env_id).unwrapped.CAMERAS
    env = gym.make(env_id, obs_mode="images", cameras=cameras, image_size=(48, 64))
    obs, _ = env.reset(seed=0)
    for cam in cameras:
        img = obs[f"images/{cam}"]
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8
        assert img.std() > 5, f"camera {cam} looks blank"
    env.close()

    def no_renderer(*args, **kwargs):
        raise AssertionError("obs_mode='state' created a renderer")

    monkeypatch.setattr(mujoco, "Renderer", no_renderer)
    env = gym.make(env_id)
    rollout(env, 0, 5)
    assert "images/top" not in env.reset(seed=0)[0]


@pytest.mark.parametrize("env_id", IDS)
def test_render_rgb_array(env_id):
    env = gym.make(env_id, render_mode="rgb_array", render_size=(120, 160))
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (120, 160, 3) and frame.std() > 5


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scripted_expert_succeeds_smoothly(env_id, seed):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    expert = env.unwrapped.expert()
    prev = obs["state"]
    while True:  # the env's time limit ends a failing episode
        action = expert(obs)
        n = action.size // len(env.unwrapped.ARMS)  # one arm's joints and gripper
        dq = np.abs(action - prev).reshape(-1, n)[:, : n - 1]  # arm joints of each arm, not the grippers
        assert dq.max() <= 0.05 + 1e-6  # |dq| per control tick
        prev = action
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert info["is_success"] and terminated


@pytest.mark.parametrize("env_id", IDS)
def test_replaying_an_experts_actions_from_its_seed_reproduces_the_episode(env_id):
    from replaying import replay_actions

    env = gym.make(env_id)
    obs, _ = env.reset(seed=5)
    expert = env.unwrapped.expert()
    states, actions = [], []
    while True:
        states.append(obs["state"])
        actions.append(expert(obs))
        obs, _, terminated, truncated, info = env.step(actions[-1])
        if terminated or truncated:
            break
    replayed, success = replay_actions(env_id, 5, np.array(actions))
    np.testing.assert_array_equal(np.array(replayed), np.array(states))
    assert success == info["is_success"]


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_expert_success_rate_over_200_seeds(env_id):
    env = gym.make(env_id)
    wins = 0
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        expert = env.unwrapped.expert()
        while True:
            obs, _, terminated, truncated, info = env.step(expert(obs))
            if terminated or truncated:
                break
        wins += info["is_success"]
    assert wins >= 200 * env.unwrapped.EXPERT_SUCCESS, f"{wins}/200"


def test_mjcf_joint_limits_match_the_robot_config():
    spec = load_arm_spec()
    model = mujoco.MjModel.from_xml_path(str(ARM_XML))
    assert spec.joint_names[:5] == ARM_JOINTS and spec.joint_names[5] == "gripper"
    for i, name in enumerate(ARM_JOINTS):
        np.testing.assert_allclose(model.joint(name).range, [spec.lower[i], spec.upper[i]], err_msg=name)
        np.testing.assert_allclose(
            model.actuator(name).ctrlrange, [spec.lower[i], spec.upper[i]], err_msg=name
        )
    assert (spec.lower[5], spec.upper[5]) == (0.0, 1.0)


def test_ik_reaches_the_workspace_with_the_tool_down():
    model = mujoco.MjModel.from_xml_path(str(ARM_XML))
    ik = ArmIK(model)
    for r in (0.17, 0.2, 0.23):
        for bearing in (-0.7, 0.0, 0.7):
            for z in (0.017, 0.09):
                pos = np.array([r * np.cos(bearing), r * np.sin(bearing), z])
                q = ik.solve(HOME_QPOS, pos, tool_down_rotation(bearing + np.pi), iters=200)
                p, rot = ik.forward(q)
                assert np.abs(p - pos).max() < 1e-3, (pos, p)
                np.testing.assert_allclose(rot[:, 2], [0, 0, -1], atol=1e-2)


def test_pick_place_env_state_seen_from_the_arm_base():
    env = gym.make("imitation/PickPlace-v0")
    for seed in range(20):
        s = env.reset(seed=seed)[0]["env_state"].astype(np.float64)
        cube, x_axis, target, polar = s[:3], s[3:6], s[9:12], s[12:]
        bearing, reach, rel_yaw, target_bearing, target_reach = polar
        assert bearing == pytest.approx(np.arctan2(cube[1], cube[0]), abs=1e-6)
        assert reach == pytest.approx(np.hypot(cube[0], cube[1]), abs=1e-6)
        assert target_bearing == pytest.approx(np.arctan2(target[1], target[0]), abs=1e-6)
        assert target_reach == pytest.approx(np.hypot(target[0], target[1]), abs=1e-6)
        # the relative yaw is the cube's yaw (mod its 90° symmetry) less the bearing, in [-45°, 45°)
        assert -np.pi / 4 - 1e-6 <= rel_yaw < np.pi / 4 + 1e-6
        turn = np.arctan2(x_axis[1], x_axis[0]) - bearing - rel_yaw
        assert np.sin(2 * turn) == pytest.approx(0, abs=1e-5)  # a multiple of 90°
    env.close()


def _turned_start(env, seed: int, angle: float) -> dict:
    """Reset to ``seed``, then turn the whole scene by ``angle`` about the base's vertical axis."""
    u = env.unwrapped
    env.reset(seed=seed)
    d = u.data
    c, s = np.cos(angle), np.sin(angle)
    d.qpos[u._arm_qpos[0][0]] += angle  # the pan joint
    d.ctrl[u._arm_ctrl[0][0]] += angle
    q = u._cube_qpos
    d.qpos[q : q + 2] = [c * d.qpos[q] - s * d.qpos[q + 1], s * d.qpos[q] + c * d.qpos[q + 1]]
    d.qpos[q + 3 : q + 7] = [
        np.cos(angle / 2) * d.qpos[q + 3] - np.sin(angle / 2) * d.qpos[q + 6],
        0.0,
        0.0,
        np.sin(angle / 2) * d.qpos[q + 3] + np.cos(angle / 2) * d.qpos[q + 6],
    ]  # the cube starts flat: its quaternion is a turn about z
    t = d.mocap_pos[u._target_mocap].copy()
    d.mocap_pos[u._target_mocap][:2] = [c * t[0] - s * t[1], s * t[0] + c * t[1]]
    mujoco.mj_forward(u.model, d)
    return u._obs()


def test_pick_place_turn_symmetry_is_the_physics():
    """What TURN_SYMMETRY declares is what the simulator does: the expert's episode replayed in a
    scene turned by 0.25 rad (its pan actions turned too) gives the turned observations."""
    import torch

    from imitation.data.augment import turn

    sym = envs.pick_place.PickPlaceEnv.TURN_SYMMETRY
    env = gym.make("imitation/PickPlace-v0")
    obs, _ = env.reset(seed=3)
    expert = env.unwrapped.expert()
    observed, actions = [obs], []
    for _ in range(120):  # reach, grasp, lift and carry
        actions.append(expert(observed[-1]))
        observed.append(env.step(actions[-1])[0])
    angle = torch.tensor([0.25])
    turned = turn(
        {
            "state": torch.as_tensor(np.stack([o["state"] for o in observed]))[None],
            "env_state": torch.as_tensor(np.stack([o["env_state"] for o in observed]))[None],
            "action": torch.as_tensor(np.stack(actions))[None],
        },
        sym,
        angle,
    )
    obs = _turned_start(env, 3, 0.25)
    replayed = [obs]
    for a in turned["action"][0].numpy():
        replayed.append(env.step(a)[0])
    got_state = np.stack([o["state"] for o in replayed])
    got_env = np.stack([o["env_state"] for o in replayed])
    np.testing.assert_allclose(got_state, turned["state"][0].numpy(), atol=2e-3)
    np.testing.assert_allclose(got_env[:, :12], turned["env_state"][0, :, :12].numpy(), atol=2e-3)
    np.testing.assert_allclose(got_env[:, 12:], turned["env_state"][0, :, 12:].numpy(), atol=2e-2)
    assert got_env[-1, 2] > 0.05  # the turned replay lifted the cube too
