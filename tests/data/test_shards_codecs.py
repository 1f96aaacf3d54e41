"""The image shard format (``data/shards.py``) and the chunk codecs (``data/codecs.py``) on their
own: frames survive an encode/decode round trip, a shard's index finds every frame, and damage
(a flipped byte, a truncated file) is reported as damage, never read as data."""

from __future__ import annotations

import numpy as np
import pytest

from imitation.data.codecs import (
    ChecksumError,
    FrameEncoder,
    add_checksum,
    jpeg_encode,
    normalize_codec,
    strip_checksum,
)
from imitation.data.shards import FrameDecoder, ShardError, build_shard, shard_key, split_shard


def frames(n: int = 3, shape=(12, 16, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = ((yy * 9 + xx * 5) % 256).astype(np.uint8)[..., None].repeat(shape[2], -1)
    return [(base + rng.integers(0, 4, shape)).astype(np.uint8) for _ in range(n)]


@pytest.mark.parametrize("name", ["none", "zstd", "blosc"])
def test_lossless_frames_round_trip_through_a_shard(name):
    spec = normalize_codec(name, kind="image", dtype=np.dtype(np.uint8))
    enc = FrameEncoder(spec, np.uint8)
    dec = FrameDecoder(name, (12, 16, 3), np.uint8, checksum=True)
    fs = frames()
    chunks = [add_checksum(enc.encode(f)) for f in fs]
    chunks[1] = None  # a frame not (yet) in this shard
    blob = b"".join(bytes(p) for p in build_shard(chunks))
    views = split_shard(blob, len(chunks))
    assert views[1] is None
    for i in (0, 2):
        np.testing.assert_array_equal(dec(views[i]), fs[i])


def test_jpeg_frames_decode_close_to_the_original_in_rgb_order():
    f = frames(1)[0]
    f[:, :, 0] = 250  # a red picture stays red: OpenCV's BGR is not leaked
    f[:, :, 1:] = 10
    out = FrameDecoder("jpeg", f.shape, np.uint8)(jpeg_encode(f, 95))
    assert out.shape == f.shape and np.abs(out.astype(int) - f).mean() < 6
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50


def test_a_flipped_byte_fails_the_checksum_instead_of_decoding():
    raw = bytearray(add_checksum(b"some encoded frame"))
    assert bytes(strip_checksum(bytes(raw))) == b"some encoded frame"
    raw[3] ^= 0x40
    with pytest.raises(ChecksumError):
        strip_checksum(bytes(raw))
    with pytest.raises(ChecksumError, match="shorter"):
        strip_checksum(b"ab")


def test_a_truncated_shard_or_index_is_damage():
    chunks = [add_checksum(bytes([i]) * 10) for i in range(3)]
    blob = b"".join(bytes(p) for p in build_shard(chunks))
    with pytest.raises(ShardError, match="damaged"):
        split_shard(blob[:-1], 3)
    with pytest.raises(ShardError):
        split_shard(blob[:10], 3)
    damaged = bytearray(blob)
    damaged[-10] ^= 1  # inside the index
    with pytest.raises(ShardError):
        split_shard(bytes(damaged), 3)


def test_shard_keys_and_codec_specs():
    assert shard_key("images/top", 4, 4) == "data/images/top/c/4/0/0/0"
    assert normalize_codec(None, kind="image", dtype=np.dtype(np.uint8)) == {"name": "zstd", "level": 3}
    assert normalize_codec(None, kind="state", dtype=np.dtype(np.float32))["name"] == "blosc"
    assert normalize_codec("jpeg", kind="image", dtype=np.dtype(np.uint8))["quality"] == 90
    with pytest.raises(ValueError, match="uint8 image"):
        normalize_codec("jpeg", kind="state", dtype=np.dtype(np.float32))
    with pytest.raises(ValueError, match="unknown codec"):
        normalize_codec("png", kind="image", dtype=np.dtype(np.uint8))
    with pytest.raises(ValueError, match="1..100"):
        normalize_codec({"name": "jpeg", "quality": 0}, kind="image", dtype=np.dtype(np.uint8))
