"""A store's files in an S3-compatible bucket, and the local cache they are read through.

The layout in the bucket, what ``push`` writes and the cache's rules are in ``imitation.data.remote``
(push and pull). This module knows objects and files only, not stores, so that ``DemoStore.open``
can resolve an ``s3://`` URL through it: ``cached(url)`` gives the local folder of the current
version and the fingerprint the manifest promises, which the opened store must have.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from imitation.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
FORMAT = "imitation-remote-store"
SCHEMES = ("s3://",)
# Files of a local store that are not part of it: the writer's lock, temporary files.
SKIP = (".lock", ".tmp")


def is_url(path: str | Path) -> bool:
    return url_of(path) is not None


def url_of(path: str | Path) -> str | None:
    """``s3://bucket/prefix`` from a string or a Path (which folds ``//`` into ``/``), else None."""
    s = str(path)
    for scheme in SCHEMES:
        bare = scheme[:-1]  # "s3:/"
        if s.startswith(scheme):
            return s.rstrip("/")
        if s.startswith(bare) and not s.startswith(scheme):
            return (scheme + s[len(bare) :]).rstrip("/")
    return None


def _obstore() -> Any:
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError as e:
        raise ConfigError(
            "stores in a bucket need obstore, which is not installed; install the extra: pip install 'imitation[s3]'"
        ) from e
    return obstore, S3Store


class Bucket:
    """One store's prefix in a bucket."""

    def __init__(self, url: str) -> None:
        obstore, s3store = _obstore()
        self.obs = obstore
        self.url = url
        rest = url.split("://", 1)[1]
        bucket, _, prefix = rest.partition("/")
        if not bucket or not prefix:
            raise ConfigError(f"{url} must name a bucket and a store in it: s3://<bucket>/<path>/<name>.zarr")
        self.prefix = prefix.strip("/")
        allow_http = os.environ.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true", "yes")
        try:
            self.store = s3store(bucket, client_options={"allow_http": allow_http, "timeout": "120s"})
        except Exception as e:  # obstore's own configuration errors
            raise ConfigError(f"{url}: cannot set up the S3 client ({e}); check AWS_* settings") from e

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}"

    def get(self, rel: str) -> bytes:
        try:
            return bytes(self.obs.get(self.store, self.key(rel)).bytes())
        except FileNotFoundError:
            raise
        except Exception as e:
            if "not found" in str(e).lower() or "NoSuchKey" in str(e):
                raise FileNotFoundError(self.key(rel)) from e
            raise StoreError(f"{self.url}: reading {rel} failed ({e})") from e

    def put(self, rel: str, data: bytes) -> None:
        try:
            self.obs.put(self.store, self.key(rel), data)
        except Exception as e:
            raise StoreError(f"{self.url}: writing {rel} failed ({e})") from e

    def sizes(self, rel_prefix: str) -> dict[str, int]:
        """rel path (under ``rel_prefix``) -> size of the objects there."""
        out = {}
        base = self.key(rel_prefix).rstrip("/") + "/"
        try:
            for batch in self.obs.list(self.store, prefix=base):
                for o in batch:
                    out[o["path"][len(base) :]] = int(o["size"])
        except Exception as e:
            raise StoreError(f"{self.url}: listing {rel_prefix} failed ({e})") from e
        return out

    def delete(self, rel: str) -> None:
        with contextlib.suppress(Exception):
            self.obs.delete(self.store, self.key(rel))

    def manifest(self) -> dict[str, Any]:
        try:
            m = json.loads(self.get(MANIFEST))
        except FileNotFoundError:
            raise StoreError(
                f"no demo store at {self.url} (no {MANIFEST}: nothing was pushed there, or a push has not "
                "finished); push one with 'imitation data push'"
            ) from None
        except json.JSONDecodeError as e:
            raise StoreError(f"{self.url}/{MANIFEST} is not JSON ({e}); push the store again") from e
        if m.get("format") != FORMAT or not isinstance(m.get("files"), dict) or not m.get("fingerprint"):
            raise StoreError(f"{self.url}/{MANIFEST} is not a manifest of this project; push the store again")
        return m


