"""Does a policy find the task in its inputs, or in its own path? Its first action, scene by scene.

A policy that reads the arm's state can learn the task from where the arm has already gone: in
demonstrations that start from one pose and head straight for the target, the arm's position a
few ticks in says where the target is. Such a policy predicts the demonstrated action well on the
demos' own frames (a low validation loss) and still fails, because its first move, made before the
path says anything, is the same in every scene. This measures that: over the first ``--episodes``
episodes of a store, the policy's action at frame ``--offset`` of each episode (from that frame's
recorded observation) against the demonstrated one, per action dimension: the spread over the
episodes of each (standard deviation) and their correlation. At frame 0 a policy that finds the
target in its cameras follows the demos (correlation near 1, the same spread); one that copies
its path predicts much the same first action everywhere.

    python tools/bench_first_move.py --checkpoint runs/reach --store demos/reach.zarr --offset 0 5

Prints one table per offset; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def first_moves(policy, store, offset: int, episodes: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(predicted, demonstrated) actions at frame ``offset`` of the first ``episodes`` episodes
    (those long enough), each (E, A): the policy's first action from that frame's observation."""
    import torch

    from imitation.evaluate import policy_keys

    keys = policy_keys(policy)
    starts = np.cumsum([0, *store.episode_lengths])
    pred, demo = [], []
    for e in range(min(episodes, store.n_episodes)):
        if offset >= store.episode_lengths[e]:
            continue
        i = int(starts[e]) + offset
        obs = {k: torch.as_tensor(store.read(k, i, i + 1)) for k in keys}
        policy.reset()
        with torch.no_grad():
            pred.append(policy.select_action(obs).float().cpu().numpy()[0])
        demo.append(store.read("action", i, i + 1)[0])
    return np.asarray(pred, dtype=np.float64), np.asarray(demo, dtype=np.float64)


def agreement(pred: np.ndarray, demo: np.ndarray) -> list[dict]:
    """Per action dimension: the spread (std over episodes) of the predicted and demonstrated
    actions, and their correlation (None where either is constant)."""
    rows = []
    for d in range(demo.shape[1]):
        p, q = pred[:, d], demo[:, d]
        corr = float(np.corrcoef(p, q)[0, 1]) if p.std() > 1e-9 and q.std() > 1e-9 else None
        rows.append({"dim": d, "pred_std": float(p.std()), "demo_std": float(q.std()), "corr": corr})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="run directory or checkpoint")
    ap.add_argument("--store", required=True, help="the demo store (its first episodes are used)")
    ap.add_argument("--offset", type=int, nargs="+", default=[0], help="frame(s) of each episode")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    from imitation.checkpoint import load_policy, resolve
    from imitation.data.store import DemoStore
    from imitation.evaluate import policy_keys

    if min(args.offset) < 0 or args.episodes < 1:
        sys.exit(f"error: --offset must be >= 0 and --episodes >= 1 (got {args.offset}, {args.episodes})")
    from imitation.errors import ImitationError

    try:
        policy = load_policy(resolve(args.checkpoint), "cpu")
        store = DemoStore.open(args.store)
    except ImitationError as e:
        sys.exit(f"error: {e}")
    missing = [k for k in (*policy_keys(policy), "action") if k not in store.features]
    if missing:
        sys.exit(
            f"error: {args.store} lacks {', '.join(missing)}, which the policy reads; pass the store it was trained on"
        )
    names = store.features["action"].names or [str(d) for d in range(store.features["action"].shape[0])]
    out = {}
    for offset in args.offset:
        pred, demo = first_moves(policy, store, offset, args.episodes)
        rows = agreement(pred, demo)
        out[offset] = rows
        print(f"frame {offset} of {len(pred)} episodes: action, spread predicted / demonstrated, correlation")
        for r in rows:
            corr = "—" if r["corr"] is None else f"{r['corr']:.2f}"
            print(f"  {names[r['dim']]:>10}  {r['pred_std']:.3f} / {r['demo_std']:.3f}  {corr}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
