"""Joint units of imported data: LeRobot's calibrated motor values onto this project's radians.

A LeRobot SO-100/101 or Koch dataset holds each joint as LeRobot normalises a servo's
``Present_Position`` with *its* calibration of that arm (``lerobot/motors/motors_bus.py``,
``_normalize``): ``RANGE_M100_100`` maps the calibrated range of motion ``[range_min, range_max]``
onto −100…100 (negated where ``drive_mode`` is set), ``RANGE_0_100`` (the gripper) onto 0…100
(``100 − v`` with ``drive_mode``), and ``DEGREES`` (``use_degrees=True``) gives ``(ticks − mid) ·
360 / 4095`` degrees, ``mid`` the middle of the range. Its ``homing_offset`` is what it wrote into the
servo's ``Homing_Offset`` register (Feetech reports ``actual − offset``, Dynamixel ``actual + offset``).

This project reads the same servo through its own calibration (``imitation/robots/calibration.py``):
``rad = sign · (ticks − zero) · 2π / ticks_per_turn``, the gripper ``(ticks − closed) / (open −
closed)``, with its own homing offset. Both are linear in the servo's actual position, so for one
arm, calibrated both ways, each joint converts as ``ours = scale · lerobot + offset``: a **unit map**
(``unit_map``), a small YAML kept beside the arm's calibration and applied by ``convert``
(``imitation data units``). It is per arm, not per robot type: LeRobot's −100…100 spans the range
of motion that arm's calibration measured. For data whose arm is not at hand, ``configs/units/``
holds the maps of a nominal SO-100/101 (``tools/nominal_unit_maps.py``), a few degrees from any
real one.

On a Dynamixel arm (Koch) LeRobot's calibration writes the servos' ``Drive_Mode`` (reversed
joints), which this project leaves as it finds it: calibrate with this project after LeRobot's
calibration, so that both read the servos the same way round.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imitation.data.store import DemoStore, EpisodeWriter, StoreError
from imitation.errors import ConfigError

NORMS = ("range", "degrees")


def _lerobot_ticks(
    cal: Mapping[str, Any], norm: str, gripper: bool, resolution: int, protocol: str
) -> tuple[float, float]:
    """(p, q) with LeRobot's Present_Position ticks = p + q · value, for one motor. LeRobot applies
    ``drive_mode`` itself on Feetech servos; a Dynamixel servo applies it (its Drive_Mode register),
    so the reading is already reversed and LeRobot's values are not."""
    lo, hi = float(cal["range_min"]), float(cal["range_max"])
    if hi == lo:
        raise ConfigError(
            f"LeRobot calibration of motor id {cal.get('id')}: range_min equals range_max ({lo:g})"
        )
    flip = bool(cal.get("drive_mode")) and protocol == "feetech"
    if gripper:  # RANGE_0_100
        return (hi, -(hi - lo) / 100) if flip else (lo, (hi - lo) / 100)
    if norm == "degrees":  # DEGREES ignores drive_mode
        return ((lo + hi) / 2, (resolution - 1) / 360)
    return ((lo + hi) / 2, (-1 if flip else 1) * (hi - lo) / 200)


