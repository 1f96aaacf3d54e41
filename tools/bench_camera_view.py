"""How large a task's target is in each camera: pixels it covers and the span its positions take.

A camera policy must find in its pictures what the demos react to. A target of one or two pixels,
whose positions over the task's scenes all fall within a few pixels of each other, leaves the
policy little to find; a camera placed closer to the workspace gives it more. This tool measures
that for a mapped task (``configs/envs/...`` mapping file of any MuJoCo environment), for every
camera of the environment's MuJoCo model and the mapping's ``render`` view, before any demo is
recorded:

    python tools/bench_camera_view.py --env configs/envs/metaworld/reach.yaml --site goal
    python tools/bench_camera_view.py --env configs/envs/metaworld/pick-place.yaml --site goal --size 96 96 --seeds 50

Per seed it resets the environment, renders every camera, hides the target (its ``rgba`` alpha
set to 0), renders again, and counts the pixels that changed. It prints per camera: the scenes in
which the target is seen, the median pixels it covers, and the rows and columns its centre spans
over the seeds. ``--geom`` names a geom instead of a site; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs.mapping import _mujoco_parts, make  # noqa: E402
from imitation.errors import ConfigError  # noqa: E402


def measure(
    env_path: str, *, site: str | None, geom: str | None, seeds: list[int], size: tuple[int, int]
) -> dict:
    import mujoco

    if not Path(env_path).is_file():
        raise ConfigError(f"--env {env_path}: no such file; name a mapping file (configs/envs/...yaml)")
    spec = yaml.safe_load(Path(env_path).read_text())
    if not isinstance(spec, dict) or "env_id" not in spec:
        raise ConfigError(f"--env {env_path}: not a mapping file (no env_id)")
    probe = make(env_path, obs_mode="state")
    models, _ = _mujoco_parts(probe.unwrapped.env.unwrapped)
    probe.close()
    if not models:
        raise ConfigError(f"--env {env_path}: the environment holds no MuJoCo model to render cameras of")
    model = models[0]
    kind, name = (mujoco.mjtObj.mjOBJ_SITE, site) if site else (mujoco.mjtObj.mjOBJ_GEOM, geom)
    index = mujoco.mj_name2id(model, kind, name)
    if index < 0:
        what = "site" if site else "geom"
        n = model.nsite if site else model.ngeom
        known = sorted(filter(None, (mujoco.mj_id2name(model, kind, i) for i in range(n))))
        raise ConfigError(
            f"--{what} {name}: no such {what} in {env_path}; it has {', '.join(known) or 'none'}"
        )
    cams = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
    spec["images"] = {"render": {"from": "render", "size": list(size)}} | {
        f"cam_{i}": {"from": f"camera:{c}", "size": list(size)} for i, c in enumerate(cams)
    }
    labels = {"render": "render (the env's own view)"} | {f"cam_{i}": c for i, c in enumerate(cams)}
    # Beside the original, so that whatever the mapping names relative to its folder still resolves.
    with tempfile.NamedTemporaryFile("w", dir=Path(env_path).parent, prefix=".views-", suffix=".yaml") as f:
        f.write(yaml.safe_dump(spec))
        f.flush()
        env = make(f.name, obs_mode="both")
    model = _mujoco_parts(env.unwrapped.env.unwrapped)[0][0]  # the rendering env's own model
    rgba = model.site_rgba if site else model.geom_rgba
    found: dict[str, list[tuple[int, float, float]]] = {k: [] for k in labels}
    for seed in seeds:
        shown, _ = env.reset(seed=seed)
        keep = rgba[index].copy()
        rgba[index, 3] = 0.0
        try:
            hidden, _ = env.reset(seed=seed)
        finally:
            rgba[index] = keep
        for key in labels:
            a, b = shown[f"images/{key}"].astype(np.int32), hidden[f"images/{key}"].astype(np.int32)
            rows, cols = np.nonzero(np.abs(a - b).sum(-1) > 30)
            found[key].append(
                (len(rows), rows.mean() if len(rows) else np.nan, cols.mean() if len(cols) else np.nan)
            )
    env.close()
    out = {}
    for key, label in labels.items():
        v = np.array(found[key], dtype=float)
        seen = v[:, 0] > 0
        out[label] = {
            "seen": int(seen.sum()),
            "scenes": len(seeds),
            "median_pixels": float(np.median(v[seen, 0])) if seen.any() else 0.0,
            "rows": [float(np.nanmin(v[:, 1])), float(np.nanmax(v[:, 1]))] if seen.any() else None,
            "cols": [float(np.nanmin(v[:, 2])), float(np.nanmax(v[:, 2]))] if seen.any() else None,
        }
    return out


def table(result: dict, size: tuple[int, int]) -> str:
    lines = [
        f"| camera ({size[0]}×{size[1]}) | scenes where seen | median pixels | centre's span, rows × cols |",
        "|---|---|---|---|",
    ]
    for label, r in result.items():
        span = "—"
        if r["rows"] is not None:
            h = r["rows"][1] - r["rows"][0] + 1
            w = r["cols"][1] - r["cols"][0] + 1
            span = f"{h:.0f} × {w:.0f} ({r['rows'][0]:.0f}–{r['rows'][1]:.0f}, {r['cols'][0]:.0f}–{r['cols'][1]:.0f})"
        lines.append(f"| {label} | {r['seen']}/{r['scenes']} | {r['median_pixels']:.0f} | {span} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", required=True, help="a mapping file (configs/envs/...yaml)")
    target = ap.add_mutually_exclusive_group(required=True)
    target.add_argument("--site", help="the target: a site of the MuJoCo model (e.g. goal)")
    target.add_argument("--geom", help="the target: a geom of the MuJoCo model")
    ap.add_argument("--seeds", type=int, default=30, help="scenes measured, seeds 100000 up (default 30)")
    ap.add_argument("--size", type=int, nargs=2, default=[96, 96], metavar=("H", "W"))
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args()
    if args.seeds < 1 or min(args.size) < 8:
        ap.error(f"--seeds must be >= 1 and --size at least 8 8, got {args.seeds} and {args.size}")
    size = (args.size[0], args.size[1])
    try:
        result = measure(
            args.env,
            site=args.site,
            geom=args.geom,
            seeds=list(range(100_000, 100_000 + args.seeds)),
            size=size,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(result, size))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"env": args.env, "size": list(size), "cameras": result}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
