"""tools/bench_first_move.py: a policy's first action against the demonstrated one, scene by scene."""

import numpy as np
import pytest
from tool_modules import load_tool

tool = load_tool("bench_first_move")


def test_agreement_reads_spread_and_correlation():
    rng = np.random.default_rng(0)
    demo = np.stack([rng.normal(size=30), np.full(30, 0.5), rng.normal(size=30)], axis=1)
    same_everywhere = np.tile(demo.mean(0), (30, 1))  # a policy that ignores the scene
    rows = tool.agreement(demo, demo)
    assert [r["corr"] for r in rows] == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert rows[0]["pred_std"] == pytest.approx(rows[0]["demo_std"])
    flat = tool.agreement(same_everywhere + 1e-3 * rng.normal(size=demo.shape), demo)
    assert flat[0]["pred_std"] < 0.01 * flat[0]["demo_std"] and abs(flat[0]["corr"]) < 0.5


def test_first_moves_pairs_each_episode_frame_with_its_demonstrated_action(pick_place_checkpoint):
    from imitation.checkpoint import load_policy, read_meta, resolve
    from imitation.data.store import DemoStore

    ckpt = resolve(pick_place_checkpoint)
    store = DemoStore.open(read_meta(ckpt)["dataset"]["path"])
    pred, demo = tool.first_moves(load_policy(ckpt, "cpu"), store, 3, 5)
    assert pred.shape == demo.shape == (2, store.features["action"].shape[0])
    starts = np.cumsum([0, *store.episode_lengths])
    for e in range(2):
        i = int(starts[e]) + 3
        assert np.array_equal(demo[e], store.read("action", i, i + 1)[0])
    assert np.isfinite(pred).all()
    # An offset past an episode's end leaves that episode out.
    longest = max(store.episode_lengths)
    assert tool.first_moves(load_policy(ckpt, "cpu"), store, longest, 5)[0].shape[0] == 0
