"""Control-loop timing on the emulated SO-100 (servo emulator on a pseudo-terminal, simulator physics).

    python tools/bench_control.py roundtrip [--n 2000]
    python tools/bench_control.py loop --checkpoint runs/pick_place_act_state --hz 30 50 --seconds 60
    python tools/bench_control.py loop --hz 30 50 --seconds 60     # the slow checkpoint (built here)
    python tools/bench_control.py e2e --checkpoint runs/pick_place_act_state --episodes 50
    python tools/bench_control.py watchdog --trips 200

roundtrip: a sync read of the six servos' Present_Position through our bus, repeated.
loop: the deploy loop (RateLoop, SafeRobot, BusArm on the emulated bus, inference in its own
process) at each rate for the given seconds, one long episode; prints period p50/p99/max, the p99
error against the nominal period, overruns, missed deadlines, inference latency and starved
ticks. Without ``--checkpoint`` it builds and runs a slow one: the paper-scale image ACT, whose
inference takes several control periods on a CPU.
e2e: success rate of ``imitation deploy --emulate`` against ``imitation eval`` in simulation on
the same checkpoint and seeds.
watchdog: how late past ``watchdog_s`` SafeRobot's watchdog holds the arm once commands stop (the
emulated SO-100, 0.1 s watchdog), over many trips. The tests check only that it trips, never early:
how soon depends on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

ENV = "imitation/PickPlace-v0"
ROBOT = Path(__file__).resolve().parents[1] / "configs" / "robots" / "so100_emulated.yaml"


def rig(hz: float | None = None, cameras: bool = False):
    from imitation.robots.arm import BusArm
    from imitation.robots.buses import make_bus
    from imitation.robots.buses.emulator import ServoEmulator
    from imitation.robots.config import load_robot_config
    from imitation.robots.emulated import SimPhysics, scripted_calibration

    rc = load_robot_config(ROBOT)
    if not cameras:
        rc.cameras = {}
    physics = SimPhysics(
        rc, ENV, seed=0, obs_mode="both" if cameras else "state", cameras=("top",) if cameras else None
    )
    emu = ServoEmulator(
        rc.protocol, {int(m["id"]): str(m["model"]) for m in rc.motors.values()}, physics=physics
    )
    port = emu.start()
    tmp = tempfile.mkdtemp()
    with make_bus(rc.protocol, port, rc.motors) as bus:
        scripted_calibration(bus, rc, physics).save(f"{tmp}/cal.yaml")
    physics.reset(0)
    rc.env_state = {"source": "sim", "dim": physics.env_state_dim}
    if hz:
        rc.control_hz = float(hz)
    cams = {"top": physics.camera("top")} if cameras else {}
    arm = BusArm(rc, port, calibration=f"{tmp}/cal.yaml", cameras=cams, env_state_source=physics.env_state)
    return emu, physics, arm


def roundtrip(n: int) -> dict:
    emu, _, arm = rig()
    try:
        arm.bus.connect()
        names = list(arm.names)
        for _ in range(50):
            arm.bus.sync_read("Present_Position", names)
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            arm.bus.sync_read("Present_Position", names)
            ts.append(time.perf_counter() - t)
        arm.bus.close()
    finally:
        emu.stop()
    ms = np.asarray(ts) * 1e3
    return {
        "what": "sync read of 6 x Present_Position (STS3215), our bus <-> emulator over a pty",
        "n": n,
        "ms_p50": round(float(np.percentile(ms, 50)), 3),
        "ms_p99": round(float(np.percentile(ms, 99)), 3),
        "ms_max": round(float(ms.max()), 3),
        # On a real 1 Mbps bus: 14 instruction bytes + 6 replies of 8 bytes, 10 us each, plus return delays.
        "wire_ms_at_1mbps": round((14 + 6 * 8) * 10e-3, 3),
    }


def slow_checkpoint(out: Path) -> Path:
    """The paper-scale image ACT (``act_image.yaml``), trained for a few steps on two
    demos: its inference takes several control periods on a CPU. Its actions do not matter here."""
    from imitation.config import load_yaml
    from imitation.record import RecordConfig, record_scripted
    from imitation.train import TrainConfig, train

    if (out / "run" / "checkpoints").is_dir():
        return out / "run"
    store = out / "demos.zarr"
    if not store.exists():
        record_scripted(RecordConfig(env=ENV, episodes=2, out=store), progress=False)
    cfg = load_yaml(TrainConfig, Path(__file__).resolve().parents[1] / "configs/train/act_image.yaml")
    cfg.store, cfg.out, cfg.steps, cfg.device, cfg.num_workers = str(store), str(out / "run"), 2, "cpu", 0
    cfg.wandb, cfg.val_fraction, cfg.save_every, cfg.log_every = "disabled", 0.0, 2, 1
    return train(cfg)


def loop(checkpoint: str, hz: float, seconds: float) -> dict:
    from imitation.checkpoint import policy_config, read_meta, resolve
    from imitation.control import SafeRobot, SafetyLimits
    from imitation.deploy import InferenceProcess, run_episode

    ckpt = resolve(checkpoint)
    meta = read_meta(ckpt)
    schedule = policy_config(meta).schedule
    keys = list(meta["policy_config"]["obs_keys"])
    emu, physics, arm = rig(hz, cameras=bool(meta["robot"]["cameras"]))
    infer = InferenceProcess(ckpt, threads=1)
    try:
        with SafeRobot(arm, SafetyLimits.for_robot(arm, arm.config.safety)) as robot:
            physics.reset(0)
            physics.wait_ready()
            robot.resync()
            st = run_episode(robot, infer, schedule, keys, max_ticks=int(seconds * hz))
            report = robot.report()
    finally:
        infer.close()
        emu.stop()
    lat = np.asarray(infer.latency) * 1e3
    return {
        "hz": hz,
        "seconds": seconds,
        "checkpoint": str(ckpt),
        "policy": meta["policy"],
        "ticks": st.ticks,
        **{k: round(v, 3) for k, v in st.timing.items()},
        "inference_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "inference_ms_p99": round(float(np.percentile(lat, 99)), 2),
        "chunks": st.chunks,
        "starved": st.starved,
        "dropped_rows": st.dropped_rows,
        "clamps": report["clamps_total"],
    }


def e2e(
    checkpoint: str,
    episodes: int,
    seed: int,
    env: str = ENV,
    robot: str | Path = ROBOT,
    out: str = "bench_out/e2e_sim",
) -> dict:
    """``imitation eval`` in simulation against ``imitation deploy --emulate`` on ``robot`` (an
    emulated arm, or pair, whose physics is ``env``): the same checkpoint and seeds."""
    from imitation.deploy import DeployConfig, deploy
    from imitation.evaluate import EvalConfig, evaluate

    t = time.perf_counter()
    sim = evaluate(
        EvalConfig(
            checkpoint=checkpoint,
            env=env,
            episodes=episodes,
            seed=seed,
            num_envs=2,
            videos=0,
            out=out,
        ),
        progress=False,
    )
    sim_s = time.perf_counter() - t
    t = time.perf_counter()
    dep = deploy(
        DeployConfig(
            checkpoint=checkpoint, robot=str(robot), emulate=True, env=env, episodes=episodes, seed=seed
        )
    )
    dep_s = time.perf_counter() - t
    per = [e["success"] for e in dep["episodes"]]
    with open(f"{out}/results.json") as f:
        sim_eps = [e["success"] for e in json.load(f)["episodes"]]
    return {
        "episodes": episodes,
        "seeds": [seed, seed + episodes - 1],
        "sim_success_rate": sim["success_rate"],
        "emulated_success_rate": dep["success_rate"],
        "same_outcome": sum(a == b for a, b in zip(per, sim_eps, strict=True)),
        "sim_wall_s": round(sim_s, 1),
        "emulated_wall_s": round(dep_s, 1),
        "emulated_period_ms_p99": dep["timing"].get("period_ms_p99"),
        "emulated_starved": dep["starved"],
        "clamps": dep["clamps"],
    }


def watchdog(trips: int, watchdog_s: float = 0.1) -> dict:
    import logging

    from imitation.control import SafeRobot, SafetyLimits

    logging.getLogger("imitation.control").setLevel(logging.ERROR)  # one warning per trip otherwise

    emu, physics, arm = rig()
    lim = SafetyLimits.for_robot(arm, arm.config.safety | {"watchdog_s": watchdog_s, "on_timeout": "hold"})
    late = []
    try:
        physics.set_pose(np.array([0.0, 0.3, 1.2, 1.0, 0.0, 0.5]))
        with SafeRobot(arm, lim) as robot:
            for _ in range(trips):
                robot.act(robot.observe()["state"])
                n = len(robot.trips)
                deadline = time.monotonic() + 10 * watchdog_s + 5.0
                while len(robot.trips) == n and time.monotonic() < deadline:
                    time.sleep(0.001)
                late.append(robot.trips[-1] - watchdog_s)
    finally:
        emu.stop()
    ms = np.asarray(late) * 1e3
    period_ms = 1e3 / arm.spec.control_hz
    return {
        "what": f"watchdog trip delay past watchdog_s={watchdog_s} s, emulated SO-100 (hold)",
        "trips": trips,
        "late_ms_p50": round(float(np.percentile(ms, 50)), 3),
        "late_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "late_ms_max": round(float(ms.max()), 3),
        "within_one_period": int((ms <= period_ms).sum()),
        "early": int((ms < 0).sum()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("roundtrip")
    r.add_argument("--n", type=int, default=2000)
    lp = sub.add_parser("loop")
    lp.add_argument("--checkpoint", help="default: the slow paper-scale image ACT, built in bench_out/slow")
    lp.add_argument("--hz", type=float, nargs="+", default=[30.0, 50.0])
    lp.add_argument("--seconds", type=float, default=60.0)
    e = sub.add_parser("e2e")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--episodes", type=int, default=50)
    e.add_argument("--seed", type=int, default=100_000)
    w = sub.add_parser("watchdog")
    w.add_argument("--trips", type=int, default=200)
    args = p.parse_args()
    Path("bench_out").mkdir(exist_ok=True)
    if args.what == "roundtrip":
        print(json.dumps(roundtrip(args.n)))
    elif args.what == "loop":
        ckpt = args.checkpoint or str(slow_checkpoint(Path("bench_out/slow")))
        for hz in args.hz:
            print(json.dumps(loop(ckpt, hz, args.seconds)), flush=True)
    elif args.what == "watchdog":
        print(json.dumps(watchdog(args.trips)))
    else:
        print(json.dumps(e2e(args.checkpoint, args.episodes, args.seed)))


if __name__ == "__main__":
    main()
