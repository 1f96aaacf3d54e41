"""The ViperX 300 S-like arm (envs/assets/vx300s.xml), the bimanual AlohaTransferCube task built on it,
and that making the arm a per-task choice (envs/arms.py) left the SO-100 tasks exactly as they were."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import envs  # noqa: F401 - registers the tasks
from envs.arms import SO100, VX300S
from envs.so100 import ArmDriver, ArmIK, tool_down_rotation, turn_toward
from imitation.errors import ConfigError

ENV_ID = "imitation/AlohaTransferCube-v0"
FIXTURE = Path(__file__).parent / "fixtures" / "so100_tasks.npz"
JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")


def arm_model() -> tuple[mujoco.MjModel, mujoco.MjData]:
    model = mujoco.MjModel.from_xml_path(str(VX300S.xml))
    return model, mujoco.MjData(model)


def test_vx300s_model_matches_its_robot_config():
    spec = VX300S.spec()
    model, _ = arm_model()
    assert VX300S.joints == JOINTS
    assert spec.name == "vx300s" and spec.joint_names == (*JOINTS, "gripper")
    assert model.nu == 7 and [model.actuator(i).name for i in range(6)] == list(JOINTS)
    for i, name in enumerate(JOINTS):
        np.testing.assert_allclose(model.joint(name).range, [spec.lower[i], spec.upper[i]], err_msg=name)
        np.testing.assert_allclose(
            model.actuator(name).ctrlrange, [spec.lower[i], spec.upper[i]], err_msg=name
        )
    assert (spec.lower[6], spec.upper[6]) == (0.0, 1.0)
    for finger in ("finger_left", "finger_right"):
        np.testing.assert_allclose(model.joint(finger).range, [0.0, VX300S.gripper_open_m])
    np.testing.assert_allclose(model.actuator("gripper").ctrlrange, [0.0, VX300S.gripper_open_m])
    assert model.site("ee") and model.camera("wrist")
    assert np.all(VX300S.home >= spec.lower[:6]) and np.all(VX300S.home <= spec.upper[:6])


def test_vx300s_zero_pose_link_lengths_and_signs_are_those_the_xml_documents():
    model, data = arm_model()
    mujoco.mj_kinematics(model, data)
    pos = {b: data.body(b).xpos.copy() for b in ("upper_arm_link", "upper_forearm_link", "wrist_link")}
    # Interbotix's offsets: shoulder axis 12.7 cm up, elbow 30 cm above it and 5.955 cm forward, the
    # wrist-angle axis 30 cm past the elbow; at zero the forearm and the tool are level along +x.
    np.testing.assert_allclose(pos["upper_arm_link"], [0, 0, 0.12705], atol=1e-9)
    np.testing.assert_allclose(pos["upper_forearm_link"], [0.05955, 0, 0.42705], atol=1e-9)
    np.testing.assert_allclose(pos["wrist_link"], [0.35955, 0, 0.42705], atol=1e-9)
    ee0 = data.site("ee").xpos.copy()
    np.testing.assert_allclose(ee0, [0.35955 + 0.069744 + 0.125, 0, 0.42705], atol=1e-9)
    rot = data.site("ee").xmat.reshape(3, 3)
    np.testing.assert_allclose(rot[:, 2], [1, 0, 0], atol=1e-9)  # the tool along +x
    np.testing.assert_allclose(rot[:, 0], [0, 1, 0], atol=1e-9)  # the fingers open along y
    reach = np.linalg.norm(pos["upper_forearm_link"] - pos["upper_arm_link"]) + 0.3 + 0.069744 + 0.125
    assert 0.75 <= reach <= 0.82

    def ee_moved(joint: str, angle: float = 0.1) -> np.ndarray:
        data.qpos[:] = 0
        data.qpos[model.joint(joint).qposadr[0]] = angle
        mujoco.mj_kinematics(model, data)
        return data.site("ee").xpos - ee0

    assert ee_moved("waist")[1] > 0  # counter-clockwise seen from above
    assert ee_moved("shoulder")[0] > 0 and ee_moved("shoulder")[2] < 0  # tips forward, down
    assert ee_moved("elbow")[2] < 0  # forearm down
    assert ee_moved("wrist_angle")[2] < 0  # gripper down
    assert np.abs(ee_moved("forearm_roll")).max() < 1e-9  # rolls about the tool's own line at zero
    assert np.abs(ee_moved("wrist_rotate")).max() < 1e-9


def test_ik_and_driver_work_for_the_six_joint_arm():
    model, _ = arm_model()
    ik = ArmIK(model, joints=VX300S.joints)
    tool_down = np.array([0.0, 0.0, 0.6, 0.0, 1.0, 0.0])  # the tool nearly down, 7 cm above the table
    for x in (0.27, 0.37, 0.47):
        for y in (-0.1, 0.1):
            for yaw in (-0.7, 0.4):
                pos = np.array([x, y, 0.02])
                q = ik.solve(tool_down, pos, tool_down_rotation(yaw), iters=300)
                p, rot = ik.forward(q)
                assert np.abs(p - pos).max() < 1e-3, (pos, p)
                np.testing.assert_allclose(rot, tool_down_rotation(yaw), atol=1e-2)
    # The driver turns its reference rotation at most max_turn per tick and gets there.
    driver = ArmDriver(model, joints=VX300S.joints, max_step_m=0.006)
    driver.start(np.concatenate([VX300S.home, [1.0]]))
    goal, want = np.array([0.4, 0.0, 0.2]), tool_down_rotation(np.pi / 2)
    prev, ticks = driver.q_cmd.copy(), []
    for tick in range(200):
        action, reached = driver.step(goal, 0.0, want)
        assert action.shape == (7,) and np.abs(action[:6] - prev).max() <= driver.max_dq + 1e-12
        prev = action[:6]
        ticks += [tick] if reached else []
    assert ticks and ticks[-1] - ticks[0] == len(ticks) - 1 and action[6] == 0.0  # reached, and stays
    p, rot = driver.ik.forward(driver.q_cmd)  # the joints catch up with the reference
    assert np.abs(p - goal).max() < 5e-3 and np.abs(rot - want).max() < 2e-2


def test_turn_toward_turns_by_at_most_the_step():
    a = tool_down_rotation(0.0)
    b = tool_down_rotation(1.0)
    step, done = turn_toward(a, b, 0.3)
    assert not done
    np.testing.assert_allclose(step, tool_down_rotation(0.3), atol=1e-12)
    assert turn_toward(step, b, 0.8)[1] and np.array_equal(turn_toward(step, b, 0.8)[0], b)


def test_spaces_joints_and_cameras():
    env = gym.make(ENV_ID)
    u = env.unwrapped
    spec = VX300S.spec()
    assert u.arm.joint_names == tuple(f"{p}/{n}" for p in ("left", "right") for n in spec.joint_names)
    assert env.action_space.shape == (14,) and env.action_space.dtype == np.float32
    np.testing.assert_allclose(env.action_space.low, np.tile(spec.lower, 2).astype(np.float32))
    np.testing.assert_allclose(env.action_space.high, np.tile(spec.upper, 2).astype(np.float32))
    assert set(env.observation_space.spaces) == {"state", "env_state", "timestamp"}
    assert env.observation_space["state"].shape == (14,) and env.observation_space["env_state"].shape == (9,)
    assert u.CAMERAS == ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
    assert {u.model.camera(i).name for i in range(u.model.ncam)} == set(u.CAMERAS)
    assert set(u.scene_cameras) == {"cam_high", "cam_low"}
    assert u.metadata["render_fps"] == 50 and u.arm.control_hz == 50
    obs, info = env.reset(seed=0)
    np.testing.assert_allclose(obs["state"], np.tile([*VX300S.home, 1.0], 2), atol=1e-6)
    assert not info["is_success"]
    env.close()
    images = gym.make(ENV_ID, obs_mode="both", cameras=("cam_high", "cam_left_wrist"), image_size=(24, 32))
    obs, _ = images.reset(seed=0)
    assert obs["images/cam_high"].shape == (24, 32, 3) and obs["images/cam_left_wrist"].shape == (24, 32, 3)
    with pytest.raises(ConfigError, match="choose from cam_high, cam_low, cam_left_wrist, cam_right_wrist"):
        gym.make(ENV_ID, cameras=("top",))


def test_reset_is_deterministic_by_seed():
    a, b = gym.make(ENV_ID), gym.make(ENV_ID)
    for seed in (0, 5):
        oa, ob = a.reset(seed=seed)[0], b.reset(seed=seed)[0]
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    cubes = np.array([a.reset(seed=s)[0]["env_state"][:3] for s in range(30)])
    assert len({tuple(c) for c in cubes}) == 30
    # In front of the right arm (base at x = 0.47 m), on the table.
    assert cubes[:, 0].min() >= 0.0 and cubes[:, 0].max() <= 0.2 and np.abs(cubes[:, 1]).max() <= 0.1
    np.testing.assert_allclose(cubes[:, 2], 0.02, atol=2e-3)


@pytest.mark.parametrize("seed", [7, 23, 101])
def test_expert_hands_the_cube_over(seed):
    env = gym.make(ENV_ID)
    u = env.unwrapped
    obs, _ = env.reset(seed=seed)
    expert = u.expert()
    right_held = False
    while True:
        obs, _, terminated, truncated, info = env.step(expert(obs))
        right_held |= u.touching(u._box_geom, 1) and obs["env_state"][2] > 0.1
        if terminated or truncated:
            break
    assert terminated and info["is_success"] and right_held
    assert u.touching(u._box_geom, 0) and not u.touching(u._box_geom, 1)
    assert obs["env_state"][2] > 0.1 and env.unwrapped.data.time < u.time_limit_s


def so100_reference() -> np.lib.npyio.NpzFile:
    ref = np.load(FIXTURE)
    if tuple(ref["versions"]) != (mujoco.__version__, np.__version__):
        pytest.skip(f"{FIXTURE.name} was recorded with MuJoCo/NumPy {tuple(ref['versions'])}")
    return ref


@pytest.mark.parametrize(
    "env_id",
    ["imitation/PickPlace-v0", "imitation/PushT-v0", "imitation/TransferCube-v0", "imitation/Insertion-v0"],
)
def test_so100_tasks_are_unchanged(env_id):
    """Models, first observations and whole expert episodes equal to those the code recorded before
    the arm became a per-task choice (tools/so100_envs_fixture.py)."""
    ref = so100_reference()
    env = gym.make(env_id)
    u = env.unwrapped
    assert u.ARM is SO100
    for key in ref.files:
        if key.startswith(f"{env_id}/model/") and not key.endswith("/names"):
            field = key.rsplit("/", 1)[1]
            np.testing.assert_array_equal(getattr(u.model, field), ref[key], err_msg=key)
    assert bytes(u.model.names) == ref[f"{env_id}/model/names"].tobytes()
    obs, _ = env.reset(seed=int(ref["seed"]))
    np.testing.assert_array_equal(obs["state"], ref[f"{env_id}/reset/state"])
    np.testing.assert_array_equal(obs["env_state"], ref[f"{env_id}/reset/env_state"])
    expert = u.expert()
    states, actions = [], []
    while True:
        states.append(obs["state"])
        actions.append(expert(obs))
        obs, _, terminated, truncated, info = env.step(actions[-1])
        if terminated or truncated:
            break
    # The expert's joint targets hold numerical zeros (about 1e-19) whose last bits depend on the
    # CPU it runs on (seen between two x86_64 machines); the simulated states stay bit-exact.
    np.testing.assert_allclose(np.array(actions), ref[f"{env_id}/episode/actions"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.array(states), ref[f"{env_id}/episode/states"])
    np.testing.assert_array_equal(obs["env_state"], ref[f"{env_id}/episode/final_env_state"])
    assert info["is_success"] == bool(ref[f"{env_id}/episode/success"])
