"""Compression codecs for demo-store arrays.

A codec is chosen per feature with a small dict, e.g. ``{"name": "jpeg", "quality": 90}``:

- ``blosc`` (default for low-dimensional features): Blosc with zstd inside, byte shuffle for
  multi-byte types; lossless.
- ``zstd`` (default for images): plain zstd; lossless.
- ``jpeg``: lossy JPEG per frame (uint8 images with 1 or 3 channels), through ``imagecodecs``.
- ``none``: raw bytes.

Lossless codecs are zarr's own, so plain ``zarr`` reads them. JPEG is not part of the Zarr v3
specification; ``JpegCodec`` below is registered with zarr through this package's ``zarr.codecs``
entry point, so plain ``zarr.open(...)`` decodes JPEG arrays whenever ``imitation`` and
``imagecodecs`` are installed — no import of this package is needed.

Images are stored one frame per inner chunk inside shards of many frames. The writer encodes each
frame as it arrives (``FrameEncoder``) and assembles shards itself, so a 50 Hz loop spreads the
encoding cost evenly instead of in bursts, and committed frames are never re-encoded.

Checksums (format 2). Blosc and zstd as configured carry no checksum, so a flipped byte inside a
chunk decodes to wrong numbers without a word. Every chunk of a format-2 store therefore ends with
zarr's ``crc32c`` codec (the CRC-32C of the encoded bytes, 4 bytes little-endian), which zarr
verifies on every read; the project's own shard reader verifies the same bytes.

Imports inside functions are the codecs' own libraries (cv2, numcodecs, google_crc32c,
zarr.codecs): a store reads with only the codecs its arrays use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import JSON, parse_named_configuration

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

JPEG_CODEC_NAME = "imitation.jpeg"
CODEC_NAMES = ("blosc", "zstd", "jpeg", "none")
# Which package decodes each codec; recorded in the store's attrs so a reader knows what to install.
CODEC_PACKAGES = {"blosc": "zarr", "zstd": "zarr", "none": "zarr", "jpeg": "imagecodecs + imitation"}
_DEFAULT_LEVELS = {"blosc": 5, "zstd": 3}


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """Zarr v3 array-to-bytes codec: one uint8 (H, W) or (H, W, C) image per chunk, JPEG-coded.

    Chunks must hold exactly one image (leading axes of size 1 are allowed), which is what the
    store's sharded image arrays use: chunk ``(1, H, W, C)`` inside shards of many frames.
    """

    is_fixed_size = False
    quality: int = 90

    def __init__(self, *, quality: int = 90) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}; use e.g. 90")
        object.__setattr__(self, "quality", int(quality))

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, config = parse_named_configuration(data, JPEG_CODEC_NAME, require_configuration=False)
        return cls(**(config or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        return {"name": JPEG_CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        if np.dtype(dtype.to_native_dtype()) != np.uint8:
            raise ValueError(f"JPEG stores uint8 images only, got dtype {dtype}; choose codec 'zstd'")

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG output size depends on the image content")

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        import imagecodecs

        image = imagecodecs.jpeg8_decode(chunk_bytes.to_bytes())
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(image.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = jpeg_encode(chunk_array.as_numpy_array(), self.quality)
        return chunk_spec.prototype.buffer.from_bytes(data)


def jpeg_encode(image: np.ndarray, quality: int) -> bytes:
    """JPEG-encode one uint8 image given as (H, W), (H, W, C) or with leading axes of size 1.

    OpenCV encodes (it releases the GIL while it works, so a recorder's control loop in another
    thread is not held up; imagecodecs holds it for part of each encode). OpenCV takes colour
    images as BGR, so RGB is handed over reversed; any JPEG decoder then returns RGB."""
    import cv2

    image = np.asarray(image)
    while image.ndim > 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3:
        image = image[..., ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


def normalize_codec(spec: dict[str, Any] | str | None, *, kind: str, dtype: np.dtype) -> dict[str, Any]:
    """Fill in defaults and check a codec spec against the feature it will compress."""
    if spec is None:
        # zstd alone is 5-10x faster than Blosc on uint8 pictures and compresses them as well.
        spec = {"name": "zstd" if kind == "image" else "blosc"}
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    name = spec.get("name")
    if name not in CODEC_NAMES:
        raise ValueError(f"unknown codec {name!r}; choose one of {', '.join(CODEC_NAMES)}")
    if name in _DEFAULT_LEVELS:
        spec.setdefault("level", _DEFAULT_LEVELS[name])
        if not isinstance(spec["level"], int) or not 0 <= spec["level"] <= 22:
            raise ValueError(f"codec {name!r} level must be an integer in 0..22, got {spec['level']!r}")
    if name == "jpeg":
        spec.setdefault("quality", 90)
        if kind != "image" or dtype != np.uint8:
            raise ValueError(
                f"codec 'jpeg' needs a uint8 image feature, got kind {kind!r} dtype {dtype}; "
                "use 'zstd' or 'blosc' for other data"
            )
        if not isinstance(spec["quality"], int) or not 1 <= spec["quality"] <= 100:
            raise ValueError(f"JPEG quality must be an integer in 1..100, got {spec['quality']!r}")
    unknown = set(spec) - {"name", "level", "quality"}
    if unknown:
        raise ValueError(f"codec {name!r} has unknown options {sorted(unknown)}; allowed: level, quality")
    return spec


def zarr_codecs(spec: dict[str, Any], itemsize: int, *, checksum: bool = True) -> list[Any]:
    """The zarr v3 codec chain (array->bytes, then bytes->bytes) for one chunk of a feature,
    ending with ``crc32c`` unless ``checksum`` is False (format 1)."""
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ZstdCodec

    tail = [Crc32cCodec()] if checksum else []
    name = spec["name"]
    if name == "jpeg":
        return [JpegCodec(quality=spec["quality"]), *tail]
    chain: list[Any] = [BytesCodec()]
    if name == "blosc":
        chain.append(
            BloscCodec(
                cname="zstd", clevel=spec["level"], shuffle="shuffle" if itemsize > 1 else "bitshuffle"
            )
        )
    elif name == "zstd":
        chain.append(ZstdCodec(level=spec["level"]))
    return [*chain, *tail]


class ChecksumError(ValueError):
    """Encoded bytes do not match the CRC-32C stored after them."""


def add_checksum(data: bytes | memoryview) -> bytes:
    """``data`` followed by its CRC-32C (4 bytes, little-endian), as zarr's ``crc32c`` codec writes."""
    import google_crc32c

    data = bytes(data)
    return data + google_crc32c.value(data).to_bytes(4, "little")