def unit_map(
    lerobot_calibration: Mapping[str, Mapping[str, Any]],
    ours: Any,  # imitation.robots.calibration.Calibration
    *,
    norm: str = "range",
    gripper: str = "gripper",
) -> dict[str, Any]:
    """The per-joint linear map from LeRobot's values to ours, for one arm calibrated both ways."""
    if norm not in NORMS:
        raise ConfigError(
            f"--lerobot-norm {norm!r}: choose range (LeRobot's default) or degrees (use_degrees=True)"
        )
    missing = sorted(set(ours.joints) - set(lerobot_calibration))
    if missing:
        raise ConfigError(
            f"the LeRobot calibration has no motor(s) {missing}; it has {sorted(lerobot_calibration)} "
            "(is it the calibration of this arm?)"
        )
    joints = {}
    for name, j in ours.joints.items():
        lr = lerobot_calibration[name]
        if int(lr.get("id", j.id)) != j.id:
            raise ConfigError(
                f"joint {name}: LeRobot's calibration is of motor id {lr.get('id')}, ours of id {j.id}"
            )
        is_gripper = j.closed is not None and j.open is not None
        p, q = _lerobot_ticks(lr, norm, name == gripper or is_gripper, ours.ticks_per_turn, ours.protocol)
        # The same servo, two homing offsets: our reading = LeRobot's + delta.
        if ours.protocol == "feetech":
            delta = float(lr["homing_offset"]) - j.homing_offset
        else:
            delta = j.homing_offset - float(lr["homing_offset"])
        if is_gripper:
            r, s = 1.0 / (j.open - j.closed), -j.closed / (j.open - j.closed)
        else:
            r = j.sign * 2 * math.pi / ours.ticks_per_turn
            s = -j.sign * j.zero * 2 * math.pi / ours.ticks_per_turn
        joints[name] = {
            "scale": r * q,
            "offset": r * (p + delta) + s,
            "unit": "[0, 1]" if is_gripper else "rad",
        }
    return {"from": "lerobot", "norm": norm, "robot": ours.robot, "joints": joints}


def load_unit_map(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the unit map ({e})") from e
    joints = (data or {}).get("joints") if isinstance(data, dict) else None
    if not isinstance(joints, dict) or not joints:
        raise ConfigError(f"{path}: a unit map needs 'joints: {{<name>: {{scale: S, offset: O}}}}'")
    for name, j in joints.items():
        ok = isinstance(j, dict) and all(
            isinstance(j.get(k), int | float) and math.isfinite(j[k]) for k in ("scale", "offset")
        )
        if not ok or j["scale"] == 0:
            raise ConfigError(f"{path}: joint {name!r} needs a finite, non-zero scale and a finite offset")
    return data


def convert(
    src: str | Path | DemoStore,
    dst: str | Path,
    umap: Mapping[str, Any],
    *,
    robot: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> DemoStore:
    """A new store at ``dst``: ``src`` with its ``state`` and ``action`` joints mapped by ``umap``
    (LeRobot's ``<joint>.pos`` names onto the map's joints, in the map's order), everything else
    copied bit-exact; its ``robot`` attribute says the units are this project's."""
    from imitation.data.edit import _copy_into, building

    store = src if isinstance(src, DemoStore) else DemoStore.open(src)
    act = store.features.get("action")
    if act is None or not act.names:
        raise StoreError(f"{store.path} has no action with named joints; nothing to convert")
    # The store's own joint order (LeRobot's motor order, which is this project's for its arms).
    joints = [n.removesuffix(".pos") for n in act.names]
    missing = [j for j in joints if j not in umap["joints"]]
    if missing:
        raise StoreError(
            f"{store.path}: the unit map has no joint(s) {missing}; it maps {list(umap['joints'])}"
        )
    scale = np.array([umap["joints"][j]["scale"] for j in joints])
    offset = np.array([umap["joints"][j]["offset"] for j in joints])
    columns = {}
    for key in ("state", "action"):
        f = store.features.get(key)
        if f is None:
            continue
        names = [n.removesuffix(".pos") for n in (f.names or ())]
        if sorted(names) != sorted(joints):
            raise StoreError(
                f"{store.path}: {key}'s values are named {list(f.names or [])}, the action's {list(act.names)}; "
                "only joint positions are converted"
            )
        columns[key] = [names.index(j) for j in joints]
    features = {k: f.to_dict() for k, f in store.features.items()}
    for key in columns:
        features[key] = {**features[key], "names": joints, "dtype": "float32"}
    attrs = dict(store.robot)
    attrs.pop("units", None)
    attrs.update({"joint_names": joints, "unit_map": json.loads(json.dumps(umap)), **dict(robot or {})})

    def to_ours(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for key, order in columns.items():
            v = values[key][:, order].astype(np.float64)
            values[key] = (v * scale + offset).astype(np.float32)
        return values

    with building(dst) as tmp, EpisodeWriter(tmp, features=features, fps=store.fps, robot=attrs) as w:
        _copy_into(w, store, list(range(store.n_episodes)), progress=progress, desc=f"units {store.path.name}",
                   transform=to_ours)  # fmt: skip
    return DemoStore.open(dst)
