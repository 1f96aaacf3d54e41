"""Training and inference speed of ACT and Diffusion Policy, optionally beside LeRobot's.

    python tools/bench_train.py [--presets act-state dp-state act-image dp-image] [--steps 20]
    python tools/bench_train.py --lerobot    # in an environment where lerobot 0.4.4 is installed
    python tools/bench_train.py --device cuda    # on a GPU: bf16 autocast, the paper-scale DP UNet
    python tools/bench_train.py --device cuda --lerobot --compile max-autotune-no-cudagraphs
    python tools/bench_train.py --presets dp-camera --parts --horizon 52    # where a step goes

A training step is forward + backward + AdamW on one batch already in memory, so the figure is
the model's, not the data loader's; it runs under bf16 autocast where ``imitation train`` does (a
GPU; camera policies on a CPU with AMX; ``--no-amp``: fp32). Inference latency is one ``select_action`` call at
batch 1 that has to predict (ACT with temporal ensembling predicts every call; Diffusion Policy
is reset before each call so that each one runs the whole denoising loop).

With ``--lerobot`` the same presets are built in LeRobot 0.4.4 with the same sizes, batch and
inputs, in the same process on the same torch and device (both under bf16 autocast on a GPU); a
ratio is reported only where both networks have the same parameter count. Steps are timed in alternating blocks so both
see the same machine state. LeRobot's policies take inputs normalised by its processors, so
they get normalised tensors; ours normalise inside (a few element-wise operations, included in
our time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imitation.config import from_dict  # noqa: E402
from imitation.errors import ConfigError  # noqa: E402
from imitation.policies import ACTConfig, ACTPolicy, DiffusionConfig, DiffusionPolicy  # noqa: E402
from imitation.policies.common import Draws, IOSpec, draw_seed  # noqa: E402
from imitation.train import make_optimizer, use_bf16  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
STATE_DIM, ENV_DIM, ACTION_DIM, IMAGE = 6, 12, 6, (96, 96, 3)  # PickPlace's sizes, 96x96 camera


# Preset name -> the shipped config it builds. The paper-scale image configs serve every task;
# the state configs are PickPlace's; the camera configs are the CPU camera recipes (a network
# LeRobot cannot build, so they are timed on our side only).
PRESETS = {
    "act-state": "pick_place_act_state.yaml",
    "dp-state": "pick_place_diffusion_state.yaml",
    "act-image": "act_image.yaml",
    "dp-image": "diffusion_image.yaml",
    "act-camera": "pick_place_act_camera_cpu.yaml",
    "dp-camera": "pick_place_diffusion_camera_cpu.yaml",
}


def preset(name: str, gpu: bool = False) -> tuple[str, object, int]:
    """(policy, config, batch) of a preset: its shipped config (on CPU, a smaller DP image UNet
    and batch)."""
    data = yaml.safe_load((CONFIGS / PRESETS[name]).read_text())
    policy = data["policy"]
    cfg = dict(data[policy])
    batch = data["batch_size"]
    if name == "dp-image" and not gpu:
        # The paper's 2048-wide UNet at batch 64 takes minutes per step on 2 CPU cores.
        cfg |= {"down_dims": [256, 512, 1024]}
        batch = 16
    if policy == "diffusion":
        cfg |= {"scheduler": "ddim", "num_inference_steps": 10}
    cls = ACTConfig if policy == "act" else DiffusionConfig
    return policy, from_dict(cls, cfg), batch


def io_of(cfg) -> IOSpec:
    lowdim = {
        k: {"state": STATE_DIM, "env_state": ENV_DIM}[k] for k in cfg.obs_keys if not k.startswith("images/")
    }
    images = {k: IMAGE for k in cfg.obs_keys if k.startswith("images/")}
    return IOSpec(lowdim, images, ACTION_DIM)


def make_batch(cfg, io: IOSpec, b: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    to, ta = len(cfg.obs_offsets), len(cfg.action_offsets)
    batch = {k: torch.randn(b, to, n, generator=g) for k, n in io.lowdim.items()}
    for k, (h, w, c) in io.images.items():
        batch[k] = torch.randint(0, 256, (b, to, h, w, c), generator=g, dtype=torch.uint8)
    batch["action"] = torch.randn(b, ta, io.action_dim, generator=g)
    batch["action_is_pad"] = torch.zeros(b, ta, dtype=torch.bool)
    batch["draw_seed"] = torch.tensor([draw_seed(0, 0, i) for i in range(b)])
    return batch


# ------------------------------------------------------------------------------ ours
class Ours:
    def __init__(
        self,
        policy: str,
        cfg,
        b: int,
        device: str = "cpu",
        amp: bool = False,
        compile_mode: str | None = None,
    ) -> None:
        torch.manual_seed(0)
        self.io = io_of(cfg)
        self.policy = (ACTPolicy if policy == "act" else DiffusionPolicy)(cfg, self.io).to(device)
        self.bf16 = use_bf16(amp, torch.device(device), bool(self.io.images))
        if self.io.images and (device.startswith("cuda") or self.bf16):
            self.policy.to(memory_format=torch.channels_last)  # as imitation train does
        # What imitation train --compile does: the loss computation compiled, the optimiser not.
        self.step_model = torch.compile(self.policy, mode=compile_mode) if compile_mode else self.policy
        batch = make_batch(cfg, self.io, b, torch.Generator().manual_seed(0))
        self.batch = {k: v.to(device) for k, v in batch.items()}
        self.opt = make_optimizer(self.policy, cfg)  # what imitation train uses
        self.obs1 = {k: v[:1, -1] for k, v in self.batch.items() if k in cfg.obs_keys}
        # What imitation train does: bf16 autocast around the forward pass where it is native.
        self.autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=self.bf16)

    def params(self) -> int:
        return sum(p.numel() for p in self.policy.parameters())

    def train_step(self) -> None:
        self.policy.train()
        with self.autocast:
            loss, _ = self.step_model(self.batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def infer(self) -> None:
        self.policy.eval()
        if isinstance(self.policy, DiffusionPolicy):
            self.policy.reset()
        self.policy.select_action(self.obs1)

    def graphs(self, enabled: bool) -> None:
        """Inference from CUDA graphs (as eval and deploy run it on a GPU), or eagerly."""
        self.policy.use_cuda_graphs(enabled)


# ------------------------------------------------------------------------------ LeRobot's
def stub_video_stack() -> None:
    """Stand a stub in for PyAV where it is not installed (tools/gpu_wheels.sh leaves it out):
    LeRobot's package imports its video decoding at import time, but its models never use it."""
    try:
        import av  # noqa: F401
    except ImportError:
        import importlib.machinery
        import types

        stub = types.ModuleType("av")
        stub.__spec__ = importlib.machinery.ModuleSpec("av", None)
        stub.__version__ = "0"
        stub.logging = types.SimpleNamespace(
            set_level=lambda *a, **k: None, ERROR=0, WARNING=0, INFO=0, DEBUG=0
        )
        sys.modules["av"] = stub


