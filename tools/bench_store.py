"""Benchmarks of the demo store: recording, codecs, and training reads. Results go in BENCHMARKS.md.

    python tools/bench_store.py codecs                 # bytes/frame, ratio, encode/decode frames/s
    python tools/bench_store.py recording --minutes 10 # 50 Hz, 3 cameras 480x640 JPEG + state
    python tools/bench_store.py reading                # DP windows/s: disk, RAM cache, naive, NumPy
    python tools/bench_store.py integrity              # cost of checksums and of the commit-record check
    python tools/bench_store.py all

Images are generated, not downloaded: "rendered" frames are flat-shaded scenes like a simulator's
(no texture, no noise); "camera" frames add 1/f texture (the spectrum of natural images), a
vignette, and Gaussian sensor noise (sigma 3 levels), which is what makes real camera frames hard to
compress.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imitation.data.codecs import FrameEncoder, normalize_codec  # noqa: E402

# ----------------------------------------------------------------------------- synthetic images


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A flat-shaded tabletop: floor gradient, a table, a few boxes with shaded sides, an arm."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (120, 130, 140)
    img *= (0.7 + 0.3 * yy / h)[..., None]
    table = (yy > 0.35 * h) & (xx > 0.1 * w) & (xx < 0.9 * w)
    img[table] = (150, 110, 70)
    for _ in range(4):
        cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.45 * h, 0.85 * h)
        s = rng.uniform(0.04, 0.1) * w
        color = rng.uniform(40, 230, 3)
        top = (np.abs(xx - cx) < s) & (np.abs(yy - cy) < s * 0.6)
        side = (np.abs(xx - cx) < s) & (yy >= cy + s * 0.6) & (yy < cy + s)
        img[top] = color
        img[side] = color * 0.6
    ax, ay = rng.uniform(0.3 * w, 0.7 * w), 0.0
    for _ in range(3):
        bx, by = ax + rng.uniform(-0.15, 0.15) * w, ay + 0.2 * h
        t = np.clip(((xx - ax) * (bx - ax) + (yy - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2), 0, 1)
        d = np.hypot(xx - (ax + t * (bx - ax)), yy - (ay + t * (by - ay)))
        img[d < 0.025 * w] = (230, 230, 235)
        ax, ay = bx, by
    return img


def _pink_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.rfftfreq(w), indexing="ij"))
    f[0, 0] = 1
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
    tex = np.fft.irfft2(spec, s=(h, w))
    return (tex / tex.std()).astype(np.float32)


def make_frames(kind: str, n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of one camera: a scene that shifts slightly from frame to frame."""
    rng = np.random.default_rng(seed)
    base = _scene(rng, h + 16, w + 16)
    if kind == "camera":
        base += 12 * _pink_noise(rng, h + 16, w + 16)[..., None]
        yy, xx = np.mgrid[0 : h + 16, 0 : w + 16]
        base *= (1 - 0.35 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2))[..., None]
    frames = []
    for i in range(n):
        dy, dx = int(8 + 6 * np.sin(i / 7)), int(8 + 6 * np.cos(i / 11))
        f = base[dy : dy + h, dx : dx + w].copy()
        if kind == "camera":
            f += rng.normal(0, 3, f.shape).astype(np.float32)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames


# ----------------------------------------------------------------------------- codecs


def _decoder(spec: dict):
    import imagecodecs
    import numcodecs

    name = spec["name"]
    if name == "jpeg":
        return imagecodecs.jpeg8_decode
    if name == "blosc":
        return numcodecs.Blosc().decode
    if name == "zstd":
        return numcodecs.Zstd().decode
    return lambda b: b


