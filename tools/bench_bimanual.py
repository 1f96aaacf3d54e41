"""The emulated ALOHA: deploy loop, recording session and end-to-end success, with no hardware.

    python tools/bench_bimanual.py deploy [--minutes 5] [--checkpoint RUN]
    python tools/bench_bimanual.py record [--minutes 5] [--episode-s 20]
    python tools/bench_bimanual.py e2e --checkpoint RUN [--episodes 50] [--seed 1000]

The follower pair is two servo emulators on pseudo-terminals (two ViperX 300 S buses, nine servos
each, shadows included) whose physics is the AlohaTransferCube simulator, calibrated through the
buses; the leader pair is two more emulated buses (WidowX 250 S) served by another process (the
leader arms are hardware outside the recording process), posed by a "hand" that turns each hand
slowly about itself (waist, forearm roll, wrist rotate) and opens and closes its gripper. The four cameras (cam_high, cam_low, cam_left_wrist, cam_right_wrist)
are OpenCV captures of 640x480 MJPEG files at ``--camera-fps`` (default 50) (a JPEG decode per frame, as a USB camera
costs; four simulator-rendered 480x640 cameras cannot run at 50 Hz on a small CPU).

deploy: a state-based policy (``state`` + the simulator's object pose as the declared tracker) on
the follower pair at 50 Hz for ``--minutes``, one long episode, the leader pair read in every tick
as well (four buses busy). Without ``--checkpoint`` a small ACT is trained for a few steps on two
scripted demos (its actions do not matter here). Reports missed ticks, period p99 and its error
(target 0 and <= 2 ms), the skew between the arms' reads, the cameras' skew to the tick.
record: ``imitation record`` with ``--teleop aloha-leader`` on the follower pair at 50 Hz, the
four cameras into JPEG; an episode every ``--episode-s`` seconds. Reports dropped frames (target
0) and CPU: the whole process, and without the follower emulators' threads (what a session on the
real rig spends; target <= 1.5 cores).
e2e: success of ``imitation deploy --emulate`` against ``imitation eval`` in simulation, the same
checkpoint and seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the other benchmarks' pieces this one shares
ENV = "imitation/AlohaTransferCube-v0"
CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")


def robot_yaml(work: Path, videos: list[Path] | None, fps: float = 50.0) -> Path:
    """configs/robots/aloha_emulated.yaml with the cameras as MJPEG files (or none)."""
    cfg = yaml.safe_load((ROOT / "configs/robots/aloha_emulated.yaml").read_text())
    cfg["arms"] = {a: {"robot": str(ROOT / "configs/robots/vx300s.yaml")} for a in ("left", "right")}
    cfg["cameras"] = {
        name: {"device": str(v), "width": 640, "height": 480, "fps": fps}
        for name, v in zip(CAMERAS, videos or [], strict=False)
    }
    path = work / "aloha_bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def videos(work: Path) -> list[Path]:
    from bench_record import natural_video

    return [natural_video(work / f"{name}.avi", seed=i) for i, name in enumerate(CAMERAS)]


def _serve_leaders(work: str, ports: Any, stop: Any, hz: float) -> None:
    """In a process of its own, as the leader arms are hardware outside the recording process: the
    leader pair's two emulated buses, calibrated, posed by a hand until ``stop`` is set."""
    from imitation.robots.buses.emulator import for_arm
    from imitation.robots.config import load_robot_config
    from imitation.robots.emulated import PosedArm

    rc = load_robot_config("aloha_leader")
    emulators, hands = [], []
    for k, (arm, part) in enumerate(rc.arms.items()):
        emu = for_arm(part.config)
        emu.start()
        hand = PosedArm(emu, part.config, seed=10 + k)
        hand.calibrate(Path(work) / "leader_cal" / f"{arm}.yaml")
        emulators.append(emu)
        hands.append(hand)
    ports.put(",".join(f"{a}={e.port}" for a, e in zip(rc.arms, emulators, strict=True)))
    from envs.arms import VX300S

    t0 = time.monotonic()
    while not stop.is_set():
        t = time.monotonic() - t0
        for k, hand in enumerate(hands):
            # About the followers' home pose (the task's start), turning each hand about itself
            # (waist, forearm roll, wrist rotate) and working the gripper: an operator's slow
            # motion that keeps the arms off the table and off each other.
            q = np.append(np.asarray(VX300S.home, dtype=np.float64), 0.0)
            q[[0, 3, 5]] += 0.2 * np.sin(2 * np.pi * 0.1 * t + np.arange(3) + k)
            q[hand.gripper] = 0.5 + 0.4 * np.sin(2 * np.pi * 0.2 * t + k)
            hand.pose(q)
        stop.wait(1.0 / hz)
    for e in emulators:
        e.stop()


