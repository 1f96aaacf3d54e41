"""Camera geometry: how a camera's frames reach the image size a policy was trained on.

A policy reads images of one size (e.g. 96×96 from simulation); a real camera gives another
(480×640 from a USB camera). A checkpoint may declare, per camera, how frames are brought to its
size, in its meta under ``robot.camera_fit``::

    camera_fit:
      images/top: {size: [96, 96], fit: center_crop_resize}

- ``resize``: the whole frame, scaled to the size (the aspect ratio changes when it differs).
- ``center_crop_resize``: the largest centred part of the frame with the input's aspect ratio,
  then scaled (nothing is stretched; the frame's sides, or top and bottom, are cut off). For a
  policy trained in simulation this keeps the simulated camera's vertical field of view when the
  real camera's matches it (MuJoCo's ``fovy`` is the vertical one).

Shrinking uses ``cv2.INTER_AREA`` (an average over each output pixel's footprint, no aliasing);
enlarging ``cv2.INTER_LINEAR``. A frame already at the size passes through untouched.

``imitation deploy --camera-fit top=center_crop_resize`` (and ``imitation eval --robot``) declares
or overrides a camera's fit from the command line. A camera whose frames differ from the
policy's size and that has no fit, declared or given, is refused as before: guessing how to
squeeze a picture changes what the policy sees, so the choice is the operator's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imitation.errors import ConfigError

FITS = ("resize", "center_crop_resize")


@dataclass(frozen=True)
class CameraFit:
    """How one camera's frames become the policy's input: its size (H, W) and the fit."""

    size: tuple[int, int]
    fit: str

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return fit_frame(frame, self.size, self.fit)


def center_crop(frame: np.ndarray, aspect_hw: tuple[int, int]) -> np.ndarray:
    """The largest centred part of ``frame`` whose height:width is ``aspect_hw`` (a view)."""
    h, w = frame.shape[:2]
    ah, aw = aspect_hw
    if w * ah > aw * h:  # wider than wanted: cut the sides
        cw = round(h * aw / ah)
        x0 = (w - cw) // 2
        return frame[:, x0 : x0 + cw]
    if w * ah < aw * h:  # taller than wanted: cut top and bottom
        ch = round(w * ah / aw)
        y0 = (h - ch) // 2
        return frame[y0 : y0 + ch]
    return frame


def fit_frame(frame: np.ndarray, size: tuple[int, int], fit: str) -> np.ndarray:
    """``frame`` (H, W, C) brought to ``size`` (H, W) by ``fit`` (see the module docstring); a
    frame already at ``size`` is returned as it is."""
    import cv2

    if fit not in FITS:
        raise ValueError(f"fit={fit!r} is not one of {FITS}")
    h, w = int(size[0]), int(size[1])
    if frame.shape[:2] == (h, w):
        return frame
    if fit == "center_crop_resize":
        frame = center_crop(frame, (h, w))
    shrink = frame.shape[0] >= h and frame.shape[1] >= w
    out = cv2.resize(
        np.ascontiguousarray(frame), (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    return out.reshape(h, w, *frame.shape[2:])  # cv2 drops a single channel axis


def camera_fit_meta(images: Mapping[str, Sequence[int]], fit: str) -> dict[str, dict[str, Any]]:
    """The ``robot.camera_fit`` entry of a checkpoint's meta: every camera of ``images`` (key ->
    (H, W, C), as ``IOSpec.images``) fitted by ``fit``."""
    if fit not in FITS:
        raise ConfigError(f"camera fit {fit!r} is not one of {', '.join(FITS)}")
    return {key: {"size": [int(shape[0]), int(shape[1])], "fit": fit} for key, shape in images.items()}


def camera_fits(meta: Mapping[str, Any], flags: Sequence[str] = ()) -> dict[str, CameraFit]:
    """The fits of a checkpoint's cameras: those its meta declares (``robot.camera_fit``), replaced
    by ``flags`` (``NAME=FIT``, e.g. ``top=center_crop_resize``). Cameras with neither have none."""
    robot = meta.get("robot") or {}
    trained = {k: tuple(int(x) for x in v[:2]) for k, v in (robot.get("cameras") or {}).items()}
    names = ", ".join(k.removeprefix("images/") for k in trained) or "none"
    out: dict[str, CameraFit] = {}
    for key, entry in (robot.get("camera_fit") or {}).items():
        where = f"the checkpoint's robot.camera_fit[{key!r}]"
        if key not in trained:
            raise ConfigError(f"{where} names a camera the policy does not read (its cameras: {names})")
        if not isinstance(entry, Mapping) or entry.get("fit") not in FITS:
            raise ConfigError(
                f"{where} is {entry!r}; it must be {{size: [H, W], fit: one of {', '.join(FITS)}}}"
            )
        size = tuple(int(x) for x in entry.get("size") or trained[key])
        if size != trained[key]:
            raise ConfigError(
                f"{where} fits frames to {size[0]}x{size[1]}, but the policy reads {trained[key][0]}x"
                f"{trained[key][1]}; correct the size in its config.yaml"
            )
        out[key] = CameraFit(size, str(entry["fit"]))
    for flag in flags:
        name, sep, fit = flag.partition("=")
        key = f"images/{name}"
        if not sep or fit not in FITS:
            raise ConfigError(
                f"--camera-fit {flag!r}: write NAME=FIT with FIT one of {', '.join(FITS)} "
                f"(e.g. top=center_crop_resize)"
            )
        if key not in trained:
            raise ConfigError(
                f"--camera-fit {flag!r}: the policy reads no camera {name!r} (its cameras: {names})"
            )
        out[key] = CameraFit(trained[key], fit)
    return out
