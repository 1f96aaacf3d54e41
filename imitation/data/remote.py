"""Demo stores in an S3-compatible bucket: ``imitation data push|pull``, and ``s3://`` stores read
through a local cache wherever a store is read (``train --store``, ``data info``, ``validate``,
``eval``'s checks).

In the bucket, a store is a prefix holding::

    <prefix>/MANIFEST.json                 the commit: format, fingerprint, the version's files and sizes
    <prefix>/versions/<fingerprint>/...    the store's files, one folder per pushed version

``push`` uploads a version's files first (those already there with the right size are skipped, so an
interrupted push carries on) and writes ``MANIFEST.json`` last, in one object write: object stores
have no multi-object atomicity, but a single object is replaced whole, so a reader sees the old
version or the new one, never a half-copied store. Older versions stay (a reader may be copying one);
``push --prune`` removes the versions the manifest no longer names.

Reading ``s3://bucket/prefix``: the manifest says which version is current; its files are copied once
into the local cache (``$IMITATION_CACHE``, default ``~/.cache/imitation/stores``), under the store's
URL and fingerprint, then the local copy is opened. Every process on a machine shares the cache: a
file lock lets one of them download while the others wait, so each machine downloads each file once,
and a killed download carries on where it stopped. A new version (another fingerprint) gets its own
folder; the cache is kept under ``$IMITATION_CACHE_GB`` (default 100) by removing the versions used
least recently.

Credentials and endpoint come from the usual variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for MinIO and other S3-compatible
servers, ``AWS_ALLOW_HTTP=true`` for a plain-http endpoint). Needs obstore: ``pip install
'imitation[s3]'``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from imitation.data.bucket import FORMAT, MANIFEST, SKIP, Bucket, download, url_of
from imitation.data.store import DemoStore, StoreError
from imitation.errors import ConfigError

log = logging.getLogger(__name__)


def _local_files(root: Path) -> dict[str, int]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith(SKIP) and not p.name.startswith(".imitation-"):
            out[p.relative_to(root).as_posix()] = p.stat().st_size
    return out


def push(src: str | Path, url: str, *, prune: bool = False, progress: bool = True) -> dict[str, Any]:
    """Copy a local store to ``url``; the manifest is written last (module docstring)."""
    url = url_of(url) or ""
    if not url:
        raise ConfigError(f"{src}: push needs an s3://<bucket>/<path> destination")
    store = DemoStore.open(src)
    store.require_usable("pushing")
    if store.uncommitted_frames:
        raise StoreError(
            f"{store.path} has {store.uncommitted_frames} uncommitted frame(s) (a recording in progress or "
            "interrupted); run 'imitation data repair' first"
        )
    fingerprint = store.fingerprint()
    files = _local_files(store.path)
    bucket = Bucket(url)
    version = f"versions/{fingerprint}"
    there = bucket.sizes(version)
    todo = [rel for rel, size in files.items() if there.get(rel) != size]
    total = sum(files[r] for r in todo)
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"push {store.path.name}",
              disable=None if progress else True) as bar:  # fmt: skip
        for rel in todo:
            data = (store.path / rel).read_bytes()
            bucket.put(f"{version}/{rel}", data)
            bar.update(len(data))
    manifest = {
        "format": FORMAT,
        "version": 1,
        "fingerprint": fingerprint,
        "files": files,
        "episodes": store.n_episodes,
        "frames": store.n_frames,
        "pushed": time.time(),
    }
    bucket.put(MANIFEST, json.dumps(manifest, indent=1).encode())  # the commit
    if prune:
        for rel in bucket.sizes("versions"):
            if not rel.startswith(f"{fingerprint}/"):
                bucket.delete(f"versions/{rel}")
    log.info(
        "pushed %s to %s (%d file(s) uploaded, %d already there)",
        store.path,
        url,
        len(todo),
        len(files) - len(todo),
    )
    return manifest


def pull(url: str, dst: str | Path, *, progress: bool = True) -> DemoStore:
    """Copy the store at ``url`` to a new local store ``dst``."""
    url = url_of(url) or ""
    if not url:
        raise ConfigError("pull needs an s3://<bucket>/<path> source")
    dst = Path(dst)
    if dst.exists():
        raise StoreError(f"{dst} already exists; choose another path or remove it first")
    bucket = Bucket(url)
    manifest = bucket.manifest()
    work = dst.with_name(f".{dst.name}.pulling")
    download(bucket, manifest, work, progress)  # carries on an interrupted pull
    store = DemoStore.open(work)
    if store.fingerprint() != manifest["fingerprint"]:
        raise StoreError(f"{url}: the copy's fingerprint differs from the manifest's; read it again")
    os.rename(work, dst)
    return DemoStore.open(dst)
