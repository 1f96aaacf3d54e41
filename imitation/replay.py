"""``imitation replay``: re-execute a recorded episode's actions on a robot through ``SafeRobot``.

Checks a dataset and a calibration: the arm should retrace the recording. The episode's actions
are sent at the store's rate (``imitation.loop.drive`` with ``StoredActions``) after a safe start to the first one; at the end the tracking error
(commanded vs measured joints, one tick later) and the clamps are printed. In simulation and
under ``--emulate`` the scene starts from the episode's own seed, so a successful recorded
episode should succeed again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np

from envs.mapping import locate
from imitation.checks import DEMO_STORE, InPath, Range, check_fields
from imitation.config import parse
from imitation.control import EStopKey, RateLoop
from imitation.data.store import DemoStore
from imitation.errors import ConfigError
from imitation.loop import StoredActions, drive
from imitation.robots.stack import Needs, RobotOptions, RobotStack


@dataclass
class ReplayConfig:
    """Re-execute a recorded episode on a robot, through the safety layer."""

    store: Annotated[str, DEMO_STORE]
    """Demo store to read."""
    episode: Annotated[int, Range(ge=-(2**31), lt=2**31)] = 0
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
    calibration: Annotated[str | None, InPath("any")] = None
    """Calibration file of a real arm (default: ~/.imitation/calibration/<robot>.yaml); a robot of
    several arms: the directory of its arms' files (default ~/.imitation/calibration/<robot>/)."""
    dry_run: bool = False
    """Read and pace everything, send nothing."""

    def __post_init__(self) -> None:
        check_fields(self)


def replay(cfg: ReplayConfig, *, loop: RateLoop | None = None) -> dict[str, Any]:
    """Replay ``cfg.episode`` of ``cfg.store`` on the robot ``cfg`` names; returns what was measured.

    ``loop``: the ``RateLoop`` that paces it, at the store's rate (default: one on the wall clock);
    its clock also steps an emulated arm's physics, so a test on a simulated clock gets the same
    replay however loaded the machine is."""
    store = DemoStore.open(cfg.store)
    n = store.n_episodes
    if not -n <= cfg.episode < n:
        raise ConfigError(
            f"--episode {cfg.episode}: {cfg.store} holds {n} episode(s); give 0..{n - 1} (or -1 for the last)"
        )
    index = cfg.episode % n
    ep = store.read_episode(index, ["action"])["action"]
    seed = int(store.episode_meta(index).get("seed", 0) or 0)
    robot_meta = dict(store.robot)
    options = RobotOptions(
        robot=cfg.robot, port=cfg.port, emulate=cfg.emulate, env=cfg.env, calibration=cfg.calibration
    )
    env_id = robot_meta.get("env_id")
    if env_id and not cfg.env:  # a mapping's path as typed when recording, found from here
        env_id = locate(
            env_id, env_path=robot_meta.get("env_path"), near=[cfg.store], origin=f"demo store {cfg.store}"
        )
    needs = Needs(
        env_id=env_id,
        joint_names=tuple(robot_meta.get("joint_names", [])),
        control_hz=float(store.fps),
        origin=f"demo store {cfg.store}",
    )
    if loop is not None and abs(loop.hz - float(store.fps)) > 1e-9 * float(store.fps):
        raise ValueError(f"the loop runs at {loop.hz:g} Hz, the store at {store.fps:g} Hz")
    setup = RobotStack(options, needs, clock=loop.clock if loop is not None else None, seed=seed)
    loop = loop if loop is not None else RateLoop(setup.robot.spec.control_hz)
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
            prev: list[np.ndarray | None] = [None]

            def on_tick(t: int, obs: dict[str, Any], sent: np.ndarray | None) -> bool:
                state = np.asarray(obs["state"], dtype=np.float64)
                if prev[0] is not None:
                    errors.append(np.abs(state - prev[0]))
                prev[0] = sent
                return sent is None  # past the episode's end, or the task ended it

            drive(
                setup.robot, StoredActions(ep, until=setup.done), loop, on_tick=on_tick, dry_run=cfg.dry_run
            )
        success = setup.success()
    finally:
        report = setup.robot.report()
        setup.close()
    err = np.asarray(errors)
    names = setup.robot.spec.joint_names
    joints = [i for i, n in enumerate(names) if n.split("/")[-1] != "gripper"]  # grippers are not tracked
    arm = err[:, joints] if err.ndim == 2 and joints and err.shape[1] == len(names) else err
    return {
        "episode": index,
        "actions": len(ep),
        "fps": float(store.fps),
        "seed": seed,
        "success": success,
        "tracking_error_mean": float(arm.mean()) if arm.size else None,
        "tracking_error_max": float(arm.max()) if arm.size else None,
        "timing": loop.stats.summary(),
        "clamps_total": report["clamps_total"],
        "clamps": report["clamps"],
    }


def main(argv: Sequence[str] | None = None, prog: str = "imitation replay") -> int:
    cfg = parse(
        ReplayConfig,
        list(sys.argv[1:] if argv is None else argv),
        prog=prog,
        description=ReplayConfig.__doc__,
    )
    r = replay(cfg)
    print(
        f"replayed episode {r['episode']} of {cfg.store}: {r['actions']} actions at {r['fps']:g} Hz on {cfg.robot}"
    )
    if r["tracking_error_mean"] is not None:
        print(
            f"tracking error (commanded vs measured one tick later): mean {r['tracking_error_mean']:.4f} rad, "
            f"max {r['tracking_error_max']:.4f} rad"
        )
    timing = r["timing"]
    print(
        f"period p99 {timing.get('period_ms_p99', float('nan')):.2f} ms; overruns {int(timing['overruns'])}; "
        f"clamps {r['clamps_total']} {r['clamps']}"
    )
    if r["success"] is not None:
        print("the task " + ("succeeded" if r["success"] else "did not succeed") + f" (seed {r['seed']})")
    return 0
