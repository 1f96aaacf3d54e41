"""The operator's recording session, driven by scripted device events on the simulated arm.

In process, sessions run on a simulated clock (the session's RateLoop, and under --emulate the
arm's physics): what they record does not depend on the machine's load.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from imitation.control import RateLoop, SimulatedClock
from imitation.data.check import validate
from imitation.data.store import DemoStore
from imitation.errors import ConfigError
from imitation.record import RecordConfig
from imitation.session import Status, render_ui


def sim_loop(hz: float = 50.0, clock: SimulatedClock | None = None) -> RateLoop:
    return RateLoop.simulated(hz, clock)


class KeyScript:
    """A teleop device that holds the arm where it is and presses keys at given ticks."""

    def __init__(self, keys: dict[int, str]) -> None:
        self.keys, self.tick = keys, 0
        self.resets = 0

    def connect(self):
        pass

    def close(self):
        pass

    def reset(self, obs):
        self.resets += 1

    def read(self, obs):
        self.tick += 1
        return np.asarray(obs["state"], dtype=np.float64)

    def events(self):
        k = self.keys.get(self.tick) or ("QUIT" if self.tick >= 300 else None)  # never hang a test
        return [SimpleNamespace(name=k)] if k else []


def session(tmp_path, keys, name="s.zarr", teleop=None, loop=None, **kw):
    from imitation.session import record_session

    cfg = RecordConfig(
        env="imitation/PickPlace-v0",
        robot="sim",
        teleop="keyboard",
        obs_mode=kw.pop("obs_mode", "state"),
        out=tmp_path / name,
        episodes=kw.pop("episodes", 10),
        warmup_s=0.0,
        ui="none",
        **kw,
    )
    return record_session(cfg, teleop=teleop or KeyScript(keys), loop=loop or sim_loop())


def test_a_full_session_keeps_exactly_the_saved_episodes(tmp_path):
    keys = {
        2: "TOGGLE", 10: "TOGGLE",  # episode 1: ticks 3..10
        12: "TOGGLE", 16: "RERECORD", 25: "TOGGLE",  # episode 2, re-recorded: ticks 17..25
        27: "TOGGLE", 30: "DISCARD",  # dropped
        32: "TOGGLE", 40: "QUIT",  # quit while recording: nothing unsaved is kept
    }  # fmt: skip
    out = session(tmp_path, keys)
    assert out["saved"] == 2 and out["discarded"] == 1 and out["rerecorded"] == 1
    store = DemoStore.open(tmp_path / "s.zarr")
    assert store.n_episodes == 2 and list(store.episode_lengths) == [8, 9]
    assert validate(store).ok
    m = store.episode_meta(0)
    assert m["info"]["teleop"] == "keyboard" and m["outcome"] in ("success", "failure")
    assert store.episode_meta(1)["seed"] == 1  # each started episode gets the next scene
    ts = store.read_episode(1, ["timestamp"])["timestamp"] if "timestamp" in store.features else None
    assert ts is None or (np.diff(ts) > 0).all()
    assert {"state", "env_state", "action"} <= set(store.features)


def test_time_limit_saves_and_resume_appends(tmp_path):
    out = session(tmp_path, {2: "TOGGLE"}, episodes=1, episode_s=0.2)
    assert out["saved"] == 1
    store = DemoStore.open(tmp_path / "s.zarr")
    # Started at tick 2; 0.2 s at 50 Hz later, at tick 12, the time is up: frames of ticks 3..12.
    assert store.episode_meta(0)["outcome"] == "timeout" and store.episode_lengths[0] == 10
    assert store.episode_meta(0)["duration_s"] == pytest.approx(0.2)
    out = session(tmp_path, {2: "TOGGLE", 6: "TOGGLE"}, episodes=1)
    assert out["store_episodes"] == 2 and DemoStore.open(tmp_path / "s.zarr").episode_lengths[1] == 4


def test_resuming_into_a_store_of_another_schema_is_refused(tmp_path):
    session(tmp_path, {2: "TOGGLE", 4: "TOGGLE"}, episodes=1)
    with pytest.raises(ConfigError, match="holds features"):
        session(tmp_path, {2: "QUIT"}, obs_mode="both")
    assert DemoStore.open(tmp_path / "s.zarr").n_episodes == 1  # untouched


def test_the_operator_window_shows_views_status_and_keys():
    img = render_ui(
        Status(
            state="recording",
            episode=2,
            target=10,
            elapsed_s=3.2,
            rate_hz=49.9,
            warnings=["camera wrist stale"],
        ),
        {"top": np.zeros((96, 96, 3), np.uint8), "wrist": np.full((96, 128, 3), 128, np.uint8)},
    )
    assert img.dtype == np.uint8 and img.shape[2] == 3 and img.shape[1] >= 960
    assert (img[-110:] != 32).any()  # the status panel has text on it
    assert "REC" in Status(state="recording").line() and "r: re-record" in Status().line()


CHILD = textwrap.dedent(
    """
    import logging, sys, types, numpy as np
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.path.insert(0, {root!r})
    from imitation.record import RecordConfig
    from imitation.session import record_session

    class Loop:  # Enter every 7 ticks: start, record 7 frames, save; forever
        tick = 0
        def connect(self): pass
        def close(self): pass
        def reset(self, obs): pass
        def read(self, obs):
            self.tick += 1
            return np.asarray(obs["state"], dtype=np.float64)
        def events(self):
            return [types.SimpleNamespace(name="TOGGLE")] if self.tick % 7 == 0 else []

    cfg = RecordConfig(env={env!r}, robot={robot!r}, emulate={emulate!r}, teleop="keyboard", obs_mode="state",
                       out=__import__("pathlib").Path(sys.argv[1]), episodes=100000, warmup_s=0.0, ui="none")
    record_session(cfg, teleop=Loop())
    """
)


def kill_sessions(script: Path, store_path: Path, trials: int, seed: int, wait_s: float = 60.0) -> int:
    """Run ``script`` (a recording session saving a 7-frame episode every 7 ticks into
    ``store_path``) ``trials`` times, each killed with SIGKILL at a random moment after its first
    save; after each, every episode it reported saved is in the store, which validates. Returns
    how many saves were reported in all."""
    rng = np.random.default_rng(seed)
    reported_total = 0
    for trial in range(trials):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(store_path)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "MUJOCO_GL": "egl"},
        )
        # Wait until the session runs (its first save), then kill it at a random moment.
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(proc.stderr,), daemon=True)
        reader.start()
        deadline = time.monotonic() + wait_s
        while not any("saved episode" in ln for ln in lines) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines)[-2000:]
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(timeout=60)
        saved_lines = [ln for ln in lines if "saved episode" in ln]
        reported_total += len(saved_lines)
        store = DemoStore.open(store_path)
        assert store.n_episodes >= reported_total, f"trial {trial}: a reported episode is missing"
        report = validate(store)
        assert report.ok, report.errors
        assert (store.episode_lengths == 7).all()  # started at tick 7k, frames 7k+1 .. 7k+7
    return reported_total


def test_sigkill_at_random_moments_never_loses_a_saved_episode(tmp_path):
    script = tmp_path / "child.py"
    root = str(Path(__file__).resolve().parents[1])
    script.write_text(CHILD.format(root=root, env="imitation/PickPlace-v0", robot="sim", emulate=False))
    assert kill_sessions(script, tmp_path / "kill.zarr", trials=20, seed=0) >= 20


def test_a_session_on_the_emulated_arm(tmp_path):
    """The real-arm path: servo emulator, calibration, BusArm, cameras and tracker from the simulator."""
    from imitation.session import record_session

    cfg = RecordConfig(
        env="imitation/PickPlace-v0",
        robot="configs/robots/so100_emulated.yaml",
        emulate=True,
        teleop="keyboard",
        out=tmp_path / "emu.zarr",
        episodes=1,
        warmup_s=0.0,
        ui="none",
    )
    out = record_session(cfg, teleop=KeyScript({2: "TOGGLE", 12: "TOGGLE"}), loop=sim_loop())
    assert out["saved"] == 1
    store = DemoStore.open(tmp_path / "emu.zarr")
    assert store.episode_lengths[0] == 10 and store.episode_meta(0)["dropped_frames"] == 0
    assert {"state", "env_state", "action", "images/top"} <= set(store.features)
    assert validate(store).ok


def test_a_leader_arm_session_on_emulated_arms(tmp_path, monkeypatch):
    """Follower and leader both emulated: the follower copies the leader the operator moves."""
    from imitation.robots.buses import make_bus
    from imitation.robots.buses.emulator import ServoEmulator
    from imitation.robots.calibration import default_path
    from imitation.robots.config import load_robot_config
    from imitation.robots.emulated import SimPhysics, scripted_calibration
    from imitation.session import record_session
    from imitation.teleop import make_teleop

    monkeypatch.setenv("IMITATION_HOME", str(tmp_path / "home"))
    rc = load_robot_config("so100_leader")
    hand = SimPhysics(rc, "imitation/PickPlace-v0", seed=3)  # the leader's "physics": the operator's hand
    emu = ServoEmulator(
        rc.protocol, {int(m["id"]): str(m["model"]) for m in rc.motors.values()}, physics=hand
    )
    port = emu.start()
    try:
        with make_bus(rc.protocol, port, rc.motors) as bus:
            scripted_calibration(bus, rc, hand).save(default_path("so100_leader"))
        pose = np.array([0.2, 0.5, 1.3, 1.0, 0.3, 0.8])
        hand.set_pose(pose)

        class Keys:  # the leader has no buttons: Enter from the "keyboard"
            tick = 0

            def connect(self): ...
            def close(self): ...

            def events(self):
                self.tick += 1
                k = {2: "TOGGLE", 40: "TOGGLE"}.get(self.tick)
                return [SimpleNamespace(name=k)] if k else []

        teleop = make_teleop("so100-leader", port=port, events=Keys())
        teleop.connect()
        cfg = RecordConfig(
            env="imitation/PickPlace-v0",
            robot="configs/robots/so100_emulated.yaml",
            emulate=True,
            teleop="so100-leader",
            out=tmp_path / "lead.zarr",
            episodes=1,
            warmup_s=0.0,
            ui="none",
        )
        # The follower's physics steps once per tick of the simulated clock: how far it gets in the
        # episode's 38 ticks does not depend on how fast this machine runs them.
        out = record_session(cfg, teleop=teleop, loop=sim_loop())
        teleop.close()
    finally:
        emu.stop()
    assert out["saved"] == 1
    ep = DemoStore.open(tmp_path / "lead.zarr").read_episode(0, ["action", "state"])
    np.testing.assert_allclose(ep["action"][-1], pose, atol=0.01)  # the follower was told the leader's pose
    assert np.abs(ep["state"][-1][:5] - pose[:5]).max() < 0.1  # and got there (limited by the safety step)


class SlowDevice(KeyScript):
    """A device whose every read takes 2.5 control periods of the simulated clock: the loop falls
    behind, and the deadlines it skips are counted, not recorded."""

    def __init__(self, keys: dict[int, str], clock: SimulatedClock, period_s: float) -> None:
        super().__init__(keys)
        self.clock, self.period_s = clock, period_s

    def read(self, obs):
        self.clock.now += 2.5 * self.period_s
        return super().read(obs)


def test_missed_ticks_are_counted_as_dropped_frames_not_recorded(tmp_path):
    clock = SimulatedClock()
    device = SlowDevice({2: "TOGGLE", 12: "TOGGLE"}, clock, 1 / 50)
    out = session(tmp_path, {}, teleop=device, loop=sim_loop(50.0, clock), episodes=1)
    store = DemoStore.open(tmp_path / "s.zarr")
    meta = store.episode_meta(0)
    # One frame per tick the loop ran (the device's ticks 3..12), however late each one was...
    assert store.episode_lengths[0] == 10 and out["frames"] == 10
    # ...and every deadline of the episode either got a frame or is counted as dropped: 10 ticks of
    # 2.5 periods each span 25 deadlines.
    assert meta["dropped_frames"] == out["missed"] > 0
    assert store.episode_lengths[0] + meta["dropped_frames"] == round(meta["duration_s"] * 50) == 25
    assert out["late"] == 10  # every recorded tick's work outlasted its period


def test_the_status_line_shows_frames_and_the_device(tmp_path):
    class Device(KeyScript):
        def status(self):
            return "speed 0.05 m/s, gripper closed"

    lines = []

    class UI:
        def update(self, status, frames):
            lines.append(status.line())

        def close(self):
            pass

    from imitation.session import record_session

    cfg = RecordConfig(
        env="imitation/PickPlace-v0", robot="sim", teleop="keyboard", obs_mode="state",
        out=tmp_path / "s.zarr", episodes=1, warmup_s=0.0, ui="none",
    )  # fmt: skip
    record_session(cfg, teleop=Device({2: "TOGGLE", 6: "TOGGLE"}), ui=UI(), loop=sim_loop())
    recording = [ln for ln in lines if ln.startswith("[● REC]")]
    assert [ln.split("  ")[3] for ln in recording] == ["0 frames", "1 frames", "2 frames", "3 frames"]
    assert all("gripper closed" in ln for ln in lines)
    assert "frames" not in lines[0] and "frames" not in lines[-1]  # only while recording
