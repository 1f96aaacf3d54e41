"""Camera geometry: frames of a camera's size brought to a policy's input size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from imitation.errors import ConfigError
from imitation.robots.geometry import CameraFit, camera_fit_meta, camera_fits, center_crop, fit_frame


def usb_frame(h: int = 480, w: int = 640) -> np.ndarray:
    """A frame whose every pixel says where it is (so a wrong crop cannot go unnoticed)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 255 // (h - 1), xx * 255 // (w - 1), (yy + xx) % 256], -1).astype(np.uint8)


def test_center_crop_resize_of_a_usb_frame_by_hand():
    frame = usb_frame()
    out = fit_frame(frame, (96, 96), "center_crop_resize")
    # 480x640 to a square: the centred 480x480 (columns 80..559), then each output pixel is the
    # mean of a 5x5 block (INTER_AREA at an exact factor of 5).
    crop = frame[:, 80:560].astype(np.float64)
    blocks = crop.reshape(96, 5, 96, 5, 3).mean(axis=(1, 3))
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert np.abs(out - blocks).max() <= 0.5 + 1e-9
    assert np.array_equal(out, cv2.resize(frame[:, 80:560], (96, 96), interpolation=cv2.INTER_AREA))
    # Portrait frames lose their top and bottom instead.
    tall = usb_frame(640, 480)
    assert np.array_equal(center_crop(tall, (96, 96)), tall[80:560])
    # A wider input aspect (96x128 from 480x480) cuts rows: 360 of them, from row 60.
    square = usb_frame(480, 480)
    assert np.array_equal(center_crop(square, (96, 128)), square[60:420])


def test_resize_takes_the_whole_frame():
    frame = usb_frame()
    out = fit_frame(frame, (96, 96), "resize")
    assert np.array_equal(out, cv2.resize(frame, (96, 96), interpolation=cv2.INTER_AREA))
    # Its left edge shows the frame's left edge, which a centre crop cuts away.
    assert out[:, 0, 1].max() < 10 and fit_frame(frame, (96, 96), "center_crop_resize")[:, 0, 1].min() > 25


def test_a_frame_of_the_right_size_passes_through_untouched_and_small_frames_are_enlarged():
    frame = usb_frame(96, 96)
    for fit in ("resize", "center_crop_resize"):
        assert fit_frame(frame, (96, 96), fit) is frame
    small = usb_frame(48, 64)
    out = fit_frame(small, (96, 96), "center_crop_resize")
    assert np.array_equal(out, cv2.resize(small[:, 8:56], (96, 96), interpolation=cv2.INTER_LINEAR))
    gray = usb_frame()[..., :1]
    assert fit_frame(gray, (96, 96), "resize").shape == (96, 96, 1)


def test_fits_come_from_the_checkpoint_and_the_command_line_overrides_them():
    meta = {"robot": {"cameras": {"images/top": [96, 96, 3], "images/wrist": [64, 64, 3]}}}
    assert camera_fits(meta) == {}
    meta["robot"]["camera_fit"] = camera_fit_meta({"images/top": (96, 96, 3)}, "center_crop_resize")
    assert meta["robot"]["camera_fit"] == {"images/top": {"size": [96, 96], "fit": "center_crop_resize"}}
    assert camera_fits(meta) == {"images/top": CameraFit((96, 96), "center_crop_resize")}
    fits = camera_fits(meta, ["top=resize", "wrist=center_crop_resize"])
    assert fits == {
        "images/top": CameraFit((96, 96), "resize"),
        "images/wrist": CameraFit((64, 64), "center_crop_resize"),
    }


@pytest.mark.parametrize(
    ("flags", "declared", "message"),
    [
        (["top"], None, r"--camera-fit 'top': write NAME=FIT with FIT one of resize, center_crop_resize"),
        (["top=stretch"], None, "FIT one of resize, center_crop_resize"),
        (["side=resize"], None, r"reads no camera 'side' \(its cameras: top\)"),
        (
            [],
            {"images/top": {"size": [64, 64], "fit": "resize"}},
            "fits frames to 64x64, but the policy reads 96x96",
        ),
        ([], {"images/top": {"size": [96, 96], "fit": "squash"}}, "must be {size: \\[H, W\\], fit: one of"),
        ([], {"images/side": {"size": [96, 96], "fit": "resize"}}, "names a camera the policy does not read"),
    ],
)
def test_bad_fits_are_refused_in_one_line(flags, declared, message):
    meta = {"robot": {"cameras": {"images/top": [96, 96, 3]}}}
    if declared:
        meta["robot"]["camera_fit"] = declared
    with pytest.raises(ConfigError, match=message):
        camera_fits(meta, flags)
