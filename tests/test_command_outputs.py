"""eval, deploy, view and the benchmark tools never replace a file imitation did not write
(``imitation.outputs``): such an output is refused in one line before the work starts, what
imitation wrote is written again on a re-run, and ``--overwrite`` replaces the rest."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from imitation import outputs
from imitation.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes: what "untouched" is checked against."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("INFO ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    return lines[0]


def never(*args, **kwargs):
    raise AssertionError("the long work started before the outputs were checked")


# ------------------------------------------------------------------------------ the marks
def test_marked_files_read_back_as_written(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    png = tmp_path / "a.png"
    outputs.write_png(png, rgb)
    assert outputs.is_marked(png)
    np.testing.assert_array_equal(cv2.imread(str(png))[..., ::-1], rgb)  # still a valid PNG
    plain = tmp_path / "b.png"
    cv2.imwrite(str(plain), rgb)
    assert not outputs.is_marked(plain)

    js = tmp_path / "r.json"
    outputs.write_json(js, {"summary": {"x": 1}}, "eval")
    assert json.loads(js.read_text()) == {"written_by": "imitation eval", "summary": {"x": 1}}
    assert outputs.is_marked(js)
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"summary": 1, "config": 2, "episodes": 3}')
    assert not outputs.is_marked(theirs)
    assert outputs.is_marked(theirs, legacy_keys=("summary", "config", "episodes"))  # written before marks

    from imitation.view import write_video

    mp4 = tmp_path / "v.mp4"
    assert write_video(mp4, iter([rgb] * 3), 10.0) == 3
    assert outputs.is_marked(mp4) and not list(tmp_path.glob(".v.*"))  # no temporary left
    cap = cv2.VideoCapture(str(mp4))
    assert sum(1 for _ in iter(lambda: cap.read()[0], False)) == 3  # players skip the mark
    cap.release()
    link = tmp_path / "link.json"
    link.symlink_to(js)
    assert not outputs.is_marked(link)  # writing there would replace what the link points at


def test_an_output_directory_holds_only_what_imitation_wrote(tmp_path):
    names = ("results.json", "summary.png", "episode_seed*_success.mp4")
    check = lambda path, **kw: outputs.check_dir(path, names, command="imitation eval", **kw)  # noqa: E731
    check(tmp_path / "new")
    d = tmp_path / "d"
    d.mkdir()
    check(d)
    outputs.write_json(d / "results.json", {}, "eval")
    outputs.write_png(d / "summary.png", np.zeros((4, 4, 3), np.uint8))
    (d / "x.partial").write_bytes(b"")  # left by a killed write
    check(d)
    cv2.imwrite(str(d / "summary.png"), np.zeros((4, 4, 3), np.uint8))  # the user's picture, by our name
    with pytest.raises(ConfigError, match=r"holds summary.png, which imitation did not write.*--overwrite"):
        check(d)
    (d / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds notes.txt \(and 1 more\)") as e:
        check(d)
    assert "\n" not in str(e.value) and "another --out" in str(e.value)
    check(d, overwrite=True)
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ConfigError, match="is not a directory"):
        check(tmp_path / "f", overwrite=True)
    # A directory imitation wrote before the mark existed: its results.json's layout says so.
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text('{"summary": {}, "config": {}, "episodes": []}')
    cv2.imwrite(str(old / "summary.png"), np.zeros((4, 4, 3), np.uint8))
    check(old, legacy_keys=("summary", "config", "episodes"))
    with pytest.raises(ConfigError):
        check(old)


# ------------------------------------------------------------------------------ eval
def test_eval_refuses_a_foreign_out_before_loading_the_policy(pick_place_checkpoint, tmp_path, monkeypatch):
    from imitation import checkpoint, evaluate

    out = tmp_path / "ev"
    out.mkdir()
    (out / "results.json").write_text('{"my": "own results"}')
    before = tree(out)
    monkeypatch.setattr(checkpoint, "load_policy", never)
    monkeypatch.setattr(evaluate, "rollout", never)
    cfg = evaluate.EvalConfig(checkpoint=str(pick_place_checkpoint), episodes=1, out=str(out))
    with pytest.raises(ConfigError, match=rf"{out} holds results.json, which imitation did not write"):
        evaluate.evaluate(cfg, progress=False)
    # On an arm too, before the first episode.
    from imitation import deploy

    monkeypatch.setattr(deploy, "deploy", never)
    cfg = evaluate.EvalConfig(checkpoint=str(pick_place_checkpoint), robot="sim", episodes=1, out=str(out))
    with pytest.raises(ConfigError, match="results.json, which imitation did not write"):
        evaluate.evaluate(cfg, progress=False)
    assert tree(out) == before
    # Without --out: eval/<run>, or eval/<run>_<robot> on an arm.
    assert evaluate.output_dir(evaluate.EvalConfig(checkpoint=str(pick_place_checkpoint))) == Path("eval/run")
    on_arm = evaluate.EvalConfig(checkpoint=str(pick_place_checkpoint), robot="sim")
    assert evaluate.output_dir(on_arm) == Path("eval/run_sim")


def test_eval_cli_says_so_in_one_line(pick_place_checkpoint, tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = subprocess.run(
        [sys.executable, "-m", "imitation.cli", "eval", "--checkpoint", str(pick_place_checkpoint),
         "--episodes", "1", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    line = one_line_error(proc)
    assert str(out) in line and "notes.txt" in line and "another --out" in line and "--overwrite" in line
    assert tree(out) == {"notes.txt": b"mine"}


def test_eval_writes_again_where_it_wrote_and_overwrite_keeps_the_rest(pick_place_checkpoint, tmp_path):
    from imitation.evaluate import EvalConfig, evaluate

    out = tmp_path / "ev"
    cfg = EvalConfig(checkpoint=str(pick_place_checkpoint), episodes=1, num_envs=1, videos=1, out=str(out))
    evaluate(cfg, progress=False)
    (video,) = out.glob("episode_seed100000_*.mp4")
    assert all(outputs.is_marked(p) for p in (out / "results.json", out / "summary.png", video))
    cfg.videos = 0
    evaluate(cfg, progress=False)  # a re-run into its own directory
    assert json.loads((out / "results.json").read_text())["written_by"] == "imitation eval"
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        evaluate(cfg, progress=False)
    cfg.overwrite = True
    evaluate(cfg, progress=False)
    assert (out / "notes.txt").read_text() == "mine"  # written into, nothing else touched


# ------------------------------------------------------------------------------ deploy
def test_deploy_out_is_refused_before_the_arm_moves_and_replaced_when_ours(
    pick_place_checkpoint, tmp_path, monkeypatch
):
    from imitation import deploy

    out = tmp_path / "deploy.json"
    out.write_text('{"my": "notes"}')
    args = ["--checkpoint", str(pick_place_checkpoint), "--robot", "sim", "--episode-s", "0.1"]
    args += ["--inference", "inline", "--out", str(out)]
    real = deploy.deploy
    monkeypatch.setattr(deploy, "deploy", never)
    with pytest.raises(ConfigError, match=rf"{out} exists and was not written by imitation.*--overwrite"):
        deploy.main(args)
    assert out.read_text() == '{"my": "notes"}'
    monkeypatch.setattr(deploy, "deploy", real)
    deploy.main([*args, "--overwrite"])
    assert json.loads(out.read_text())["written_by"] == "imitation deploy"
    deploy.main(args)  # its own summary: replaced without --overwrite
    assert json.loads(out.read_text())["episodes"][0]["ticks"] == 5


# ------------------------------------------------------------------------------ view
def test_view_replaces_only_its_own_pictures_and_videos(synthetic_store, tmp_path, monkeypatch):
    from imitation import view

    args = ["--store", str(synthetic_store), "--camera", "top"]
    for name in ("v.mp4", "v.png"):
        out = tmp_path / name
        out.write_bytes(b"the user's own file")
        real = view.frames
        monkeypatch.setattr(view, "frames", never)
        with pytest.raises(ConfigError, match=rf"{out} exists and was not written by imitation.*--overwrite"):
            view.main([*args, "--out", str(out)])
        assert out.read_bytes() == b"the user's own file"
        monkeypatch.setattr(view, "frames", real)
        view.main([*args, "--out", str(out), "--overwrite"])
        assert outputs.is_marked(out)
        view.main([*args, "--out", str(out)])  # its own file: written again
        assert outputs.is_marked(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4", "v.png"]  # no temporaries left


# ------------------------------------------------------------------------------ the benchmark tools
def run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_bench_policies_refuses_results_it_did_not_write_before_running(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "results.json").write_text('{"rows": []}')
    proc = run_tool("bench_policies.py", "--policies", "expert", "--tasks", "pick_place", "--episodes", "1",
                    "--out", str(out))  # fmt: skip
    line = one_line_error(proc)
    assert (
        f"{out / 'results.json'} exists and was not written by imitation" in line
        and "--overwrite" not in line
    )
    assert tree(out) == {"results.json": b'{"rows": []}'}
    (out / "results.json").unlink()
    (out / "eval" / "pick_place_act_s0").mkdir(parents=True)
    (out / "eval" / "pick_place_act_s0" / "notes.txt").write_text("mine")
    proc = run_tool("bench_policies.py", "--policies", "act", "--tasks", "pick_place", "--train-seeds", "0",
                    "--out", str(out))  # fmt: skip
    assert "pick_place_act_s0 holds notes.txt" in one_line_error(proc)
    assert tree(out) == {"eval/pick_place_act_s0/notes.txt": b"mine"}  # nothing recorded or trained


def test_bench_policies_adds_its_rows_to_its_own_results(tmp_path):
    out = tmp_path / "bench"
    earlier = {"task": "push_t", "policy": "expert", "train_seed": None, "successes": 1, "episodes": 1,
               "success_rate": 1.0, "mean_max_coverage": 0.97}  # fmt: skip
    outputs.write_json(
        out / "results.json", {"rows": [earlier], "meta": {"demos": {}}}, "tools/bench_policies.py"
    )
    proc = run_tool("bench_policies.py", "--policies", "expert", "--tasks", "pick_place", "--episodes", "1",
                    "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "results.json").read_text())
    assert data["written_by"] == "imitation tools/bench_policies.py"
    assert [(r["task"], r["policy"]) for r in data["rows"]] == [
        ("push_t", "expert"),
        ("pick_place", "expert"),
    ]


def test_bench_store_json_is_checked_before_the_benchmarks(tmp_path, monkeypatch):
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"machine": "mine"}')
    proc = run_tool("bench_store.py", "codecs", "--json", str(theirs))
    line = one_line_error(proc)
    assert f"{theirs} exists and was not written by imitation" in line and "another --json" in line
    assert theirs.read_text() == '{"machine": "mine"}'
    # Its own file is written again (the benchmark itself stubbed out: minutes of CPU).
    spec = importlib.util.spec_from_file_location("bench_store", ROOT / "tools" / "bench_store.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(tool, "bench_codecs", lambda out: out.update(codecs=[{"codec": "zstd"}]))
    ours = tmp_path / "ours.json"
    for _ in range(2):
        monkeypatch.setattr(sys, "argv", ["bench_store.py", "codecs", "--json", str(ours)])
        assert tool.main() == 0
    data = json.loads(ours.read_text())
    assert data["written_by"] == "imitation tools/bench_store.py" and data["codecs"] == [{"codec": "zstd"}]
