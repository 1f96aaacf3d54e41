"""Simulated camera rate and latency (``camera_fps``, ``camera_latency_ms``): images come from
captures on the camera's own clock and arrive late; the state stays current."""

from __future__ import annotations

import numpy as np
import pytest

import envs  # noqa: F401 - registers the tasks
from envs.base import capture_step, newest_capture
from envs.mapping import make

ENV = "imitation/PickPlace-v0"
CAMS = ("top", "wrist")


def test_newest_capture_by_hand():
    # 25 fps: captures at 0, 40, 80 ms, ... At tick 60 ms with 40 ms latency the newest capture at
    # or before 20 ms is the first (0 ms); at tick 80 ms it is the one at 40 ms.
    assert newest_capture(0.06, 25, 0.04) == 0
    assert newest_capture(0.08, 25, 0.04) == 1
    assert newest_capture(0.02, 25, 0.0) == 0 and newest_capture(0.04, 25, 0.0) == 1
    # Before the latency has passed: the first capture (the scene stood still before the start).
    assert newest_capture(0.0, 25, 0.04) == 0
    # 25 fps, 40 ms late, at the tick at 120 ms (60 steps of 2 ms): the capture at 80 ms (k = 2),
    # though (60 * 0.002 - 0.04) * 25 comes out just below 2 in floating point.
    assert (60 * 0.002 - 0.04) * 25 < 2 and newest_capture(60 * 0.002, 25, 0.04) == 2
    # Capture 1 at 30 fps (33.3 ms) shows the physics step at 32 ms (2 ms steps): number 16.
    assert capture_step(1, 30, 0.002) == 16 and capture_step(3, 30, 0.002) == 50


def run(seed: int = 5, ticks: int = 12, **kw) -> list[dict[str, np.ndarray]]:
    """Observations of one episode driven by the same seeded random actions."""
    env = make(ENV, obs_mode="both", cameras=CAMS, **kw)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(ticks):
        obs, *_ = env.step(rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32))
        out.append(obs)
    env.close()
    return out


def same_images(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[f"images/{c}"], b[f"images/{c}"]) for c in CAMS)


def test_a_camera_at_half_the_control_rate_gives_a_new_image_every_second_tick():
    now = run()
    slow = run(camera_fps=25)
    for t, (o, r) in enumerate(zip(slow, now, strict=True)):
        assert np.array_equal(o["state"], r["state"]) and np.array_equal(o["env_state"], r["env_state"])
        # Captures at 0, 40, 80 ms fall on the even ticks: tick t shows tick 2 * (t // 2)'s image.
        assert same_images(o, now[2 * (t // 2)]), t
    assert not same_images(now[1], now[2])  # the scene does move between ticks


def test_latency_shows_the_capture_at_or_before_the_tick_minus_the_latency():
    now = run()
    late = run(camera_fps=25, camera_latency_ms=40)
    for t, o in enumerate(late):
        tick_s = t / 50
        k = max(0, int(np.floor((tick_s - 0.04) * 25 + 1e-9)))  # the capture at k / 25 s <= t - 40 ms
        assert same_images(o, now[2 * k]), t  # capture k was taken at tick 2k
        assert np.array_equal(o["state"], now[t]["state"])  # the state stays current
    # At the control rate, 40 ms is two ticks late.
    two = run(camera_latency_ms=40)
    assert all(same_images(o, now[max(0, t - 2)]) for t, o in enumerate(two))


def test_thirty_fps_gives_thirty_new_images_a_second_between_the_ticks():
    obs = run(ticks=50, camera_fps=30)  # ticks at 0 ... 1 s
    changes = sum(not same_images(a, b) for a, b in zip(obs, obs[1:], strict=False))
    assert changes == 30  # captures at 1/30 ... 30/30 s, each first seen at the first tick at or after it
    now = run(ticks=50)
    # Tick 5 (100 ms) shows capture 3, which falls on a physics step that is a tick: tick 5's own image.
    assert same_images(obs[5], now[5]) and not same_images(obs[4], now[4])


def test_without_the_options_images_are_the_ticks_own_and_few_frames_are_kept():
    plain = run()
    explicit = run(camera_fps=50, camera_latency_ms=0)
    assert all(same_images(a, b) for a, b in zip(plain, explicit, strict=True))
    env = make(ENV, obs_mode="both", cameras=CAMS, camera_fps=30, camera_latency_ms=100).unwrapped
    env.reset(seed=1)
    kept = []
    for _ in range(40):
        env.step(env.action_space.sample())
        kept.append(len(env._captures))
    assert max(kept) <= 0.1 * 30 + 2
    env.close()


def test_state_only_episodes_never_render_and_bad_values_are_refused():
    env = make(ENV, obs_mode="state", camera_fps=10, camera_latency_ms=50).unwrapped
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env._renderers == {}
    with pytest.raises(ValueError, match="camera_fps=0 must be > 0"):
        make(ENV, camera_fps=0)
    with pytest.raises(ValueError, match="camera_latency_ms=-1 must be ≥ 0"):
        make(ENV, camera_latency_ms=-1)
