"""The image shard format, in one place: how the writer builds shards and how readers read them.

Image features are Zarr v3 arrays with the ``sharding_indexed`` codec: each shard file holds
``frames_per_file`` frames, one frame per inner chunk, followed by an index of ``n`` (offset,
nbytes) pairs (uint64, little-endian; 2**64-1 twice for an absent chunk) and the crc32c of that
index. Plain zarr reads these files; the writer builds them itself (so frames are encoded once, as
they arrive) and the training reader reads frames with ``os.pread`` through a cached index, which
is far faster than going through zarr for single frames.

Imports inside functions are codec libraries (numcodecs, imagecodecs, google_crc32c,
zarr.codecs), loaded only for the codecs a store uses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imitation.data.codecs import ChecksumError, strip_checksum
from imitation.data.schema import Feature
from imitation.errors import StoreDamage

EMPTY = np.uint64(2**64 - 1)  # index entry (offset and nbytes) of a chunk that is not in the shard


class ShardError(StoreDamage):
    """A shard file is missing, truncated or fails a checksum: the store is damaged."""


def shard_key(key: str, shard: int, ndim: int) -> str:
    """Store key of shard number ``shard`` of feature ``key`` (an array of ``ndim`` axes)."""
    return f"data/{key}/c/{shard}" + "/0" * (ndim - 1)


def parse_index(raw: bytes, n: int, where: Any) -> np.ndarray:
    """The (n, 2) index from the last ``16 n + 4`` bytes of a shard, checksum verified."""
    import google_crc32c

    if len(raw) != 16 * n + 4 or google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
        raise ShardError(
            f"{where}: the shard index is truncated or fails its checksum; the store is damaged "
            "(re-import or re-record the episodes in this shard)"
        )
    return np.frombuffer(raw[:-4], dtype="<u8").reshape(n, 2)


def split_shard(blob: bytes, n: int, where: Any = "shard") -> list[memoryview | None]:
    """A whole shard file -> views of each of its ``n`` chunks (None where absent); no copies."""
    index = parse_index(blob[-(16 * n + 4) :] if len(blob) >= 16 * n + 4 else b"", n, where)
    view = memoryview(blob)
    return [None if off == EMPTY else view[int(off) : int(off) + int(nb)] for off, nb in index]


def build_shard(chunks: Sequence[Any]) -> list[Any]:
    """The parts of a shard file, in order, from the bytes of its chunks (None where absent).

    Returned as a list of buffers (chunks, index, checksum) for a vectored write: joining them
    would copy the whole shard while holding the GIL.
    """
    import google_crc32c

    index = np.full((len(chunks), 2), EMPTY, dtype="<u8")
    parts, offset = [], 0
    for i, c in enumerate(chunks):
        if c is None:
            continue
        index[i] = (offset, len(c))
        parts.append(c)
        offset += len(c)
    raw = index.tobytes()
    return [*parts, raw, google_crc32c.value(raw).to_bytes(4, "little")]


_COALESCE_GAP = 16 * 1024  # read neighbouring chunks with one pread when at most this far apart


class FrameDecoder:
    """Decodes one stored chunk (one frame) as zarr would, verifying its CRC-32C where the array
    has one (``ChecksumError`` otherwise); a class, so that datasets pickle."""

    def __init__(
        self,
        codec: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        big_endian: bool = False,
        checksum: bool = False,
    ) -> None:
        self.codec = codec  # jpeg | none | zstd | blosc
        self.checksum = checksum
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.wire = self.dtype.newbyteorder(">" if big_endian else "<")
        self._bytes_codec: Any = None
        if codec in ("zstd", "blosc"):
            # numcodecs decodes the same frames as zarr's own codecs (zarr wraps numcodecs for both).
            import numcodecs

            self._bytes_codec = numcodecs.Zstd() if codec == "zstd" else numcodecs.Blosc()

    def __call__(self, raw: Any) -> np.ndarray:
        if self.checksum:
            raw = strip_checksum(raw)
        if self.codec == "jpeg":
            import imagecodecs

            return imagecodecs.jpeg8_decode(raw).reshape(self.shape)
        if self._bytes_codec is not None:
            raw = self._bytes_codec.decode(raw)
        return np.frombuffer(raw, self.wire).reshape(self.shape).astype(self.dtype, copy=False)


def frame_decoder(array: Any, feature: Feature) -> FrameDecoder | None:
    """The decoder of one stored chunk, or None when the array's codecs are not the layout
    ``store.py`` writes (sharding with one frame per inner chunk, index at the end)."""
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

    from imitation.data.codecs import JpegCodec

    codecs = tuple(array.metadata.codecs)
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding = codecs[0]
    index_ok = (
        sharding.index_location.value == "end"
        and len(sharding.index_codecs) == 2
        and isinstance(sharding.index_codecs[0], BytesCodec)
        and getattr(sharding.index_codecs[0].endian, "value", "little") == "little"
        and isinstance(sharding.index_codecs[1], Crc32cCodec)
    )
    shape, dtype = feature.shape, feature.np_dtype
    if not index_ok or tuple(sharding.chunk_shape) != (1, *shape):
        return None
    if tuple(array.shards or ()) != (feature.file_frames(), *shape):
        return None
    inner = tuple(sharding.codecs)
    checksum = bool(inner) and isinstance(inner[-1], Crc32cCodec)
    if checksum:
        inner = inner[:-1]
    if len(inner) == 1 and isinstance(inner[0], JpegCodec):
        return FrameDecoder("jpeg", shape, dtype, checksum=checksum)
    if not inner or not isinstance(inner[0], BytesCodec):
        return None
    big = getattr(inner[0].endian, "value", None) == "big"
    if len(inner) == 1:
        return FrameDecoder("none", shape, dtype, big, checksum)
    if len(inner) == 2 and isinstance(inner[1], ZstdCodec | BloscCodec):
        name = "zstd" if isinstance(inner[1], ZstdCodec) else "blosc"
        return FrameDecoder(name, shape, dtype, big, checksum)
    return None


class ShardReader:
    """Reads frames of one sharded image feature with ``os.pread``, caching each shard's index.

    Committed frames never move inside a shard (the writer keeps their bytes and order when it
    appends to a shard), so a cached index stays valid while a recorder appends to the store.
    """

    def __init__(self, root: Path, key: str, feature: Feature, decode: FrameDecoder) -> None:
        self.root = root
        self.key = key
        self.per_shard = feature.file_frames()
        self.ndim = len(feature.shape) + 1
        self.decode = decode
        self._index: dict[int, np.ndarray] = {}

    def _path(self, shard: int) -> Path:
        return self.root / shard_key(self.key, shard, self.ndim)

    def _shard_index(self, shard: int, fd: int) -> np.ndarray:
        index = self._index.get(shard)
        if index is None:
            need = 16 * self.per_shard + 4
            size = os.fstat(fd).st_size
            raw = os.pread(fd, need, size - need) if size >= need else b""
            index = parse_index(raw, self.per_shard, self._path(shard))
            self._index[shard] = index
        return index

    def read_shard(self, shard: int, frames: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
        """Decode global ``frames`` (all in ``shard``) into ``out[rows]``."""
        path = self._path(shard)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ShardError(
                f"{path} is missing, but frames {frames[0]}..{frames[-1]} of {self.key!r} are committed; "
                "the store is damaged"
            ) from None
        try:
            index = self._shard_index(shard, fd)
            entries = index[frames - shard * self.per_shard]
            missing = np.flatnonzero(entries[:, 0] == EMPTY)
            if missing.size:
                raise ShardError(
                    f"{path}: frame {frames[missing[0]]} of {self.key!r} is missing from its shard, but it is "
                    "committed; the store is damaged"
                )
            order = np.argsort(entries[:, 0], kind="stable")
            starts = entries[order, 0].astype(np.int64)
            ends = starts + entries[order, 1].astype(np.int64)
            i = 0
            while i < len(order):
                j = i + 1
                while j < len(order) and starts[j] - ends[j - 1] <= _COALESCE_GAP:
                    j += 1
                lo, hi = int(starts[i]), int(ends[i:j].max())
                blob = memoryview(os.pread(fd, hi - lo, lo))
                if len(blob) != hi - lo:
                    raise ShardError(
                        f"{path}: the shard file is shorter than its index says; the store is damaged"
                    )
                for k in range(i, j):
                    try:
                        out[rows[order[k]]] = self.decode(blob[starts[k] - lo : ends[k] - lo])
                    except ShardError:
                        raise
                    except (
                        Exception
                    ) as e:  # a checksum or a decoder failure: the bytes are not what was written
                        raise ShardError(
                            f"{path}: frame {frames[order[k]]} of {self.key!r} does not read back "
                            f"({'fails its checksum' if isinstance(e, ChecksumError) else e}); the store is damaged"
                        ) from e
                i = j
        finally:
            os.close(fd)

    def read(self, frames: np.ndarray) -> np.ndarray:
        """Decode the given global frame indices (any order) into one array."""
        frames = np.asarray(frames, dtype=np.int64)
        out = np.empty((frames.size, *self.decode.shape), self.decode.dtype)
        shards = frames // self.per_shard
        for shard in np.unique(shards):
            rows = np.flatnonzero(shards == shard)
            self.read_shard(int(shard), frames[rows], out, rows)
        return out


def frame_reader(store: Any, key: str) -> Any:
    """A function frames -> decoded array for an image feature of ``store``: the fast shard
    reader for stores laid out as this project writes them, zarr's own reader otherwise."""
    feature = store.features[key]
    array = store.array(key)
    decode = frame_decoder(array, feature)
    if decode is None:
        return lambda frames: np.asarray(
            array.get_orthogonal_selection((np.asarray(frames, dtype=np.int64),))
        )
    return ShardReader(Path(store.path), key, feature, decode).read
