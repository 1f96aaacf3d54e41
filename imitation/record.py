"""``imitation record``: demonstrations into a demo store.

The loop is the project's one loop shape — observe, ask the source for an action, act, store the
observation with the action actually sent. Its first source is a simulated task's scripted expert
(``--teleop scripted``), run as fast as the simulator allows. A failed expert episode is discarded
and counted. Episode ``k`` of the attempts uses env seed ``seed + k``, stored in the episode's
metadata, so the same command and seed give identical state and action arrays.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from tqdm import tqdm

from envs.mapping import make
from imitation import config
from imitation.checks import SEED, InPath, OutPath, Range, check_fields
from imitation.data.store import DemoStore, EpisodeWriter, discard_new_store
from imitation.errors import ConfigError
from imitation.robots.sim import SimRobot
from imitation.robots.stack import store_features
from imitation.scenes import check_reproducible
from imitation.session import record_session

log = logging.getLogger(__name__)


@dataclass
class RecordConfig:
    """Record demonstrations of a simulated task with its scripted expert into a demo store."""

    env: str = "imitation/PickPlace-v0"
    """Simulated task: an id of envs/ or the path of an environment mapping (configs/envs/*.yaml)."""
    teleop: Literal[
        "scripted",
        "keyboard",
        "gamepad",
        "spacemouse",
        "so100-leader",
        "koch-leader",
        "aloha-leader",
        "so101-bimanual-leader",
    ] = "scripted"
    """Source of actions: scripted (the task's expert, as fast as the simulator allows, unless
    --robot is given), or a human device driving the robot in real time (keys: Enter starts an
    episode and saves it, r re-records it, d discards it, q quits after closing the store)."""
    robot: str | None = None
    """Operator session on this robot: sim (the simulated task in real time), so100, so101, koch, or
    a configs/robots/*.yaml path. Default: sim for a human device; none (offline) for scripted."""
    port: str | None = None
    """Serial port of a real follower arm; a robot of several arms: left=<path>,right=<path> (or
    the ports its config names)."""
    emulate: bool = False
    """Run the session on the servo emulator whose physics is the simulator (no hardware)."""
    leader_port: str | None = None
    """Serial port of the leader arm (--teleop so100-leader / koch-leader); a leader pair
    (aloha-leader, so101-bimanual-leader): left=<path>,right=<path>, or the ports its config names."""
    calibration: Annotated[str | None, InPath("any")] = None
    """Calibration file of the follower (default: ~/.imitation/calibration/<robot>.yaml); a robot
    of several arms: the directory of its arms' files (default ~/.imitation/calibration/<robot>/)."""
    episode_s: Annotated[float, Range(gt=0, le=86_400)] = 60.0
    """Operator sessions: longest episode in seconds (it is saved when time runs out)."""
    reset_s: Annotated[float, Range(ge=0, le=86_400)] = 5.0
    """Operator sessions: reset period after each episode (not recorded); Enter starts the next one
    earlier, and it starts by itself afterwards with --auto-start."""
    warmup_s: Annotated[float, Range(ge=0, le=3600)] = 1.0
    """Operator sessions: the loop runs this long before the first episode can start."""
    auto_start: bool = False
    """Operator sessions: start the next episode when the reset period ends, without Enter."""
    ui: Literal["auto", "window", "terminal", "none"] = "auto"
    """Operator sessions: an OpenCV window with the cameras and status (auto: when a display is
    present), a status line in the terminal, or nothing."""
    operator: str = ""
    """Operator name stored with each episode."""
    episodes: Annotated[int, Range(ge=1, le=1_000_000)] = 50
    """Successful episodes to record."""
    out: Annotated[Path, OutPath("dir")] = Path("demos/pick_place.zarr")
    """Demo store to write (appended to when it exists with the same features). The resolved config
    is saved beside it as <name>.yaml, which must be absent or a config imitation saved there."""
    seed: Annotated[int, SEED] = 0
    """First env seed; attempt k uses seed + k (when appending, seeds continue after the store's)."""
    obs_mode: Literal["state", "images", "both"] = "both"
    """Observations to record: state only (no rendering), images, or both."""
    cameras: tuple[str, ...] | None = None
    """Cameras to record when obs_mode includes images (default: top; a mapping's: all of its own)."""
    image_size: Annotated[tuple[int, int] | None, Range(ge=8, le=4096)] = None
    """Camera image height and width, in pixels (default: 96 x 96; a mapping's: its own sizes)."""
    image_codec: Literal["zstd", "blosc", "jpeg", "none"] = "zstd"
    """Codec of camera images (simulation frames compress well losslessly)."""
    task: str = ""
    """Task text stored with each episode (default: the env id)."""
    max_attempts: Annotated[int | None, Range(ge=1)] = None
    """Give up after this many attempts (default: 2 x episodes + 10)."""
    tail_s: Annotated[float, Range(ge=0, le=3600)] = 0.5
    """Keep recording the expert this long after success (its release and retreat), so that a
    policy sees how a task is finished, not only how it is reached; episodes stop at the time limit."""
    action_noise: Annotated[float, Range(ge=0, le=10)] = 0.0
    """Std of a smooth random offset (time constant 0.2 s) added to the actions the expert
    commands, in the action's units (rad for joint targets, the action space's units for
    end-effector steps); the stored action stays the expert's own. Demos then show how to get
    back to the expert's path from nearby states, which a policy needs when its own small errors
    take it there (DART, Laskey et al. 2017). Grippers are not perturbed (a value whose name
    holds "grip", or those a mapping names in ``grippers``); 0 turns it off."""
    keep_failed: bool = False
    """Also save the episodes the expert failed (outcome "failure") instead of discarding them."""

    def __post_init__(self) -> None:
        check_fields(self)


class ActionNoise:
    """A seeded Ornstein-Uhlenbeck offset on the arm's action dimensions: stationary std ``std``
    (in the action's units), correlation time ``tau_s``; zero on the grippers
    (``RobotSpec.gripper_dims``: by default any value whose name holds "grip")."""

    def __init__(self, std: float, spec, seed: int, tau_s: float = 0.2) -> None:  # noqa: ANN001
        self.std = std
        self.rng = np.random.default_rng([seed, 0x6E6F6973])
        self.decay = float(np.exp(-1.0 / (tau_s * spec.control_hz)))
        self.mask = np.ones(len(spec.joint_names), dtype=np.float32)
        self.mask[list(spec.gripper_dims)] = 0.0
        self.x = self.rng.normal(0.0, std, len(self.mask)) * self.mask if std else np.zeros(len(self.mask))

    def __call__(self) -> np.ndarray:
        if not self.std:
            return np.zeros_like(self.mask)
        step = self.std * np.sqrt(1.0 - self.decay**2)
        self.x = self.decay * self.x + step * self.rng.normal(size=self.x.shape) * self.mask
        return self.x.astype(np.float32)


def check_env_seeds(env_id: str, seed: int) -> None:
    """Refuse a task whose scene does not follow its reset seed (``imitation.scenes``): its
    recorded seeds would say nothing about which scenes an evaluation has seen."""
    env = make(env_id, obs_mode="state")
    try:
        check_reproducible(env, seed, env_id)
    finally:
        env.close()


def record_scripted(cfg: RecordConfig, *, progress: bool | None = None) -> dict:
    """Record ``cfg.episodes`` expert episodes (successful ones, unless ``keep_failed``); returns
    counts and timing. ``clipped_actions`` counts the steps (of every attempt) whose action had a
    value outside the action space, clipped to it before it was sent and stored."""

    if cfg.episodes < 1:
        raise ConfigError(f"--episodes must be ≥ 1, got {cfg.episodes}")
    if cfg.action_noise < 0:
        raise ConfigError(f"--action-noise must be ≥ 0 (in the action's units), got {cfg.action_noise}")
    check_env_seeds(cfg.env, cfg.seed)
    robot = SimRobot(cfg.env, obs_mode=cfg.obs_mode, cameras=cfg.cameras, image_size=cfg.image_size)
    features = store_features(robot.spec)
    for f in features.values():
        if f["kind"] == "image":
            f["codec"] = cfg.image_codec
    first_seed = cfg.seed
    if (cfg.out / "zarr.json").exists():
        stored = DemoStore.open(cfg.out).meta_table()["seed"]
        if stored.size and stored.max() >= first_seed:
            # Appending: never record a scene (seed) that the store already holds.
            first_seed = int(stored.max()) + 1
            log.info(
                "%s already holds seeds up to %d; continuing from seed %d",
                cfg.out,
                first_seed - 1,
                first_seed,
            )
    t0 = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    created = not cfg.out.exists() and not cfg.out.is_symlink()
    opened = False
    try:
        with (
            robot,
            EpisodeWriter(
                cfg.out, features=features, fps=robot.spec.control_hz, robot=robot.spec.to_dict()
            ) as writer,
        ):
            opened = True
            saved, failed, steps, frames = _record_episodes(cfg, robot, writer, first_seed, show)
    except BaseException as e:
        if created and opened:
            discard_new_store(cfg.out, e)
        raise
    return {
        "episodes": saved,
        "failed": failed,
        "steps": steps,
        "frames": frames,
        "clipped_actions": robot.clipped_actions,
        "wall_s": time.perf_counter() - t0,
    }


def _record_episodes(
    cfg: RecordConfig, robot: Any, writer: Any, first_seed: int, show: bool
) -> tuple[int, int, int, int]:
    """The episodes of ``record_scripted``: (saved, failed, steps, frames): ``steps`` counts every
    attempt's simulated steps, ``frames`` those of the saved episodes."""

    saved = failed = steps = frames = 0
    max_attempts = cfg.max_attempts or 2 * cfg.episodes + 10
    bar = tqdm(total=cfg.episodes, desc="recording", unit="episode", disable=not show)
    attempt = 0
    while saved < cfg.episodes:
        if attempt >= max_attempts:
            raise ConfigError(
                f"the expert succeeded in only {saved} of {attempt} attempts; wanted {cfg.episodes} episodes"
            )
        seed = first_seed + attempt
        attempt += 1
        obs = robot.reset(seed)
        expert = robot.expert()
        writer.start_episode(
            task=cfg.task or cfg.env,
            operator="scripted",
            seed=seed,
            info={"env_id": cfg.env, **({"action_noise": cfg.action_noise} if cfg.action_noise else {})},
        )
        tail = None  # frames still to record after success
        start = steps
        noise = ActionNoise(cfg.action_noise, robot.spec, seed)
        while tail != 0 and not robot.truncated:
            wanted = expert(obs)
            sent = robot.act(wanted + noise())
            if cfg.action_noise:  # the label is what the expert wanted, within the limits
                sent = np.clip(wanted, robot.spec.lower, robot.spec.upper).astype(np.float32)
            writer.add_step(obs, sent)
            obs = robot.observe()
            steps += 1
            if tail is not None:
                tail -= 1
            elif robot.terminated:
                succeeded = bool(robot.info.get("is_success"))
                tail = round(cfg.tail_s * robot.spec.control_hz) if succeeded else 0
        if tail is not None and succeeded:
            writer.save_episode(outcome="success")
            saved += 1
            frames += steps - start
            bar.update(1)
        elif cfg.keep_failed:
            writer.save_episode(outcome="failure")
            saved += 1
            failed += 1
            frames += steps - start
            bar.update(1)
        else:
            writer.discard_episode()
            failed += 1
        bar.set_postfix(failed=failed)
    bar.close()
    return saved, failed, steps, frames


def main(argv: Sequence[str], prog: str = "imitation record") -> int:
    cfg = config.parse(RecordConfig, argv, prog=prog)
    sidecar = cfg.out.with_suffix(".yaml")  # the resolved config, beside the store
    if sidecar == cfg.out:
        raise ConfigError(f"--out {cfg.out} ends in .yaml, the name of its config file; name it <name>.zarr")
    config.check_save(cfg, sidecar)  # refused now, not after an hour of recording
    if cfg.robot is not None or cfg.teleop != "scripted":
        result = record_session(cfg)
        config.save(cfg, sidecar)
        print(
            f"{cfg.out}: saved {result['saved']} episode(s) ({result['frames']} frames), discarded "
            f"{result['discarded']}, re-recorded {result['rerecorded']}; late frames {result['late']}, "
            f"missed ticks {result['missed']}; the store holds {result['store_episodes']} episode(s)"
        )
        return 0
    result = record_scripted(cfg)
    config.save(cfg, sidecar)
    fate = "kept" if cfg.keep_failed else "discarded"
    print(
        f"{cfg.out}: recorded {result['episodes']} episode(s) ({result['frames']} frames; {result['steps']} steps "
        f"simulated) in {result['wall_s']:.1f} s; {result['failed']} failed expert episode(s) {fate}; "
        f"{result['clipped_actions']} action(s) clipped to the action space"
    )
    return 0
