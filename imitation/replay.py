"""``imitation replay``: re-execute a recorded episode's actions on a robot through ``SafeRobot``.

Checks a dataset and a calibration: the arm should retrace the recording. The episode's actions
are sent at the store's rate after a safe start to the first one; at the end the tracking error
(commanded vs measured joints, one tick later) and the clamps are printed. In simulation and
under ``--emulate`` the scene starts from the episode's own seed, so a successful recorded
episode should succeed again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imitation.config import parse
from imitation.control import EStopKey, RateLoop
from imitation.data.store import DemoStore
from imitation.errors import ConfigError
from imitation.robots.stack import Needs, RobotOptions, RobotStack


@dataclass
class ReplayConfig:
    """Re-execute a recorded episode on a robot, through the safety layer."""

    store: str
    """Demo store to read."""
    episode: int = 0
    """Episode index (negative counts from the end)."""
    robot: str = "sim"
    """sim, or an arm: so100, so101, koch, or a configs/robots/*.yaml path."""
    port: str | None = None
    """Serial port of a real arm."""
    emulate: bool = False
    """Replay on the servo emulator whose physics is the simulator."""
    env: str | None = None
    """Task for --robot sim and --emulate (default: the store's; one that imports code runs only
    when named here)."""
    calibration: str | None = None
    """Calibration file of a real arm (default: ~/.imitation/calibration/<robot>.yaml)."""
    dry_run: bool = False
    """Read and pace everything, send nothing."""


def main(argv: Sequence[str] | None = None, prog: str = "imitation replay") -> int:
    cfg = parse(
        ReplayConfig,
        list(sys.argv[1:] if argv is None else argv),
        prog=prog,
        description=ReplayConfig.__doc__,
    )
    store = DemoStore.open(cfg.store)
    ep = store.read_episode(cfg.episode, ["action"])["action"]
    meta_ep = store.episode_meta(cfg.episode)
    robot_meta = dict(store.robot)
    options = RobotOptions(
        robot=cfg.robot, port=cfg.port, emulate=cfg.emulate, env=cfg.env, calibration=cfg.calibration
    )
    needs = Needs(
        env_id=robot_meta.get("env_id"),
        joint_names=tuple(robot_meta.get("joint_names", [])),
        control_hz=float(store.fps),
        origin=f"demo store {cfg.store}",
    )
    setup = RobotStack(options, needs)
    seed = int(meta_ep.get("seed", 0) or 0)
    errors = []
    try:
        setup.robot.connect()
        setup.begin(seed)
        if ep.shape[1] != len(setup.robot.spec.joint_names):
            raise ConfigError(
                f"{cfg.store}: actions have {ep.shape[1]} values, the robot has {len(setup.robot.spec.joint_names)} joints"
            )
        with EStopKey(setup.robot.stop):
            if not cfg.dry_run:
                setup.robot.move_to(ep[0])
            loop = RateLoop(setup.robot.spec.control_hz)
            prev = None
            for t in loop:
                state = np.asarray(setup.robot.observe()["state"], dtype=np.float64)
                if prev is not None:
                    errors.append(np.abs(state - prev))
                if t >= len(ep) or setup.done():
                    break
                prev = ep[t] if cfg.dry_run else setup.robot.act(ep[t])
        success = setup.success()
    finally:
        report = setup.robot.report()
        setup.close()
    err = np.asarray(errors)
    timing = loop.stats.summary()
    print(
        f"replayed episode {cfg.episode} of {cfg.store}: {len(ep)} actions at {store.fps:g} Hz on {cfg.robot}"
    )
    if len(err):
        arm = err[:, :-1] if err.shape[1] > 1 else err
        print(
            f"tracking error (commanded vs measured one tick later): mean {arm.mean():.4f} rad, max {arm.max():.4f} rad"
        )
    print(
        f"period p99 {timing.get('period_ms_p99', float('nan')):.2f} ms; overruns {int(timing['overruns'])}; "
        f"clamps {report['clamps_total']} {report['clamps']}"
    )
    if success is not None:
        print("the task " + ("succeeded" if success else "did not succeed") + f" (seed {seed})")
    return 0
