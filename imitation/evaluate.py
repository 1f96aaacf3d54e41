"""Evaluation in simulation: ``imitation eval --checkpoint runs/<run> --episodes 100 --seed 100000``.

Many environments step at once (gymnasium's asynchronous vector env: one process per
environment) while the policy acts for all of them in one batch. Each episode has its own seed
(``seed``, ``seed + 1``, …) and the policy's noise generator is reseeded from it, so every
episode's result depends only on its seed, never on how many environments ran beside it.

The policy is handed only the observation keys it reads (``policy_keys``): the environments
drop the others before their observations leave the worker, so privileged state (``env_state``)
never reaches a policy that was not trained on it. ``--camera-fps``/``--camera-latency-ms`` make
the simulated cameras capture at a camera's rate and arrive late, ``--perturb`` moves the scene
cameras and changes the light per episode (``envs/base.py``); all three are recorded in
``results.json``.

Reported: success rate with a 95% Wilson interval, mean return, mean max coverage (tasks that
have one), episode lengths, inference time per step and ``clipped_actions``: the steps whose action
had a value outside the action space (every action is clipped to it before it is sent, as
``imitation record`` does). ``eval/<name>/`` gets ``results.json``
(one record per episode), mp4 videos of the first episodes (named by seed and outcome) and a
PNG summary, each marked as imitation's (``imitation.outputs``). An ``--out`` that holds other
files is refused before the rollouts start, unless ``--overwrite``.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import cv2
import gymnasium
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from tqdm import tqdm

from envs.mapping import camera_changes, check_env_id, locate, make
from imitation import config, outputs
from imitation.checkpoint import consumed_keys, load_policy, read_meta, resolve
from imitation.checks import DEVICE, SEED, InPath, OutPath, Range, check_fields
from imitation.data.store import DemoStore
from imitation.deploy import DeployConfig, ask_operator, deploy, wait_for_reset
from imitation.errors import ConfigError
from imitation.expert import run_expert
from imitation.logs import route_warnings
from imitation.results import (
    EVAL_FILES,
    EVAL_TEMPORARY,
    RESULTS_LAYOUT,
    Episode,
    summarize,
    write_results,
)
from imitation.robots.base import clip_action
from imitation.robots.stack import sim_camera_kwargs
from imitation.scenes import repeated_scenes, training_firsts

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """Roll a trained policy out in simulation and measure its success rate."""

    checkpoint: str = "runs/quickstart"
    """A run directory or one of its checkpoints/<step> folders."""
    env: str | None = None
    """Task to evaluate on (default: the one the training demos came from)."""
    episodes: Annotated[int, Range(ge=1, le=1_000_000)] = 100
    """Episodes to run."""
    seed: Annotated[int, SEED] = 100_000
    """Seed of the first episode; episode i uses seed + i."""
    num_envs: Annotated[int, Range(ge=1, le=1024)] = 8
    """Environments stepping at once (one process each)."""
    out: Annotated[str | None, OutPath("dir")] = None
    """Output directory (default: eval/<run name>)."""
    videos: Annotated[int, Range(ge=0, le=10_000, meaning="0: no videos")] = 4
    """Episodes to save as mp4 (the first ones)."""
    latency_ticks: Annotated[int, Range(ge=0, le=10_000)] = 0
    """Delay the policy's observations by this many control ticks (a real robot's latency)."""
    force: bool = False
    """Evaluate even on seeds that the training demos were recorded with, in scenes of the training
    demos, or with cameras the mapping now renders from another source than the demos had."""
    device: Annotated[str, DEVICE] = "cpu"
    """Where the policy runs: cpu, cuda."""
    robot: str | None = None
    """Evaluate on an arm instead (so100, so101, koch or a configs/robots/*.yaml): the operator
    resets the scene and marks each episode's success."""
    port: str | None = None
    """Serial port of the arm (with --robot)."""
    emulate: bool = False
    """With --robot: the servo emulator whose physics is the simulator (which also judges success)."""
    calibration: Annotated[str | None, InPath("any")] = None
    """Calibration file of the arm (default: ~/.imitation/calibration/<robot>.yaml); a robot of
    several arms: the directory of its arms' files (default ~/.imitation/calibration/<robot>/)."""
    overwrite: bool = False
    """Write into --out even where it holds files imitation did not write (files with the names eval
    writes are replaced; nothing else is touched)."""
    camera_fps: Annotated[float | None, Range(gt=0, le=10_000)] = None
    """Simulated cameras capture at this rate on their own clock (first capture at the episode's
    start) instead of at every control tick; the policy gets the newest capture (images only)."""
    camera_latency_ms: Annotated[float, Range(ge=0, le=60_000)] = 0.0
    """Simulated camera latency: at tick t the policy gets the newest capture taken at or before
    t minus this (images only; the joint state stays current)."""
    perturb: bool = False
    """Per episode, from its seed: move each scene camera (not wrist cameras) by up to ±2 cm and
    3°, and scale the lights by 0.7-1.3 (the robustness a real cell needs)."""
    camera_fit: tuple[str, ...] = ()
    """With --robot: how a camera's frames reach the policy's image size, NAME=FIT with FIT resize or
    center_crop_resize (e.g. top=center_crop_resize); replaces what the checkpoint declares."""
    expert: bool = False
    """Evaluate the task's scripted expert (the one `record --teleop scripted` records with) instead
    of a checkpoint, on the same seeds: the ceiling its imitators are measured against. Needs --env."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.expert and not self.env:
            raise ConfigError("--expert needs --env (a task id of envs/ or a mapping file)")
        if self.expert and self.robot:
            raise ConfigError("--expert runs in simulation; leave out --robot")
        if self.camera_fit and not self.robot:
            raise ConfigError(
                "--camera-fit applies to an arm's cameras (--robot); in simulation the cameras render at "
                "the policy's own image size"
            )


# ------------------------------------------------------------------------------ rollouts
def env_kwargs_for(meta: dict[str, Any]) -> dict[str, Any]:
    """The env options that give a policy the observations it was trained on."""
    cams = meta["io"]["images"]
    if not cams:
        return {"obs_mode": "state"}
    sizes = {tuple(v[:2]) for v in cams.values()}
    if len(sizes) > 1:
        raise ConfigError(
            f"the policy's cameras have different sizes {sizes}; the simulator renders one size"
        )
    return {
        "obs_mode": "both",
        "cameras": tuple(k.removeprefix("images/") for k in cams),
        "image_size": sizes.pop(),
    }


VIDEO_SIZE = (240, 320)  # H, W of the evaluation videos (a mapped env's: 240 high, its camera's aspect)


def policy_keys(policy: torch.nn.Module) -> tuple[str, ...]:
    """The observation keys a policy reads: the inputs of its ``io`` (``cfg.obs_keys`` for a policy
    without one), checked against its checkpoint's ``robot.consumes`` where it came from one."""
    io = getattr(policy, "io", None)
    keys = (*io.lowdim, *io.images) if io is not None else tuple(policy.cfg.obs_keys)
    meta = getattr(policy, "meta", None)
    if meta:
        declared = consumed_keys(meta)
        if set(declared) != set(keys):
            raise ConfigError(
                f"the checkpoint says its policy reads {sorted(declared)}, the loaded policy reads "
                f"{sorted(keys)}; load the checkpoint again (imitation.checkpoint.load_policy)"
            )
    return keys


def only_keys(env: Any, keys: Sequence[str]) -> Any:
    """``env`` whose observations (and observation space) hold only ``keys`` (those it has): what a
    policy does not read, privileged state first, never leaves the environment's process."""

    class OnlyKeys(gymnasium.ObservationWrapper):
        def __init__(self, env: Any) -> None:
            super().__init__(env)
            spaces = env.observation_space.spaces
            self.keys = tuple(k for k in keys if k in spaces)
            self.observation_space = gymnasium.spaces.Dict({k: spaces[k] for k in self.keys})

        def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
            return {k: observation[k] for k in self.keys}

    return OnlyKeys(env)


class Parked(gymnasium.Wrapper):
    """Never steps an episode that ended (terminated or truncated): some environments raise when
    stepped after the end (Meta-World: "You must reset the env manually once truncate==True").

    A vector env steps all its environments together, so a slot whose episode ended and that has
    no episode left to run is parked: ``reset(options={"park": True})`` leaves the environment as
    it is, and every later step returns its last observation (reward 0, neither terminated nor
    truncated, no info) without reaching it. A step after the end without a reset is held the same
    way; a reset without ``park`` starts the next episode as usual."""

    def reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN202
        if options and options.get("park"):
            self._parked = True
            return self._last, {}
        options = {k: v for k, v in (options or {}).items() if k != "park"} or None
        self._last, info = self.env.reset(seed=seed, options=options)
        self._parked = False
        return self._last, info

    def step(self, action):  # noqa: ANN001, ANN202
        if self._parked:
            return self._last, 0.0, False, False, {}
        self._last, reward, terminated, truncated, info = self.env.step(action)
        self._parked = bool(terminated or truncated)
        return self._last, reward, terminated, truncated, info


def _make_env(  # noqa: ANN202 - runs in a worker process
    env_id: str,
    kwargs: dict[str, Any],
    film: frozenset[int] = frozenset(),
    keys: Sequence[str] | None = None,
):

    if multiprocessing.parent_process() is not None:
        route_warnings()  # a worker (a fresh process under forkserver): its warnings to the log too
    if not film:
        env = make(env_id, **kwargs)
        return Parked(only_keys(env, keys) if keys is not None else env)

    class Filming(gymnasium.Wrapper):
        """Puts the rendered scene in ``info["frame"]`` after the reset and every step of the
        episodes whose seed is in ``film`` (the others are not rendered), with the camera images
        the policy receives beside it."""

        def reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN202
            obs, info = self.env.reset(seed=seed, options=options)
            self._on = seed in film
            return obs, self._frame(obs, info)

        def step(self, action):  # noqa: ANN001, ANN202
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs, reward, terminated, truncated, self._frame(obs, info)

        def _frame(self, obs: dict, info: dict) -> dict:
            return {**info, "frame": with_policy_view(self.env.render(), obs)} if self._on else info

    env = make(env_id, render_mode="rgb_array", render_size=VIDEO_SIZE, **kwargs)
    return Parked(Filming(only_keys(env, keys) if keys is not None else env))


def with_policy_view(scene: np.ndarray, obs: dict[str, Any]) -> np.ndarray:
    """The scene with the camera images in ``obs`` (what the policy sees, as it sees them: same
    pixels, enlarged without smoothing) stacked in a column to its right."""

    cams = [np.asarray(obs[k]) for k in sorted(obs) if k.startswith("images/")]
    if not cams:
        return scene
    h = scene.shape[0]
    each = h // len(cams)
    tiles = [
        cv2.resize(c, (max(1, round(c.shape[1] * each / c.shape[0])), each), interpolation=cv2.INTER_NEAREST)
        for c in cams
    ]
    width = max(t.shape[1] for t in tiles)
    column = np.zeros((h, width, 3), dtype=np.uint8)
    for i, t in enumerate(tiles):
        column[i * each : i * each + t.shape[0], : t.shape[1]] = t[..., :3]
    return np.concatenate([scene, column], axis=1)


class _Reel:
    """The frames of one filmed episode, written to an mp4 at ``fps`` (the task's control rate: one
    frame a step) as they come, and named by its outcome when it ends."""

    def __init__(self, out: Path, seed: int, fps: float) -> None:
        self.out, self.seed, self.fps, self.writer = out, seed, fps, None

    def add(self, frame: np.ndarray) -> None:
        if self.writer is None:
            self.out.mkdir(parents=True, exist_ok=True)
            h, w = frame.shape[:2]
            self.tmp = self.out / f".episode_seed{self.seed}.mp4"
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        self.writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))

    def close(self, success: bool | None) -> Path | None:
        """Finish the file (success None: the episode was cut short, and its file removed)."""
        if self.writer is None:
            return None
        self.writer.release()
        if success is None:
            self.tmp.unlink(missing_ok=True)
            return None
        outputs.mark_mp4(self.tmp)
        path = self.out / f"episode_seed{self.seed}_{'success' if success else 'failure'}.mp4"
        self.tmp.replace(path)
        return path


def check_spaces(policy: torch.nn.Module, obs_space: Any, action_space: Any, env_id: str) -> None:
    """Refuse, in one line, an environment whose observations or actions differ from the policy's
    (a task whose layout changed since its demos were recorded, or the wrong task)."""
    io = getattr(policy, "io", None)
    if io is None:
        return
    fix = "record the demos again with this version of the task and retrain, or evaluate on the task they came from"
    wanted = {k: (d,) for k, d in io.lowdim.items()} | {k: tuple(s) for k, s in io.images.items()}
    for key, shape in wanted.items():
        space = obs_space.spaces.get(key) if hasattr(obs_space, "spaces") else None
        if space is None:
            raise ConfigError(f"{env_id} gives no observation {key!r}, which the policy reads; {fix}")
        got = tuple(space.shape) if key in io.images else (int(np.prod(space.shape)),)
        if got != shape:
            raise ConfigError(f"the policy reads {key} of shape {shape} but {env_id} gives {got}; {fix}")
    if int(np.prod(action_space.shape)) != io.action_dim:
        raise ConfigError(
            f"the policy writes {io.action_dim} action values but {env_id} takes {action_space.shape}; {fix}"
        )


def rollout(
    policy: torch.nn.Module,
    env_id: str,
    seeds: Sequence[int],
    *,
    env_kwargs: dict[str, Any] | None = None,
    num_envs: int = 8,
    latency_ticks: int = 0,
    asynchronous: bool = True,
    progress: bool = False,
    videos: int = 0,
    video_dir: Path | None = None,
    trusted: bool = False,
) -> tuple[list[Episode], float]:
    """Run one episode per seed; returns the episodes (in seed order) and the mean inference time
    per batched policy step (s).

    The first ``videos`` episodes are filmed as they run and saved in ``video_dir`` as
    ``episode_seed<seed>_<success|failure>.mp4`` (each such episode's ``video`` says where).

    ``trusted``: the user named ``env_id`` on the command line. Otherwise (an id read from a
    checkpoint or a store) a task that would import code is refused (``envs.mapping.check_env_id``).

    The policy is handed only the keys it reads (``policy_keys``); the environments drop the
    others before their observations leave their processes.

    A policy with ``frame_skip`` k > 1 acts every k control ticks and its action is held between.
    All environments share that cadence, so an episode that ends between two policy steps waits
    for the next one before its slot starts the next seed: every episode then sees the policy at
    its own ticks 0, k, 2k, ... whatever else runs beside it (the slot is reset when the episode
    ends, so that it never steps a finished episode, and again with the same seed when it starts).
    A slot with no seed left is parked (``Parked``): the vector env steps it with the others, but
    its environment is never stepped after its last episode ended.
    """

    check_env_id(env_id, trusted=trusted)
    kwargs = dict(env_kwargs or {})
    keys = policy_keys(policy)
    n = min(num_envs, len(seeds))
    film = frozenset(seeds[: max(0, videos)])
    if film and video_dir is None:
        raise ValueError("videos > 0 needs a video_dir")
    fns = [functools.partial(_make_env, env_id, kwargs, film, keys) for _ in range(n)]
    if asynchronous and n > 1:
        # A forked worker that renders can hang in the graphics driver when its parent rendered
        # before (the quickstart records camera images): rendering workers start from a fresh
        # fork server instead.
        renders = bool(film) or kwargs.get("obs_mode", "state") != "state"
        context = "forkserver" if renders else None
        envs = AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED, context=context)
    else:
        envs = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED)
    device = next(policy.parameters()).device
    frame_skip = int(getattr(policy.cfg, "frame_skip", 1))
    queue = list(seeds)
    slot_seed: list[int | None] = [None] * n  # the episode each slot runs (or waits to start)
    active = np.zeros(n, dtype=bool)  # the slot's episode is running (not waiting, not done)
    results: dict[int, Episode] = {}
    ret = np.zeros(n)
    length = np.zeros(n, dtype=int)
    max_cov = np.full(n, -np.inf)
    clipped = np.zeros(n, dtype=int)  # steps whose action had a value outside the action space
    delayed: list[list[dict[str, np.ndarray]]] = [[] for _ in range(n)]
    reels: list[_Reel | None] = [None] * n  # the film of the slot's episode, if it is filmed

    def start_films(info: dict, started: Sequence[int]) -> None:
        # A slot's film starts when its episode does (frames of a waiting slot are not kept).
        for i in started:
            if slot_seed[i] in film:
                reels[i] = _Reel(video_dir, slot_seed[i], fps)
                reels[i].add(info["frame"][i])

    infer_s, infer_n = 0.0, 0
    bar = tqdm(total=len(seeds), desc=f"eval {env_id}", unit="ep", disable=not progress)
    try:
        check_spaces(policy, envs.single_observation_space, envs.single_action_space, env_id)
        fps = float(envs.get_attr("arm")[0].control_hz) if film else 0.0  # frames a second: steps a second
        first = [queue.pop(0) for _ in range(n)]
        obs, info = envs.reset(seed=first)
        slot_seed = list(first)
        active[:] = True
        start_films(info, range(n))
        policy.reset(seeds=first)
        space = envs.single_action_space
        action = np.zeros((n, *space.shape), dtype=np.float32)
        over = np.zeros(n, dtype=bool)
        tick = 0
        while any(s is not None for s in slot_seed):
            if tick % frame_skip == 0:
                start = np.array([s is not None and not active[i] for i, s in enumerate(slot_seed)])
                if start.any():
                    # The waiting slots start their episodes at this policy step.
                    chosen = [s if s is not None else 0 for s in slot_seed]
                    fresh, info = envs.reset(seed=chosen, options={"reset_mask": start})
                    for k in obs:
                        obs[k][start] = fresh[k][start]
                    start_films(info, np.flatnonzero(start))
                    policy.reset(torch.as_tensor(start), seeds=chosen)
                    for i in np.flatnonzero(start):
                        ret[i], length[i], max_cov[i], clipped[i] = 0.0, 0, -np.inf, 0
                        delayed[i] = []
                    active |= start
            # What each environment's policy sees: this tick's observation, or one latency_ticks old.
            now = [{k: obs[k][i] for k in keys} for i in range(n)]
            for i in range(n):
                delayed[i].append(now[i])
                if len(delayed[i]) > latency_ticks + 1:
                    delayed[i].pop(0)
            if tick % frame_skip == 0:
                seen = {
                    k: torch.as_tensor(np.stack([delayed[i][0][k] for i in range(n)])).to(device)
                    for k in keys
                }
                t = time.perf_counter()
                action = policy.select_action(seen).float().cpu().numpy()
                infer_s += time.perf_counter() - t
                infer_n += 1
                # The environment gets the action within its bounds (as the recorder sends it).
                action, over = clip_action(action, space.low, space.high)
            clipped += over & active
            obs, reward, terminated, truncated, info = envs.step(action)
            tick += 1
            ret += reward
            length += 1
            if "coverage" in info:
                max_cov = np.maximum(max_cov, info["coverage"])
            for i in range(n):
                if reels[i] is not None and active[i]:
                    reels[i].add(info["frame"][i])
            done = np.asarray(terminated) | np.asarray(truncated)
            finished = [i for i in range(n) if done[i] and active[i]]
            if not finished:
                continue
            for i in finished:
                cov = float(max_cov[i]) if np.isfinite(max_cov[i]) else None
                success = bool(info["is_success"][i])
                video = reels[i].close(success) if reels[i] is not None else None
                reels[i] = None
                results[slot_seed[i]] = Episode(
                    int(slot_seed[i]),
                    success,
                    float(ret[i]),
                    int(length[i]),
                    cov,
                    video and str(video),
                    int(clipped[i]),
                )
                bar.update(1)
                active[i] = False
                slot_seed[i] = queue.pop(0) if queue else None  # None: this slot has no more episodes
            # A slot with no episode left is parked: never stepped again (Parked).
            done_for_good = np.array([i in finished and slot_seed[i] is None for i in range(n)])
            if done_for_good.any():
                envs.reset(seed=[0] * n, options={"reset_mask": done_for_good, "park": True})
            if frame_skip > 1:
                # Until the next policy step, the slots step a fresh episode of their next seed
                # (started again then), not a finished one.
                mask = np.array([i in finished and slot_seed[i] is not None for i in range(n)])
                if mask.any():
                    fresh, _ = envs.reset(
                        seed=[s if s is not None else 0 for s in slot_seed], options={"reset_mask": mask}
                    )
                    for k in obs:
                        obs[k][mask] = fresh[k][mask]
    finally:
        for reel in reels:
            if reel is not None:
                reel.close(None)
        bar.close()
        envs.close()
    return [results[s] for s in seeds], infer_s / max(1, infer_n)


# ------------------------------------------------------------------------------ outputs
def training_seeds(meta: dict[str, Any]) -> set[int]:
    """Seeds the training demos were recorded with (empty when unknown)."""

    path = (meta.get("dataset") or {}).get("path")
    if not path or not Path(path).exists():
        return set()
    seeds = DemoStore.open(path).meta_table()["seed"]
    return {int(s) for s in np.asarray(seeds) if s >= 0}


def checkpoint_env(meta: dict[str, Any], ckpt: Path) -> str:
    """The task a checkpoint's demos came from, found from here: a mapping's path as typed when the
    demos were recorded may be relative to where that ran, so its absolute path (the checkpoint's, or
    its demo store's) and the folders of the checkpoint and the store are tried too (``locate``)."""
    robot = meta.get("robot") or {}
    env_id = robot.get("env_id")
    if not env_id:
        raise ConfigError(
            f"{ckpt} does not say which task its demos came from; pass --env imitation/<Task>-v0"
        )
    near: list[Path] = [ckpt]
    env_path = robot.get("env_path")
    store = (meta.get("dataset") or {}).get("path")
    if store and Path(store).exists():
        near.append(Path(store))
        recorded = DemoStore.open(store).robot
        if recorded.get("env_id") == env_id:
            env_path = env_path or recorded.get("env_path")
    return locate(env_id, env_path=env_path, near=near, origin=f"checkpoint {ckpt}")


# What eval writes into its --out: recognised by these names (and the mark) when it runs again there.
def output_dir(cfg: EvalConfig) -> Path:
    """Where ``cfg`` writes: --out, or eval/<run> (eval/<run>_<robot> on an arm)."""
    if cfg.out:
        return Path(cfg.out)
    if cfg.expert:
        return Path("eval") / f"expert_{Path(str(cfg.env)).stem.replace('/', '_')}"

    ckpt = resolve(cfg.checkpoint)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt
    return Path("eval") / (f"{run.name}_{cfg.robot}" if cfg.robot else run.name)


def check_outputs(cfg: EvalConfig) -> Path:
    """The output directory of ``cfg``, refused (ConfigError) where it holds files imitation did not
    write, unless ``cfg.overwrite``. Cheap, and with --out given it needs no checkpoint yet: call it
    before the long work (a quickstart or a benchmark checks its evaluation folder before training)."""
    out = output_dir(cfg)
    outputs.check_dir(
        out,
        EVAL_FILES,
        command="imitation eval",
        overwrite=cfg.overwrite,
        temporary=EVAL_TEMPORARY,
        legacy_keys=RESULTS_LAYOUT,
    )
    return out


def evaluate(
    cfg: EvalConfig, policy: torch.nn.Module | None = None, progress: bool | None = None
) -> dict[str, Any]:
    """Run the evaluation and write its outputs; returns the summary. The progress bar shows on a
    terminal unless ``progress`` says otherwise."""
    progress = sys.stderr.isatty() if progress is None else progress
    if cfg.robot:
        return evaluate_on_robot(cfg)
    if cfg.expert:
        return evaluate_expert(cfg, progress)

    ckpt = resolve(cfg.checkpoint)
    out = check_outputs(cfg)  # before the policy loads and the rollouts start
    meta = read_meta(ckpt)
    if policy is None:
        policy = load_policy(ckpt, cfg.device)
    env_id = cfg.env or checkpoint_env(meta, ckpt)

    # A clear error for an unknown task or a bad mapping before any worker starts; a task the
    # checkpoint names may not import code (the user's own --env may).
    check_env_id(env_id, trusted=bool(cfg.env), origin=f"checkpoint {ckpt}")
    check_camera_sources(env_id, meta, ckpt, cfg.force)
    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
    used = training_seeds(meta)
    overlap = used & set(seeds)
    if overlap and not cfg.force:
        raise ConfigError(
            f"{len(overlap)} evaluation seed(s) (e.g. {min(overlap)}) were used to record the training demos; "
            f"choose another --seed (the demos use {min(used)}..{max(used)}) or pass --force"
        )
    repeats = check_scenes(env_id, seeds, meta, cfg.force)
    kwargs = env_kwargs_for(meta)
    kwargs |= sim_camera_kwargs(
        cfg.camera_fps, cfg.camera_latency_ms, cfg.perturb, bool(meta["io"]["images"]), env_id
    )
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    episodes, infer_s = rollout(
        policy,
        env_id,
        seeds,
        env_kwargs=kwargs,
        num_envs=cfg.num_envs,
        latency_ticks=cfg.latency_ticks,
        progress=progress,
        videos=cfg.videos,
        video_dir=out,
        trusted=True,  # checked above
    )
    summary = summarize(episodes)
    summary |= {
        "env": env_id,
        "checkpoint": str(ckpt),
        "seeds": [seeds[0], seeds[-1]],
        "clipped_actions": sum(e.clipped_actions for e in episodes),
        "repeated_training_scenes": repeats,
        "latency_ticks": cfg.latency_ticks,
        "camera_fps": cfg.camera_fps,
        "camera_latency_ms": cfg.camera_latency_ms,
        "perturb": cfg.perturb,
        "inference_ms_per_step": 1e3 * infer_s,
        "wall_s": time.perf_counter() - t0,
    }
    if cfg.videos:
        summary["videos"] = [e.video for e in episodes if e.video]
    return write_results(out, summary, config.to_dict(cfg), episodes)


def check_camera_sources(env_id: str, meta: dict[str, Any], ckpt: Path, force: bool) -> None:
    """Refuse (unless ``force``, then warn) a mapping that renders one of the policy's cameras from
    another source than its demos were recorded with: the mapping file changed since, or another was
    named, and the policy would be shown a view it never saw."""
    robot = meta.get("robot") or {}
    cams = [k.removeprefix("images/") for k in robot.get("cameras") or {}]
    changes = camera_changes(env_id, robot.get("camera_sources") or {}, cams)
    if not changes:
        return
    what = (
        f"{env_id} renders the policy's camera(s) from another source than its demos were recorded "
        f"with ({'; '.join(changes)})"
    )
    if force:
        log.warning("%s; evaluating anyway (--force)", what)
        return
    raise ConfigError(
        f"{what}, so checkpoint {ckpt} would see views it was never trained on; pass --env with a "
        "mapping that renders them as recorded, or --force to evaluate anyway"
    )


def check_scenes(env_id: str, seeds: Sequence[int], meta: dict[str, Any], force: bool) -> int | None:
    """Compare every evaluation episode's first observation with the training demos' first
    observations (``imitation.scenes``): refuse repeats unless ``force``; their count (None: not
    checked, the training store is gone or its first observations do not tell scenes apart)."""
    firsts = training_firsts((meta.get("dataset") or {}).get("path"))
    if firsts is None or len(np.unique(firsts[0], axis=0)) < 2:
        log.info(
            "evaluation scenes not compared with the training demos' (no store, or no scene in its state)"
        )
        return None
    env = make(env_id, obs_mode="state")
    try:
        repeats = repeated_scenes(env, seeds, firsts[0])
    finally:
        env.close()
    if repeats and not force:
        s, e = next(iter(repeats.items()))
        raise ConfigError(
            f"{len(repeats)} of {len(seeds)} evaluation episodes start in a scene of the training demos (seed {s} "
            f"gives the first observation of demo episode {e}, recorded with seed {firsts[1][e]}): the task's "
            "scene does not follow its seed, so these are not unseen scenes; make its reset draw the scene "
            "from the seed, or pass --force to evaluate anyway (results.json counts the repeats)"
        )
    return len(repeats)


def evaluate_expert(cfg: EvalConfig, progress: bool) -> dict[str, Any]:
    """``imitation eval --expert``: the task's scripted expert on the seeds, the same outputs."""
    out = check_outputs(cfg)
    env_id = str(cfg.env)
    check_env_id(env_id, trusted=True)
    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
    episodes, wall = run_expert(env_id, seeds, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(episodes) | {
        "env": env_id,
        "checkpoint": None,
        "expert": True,
        "seeds": [seeds[0], seeds[-1]],
        "clipped_actions": sum(e.clipped_actions for e in episodes),
        "wall_s": wall,
    }
    return write_results(out, summary, config.to_dict(cfg), episodes)


def evaluate_on_robot(cfg: EvalConfig) -> dict[str, Any]:
    """``imitation eval --robot``: the evaluator on an arm. Between episodes the operator resets the
    scene; after each one they mark success (under --emulate the simulator judges). The same
    results.json and Wilson interval as in simulation."""
    folder = check_outputs(cfg)  # before the first episode, not after the last
    dc = DeployConfig(
        checkpoint=cfg.checkpoint,
        robot=cfg.robot,
        port=cfg.port,
        emulate=cfg.emulate,
        env=cfg.env,
        episodes=cfg.episodes,
        seed=cfg.seed,
        calibration=cfg.calibration,
        device=cfg.device,
        camera_fit=tuple(cfg.camera_fit),
        camera_fps=cfg.camera_fps,
        camera_latency_ms=cfg.camera_latency_ms,
        perturb=cfg.perturb,
    )
    t0 = time.perf_counter()
    out = deploy(dc, judge=ask_operator, before=wait_for_reset)
    episodes = [Episode(int(e["seed"]), bool(e["success"]), 0.0, int(e["ticks"])) for e in out["episodes"]]
    summary = summarize(episodes)
    summary |= {
        "env": f"{cfg.robot}" + (" (emulated)" if cfg.emulate else ""),
        "checkpoint": out["checkpoint"],
        "seeds": [cfg.seed, cfg.seed + cfg.episodes - 1],
        "latency_ticks": 0,
        "camera_fit": out["camera_fit"],
        "camera_fps": cfg.camera_fps,
        "camera_latency_ms": cfg.camera_latency_ms,
        "perturb": cfg.perturb,
        "inference_ms_per_step": out["inference_ms_p50"],
        "wall_s": time.perf_counter() - t0,
        "timing": out["timing"],
        "clamps": out["clamps"],
        "starved": out["starved"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    return write_results(folder, summary, config.to_dict(cfg), episodes)


def format_summary(s: dict[str, Any]) -> str:
    lo, hi = s["success_ci95"]
    lines = [
        f"{s['env']}: success {s['successes']}/{s['episodes']} = {s['success_rate']:.1%} "
        f"(95% CI {lo:.1%}–{hi:.1%}), seeds {s['seeds'][0]}–{s['seeds'][1]}",
        f"mean return {s['mean_return']:.2f}; episode length mean {s['mean_length']:.0f} "
        f"(min {s['min_length']}, max {s['max_length']})"
        + (
            f"; inference {s['inference_ms_per_step']:.1f} ms per step"
            if "inference_ms_per_step" in s
            else ""
        )
        + ("; the task's scripted expert" if s.get("expert") else ""),
    ]
    if "mean_max_coverage" in s:
        lines.append(f"mean max coverage {s['mean_max_coverage']:.3f}")
    if s.get("clipped_actions"):
        lines.append(f"{s['clipped_actions']} step(s) had an action outside the action space, clipped to it")
    if s.get("repeated_training_scenes"):
        lines.append(
            f"{s['repeated_training_scenes']} episode(s) started in a scene of the training demos (--force)"
        )
    lines.append(
        f"results {s['results']}; plot {s['plot']}"
        + (f"; {len(s['videos'])} video(s)" if s.get("videos") else "")
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "imitation eval") -> int:
    cfg = config.parse(
        EvalConfig, list(sys.argv[1:] if argv is None else argv), prog=prog, description=EvalConfig.__doc__
    )
    print(format_summary(evaluate(cfg)))
    return 0
