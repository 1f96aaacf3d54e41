"""Corrections from take-over vs more demonstrations (DAgger-style), on a simulated task.

1. Record ``--demos`` scripted demonstrations (state only, seeds from 0) and train the task's
   state ACT config on them (selection on seeds 200000 up, as ``bench_policies.py``): the base.
2. Deploy the base with ``--takeover scripted`` on seeds 300000 up, recording: the task's expert
   takes over when the task's reward has not risen for ``--stall-s`` and hands back after
   ``--correct-s``, until ``--budget`` corrected frames are spent (``imitation deploy``).
3. ``imitation data filter --interventions``: the corrected stretches alone, merged with the
   demos -> the corrections store. The fair baseline: the demos plus whole extra expert
   demonstrations (seeds 1000 up) holding at least as many frames as the corrections.
4. Train the same config on each, with the same selection, and evaluate base, corrections and
   baseline on ``--episodes`` reported seeds (100000 up; disjoint from all the others).

    python tools/bench_takeover.py --out bench/takeover                    # Insertion, ~1 h on 2 cores
    python tools/bench_takeover.py --markdown bench/takeover/results.json  # print the table again

Writes ``<out>/results.json`` and prints a Markdown table. ``--tag _6s --correct-s 6`` measures
another take-over setting in the same ``--out``: its corrections, run and results carry the tag,
and the base and the extra-demos rows (trained and evaluated already) are read back.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "disabled")

from bench_policies import with_selection  # noqa: E402

from imitation import outputs  # noqa: E402
from imitation.control import RateLoop, SimulatedClock  # noqa: E402
from imitation.data.edit import copy_episodes, filter_store, merge  # noqa: E402
from imitation.data.store import DemoStore  # noqa: E402
from imitation.deploy import DeployConfig, deploy  # noqa: E402
from imitation.evaluate import EvalConfig, evaluate  # noqa: E402
from imitation.record import RecordConfig, record_scripted  # noqa: E402
from imitation.train import simulation_eval, train  # noqa: E402

TASKS = {"insertion": "imitation/Insertion-v0", "transfer_cube": "imitation/TransferCube-v0"}


def record(env: str, episodes: int, out: Path, seed: int) -> DemoStore:
    if (out / "zarr.json").exists() and DemoStore.open(out).n_episodes >= episodes:
        return DemoStore.open(out)
    record_scripted(
        RecordConfig(env=env, episodes=episodes, out=out, seed=seed, obs_mode="state"), progress=False
    )
    return DemoStore.open(out)


def train_on(store: Path, name: str, args: argparse.Namespace) -> tuple[str, float]:
    """The task's state ACT config on ``store`` with selection; (best checkpoint, wall s)."""
    run = args.out / "runs" / name
    cfg_path = ROOT / "configs" / "train" / f"{args.task}_act_state.yaml"
    tc = with_selection(cfg_path, str(store), run, args.seed, args)
    t0 = time.perf_counter()
    if not (run / "checkpoints" / "best").exists() or args.retrain:
        train(tc, on_eval=simulation_eval(tc))
    best = run / "checkpoints" / "best"
    return str(best if best.exists() else run), time.perf_counter() - t0


def reported(checkpoint: str, name: str, args: argparse.Namespace) -> dict:
    """The checkpoint on the reported seeds; an evaluation already written for it is read back."""
    done = args.out / "eval" / name / "results.json"
    if done.exists() and not args.retrain:
        summary = json.loads(done.read_text())["summary"]
        if summary["checkpoint"] == checkpoint and summary["episodes"] == args.episodes:
            return summary
    cfg = EvalConfig(
        checkpoint=checkpoint,
        episodes=args.episodes,
        seed=100_000,
        out=str(args.out / "eval" / name),
        videos=0,
    )
    return evaluate(cfg, progress=False)


def collect(checkpoint: str, args: argparse.Namespace) -> dict:
    """Deploy with the scripted take-over until the budget of corrected frames is spent."""
    store = args.out / "demos" / f"takeover{args.tag}.zarr"
    if (store / "zarr.json").exists():
        s = DemoStore.open(store)
        return {"store": str(store), "episodes": s.n_episodes, "frames": s.n_frames, "reused": True}
    hz = DemoStore.open(args.out / "demos" / "demos.zarr").fps
    spent = episodes = successes = 0
    t0 = time.perf_counter()
    while spent < args.budget and episodes < args.max_collect:
        batch = min(10, args.max_collect - episodes)
        cfg = DeployConfig(
            checkpoint=checkpoint,
            episodes=batch,
            seed=300_000 + episodes,
            inference="inline",
            record=str(store),
            takeover="scripted",
            takeover_stall_s=args.stall_s,
            takeover_s=args.correct_s,
            takeover_budget=args.budget - spent,
        )
        summary = deploy(cfg, loop=RateLoop.simulated(hz, SimulatedClock()))
        spent += summary["operator_ticks"]
        episodes += batch
        successes += sum(bool(e["success"]) for e in summary["episodes"])
    return {
        "store": str(store),
        "episodes": episodes,
        "successes_with_takeover": successes,
        "operator_frames": spent,
        "wall_s": time.perf_counter() - t0,
    }


