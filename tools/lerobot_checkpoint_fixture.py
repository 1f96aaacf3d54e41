"""Write the LeRobot checkpoint fixtures of ``tests/policies/test_lerobot_import.py`` with LeRobot's code.

Runs where LeRobot is installed (0.4.4 made the committed fixtures; see ``tools/lerobot_fixture.py``)::

    python tools/lerobot_checkpoint_fixture.py tests/fixtures/lerobot_checkpoints

For each policy (ACT; Diffusion Policy with one encoder for all cameras and with one per camera):
LeRobot builds it small, its weights are set to random values, LeRobot saves it with its
pre- and post-processors (``save_pretrained``), and LeRobot's own code predicts an action chunk
from random inputs (for diffusion, from given starting noise). Saved: the checkpoint directory as
LeRobot wrote it, and ``io.safetensors`` with the inputs and what LeRobot predicted.

Both policies carry a ResNet-18 (45 MB of weights), too much to commit. Every weight is a function
of its name (``weight_values``: normal values from a generator seeded by the name), so
``model.safetensors`` is committed as ``model.safetensors.recipe.json``: the file's tensor names,
shapes and dtypes, its header metadata and its SHA-256. ``rebuild`` writes the file again from the
recipe and checks the hash, so the tests load exactly the bytes LeRobot wrote.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import zlib
from pathlib import Path
from typing import Any

H = W = 32


def weight_values(name: str, shape: tuple[int, ...]) -> Any:
    """The value of the weight ``name``: normal(0, 0.1) values from a generator seeded by the name;
    batch-norm running variances are uniform in [0.5, 1.5) (a variance must be positive)."""
    import torch

    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if name.endswith("running_var"):
        return torch.rand(shape, generator=g) + 0.5
    return torch.randn(shape, generator=g) * 0.1


def rebuild(folder: Path) -> Path:
    """Write ``model.safetensors`` in ``folder`` from its recipe; refuse bytes that differ from
    what LeRobot wrote."""
    import torch
    from safetensors.torch import save_file

    recipe = json.loads((folder / "model.safetensors.recipe.json").read_text())
    tensors = {
        name: torch.tensor(t["values"], dtype=getattr(torch, t["dtype"].removeprefix("torch.")))
        if "values" in t
        else weight_values(name, tuple(t["shape"]))
        for name, t in recipe["tensors"].items()
    }
    path = folder / "model.safetensors"
    save_file(tensors, str(path), metadata=recipe["metadata"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != recipe["sha256"]:
        path.unlink()
        raise AssertionError(f"{path}: rebuilt bytes differ from LeRobot's ({digest} != {recipe['sha256']})")
    return path


def _recipe(folder: Path) -> None:
    """Replace ``model.safetensors`` by its recipe, after checking that the recipe rebuilds it."""
    from safetensors import safe_open

    path = folder / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        tensors = {}
        for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
            t = f.get_tensor(name)
            tensors[name] = {"shape": list(t.shape), "dtype": str(t.dtype)}
            if not t.equal(weight_values(name, tuple(t.shape)).to(t.dtype)):
                tensors[name]["values"] = t.tolist()  # a fixed buffer (a coordinate grid, a counter)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    recipe = {"sha256": digest, "metadata": metadata, "tensors": tensors}
    (folder / "model.safetensors.recipe.json").write_text(json.dumps(recipe, indent=1))
    original = path.read_bytes()
    path.unlink()
    rebuild(folder)
    assert (folder / "model.safetensors").read_bytes() == original
    (folder / "model.safetensors").unlink()


def _set_weights(policy: Any) -> None:
    """Every parameter and batch-norm running statistic from ``weight_values``, so nothing is
    trivially zero; other buffers (a spatial softmax's coordinate grid) keep their values."""
    import torch

    with torch.no_grad():
        for name, t in list(policy.state_dict(keep_vars=True).items()):
            if isinstance(t, torch.nn.Parameter) or "running" in name:
                t.copy_(weight_values(name, tuple(t.shape)).to(t.dtype))


def _features(env: bool = True) -> tuple[dict, dict]:
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {
        "observation.state": PolicyFeature(FeatureType.STATE, (4,)),
        "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, H, W)),
        "observation.images.side": PolicyFeature(FeatureType.VISUAL, (3, H, W)),
    }
    if env:
        inputs["observation.environment_state"] = PolicyFeature(FeatureType.ENV, (3,))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (4,))}


