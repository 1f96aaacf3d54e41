"""Scene perturbation (``perturb``): scene cameras moved and lights scaled per episode, from the
episode's seed alone; physics and state untouched; off renders as if it had never been on."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from envs.base import PERTURB_CAMERA_DEG, PERTURB_CAMERA_M, PERTURB_LIGHT
from envs.mapping import make

CAMS = {
    "imitation/PickPlace-v0": ("top", "front", "wrist"),
    "imitation/TransferCube-v0": ("top", "left_wrist"),
}


def frames(env, seed: int) -> dict[str, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    return {k: v for k, v in obs.items() if k.startswith("images/")}


@pytest.mark.parametrize("env_id", list(CAMS))
def test_same_seed_same_perturbation_other_seeds_differ(env_id):
    env = make(env_id, obs_mode="both", cameras=CAMS[env_id], perturb=True)
    a, pa = frames(env, 7), env.unwrapped.perturbation
    b = frames(env, 8)
    c, pc = frames(env, 7), env.unwrapped.perturbation
    assert pa == pc and all(np.array_equal(a[k], c[k]) for k in a)
    assert all(not np.array_equal(a[k], b[k]) for k in a)
    plain = frames(make(env_id, obs_mode="both", cameras=CAMS[env_id]), 7)
    assert all(not np.array_equal(a[k], plain[k]) for k in a)  # the pictures do change
    env.close()


@pytest.mark.parametrize("env_id", list(envs.ENVS))
def test_magnitudes_stay_within_bounds_and_wrist_cameras_never_move(env_id):
    env = make(env_id, perturb=True).unwrapped  # state mode: the model changes without rendering
    m, s0 = env.model, env._scene0
    assert set(env.scene_cameras) == {c for c in env.CAMERAS if "wrist" not in c}  # top, front
    lights = []
    for seed in range(40):
        env.reset(seed=seed)
        for i in range(m.ncam):
            name = m.camera(i).name
            shift = m.cam_pos[i] - s0["cam_pos"][i]
            dot = abs(float(np.dot(m.cam_quat[i], s0["cam_quat"][i])))
            angle_deg = np.rad2deg(2 * np.arccos(min(1.0, dot)))
            if name in env.scene_cameras:
                assert np.abs(shift).max() <= PERTURB_CAMERA_M + 1e-12
                assert angle_deg <= PERTURB_CAMERA_DEG + 1e-6
            else:  # a wrist camera rides on the hand
                assert not shift.any() and angle_deg == 0
        factor = m.light_diffuse / s0["light_diffuse"]
        assert np.allclose(factor, factor.flat[0])
        assert np.allclose(m.vis.headlight.diffuse / s0["headlight_diffuse"], factor.flat[0])
        assert np.allclose(m.vis.headlight.ambient / s0["headlight_ambient"], factor.flat[0])
        lights.append(factor.flat[0])
    assert PERTURB_LIGHT[0] <= min(lights) and max(lights) <= PERTURB_LIGHT[1]
    assert max(lights) - min(lights) > 0.3  # the range is used, not a constant
    env.close()


def test_perturb_off_renders_exactly_as_before_even_after_perturbed_episodes():
    env_id, cams = "imitation/PickPlace-v0", CAMS["imitation/PickPlace-v0"]
    fresh = make(env_id, obs_mode="both", cameras=cams, render_mode="rgb_array", render_size=(60, 80))
    want = frames(fresh, 3)
    want_render = fresh.render()
    env = make(
        env_id, obs_mode="both", cameras=cams, render_mode="rgb_array", render_size=(60, 80), perturb=True
    )
    frames(env, 11)
    env.unwrapped.perturb = False  # the model's own values come back at the next reset
    got = frames(env, 3)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert np.array_equal(env.render(), want_render)
    assert env.unwrapped.perturbation == {}


def test_physics_and_state_are_unaffected():
    env_id = "imitation/PushT-v0"
    runs = []
    for perturb in (False, True):
        env = make(env_id, obs_mode="both", cameras=("top",), image_size=(32, 32), perturb=perturb)
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=4)
        trace = [(obs["state"], obs["env_state"], 0.0)]
        for _ in range(15):
            obs, reward, *_ = env.step(
                rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            )
            trace.append((obs["state"], obs["env_state"], reward))
        runs.append(trace)
        env.close()
    for (s0, e0, r0), (s1, e1, r1) in zip(*runs, strict=True):
        assert np.array_equal(s0, s1) and np.array_equal(e0, e1) and r0 == r1


def test_a_reset_without_a_seed_continues_that_seeds_sequence():
    env = make("imitation/PickPlace-v0", perturb=True).unwrapped
    env.reset(seed=5)
    env.reset()
    after = env.perturbation
    env.reset(seed=5)
    first = env.perturbation
    env.reset()
    assert env.perturbation == after and after != first
