"""The ``imitation`` command as a user runs it: real subprocesses, real stores, bad input too."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr

from imitation.data.store import DemoStore, EpisodeWriter


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "imitation.cli", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"imitation {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="module")
def quick_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "quick.zarr"
    proc = run(
        "quickstart",
        "--fast",
        "--out",
        str(out),
        "--run",
        str(out.parent / "run"),
        "--eval-out",
        str(out.parent / "ev"),
    )
    assert "OK" in proc.stdout and "trained 10 steps" in proc.stdout
    assert (out.parent / "run" / "checkpoints" / "last").is_file()
    assert "success" in proc.stdout and "95% CI" in proc.stdout
    results = json.loads((out.parent / "ev" / "results.json").read_text())
    assert len(results["episodes"]) == 4 and (out.parent / "ev" / "summary.png").is_file()
    assert len(list((out.parent / "ev").glob("episode_seed*.mp4"))) == 2
    from imitation import config
    from imitation.quickstart import QuickstartConfig

    saved = config.load_yaml(QuickstartConfig, out.with_suffix(".yaml"))  # the resolved config is kept
    assert saved.fast and saved.out == out
    return out


def test_help_lists_commands_without_importing_them():
    code = "import sys; from imitation.cli import main; main(['--help']); print(sorted(m for m in sys.modules if m.startswith(('torch', 'zarr', 'tyro'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "quickstart" in out and "data" in out
    assert out.strip().endswith("[]")  # nothing heavy imported for --help


def test_info_and_validate_on_the_quickstart_store(quick_store):
    text = run("data", "info", str(quick_store), "--episodes").stdout
    assert "episodes   4" in text and "images/top" in text and "files per hour" in text
    d = json.loads(run("data", "info", str(quick_store), "--json").stdout)
    assert d["episodes"] == 4 and d["features"]["images/top"]["codec"]["name"] == "zstd"
    assert d["stats"]["state"]["count"] == d["frames"]  # quickstart cached the statistics
    assert run("data", "validate", str(quick_store)).stdout.strip().endswith("OK (0 error(s), 0 warning(s))")


def test_bad_input_gives_one_clear_line_and_nonzero_exit(tmp_path):
    proc = run("data", "info", str(tmp_path / "nope.zarr"), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: STORE ") and "no demo store there" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run("data", "merge", str(tmp_path / "a.zarr"), "--out", str(tmp_path / "b.zarr"), check=False)
    assert proc.returncode == 2 and "at least two stores" in proc.stderr
    proc = run("frobnicate", check=False)
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr


def test_validate_finds_damage(quick_store, tmp_path):
    import shutil

    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(quick_store, damaged)
    shard = next((damaged / "data" / "images" / "top" / "c").rglob("0"))
    while shard.is_dir():
        shard = next(shard.iterdir())
    shard.write_bytes(shard.read_bytes()[:-7] + b"garbage")
    proc = run("data", "validate", str(damaged), check=False)
    assert proc.returncode == 1 and "FAILED" in proc.stdout and "images/top" in proc.stdout


def test_repair_drops_the_tail_of_a_killed_recording(tmp_path):
    path = tmp_path / "killed.zarr"
    features = {
        "state": {"shape": [2], "dtype": "float32", "kind": "state"},
        "action": {"shape": [2], "dtype": "float32", "kind": "action"},
    }
    with EpisodeWriter(path, features=features, fps=10) as w:
        w.start_episode()
        for i in range(5):
            w.add_frame({"state": np.ones(2), "action": np.ones(2), "timestamp": i / 10})
        w.save_episode()
    # What a killed recorder leaves: frames past the last committed end.
    arr = zarr.open_group(path, mode="r+")["data/state"]
    arr.resize((9, 2))
    proc = run("data", "validate", str(path))
    assert "uncommitted frame(s)" in proc.stdout and "OK" in proc.stdout
    assert "FAILED" in run("data", "validate", str(path), "--strict", check=False).stdout
    out = run("data", "repair", str(path)).stdout
    assert "dropped an uncommitted tail of 4 frame(s)" in out and "statistics: computed" in out
    assert run("data", "validate", str(path), "--strict").returncode == 0
    assert DemoStore.open(path).n_frames == 5


def test_edit_commands_round_trip(quick_store, tmp_path):
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    run("data", "split", str(quick_store), str(a), str(b), "--ids", "0", "2")
    assert DemoStore.open(a).n_episodes == 2 and DemoStore.open(b).n_episodes == 2
    merged = tmp_path / "m.zarr"
    run("data", "merge", str(a), str(b), "--out", str(merged))
    assert DemoStore.open(merged).n_episodes == 4
    run("data", "delete", str(merged), "--ids", "1")
    assert DemoStore.open(merged).n_episodes == 3
    kept = tmp_path / "f.zarr"
    run("data", "filter", str(merged), str(kept), "--outcome", "success", "--min-length", "1")
    assert DemoStore.open(kept).n_episodes == 3
    exported = tmp_path / "dp.zarr"
    run("data", "export", "diffusion_policy", str(kept), str(exported))
    back = tmp_path / "back.zarr"
    run("data", "import", "diffusion_policy", str(exported), str(back))
    np.testing.assert_array_equal(DemoStore.open(back).read("action"), DemoStore.open(kept).read("action"))


def test_record_and_view_from_the_command_line(tmp_path):
    out = tmp_path / "pp.zarr"
    proc = run("record", "--episodes", "2", "--obs-mode", "state", "--out", str(out))
    assert "recorded 2 episode(s)" in proc.stdout
    assert DemoStore.open(out).n_episodes == 2 and out.with_suffix(".yaml").is_file()
    proc = run(
        "view",
        "--store",
        str(out),
        "--episodes",
        "1",
        "--camera",
        "top",
        "--size",
        "48",
        "64",
        "--out",
        str(tmp_path / "v.mp4"),
    )
    assert "frame(s)" in proc.stdout and (tmp_path / "v.mp4").stat().st_size > 0
    proc = run("record", "--env", "imitation/Nope-v0", "--out", str(tmp_path / "x.zarr"), check=False)
    assert proc.returncode == 2 and "unknown simulated task 'imitation/Nope-v0'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_quickstart_with_diffusion_policy(tmp_path):
    out = tmp_path / "q.zarr"
    proc = run(
        "quickstart", "--fast", "--policy", "diffusion", "--out", str(out),
        "--run", str(tmp_path / "run"), "--eval-out", str(tmp_path / "ev"),
    )  # fmt: skip
    assert "pick_place_diffusion_state.yaml" in proc.stdout and "95% CI" in proc.stdout
    meta = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert len(meta["episodes"]) == 4
    from imitation.checkpoint import read_meta, resolve

    assert read_meta(resolve(str(tmp_path / "run")))["policy"] == "diffusion"


@pytest.mark.parametrize("policy", ["act", "diffusion"])
def test_quickstart_with_cameras_trains_and_evaluates_a_policy_that_sees_no_object_state(tmp_path, policy):
    out = tmp_path / "q.zarr"
    proc = run(
        "quickstart", "--fast", "--obs", "images", "--policy", policy, "--out", str(out),
        "--run", str(tmp_path / "run"), "--eval-out", str(tmp_path / "ev"),
    )  # fmt: skip
    assert f"pick_place_{policy}_camera_cpu.yaml" in proc.stdout and "95% CI" in proc.stdout
    assert "camera images the policy received" in proc.stdout
    store = DemoStore.open(out)
    assert {"images/top", "images/wrist"} <= set(store.features) and "images/front" not in store.features
    from safetensors.torch import load_file

    from imitation.checkpoint import read_meta, resolve

    ckpt = resolve(str(tmp_path / "run"))
    meta = read_meta(ckpt)
    assert meta["policy"] == policy
    assert meta["robot"]["consumes"] == ["state", "images/top", "images/wrist"]
    assert not meta["robot"]["needs_env_state"]
    assert meta["robot"]["camera_fit"]["images/top"] == {"size": [96, 96], "fit": "center_crop_resize"}
    assert not [
        k for k in load_file(str(ckpt / "model.safetensors")) if "env_state" in k
    ]  # nor its statistics
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert len(results["episodes"]) == 4 and results["summary"]["videos"]
    import cv2

    video = cv2.VideoCapture(results["summary"]["videos"][0])
    assert video.get(cv2.CAP_PROP_FRAME_WIDTH) > 320  # the scene and, beside it, what the policy saw


def test_quickstart_refuses_an_unknown_task(tmp_path):
    proc = run("quickstart", "--fast", "--env", "Nope-v0", "--out", str(tmp_path / "q.zarr"), check=False)
    assert proc.returncode == 2 and "Nope-v0" in proc.stderr and not (tmp_path / "q.zarr").exists()