def _stats(g: Any) -> dict:
    import torch

    def vec(n: int, lo: float = 0.0) -> Any:
        return torch.rand(n, generator=g) + lo

    def lowdim(n: int) -> dict:
        return {"mean": vec(n), "std": vec(n, 0.5), "min": -vec(n, 1.0), "max": vec(n, 1.0)}

    image = {"mean": vec(3).view(3, 1, 1), "std": vec(3, 0.2).view(3, 1, 1)}
    return {"observation.state": lowdim(4), "observation.environment_state": lowdim(3), "action": lowdim(4),
            "observation.images.top": dict(image), "observation.images.side": {k: v.clone() for k, v in image.items()}}  # fmt: skip


def _inputs(g: Any, batch: int, steps: int) -> dict:
    """Pixels are whole numbers / 255 (LeRobot's float images are then exactly our uint8 ones)."""
    import torch

    out = {
        "observation.state": torch.randn(batch, steps, 4, generator=g),
        "observation.environment_state": torch.randn(batch, steps, 3, generator=g),
    }
    for cam in ("top", "side"):
        out[f"observation.images.{cam}"] = (
            torch.randint(0, 256, (batch, steps, 3, H, W), generator=g).float() / 255
        )
    return out


def make_act(out: Path) -> None:
    import torch
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    inputs, outputs = _features()
    cfg = ACTConfig(input_features=inputs, output_features=outputs, chunk_size=10, n_action_steps=10, dim_model=32,
                    n_heads=4, dim_feedforward=64, n_encoder_layers=2, n_decoder_layers=2, n_vae_encoder_layers=2,
                    pretrained_backbone_weights=None, device="cpu")  # fmt: skip
    policy = ACTPolicy(cfg)
    _set_weights(policy)
    policy.eval()
    pre, post = make_pre_post_processors(cfg, dataset_stats=_stats(g))
    for part in (policy, pre, post):
        part.save_pretrained(out)
    obs = _inputs(g, 3, 1)
    with torch.no_grad():
        expected = post(policy.predict_action_chunk(pre({k: v[:, 0] for k, v in obs.items()})))
    save_file({**{f"input/{k}": v.contiguous() for k, v in obs.items()}, "expected": expected.contiguous()},
              str(out / "io.safetensors"))  # fmt: skip
    _recipe(out)


def make_diffusion(out: Path, separate: bool) -> None:
    import torch
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1)
    inputs, outputs = _features()
    cfg = DiffusionConfig(input_features=inputs, output_features=outputs, n_obs_steps=2, horizon=8, n_action_steps=4,
                          down_dims=(16, 32), diffusion_step_embed_dim=16, crop_shape=(28, 28),
                          spatial_softmax_num_keypoints=8, use_separate_rgb_encoder_per_camera=separate,
                          noise_scheduler_type="DDIM", num_inference_steps=5, pretrained_backbone_weights=None,
                          device="cpu")  # fmt: skip
    policy = DiffusionPolicy(cfg)
    _set_weights(policy)
    policy.eval()
    pre, post = make_pre_post_processors(cfg, dataset_stats=_stats(g))
    for part in (policy, pre, post):
        part.save_pretrained(out)
    obs = _inputs(g, 2, 2)
    batch = pre(dict(obs))
    batch["observation.images"] = torch.stack([batch[k] for k in cfg.image_features], dim=-4)
    seeds = [5, 6]  # each sample's starting noise: torch.randn(1, horizon, action_dim) from this seed
    noise = torch.cat([torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.no_grad():
        expected = post(policy.diffusion.generate_actions(batch, noise=noise))
    save_file({**{f"input/{k}": v.contiguous() for k, v in obs.items()}, "expected": expected.contiguous(),
               "noise_seeds": torch.tensor(seeds)}, str(out / "io.safetensors"))  # fmt: skip
    _recipe(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    import lerobot

    for name, make in (("act", make_act), ("diffusion_shared", lambda p: make_diffusion(p, False)),
                       ("diffusion_per_camera", lambda p: make_diffusion(p, True))):  # fmt: skip
        folder = args.out / name
        if folder.exists():
            shutil.rmtree(folder)
        make(folder)
        (folder / "WRITTEN_BY").write_text(json.dumps({"lerobot": lerobot.__version__,
                                                       "tool": "tools/lerobot_checkpoint_fixture.py"}) + "\n")  # fmt: skip
        print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
