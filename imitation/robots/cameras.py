"""Cameras on real robots: OpenCV capture in a background thread that keeps only the latest frame.

A control loop calls ``read()`` once per tick and never waits on a camera: the capture thread grabs
frames as the device delivers them and replaces the latest one; ``read()`` returns it at once as
``(frame, timestamp, seq)``:

- ``frame``: uint8 (H, W, 3), RGB (OpenCV's BGR is converted; grayscale becomes 3 channels).
  The same array is returned again until a new frame arrives: treat it as read-only.
- ``timestamp``: seconds on ``time.monotonic()``, taken right after ``grab()`` returns. ``grab()``
  returns once the driver has handed over a complete frame; decoding (``retrieve()``, e.g. MJPG)
  comes after and is left out. The USB transfer and driver queue are not, so the timestamp is a
  little late; the driver's own buffer timestamp is not exposed reliably by every OpenCV backend,
  and a clock the control loop shares is worth more. The driver queue is asked to hold one frame.
- ``seq``: the frame's number since ``connect()``, from 0; a repeated ``seq`` is a duplicate read.

Devices are named by a stable path (``/dev/v4l/by-id/...``, resolved to ``/dev/videoN`` on every
open, so a replugged camera is found again), an index (``0``) or a video file (frames paced at the
file's fps or the configured one; replays and tests). ``imitation cameras`` lists attached cameras.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from imitation import config as config_lib
from imitation.errors import ImitationError
from imitation.robots.base import CameraSpec

logger = logging.getLogger(__name__)

DEV_DIR = Path("/dev")
# How long close() waits for the capture thread; a grab() blocked in the driver cannot be interrupted,
# and the thread then releases the device itself when grab() returns.
CLOSE_JOIN_S = 1.0
SKEW_WINDOW = 100_000  # skew samples kept for stats() (the most recent ones)
_FALLBACK_FPS = 30.0  # when neither the source nor the config says


class CameraError(ImitationError):
    """A camera cannot be opened, gives other frames than asked, or has stopped delivering frames."""


@dataclass
class CameraConfig:
    """One entry of a robot config's ``cameras:`` mapping."""

    device: str | int
    """/dev/v4l/by-id/... path (preferred), /dev/videoN, an index, or a video file"""
    width: int | None = None
    """frame width in pixels; None: whatever the device gives"""
    height: int | None = None
    """frame height in pixels; None: whatever the device gives"""
    fps: float | None = None
    """frames per second asked of the device; for a video file, the replay rate (default: the file's)"""
    fourcc: str | None = None
    """pixel format asked of the device, e.g. MJPG (needed by most USB cameras above 640x480 at 30 fps)"""
    resize: bool = False
    """when the device gives another resolution than width x height: resize frames instead of failing"""
    timeout_s: float = 1.0
    """read() raises when no frame has arrived for this long"""
    open_timeout_s: float = 5.0
    """connect() waits this long for the first frame"""
    stale_periods: float = 2.0
    """a read is counted stale when its frame is older than this many frame periods"""
    loop: bool = True
    """video files: start again at the end; False: the source ends (and read() then times out)"""

    def __post_init__(self) -> None:
        if isinstance(self.device, bool) or not isinstance(self.device, str | int):
            raise ValueError(f"device must be a path or an index, got {self.device!r}")
        if isinstance(self.device, int) and self.device < 0:
            raise ValueError(f"device index must be >= 0, got {self.device}")
        if isinstance(self.device, str) and not self.device.strip():
            raise ValueError("device is empty; give a /dev/v4l/by-id/... path (see `imitation cameras`)")
        if (self.width is None) != (self.height is None):
            raise ValueError(
                f"give both width and height or neither, got width={self.width}, height={self.height}"
            )
        for key in ("width", "height"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps!r}")
        if self.fourcc is not None and (len(self.fourcc) != 4 or not self.fourcc.isascii()):
            raise ValueError(f"fourcc must be 4 ASCII characters such as MJPG or YUYV, got {self.fourcc!r}")
        if self.resize and self.width is None:
            raise ValueError("resize: true needs width and height to resize to")
        for key in ("timeout_s", "open_timeout_s", "stale_periods"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)!r}")


