"""The results table: every task x {ACT, Diffusion Policy}, trained and evaluated here.

For each task it records ``--demos`` scripted demonstrations (seeds from 0), then for each policy
and training seed it trains the shipped config with a periodic simulation evaluation on
selection seeds (200000 up) that keeps the best checkpoint, and evaluates that checkpoint on
``--episodes`` reported seeds (100000 up): disjoint from the demos' and from the selection's.
``--obs state`` (the default) records state only and trains ``<task>_<policy>_state.yaml`` on the
object poses; ``--obs images`` records the cameras the configs read and trains the camera-based
CPU configs ``<task>_<policy>_camera_cpu.yaml``, which see joints and cameras and nothing else.
``--policies expert`` adds the scripted expert that records the demos, run on the same reported
seeds: the ceiling its imitators are measured against (no training, about a minute per task;
PushT's expert plans by simulation and takes longer).

    python tools/bench_policies.py                                   # the whole table
    python tools/bench_policies.py --tasks pick_place --policies act --train-seeds 0 1 2
    python tools/bench_policies.py --policies expert                 # the demonstrators alone
    python tools/bench_policies.py --obs images --tasks pick_place --policies act --train-seeds 0
    python tools/bench_policies.py --obs images --tasks pick_place --policies act --train-seeds 0 --perturb
    python tools/bench_policies.py --markdown bench/policies/results.json   # print the table again

``--perturb`` (camera-based rows) also evaluates each row's selected checkpoint with the scene
cameras moved and the lights changed (``imitation eval --perturb``) on the same reported seeds;
a row already in ``<out>/results.json`` whose checkpoint is still there is not trained again,
only evaluated under perturbation. ``--reevaluate`` likewise evaluates such rows again on
``--episodes`` reported seeds (more seeds for a measured checkpoint) instead of training them again.

Writes ``<out>/results.json`` (one record per row and training seed) and prints a Markdown
table with the mean over training seeds. Long: about 10-30 minutes of CPU per row and seed.
Runs into an existing ``--out`` add their rows to its results.json; a results.json that imitation
did not write, or an evaluation folder holding other files, is refused before anything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs import TASK_NAMES  # noqa: E402
from imitation.policies import POLICIES  # noqa: E402

TASKS = {name: env_id for env_id, name in TASK_NAMES.items()}  # the tasks of envs/ by short name
NAMES = {name: cls.title for name, (_, cls) in POLICIES.items()} | {"expert": "scripted expert"}


def record(task: str, demos: int, out: Path, action_noise: float, cameras: tuple[str, ...] = ()) -> dict:
    """The task's demos (reused when the store already holds enough): state only, or with
    ``cameras`` (the camera-based rows)."""
    from imitation.record import RecordConfig, record_scripted

    store = out / "demos" / (f"{task}_camera.zarr" if cameras else f"{task}.zarr")
    if (store / "zarr.json").exists():
        from imitation.data.store import DemoStore

        s = DemoStore.open(store)
        if s.n_episodes >= demos:
            return {"store": str(store), "episodes": s.n_episodes, "frames": s.n_frames, "wall_s": None}
    cfg = RecordConfig(
        env=TASKS[task],
        episodes=demos,
        out=store,
        seed=0,
        obs_mode="images" if cameras else "state",
        cameras=cameras or None,
        action_noise=action_noise,
    )
    r = record_scripted(cfg)
    return {"store": str(store), "episodes": r["episodes"], "frames": r["frames"], "wall_s": r["wall_s"]}


def config_path(config_dir: Path, task: str, policy: str, obs: str = "state") -> Path:
    from imitation.quickstart import CONFIG_SUFFIX

    return (config_dir / f"{task}_{policy}_{CONFIG_SUFFIX[obs]}.yaml").resolve()


def cameras_of(args: argparse.Namespace, task: str, policies: list[str]) -> tuple[str, ...]:
    """The cameras the task's camera-based configs read (none for --obs state)."""
    if args.obs == "state":
        return ()
    from imitation import config
    from imitation.train import TrainConfig

    keys: list[str] = []
    for policy in policies:
        tc = config.load_yaml(TrainConfig, config_path(args.config_dir, task, policy, args.obs))
        keys += [k for k in getattr(tc, policy).obs_keys if k.startswith("images/") and k not in keys]
    return tuple(k.removeprefix("images/") for k in keys)


def row_name(task: str, policy: str, seed: int, obs: str) -> str:
    return f"{task}_{policy}{'_camera' if obs == 'images' else ''}_s{seed}"


