"""Feature schema of a demo store and validation of the frames written to it.

A store holds one array per feature; every frame has a value for every feature. A feature is
declared once, when the store is created, and checked on every write, so that a bad frame is
refused with an error naming the key, the expected and the received value before anything
reaches the disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imitation.data.codecs import normalize_codec
from imitation.errors import ImitationError

KINDS = ("state", "action", "image", "scalar")
# Kinds whose values must be finite: a NaN in a state or action poisons normalisation and training.
FINITE_KINDS = ("state", "action", "scalar")
TIMESTAMP = "timestamp"
# Per frame, 1 where an operator drove instead of the policy (imitation deploy --takeover --record).
INTERVENTION = "intervention"


class SchemaError(ImitationError, ValueError):
    """A frame or a feature declaration does not match the store's schema."""


@dataclass(frozen=True)
class Feature:
    """One per-frame feature: its shape (without the frame axis), dtype, role and codec."""

    shape: tuple[int, ...]
    dtype: str
    kind: str
    codec: dict[str, Any] | str = field(default_factory=dict)
    # Optional names of the last axis (joint names for state and action).
    names: tuple[str, ...] | None = None
    # Frames per shard (images) or per chunk (everything else); 0 picks a size from the frame size.
    frames_per_file: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as e:
            raise SchemaError(f"feature dtype {self.dtype!r} is not a numpy dtype; use e.g. 'float32'") from e
        if dtype.kind not in "biuf":
            raise SchemaError(f"feature dtype {dtype} is not numeric or bool; use a numeric dtype")
        object.__setattr__(self, "dtype", dtype.name)
        if self.kind not in KINDS:
            raise SchemaError(f"feature kind {self.kind!r} is unknown; choose one of {', '.join(KINDS)}")
        if any(s <= 0 for s in self.shape):
            raise SchemaError(f"feature shape {self.shape} has a non-positive axis; every axis must be ≥ 1")
        if self.kind == "image" and not (
            len(self.shape) == 3 and self.shape[2] in (1, 3, 4) or len(self.shape) == 2
        ):
            raise SchemaError(f"image shape {self.shape} must be (H, W) or (H, W, C) with C in 1, 3, 4")
        if self.names is not None:
            names = tuple(str(n) for n in self.names)
            if not self.shape or len(names) != self.shape[-1]:
                raise SchemaError(f"{len(names)} names given for a feature of shape {self.shape}")
            object.__setattr__(self, "names", names)
        if self.frames_per_file < 0:
            raise SchemaError(f"frames_per_file must be ≥ 0 (0 = automatic), got {self.frames_per_file}")
        try:
            codec = normalize_codec(self.codec or None, kind=self.kind, dtype=dtype)
        except ValueError as e:
            raise SchemaError(str(e)) from None
        object.__setattr__(self, "codec", codec)

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def frame_nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.np_dtype.itemsize

    @property
    def sharded(self) -> bool:
        """Images are stored one frame per inner chunk inside shards of many frames."""
        return self.kind == "image"

    def file_frames(self) -> int:
        """Frames per file on disk: a shard for images, a chunk otherwise."""
        if self.frames_per_file:
            return self.frames_per_file
        if self.sharded:
            # 10 s at 50 Hz: an hour of three cameras is ~1,100 shard files.
            return 500
        # About 1 MB of raw data per chunk, but never fewer than 1,024 frames.
        return int(min(65536, max(1024, 2 ** round(np.log2(max(1, 2**20 // self.frame_nbytes))))))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "kind": self.kind,
            "codec": dict(self.codec),
            "frames_per_file": self.file_frames(),
        }
        if self.names is not None:
            d["names"] = list(self.names)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Feature:
        unknown = set(d) - {"shape", "dtype", "kind", "codec", "names", "frames_per_file"}
        if unknown:
            raise SchemaError(f"feature declaration has unknown fields {sorted(unknown)}")
        for required in ("shape", "dtype", "kind"):
            if required not in d:
                raise SchemaError(f"feature declaration {dict(d)} lacks {required!r}")
        return cls(
            shape=tuple(d["shape"]),
            dtype=d["dtype"],
            kind=d["kind"],
            codec=d.get("codec") or {},
            names=tuple(d["names"]) if d.get("names") is not None else None,
            frames_per_file=int(d.get("frames_per_file", 0)),
        )


def parse_features(features: Mapping[str, Feature | Mapping[str, Any]]) -> dict[str, Feature]:
    """Turn a mapping of key -> Feature or dict into a checked schema (always with a timestamp)."""
    out: dict[str, Feature] = {}
    for key, f in features.items():
        check_key(key)
        out[key] = f if isinstance(f, Feature) else Feature.from_dict(f)
    if TIMESTAMP not in out:
        out[TIMESTAMP] = Feature(shape=(), dtype="float64", kind="scalar")
    ts = out[TIMESTAMP]
    if ts.shape != () or ts.np_dtype != np.float64:
        raise SchemaError(f"'timestamp' must be a float64 scalar (seconds), got shape {ts.shape} {ts.dtype}")
    for key, f in out.items():
        if f.kind == "image" and not key.startswith("images/"):
            raise SchemaError(f"image feature {key!r} must be named 'images/<camera>'")
    return out


def kind_for(target: str) -> str:
    """The feature kind a target key implies: action, state (state, env_state), image, else scalar."""
    if target == "action":
        return "action"
    if target in ("state", "env_state"):
        return "state"
    if target.startswith("images/"):
        return "image"
    return "scalar"


def check_key(key: str) -> None:
    parts = key.split("/")
    if not key or any(not p or p.startswith(".") or p.startswith("__") for p in parts) or len(parts) > 2:
        raise SchemaError(
            f"feature key {key!r} is not valid: use a name like 'state' or 'images/top' "
            "(at most one '/', no empty or dot-leading parts)"
        )
    if parts[0] in ("meta", "stats", "c"):
        raise SchemaError(f"feature key {key!r} uses a reserved name ({parts[0]!r})")


def validate_frame(features: Mapping[str, Feature], frame: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check one frame against the schema and return it as arrays of the declared dtypes.

    Same-kind casts are accepted (float64 -> float32, Python floats); anything else that differs
    from the declaration (missing or unknown key, shape, dtype kind, NaN/inf, out-of-range
    integers) raises ``SchemaError`` naming the key, what was expected and what was received.
    """
    missing = [k for k in features if k not in frame]
    if missing:
        raise SchemaError(f"frame lacks feature(s) {missing}; every frame needs {sorted(features)}")
    unknown = [k for k in frame if k not in features]
    if unknown:
        raise SchemaError(
            f"frame has unknown feature(s) {unknown}; the store's features are {sorted(features)}"
        )
    out = {}
    for key, feat in features.items():
        value = np.asarray(frame[key])
        want = feat.np_dtype
        if value.shape != feat.shape:
            raise SchemaError(f"feature {key!r}: expected shape {feat.shape}, got {value.shape}")
        if value.dtype != want:
            ok = (
                value.dtype.kind == want.kind
                or (want.kind == "f" and value.dtype.kind in "iu" and key == TIMESTAMP)
                or (want.kind in "iu" and value.dtype.kind in "iu")
            )
            if not ok or (want.kind == "b") != (value.dtype.kind == "b"):
                raise SchemaError(f"feature {key!r}: expected dtype {want}, got {value.dtype}")
            if want.kind in "iu" and value.size:
                info = np.iinfo(want)
                lo, hi = value.min(), value.max()
                if lo < info.min or hi > info.max:
                    raise SchemaError(
                        f"feature {key!r}: values {lo}..{hi} do not fit dtype {want} ({info.min}..{info.max})"
                    )
            value = value.astype(want)
        if feat.kind in FINITE_KINDS and want.kind == "f" and not np.isfinite(value).all():
            bad = np.argwhere(~np.isfinite(value))[0].tolist() if value.ndim else []
            raise SchemaError(f"feature {key!r}: non-finite value (NaN or inf) at index {bad}: {value!r}")
        out[key] = value
    return out
