"""The development suite: the default recipes on tasks nobody tuned them for (Meta-World's MT10).

For each task (a mapping in ``configs/envs/metaworld/``) it does what a user with a new task does,
through the command line and nothing else:

1. ``imitation record --teleop scripted`` of ``--demos`` demonstrations (seeds 0 up, state only);
2. the scripted expert on the ``--episodes`` reported seeds (100000 up): the ceiling;
3. ``imitation train --store S --policy P`` with no ``--config``: the default recipe, at most
   ``--max-minutes`` of training;
4. ``imitation eval`` of the last checkpoint on the reported seeds (unseen scenes: the environment
   draws each scene from its seed, and eval refuses a scene that is a training demo's).

    python tools/bench_suite.py                                  # all of MT10, expert + ACT + DP
    python tools/bench_suite.py --tasks reach-v3 push-v3 --policies expert act
    python tools/bench_suite.py --markdown bench/suite/results.json
    python tools/bench_suite.py --obs images --policies act --out bench/suite_images   # camera-based

``--obs images`` records the demos with the mapping's cameras too and trains each policy on them
and no object state, as on a real arm: the inputs the default recipe picks for a store without
object state (``camera_inputs`` in ``imitation/recipes.py``: Meta-World's end-effector steps get the
cameras alone; ``--state yes`` adds the arm's state, as the suite's earlier camera rows had). The
recipe then gives its camera settings and eval renders the cameras.

Writes ``<out>/results.json`` (one record per task and policy; runs into the same ``--out`` add or
replace rows) and prints the Markdown table of BENCHMARKS.md: per task the expert's success and each
policy's, with 95% Wilson intervals, and each policy's mean share of the expert's success.
Needs the Meta-World extra (``pip install -e '.[metaworld]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imitation.results import summarize, wilson_interval  # noqa: E402

# The suite: the tasks of the mappings in configs/envs/metaworld/ (Meta-World's MT10 set, which
# envs/metaworld.py lists too; the hidden-gripper variant is an experiment, not a suite task).
MT10 = tuple(
    path.stem + "-v3"
    for path in sorted((ROOT / "configs" / "envs" / "metaworld").glob("*.yaml"))
    if not path.stem.endswith("-blind")
)
TITLES = {"expert": "scripted expert", "act": "ACT (default recipe)", "diffusion": "DP (default recipe)"}


MAPPINGS = ROOT / "configs" / "envs" / "metaworld"  # --mappings replaces it


def mapping(task: str) -> str:
    return str(MAPPINGS / f"{task.removesuffix('-v3')}.yaml")


def derive_mappings(tasks: list[str], changes: list[str], folder: Path) -> None:
    """Write each task's mapping with its cameras changed (``NAME=SOURCE`` replaces or adds one,
    ``NAME=`` drops it where a task has it) into ``folder``, and make ``folder`` the suite's mappings."""
    import yaml

    global MAPPINGS
    parsed = []
    for change in changes:
        name, eq, source = change.partition("=")
        if not eq or not name.strip():
            raise ValueError(
                f"--camera {change!r}: expected NAME=SOURCE (e.g. corner=camera:corner4) or NAME="
            )
        parsed.append((name.strip(), source.strip()))
    specs = {task: yaml.safe_load(Path(mapping(task)).read_text()) for task in tasks}
    for name, source in parsed:  # a camera to drop must be in some task's mapping (a typo is not)
        if not source and not any(name in (spec.get("images") or {}) for spec in specs.values()):
            raise ValueError(
                f"--camera {name}=: no camera {name!r} to drop in {', '.join(mapping(t) for t in tasks)}"
            )
    folder.mkdir(parents=True, exist_ok=True)
    for task, spec in specs.items():
        images = dict(spec.get("images") or {})
        for name, source in parsed:
            if not source:
                images.pop(name, None)  # dropped where the task has it
            else:
                size = (images.get(name) or next(iter(images.values()), None) or {}).get("size", [96, 96])
                images[name] = {"from": source, "size": list(size)}
        spec["images"] = images
        (folder / Path(mapping(task)).name).write_text(
            f"# {Path(mapping(task)).name} of {MAPPINGS} with --camera {' '.join(changes)} (tools/bench_suite.py)\n"
            + yaml.safe_dump(spec, sort_keys=False)
        )
    MAPPINGS = folder.resolve()


def cli(*args: str) -> None:
    """One ``imitation`` command, its output passed through; a failure stops the suite."""
    cmd = [sys.executable, "-m", "imitation.cli", *args]
    print("$ imitation " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "WANDB_MODE": "disabled"})


# imitation train options each policy run is given by the suite, and the suite's own flag for each.
SUITE_SETS = {
    "--store": "--demos-from",
    "--policy": "--policies",
    "--out": "--out",
    "--max-minutes": "--max-minutes",
    "--seed": "--train-seed",
}


