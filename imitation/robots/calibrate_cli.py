"""``imitation calibrate``: the interactive calibration of a real arm (see ``calibration.py``)."""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from imitation.checks import OutPath, check_fields
from imitation.config import parse
from imitation.errors import ConfigError
from imitation.robots.buses import make_bus
from imitation.robots.calibration import calibrate, default_path
from imitation.robots.config import load_robot_config


@dataclass
class CalibrateConfig:
    """Calibrate a real arm: zero pose, reference pose, range of motion; writes the servos' offsets
    and position limits, and a calibration file."""

    robot: str
    """so100, so101, koch, their leaders (so100_leader, koch_leader), or a configs/robots/*.yaml path."""
    port: str
    """Serial port of the arm's servo bus (e.g. /dev/ttyACM0, or the path imitation emulate prints)."""
    out: Annotated[str | None, OutPath("file", (".yaml", ".yml", ".json"))] = None
    """Calibration file to write (default: ~/.imitation/calibration/<robot>.yaml)."""

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
    if not rc.protocol:
        raise ConfigError(f"{rc.path}: no `bus:` section; nothing to calibrate")
    out = cfg.out or default_path(rc.name)
    print(f"Calibrating {rc.name} on {cfg.port}: torque goes off; hold the arm.")
    with make_bus(rc.protocol, cfg.port, rc.motors, baudrate=rc.baudrate) as bus:
        cal = calibrate(bus, rc, ask=_ask, sweep=_sweep)
    path = cal.save(out)
    print(f"calibration written to {path} (offsets and position limits are in the servos too)")
    return 0
