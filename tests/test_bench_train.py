"""The training benchmark: every preset builds from a shipped config, and a ratio beside another
implementation is given only for networks of the same size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tool_modules import load_tool

TOOL = Path(__file__).resolve().parents[1] / "tools" / "bench_train.py"


def test_every_preset_names_a_shipped_config():
    tool = load_tool("bench_train")
    for name, file in tool.PRESETS.items():
        assert (tool.CONFIGS / file).is_file(), name
        policy, cfg, batch = tool.preset(name)
        assert policy in ("act", "diffusion") and batch >= 1 and cfg.obs_keys


def test_a_preset_is_timed_and_no_ratio_is_given_for_different_networks(monkeypatch):
    tool = load_tool("bench_train")
    row = tool.bench("act-state", steps=4, infer_calls=4, lerobot=False)
    assert row["ours"]["params"] > 0 and row["ours"]["step_s"] > 0 and "step_ratio" not in row

    class Bigger(tool.Ours):  # stands in for another implementation with one extra layer
        def __init__(self, policy, cfg, b, device="cpu", amp=False):
            super().__init__(policy, cfg, b, device, amp)
            self.extra = torch.nn.Linear(3, 3)

        def params(self) -> int:
            return super().params() + sum(p.numel() for p in self.extra.parameters())

    monkeypatch.setattr(tool, "Theirs", Bigger)
    row = tool.bench("act-state", steps=4, infer_calls=4, lerobot=True, repeats=2)
    assert row["step_ratio"] is None and "the networks differ" in row["no_ratio"]
    monkeypatch.setattr(
        tool, "Theirs", lambda policy, cfg, b, device="cpu", amp=False: tool.Ours(policy, cfg, b)
    )
    row = tool.bench("act-state", steps=4, infer_calls=4, lerobot=True, repeats=2)
    assert row["step_ratio"] > 0 and len(row["step_ratio_per_repeat"]) == 2


def test_the_parts_of_a_diffusion_camera_step_are_timed_and_other_presets_refused():
    tool = load_tool("bench_train")
    row = tool.parts("dp-camera", steps=1, device="cpu", amp=False, batch=2, horizon=16)
    assert row["horizon"] == 16 and row["cameras"] >= 1 and row["images_per_camera"] == 2 * row["n_obs_steps"]
    for key in ("unet_ms", "crop_per_image_ms", "crop_gather_ms", "encoder_per_camera_ms", "step_ms"):
        assert row[key] > 0, key
    with pytest.raises(SystemExit, match="not a Diffusion Policy preset"):
        tool.parts("act-state", steps=1, device="cpu", amp=False, batch=2, horizon=None)