def download(bucket: Bucket, manifest: dict[str, Any], dst: Path, progress: bool) -> None:
    """The manifest's files into ``dst`` (files already there with their size are kept)."""
    version = f"versions/{manifest['fingerprint']}"
    files: dict[str, int] = manifest["files"]
    todo = []
    for rel, size in files.items():
        target = dst / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise StoreError(
                f"{bucket.url}/{MANIFEST} names {rel!r}, outside the store; push the store again"
            )
        if not (target.is_file() and target.stat().st_size == size):
            todo.append(rel)
    with tqdm(total=sum(files[r] for r in todo), unit="B", unit_scale=True, desc=f"pull {bucket.url}",
              disable=None if progress else True) as bar:  # fmt: skip
        for rel in todo:
            try:
                data = bucket.get(f"{version}/{rel}")
            except FileNotFoundError:
                raise StoreError(
                    f"{bucket.url}: {version}/{rel}, named by {MANIFEST}, is missing (pruned by a newer push?); "
                    "read it again"
                ) from None
            if len(data) != files[rel]:
                raise StoreError(
                    f"{bucket.url}: {version}/{rel} has {len(data)} bytes, the manifest says {files[rel]}"
                )
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            bar.update(len(data))


# ------------------------------------------------------------------------------------ the cache
def cache_root() -> Path:
    return Path(os.environ.get("IMITATION_CACHE") or Path.home() / ".cache" / "imitation" / "stores")


def cache_cap_bytes() -> int:
    raw = os.environ.get("IMITATION_CACHE_GB", "100")
    try:
        gb = float(raw)
    except ValueError:
        raise ConfigError(f"IMITATION_CACHE_GB={raw!r} is not a number of gigabytes") from None
    if not gb > 0:
        raise ConfigError(f"IMITATION_CACHE_GB={raw!r} must be > 0")
    return int(gb * 2**30)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached(url: str, *, progress: bool = True) -> tuple[Path, str]:
    """The local copy of the store at ``url`` (its current version), downloading what is missing,
    and the fingerprint the manifest gives it (``DemoStore.open`` checks the copy against it)."""
    url = url_of(url) or url
    bucket = Bucket(url)
    manifest = bucket.manifest()
    root = cache_root()
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    folder = root / key / manifest["fingerprint"]
    done = folder / ".imitation-complete"
    filled = False
    with _locked(root / f"{key}.lock"):
        if not done.is_file():
            filled = True
            log.info("%s: copying version %s into the cache %s", url, manifest["fingerprint"], folder)
            download(bucket, manifest, folder, progress)
            done.write_text(json.dumps({"url": url, "fingerprint": manifest["fingerprint"]}))
            (root / key / "URL").write_text(url)
        os.utime(done)  # last used
    if filled:  # only a new version can push the cache over its cap
        _evict(root, keep=folder)
    return folder, manifest["fingerprint"]


def forget(folder: Path) -> None:
    """Drop a cached version that turned out not to be what its manifest says."""
    shutil.rmtree(folder, ignore_errors=True)


def _evict(root: Path, keep: Path) -> None:
    """Remove the least recently used versions until the cache is under its cap."""
    cap = cache_cap_bytes()
    versions = []
    for done in root.glob("*/*/.imitation-complete"):
        folder = done.parent
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        versions.append((done.stat().st_mtime, folder, size))
    total = sum(v[2] for v in versions)
    for _, folder, size in sorted(versions, key=lambda v: v[0]):
        if total <= cap:
            break
        if folder == keep:
            continue
        with _locked(root / f"{folder.parent.name}.lock"):
            shutil.rmtree(folder, ignore_errors=True)
        total -= size
        log.info("cache over %.1f GB: removed %s", cap / 2**30, folder)
    if total > cap:
        log.warning("the cache %s holds %.1f GB, over its cap of %.1f GB (IMITATION_CACHE_GB): the store in use "
                    "alone is larger", root, total / 2**30, cap / 2**30)  # fmt: skip