def strip_checksum(raw: bytes | memoryview) -> memoryview:
    """The encoded bytes in front of a CRC-32C, after checking it; ``ChecksumError`` when it fails."""
    import google_crc32c

    view = memoryview(raw)
    if len(view) < 4:
        raise ChecksumError(f"a checksummed chunk of {len(view)} bytes is shorter than its checksum")
    body = view[:-4]
    # google_crc32c takes bytes or arrays, not memoryviews; an array over the view copies nothing.
    if google_crc32c.value(np.frombuffer(body, np.uint8)) != int.from_bytes(view[-4:], "little"):
        raise ChecksumError("the chunk does not match its CRC-32C checksum")
    return body


class FrameEncoder:
    """Encodes single frames to exactly the bytes zarr's chunk codecs for ``spec`` would decode.

    Used by the writer to build image shards frame by frame. Blosc and zstd frames are
    self-describing, so the bytes of ``numcodecs`` decode through zarr's own codecs. ``encode``
    returns the codec's bytes; the writer appends the checksum (``add_checksum``).
    """

    def __init__(self, spec: dict[str, Any], dtype: np.dtype) -> None:
        self.spec = spec
        self.dtype = np.dtype(dtype)
        name = spec["name"]
        if name == "blosc":
            from numcodecs import Blosc

            shuffle = Blosc.SHUFFLE if self.dtype.itemsize > 1 else Blosc.NOSHUFFLE
            self._codec = Blosc(cname="zstd", clevel=spec["level"], shuffle=shuffle)
        elif name == "zstd":
            from numcodecs import Zstd

            self._codec = Zstd(level=spec["level"])
        else:
            self._codec = None

    def encode(self, frame: np.ndarray) -> bytes:
        frame = np.ascontiguousarray(frame, dtype=self.dtype.newbyteorder("<"))
        name = self.spec["name"]
        if name == "jpeg":
            return jpeg_encode(frame, self.spec["quality"])
        if self._codec is None:
            return frame.tobytes()
        return bytes(self._codec.encode(frame))