class Leaders:
    """The leader pair: two emulated buses served by another process (``_serve_leaders``), and
    their driver here."""

    def __init__(self, work: Path, hz: float = 50.0) -> None:
        import multiprocessing as mp

        from imitation.robots.emulated import EMULATED_BUS_TIMEOUT_S
        from imitation.robots.factory import make_robot

        ctx = mp.get_context("spawn")
        ports, self._stop = ctx.Queue(), ctx.Event()
        self.process = ctx.Process(
            target=_serve_leaders, args=(str(work), ports, self._stop, hz), daemon=True
        )
        self.process.start()
        self.ports = ports.get(timeout=120)
        self.robot = make_robot(
            "aloha_leader", self.ports, calibration=work / "leader_cal", timeout_s=EMULATED_BUS_TIMEOUT_S
        )

    def start(self) -> None:  # the hand already moves
        pass

    def stop(self) -> None:
        self._stop.set()
        self.process.join(timeout=10)


def thread_cpu_s(native_ids: list[int]) -> float:
    """CPU seconds (user + system) spent so far by the threads of this process with these ids."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for tid in native_ids:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def small_checkpoint(work: Path) -> Path:
    from imitation.config import from_dict
    from imitation.record import RecordConfig, record_scripted
    from imitation.train import TrainConfig, train

    store = work / "demos.zarr"
    record_scripted(RecordConfig(env=ENV, episodes=2, out=store, obs_mode="state"), progress=False)
    act = {"obs_keys": ["state", "env_state"], "chunk_size": 50, "n_action_steps": 50, "dim_model": 64,
           "n_heads": 2, "dim_feedforward": 128, "n_encoder_layers": 2, "n_decoder_layers": 1,
           "n_vae_encoder_layers": 1, "latent_dim": 16}  # fmt: skip
    cfg = {"store": str(store), "out": str(work / "run"), "policy": "act", "act": act, "steps": 20}
    cfg |= {"batch_size": 8, "num_workers": 0, "device": "cpu", "wandb": "disabled", "log_every": 10}
    return train(from_dict(TrainConfig, cfg))


class WithLeaders:
    """The follower pair, the leader pair read in the same tick (four buses busy)."""

    def __init__(self, robot: Any, leaders: Any) -> None:
        self.robot, self.leaders = robot, leaders
        self.pool = ThreadPoolExecutor(1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.robot, name)

    def observe(self) -> dict[str, Any]:
        f = self.pool.submit(self.leaders.read_joints)
        obs = self.robot.observe()
        obs["leader_state"] = f.result()
        return obs


def deploy_bench(minutes: float, checkpoint: str | None, work: Path, fps: float) -> dict:
    from imitation.checkpoint import policy_config, read_meta, resolve
    from imitation.deploy import InferenceProcess, run_episode
    from imitation.robots.stack import Needs, RobotOptions, RobotStack

    ckpt = resolve(checkpoint) if checkpoint else small_checkpoint(work)
    meta = read_meta(ckpt)
    keys = list(meta["policy_config"]["obs_keys"])
    schedule = policy_config(meta).schedule
    path = robot_yaml(work, videos(work), fps)
    sys.setswitchinterval(0.0005)
    stack = RobotStack(
        RobotOptions(robot=str(path), emulate=True, env=ENV),
        Needs.of_checkpoint(meta),
        env_kwargs={"time_limit_s": 1e6},
    )
    leaders = Leaders(work)
    infer = InferenceProcess(ckpt, threads=1)
    try:
        leaders.start()
        leaders.robot.connect()
        with stack.robot as robot:
            stack.begin(0)
            st = run_episode(
                WithLeaders(robot, leaders.robot), infer, schedule, keys, max_ticks=int(minutes * 60 * 50)
            )
            report = robot.report()
            arms = stack.base.stats()
            cams = {n: c.stats() for n, c in stack.base.cameras.items()}
    finally:
        infer.close()
        leaders.robot.disconnect()
        leaders.stop()
        stack.close()
    return {
        "what": "deploy loop, emulated ALOHA: 2 follower + 2 leader buses, 4 MJPEG cameras 640x480, 50 Hz",
        "camera_fps": fps,
        "minutes": minutes,
        "checkpoint": str(ckpt),
        "ticks": st.ticks,
        **{k: round(v, 3) for k, v in st.timing.items()},
        "starved": st.starved,
        "clamps": report["clamps_total"],
        "arm_skew_ms_p50": round(arms["arm_skew_ms_p50"], 3),
        "arm_skew_ms_p99": round(arms["arm_skew_ms_p99"], 3),
        "camera_skew_ms_p99": {n: c["skew_ms_p99"] for n, c in cams.items()},
        "camera_stale_reads": {n: c["stale_reads"] for n, c in cams.items()},
    }


def operator_events(hz: float, episode_s: float, minutes: float) -> Any:
    """``tools/bench_record.py``'s operator as an event source: Enter now and then (start, save),
    a tick counted at each call, until the time is up; then quit."""
    from bench_record import Operator

    class Events(Operator):
        help = ""

        def events(self) -> list[Any]:
            self.tick += 1
            return super().events()

    return Events(hz, episode_s, minutes)


def record_bench(minutes: float, episode_s: float, work: Path, fps: float) -> dict:
    import resource

    from imitation.record import RecordConfig
    from imitation.session import record_session
    from imitation.teleop.leader import LeaderTeleop

    path = robot_yaml(work, videos(work), fps)
    leaders = Leaders(work)
    teleop = LeaderTeleop(leaders.robot, operator_events(50.0, episode_s, minutes))
    out = work / "session.zarr"
    cfg = RecordConfig(
        env=ENV, robot=str(path), emulate=True, teleop="aloha-leader", out=out, episodes=10**6,
        episode_s=episode_s + 5, warmup_s=0.0, ui="none", image_codec="jpeg",
    )  # fmt: skip
    leaders.start()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    side: dict[int, float] = {}

    def watch() -> None:  # the emulators' and the hand's threads, sampled while they live
        while not done.is_set():
            for t in threading.enumerate():
                if t.name.startswith("servo-emulator") and t.native_id:
                    side[t.native_id] = thread_cpu_s([t.native_id])
            done.wait(0.5)

    done = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    teleop.connect()  # a device handed to the session is the caller's to connect and close
    try:
        res = record_session(cfg, teleop=teleop)
    finally:
        done.set()
        watcher.join()
        teleop.close()
        leaders.stop()
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    cams = res["cameras"]
    t = res.get("recording_timing", res["timing"])
    return {
        "what": "record, emulated ALOHA, --teleop aloha-leader: 4 buses, 4 MJPEG cameras 640x480 into JPEG, 50 Hz",
        "camera_fps": fps,
        "minutes": round(wall / 60, 2),
        "episodes": res["saved"],
        "frames": res["frames"],
        "dropped_frames": res["missed"],
        "late_ticks": res["late"],
        "period_ms_p99": round(t["period_ms_p99"], 3),
        "period_error_ms_p99": round(t["period_error_ms_p99"], 3),
        "session_missed_ticks": int(res["timing"]["missed"]),
        "camera_skew_ms_p99": {k: v["skew_ms_p99"] for k, v in cams.items()},
        "cpu_cores": round(cpu / wall, 2),
        "cpu_cores_without_emulators": round((cpu - sum(side.values())) / wall, 2),
    }


def e2e(checkpoint: str, episodes: int, seed: int, work: Path) -> dict:
    from bench_control import e2e as compare

    return compare(
        checkpoint, episodes, seed, env=ENV, robot=robot_yaml(work, None), out=str(work / "e2e_sim")
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["deploy", "record", "e2e"])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--episode-s", type=float, default=20.0)
    p.add_argument("--checkpoint")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--camera-fps", type=float, default=50.0, help="the MJPEG cameras' rate (deploy, record)")
    p.add_argument("--seed", type=int, default=1000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.what == "deploy":
            out = deploy_bench(args.minutes, args.checkpoint, work, args.camera_fps)
        elif args.what == "record":
            out = record_bench(args.minutes, args.episode_s, work, args.camera_fps)
        else:
            if not args.checkpoint:
                p.error("e2e needs --checkpoint (a state-based run trained on AlohaTransferCube)")
            out = e2e(args.checkpoint, args.episodes, args.seed, work)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