def bench_codecs(out: dict) -> None:
    rows = []
    for size in ((96, 96), (480, 640)):
        for kind in ("rendered", "camera"):
            frames = make_frames(kind, 60 if size[0] > 100 else 300, *size)
            raw = frames[0].nbytes
            for codec in (
                "none",
                "blosc",
                "zstd",
                {"name": "jpeg", "quality": 90},
                {"name": "jpeg", "quality": 75},
            ):
                spec = normalize_codec(codec, kind="image", dtype=np.dtype(np.uint8))
                enc = FrameEncoder(spec, np.uint8)
                t = time.perf_counter()
                blobs = [enc.encode(f) for f in frames]
                t_enc = time.perf_counter() - t
                dec = _decoder(spec)
                t = time.perf_counter()
                for b in blobs:
                    dec(b)
                t_dec = time.perf_counter() - t
                per_frame = float(np.mean([len(b) for b in blobs]))
                name = spec["name"] + (f" q{spec['quality']}" if "quality" in spec else "")
                rows.append(
                    {
                        "size": f"{size[0]}x{size[1]}",
                        "images": kind,
                        "codec": name,
                        "bytes_per_frame": round(per_frame),
                        "ratio": round(raw / per_frame, 2),
                        "encode_fps": round(len(frames) / t_enc),
                        "decode_fps": round(len(frames) / t_dec),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    out["codecs"] = rows


# ----------------------------------------------------------------------------- recording


def bench_recording(out: dict, minutes: float, root: Path, episode_s: float = 60.0) -> None:
    """Record ``minutes`` at 50 Hz: 3 cameras 480x640 (JPEG q90) + state + action."""
    from imitation.data.store import EpisodeWriter

    fps, cams = 50.0, ("front", "wrist", "top")
    pool = {c: make_frames("camera", 50, 480, 640, seed=i) for i, c in enumerate(cams)}
    features = {
        "state": {"shape": [6], "dtype": "float32", "kind": "state"},
        "action": {"shape": [6], "dtype": "float32", "kind": "action"},
        **{
            f"images/{c}": {
                "shape": [480, 640, 3],
                "dtype": "uint8",
                "kind": "image",
                "codec": {"name": "jpeg", "quality": 90},
            }
            for c in cams
        },
    }
    path = root / "recording.zarr"
    period = 1.0 / fps
    total_ticks = int(minutes * 60 * fps)
    per_episode = int(episode_s * fps)
    late = dropped = 0
    max_lag = 0.0
    save_s = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t_start = time.perf_counter()
    tick = 0
    with EpisodeWriter(path, features=features, fps=fps) as w:
        while tick < total_ticks:
            w.start_episode(task="benchmark")
            next_t = time.perf_counter()
            for i in range(min(per_episode, total_ticks - tick)):
                now = time.perf_counter()
                if now > next_t + period:  # a whole period missed: the frame is dropped
                    missed = int((now - next_t) / period)
                    dropped += missed
                    next_t += missed * period
                elif now > next_t + 0.2 * period:
                    late += 1
                q = np.full(6, np.sin(tick / 50), np.float32)
                frame = {"state": q, "action": q, "timestamp": i * period}
                for c in cams:
                    frame[f"images/{c}"] = pool[c][tick % 50]
                w.add_frame(frame)
                max_lag = max(max_lag, w.lag_s)
                tick += 1
                next_t += period
                delay = next_t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            t = time.perf_counter()
            w.save_episode()
            save_s.append(time.perf_counter() - t)
        max_lag = max(max_lag, w.max_lag_s)
    wall = time.perf_counter() - t_start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    from imitation.data.store import DemoStore

    store = DemoStore.open(path)
    n_files, n_bytes = store.files_on_disk()
    hours = store.n_frames / fps / 3600
    res = {
        "minutes": minutes,
        "frames": store.n_frames,
        "episodes": store.n_episodes,
        "dropped_frames": dropped,
        "late_ticks_over_20pct": late,
        "max_writer_lag_s": round(max_lag, 3),
        "cpu_cores": round(cpu / wall, 3),
        "peak_rss_mb": round(r1.ru_maxrss / 1024),
        "save_episode_s_max": round(max(save_s), 3),
        "disk_gb": round(n_bytes / 1e9, 2),
        "files": n_files,
        "files_per_hour": round(n_files / hours),
        "jpeg_kb_per_frame": round(store.feature_nbytes("images/front") / store.n_frames / 1e3, 1),
    }
    print(json.dumps(res), flush=True)
    out["recording"] = res
    shutil.rmtree(path)


# ----------------------------------------------------------------------------- reading


def _write_store(path: Path, n_frames: int, cams: dict, episode_len: int = 200, codec=None) -> None:
    from imitation.data.store import EpisodeWriter

    features = {
        "state": {"shape": [6], "dtype": "float32", "kind": "state"},
        "action": {"shape": [6], "dtype": "float32", "kind": "action"},
        **{
            f"images/{c}": {"shape": [h, w, 3], "dtype": "uint8", "kind": "image", "codec": codec or "jpeg"}
            for c, (h, w) in cams.items()
        },
    }
    pools = {c: make_frames("camera", 64, h, w, seed=i) for i, (c, (h, w)) in enumerate(cams.items())}
    rng = np.random.default_rng(0)
    with EpisodeWriter(path, features=features, fps=50) as wr:
        for e in range(n_frames // episode_len):
            wr.start_episode()
            for i in range(episode_len):
                f = {"state": rng.normal(size=6), "action": rng.normal(size=6), "timestamp": i / 50}
                for c in cams:
                    f[f"images/{c}"] = pools[c][(e * 7 + i) % 64]
                wr.add_frame(f)
            wr.save_episode()


def _rate(fn, batches: list, repeats: int = 3) -> float:
    fn(batches[0])
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches:
            fn(b)
        best.append(time.perf_counter() - t)
    return len(batches) * len(batches[0]) / float(np.median(best))


def bench_reading(out: dict, root: Path) -> None:
    import torch
    from torch.utils.data import DataLoader

    from imitation.data.dataset import ResumableSampler, WindowDataset, WindowSpec
    from imitation.data.store import DemoStore

    torch.set_num_threads(1)
    res: dict = {}
    path = root / "dp96.zarr"
    _write_store(path, 20000, {"top": (96, 96)})
    spec = WindowSpec.diffusion(2, 16, ("state", "images/top"))
    disk = WindowDataset(path, spec, cache="none")
    t = time.perf_counter()
    ram = WindowDataset(path, spec, cache="ram")
    res["ram_cache_build_s"] = round(time.perf_counter() - t, 2)
    n, B = len(disk), 64
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, n, B).tolist() for _ in range(30)]

    store = DemoStore.open(path)
    arrays = {k: store.array(k) for k in ("state", "action", "images/top")}
    ends = store.episode_ends
    starts = np.concatenate([[0], ends[:-1]])

    def naive(b):  # per-sample slicing of already-open zarr arrays
        out = []
        for t_ in b:
            e = np.searchsorted(ends, t_, side="right")
            oi = np.clip(np.arange(t_ - 1, t_ + 1), starts[e], ends[e] - 1)
            ai = np.clip(np.arange(t_ - 1, t_ + 15), starts[e], ends[e] - 1)
            out.append(
                (
                    arrays["images/top"][oi[0] : oi[-1] + 1],
                    arrays["state"][oi[0] : oi[-1] + 1],
                    arrays["action"][ai[0] : ai[-1] + 1],
                )
            )
        return out

    img, st, ac = store.read("images/top"), store.read("state"), store.read("action")
    ep_of = np.searchsorted(ends, np.arange(n), side="right")

    def numpy_ceiling(b):  # everything decoded in RAM, one fancy index per array
        t_ = np.asarray(b)
        e = ep_of[t_]
        lo, hi = starts[e][:, None], ends[e][:, None] - 1
        oi = np.clip(t_[:, None] + np.arange(-1, 1), lo, hi)
        ai = np.clip(t_[:, None] + np.arange(-1, 15), lo, hi)
        return img[oi], st[oi], ac[ai]

    res["numpy_ceiling"] = _rate(numpy_ceiling, batches)
    res["ram_cache"] = _rate(ram.get_batch, batches)
    res["disk"] = _rate(disk.get_batch, batches[:10])
    res["naive_zarr"] = _rate(naive, batches[:2], repeats=1)
    res["ram_vs_numpy"] = round(res["numpy_ceiling"] / res["ram_cache"], 2)
    res["disk_vs_naive"] = round(res["disk"] / res["naive_zarr"], 1)

    def loader_rate(ds, workers: int, n_batches: int) -> float:
        dl = DataLoader(
            ds,
            batch_size=B,
            sampler=ResumableSampler(len(ds), seed=0),
            num_workers=workers,
            drop_last=True,
            persistent_workers=False,
        )
        it = iter(dl)
        next(it)
        t = time.perf_counter()
        for _ in range(n_batches):
            next(it)
        return n_batches * B / (time.perf_counter() - t)

    res["disk_dataloader_2_workers"] = loader_rate(disk, 2, 40)
    # The real-robot case: 3 cameras at 480x640, JPEG, read from disk by 2 workers.
    path3 = root / "real3.zarr"
    _write_store(path3, 3000, {"front": (480, 640), "wrist": (480, 640), "top": (480, 640)})
    spec3 = WindowSpec.diffusion(2, 16, ("state", "images/front", "images/wrist", "images/top"))
    res["real_3cam_480x640_jpeg_2_workers"] = loader_rate(WindowDataset(path3, spec3, cache="none"), 2, 10)
    res = {k: (round(v) if isinstance(v, float) and v > 100 else v) for k, v in res.items()}
    print(json.dumps(res), flush=True)
    out["reading"] = res


def bench_integrity(out: dict, root: Path) -> None:
    """What checking costs: CRC-32C throughput, a JPEG frame decoded with and without its checksum
    verified, and opening (commit record checked) and validating an hour of 50 Hz state."""
    import google_crc32c

    from imitation.data.check import validate
    from imitation.data.codecs import add_checksum, jpeg_encode
    from imitation.data.shards import FrameDecoder
    from imitation.data.store import DemoStore

    res: dict = {}
    buf = np.random.default_rng(0).integers(0, 256, 64 * 2**20, dtype=np.uint8)
    t = time.perf_counter()
    for _ in range(5):
        google_crc32c.value(buf)
    res["crc32c_GB_per_s"] = round(5 * buf.nbytes / (time.perf_counter() - t) / 1e9, 2)
    for h, w in ((96, 96), (480, 640)):
        frames = make_frames("camera", 16, h, w, seed=1)
        raw = [jpeg_encode(f, 90) for f in frames]
        n = 2000 if h == 96 else 200
        best = {False: 0.0, True: 0.0}
        for _ in range(3):  # alternated, best of three: the two differ by less than the noise of one run
            for checksum in (False, True):
                dec = FrameDecoder("jpeg", (h, w, 3), np.uint8, checksum=checksum)
                data = [add_checksum(r) if checksum else r for r in raw]
                t = time.perf_counter()
                for i in range(n):
                    dec(data[i % 16])
                best[checksum] = max(best[checksum], n / (time.perf_counter() - t))
        for checksum, fps in best.items():
            res[f"jpeg_{h}x{w}_decode_fps_{'with' if checksum else 'without'}_checksum"] = round(fps)
    path = root / "hour.zarr"
    _write_store(path, 180_000, {}, episode_len=3000)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        store = DemoStore.open(path)
        times.append(time.perf_counter() - t)
    res["open_180000_frames_s"] = round(sorted(times)[2], 4)
    t = time.perf_counter()
    report = validate(DemoStore.open(path, check=False), progress=False)
    res["validate_180000_frames_s"] = round(time.perf_counter() - t, 2)
    res["validate_ok"] = report.ok
    res["frames"] = store.n_frames
    print(json.dumps(res), flush=True)
    out["integrity"] = res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=("codecs", "recording", "reading", "integrity", "all"))
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the recording benchmark")
    ap.add_argument(
        "--dir", type=Path, default=None, help="where to write the benchmark stores (default: a temp dir)"
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the results to this file (one imitation wrote, or new)",
    )
    args = ap.parse_args()
    if args.json:  # refused now, not after the benchmarks
        from imitation import outputs
        from imitation.errors import ConfigError

        try:
            outputs.check_file(args.json, command="bench_store.py", option="--json", overwrite_flag=None)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    root = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.dir))
    out: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    }
    try:
        if args.part in ("codecs", "all"):
            bench_codecs(out)
        if args.part in ("integrity", "all"):
            bench_integrity(out, root)
        if args.part in ("reading", "all"):
            bench_reading(out, root)
        if args.part in ("recording", "all"):
            bench_recording(out, args.minutes, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        from imitation import outputs

        outputs.write_json(args.json, out, "tools/bench_store.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