def matched_extra(frames: int, args: argparse.Namespace) -> tuple[Path, int, int]:
    """Whole extra expert demos (seeds 1000 up) holding at least ``frames`` frames: (store, episodes, frames)."""
    pool_path = args.out / "demos" / "extra_pool.zarr"
    demos = DemoStore.open(args.out / "demos" / "demos.zarr")
    per = demos.n_frames / demos.n_episodes
    pool = record(TASKS[args.task], math.ceil(1.5 * frames / per) + 2, pool_path, seed=1000)
    lengths = [pool.episode_range(e)[1] - pool.episode_range(e)[0] for e in range(pool.n_episodes)]
    k, total = 0, 0
    while total < frames and k < len(lengths):
        total += lengths[k]
        k += 1
    out = args.out / "demos" / "extra.zarr"
    if not out.exists():
        copy_episodes(pool, out, list(range(k)), progress=False)
    return out, k, total


def row(name: str, store: Path, args: argparse.Namespace, extra: dict) -> dict:
    ckpt, wall = train_on(store, name, args)
    ev = reported(ckpt, name, args)
    s = DemoStore.open(store)
    return {
        "name": name,
        "store": str(store),
        "episodes_trained": s.n_episodes,
        "frames_trained": s.n_frames,
        "checkpoint": ckpt,
        "train_wall_s": wall,
        "episodes": ev["episodes"],
        "successes": ev["successes"],
        "success_rate": ev["success_rate"],
        "success_ci95": ev["success_ci95"],
        **extra,
    }


def markdown(res: dict) -> str:
    lines = [
        "| training data | episodes | frames | success (reported seeds) | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lo, hi = r["success_ci95"]
        lines.append(
            f"| {r['label']} | {r['episodes_trained']} | {r['frames_trained']:,} | "
            f"{r['success_rate']:.1%} ({r['successes']}/{r['episodes']}) | {lo:.1%}–{hi:.1%} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=list(TASKS), default="insertion")
    ap.add_argument("--demos", type=int, default=50)
    ap.add_argument("--budget", type=int, default=1500, help="corrected frames to collect")
    ap.add_argument("--stall-s", type=float, default=2.0)
    ap.add_argument("--correct-s", type=float, default=2.0)
    ap.add_argument("--max-collect", type=int, default=100, help="most take-over episodes")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--select-episodes", type=int, default=25)
    ap.add_argument("--selections", type=int, default=4)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument(
        "--tag",
        default="",
        help="a suffix for another take-over setting in the same --out: the base and the extra demos are reused",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/takeover"))
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    results = args.out / f"results{args.tag}.json"
    outputs.check_file(results, command="tools/bench_takeover.py", overwrite_flag=None)
    demos = record(TASKS[args.task], args.demos, args.out / "demos" / "demos.zarr", seed=0)
    base = row("base", Path(demos.path), args, {"label": f"{args.demos} demos"})
    got = collect(base["checkpoint"], args)
    fixes_path = args.out / "demos" / f"corrections{args.tag}.zarr"
    fixes = (
        DemoStore.open(fixes_path)
        if fixes_path.exists()
        else filter_store(got["store"], fixes_path, interventions=True, progress=False)
    )
    dagger_path = args.out / "demos" / f"demos_corrections{args.tag}.zarr"
    if not dagger_path.exists():
        merge([demos.path, fixes_path], dagger_path, progress=False)
    extra_path, k, extra_frames = matched_extra(fixes.n_frames, args)
    more_path = args.out / "demos" / "demos_extra.zarr"
    if not more_path.exists():
        merge([demos.path, extra_path], more_path, progress=False)
    rows = [
        base,
        row(
            f"corrections{args.tag}",
            dagger_path,
            args,
            {
                "label": f"{args.demos} demos + {fixes.n_frames} corrected frames ({fixes.n_episodes} stretches)"
            },
        ),
        row(
            "extra_demos",
            more_path,
            args,
            {"label": f"{args.demos} demos + {k} expert demos ({extra_frames} frames)"},
        ),
    ]
    res = {
        "task": args.task,
        "config": f"configs/train/{args.task}_act_state.yaml",
        "stall_s": args.stall_s,
        "correct_s": args.correct_s,
        "budget": args.budget,
        "collection": got,
        "rows": rows,
    }
    outputs.write_json(str(results), res, "tools/bench_takeover.py")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
