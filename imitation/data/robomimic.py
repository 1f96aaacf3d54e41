"""robomimic HDF5 files in: ``imitation data import robomimic <file.hdf5> <out.zarr>``.

robomimic's layout (its datasets, and robosuite demonstrations converted by its scripts)::

    data                    attrs: env_args (JSON: env_name, type, env_kwargs with control_freq...)
    data/demo_<i>           attrs: num_samples
    data/demo_<i>/actions   (N, A) float, usually end-effector deltas of a robosuite OSC controller
    data/demo_<i>/obs/<key> (N, ...) low-dimensional observations, cameras as <name>_image (N, H, W, 3) uint8
    data/demo_<i>/states    (N, S) the flat MuJoCo state (for replaying in robosuite)
    data/demo_<i>/rewards, dones
    mask/<split>            names of the demos in a split (train, valid, ...)

What becomes what (``--map SOURCE=FEATURE`` renames with SOURCE an ``obs/<key>`` or a demo's own
array, ``SOURCE=`` drops): ``actions`` -> ``action``; the arm's proprioception, ``obs/robot*_eef_pos``,
``robot*_eef_quat`` and ``robot*_gripper_qpos`` (robomimic's standard low-dimensional inputs), in that
order -> ``state``, with names such as ``robot0_eef_pos[0]``; ``obs/object`` -> ``env_state``;
``obs/<name>_image`` -> ``images/<name>``; any other ``obs/<key>`` -> ``<key>``; ``states`` ->
``sim_state``; ``rewards`` -> ``reward``; ``dones`` -> ``done``. The rate is robosuite's
``control_freq`` from ``env_args`` (or ``--fps``), the task the environment's name (or ``--task``),
timestamps frame / fps. Each episode's ``info`` keeps its demo name and the splits it is in.

robomimic's actions drive a robosuite controller: a policy trained on them can be trained here but
evaluated only in robosuite, which this project does not run.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from imitation.data.edit import building
from imitation.data.lerobot import need
from imitation.data.schema import TIMESTAMP, Feature, SchemaError, check_key, kind_for
from imitation.data.store import DemoStore, EpisodeWriter, StoreError

log = logging.getLogger(__name__)

PROPRIO = (
    re.compile(r"^robot\d+_eef_pos$"),
    re.compile(r"^robot\d+_eef_quat$"),
    re.compile(r"^robot\d+_gripper_qpos$"),
)
OWN = {"actions": "action", "states": "sim_state", "rewards": "reward", "dones": "done"}


def _demo_order(names: list[str]) -> list[str]:
    def key(n: str) -> tuple[int, str]:
        m = re.fullmatch(r"demo_(\d+)", n)
        return (int(m.group(1)) if m else 1 << 62, n)

    return sorted(names, key=key)


def _plan(
    first: Any, mapping: Mapping[str, str | None], image_codec: str | dict[str, Any]
) -> list[tuple[list[str], str, Feature]]:
    """(source arrays, feature key, feature) per feature, from the first demo's arrays."""
    obs = first.get("obs")
    obs_keys = sorted(obs.keys()) if obs is not None else []
    sources = [f"obs/{k}" for k in obs_keys] + [k for k in OWN if k in first]
    unknown = sorted(set(mapping) - set(sources))
    if unknown:
        raise StoreError(f"--map names array(s) {unknown} that {first.name} lacks; it has {sources}")
    proprio = [
        f"obs/{k}" for pattern in PROPRIO for k in obs_keys if pattern.match(k) and f"obs/{k}" not in mapping
    ]
    groups: dict[str, list[str]] = {}
    if proprio:
        groups["state"] = proprio
    for src in sources:
        if src in proprio:
            continue
        if src in mapping:
            target = mapping[src]
        elif src in OWN:
            target = OWN[src]
        elif src == "obs/object":
            target = "env_state"
        elif src.endswith("_image"):
            target = "images/" + src[len("obs/") : -len("_image")]
        else:
            target = src[len("obs/") :]
        if not target:
            continue
        groups.setdefault(target, []).append(src)
    plan = []
    for target, srcs in groups.items():
        arrays = [first[s] for s in srcs]
        try:
            check_key(target)
            kind = kind_for(target)
            if kind == "image":
                if len(srcs) != 1 or arrays[0].ndim != 4 or arrays[0].dtype != np.uint8:
                    raise SchemaError(
                        f"a camera must be one (N, H, W, C) uint8 array, got {[a.shape for a in arrays]}"
                    )
                codec = {"name": image_codec} if isinstance(image_codec, str) else dict(image_codec)
                plan.append(
                    (
                        srcs,
                        target,
                        Feature(shape=arrays[0].shape[1:], dtype="uint8", kind="image", codec=codec),
                    )
                )
                continue
            widths = [int(np.prod(a.shape[1:])) for a in arrays]
            if len(srcs) > 1 or kind in ("state", "action"):
                names = tuple(
                    f"{s.split('/')[-1]}[{i}]" for s, w in zip(srcs, widths, strict=True) for i in range(w)
                )
                # The source's own dtype (robomimic's float64), so that values import bit-exact.
                dtype = np.result_type(*[a.dtype for a in arrays]).name
                plan.append(
                    (srcs, target, Feature(shape=(sum(widths),), dtype=dtype, kind=kind, names=names))
                )
            else:
                a = arrays[0]
                plan.append(
                    (srcs, target, Feature(shape=a.shape[1:], dtype=np.dtype(a.dtype).name, kind=kind))
                )
        except (SchemaError, TypeError, ValueError) as e:
            raise StoreError(
                f"{first.name}: {', '.join(srcs)} cannot become {target!r}: {e}; rename with --map SOURCE=<feature> "
                "or drop with --map SOURCE="
            ) from e
    if not any(t == "action" for _, t, _ in plan):
        log.warning("%s: nothing becomes 'action'; name it with --map <array>=action", first.name)
    return plan


