"""Third-party gymnasium environments through a mapping (``tests/fake_gym.py``): cheap rendering of
any MuJoCo env, what the labels of a mapped env's actions and state say, quiet warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_gym import write_mapping

from envs.mapping import EnvMapping, MappedEnv, check_env_id, locate
from imitation.errors import ConfigError
from imitation.robots.sim import SimRobot


@pytest.mark.parametrize("env_id", ["fake/Shadowed-v0", "fake/Adapter-v0"])
def test_any_mujoco_env_renders_without_shadows_or_multisampling(tmp_path: Path, env_id: str) -> None:
    import mujoco

    # The env built its own mujoco.Renderer (64 x 64) at construction, with shadows and 8x
    # multisampling; or holds such an env, whose model it shows through a property.
    mapping = write_mapping(tmp_path, env_id, images={"front": {"from": "render", "size": [32, 32]}})
    env = MappedEnv(mapping, obs_mode="both")
    u = env.env.unwrapped
    u = getattr(u, "env", u)
    assert (u.model.vis.quality.shadowsize, u.model.vis.quality.offsamples) == (0, 0)
    # The renderer built before was made again, on the same model and at the same size, so that its
    # GL context has no shadow map and no multisampled buffer.
    assert isinstance(u.renderer, mujoco.Renderer) and u.renderer.model is u.model
    assert (u.renderer.height, u.renderer.width) == (64, 64)
    assert (u.renderer._mjr_context.shadowSize, u.renderer._mjr_context.offSamples) == (0, 0)
    obs, _ = env.reset(seed=0)
    frame = obs["images/front"]
    assert frame.shape == (32, 32, 3) and frame.std() > 5  # a rendered scene
    env.close()


def test_a_named_mujoco_camera_renders_beside_the_envs_own_view(tmp_path: Path) -> None:
    import mujoco
    import numpy as np

    # The Adapter holds its MjData one level down; "top" is a second camera of its model.
    images = {"front": {"from": "render", "size": [32, 32]}, "top": {"from": "camera:top", "size": [24, 40]}}
    env = MappedEnv(write_mapping(tmp_path, "fake/Adapter-v0", images=images), obs_mode="images")
    obs, _ = env.reset(seed=0)
    top = obs["images/top"]
    assert top.shape == (24, 40, 3) and top.std() > 5
    inner = env.env.unwrapped.env
    assert inner.model.vis.quality.shadowsize == 0  # the same cheap settings as the env's own view
    with mujoco.Renderer(inner.model, 24, 40) as own:
        own.update_scene(inner.data, camera="top")
        assert np.array_equal(top, own.render())
        own.update_scene(inner.data, camera="front")
        assert not np.array_equal(top, own.render())
    env.step(env.action_space.sample())  # follows the env's state
    env.close()


def test_a_camera_can_be_flipped_and_the_store_records_it(tmp_path: Path) -> None:
    import numpy as np

    from envs.mapping import recorded_env

    images = {"top": {"from": "camera:top", "size": [24, 40]}}
    flipped = {"top": {"from": "camera:top", "size": [24, 40], "flip": "vertical"}}
    upright = write_mapping(tmp_path, "fake/Adapter-v0", images=images, name="up.yaml")
    over = write_mapping(tmp_path, "fake/Adapter-v0", images=flipped, name="over.yaml")
    frames = []
    for path in (upright, over):
        env = MappedEnv(path, obs_mode="images")
        frames.append(env.reset(seed=0)[0]["images/top"])
        env.close()
    assert np.array_equal(frames[1], frames[0][::-1]) and not np.array_equal(frames[0], frames[1])
    assert recorded_env(str(over))["camera_sources"] == {"top": "camera:top flipped vertical"}
    bad = write_mapping(
        tmp_path, "fake/Adapter-v0", images={"top": {**images["top"], "flip": "up"}}, name="b.yaml"
    )
    with pytest.raises(
        ConfigError, match=r"images.top.flip='up' must be one of none, vertical, horizontal, both"
    ):
        EnvMapping.load(bad)

    bad = {"top": {"from": "camera:nope", "size": [24, 24]}}
    with pytest.raises(ConfigError, match="no camera 'nope'; its cameras are front, top"):
        MappedEnv(write_mapping(tmp_path, "fake/Shadowed-v0", images=bad, name="b.yaml"), obs_mode="images")
    no_mujoco = {"top": {"from": "camera:top", "size": [24, 24]}}
    with pytest.raises(ConfigError, match="exposes no mujoco.MjData"):
        MappedEnv(
            write_mapping(tmp_path, "fake/Truncating-v0", images=no_mujoco, name="t.yaml"), obs_mode="images"
        )
    with pytest.raises(ConfigError, match="must be render, camera:<name>"):
        EnvMapping.load(
            write_mapping(
                tmp_path, "fake/Shadowed-v0", images={"x": {"from": "camera:", "size": [8, 8]}}, name="e.yaml"
            )
        )


def test_the_first_frame_shows_the_scene_the_reset_made(tmp_path: Path) -> None:
    import mujoco
    import numpy as np

    # The env moves its goal marker after its last mj_forward (as Meta-World's reset does): without
    # a refresh, the first frame of each episode draws the previous episode's goal.
    images = {"front": {"from": "render", "size": [32, 32]}, "top": {"from": "camera:top", "size": [32, 32]}}
    env = MappedEnv(write_mapping(tmp_path, "fake/MovingGoal-v0", images=images), obs_mode="images")
    inner = env.env.unwrapped
    with mujoco.Renderer(inner.model, 32, 32) as own:
        for seed in (0, 1, 2):
            obs, _ = env.reset(seed=seed)
            np.testing.assert_allclose(inner.data.site("goal").xpos, inner.model.site("goal").pos)
            own.update_scene(inner.data, camera="top")
            assert np.array_equal(obs["images/top"], own.render())
            stepped, *_ = env.step(np.zeros(1, np.float32))  # the goal stays where the reset put it
            assert np.array_equal(obs["images/top"], stepped["images/top"])
        # Seeds 1 and 2 put the goal on opposite sides: their first frames differ.
        assert not np.array_equal(env.reset(seed=1)[0]["images/top"], env.reset(seed=2)[0]["images/top"])
    env.close()


def test_a_mapping_named_by_a_checkpoint_is_found_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Demos recorded in project/ with --env configs/fake.yaml; eval runs elsewhere.
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "configs").mkdir(parents=True)
    elsewhere.mkdir()
    write_mapping(project / "configs", "fake/Wide-v0")
    monkeypatch.chdir(project)
    robot = SimRobot("configs/fake.yaml").spec.to_dict()
    assert robot["env_id"] == "configs/fake.yaml"
    assert robot["env_path"] == str(project / "configs/fake.yaml")
    ckpt = project / "runs/x/checkpoints/000010"
    assert locate(robot["env_id"], env_path=robot["env_path"], near=[ckpt]) == "configs/fake.yaml"

    monkeypatch.chdir(elsewhere)
    found = locate(robot["env_id"], env_path=robot["env_path"], near=[ckpt])
    assert found == robot["env_path"]
    # The project moved (the absolute path is stale): found beside the checkpoint's run.
    moved = tmp_path / "moved"
    (project).rename(moved)
    found = locate(robot["env_id"], env_path=robot["env_path"], near=[moved / "runs/x/checkpoints/000010"])
    assert found == str(moved / "configs/fake.yaml")
    with pytest.raises(ConfigError) as e:
        locate(robot["env_id"], env_path=robot["env_path"], near=[elsewhere], origin="checkpoint c")
    message = str(e.value)
    assert "\n" not in message and message.startswith("checkpoint c names the mapping 'configs/fake.yaml'")
    assert robot["env_path"] in message and "pass --env PATH" in message
    assert locate("imitation/PickPlace-v0", near=[elsewhere]) == "imitation/PickPlace-v0"


def test_a_mapping_found_elsewhere_still_may_not_import_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mapping(tmp_path, "fake/Wide-v0", name="code.yaml", imports=["fake_gym"])
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    found = locate("code.yaml", env_path=None, near=[tmp_path / "run"], origin="checkpoint c")
    assert found == str(tmp_path / "code.yaml")
    with pytest.raises(ConfigError, match=f"pass --env {found} on the command line"):
        check_env_id(found, trusted=False, origin="checkpoint c")


def test_eval_finds_the_checkpoints_mapping_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_gym import ConstantPolicy, fake_checkpoint

    from imitation.evaluate import EvalConfig, evaluate

    (tmp_path / "project/configs").mkdir(parents=True)
    write_mapping(tmp_path / "project/configs", "fake/Truncating-v0")
    ckpt = fake_checkpoint(tmp_path / "project/runs/x", "configs/fake.yaml", 3, 2)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = EvalConfig(checkpoint=str(ckpt), episodes=2, num_envs=1, videos=0, out=str(tmp_path / "ev"))
    summary = evaluate(cfg, policy=ConstantPolicy(2), progress=False)
    assert summary["env"] == str(tmp_path / "project/configs/fake.yaml") and summary["episodes"] == 2


def test_a_mapped_action_is_joints_only_when_the_mapping_says_so(tmp_path: Path) -> None:
    from imitation.robots.stack import store_features

    # A 4-D end-effector action beside a 4-D state: neither is labelled as joints.
    names = ["dx", "dy", "dz", "grip"]
    ee = write_mapping(tmp_path, "fake/Wide-v0", name="ee.yaml", action_kind="ee_delta", action_names=names)
    spec = SimRobot(str(ee)).spec
    robot = spec.to_dict()
    assert robot["joint_names"] == [] and "limits_rad" not in robot
    assert robot["action_kind"] == "ee_delta" and robot["action_names"] == names
    assert robot["action_limits"] == [[-1.0, 1.0]] * 4
    features = store_features(spec)
    assert features["action"]["names"] == names
    assert features["state"]["names"] == ["s0", "s1", "s2", "s3"]  # never the action's names
    # A mapping without action_kind makes no claim either; its state may be named.
    plain = write_mapping(tmp_path, "fake/Wide-v0", name="plain.yaml", state_names=["x", "y", "z", "w"])
    spec = SimRobot(str(plain)).spec
    assert spec.to_dict()["joint_names"] == [] and spec.to_dict()["action_kind"] == "other"
    assert store_features(spec)["state"]["names"] == ["x", "y", "z", "w"]
    # Joint position targets: the robot's joints and their limits, as for this project's arms.
    joints = write_mapping(
        tmp_path, "fake/Wide-v0", name="joints.yaml", action_kind="joints", action_names=names
    )
    robot = SimRobot(str(joints)).spec.to_dict()
    assert robot["joint_names"] == names and robot["limits_rad"] == [[-1.0, 1.0]] * 4
    assert "action_kind" not in robot
    # The shipped Pusher mapping: joint torques.
    pusher = EnvMapping.load(Path(__file__).resolve().parents[2] / "configs/envs/pusher.yaml")
    assert pusher.action_kind == "torque"


def test_a_mapping_declares_its_grippers(tmp_path: Path) -> None:
    names = ["dx", "dy", "dz", "claw"]
    # By default a gripper is a value whose name holds "grip": here none is.
    plain = write_mapping(
        tmp_path, "fake/Wide-v0", name="plain.yaml", action_kind="ee_delta", action_names=names
    )
    assert SimRobot(str(plain)).spec.gripper_dims == ()
    named = write_mapping(
        tmp_path,
        "fake/Wide-v0",
        name="named.yaml",
        action_kind="ee_delta",
        action_names=names,
        grippers=["claw"],
    )
    assert SimRobot(str(named)).spec.gripper_dims == (3,)
    bad = write_mapping(tmp_path, "fake/Wide-v0", name="bad.yaml", action_names=names, grippers=["grip"])
    with pytest.raises(ConfigError, match=r"grippers \['grip'\] are not action names; choose from"):
        MappedEnv(bad)


def test_bad_action_kinds_and_state_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="action_kind='joint' is not one of joints, ee_delta, ee_pose"):
        EnvMapping.load(write_mapping(tmp_path, "fake/Wide-v0", action_kind="joint"))
    with pytest.raises(ConfigError, match="3 state_names for a state of 4 values"):
        MappedEnv(write_mapping(tmp_path, "fake/Wide-v0", state_names=["a", "b", "c"]))


def test_a_recorded_store_names_a_mapped_envs_action_and_state_by_the_mapping(tmp_path: Path) -> None:
    from imitation.data.store import DemoStore
    from imitation.record import RecordConfig, record_scripted

    mapping = write_mapping(
        tmp_path, "fake/Wide-v0", action_kind="ee_delta", action_names=["dx", "dy", "dz", "grip"]
    )
    mapping.write_text(mapping.read_text() + "expert: fake_gym:overreaching\n")
    out = tmp_path / "demos.zarr"
    record_scripted(
        RecordConfig(env=str(mapping), episodes=1, keep_failed=True, obs_mode="state", out=out),
        progress=False,
    )
    store = DemoStore.open(out)
    assert store.robot["joint_names"] == [] and store.robot["action_kind"] == "ee_delta"
    assert store.features["state"].names == ("s0", "s1", "s2", "s3")
    assert store.features["action"].names == ("dx", "dy", "dz", "grip")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    tests = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests), str(tests.parent)]), MUJOCO_GL="egl")
    env.pop("IMITATION_DEBUG", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_foreign_warnings_and_renderer_teardown_stay_off_the_terminal(tmp_path: Path) -> None:
    # An env whose library warns on every step, and whose observations gymnasium's checker warns about.
    mapping = write_mapping(
        tmp_path,
        "fake/Noisy-v0",
        imports=["fake_gym"],
        expert="fake_gym:overreaching",
        images={"front": {"from": "render", "size": [32, 32]}},
    )
    out = tmp_path / "demos.zarr"
    args = ["-m", "imitation.cli", "record", "--env", str(mapping), "--episodes", "1", "--keep-failed"]
    done = _run([*args, "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "recorded 1 episode(s)" in done.stdout
    assert "Warning" not in done.stderr and "WARN" not in done.stderr, done.stderr
    # A MuJoCo env that built its own renderer, left open at exit: closed before EGL goes.
    script = (
        "from envs.mapping import MappedEnv\n"
        f"env = MappedEnv({str(write_mapping(tmp_path, 'fake/Shadowed-v0', name='s.yaml', imports=['fake_gym']))!r}, "
        "render_mode='rgb_array')\n"
        "env.reset(seed=0)\nassert env.render().shape[0] == 240\n"
    )
    done = _run(["-c", script], tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
