"""``imitation calibrate``: the interactive calibration of a real arm (see ``calibration.py``)."""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from imitation.checks import OutPath, check_fields
from imitation.config import parse
from imitation.errors import ConfigError
from imitation.robots.arm import warn_latency_timer
from imitation.robots.buses import make_bus
from imitation.robots.calibration import calibrate, default_path
from imitation.robots.config import load_robot_config


@dataclass
class CalibrateConfig:
    """Calibrate a real arm: zero pose, reference pose, range of motion; writes the servos' offsets
    and position limits, and a calibration file."""

    robot: str
    """so100, so101, koch, vx300s, their leaders (so100_leader, koch_leader, wx250s_leader), a robot
    of several arms (aloha, aloha_leader, so101_bimanual: each arm in turn), or a configs/robots/*.yaml path."""
    port: str | None = None
    """Serial port of the arm's servo bus (e.g. /dev/ttyACM0, or the path imitation emulate prints);
    a robot of several arms: left=<path>,right=<path> (default: the ports its config names)."""
    out: Annotated[str | None, OutPath("file", (".yaml", ".yml", ".json"))] = None
    """Calibration file to write (default: ~/.imitation/calibration/<robot>.yaml)."""
    arm: str | None = None
    """A robot of several arms: calibrate this arm only (default: each in turn)."""
    out_dir: Annotated[str | None, OutPath("dir")] = None
    """A robot of several arms: where its arms' files go, <arm>.yaml each (default:
    ~/.imitation/calibration/<robot>/)."""

    def __post_init__(self) -> None:
        check_fields(self)


def _ask(text: str) -> None:
    input(f"\n{text}")


def _sweep(read: Callable[[], dict[str, int]]) -> None:
    """Poll the servos and show each one's range until the operator presses Enter."""
    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    print("Move every joint to both ends now; press Enter when done.")
    while True:
        now = read()
        for n, v in now.items():
            lo[n], hi[n] = min(lo.get(n, v), v), max(hi.get(n, v), v)
        line = "  ".join(f"{n}:{lo[n]}..{hi[n]}" for n in now)
        print("\r" + line[:200], end="", flush=True)
        ready, _, _ = select.select([sys.stdin], [], [], 0.05)
        if ready:
            sys.stdin.readline()
            print()
            return
        time.sleep(0.01)


def main(argv: Sequence[str] | None = None, prog: str = "imitation calibrate") -> int:
    cfg = parse(
        CalibrateConfig,
        list(sys.argv[1:] if argv is None else argv),
        prog=prog,
        description=CalibrateConfig.__doc__,
    )
    rc = load_robot_config(cfg.robot)
    if rc.arms:
        return _calibrate_arms(cfg, rc)
    if cfg.arm or cfg.out_dir:
        raise ConfigError(f"--arm and --out-dir are for a robot of several arms; {rc.name} is one arm")
    if not rc.protocol:
        raise ConfigError(f"{rc.path}: no `bus:` section; nothing to calibrate")
    if not cfg.port:
        raise ConfigError(f"--robot {rc.name} needs --port (the arm's serial port)")
    _calibrate_one(rc, cfg.port, cfg.out or default_path(rc.name), rc.name)
    return 0


def _calibrate_one(rc: Any, port: str, out: str | Path, label: str) -> Path:
    print(f"Calibrating {label} on {port}: torque goes off; hold the arm.")
    warn_latency_timer(port)
    with make_bus(rc.protocol, port, rc.bus_motors(), baudrate=rc.baudrate) as bus:
        cal = calibrate(bus, rc, ask=_ask, sweep=_sweep)
    path = cal.save(out)
    print(f"calibration written to {path} (offsets and position limits are in the servos too)")
    return path


def _calibrate_arms(cfg: CalibrateConfig, rc: Any) -> int:
    """Each arm of a robot of several arms in turn (or ``--arm``), one file per arm."""
    from imitation.robots.bimanual import calibration_dir, parse_ports

    if cfg.out:
        raise ConfigError(f"{rc.name} has several arms, a file each: use --out-dir, not --out")
    if cfg.arm is not None and cfg.arm not in rc.arms:
        raise ConfigError(f"--arm {cfg.arm!r}: {rc.name}'s arms are {', '.join(rc.arms)}")
    arms = [cfg.arm] if cfg.arm else list(rc.arms)
    ports = parse_ports(rc, cfg.port) if cfg.arm is None else {}
    if cfg.arm is not None:  # one arm: its port alone may be given, plain or as <arm>=<path>
        given = cfg.port.split("=", 1)[-1] if cfg.port and "," not in cfg.port else None
        ports = {cfg.arm: given} if given else parse_ports(rc, cfg.port)
    out = calibration_dir(rc, cfg.out_dir)
    for arm in arms:
        _calibrate_one(rc.arms[arm].config, ports[arm], out / f"{arm}.yaml", f"{rc.name} arm {arm!r}")
    return 0