def import_robomimic(
    src: str | Path,
    dst: str | Path,
    *,
    fps: float | None = None,
    mapping: Mapping[str, str | None] | None = None,
    image_codec: str | dict[str, Any] = "jpeg",
    task: str | None = None,
    operator: str | None = None,
    outcome: str | None = None,
    robot: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> DemoStore:
    """Import a robomimic HDF5 file as a new store at ``dst`` (module docstring). ``outcome``
    defaults to "success": robomimic's datasets hold successful demonstrations."""
    h5py = need("h5py")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise StoreError(f"{src} is not a file; give the path of a robomimic .hdf5 file")
    if dst.exists():
        raise StoreError(f"{dst} already exists; choose another output path or remove it first")
    try:
        f = h5py.File(src, "r")
    except OSError as e:
        raise StoreError(f"{src} is not an HDF5 file ({e})") from e
    with f:
        data = f.get("data")
        if not isinstance(data, h5py.Group):
            raise StoreError(f"{src} has no 'data' group, so it is not a robomimic dataset")
        demos = _demo_order([k for k in data if isinstance(data[k], h5py.Group)])
        if not demos:
            raise StoreError(f"{src}: data/ holds no demos; nothing to import")
        env_args = _env_args(data, src)
        rate = fps if fps is not None else (env_args.get("env_kwargs") or {}).get("control_freq")
        if rate is None or isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise StoreError(
                f"{src} records no control rate (env_args.env_kwargs.control_freq); pass --fps (robosuite's default is 20)"
            )
        rate = float(rate)
        splits: dict[str, list[str]] = {}
        if isinstance(f.get("mask"), h5py.Group):
            for name, ds in f["mask"].items():
                for demo in ds[()]:
                    splits.setdefault(demo.decode() if isinstance(demo, bytes) else str(demo), []).append(
                        name
                    )
        plan = _plan(data[demos[0]], dict(mapping or {}), image_codec)
        features = {t: feat for _, t, feat in plan}
        features[TIMESTAMP] = Feature(shape=(), dtype="float64", kind="scalar")
        text = task or str(env_args.get("env_name") or "unknown")
        robot_attr = dict(robot or {}) or {"name": str(env_args.get("env_name") or "robosuite"), "source": "robomimic",
                                           "action_kind": "ee_delta", "env_args": env_args}  # fmt: skip
        if "state" in features and not robot:
            robot_attr["state_names"] = list(features["state"].names or ())
        with building(dst) as work, EpisodeWriter(work, features=features, fps=rate, robot=robot_attr) as w:
            for e, name in enumerate(tqdm(demos, desc=f"import {src.name}", unit="demo",
                                          disable=None if progress else True)):  # fmt: skip
                _episode(w, data[name], plan, rate, e, text, operator, outcome, splits.get(name, []), src)
    log.info(
        "imported %d demo(s) from %s into %s; their actions drive a robosuite controller (%s): trainable "
        "here, evaluable only in robosuite", len(demos), src, dst, env_args.get("env_name", "unknown env"),
    )  # fmt: skip
    return DemoStore.open(dst)


def _env_args(data: Any, src: Path) -> dict[str, Any]:
    raw = data.attrs.get("env_args")
    if raw is None:
        return {}
    try:
        out = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{src}: data.attrs['env_args'] is not JSON ({e})") from e
    return out if isinstance(out, dict) else {}


def _episode(
    w: EpisodeWriter, demo: Any, plan: list, rate: float, e: int, task: str, operator: str | None,
    outcome: str | None, splits: list[str], src: Path,
) -> None:  # fmt: skip
    lengths = set()
    columns = {}
    for srcs, target, feat in plan:
        missing = [s for s in srcs if s not in demo]
        if missing:
            raise StoreError(f"{src}: {demo.name} lacks {missing}, which the first demo has")
        arrays = [np.asarray(demo[s][()]) for s in srcs]
        lengths |= {a.shape[0] for a in arrays}
        if feat.kind == "image":
            columns[target] = arrays[0]
        else:
            n = arrays[0].shape[0]
            try:
                columns[target] = np.concatenate([a.reshape(n, -1) for a in arrays], axis=1).reshape(
                    n, *feat.shape
                )
            except ValueError as err:
                raise StoreError(
                    f"{src}: {demo.name}: {', '.join(srcs)} do not fit {target} {feat.shape} ({err})"
                ) from err
    if len(lengths) != 1:
        raise StoreError(
            f"{src}: {demo.name}'s arrays have different lengths {sorted(lengths)}; the file is damaged"
        )
    n = lengths.pop()
    declared = demo.attrs.get("num_samples")
    if declared is not None and int(declared) != n:
        raise StoreError(
            f"{src}: {demo.name} says num_samples={int(declared)} but holds {n} frames; the file is damaged"
        )
    if n == 0:
        log.warning("%s: %s has no frames; skipped", src, demo.name)
        return
    w.start_episode(task=task, operator=operator or "", start_time=e * 1e-3,
                    info={"source": "robomimic", "source_path": str(src.resolve()), "demo": demo.name.split("/")[-1],
                          "splits": splits})  # fmt: skip
    for i in range(n):
        frame = {k: v[i] for k, v in columns.items()}
        frame[TIMESTAMP] = i / rate
        try:
            w.add_frame(frame)
        except SchemaError as err:
            raise StoreError(f"{src}: {demo.name}, frame {i}: {err}") from err
    w.save_episode(outcome=outcome or "success")
