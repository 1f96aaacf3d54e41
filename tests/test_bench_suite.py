"""tools/bench_suite.py: the suite's mappings with other cameras (--camera)."""

from pathlib import Path

import pytest
from tool_modules import load_tool

from envs.mapping import EnvMapping

tool = load_tool("bench_suite")


def test_camera_changes_replace_add_and_drop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool, "MAPPINGS", tool.MAPPINGS)
    # The suite's earlier view: the far render() and the wrist camera. Reach's mapping has a top
    # camera to drop; push's has none, and is left as it is there.
    changes = ["corner=render", "top=", "wrist=camera:gripperPOV"]
    tool.derive_mappings(["reach-v3", "push-v3"], changes, tmp_path / "m")
    assert (tmp_path / "m").resolve() == tool.MAPPINGS
    for task in ("reach", "push"):
        m = EnvMapping.load(tmp_path / "m" / f"{task}.yaml")
        assert m.images == {
            "corner": {"from": "render", "size": [96, 96]},
            "wrist": {"from": "camera:gripperPOV", "size": [96, 96]},
        }
        assert m.env_kwargs == {"task": f"{task}-v3"}  # the rest of the mapping kept
    assert tool.mapping("reach-v3") == str((tmp_path / "m" / "reach.yaml").resolve())


def test_bad_camera_changes_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool, "MAPPINGS", tool.MAPPINGS)
    with pytest.raises(ValueError, match="expected NAME=SOURCE"):
        tool.derive_mappings(["reach-v3"], ["corner"], tmp_path)
    with pytest.raises(ValueError, match="no camera 'side' to drop in .*reach.yaml, .*push.yaml"):
        tool.derive_mappings(["reach-v3", "push-v3"], ["side="], tmp_path)


def test_bad_train_args_are_refused_before_anything_runs(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    ran = []
    monkeypatch.setattr(tool, "run_task", lambda *a: ran.append(a))
    for bad, said in [
        ("--batch-size '32", "--train-arg: No closing quotation"),
        ("--seed 3", "--train-arg --seed: the suite sets it; use --train-seed"),
        ("--out=x --store y", "--train-arg --out --store: the suite sets it; use --out"),
    ]:
        monkeypatch.setattr("sys.argv", ["bench_suite.py", "--tasks", "reach-v3", f"--train-arg={bad}"])
        with pytest.raises(SystemExit) as exc:
            tool.main()
        assert exc.value.code == 2 and said in capsys.readouterr().err
    assert ran == []


def test_a_failed_command_stops_the_suite_in_one_line_and_keeps_earlier_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import json
    import subprocess

    def run_task(task, policy, args):
        if policy == "act":
            raise subprocess.CalledProcessError(2, [tool.sys.executable, "-m", "imitation.cli", "train"])
        return {"task": task, "policy": policy, "episodes": 1, "successes": 1}

    monkeypatch.setattr(tool, "run_task", run_task)
    monkeypatch.setattr(tool, "markdown", lambda rows: "")
    argv = ["bench_suite.py", "--tasks", "reach-v3", "--policies", "expert", "act", "--out", str(tmp_path)]
    monkeypatch.setattr("sys.argv", argv)
    assert tool.main() == 1
    assert "bench_suite: reach-v3 act: `imitation train` failed (exit 2)" in capsys.readouterr().err
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["task"], r["policy"]) for r in rows] == [("reach-v3", "expert")]