class Theirs:
    def __init__(self, policy: str, cfg, b: int, device: str = "cpu", amp: bool = False) -> None:
        stub_video_stack()
        from lerobot.configs.types import FeatureType, PolicyFeature

        torch.manual_seed(0)
        io = io_of(cfg)
        names = {"state": "observation.state", "env_state": "observation.environment_state"}
        types = {"state": FeatureType.STATE, "env_state": FeatureType.ENV}
        inputs = {names[k]: PolicyFeature(types[k], (n,)) for k, n in io.lowdim.items()}
        for k, (h, w, c) in io.images.items():
            inputs[f"observation.images.{k.split('/')[1]}"] = PolicyFeature(FeatureType.VISUAL, (c, h, w))
        outputs = {"action": PolicyFeature(FeatureType.ACTION, (io.action_dim,))}
        if policy == "act":
            from lerobot.policies.act.configuration_act import ACTConfig as LRConfig
            from lerobot.policies.act.modeling_act import ACTPolicy as LRPolicy

            lr_cfg = LRConfig(
                input_features=inputs,
                output_features=outputs,
                chunk_size=cfg.chunk_size,
                n_action_steps=cfg.n_action_steps if cfg.temporal_ensemble_coeff is None else 1,
                temporal_ensemble_coeff=cfg.temporal_ensemble_coeff,
                dim_model=cfg.dim_model,
                n_heads=cfg.n_heads,
                dim_feedforward=cfg.dim_feedforward,
                n_encoder_layers=cfg.n_encoder_layers,
                n_decoder_layers=cfg.n_decoder_layers,
                n_vae_encoder_layers=cfg.n_vae_encoder_layers,
                use_vae=cfg.use_vae,
                latent_dim=cfg.latent_dim,
                dropout=cfg.dropout,
                kl_weight=cfg.kl_weight,
                pretrained_backbone_weights=None,
                device=device,
            )
        else:
            from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig as LRConfig
            from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy as LRPolicy

            lr_cfg = LRConfig(
                input_features=inputs,
                output_features=outputs,
                n_obs_steps=cfg.n_obs_steps,
                horizon=cfg.horizon,
                n_action_steps=cfg.n_action_steps,
                down_dims=tuple(cfg.down_dims),
                kernel_size=cfg.kernel_size,
                n_groups=cfg.n_groups,
                diffusion_step_embed_dim=cfg.diffusion_step_embed_dim,
                crop_shape=tuple(cfg.crop_shape) if cfg.crop_shape else None,
                spatial_softmax_num_keypoints=cfg.n_keypoints,
                use_separate_rgb_encoder_per_camera=not cfg.shared_encoder,
                noise_scheduler_type=cfg.scheduler.upper(),
                prediction_type=cfg.prediction_type,
                num_inference_steps=cfg.num_inference_steps,
                pretrained_backbone_weights=None,
                use_group_norm=True,
                device=device,
            )
        self.policy = LRPolicy(lr_cfg).to(device)
        self.kind = policy
        ours = make_batch(cfg, io, b, torch.Generator().manual_seed(0))
        batch: dict[str, torch.Tensor] = {}
        for k in io.lowdim:
            v = ours[k]
            batch[names[k]] = v[:, -1] if policy == "act" else v  # ACT: (B, n); DP: (B, To, n)
        for k in io.images:
            v = ours[k].movedim(-1, -3).float() / 255.0
            batch[f"observation.images.{k.split('/')[1]}"] = v[:, -1] if policy == "act" else v
        batch["action"], batch["action_is_pad"] = ours["action"], ours["action_is_pad"]
        self.batch = batch = {k: v.to(device) for k, v in batch.items()}
        self.autocast = torch.autocast(
            torch.device(device).type,
            dtype=torch.bfloat16,
            enabled=use_bf16(amp, torch.device(device), bool(io.images)),
        )
        # What LeRobot's trainer builds from its AdamWConfig: torch's AdamW with default kernels.
        self.opt = torch.optim.AdamW(self.policy.get_optim_params(), lr=1e-4)
        self.obs1 = {
            k: v[:1] if policy == "act" else v[:1, -1]
            for k, v in batch.items()
            if k.startswith("observation")
        }

    def params(self) -> int:
        return sum(p.numel() for p in self.policy.parameters())

    def train_step(self) -> None:
        self.policy.train()
        with self.autocast:
            loss, _ = self.policy.forward(self.batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def infer(self) -> None:
        self.policy.eval()
        self.policy.reset()
        self.policy.select_action(self.obs1)


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return out


def bench(
    name: str,
    steps: int,
    infer_calls: int,
    lerobot: bool,
    device: str = "cpu",
    amp: bool = True,
    repeats: int = 1,
    compile_mode: str | None = None,
    batch: int | None = None,
) -> dict:
    """One preset: each side's step time and select_action latency, and (``lerobot``) the ratio
    of the step times, measured ``repeats`` times over (each repeat alternates the sides in four
    blocks) so that the spread shows. No ratio is given when the two networks differ in size.

    The first training steps (compilation, cuDNN's algorithm search) are timed apart as
    ``first_steps_s``. On a GPU our select_action is timed from CUDA graphs and eagerly."""
    gpu = device.startswith("cuda")
    policy, cfg, b = preset(name, gpu)
    b = batch or b
    sides = {"ours": Ours(policy, cfg, b, device, amp, compile_mode)}
    if lerobot:
        sides["lerobot"] = Theirs(policy, cfg, b, device, amp)
    first: dict[str, float] = {}
    for k, s in sides.items():  # warm-up: compilation and autotuning happen here
        first[k] = sum(timed(s.train_step, 3))
        s.infer()
    train_s: dict[str, list[list[float]]] = {k: [] for k in sides}
    block = max(1, steps // 4)
    for _ in range(repeats):
        times: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(4):  # alternate blocks
            for k, s in sides.items():
                times[k] += timed(s.train_step, block)
        for k in sides:
            train_s[k].append(times[k])
    infer_s: dict[str, list[float]] = {k: [] for k in sides}
    eager_s: list[float] = []
    if gpu:
        sides["ours"].graphs(True)
        sides["ours"].infer()  # capture
    for _ in range(4):
        for k, s in sides.items():
            infer_s[k] += timed(s.infer, max(1, infer_calls // 4))
    if gpu:
        sides["ours"].graphs(False)
        eager_s = timed(sides["ours"].infer, max(1, infer_calls))
    row: dict = {
        "preset": name,
        "config": PRESETS[name],
        "batch": b,
        "device": device,
        "amp": sides["ours"].bf16,
        "compile": compile_mode,
    }
    for k, s in sides.items():
        step = statistics.median([t for rep in train_s[k] for t in rep])
        row[k] = {
            "params": s.params(),
            "first_steps_s": round(first[k], 2),
            "step_s": round(step, 5),
            "step_s_per_repeat": [round(statistics.median(rep), 5) for rep in train_s[k]],
            "steps_per_s": round(1 / step, 2),
            "samples_per_s": round(b / step, 1),
            "select_action_ms": round(1e3 * statistics.median(infer_s[k]), 3),
        }
    if eager_s:
        row["ours"]["select_action_graphs"] = True
        row["ours"]["select_action_eager_ms"] = round(1e3 * statistics.median(eager_s), 3)
    if lerobot:
        ours, theirs = row["ours"], row["lerobot"]
        if ours["params"] != theirs["params"]:
            # Different networks: a ratio would compare model sizes, not implementations.
            row["step_ratio"] = None
            row["no_ratio"] = (
                f"the networks differ ({ours['params']:,} parameters here, {theirs['params']:,} in "
                "LeRobot's): no ratio"
            )
        else:
            ratios = [
                a / b for a, b in zip(ours["step_s_per_repeat"], theirs["step_s_per_repeat"], strict=True)
            ]
            row["step_ratio"] = round(ours["step_s"] / theirs["step_s"], 3)
            row["step_ratio_per_repeat"] = [round(r, 3) for r in ratios]
    return row


def parts(name: str, steps: int, device: str, amp: bool, batch: int | None, horizon: int | None) -> dict:
    """Where a Diffusion Policy training step goes: the random crop of each camera's frames (the
    per-image slices the CPU takes and the one gather a GPU takes), one camera's encoder and the
    UNet (each forward + backward), and the whole step, in ms (medians of ``steps`` calls)."""
    from imitation.policies.vision import _crop_each, _crop_gather, to_unit

    policy, cfg, b = preset(name, device.startswith("cuda"))
    if policy != "diffusion":
        raise SystemExit(
            f"--parts: {name} is not a Diffusion Policy preset; choose dp-state, dp-camera or dp-image"
        )
    if horizon:
        cfg = replace(cfg, horizon=horizon, n_action_steps=horizon // 2)
    b = batch or b
    ours = Ours(policy, cfg, b, device, amp)
    net, data = ours.policy, ours.batch
    net.train()

    def ms(fn) -> float:
        timed(fn, 2)
        return round(1e3 * statistics.median(timed(fn, steps)), 2)

    def fwd_bwd(module, *inputs) -> None:
        with ours.autocast:
            out = module(*inputs)
        out.float().square().mean().backward()

    row: dict = {"preset": name, "batch": b, "horizon": cfg.horizon, "n_obs_steps": cfg.n_obs_steps,
                 "device": device, "amp": ours.bf16}  # fmt: skip
    with torch.no_grad():
        cond = net._global_cond(data, None)
    noisy = torch.randn(b, cfg.horizon, ours.io.action_dim, device=device)
    t = torch.randint(0, cfg.num_train_timesteps, (b,), device=device)
    row["unet_ms"] = ms(lambda: fwd_bwd(net.unet, noisy, t, cond))
    if net.image_keys:
        key = net.image_keys[0]
        frames = net.normalizer.normalize_image(key, to_unit(data[key].flatten(0, 1)))  # (B*To, C, H, W)
        if ours.bf16 or device.startswith("cuda"):
            frames = frames.contiguous(memory_format=torch.channels_last)
        size = cfg.crop_shape or tuple(frames.shape[-2:])
        # The training draws' own offsets (DiffusionPolicy shares one per sample over its frames).
        seeds = torch.arange(len(frames), device=device)
        offsets = Draws(seeds).crop_offsets(Draws.CROP, frames.shape[2:4], size)
        row["images_per_camera"] = len(frames)
        row["crop_per_image_ms"] = ms(lambda: _crop_each(frames, size, offsets))
        row["crop_gather_ms"] = ms(lambda: _crop_gather(frames, size, offsets))
        cropped = _crop_each(frames.cpu(), size, offsets.cpu()).to(device)
        row["encoder_per_camera_ms"] = ms(lambda: fwd_bwd(net.image_encoders[0], cropped, None))
        row["cameras"] = len(net.image_keys)
    row["step_ms"] = ms(ours.train_step)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["act-state", "dp-state", "act-image", "dp-image"],
                   choices=sorted(PRESETS))  # fmt: skip
    p.add_argument("--steps", type=int, default=20, help="timed training steps per side")
    p.add_argument("--infer-calls", type=int, default=20, help="timed select_action calls per side")
    p.add_argument("--repeats", type=int, default=1, help="measure the step times this many times over")
    p.add_argument("--lerobot", action="store_true", help="also time LeRobot 0.4.4's policies")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--device", default="cpu", help="cpu or cuda[:N] (ours only; on CUDA the paper-scale DP UNet)"
    )
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="fp32 (default: bf16 autocast where imitation train uses it: CUDA; camera policies on a CPU "
                   "with AMX)")  # fmt: skip
    p.add_argument(
        "--compile",
        default=None,
        metavar="MODE",
        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
        help="torch.compile our loss computation with this mode (time of the first steps apart)",
    )
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the config's)")
    p.add_argument("--parts", action="store_true",
                   help="Diffusion Policy presets: time the step's parts (crop, encoder, UNet) instead")  # fmt: skip
    p.add_argument("--horizon", type=int, default=None,
                   help="with --parts: this horizon in ticks (default: the preset's)")  # fmt: skip
    args = p.parse_args()
    if args.horizon is not None and not args.parts:
        p.error("--horizon applies to --parts only; add --parts or leave --horizon out")
    if args.threads:
        torch.set_num_threads(args.threads)
    head = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.device.startswith("cuda"):
        head["gpu"] = torch.cuda.get_device_name(args.device)
    print(json.dumps(head))
    if args.parts:
        for name in args.presets:
            try:
                row = parts(name, args.steps, args.device, args.amp, args.batch, args.horizon)
            except ConfigError as exc:
                p.error(str(exc))
            print(json.dumps(row), flush=True)
        return
    for name in args.presets:
        print(
            json.dumps(
                bench(
                    name,
                    args.steps,
                    args.infer_calls,
                    args.lerobot,
                    args.device,
                    args.amp,
                    args.repeats,
                    args.compile,
                    args.batch,
                )  # fmt: skip
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