def seeds(args: argparse.Namespace) -> list[int]:
    return list(range(100_000, 100_000 + args.episodes))


def cameras(task: str) -> list[str]:
    """The cameras a task's mapping declares."""
    import yaml

    return list(yaml.safe_load(Path(mapping(task)).read_text()).get("images") or {})


def run_task(task: str, policy: str, args: argparse.Namespace) -> dict:
    out = Path(args.out)
    store = Path(args.demos_from or out) / "demos" / f"{task}.zarr"
    mode = "both" if args.obs == "images" else "state"
    if not (store / "zarr.json").exists():
        noise = ["--action-noise", str(args.action_noise)] if args.action_noise else []
        cli("record", "--env", mapping(task), "--teleop", "scripted", "--episodes", str(args.demos),
            "--obs-mode", mode, "--seed", "0", "--out", str(store), *noise)  # fmt: skip
    row = {"task": task, "policy": policy, "demos": args.demos, "obs": args.obs}
    if args.train_seed:
        row["train_seed"] = args.train_seed
    from imitation.data.store import DemoStore

    noise = DemoStore.open(store).episode_meta(0)["info"].get("action_noise")  # what the demos had
    if noise:
        row["action_noise"] = noise
    inputs = []
    if args.obs == "images" and policy != "expert":
        from imitation.recipes import camera_inputs

        chosen = args.cameras or cameras(task)
        # The recipe's choice for a store with cameras and no object state (a real arm's), or the
        # arm's state added or left out by --state.
        auto = "state" in camera_inputs(DemoStore.open(store))
        state = {"auto": auto, "yes": True, "no": False}[args.state]
        inputs = [f"--{policy}.obs-keys", *(["state"] if state else []), *(f"images/{c}" for c in chosen)]
        row["cameras"] = chosen
        row["state"] = state
    if policy == "expert":
        from imitation.expert import run_expert

        episodes, wall = run_expert(mapping(task), seeds(args))
        s = summarize(episodes)
        return {**row, **_summary(s), "eval_wall_s": wall}
    if args.train_args:
        row["train_args"] = args.train_args
    run = out / "runs" / f"{task}_{policy}"
    t0 = time.perf_counter()
    cli("train", "--store", str(store), "--policy", policy, "--out", str(run), "--overwrite",
        "--max-minutes", str(args.max_minutes), "--wandb", "disabled", "--seed", str(args.train_seed),
        *inputs, *args.train_args)  # fmt: skip
    train_s = time.perf_counter() - t0
    ev = out / "eval" / f"{task}_{policy}"
    t0 = time.perf_counter()
    cli("eval", "--checkpoint", str(run), "--env", mapping(task), "--episodes", str(args.episodes),
        "--seed", "100000", "--out", str(ev), "--overwrite", "--videos", "2")  # fmt: skip
    s = json.loads((ev / "results.json").read_text())["summary"]
    cfg = (run / "config.yaml").read_text()
    return {**row, **_summary(s), "train_wall_s": train_s, "eval_wall_s": time.perf_counter() - t0,
            "config": cfg}  # fmt: skip


def _summary(s: dict) -> dict:
    return {
        "episodes": s["episodes"],
        "successes": s["successes"],
        "success_rate": s["success_rate"],
        "clipped_actions": s.get("clipped_actions", 0),
        "mean_length": s["mean_length"],
    }


