"""Camera capture: a synthetic MJPG video file, and a fake capture object driven step by step.

The fake capture delivers a frame only when the test calls ``deliver()``, and frames are stamped by
a fake clock, so counters and skew are checked against exact numbers rather than sleeps.
"""

import json
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from imitation.errors import ConfigError
from imitation.robots import cameras
from imitation.robots.base import CameraSpec
from imitation.robots.cameras import Camera, CameraConfig, CameraError, list_cameras, main, make_camera

W, H = cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT
N_FRAMES = 20
GRAY_STEP = 12  # the right half of video frame i is gray level GRAY_STEP * i


class FakeClock:
    def __init__(self, t: float = 10.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeCapture:
    """Mimics cv2.VideoCapture; grab() waits for a frame the test hands over with deliver()."""

    def __init__(
        self,
        width=64,
        height=48,
        fps=50.0,
        *,
        opened=True,
        fixed_size=False,
        frame_size=None,
        gray=False,
        free_run=False,
    ):
        self.props = {W: width, H: height, cv2.CAP_PROP_FPS: fps}
        self.opened = opened
        self.fixed_size = fixed_size  # ignores size requests, like a camera without that mode
        self.frame_size = frame_size  # (w, h) of delivered frames when they differ from what get() says
        self.gray = gray
        self.free_run = free_run  # a frame every 1/fps s without deliver(), like a live camera
        self.sets = []
        self.permits = threading.Semaphore(0)
        self.unblock = threading.Event()
        self.dead = False
        self.released = threading.Event()

    def deliver(self, n=1):
        for _ in range(n):
            self.permits.release()

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.sets.append((prop, value))
        if prop in (W, H) and self.fixed_size:
            return False
        self.props[prop] = value
        return True

    def get(self, prop):
        return float(self.props.get(prop, 0))

    def grab(self):
        if self.free_run and not self.dead:
            time.sleep(1 / self.props[cv2.CAP_PROP_FPS])
            return True
        while not self.permits.acquire(timeout=0.005):
            if self.dead or self.unblock.is_set():
                return False
        return not self.dead

    def retrieve(self):
        w, h = self.frame_size or (int(self.props[W]), int(self.props[H]))
        if self.gray:
            return True, np.full((h, w), 77, np.uint8)
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 0] = 255  # blue in OpenCV's BGR order
        return True, frame

    def read(self):
        return self.retrieve() if self.grab() else (False, None)

    def release(self):
        self.released.set()


class FakeFactory:
    """Hands out the given captures in order (the last one again and again); records what was opened."""

    def __init__(self, *captures):
        self.captures = list(captures)
        self.opened = []

    def __call__(self, source, api):
        self.opened.append((source, api))
        return self.captures.pop(0) if len(self.captures) > 1 else self.captures[0]


