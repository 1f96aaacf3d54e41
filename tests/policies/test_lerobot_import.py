"""`imitation import-checkpoint --from lerobot`: a LeRobot 0.4 ACT or Diffusion Policy, converted,
predicts what LeRobot's own code predicted from the same inputs and the same noise.

The checkpoints, the inputs and LeRobot's predictions were written by LeRobot 0.4.4's own code
(``tools/lerobot_checkpoint_fixture.py``; ``tests/fixtures/lerobot_checkpoints``). Their weights
are committed as a recipe that rebuilds LeRobot's ``model.safetensors`` byte for byte (its SHA-256
is checked), so this runs everywhere, LeRobot installed or not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tool_modules import load_tool

from imitation.checkpoint import load_policy
from imitation.import_checkpoint import main as import_main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot_checkpoints"
fixture = load_tool("lerobot_checkpoint_fixture")


def lerobot_checkpoint(tmp_path: Path, name: str) -> tuple[Path, dict[str, torch.Tensor]]:
    src = tmp_path / name
    shutil.copytree(FIXTURES / name, src)
    assert json.loads((src / "WRITTEN_BY").read_text())["lerobot"] == "0.4.4"
    fixture.rebuild(src)  # LeRobot's model.safetensors, checked by its hash
    io = load_file(str(src / "io.safetensors"))
    (src / "io.safetensors").unlink()
    (src / "WRITTEN_BY").unlink()
    (src / "model.safetensors.recipe.json").unlink()
    return src, io


def our_obs(io: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LeRobot's inputs as ours: pixels were whole numbers / 255, so the uint8 images are exact."""
    obs = {"state": io["input/observation.state"], "env_state": io["input/observation.environment_state"]}
    for cam in ("top", "side"):
        pixels = io[f"input/observation.images.{cam}"]  # (B, T, C, H, W) in [0, 1]
        obs[f"images/{cam}"] = torch.round(pixels * 255).to(torch.uint8).permute(0, 1, 3, 4, 2)
    return obs


def convert(src: Path, out: Path):
    assert import_main(["--from", "lerobot", str(src), "--out", str(out)]) == 0
    return load_policy(out)


def test_act_matches_lerobot(tmp_path: Path) -> None:
    src, io = lerobot_checkpoint(tmp_path, "act")
    ours = convert(src, tmp_path / "ours")
    got = ours.predict_chunk(our_obs(io))
    torch.testing.assert_close(got, io["expected"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["diffusion_shared", "diffusion_per_camera"])
def test_diffusion_matches_lerobot(tmp_path: Path, name: str) -> None:
    src, io = lerobot_checkpoint(tmp_path, name)
    ours = convert(src, tmp_path / "ours")
    gens = [torch.Generator().manual_seed(int(s)) for s in io["noise_seeds"]]
    got = ours.predict_chunk(our_obs(io), gens)[:, 1:5]  # from index n_obs_steps - 1, n_action_steps long
    torch.testing.assert_close(got, io["expected"], atol=1e-4, rtol=1e-4)


def test_a_checkpoint_whose_weights_differ_is_caught(tmp_path: Path) -> None:
    src = tmp_path / "act"
    shutil.copytree(FIXTURES / "act", src)
    recipe = json.loads((src / "model.safetensors.recipe.json").read_text())
    name = next(iter(recipe["tensors"]))
    recipe["tensors"][f"{name}.x"] = recipe["tensors"].pop(name)  # another tensor, other bytes
    (src / "model.safetensors.recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(AssertionError, match="rebuilt bytes differ"):
        fixture.rebuild(src)