def markdown(rows: list[dict]) -> str:
    by = {(r["task"], r["policy"]): r for r in rows}
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    policies = [p for p in ("expert", "act", "diffusion") if any(r["policy"] == p for r in rows)]

    def cell(r: dict | None) -> str:
        if r is None:
            return "—"
        lo, hi = wilson_interval(r["successes"], r["episodes"])
        extra = f", {r['train_wall_s'] / 60:.1f} min" if "train_wall_s" in r else ""
        return f"{100 * r['success_rate']:.0f}% ({100 * lo:.0f}–{100 * hi:.0f}{extra})"

    head = "| task | " + " | ".join(TITLES[p] for p in policies) + " |"
    lines = [head, "|" + "---|" * (len(policies) + 1)]
    shares: dict[str, list[float]] = {p: [] for p in policies if p != "expert"}
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(cell(by.get((t, p))) for p in policies) + " |")
        ex = by.get((t, "expert"))
        for p in shares:
            if ex and (t, p) in by and ex["success_rate"] > 0:
                shares[p].append(by[(t, p)]["success_rate"] / ex["success_rate"])
    if any(shares.values()):
        cells = ["—"] + [
            f"{100 * sum(v) / len(v):.0f}% of the expert over {len(v)} task(s)" if v else "—"
            for v in shares.values()
        ]
        lines.append("| **mean share of the expert** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(MT10))
    ap.add_argument("--policies", nargs="+", default=["expert", "act", "diffusion"],
                    choices=["expert", "act", "diffusion"])  # fmt: skip
    ap.add_argument("--demos", type=int, default=50)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--max-minutes", type=float, default=15.0)
    ap.add_argument("--obs", choices=["state", "images"], default="state",
                    help="train on the object state (state) or on the mapping's cameras (images)")  # fmt: skip
    ap.add_argument("--state", choices=["auto", "yes", "no"], default="auto",
                    help="with --obs images: give the policy the arm's state beside its cameras (auto: the "
                    "recipe's choice, camera_inputs in imitation/recipes.py)")  # fmt: skip
    ap.add_argument("--cameras", nargs="+", metavar="CAM",
                    help="with --obs images: the cameras the policy sees (default: all of the mapping's)")  # fmt: skip
    ap.add_argument("--action-noise", type=float, default=0.0, metavar="STD",
                    help="record the demos with this DART offset on the expert's actions (imitation "
                    "record --action-noise; 0: none). A store already in --out is used as it is")  # fmt: skip
    ap.add_argument("--train-seed", type=int, default=0, metavar="N",
                    help="imitation train --seed: sample order, initial weights, augmentation draws and the "
                    "episodes held out for validation. "
                    "Another seed on the same demos measures the spread between training runs")  # fmt: skip
    ap.add_argument("--demos-from", metavar="DIR",
                    help="train on the stores of another run's --out (DIR/demos/<task>.zarr, recorded there "
                    "if missing) instead of --out's own")  # fmt: skip
    ap.add_argument("--mappings", metavar="DIR",
                    help="take each task's mapping from DIR/<task>.yaml (e.g. other cameras) instead of "
                    "configs/envs/metaworld/")  # fmt: skip
    ap.add_argument("--camera", action="append", default=[], metavar="NAME=SOURCE",
                    help="change one camera of every task's mapping: NAME=camera:<model camera> (or render) "
                    "replaces or adds it, NAME= drops it; the mappings used are written to <out>/mappings/. "
                    "Repeatable, e.g. --camera corner=camera:corner4")  # fmt: skip
    ap.add_argument("--train-arg", action="append", default=[], metavar="ARGS",
                    help="more imitation train options for the policies' runs (a recipe variant), recorded in "
                    "results.json; repeatable, e.g. --train-arg='--batch-size 32'")  # fmt: skip
    ap.add_argument("--out", default="bench/suite")
    ap.add_argument("--markdown", metavar="RESULTS_JSON", help="print the table of a results.json and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())["rows"]))
        return 0
    if args.mappings:
        global MAPPINGS
        MAPPINGS = Path(args.mappings).resolve()
        missing = [mapping(t) for t in args.tasks if not Path(mapping(t)).is_file()]
        if missing:
            ap.error(f"--mappings {args.mappings}: no {', '.join(missing)}")
    if args.camera:
        try:
            derive_mappings(args.tasks, args.camera, Path(args.out) / "mappings")
        except ValueError as exc:
            ap.error(str(exc))
    for task in args.tasks if args.cameras else []:
        unknown = sorted(set(args.cameras) - set(cameras(task)))
        if unknown:
            ap.error(
                f"--cameras {' '.join(unknown)}: {mapping(task)} has {', '.join(cameras(task)) or 'none'}"
            )
    if args.action_noise < 0:
        ap.error(f"--action-noise must be >= 0, got {args.action_noise}")
    try:
        args.train_args = [a for arg in args.train_arg for a in shlex.split(arg)]
    except ValueError as exc:
        ap.error(f"--train-arg: {exc}")
    owned = sorted({a.split("=")[0] for a in args.train_args} & set(SUITE_SETS))
    if owned:
        flags = " and ".join(dict.fromkeys(SUITE_SETS[o] for o in owned))
        ap.error(f"--train-arg {' '.join(owned)}: the suite sets it; use {flags}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    rows = json.loads(results.read_text())["rows"] if results.exists() else []
    for task in args.tasks:
        for policy in args.policies:
            try:
                row = run_task(task, policy, args)
            except subprocess.CalledProcessError as exc:
                print(f"bench_suite: {task} {policy}: `imitation {exc.cmd[3]}` failed (exit {exc.returncode}); "
                      f"the rows measured before it are in {results}", file=sys.stderr)  # fmt: skip
                return 1
            rows = [r for r in rows if (r["task"], r["policy"]) != (task, policy)] + [row]
            tmp = results.with_suffix(".tmp")
            tmp.write_text(json.dumps({"written_by": "tools/bench_suite.py", "rows": rows}, indent=1))
            tmp.replace(results)
            print(markdown(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