def wait_for(predicate, timeout_s=30.0):
    """Poll until ``predicate()``; returns as soon as it holds. The deadline is only a backstop for a
    hung test, generous enough for a loaded machine."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


@pytest.fixture
def make():
    """Builds cameras on fake captures and shuts them all down at the end of the test."""
    made = []

    def _make(*captures, device=0, clock=None, **cfg):
        factory = FakeFactory(*captures)
        cam = Camera(
            "wrist", CameraConfig(device=device, **cfg), capture_factory=factory, clock=clock or FakeClock()
        )
        made.append((cam, captures))
        return cam, factory

    yield _make
    for cam, captures in made:
        for cap in captures:
            cap.unblock.set()
        cam.close()


@pytest.fixture
def by_id(tmp_path):
    """A stable-path symlink to a character device, as /dev/v4l/by-id/... is."""
    link = tmp_path / "v4l" / "by-id" / "usb-Fake_Cam-video-index0"
    link.parent.mkdir(parents=True)
    link.symlink_to("/dev/null")
    return str(link)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """20 frames, 64x48 MJPG at 50 fps: left half blue (BGR 255,0,0), right half gray = 12 * index."""
    path = tmp_path_factory.mktemp("video") / "replay.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (64, 48))
    assert writer.isOpened()
    for i in range(N_FRAMES):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :32] = (255, 0, 0)
        frame[:, 32:] = GRAY_STEP * i
        writer.write(frame)
    writer.release()
    return path


def frame_index(frame: np.ndarray) -> int:
    return round(float(frame[:, 40:].mean()) / GRAY_STEP)


# -- video files --------------------------------------------------------------------------------------


def test_video_file_frames_are_rgb_in_order_and_the_end_times_out(video):
    clock = FakeClock()
    cam = Camera("replay", CameraConfig(device=str(video), fps=200, loop=False), clock=clock)
    with cam:
        assert cam.fps == 200
        assert cam.spec == CameraSpec("replay", height=48, width=64)
        seen = {}

        def read_new():
            frame, ts, seq = cam.read()
            seen[seq] = frame
            return cam.stats()["frames_captured"] == N_FRAMES

        wait_for(read_new)
        frame, ts, seq = cam.read()
        seen[seq] = frame
        assert seq == N_FRAMES - 1 and ts == clock.t
        for seq, frame in seen.items():
            assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
            r, g, b = frame[:, :32].reshape(-1, 3).mean(axis=0)
            assert b > 200 and r < 40 and g < 40, "blue in BGR must come out as blue in RGB"
            assert frame_index(frame) == seq
        # The file has ended: once no frame has come for timeout_s, read() says so.
        clock.t += 1.5

        def ended():
            with pytest.raises(CameraError, match=r"'replay'.*no new frame for 1.50 s") as e:
                cam.read()
            return "the video file ended" in str(e.value)

        wait_for(ended)
    with pytest.raises(CameraError, match="not connected"):
        cam.read()


def test_video_file_paced_at_its_own_fps_and_loops(video):
    cam = Camera("replay", CameraConfig(device=str(video)))
    with cam:
        assert cam.fps == 50  # from the file
    cam = Camera("replay", CameraConfig(device=str(video), fps=100))
    start = time.monotonic()
    with cam:
        wait_for(lambda: cam.stats()["frames_captured"] >= 11)
        frames, elapsed_s = cam.stats()["frames_captured"], time.monotonic() - start
        # Frame k is grabbed no earlier than k periods after the thread starts, however loaded the
        # machine (a slow one only delivers fewer): never faster than asked. Decoding alone would
        # deliver hundreds of frames in the few milliseconds the check above waits.
        assert frames - 1 <= elapsed_s * 100 * (1 + 1e-6)
    # On the wall clock: a loaded machine may leave the capture thread waiting, and read() must not
    # take that for a dead camera.
    cam = Camera("replay", CameraConfig(device=str(video), fps=400, timeout_s=30.0))
    with cam:
        wait_for(lambda: cam.read()[2] >= N_FRAMES + 5)
        frame, _, seq = cam.read()
        assert frame_index(frame) == seq % N_FRAMES


def test_video_file_resolution_mismatch_is_one_clear_line_or_resized(video, tmp_path):
    link = tmp_path / "v4l" / "by-id" / "usb-Replay-video-index0"
    link.parent.mkdir(parents=True)
    link.symlink_to(video)
    cam = Camera("top", CameraConfig(device=str(link), width=32, height=24))
    with pytest.raises(CameraError) as e:
        cam.connect()
    msg = str(e.value)
    assert "\n" not in msg
    for part in (
        "'top'",
        str(link),
        str(video),
        "asked 32x24",
        "gives 64x48",
        "width: 64, height: 48",
        "resize",
    ):
        assert part in msg
    with Camera("top", CameraConfig(device=str(link), width=32, height=24, resize=True)) as cam:
        frame, _, _ = cam.read()
        assert frame.shape == (24, 32, 3)
        assert cam.spec == CameraSpec("top", height=24, width=32)


# -- fake captures ------------------------------------------------------------------------------------


def test_format_set_in_order_and_read_back(make, by_id):
    cap = FakeCapture()
    cap.deliver()
    cam, factory = make(cap, device=by_id, width=1280, height=720, fps=30, fourcc="MJPG")
    cam.connect()
    assert factory.opened == [("/dev/null", cv2.CAP_V4L2 if cameras.sys.platform == "linux" else cv2.CAP_ANY)]
    props = [p for p, _ in cap.sets]
    assert props.index(cv2.CAP_PROP_FOURCC) < props.index(W) < props.index(cv2.CAP_PROP_FPS)
    assert (cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG")) in cap.sets
    assert (cv2.CAP_PROP_BUFFERSIZE, 1) in cap.sets
    assert cam.fps == 30
    frame, _, _ = cam.read()
    assert frame.shape == (720, 1280, 3)
    assert (frame[..., 2] == 255).all() and (frame[..., 0] == 0).all()


def test_device_that_ignores_the_size_asked_fails_with_the_fix(make, by_id):
    cap = FakeCapture(640, 480, fixed_size=True)
    cam, _ = make(cap, device=by_id, width=1280, height=720)
    with pytest.raises(CameraError) as e:
        cam.connect()
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("'wrist'", by_id, "/dev/null", "asked 1280x720", "gives 640x480", "resize: true"):
        assert part in msg
    assert cap.released.is_set()


def test_device_whose_frames_differ_from_what_it_reports(make):
    cap = FakeCapture(frame_size=(32, 24))
    cap.deliver()
    cam, _ = make(cap, width=64, height=48)
    with pytest.raises(CameraError, match="asked 64x48, the device gives 32x24"):
        cam.connect()
    cap2 = FakeCapture(640, 480, fixed_size=True)
    cap2.deliver()
    cam, _ = make(cap2, width=64, height=48, resize=True)
    cam.connect()
    assert cam.read()[0].shape == (48, 64, 3)


def test_grayscale_source_gives_three_channels(make):
    cap = FakeCapture(gray=True)
    cap.deliver()
    cam, _ = make(cap)
    cam.connect()
    frame, _, _ = cam.read()
    assert frame.shape == (48, 64, 3) and (frame == 77).all()


def test_duplicates_stale_skipped_skew_and_timeout(make, by_id):
    clock = FakeClock(10.0)
    cap = FakeCapture(fps=50.0)  # stale after 2 periods = 40 ms
    cap.deliver()
    cam, _ = make(cap, device=by_id, clock=clock)
    cam.connect()
    assert cam.read(tick_time=10.005)[1:] == (10.0, 0)  # skew 5 ms
    clock.t = 10.03
    assert cam.read(tick_time=10.03)[2] == 0  # duplicate, 30 ms old: not stale; skew 30 ms
    clock.t = 10.05
    assert cam.read(tick_time=10.05)[2] == 0  # duplicate, 50 ms old: stale; skew 50 ms
    clock.t = 10.1
    cap.deliver()
    wait_for(lambda: cam.stats()["frames_captured"] == 2)
    assert cam.read(tick_time=10.11)[1:] == (10.1, 1)  # skew 10 ms
    cap.deliver(2)
    wait_for(lambda: cam.stats()["frames_captured"] == 4)
    assert cam.read(tick_time=10.12)[2] == 3  # frame 2 never read; skew 20 ms
    cam.read()  # no tick time: no skew sample
    stats = cam.stats()
    assert {k: stats[k] for k in stats if not k.startswith("skew_ms") and k != "capture_hz"} == {
        "frames_captured": 4,
        "reads": 6,
        "duplicate_reads": 3,
        "stale_reads": 1,
        "skipped_frames": 1,
        "reconnect_attempts": 0,
        "skew_samples": 5,
    }
    # Skews 5, 30, 50, 10, 20 ms -> sorted 5, 10, 20, 30, 50: median 20; p99 at rank 3.96 = 30 + 0.96 * 20.
    assert stats["skew_ms_p50"] == pytest.approx(20, abs=1e-6)
    assert stats["skew_ms_p99"] == pytest.approx(49.2, abs=1e-6)
    assert stats["skew_ms_max"] == pytest.approx(50, abs=1e-6)
    clock.t = 10.1 + 1.2  # no new frame for longer than timeout_s (1 s)
    with pytest.raises(CameraError) as e:
        cam.read()
    assert "'wrist'" in str(e.value) and by_id in str(e.value) and "no new frame for 1.20 s" in str(e.value)


def test_stats_before_any_read_have_no_skew(make):
    cap = FakeCapture()
    cap.deliver()
    cam, _ = make(cap)
    cam.connect()
    stats = cam.stats()
    assert stats["frames_captured"] == 1 and stats["reads"] == 0
    assert stats["skew_ms_p50"] is None and stats["skew_ms_max"] is None
    json.dumps(stats)


def test_camera_that_dies_raises_after_the_timeout_naming_it(make, by_id):
    clock = FakeClock(10.0)
    cap = FakeCapture()
    cap.deliver()
    cam, factory = make(cap, FakeCapture(opened=False), device=by_id, clock=clock)
    cam.connect()
    cap.dead = True
    wait_for(lambda: cam.stats()["reconnect_attempts"] >= 2)
    assert all(source == "/dev/null" for source, _ in factory.opened)
    clock.t = 10.5
    assert cam.read()[2] == 0  # the last frame, still within timeout_s
    clock.t = 11.5
    with pytest.raises(CameraError) as e:
        cam.read()
    msg = str(e.value)
    assert "\n" not in msg
    assert "'wrist'" in msg and by_id in msg and "no new frame" in msg and "cannot open" in msg


def test_camera_that_comes_back_after_a_reconnect(make):
    first, back = FakeCapture(), FakeCapture()
    first.deliver()
    back.deliver()
    cam, _ = make(first, FakeCapture(opened=False), back)
    cam.connect()
    first.dead = True
    wait_for(lambda: cam.stats()["frames_captured"] == 2)
    assert cam.read()[2] == 1
    assert cam.stats()["reconnect_attempts"] == 2
    assert first.released.is_set()


def test_no_first_frame_is_a_clear_error(make, monkeypatch):
    monkeypatch.setattr(cameras, "CLOSE_JOIN_S", 0.05)
    cap = FakeCapture()
    cam, _ = make(cap, open_timeout_s=0.2)
    with pytest.raises(CameraError, match=r"'wrist' \(0\): opened but delivered no frame in 0.2 s"):
        cam.connect()


def test_close_is_prompt_even_while_grab_blocks(make, monkeypatch):
    monkeypatch.setattr(cameras, "CLOSE_JOIN_S", 0.1)
    cap = FakeCapture()
    cap.deliver()
    cam, _ = make(cap)
    cam.connect()
    cam.close()
    assert not cam.is_connected
    # close() returned while grab() was still blocked (only unblock ends it): it did not wait for it.
    assert not cap.released.is_set()
    cap.unblock.set()  # grab() returns: the thread then releases the device itself
    assert cap.released.wait(30.0)
    cam.close()  # twice is fine


def test_context_manager_and_unopenable_device(make, tmp_path, monkeypatch):
    # The capture thread ends at its next grab(); leaving the block waits for it, however long a
    # loaded machine takes to schedule it (close() is never kept waiting by a blocked grab: above).
    monkeypatch.setattr(cameras, "CLOSE_JOIN_S", 30.0)
    cap = FakeCapture(free_run=True)
    cam, _ = make(cap, clock=time.monotonic, timeout_s=30.0)
    with cam as c:
        assert c is cam and cam.is_connected
        wait_for(lambda: cam.read()[2] >= 3)
    assert not cam.is_connected and cap.released.is_set()
    cam, _ = make(FakeCapture(opened=False))
    with pytest.raises(CameraError, match=r"'wrist' \(0\): cannot open the device"):
        cam.connect()
    missing = tmp_path / "v4l" / "by-id" / "usb-Gone-video-index0"
    with pytest.raises(CameraError, match=rf"{missing} does not exist.*imitation cameras"):
        make_camera("top", {"device": str(missing)}).connect()


# -- config -------------------------------------------------------------------------------------------


def test_make_camera_from_a_robot_config_entry():
    entry = yaml.safe_load(
        "{device: /dev/v4l/by-id/usb-046d_C922_Pro_Stream_Webcam-video-index0,"
        " width: 640, height: 480, fps: 30, fourcc: MJPG}"
    )
    cam = make_camera("top", entry)
    assert cam.name == "top" and cam.config.fps == 30.0 and cam.config.fourcc == "MJPG"
    assert cam.spec == CameraSpec("top", height=480, width=640)
    assert make_camera("side", {"device": 2}).config.device == 2


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"device": 0, "fmt": "MJPG"}, "unknown field.*fmt.*fourcc"),
        ({"device": 0, "width": 640}, "both width and height"),
        ({"device": 0, "fourcc": "MJPEG"}, "fourcc must be 4 ASCII characters.*'MJPEG'"),
        ({"device": 0, "fps": 0}, "fps must be > 0"),
        ({"device": 0, "resize": True}, "resize: true needs width and height"),
        ({"width": 640, "height": 480}, "cameras.top"),
    ],
)
def test_make_camera_refuses_bad_entries(entry, message):
    with pytest.raises(ConfigError, match=message):
        make_camera("top", entry)


ROBOT_CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "robots").glob("*.yaml"))


@pytest.mark.parametrize("path", ROBOT_CONFIGS, ids=[p.stem for p in ROBOT_CONFIGS])
def test_camera_entries_of_every_robot_config_are_valid(path):
    for name, entry in (yaml.safe_load(path.read_text()).get("cameras") or {}).items():
        if "device" in entry:  # real cameras; simulated ones (source: sim) belong to the sim robot
            make_camera(name, entry)


def test_device_resolution(by_id, video):
    assert cameras.resolve_source(3) == cameras.Source(3, 3, False)
    assert cameras.resolve_source("1") == cameras.Source("1", 1, False)
    assert cameras.resolve_source(by_id) == cameras.Source(by_id, "/dev/null", False)
    assert cameras.resolve_source(str(video)).is_file


# -- listing ------------------------------------------------------------------------------------------


@pytest.fixture
def dev_dir(tmp_path):
    """video0 (with a by-id link), video1 (cannot be opened) and video10, under a fake /dev."""
    dev = tmp_path / "dev"
    (dev / "v4l" / "by-id").mkdir(parents=True)
    for n in (0, 1, 10):
        (dev / f"video{n}").touch()
    (dev / "v4l" / "by-id" / "usb-Fake_Cam-video-index0").symlink_to("../../video0")
    return dev


def fake_video_capture(source, api):
    cap = FakeCapture(opened=not str(source).endswith("video1"))
    cap.props[cv2.CAP_PROP_FOURCC] = cv2.VideoWriter_fourcc(*"MJPG")
    cap.deliver()
    return cap


def test_list_cameras_prefers_stable_paths(dev_dir):
    infos = list_cameras(dev_dir, capture_factory=fake_video_capture)
    real = os.path.realpath
    assert [(i.path, i.device) for i in infos] == [
        (str(dev_dir / "v4l" / "by-id" / "usb-Fake_Cam-video-index0"), real(dev_dir / "video0")),
        (str(dev_dir / "video1"), real(dev_dir / "video1")),
        (str(dev_dir / "video10"), real(dev_dir / "video10")),
    ]
    assert (infos[0].width, infos[0].height, infos[0].fps, infos[0].fourcc, infos[0].error) == (
        64,
        48,
        50.0,
        "MJPG",
        None,
    )
    assert infos[1].error and "cannot open" in infos[1].error
    assert [i.path for i in list_cameras(dev_dir, probe=False)] == [i.path for i in infos]


def test_cli_lists_cameras_as_text_and_json(dev_dir, monkeypatch, capsys):
    monkeypatch.setattr(cameras, "DEV_DIR", dev_dir)
    monkeypatch.setattr(cameras, "_video_capture", fake_video_capture)
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "usb-Fake_Cam-video-index0" in lines[0] and "64x48  50 fps  MJPG" in lines[0]
    assert "video1" in lines[1] and "cannot open" in lines[1]
    assert main(["--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["width"] for c in listed] == [64, None, 64]
    assert set(listed[0]) == {"path", "device", "width", "height", "fps", "fourcc", "error"}


def test_cli_with_no_cameras(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cameras, "DEV_DIR", tmp_path)
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("no cameras found")
    assert main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cli_on_this_machine(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    if not list(Path("/dev").glob("video*")):
        assert out.startswith("no cameras found")
