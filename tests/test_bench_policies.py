"""The results-table tool: its expert reference rows and the table it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tool_modules import load_tool

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "bench_policies.py"


def test_markdown_pools_training_seeds_and_marks_the_expert():
    tool = load_tool("bench_policies")
    trained = dict(task="pick_place", policy="act", steps=5000, mean_max_coverage=None, episodes=200)
    rows = [
        {**trained, "train_seed": 0, "successes": 190, "success_rate": 0.95, "train_wall_s": 600.0},
        {**trained, "train_seed": 1, "successes": 180, "success_rate": 0.90, "train_wall_s": 720.0},
        dict(task="pick_place", policy="expert", train_seed=None, successes=197, success_rate=0.985,
             episodes=200, mean_max_coverage=None),
    ]  # fmt: skip
    lines = tool.markdown(rows, {"demos": {"pick_place": 50}}).splitlines()
    act, expert = lines[2].split(" | "), lines[3].split(" | ")
    # mean of the seeds' rates, pooled count, pooled Wilson interval, mean wall time
    assert act[1:6] == ["ACT", "50", "5,000", "11.0 min", "2"]
    assert act[6] == "92.5% (370/400)"
    assert act[7] == "89.5%–94.7%"  # Wilson, 370 of 400: 0.8950-0.9470
    assert expert[1:6] == ["scripted expert", "–", "–", "–", "–"]
    assert expert[6] == "98.5% (197/200)"


def test_expert_rows_run_the_demonstrator_on_the_reported_seeds(tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "--policies",
            "expert",
            "--tasks",
            "pick_place",
            "--episodes",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert row["policy"] == "expert" and row["episodes"] == 3
    assert row["successes"] == 3 - len(row["failed_seeds"])
    assert set(row["failed_seeds"]) <= {100_000, 100_001, 100_002}
    # the expert solves these three scenes (its failures on 100000-100199: 100009, 100035, 100160)
    assert row["successes"] == 3 and row["success_rate"] == 1.0
    assert row["mean_length"] > 0
    assert "| imitation/PickPlace-v0 | scripted expert |" in r.stdout
    assert not (out / "demos").exists()  # the expert alone records nothing and trains nothing


def test_a_missing_config_is_one_clear_error(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "--tasks",
            "pick_place",
            "--config-dir",
            str(tmp_path),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: no training config") and len(r.stderr.strip().splitlines()) == 1


def test_a_count_below_one_is_one_clear_error(tmp_path):
    r = subprocess.run(
        [sys.executable, str(TOOL), "--policies", "expert", "--episodes", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --episodes 0: give 1 or more"
    assert not (tmp_path / "results.json").exists()


def test_camera_rows_name_their_configs_stores_and_table_lines(tmp_path):
    import argparse

    bp = load_tool("bench_policies")
    args = argparse.Namespace(obs="images", config_dir=bp.ROOT / "configs" / "train")
    assert (
        bp.config_path(args.config_dir, "pick_place", "act", "images").name
        == "pick_place_act_camera_cpu.yaml"
    )
    assert bp.cameras_of(args, "pick_place", ["act"]) == ("top", "wrist")
    assert bp.row_name("pick_place", "act", 0, "images") == "pick_place_act_camera_s0"
    row = {
        "task": "pick_place",
        "policy": "act",
        "obs": "images",
        "train_seed": 0,
        "steps": 10,
        "train_wall_s": 60.0,
        "successes": 9,
        "episodes": 10,
        "success_rate": 0.9,
        "mean_max_coverage": None,
    }
    table = bp.markdown(
        [row, {**row, "obs": "state", "successes": 10, "success_rate": 1.0}],
        {"demos": {"pick_place": 50, "pick_place_camera": 50}},
    )
    assert "| imitation/PickPlace-v0 | ACT (cameras) | 50 | 10 |" in table and "| ACT | 50 |" in table
    assert "--perturb" not in table  # no row was evaluated so
    moved = {**row, "perturb_successes": 8, "perturb_success_rate": 0.8}
    table = bp.markdown(
        [
            moved,
            {**moved, "train_seed": 1, "perturb_successes": 6, "perturb_success_rate": 0.6},
            {**row, "obs": "state"},
        ],
        {"demos": {"pick_place": 50, "pick_place_camera": 50}},
    )
    lines = table.splitlines()
    assert lines[0].endswith("| under --perturb |") and all(
        line.count("|") == lines[0].count("|") for line in lines
    )
    assert lines[2].endswith("| 70.0% (14/20) |") and lines[3].endswith(
        "| – |"
    )  # pooled; the state row has none


def test_perturb_needs_camera_rows(tmp_path):
    r = subprocess.run(
        [sys.executable, str(TOOL), "--policies", "act", "--perturb", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        r.returncode == 2 and r.stderr.strip().startswith("error: --perturb") and "--obs images" in r.stderr
    )
    assert not (tmp_path / "results.json").exists()


def test_perturb_evaluates_a_measured_row_without_training_it_again(tmp_path, monkeypatch):
    import argparse

    bp = load_tool("bench_policies")
    ckpt = tmp_path / "runs" / "pick_place_act_camera_s0"
    ckpt.mkdir(parents=True)
    row = {"task": "pick_place", "policy": "act", "obs": "images", "train_seed": 0, "checkpoint": str(ckpt)}
    assert bp.existing([row], "pick_place", "act", 0, "images") == row
    assert bp.existing([row], "pick_place", "act", 1, "images") is None
    assert bp.existing([row], "pick_place", "diffusion", 0, "images") is None
    seen = {}

    def fake_evaluate(cfg, progress=True):
        seen["cfg"] = cfg
        return {"successes": 7, "success_rate": 0.7, "wall_s": 1.0}

    import imitation.evaluate

    monkeypatch.setattr(imitation.evaluate, "evaluate", fake_evaluate)
    out = bp.perturbed({**row, "episodes": 10}, argparse.Namespace(out=tmp_path))
    assert seen["cfg"].perturb and seen["cfg"].episodes == 10 and seen["cfg"].checkpoint == str(ckpt)
    assert seen["cfg"].out == str(tmp_path / "eval" / "pick_place_act_camera_s0_perturb")
    assert out["perturb_successes"] == 7 and out["episodes"] == 10
    ckpt.rmdir()
    assert bp.existing([row], "pick_place", "act", 0, "images") is None  # trained again


def test_reevaluate_keeps_training_figures_and_evaluates_on_more_seeds(tmp_path, monkeypatch):
    import argparse

    bp = load_tool("bench_policies")
    ckpt = tmp_path / "runs" / "transfer_cube_act_camera_s0"
    ckpt.mkdir(parents=True)
    row = {
        "task": "transfer_cube",
        "policy": "act",
        "obs": "images",
        "train_seed": 0,
        "checkpoint": str(ckpt),
        "train_wall_s": 1116.0,
        "steps": 5000,
        "episodes": 100,
        "successes": 93,
        "success_rate": 0.93,
        "perturb_successes": 80,
        "perturb_success_rate": 0.8,
    }
    seen = []

    def fake_evaluate(cfg, progress=True):
        seen.append(cfg)
        n = cfg.episodes
        return {
            "checkpoint": cfg.checkpoint,
            "episodes": n,
            "successes": n - 20,
            "success_rate": (n - 20) / n,
            "success_ci95": [0.8, 0.9],
            "mean_length": 300.0,
            "wall_s": 2.0,
        }

    import imitation.evaluate

    monkeypatch.setattr(imitation.evaluate, "evaluate", fake_evaluate)
    out = bp.reevaluated(row, argparse.Namespace(out=tmp_path, episodes=200, perturb=False))
    assert [c.episodes for c in seen] == [200] and not seen[0].perturb and seen[0].seed == 100_000
    assert seen[0].out == str(tmp_path / "eval" / "transfer_cube_act_camera_s0")
    assert out["episodes"] == 200 and out["successes"] == 180 and out["success_rate"] == 0.9
    assert out["train_wall_s"] == 1116.0 and out["steps"] == 5000  # the training figures stay
    assert "perturb_successes" not in out  # measured on 100 seeds: no longer this row's
    out = bp.reevaluated(row, argparse.Namespace(out=tmp_path, episodes=200, perturb=True))
    assert seen[-1].perturb and seen[-1].episodes == 200 and out["perturb_successes"] == 180