@dataclass(frozen=True)
class Source:
    """What a configured device resolves to: the argument OpenCV opens, and whether it is a file."""

    device: str | int
    open_arg: str | int
    is_file: bool


def resolve_source(device: str | int) -> Source:
    """Resolve a configured device: symlinks (by-id) to /dev/videoN, digit strings to indices."""
    if isinstance(device, int):
        return Source(device, device, False)
    if device.isdigit():
        return Source(device, int(device), False)
    path = Path(device).expanduser()
    if not path.exists():
        raise CameraError(
            f"camera device {device} does not exist (unplugged, or renamed?); "
            "`imitation cameras` lists the attached cameras by stable path"
        )
    real = os.path.realpath(path)
    mode = os.stat(real).st_mode
    if stat.S_ISCHR(mode):
        return Source(device, real, False)
    if stat.S_ISREG(mode):
        return Source(device, real, True)
    raise CameraError(f"camera device {device} ({real}) is neither a video device nor a video file")


def _video_capture(source: str | int, api_preference: int) -> Any:
    return cv2.VideoCapture(source, api_preference)


def _api_for(source: Source) -> int:
    if not source.is_file and sys.platform.startswith("linux"):
        return cv2.CAP_V4L2
    return cv2.CAP_ANY


def _fourcc_str(code: float) -> str | None:
    code = int(code)
    if code <= 0:
        return None
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() else None


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV frame (BGR, BGRA or grayscale; uint8 or uint16) -> uint8 (H, W, 3) RGB."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise CameraError(f"unsupported frame dtype {frame.dtype}; expected uint8")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    raise CameraError(f"unsupported frame shape {frame.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")


class Camera:
    """One camera captured in a background thread; ``read()`` returns the latest frame at once.

    ``capture_factory(source, api_preference)`` makes the capture object (default
    ``cv2.VideoCapture``); ``clock`` stamps frames and ages them (default ``time.monotonic``).
    """

    def __init__(
        self,
        name: str,
        config: CameraConfig,
        *,
        capture_factory: Callable[[str | int, int], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config
        self._factory = capture_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()  # first frame published, or the thread ended
        self._thread: threading.Thread | None = None
        self._source: Source | None = None
        self._size: tuple[int, int] | None = (
            (config.width, config.height) if config.width is not None and config.height is not None else None
        )
        self.fps = float(config.fps) if config.fps else _FALLBACK_FPS
        self._reset_state()

    def _reset_state(self) -> None:
        self._latest: tuple[np.ndarray, float, int] | None = None
        self._error: BaseException | None = None  # ends the capture; read() raises it
        self._last_problem: str | None = None  # latest failure the thread is recovering from
        self._frames = 0
        self._first_ts: float | None = None
        self._reconnects = 0
        self._reads = 0
        self._duplicates = 0
        self._stale = 0
        self._skipped = 0
        self._last_read_seq: int | None = None
        self._skews: deque[float] = deque(maxlen=SKEW_WINDOW)

    # -- description -------------------------------------------------------------------------------

    def _where(self) -> str:
        device = self.config.device
        src = self._source
        if src is not None and str(src.open_arg) != str(device):
            return f"camera {self.name!r} ({device} -> {src.open_arg})"
        return f"camera {self.name!r} ({device})"

    @property
    def spec(self) -> CameraSpec:
        """Name and frame size (the configured one, or what the device gave once connected)."""
        if self._size is None:
            raise CameraError(f"{self._where()}: frame size unknown until connect(); or set width and height")
        return CameraSpec(self.name, height=self._size[1], width=self._size[0])

    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    # -- opening -----------------------------------------------------------------------------------

    def _mismatch(self, got_w: int, got_h: int) -> CameraError:
        cfg = self.config
        return CameraError(
            f"{self._where()}: asked {cfg.width}x{cfg.height}, the device gives {got_w}x{got_h}; "
            f"set width: {got_w}, height: {got_h} in its config, or resize: true to scale frames "
            "(`imitation cameras` shows what each camera gives)"
        )

    def _open(self) -> Any:
        """Open the source, apply fourcc / size / fps, read them back and check; returns the capture."""
        cfg = self.config
        self._source = src = resolve_source(cfg.device)
        factory = self._factory or _video_capture
        cap = factory(src.open_arg, _api_for(src))
        if not cap.isOpened():
            cap.release()
            what = "video file" if src.is_file else "device (in use by another program, or unplugged?)"
            raise CameraError(f"{self._where()}: cannot open the {what}; `imitation cameras` lists cameras")
        try:
            if not src.is_file:
                # V4L2 takes the pixel format before the size, and the size before the rate.
                if cfg.fourcc:
                    cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc))
                if cfg.width is not None and cfg.height is not None:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
                if cfg.fps:
                    cap.set(cv2.CAP_PROP_FPS, cfg.fps)
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            got_w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            got_h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            got_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            got_fourcc = _fourcc_str(cap.get(cv2.CAP_PROP_FOURCC))
            # Some backends report 0x0 until the first frame; the capture thread checks frames too.
            if (
                cfg.width is not None
                and got_w > 0
                and got_h > 0
                and (got_w, got_h) != (cfg.width, cfg.height)
            ):
                if not cfg.resize:
                    raise self._mismatch(got_w, got_h)
                logger.warning(
                    "%s: gives %dx%d, resizing to %dx%d", self._where(), got_w, got_h, cfg.width, cfg.height
                )
            if src.is_file:
                self.fps = float(cfg.fps or got_fps or _FALLBACK_FPS)
            else:
                if cfg.fps and got_fps > 0 and abs(got_fps - cfg.fps) > 0.01 * cfg.fps:
                    logger.warning(
                        "%s: asked %g fps, the device gives %g fps", self._where(), cfg.fps, got_fps
                    )
                if cfg.fourcc and got_fourcc and got_fourcc != cfg.fourcc:
                    logger.warning(
                        "%s: asked fourcc %s, the device gives %s", self._where(), cfg.fourcc, got_fourcc
                    )
                self.fps = got_fps if got_fps > 0 else float(cfg.fps or _FALLBACK_FPS)
        except BaseException:
            cap.release()
            raise
        return cap

    def connect(self) -> None:
        """Open the camera, start the capture thread and wait for the first frame."""
        if self._thread is not None:
            return
        self._reset_state()
        cfg = self.config
        self._size = (cfg.width, cfg.height) if cfg.width is not None and cfg.height is not None else None
        self._stop.clear()
        self._ready.clear()
        cap = self._open()
        self._thread = threading.Thread(
            target=self._run, args=(cap,), name=f"camera-{self.name}", daemon=True
        )
        self._thread.start()
        got = self._ready.wait(self.config.open_timeout_s)
        with self._lock:
            error, latest, problem = self._error, self._latest, self._last_problem
        if error is not None or latest is None:
            self.close()
            if isinstance(error, CameraError):
                raise error
            if error is not None:
                raise CameraError(f"{self._where()}: capture failed: {error!r}") from error
            why = f" ({problem})" if problem else ""
            wait = f"in {self.config.open_timeout_s:g} s" if not got else "before the source ended"
            raise CameraError(
                f"{self._where()}: opened but delivered no frame {wait}{why}; "
                "check the cable, the fourcc/resolution asked, or raise open_timeout_s"
            )

    # -- the capture thread ------------------------------------------------------------------------

    def _convert(self, frame: np.ndarray) -> np.ndarray:
        rgb = to_rgb(frame)
        got = (rgb.shape[1], rgb.shape[0])
        if self._size is None:
            self._size = got
        elif got != self._size:
            if not self.config.resize:
                raise self._mismatch(*got)
            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(rgb)

    def _run(self, cap: Any) -> None:
        is_file = self._source is not None and self._source.is_file
        period_s = 1.0 / self.fps
        next_due = time.monotonic()
        backoff_s = 0.05
        rewound = False
        try:
            while not self._stop.is_set():
                if cap is None:
                    with self._lock:
                        self._reconnects += 1
                    try:
                        cap = self._open()
                        is_file = self._source is not None and self._source.is_file
                        backoff_s = 0.05
                        logger.info("%s: reconnected", self._where())
                    except CameraError as e:
                        with self._lock:
                            self._last_problem = str(e)
                        self._stop.wait(backoff_s)
                        backoff_s = min(2 * backoff_s, 1.0)
                        continue
                if is_file:
                    delay = next_due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    # After a hiccup, carry on at the file's rate rather than catching up in a burst.
                    next_due = max(next_due + period_s, time.monotonic())
                ok = cap.grab()
                t = self._clock()
                frame = None
                if ok:
                    ok, frame = cap.retrieve()
                if self._stop.is_set():
                    break
                if not ok or frame is None:
                    if is_file:
                        if self.config.loop and not rewound:
                            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                            rewound = True
                            continue
                        with self._lock:
                            self._last_problem = "the video file ended"
                        break
                    with self._lock:
                        self._last_problem = "the device stopped delivering frames (grab failed)"
                    logger.warning("%s: grab failed; reopening", self._where())
                    cap.release()
                    cap = None
                    continue
                rewound = False
                rgb = self._convert(frame)
                with self._lock:
                    seq = self._frames
                    self._latest = (rgb, t, seq)
                    self._frames += 1
                    if self._first_ts is None:
                        self._first_ts = t
                self._ready.set()
        except BaseException as e:  # handed to read() in the caller's thread
            with self._lock:
                self._error = e
        finally:
            if cap is not None:
                cap.release()
            self._ready.set()

    # -- the consumer side -------------------------------------------------------------------------

    def read(self, tick_time: float | None = None) -> tuple[np.ndarray, float, int]:
        """The latest frame, its capture timestamp (s) and its seq, without waiting.

        ``tick_time`` (same clock as the timestamps): records the skew ``tick_time - timestamp``.
        Raises CameraError when no frame has arrived for ``timeout_s`` or the capture failed.
        """
        if self._thread is None:
            raise CameraError(f"{self._where()}: not connected; call connect() or use `with camera:`")
        now = self._clock()
        with self._lock:
            error, latest, problem = self._error, self._latest, self._last_problem
        if error is not None:
            if isinstance(error, CameraError):
                raise error
            raise CameraError(f"{self._where()}: capture failed: {error!r}") from error
        if latest is None:
            raise CameraError(f"{self._where()}: no frame yet")
        frame, timestamp, seq = latest
        age_s = now - timestamp
        if age_s > self.config.timeout_s:
            why = f" ({problem})" if problem else ""
            raise CameraError(
                f"{self._where()}: no new frame for {age_s:.2f} s (timeout_s={self.config.timeout_s:g}){why}; "
                "check the cable and power, and that no other program uses the camera"
            )
        with self._lock:
            self._reads += 1
            if self._last_read_seq is not None:
                if seq == self._last_read_seq:
                    self._duplicates += 1
                elif seq > self._last_read_seq:
                    self._skipped += seq - self._last_read_seq - 1
            self._last_read_seq = seq
            if age_s > self.config.stale_periods / self.fps:
                self._stale += 1
            if tick_time is not None:
                self._skews.append(tick_time - timestamp)
        return frame, timestamp, seq

    def stats(self) -> dict[str, Any]:
        """Counters since connect() and the camera-to-tick skew in ms (None before any sample)."""
        with self._lock:
            skews_ms = np.asarray(self._skews, dtype=np.float64) * 1000.0
            latest_ts = self._latest[1] if self._latest is not None else None
            out: dict[str, Any] = {
                "frames_captured": self._frames,
                "reads": self._reads,
                "duplicate_reads": self._duplicates,
                "stale_reads": self._stale,
                "skipped_frames": self._skipped,
                "reconnect_attempts": self._reconnects,
                "skew_samples": int(skews_ms.size),
            }
            span_s = (
                latest_ts - self._first_ts if latest_ts is not None and self._first_ts is not None else 0.0
            )
            capture_hz = (self._frames - 1) / span_s if span_s > 0 else None
        for key, q in (("skew_ms_p50", 50), ("skew_ms_p99", 99)):
            out[key] = float(np.percentile(skews_ms, q)) if skews_ms.size else None
        out["skew_ms_max"] = float(skews_ms.max()) if skews_ms.size else None
        out["capture_hz"] = capture_hz
        return out

    def close(self) -> None:
        """Stop the capture thread and release the device; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(CLOSE_JOIN_S)
        if thread.is_alive():
            logger.warning(
                "%s: capture thread still blocked in grab(); it releases the device when grab returns",
                self._where(),
            )

    def __enter__(self) -> Camera:
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Camera({self.name!r}, device={self.config.device!r})"


def make_camera(
    name: str,
    cfg: dict[str, Any],
    *,
    capture_factory: Callable[[str | int, int], Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Camera:
    """A Camera from a robot config's ``cameras: {<name>: {device, width, height, fps, fourcc}}`` entry."""
    config = config_lib.from_dict(CameraConfig, cfg, where=f"cameras.{name}")
    return Camera(name, config, capture_factory=capture_factory, clock=clock)


# -- listing ---------------------------------------------------------------------------------------


@dataclass
class CameraInfo:
    """An attached video node, and what it gives when opened with default settings."""

    path: str
    """stable path (/dev/v4l/by-id/...), or /dev/videoN when the node has none"""
    device: str
    """the /dev/videoN node it resolves to"""
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None
    error: str | None = None
    """why it could not be read (in use, or a metadata node), None when it could"""


def _natural_key(path: Path) -> tuple[str, int]:
    m = re.search(r"(\d+)$", path.name)
    return (path.name[: m.start()] if m else path.name, int(m.group(1)) if m else -1)


def list_cameras(
    dev_dir: str | Path | None = None,
    *,
    probe: bool = True,
    capture_factory: Callable[[str | int, int], Any] | None = None,
) -> list[CameraInfo]:
    """Video nodes under ``dev_dir`` (default /dev): by-id links first, then nodes without one.

    With ``probe``, each is opened and one frame read, to report the resolution and fps it gives.
    """
    dev = Path(dev_dir) if dev_dir is not None else DEV_DIR
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    by_id = dev / "v4l" / "by-id"
    if by_id.is_dir():
        for link in sorted(by_id.iterdir()):
            real = os.path.realpath(link)
            entries.append((str(link), real))
            seen.add(real)
    for node in sorted(dev.glob("video*"), key=_natural_key):
        real = os.path.realpath(node)
        if real not in seen:
            entries.append((str(node), real))
            seen.add(real)
    infos = [CameraInfo(path=path, device=real) for path, real in entries]
    if probe:
        factory = capture_factory or _video_capture
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        for info in infos:
            _probe(info, factory, api)
    return infos


def _probe(info: CameraInfo, factory: Callable[[str | int, int], Any], api: int) -> None:
    try:
        cap = factory(info.device, api)
    except Exception as e:  # reported per node, the listing goes on
        info.error = f"cannot open: {e}"
        return
    try:
        if not cap.isOpened():
            info.error = "cannot open (in use by another program, or not a capture node)"
            return
        ok, frame = cap.read()
        if ok and frame is not None:
            info.height, info.width = int(frame.shape[0]), int(frame.shape[1])
        else:
            info.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
            info.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
            info.error = "opened but gave no frame"
        info.fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        info.fourcc = _fourcc_str(cap.get(cv2.CAP_PROP_FOURCC))
    finally:
        cap.release()


def parser(prog: str = "imitation cameras") -> argparse.ArgumentParser:
    from imitation.config import ArgParser

    p = ArgParser(
        prog=prog,
        description="List attached cameras by stable path, with the resolution and fps each gives. "
        "Put the path in a robot config: cameras: {<name>: {device: <path>, width, height, fps, fourcc}}.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of one line per camera")
    p.add_argument("--no-probe", action="store_true", help="list the nodes without opening them")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "imitation cameras") -> int:
    args = parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    infos = list_cameras(probe=not args.no_probe)
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
        return 0
    if not infos:
        note = (
            ""
            if sys.platform.startswith("linux")
            else " (listing needs Linux; give cameras by index: 0, 1, ...)"
        )
        print(f"no cameras found{note}")
        return 0
    width = max(len(i.path) for i in infos)
    for i in infos:
        if i.error is not None and i.width is None:
            detail = i.error
        else:
            size = f"{i.width}x{i.height}" if i.width else "?x?"
            fps = f"{i.fps:g} fps" if i.fps else "? fps"
            detail = (
                f"{size}  {fps}"
                + (f"  {i.fourcc}" if i.fourcc else "")
                + (f"  ({i.error})" if i.error else "")
            )
        if args.no_probe:
            detail = ""
        print(f"{i.path:<{width}}  {i.device}  {detail}".rstrip())
    return 0
