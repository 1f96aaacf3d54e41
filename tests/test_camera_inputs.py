"""What a camera policy receives in eval and deploy: only the keys it reads (never privileged
state), frames of another camera size fitted to its input, and the simulated cameras' rate,
latency and perturbation through the eval and deploy commands."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from imitation.checkpoint import consumed_keys, save_checkpoint
from imitation.config import to_dict
from imitation.deploy import DeployConfig, InlineInference, deploy
from imitation.errors import ConfigError
from imitation.evaluate import EvalConfig, _make_env, evaluate, policy_keys, rollout
from imitation.policies import ACTConfig, ACTPolicy
from imitation.policies.common import IOSpec
from imitation.robots.base import CameraSpec, RobotSpec
from imitation.robots.geometry import camera_fit_meta, fit_frame
from imitation.robots.stack import Needs, check_compatible, sim_camera_kwargs

ENV = "imitation/PickPlace-v0"  # its observations hold env_state, which a camera policy must never see
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
IO = IOSpec({"state": 6}, {"images/top": (96, 96, 3)}, 6)


def camera_policy() -> ACTPolicy:
    """A tiny ACT that reads the joint state and a 96x96 top camera, as a camera policy does."""
    torch.manual_seed(0)
    cfg = ACTConfig(
        obs_keys=("state", "images/top"),
        chunk_size=5,
        dim_model=16,
        n_heads=2,
        dim_feedforward=32,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
        vision_width=16,
    )
    return ACTPolicy(cfg, IO).eval()


def write_checkpoint(path: Path, camera_fit: str | None) -> Path:
    policy = camera_policy()
    robot = {
        "name": "so100",
        "joint_names": JOINTS,
        "control_hz": 50.0,
        "cameras": {"images/top": [96, 96, 3]},
        "consumes": ["state", "images/top"],
        "needs_env_state": False,
        "env_id": ENV,
    }
    if camera_fit:
        robot["camera_fit"] = camera_fit_meta(IO.images, camera_fit)
    meta = {
        "policy": "act",
        "policy_config": to_dict(policy.cfg),
        "io": IO.to_dict(),
        "step": 0,
        "robot": robot,
        "frame_skip": 1,
        "dataset": {"path": None, "fingerprint": None, "train_episodes": []},
    }
    return save_checkpoint(path, policy.state_dict(), meta, mark_last=False)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("camera_ckpt")
    return {
        "fit": write_checkpoint(root / "fit", "center_crop_resize"),
        "plain": write_checkpoint(root / "plain", None),
    }


def digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class Spy(torch.nn.Module):
    """A policy that records what each of its calls is handed, and acts as the policy it wraps."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.io, self.cfg = inner, inner.io, inner.cfg
        self.keys: list[set[str]] = []
        self.images: list[list[str]] = []  # per call, a digest of each environment's top image

    def select_action(self, obs):  # noqa: ANN001, ANN201
        self.keys.append(set(obs))
        self.images.append([digest(x.numpy()) for x in obs["images/top"]])
        return self.inner.select_action(obs)

    def reset(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return self.inner.reset(*args, **kwargs)


IMAGE_KWARGS = {"obs_mode": "both", "cameras": ("top",), "image_size": (96, 96), "time_limit_s": 0.1}


# ------------------------------------------------------------------------------ only what it reads
@pytest.mark.parametrize("num_envs", [1, 2])
def test_eval_never_hands_a_camera_policy_the_privileged_state(num_envs):
    spy = Spy(camera_policy())
    episodes, _ = rollout(spy, ENV, [1, 2], env_kwargs=IMAGE_KWARGS, num_envs=num_envs)
    assert [e.length for e in episodes] == [5, 5]
    assert spy.keys and all(k == {"state", "images/top"} for k in spy.keys)


def test_observations_leave_the_environment_holding_only_what_the_policy_reads():
    keys = policy_keys(camera_policy())
    assert keys == ("state", "images/top")
    for film in (frozenset(), frozenset({1})):  # the filmed episodes' environment too
        env = _make_env(ENV, IMAGE_KWARGS, film, keys)
        obs, _ = env.reset(seed=1)
        assert set(obs) == set(env.observation_space.spaces) == {"state", "images/top"}
        obs, *_ = env.step(env.action_space.sample())
        assert set(obs) == {"state", "images/top"}
        env.close()


def test_a_checkpoint_whose_consumes_disagree_with_its_inputs_is_refused(checkpoints):
    from imitation.checkpoint import read_meta

    meta = read_meta(checkpoints["plain"])
    assert consumed_keys(meta) == ("state", "images/top")
    meta["robot"]["consumes"] = ["state", "env_state", "images/top"]
    with pytest.raises(ConfigError, match=r"robot.consumes .* disagrees with the inputs its io declares"):
        consumed_keys(meta)
    policy = camera_policy()
    policy.meta = meta
    with pytest.raises(ConfigError, match="disagrees"):
        policy_keys(policy)


def spy_on_inference(monkeypatch) -> list[dict[str, np.ndarray]]:
    """Every window the deploy loop hands the (inline) policy."""
    windows: list[dict[str, np.ndarray]] = []
    submit = InlineInference.submit

    def spy(self, tick, window):  # noqa: ANN001, ANN202
        windows.append({k: np.array(v) for k, v in window.items()})
        return submit(self, tick, window)

    monkeypatch.setattr(InlineInference, "submit", spy)
    return windows


def test_deploy_never_hands_a_camera_policy_the_privileged_state(checkpoints, monkeypatch, tmp_path):
    windows = spy_on_inference(monkeypatch)
    store = tmp_path / "deployed.zarr"
    s = deploy(
        DeployConfig(
            checkpoint=str(checkpoints["plain"]),
            robot="sim",
            inference="inline",
            episode_s=0.1,
            record=str(store),
        )
    )
    assert s["episodes"][0]["ticks"] == 5 and windows
    assert all(set(w) == {"state", "images/top"} and w["images/top"].shape == (1, 96, 96, 3) for w in windows)
    from imitation.data.store import DemoStore

    assert "env_state" in DemoStore.open(store).features  # the recording still keeps everything


# ------------------------------------------------------------------------------ camera geometry
def emulated_arm_with_a_usb_sized_camera(tmp_path: Path) -> Path:
    """The emulated SO-100 whose simulated top camera gives 480x640 frames, as a USB camera does."""
    rc = yaml.safe_load(Path("configs/robots/so100_emulated.yaml").read_text())
    rc["cameras"] = {"top": {"source": "sim", "height": 480, "width": 640}}
    del rc["env_state"]  # a camera policy needs no object tracker
    path = tmp_path / "so100_usb_camera.yaml"
    path.write_text(yaml.safe_dump(rc, sort_keys=False))
    return path


def test_a_96x96_policy_runs_on_a_480x640_camera_through_its_declared_fit(checkpoints, monkeypatch, tmp_path):
    from imitation.robots.emulated import SimCamera

    robot = emulated_arm_with_a_usb_sized_camera(tmp_path)
    # Without a declared fit, the resolution mismatch is refused as before, naming the way out.
    with pytest.raises(
        ConfigError, match=r"gives 480x640, trained on 96x96 \(to fit its frames: --camera-fit top="
    ):
        deploy(
            DeployConfig(
                checkpoint=str(checkpoints["plain"]), robot=str(robot), emulate=True, inference="inline"
            )
        )
    seen: list[np.ndarray] = []  # the camera's frames, as the robot read them
    read = SimCamera.read

    def read_spy(self, tick_time=None):  # noqa: ANN001, ANN202
        frame, ts, seq = read(self, tick_time)
        seen.append(frame.copy())
        return frame, ts, seq

    monkeypatch.setattr(SimCamera, "read", read_spy)
    windows = spy_on_inference(monkeypatch)
    for ckpt, flags, fit in (
        (checkpoints["fit"], (), "center_crop_resize"),  # declared by the checkpoint
        (checkpoints["plain"], ("top=resize",), "resize"),  # given on the command line
    ):
        seen.clear()
        windows.clear()
        cfg = DeployConfig(
            checkpoint=str(ckpt),
            robot=str(robot),
            emulate=True,
            inference="inline",
            episode_s=0.2,
            camera_fit=flags,
        )
        s = deploy(cfg)
        assert s["episodes"][0]["ticks"] == 10 and s["camera_fit"] == {"images/top": fit}
        assert windows and seen and seen[-1].shape == (480, 640, 3)
        # Each window is submitted right after the observation it holds: its frame is the fit of
        # the camera frame the robot read last.
        frames = [f.copy() for f in seen]
        for w in windows:
            assert w["images/top"].shape == (1, 96, 96, 3)
            assert any(np.array_equal(w["images/top"][0], fit_frame(f, (96, 96), fit)) for f in frames)
        assert np.array_equal(windows[-1]["images/top"][0], fit_frame(seen[-1], (96, 96), fit))


def test_check_compatible_accepts_another_resolution_only_with_a_fit():
    from imitation.robots.geometry import CameraFit

    spec = RobotSpec("arm", ("a",), np.zeros(1), np.ones(1), 50.0, cameras=(CameraSpec("top", 480, 640),))
    meta = {"robot": {"joint_names": ["a"], "control_hz": 50.0, "cameras": {"images/top": [96, 96, 3]}}}
    with pytest.raises(ConfigError, match="--camera-fit top=center_crop_resize, or top=resize"):
        check_compatible(Needs.of_checkpoint(meta), spec, has_env_state=False)
    fitted = Needs(
        **vars(Needs.of_checkpoint(meta)) | {"fits": {"images/top": CameraFit((96, 96), "resize")}}
    )
    check_compatible(fitted, spec, has_env_state=False)


def test_deploy_cli_refuses_a_bad_camera_fit_in_one_line(checkpoints):
    proc = subprocess.run(
        [sys.executable, "-m", "imitation.cli", "deploy", "--checkpoint", str(checkpoints["plain"]),
         "--robot", "sim", "--camera-fit", "top=stretch"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "top=stretch" in proc.stderr and "center_crop_resize" in proc.stderr


# ------------------------------------------------------------------------------ simulated cameras
def test_eval_records_the_camera_flags_and_perturbs_batched_as_serial(checkpoints, tmp_path, monkeypatch):
    kwargs = IMAGE_KWARGS | {"camera_fps": 25.0, "camera_latency_ms": 40.0, "perturb": True}
    runs = {}
    for n in (1, 2):
        spy = Spy(camera_policy())
        episodes, _ = rollout(spy, ENV, [3, 4], env_kwargs=kwargs, num_envs=n)
        runs[n] = (spy, episodes)
    (serial, e1), (batched, e2) = runs[1], runs[2]
    # Serial: seed 3's five calls, then seed 4's; batched: both at each call. The first four show
    # the capture at the start, which the perturbation and the seed alone decide (later ones follow
    # the policy's actions, equal only to float rounding in a batch).
    assert [c[0] for c in serial.images[:4]] == [c[0] for c in batched.images[:4]]
    assert [c[0] for c in serial.images[5:9]] == [c[1] for c in batched.images[:4]]
    assert batched.images[0][0] != batched.images[0][1]
    assert [e.ret for e in e1] == pytest.approx([e.ret for e in e2], rel=1e-5)
    # 25 fps and 40 ms late at 50 Hz: ticks 0-3 all show the first capture, tick 4 the next.
    first = [c[0] for c in batched.images]
    assert first[0] == first[1] == first[2] == first[3] != first[4]
    plain = Spy(camera_policy())
    rollout(plain, ENV, [3], env_kwargs=IMAGE_KWARGS, num_envs=1)
    assert plain.images[0][0] != first[0]  # the perturbed scene looks different

    import imitation.evaluate

    task_options = imitation.evaluate.env_kwargs_for  # the command, with 5-tick episodes
    monkeypatch.setattr(
        imitation.evaluate, "env_kwargs_for", lambda meta: task_options(meta) | {"time_limit_s": 0.1}
    )
    s = evaluate(
        EvalConfig(
            checkpoint=str(checkpoints["plain"]),
            episodes=2,
            num_envs=2,
            videos=0,
            camera_fps=25,
            camera_latency_ms=40,
            perturb=True,
            out=str(tmp_path / "ev"),
        ),
        progress=False,
    )
    record = json.loads((tmp_path / "ev" / "results.json").read_text())
    for where in (record["summary"], record["config"]):
        assert (where["camera_fps"], where["camera_latency_ms"], where["perturb"]) == (25, 40, True)
    assert s["episodes"] == 2


def test_deploy_on_the_simulated_arm_takes_the_camera_rate(checkpoints, monkeypatch):
    windows = spy_on_inference(monkeypatch)
    changes = {}
    for fps in (None, 25.0):
        windows.clear()
        deploy(
            DeployConfig(
                checkpoint=str(checkpoints["plain"]),
                robot="sim",
                inference="inline",
                episode_s=0.3,
                camera_fps=fps,
            )
        )
        frames = [digest(w["images/top"]) for w in windows[1:]]  # the loop's ticks, one window each
        changes[fps] = [a != b for a, b in zip(frames, frames[1:], strict=False)]
    assert all(changes[None])  # the arm moves: a new picture every tick
    assert not any(
        a and b for a, b in zip(changes[25.0], changes[25.0][1:], strict=False)
    )  # never two in a row
    assert sum(changes[25.0]) >= len(changes[25.0]) // 2 - 1


def test_camera_flags_are_refused_where_they_change_nothing():
    with pytest.raises(ConfigError, match="--perturb change only camera images, and this policy reads none"):
        sim_camera_kwargs(None, 0.0, True, reads_images=False, env_id=ENV)
    with pytest.raises(ConfigError, match="work on the tasks of envs/"):
        sim_camera_kwargs(30.0, 0.0, False, reads_images=True, env_id="configs/envs/pusher.yaml")
    assert sim_camera_kwargs(None, 0.0, False, reads_images=False, env_id=ENV) == {}
    with pytest.raises(ConfigError, match="act on simulated cameras"):
        DeployConfig(checkpoint="x", robot="so100", port="/dev/null", camera_fps=30)
    with pytest.raises(ConfigError, match="camera_fps 0: out of range; give a value > 0"):
        EvalConfig(camera_fps=0)
    with pytest.raises(ConfigError, match="--camera-fit applies to an arm's cameras"):
        EvalConfig(camera_fit=("top=resize",))


def test_a_late_simulated_camera_under_emulate_stamps_its_frames_with_their_capture_time():
    from imitation.robots.config import load_robot_config
    from imitation.robots.emulated import SimPhysics

    rc = load_robot_config("configs/robots/so100_emulated.yaml")
    physics = SimPhysics(
        rc,
        ENV,
        obs_mode="both",
        cameras=("top",),
        image_size=(32, 32),
        env_kwargs={"camera_latency_ms": 40.0},
    )
    physics.reset(3)
    physics._reset_now(3)
    for _ in range(5):
        physics.obs = physics._step(np.zeros(6))
    physics.steps, physics.episode_start = 5, 100.0
    frame, ts, _ = physics.camera("top").read()
    # At the tick at 100 ms the frame is the capture at 60 ms: stamped 100.06 on the arm's clock.
    assert ts == pytest.approx(100.06) and frame.shape == (32, 32, 3)
    physics.close()
