"""Training from a store in a bucket, beside the same store on local disk.

    python tools/bench_bucket.py --store bench/suite_images/demos/push-v3.zarr --steps 300

Starts an S3-API server here (moto's standalone server: the bucket is on this machine, so the
transfer rate is a loopback's, not a network's), pushes the store, then trains the same policy for
``--steps`` steps three times: from ``s3://`` with an empty cache (cold: the copy into the cache is
part of it), from ``s3://`` again (warm: the cache holds the version), and from the local store.
Prints samples/s of each (steps x batch / wall time of the train command) as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--policy", default="act")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train flags")
    args = ap.parse_args()
    import boto3
    from moto.server import ThreadedMotoServer

    sys.path.insert(0, str(ROOT))
    from imitation.data import remote

    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "WANDB_MODE": "disabled"}  # fmt: skip
    os.environ.update(env)
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                 region_name="us-east-1").create_bucket(Bucket="bench")  # fmt: skip
    url = f"s3://bench/demos/{args.store.name}"
    t0 = time.perf_counter()
    manifest = remote.push(args.store, url, progress=False)
    size = sum(manifest["files"].values())
    print(json.dumps({"step": "push", "bytes": size, "files": len(manifest["files"]),
                      "wall_s": time.perf_counter() - t0}), flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        env["IMITATION_CACHE"] = str(Path(tmp) / "cache")
        for name, store in (("s3_cold", url), ("s3_warm", url), ("local", str(args.store))):
            cmd = [sys.executable, "-m", "imitation.cli", "train", "--store", store, "--policy", args.policy,
                   "--steps", str(args.steps), "--batch-size", str(args.batch), "--out", str(Path(tmp) / name),
                   "--wandb", "disabled", *args.extra]  # fmt: skip
            t0 = time.perf_counter()
            subprocess.run(
                cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            wall = time.perf_counter() - t0
            print(json.dumps({"step": name, "steps": args.steps, "wall_s": wall,
                              "samples_per_s": args.steps * args.batch / wall}), flush=True)  # fmt: skip
    srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