def with_selection(cfg_path: Path, store: str, run: Path, seed: int, args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` of ``cfg_path`` for one benchmark run: ``--steps`` if given, and
    ``--selections`` evaluations on ``--select-episodes`` seeds from 200000 that keep the best."""
    from imitation import config
    from imitation.train import TrainConfig

    tc = config.load_yaml(TrainConfig, cfg_path)
    tc.store, tc.out, tc.seed, tc.overwrite, tc.wandb = store, str(run), seed, True, "disabled"
    if args.steps:
        tc.steps = args.steps
    tc.eval_every = max(1, tc.steps // args.selections)
    tc.eval_episodes, tc.eval_seed = args.select_episodes, 200_000
    tc.save_every = tc.steps
    return tc


def run_row(task: str, policy: str, seed: int, store: str, args: argparse.Namespace) -> dict:
    from imitation.train import simulation_eval, train

    cfg_path = config_path(args.config_dir, task, policy, args.obs)
    run = args.out / "runs" / row_name(task, policy, seed, args.obs)
    tc = with_selection(cfg_path, store, run, seed, args)
    t0 = time.perf_counter()
    train(tc, on_eval=simulation_eval(tc))  # wall time includes these selection rollouts
    train_s = time.perf_counter() - t0
    best = run / "checkpoints" / "best"
    ckpt = best if best.exists() else run
    summary = evaluate_on_reported_seeds(
        str(ckpt), args.episodes, args.out / "eval" / row_name(task, policy, seed, args.obs)
    )
    row = {
        "task": task,
        "env": TASKS[task],
        "policy": policy,
        "obs": args.obs,
        "train_seed": seed,
        "config": str(cfg_path.relative_to(ROOT)) if cfg_path.is_relative_to(ROOT) else str(cfg_path),
        "steps": tc.steps,
        "train_wall_s": train_s,
        "checkpoint": summary["checkpoint"],
        "episodes": summary["episodes"],
        "successes": summary["successes"],
        "success_rate": summary["success_rate"],
        "success_ci95": summary["success_ci95"],
        "mean_max_coverage": summary.get("mean_max_coverage"),
        "mean_length": summary["mean_length"],
        "eval_wall_s": summary["wall_s"],
    }
    return perturbed(row, args) if args.perturb else row


def evaluate_on_reported_seeds(checkpoint: str, episodes: int, out: Path, perturb: bool = False) -> dict:
    """``imitation eval`` of a checkpoint on the reported seeds (100000 up), two videos."""
    from imitation.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(
        checkpoint=checkpoint, episodes=episodes, seed=100_000, out=str(out), videos=2, perturb=perturb
    )
    return evaluate(cfg, progress=False)


def row_key(row: dict) -> tuple:
    """What names a row: its task, policy, observation set and training seed."""
    return row["task"], row["policy"], row.get("obs", "state"), row["train_seed"]


def reevaluated(row: dict, args: argparse.Namespace) -> dict:
    """The row's selected checkpoint evaluated again, on ``--episodes`` reported seeds; its training
    figures are kept."""
    name = row_name(row["task"], row["policy"], row["train_seed"], row.get("obs", "state"))
    summary = evaluate_on_reported_seeds(row["checkpoint"], args.episodes, args.out / "eval" / name)
    fresh = {k: v for k, v in row.items() if not k.startswith("perturb_")}
    fresh |= {k: summary.get(k) for k in ("episodes", "successes", "success_rate", "success_ci95")}
    fresh |= {
        "mean_max_coverage": summary.get("mean_max_coverage"),
        "mean_length": summary["mean_length"],
        "eval_wall_s": summary["wall_s"],
    }
    return perturbed(fresh, args) if args.perturb else fresh


def perturbed(row: dict, args: argparse.Namespace) -> dict:
    """The row's checkpoint evaluated again on its reported seeds with the scene cameras moved and
    the lights changed per episode (``imitation eval --perturb``)."""
    name = row_name(row["task"], row["policy"], row["train_seed"], row.get("obs", "state"))
    summary = evaluate_on_reported_seeds(
        row["checkpoint"], row["episodes"], args.out / "eval" / f"{name}_perturb", perturb=True
    )
    return row | {
        "perturb_successes": summary["successes"],
        "perturb_success_rate": summary["success_rate"],
        "perturb_eval_wall_s": summary["wall_s"],
    }


def expert_row(task: str, args: argparse.Namespace) -> dict:
    """The scripted expert that records the demos, on the same reported seeds: the ceiling a
    policy trained on its demos can be measured against. No training; one environment."""
    from imitation.expert import run_expert
    from imitation.results import summarize

    t0 = time.perf_counter()
    episodes, _ = run_expert(TASKS[task], range(100_000, 100_000 + args.episodes))
    s = summarize(episodes)
    return {
        "task": task,
        "env": TASKS[task],
        "policy": "expert",
        "train_seed": None,
        "failed_seeds": [e.seed for e in episodes if not e.success],
        "episodes": s["episodes"],
        "successes": s["successes"],
        "success_rate": s["success_rate"],
        "success_ci95": s["success_ci95"],
        "mean_max_coverage": s.get("mean_max_coverage"),
        "mean_length": s["mean_length"],
        "eval_wall_s": time.perf_counter() - t0,
    }


def wilson(successes: int, n: int) -> tuple[float, float]:
    from imitation.results import wilson_interval

    return wilson_interval(successes, n)


def markdown(rows: list[dict], meta: dict) -> str:
    perturb = any("perturb_successes" in r for r in rows)
    lines = [
        "| task | policy | demos | steps | train wall (mean) | training seeds | success (mean over seeds) | 95% interval (pooled) | mean max coverage |"
        + (" under --perturb |" if perturb else ""),
        "|---|---|---:|---:|---:|---:|---:|---|---:|" + ("---:|" if perturb else ""),
    ]
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["policy"], r.get("obs", "state")), []).append(r)
    for (task, policy, obs), rs in groups.items():
        wins, n = sum(r["successes"] for r in rs), sum(r["episodes"] for r in rs)
        lo, hi = wilson(wins, n)
        rate = sum(r["success_rate"] for r in rs) / len(rs)
        cov = [r["mean_max_coverage"] for r in rs if r["mean_max_coverage"] is not None]
        if policy == "expert":  # the demonstrator itself: nothing trained
            trained = "– | – | – | –"
        else:
            trained = (
                f"{meta['demos'].get(task + ('_camera' if obs == 'images' else ''), meta['demos'].get(task))} | {rs[0]['steps']:,} | "
                f"{sum(r['train_wall_s'] for r in rs) / len(rs) / 60:.1f} min | {len(rs)}"
            )
        lines.append(
            f"| {TASKS[task]} | {NAMES[policy]}{' (cameras)' if obs == 'images' else ''} | {trained} | "
            f"{rate:.1%} ({wins}/{n}) | {lo:.1%}–{hi:.1%} | "
            + (f"{sum(cov) / len(cov):.3f}" if cov else "–")
            + " |"
            + (f" {under_perturbation(rs)} |" if perturb else "")
        )
    return "\n".join(lines)


def under_perturbation(rows: list[dict]) -> str:
    """Mean success over the training seeds under --perturb, with the pooled count ("–" when a
    seed was not evaluated so)."""
    if not all("perturb_successes" in r for r in rows):
        return "–"
    wins, n = sum(r["perturb_successes"] for r in rows), sum(r["episodes"] for r in rows)
    return f"{sum(r['perturb_success_rate'] for r in rows) / len(rows):.1%} ({wins}/{n})"


RESULTS_LAYOUT = ("rows", "meta")  # a results.json written before the mark existed (imitation.outputs)


def check_outputs(args: argparse.Namespace, trained: list[str]) -> None:
    """Refuse, before recording or training, an --out whose results.json or evaluation folders hold
    files imitation did not write (ConfigError)."""
    from imitation import outputs
    from imitation.results import EVAL_FILES, EVAL_TEMPORARY
    from imitation.results import RESULTS_LAYOUT as EVAL_LAYOUT

    outputs.check_file(
        args.out / "results.json",
        command="bench_policies.py",
        overwrite_flag=None,
        legacy_keys=RESULTS_LAYOUT,
    )
    for task in args.tasks:
        for policy in trained:
            for seed in args.train_seeds:
                name = row_name(task, policy, seed, args.obs)
                for folder in (name, f"{name}_perturb") if args.perturb else (name,):
                    outputs.check_dir(
                        args.out / "eval" / folder,
                        EVAL_FILES,
                        command="bench_policies.py",
                        overwrite_flag=None,
                        temporary=EVAL_TEMPORARY,
                        legacy_keys=EVAL_LAYOUT,
                    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    ap.add_argument("--policies", nargs="+", choices=list(NAMES), default=list(NAMES))
    ap.add_argument("--train-seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--demos", type=int, default=50, help="scripted demonstrations per task")
    ap.add_argument("--action-noise", type=float, default=0.0, help="record --action-noise (rad)")
    ap.add_argument(
        "--config-dir",
        type=Path,
        default=ROOT / "configs" / "train",
        help="folder of <task>_<policy>_state.yaml (or _camera_cpu.yaml) training configs (default: the shipped ones)",
    )
    ap.add_argument(
        "--obs",
        choices=("state", "images"),
        default="state",
        help="state: the object poses (<task>_<policy>_state.yaml); images: joints and cameras only "
        "(<task>_<policy>_camera_cpu.yaml)",
    )
    ap.add_argument("--steps", type=int, default=None, help="override the configs' training steps")
    ap.add_argument("--episodes", type=int, default=200, help="reported evaluation seeds (100000 up)")
    ap.add_argument("--select-episodes", type=int, default=50, help="selection seeds (200000 up)")
    ap.add_argument("--selections", type=int, default=5, help="simulation evaluations per training run")
    ap.add_argument(
        "--perturb",
        action="store_true",
        help="camera-based rows: also evaluate each selected checkpoint with the scene cameras moved and "
        "the lights changed (imitation eval --perturb); rows already in results.json are only evaluated",
    )
    ap.add_argument(
        "--reevaluate",
        action="store_true",
        help="rows already in results.json whose checkpoint is still there are evaluated again on --episodes "
        "reported seeds instead of being trained again",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/policies"))
    ap.add_argument("--markdown", type=Path, help="print the table of an existing results.json and exit")
    args = ap.parse_args()
    if args.markdown:
        data = json.loads(args.markdown.read_text())
        print(markdown(data["rows"], data["meta"]))
        return 0
    if args.perturb and args.obs != "images":
        print("error: --perturb moves cameras, so it needs --obs images (camera-based rows)", file=sys.stderr)
        return 2
    for flag in ("episodes", "select_episodes", "selections", "demos"):
        if getattr(args, flag) < 1:
            print(f"error: --{flag.replace('_', '-')} {getattr(args, flag)}: give 1 or more", file=sys.stderr)
            return 2
    missing = [
        str(p)
        for p in (
            config_path(args.config_dir, t, p, args.obs)
            for t in args.tasks
            for p in args.policies
            if p != "expert"
        )
        if not p.is_file()
    ]
    if missing:
        print(
            f"error: no training config {missing[0]}: --config-dir needs <task>_<policy>_"
            f"{'camera_cpu' if args.obs == 'images' else 'state'}.yaml files",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("MUJOCO_GL", "egl")
    from imitation import outputs
    from imitation.errors import ConfigError

    trained = [p for p in args.policies if p != "expert"]
    try:
        check_outputs(args, trained)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.json"
    data = json.loads(results.read_text()) if results.exists() else {"rows": [], "meta": {"demos": {}}}
    data.pop(outputs.MARK_KEY, None)

    def keep(row: dict) -> None:
        data["rows"] = [r for r in data["rows"] if row_key(r) != row_key(row)] + [row]
        outputs.write_json(results, data, "tools/bench_policies.py")

    for task in args.tasks:
        if "expert" in args.policies:
            row = expert_row(task, args)
            keep(row)
            print(
                f"{task} expert: {row['success_rate']:.1%} ({row['successes']}/{row['episodes']})", flush=True
            )
        if not trained:
            continue
        cameras = cameras_of(args, task, trained)
        rec = record(task, args.demos, args.out, args.action_noise, cameras)
        name = task + ("_camera" if cameras else "")
        data["meta"]["demos"][name] = rec["episodes"]
        data["meta"].setdefault("record", {})[name] = rec
        for policy in trained:
            for seed in args.train_seeds:
                reuse = args.perturb or args.reevaluate
                done = existing(data["rows"], task, policy, seed, args.obs) if reuse else None
                if done:
                    row = reevaluated(done, args) if args.reevaluate else perturbed(done, args)
                else:
                    row = run_row(task, policy, seed, rec["store"], args)
                keep(row)
                print(
                    f"{task} {policy} ({args.obs}) seed {seed}: {row['success_rate']:.1%} "
                    f"({row['successes']}/{row['episodes']}), trained {row['train_wall_s'] / 60:.1f} min"
                    + (
                        f"; under --perturb {row['perturb_success_rate']:.1%} ({row['perturb_successes']}/"
                        f"{row['episodes']})"
                        if "perturb_successes" in row
                        else ""
                    ),
                    flush=True,
                )
    print(markdown(data["rows"], data["meta"]))
    return 0


def existing(rows: list[dict], task: str, policy: str, seed: int, obs: str) -> dict | None:
    """The row already measured for this task, policy, training seed and observation set, if its
    selected checkpoint is still on disk (``--perturb`` and ``--reevaluate`` then only evaluate it)."""
    for r in rows:
        if row_key(r) == (task, policy, obs, seed):
            return r if Path(r["checkpoint"]).exists() else None
    return None


if __name__ == "__main__":
    raise SystemExit(main())
