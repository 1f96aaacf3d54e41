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
