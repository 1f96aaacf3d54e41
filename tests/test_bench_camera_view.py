"""tools/bench_camera_view.py: how many pixels a task's target covers in each camera of its env."""

from pathlib import Path

import pytest
from tool_modules import load_tool

tool = load_tool("bench_camera_view")
REACH = str(Path(__file__).resolve().parents[1] / "configs/envs/metaworld/reach.yaml")


def test_the_goal_is_found_in_every_fixed_view_and_its_size_differs_by_camera():
    seeds = [100000, 100001]
    result = tool.measure(REACH, site="goal", geom=None, seeds=seeds, size=(64, 64))
    assert "render (the env's own view)" in result and "gripperPOV" in result
    for cam in ("render (the env's own view)", "corner", "corner2", "corner3", "corner4", "topview"):
        r = result[cam]
        assert r["seen"] == 2 and r["median_pixels"] >= 1, (cam, r)
        assert r["rows"][0] <= r["rows"][1] and r["cols"][0] <= r["cols"][1]
    # Meta-World's render() is its corner2 camera (turned upright): the goal covers as many pixels.
    assert result["render (the env's own view)"]["median_pixels"] == result["corner2"]["median_pixels"]
    # The top view, nearer the table, shows the goal larger than the far corner view.
    assert result["topview"]["median_pixels"] > result["corner2"]["median_pixels"]
    assert "| corner4 | 2/2 |" in tool.table(result, (64, 64))


def test_a_target_the_model_lacks_is_one_clear_error():
    from imitation.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--site nope: no such site .*goal"):
        tool.measure(REACH, site="nope", geom=None, seeds=[100000], size=(32, 32))
