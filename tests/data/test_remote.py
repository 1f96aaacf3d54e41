"""Stores in a bucket (``imitation data push|pull``, ``--store s3://...``), against a real S3-API
server started here (moto's standalone server), not a patched client: the manifest is the commit,
each machine downloads each file once, the cache is locked, capped and keyed by fingerprint."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from tool_modules import load_tool

from imitation import cli
from imitation.data import bucket as objects
from imitation.data import remote
from imitation.data.store import DemoStore, StoreError

pytest.importorskip("obstore")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

fixture = load_tool("lerobot_fixture")


@pytest.fixture(scope="module")
def server():
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


@pytest.fixture
def bucket(server, tmp_path, monkeypatch) -> str:
    name = f"demos-{abs(hash(tmp_path)) % 10**8}"
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    for k, v in {**creds, "AWS_ENDPOINT_URL": server, "AWS_ALLOW_HTTP": "true"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("IMITATION_CACHE", str(tmp_path / "cache"))
    boto3.client("s3", endpoint_url=server, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket=name)  # fmt: skip
    return f"s3://{name}/team/pick.zarr"


@pytest.fixture
def counted(monkeypatch):
    """Object reads of the store's files, by key."""
    gets: list[str] = []
    real = objects.Bucket.get

    def get(self, rel):  # noqa: ANN001
        if rel != objects.MANIFEST:
            gets.append(rel)
        return real(self, rel)

    monkeypatch.setattr(objects.Bucket, "get", get)
    return gets


def store_at(tmp_path: Path, name: str = "sample.zarr") -> DemoStore:
    return DemoStore.open(fixture.sample_store(tmp_path / name))


def test_push_then_pull_gives_the_same_store(tmp_path: Path, bucket: str) -> None:
    local = store_at(tmp_path)
    assert cli.main(["data", "push", str(local.path), bucket]) == 0
    assert cli.main(["data", "pull", bucket, str(tmp_path / "copy.zarr")]) == 0
    copy = DemoStore.open(tmp_path / "copy.zarr")
    assert copy.fingerprint() == local.fingerprint()
    for key in local.features:
        assert np.array_equal(copy.read(key), local.read(key)), key
    # Anything that reads a store reads the URL.
    assert cli.main(["data", "info", bucket]) == 0
    assert cli.main(["data", "validate", bucket]) == 0


def test_each_file_is_downloaded_once_and_the_cache_follows_the_fingerprint(
    tmp_path: Path, bucket: str, counted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    local = store_at(tmp_path)
    remote.push(local.path, bucket, progress=False)
    n_files = len(remote._local_files(local.path))
    # Two readers at once (processes on one machine share the cache; its lock is a file lock).
    folders = []
    threads = [
        threading.Thread(target=lambda: folders.append(objects.cached(bucket, progress=False)[0]))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert folders[0] == folders[1] and len(counted) == n_files
    assert DemoStore.open(bucket).fingerprint() == local.fingerprint()
    assert len(counted) == n_files  # opened again: from the cache

    # A new version: its own folder; the cap removes the one used least recently.
    from imitation.data.edit import delete_episodes

    changed = delete_episodes(local.path, [1], output=tmp_path / "changed.zarr")
    remote.push(changed.path, bucket, progress=False)
    monkeypatch.setenv(
        "IMITATION_CACHE_GB", str(1.5 * sum(remote._local_files(changed.path).values()) / 2**30)
    )
    new, _ = objects.cached(bucket, progress=False)
    assert new != folders[0] and new.name == changed.fingerprint()
    assert not folders[0].exists()  # over the cap: the older version went
    assert DemoStore.open(bucket).n_episodes == 2


def test_a_reader_never_sees_a_half_pushed_store(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store_at(tmp_path)
    with pytest.raises(StoreError, match="no demo store at"):
        DemoStore.open(bucket)
    remote.push(first.path, bucket, progress=False)
    from imitation.data.edit import delete_episodes

    second = delete_episodes(first.path, [0], output=tmp_path / "second.zarr")
    real_put = objects.Bucket.put
    puts = []

    def dies_before_the_manifest(self, rel, data):  # noqa: ANN001
        if rel == objects.MANIFEST:
            raise KeyboardInterrupt  # killed between the files and the commit
        puts.append(rel)
        return real_put(self, rel, data)

    monkeypatch.setattr(objects.Bucket, "put", dies_before_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        remote.push(second.path, bucket, progress=False)
    assert puts  # the new version's files are there...
    assert DemoStore.open(bucket).fingerprint() == first.fingerprint()  # ...and readers see the old one
    monkeypatch.setattr(objects.Bucket, "put", real_put)
    remote.push(second.path, bucket, progress=False)  # carries on: only the manifest was missing
    assert DemoStore.open(bucket).fingerprint() == second.fingerprint()


def test_an_interrupted_download_carries_on(
    tmp_path: Path, bucket: str, counted: list[str], monkeypatch
) -> None:
    local = store_at(tmp_path)
    remote.push(local.path, bucket, progress=False)
    n_files = len(remote._local_files(local.path))
    real = objects.Bucket.get

    def dies_at_the_fifth(self, rel):  # noqa: ANN001
        if len(counted) == 5:
            raise KeyboardInterrupt
        return real(self, rel)

    monkeypatch.setattr(objects.Bucket, "get", dies_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        remote.pull(bucket, tmp_path / "copy.zarr", progress=False)
    assert not (tmp_path / "copy.zarr").exists()
    monkeypatch.setattr(objects.Bucket, "get", real)
    counted.clear()
    remote.pull(bucket, tmp_path / "copy.zarr", progress=False)
    assert len(counted) == n_files - 5  # the five files read before the stop were kept
    assert DemoStore.open(tmp_path / "copy.zarr").fingerprint() == local.fingerprint()


def test_training_reads_a_store_in_a_bucket(tmp_path: Path, bucket: str) -> None:
    local = store_at(tmp_path)
    remote.push(local.path, bucket, progress=False)
    args = ["train", "--store", bucket, "--policy", "act", "--out", str(tmp_path / "run"), "--steps", "2",
            "--batch-size", "4", "--wandb", "disabled"]  # fmt: skip
    assert cli.main(args) == 0
    assert cli.main(["data", "info", "s3://no-such-bucket-here/x.zarr"]) != 0
