"""An operator recording session on the emulated SO-100 with two 480x640 MJPEG cameras.

    python tools/bench_record.py [--hz 30 50] [--minutes 5] [--episode-s 20]

The arm is the servo emulator with the PickPlace simulator as its physics (calibrated through the
bus), the simulator also serving `env_state`. The cameras are real OpenCV captures of MJPEG video
files at 640x480 (natural-looking, noisy frames, a different JPEG each frame), so each frame costs
a JPEG decode as a USB camera's does; they run at 30 fps. The "operator" saves an episode every
``--episode-s`` seconds and starts the next after a 1 s reset, for ``--minutes``. Reports per rate:
missed ticks (dropped frames; target 0), late ticks, duplicate and stale camera reads, camera-to-
tick skew, period p50/p99 and its p99 error (target <= 3 ms), CPU use of the process (all threads)
and bytes written per minute.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parents[1]


def natural_video(path: Path, frames: int = 90, seed: int = 0) -> Path:
    """An MJPEG .avi of 640x480 frames: smooth shapes and gradients, sensor-like noise, moving."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for k in range(frames):
        base = np.stack(
            [
                128 + 60 * np.sin(xx / 50 + k / 9) * np.cos(yy / 70),
                110 + 50 * np.cos((xx + yy) / 90 - k / 11),
                90 + 40 * np.sin(yy / 40 + k / 7),
            ],
            axis=-1,
        )
        cv2.circle(base, (int(320 + 150 * np.sin(k / 15)), 240), 60, (40, 200, 90), -1)
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        writer.write(img)
    writer.release()
    return path


class Operator:
    """Holds the arm where it is; Enter now and then (start, save) until the time is up."""

    def __init__(self, hz: float, episode_s: float, minutes: float) -> None:
        self.hz, self.episode_s, self.end_tick = hz, episode_s, int(minutes * 60 * hz)
        self.tick = 0
        self.recording = False
        self.next_toggle = 2

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def reset(self, obs) -> None: ...

    def read(self, obs):
        self.tick += 1
        return np.asarray(obs["state"], dtype=np.float64)

    def events(self):
        if self.tick >= self.end_tick:  # time is up: save the episode in progress, then quit
            name = "TOGGLE" if self.recording else "QUIT"
            self.recording = False
            return [SimpleNamespace(name=name)]
        if self.tick >= self.next_toggle:
            self.recording = not self.recording
            self.next_toggle = self.tick + int((self.episode_s if self.recording else 1.0) * self.hz)
            return [SimpleNamespace(name="TOGGLE")]
        return []


def run(hz: float, minutes: float, episode_s: float, work: Path) -> dict:
    from imitation.record import RecordConfig
    from imitation.session import record_session

    videos = [natural_video(work / f"cam{i}.avi", seed=i) for i in range(2)]
    cfg_robot = yaml.safe_load((ROOT / "configs/robots/so100_emulated.yaml").read_text())
    cfg_robot["control_hz"] = hz
    cfg_robot["cameras"] = {
        f"cam{i}": {"device": str(v), "width": 640, "height": 480, "fps": 30} for i, v in enumerate(videos)
    }
    robot_yaml = work / f"so100_bench_{int(hz)}.yaml"
    robot_yaml.write_text(yaml.safe_dump(cfg_robot, sort_keys=False))
    out = work / f"session_{int(hz)}.zarr"
    cfg = RecordConfig(
        env="imitation/PickPlace-v0",
        robot=str(robot_yaml),
        emulate=True,
        teleop="keyboard",
        out=out,
        episodes=10**6,
        episode_s=episode_s + 5,
        warmup_s=0.0,
        ui="none",
        image_codec="jpeg",
    )
    op = Operator(hz, episode_s, minutes)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    res = record_session(cfg, teleop=op)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    cams = res["cameras"]
    t = res.get("recording_timing", res["timing"])  # ticks within episodes (scene resets excluded)
    return {
        "hz": hz,
        "minutes": round(wall / 60, 2),
        "episodes": res["saved"],
        "frames": res["frames"],
        "missed_ticks": res["missed"],
        "late_ticks": res["late"],
        "period_ms_p50": round(t["period_ms_p50"], 3),
        "period_ms_p99": round(t["period_ms_p99"], 3),
        "period_ms_max": round(t["period_ms_max"], 3),
        "period_error_ms_p99": round(t["period_error_ms_p99"], 3),
        # every tick of the session, the resets between episodes (and the saves) included
        "session_missed_ticks": int(res["timing"]["missed"]),
        "session_period_ms_max": round(res["timing"]["period_ms_max"], 3),
        "session_period_error_ms_p99": round(res["timing"]["period_error_ms_p99"], 3),
        "camera_duplicate_reads": {k: v["duplicate_reads"] for k, v in cams.items()},
        "camera_stale_reads": {k: v["stale_reads"] for k, v in cams.items()},
        "camera_skew_ms_p99": {k: v["skew_ms_p99"] for k, v in cams.items()},
        "camera_capture_hz": {k: v["capture_hz"] for k, v in cams.items()},
        "cpu_cores": round((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / wall, 2),
        "mb_per_minute": round(size / 1e6 / (wall / 60), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hz", type=float, nargs="+", default=[30.0, 50.0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--episode-s", type=float, default=20.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for hz in args.hz:
            print(json.dumps(run(hz, args.minutes, args.episode_s, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
