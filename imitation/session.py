"""The operator's recording session (``imitation record --teleop <device> [--robot ...]``).

One loop at the robot's rate (``control.RateLoop``): observe, ask the teleop device for joint
targets, send them through ``SafeRobot``, and — while an episode is being recorded — store the
observation with the action actually sent (after the safety clamps) and its measured timestamp.
The device's events drive the episode flow:

    warm-up ─▶ waiting ──Enter──▶ recording ──Enter / time limit / task done──▶ saved ─▶ reset
                                  │  r: start the episode again (the recorded part is dropped)
                                  │  d: drop it ─▶ reset
                                  q (any time): drop an unsaved episode, close the store, quit

The reset period (``reset_s``, not recorded) gives the operator time to reset the scene; Enter
starts the next episode (or ``--auto-start`` does at the end of the period). Disk writes — the
save's commit too — happen in the store's background writer and camera frames come from their
capture threads, so neither blocks the loop; a save is reported once it is durable. A tick that
starts more than a period late is a *missed* tick (no frame: the episode's ``dropped_frames``);
a tick whose work outlasts the period is *late*. Both are counted per episode and shown, with the
frames recorded so far and the device's own state (speed, gripper). Resuming a session appends to
an existing store (the schema must match).

Every time the session measures (warm-up, episode and reset periods, durations) is read from its
``RateLoop``'s clock, and under ``--emulate`` the simulated arm's physics runs on it too: a test
passes a loop on a simulated clock and gets the same episodes however loaded the machine is.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from envs import ENVS, first_camera
from imitation.control import RateLoop, period_stats
from imitation.data.store import DemoStore, EpisodeWriter, discard_new_store
from imitation.errors import ConfigError
from imitation.loop import EpisodeFlow, Operator, drive
from imitation.robots.stack import Needs, RobotOptions, RobotStack, store_features
from imitation.teleop import leader_pair_has_ports, make_teleop

log = logging.getLogger(__name__)

KEY_HELP = "Enter: start / save   r: re-record   d: discard   q: quit"


@dataclass
class Status:
    """What the operator sees: one line in a terminal, an overlay in the window."""

    state: str = "warm-up"  # warm-up | waiting | recording | reset | done
    episode: int = 0  # episodes saved in this session
    target: int = 0
    elapsed_s: float = 0.0
    rate_hz: float = 0.0
    late: int = 0
    missed: int = 0
    clamps: int = 0
    frames: int = 0  # frames of the episode being recorded
    device: str = ""  # the teleop device's own state (speed, gripper), where it has one
    warnings: list[str] = field(default_factory=list)
    saving: int = 0  # saves queued, not yet durable
    help: str = KEY_HELP

    def line(self) -> str:
        tag = {"recording": "● REC", "reset": "reset", "waiting": "ready", "warm-up": "warm-up"}.get(
            self.state, self.state
        )
        warn = f"  ! {'; '.join(self.warnings)}" if self.warnings else ""
        warn = ("  saving…" if self.saving else "") + warn
        frames = f"  {self.frames} frames" if self.state == "recording" else ""
        device = f"  {self.device}" if self.device else ""
        return (
            f"[{tag}] episode {self.episode + (self.state == 'recording')}/{self.target}  "
            f"{self.elapsed_s:5.1f} s{frames}  {self.rate_hz:5.1f} Hz  late {self.late}  missed {self.missed}  "
            f"clamps {self.clamps}{device}{warn}  |  {self.help}"
        )


# ------------------------------------------------------------------------------------ UI
def render_ui(status: Status, frames: dict[str, np.ndarray], width: int = 960) -> np.ndarray:
    """The operator window as an RGB image: camera views side by side, the status and the keys."""

    tiles = []
    h = 360 if frames else 0
    for name, f in frames.items():
        img = np.asarray(f)
        scale = h / img.shape[0]
        tile = cv2.resize(img, (max(1, int(img.shape[1] * scale)), h), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, name, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    views = np.concatenate(tiles, axis=1) if tiles else np.zeros((0, width, 3), np.uint8)
    width = max(width, views.shape[1])
    if views.shape[1] < width:
        views = np.pad(views, ((0, 0), (0, width - views.shape[1]), (0, 0)))
    panel = np.full((110, width, 3), 32, np.uint8)
    color = {"recording": (230, 40, 40), "reset": (230, 170, 30), "waiting": (60, 200, 90)}.get(
        status.state, (200, 200, 200)
    )
    if status.state == "recording":
        cv2.circle(panel, (22, 26), 10, color, -1)
    title = f"{status.state.upper()}   episode {status.episode + (status.state == 'recording')}/{status.target}   {status.elapsed_s:.1f} s"
    cv2.putText(panel, title, (42, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.8, color, 2, cv2.LINE_AA)
    stats = (
        (f"{status.frames} frames   " if status.state == "recording" else "")
        + f"loop {status.rate_hz:.1f} Hz   late {status.late}   missed {status.missed}   clamps {status.clamps}"
        + (f"   {status.device}" if status.device else "")
        + ("   saving..." if status.saving else "")
    )
    cv2.putText(panel, stats, (14, 64), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (220, 220, 220), 1, cv2.LINE_AA)
    if status.warnings:
        cv2.putText(
            panel,
            "! " + "; ".join(status.warnings),
            (14, 86),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (255, 90, 90),
            1,
            cv2.LINE_AA,
        )
    cv2.putText(panel, status.help, (14, 104), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (160, 200, 255), 1, cv2.LINE_AA)
    return np.concatenate([views, panel], axis=0)


class TerminalUI:
    """The status line, rewritten in place a few times a second (stderr)."""

    def __init__(self, every_s: float = 0.25, stream: Any = None) -> None:
        self.every_s, self.stream = every_s, stream or sys.stderr
        self._last = 0.0
        self._state = ""

    def update(self, status: Status, frames: dict[str, np.ndarray]) -> None:
        now = time.monotonic()
        if status.state != self._state:  # the cue at the start and the end of an episode
            if status.state == "recording" or self._state == "recording":
                self.stream.write("\a")
            self._state = status.state
            self._last = 0.0
        if now - self._last >= self.every_s:
            self._last = now
            self.stream.write("\r" + status.line()[:200] + "\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class WindowUI:
    """An OpenCV window drawn from a background thread at ~15 Hz; its keys go to ``on_key``."""

    def __init__(self, on_key: Any, name: str = "imitation record") -> None:
        self.on_key, self.name = on_key, name
        self._latest: tuple[Status, dict[str, np.ndarray]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operator-ui", daemon=True)
        self._thread.start()

    def update(self, status: Status, frames: dict[str, np.ndarray]) -> None:
        self._latest = (Status(**vars(status)), dict(frames))

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._latest is not None:
                img = render_ui(*self._latest)
                cv2.imshow(self.name, img[:, :, ::-1])
            key = cv2.waitKey(66)
            if key >= 0:
                self.on_key(key)
        cv2.destroyWindow(self.name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


# ------------------------------------------------------------------------------------ session
def _make_teleop(cfg: Any, robot: Any, sim: Any) -> Any:
    hz = robot.spec.control_hz
    if cfg.teleop == "scripted":
        if sim is None:
            raise ConfigError("--teleop scripted needs a simulated task: --robot sim or --emulate")
        return make_teleop("scripted", make_expert=sim.expert)  # a fresh expert for each episode
    if cfg.teleop.endswith("-leader"):
        if not cfg.leader_port and not leader_pair_has_ports(cfg.teleop):
            raise ConfigError(f"--teleop {cfg.teleop} needs --leader-port (the leader arm's serial port)")
        return make_teleop(cfg.teleop, port=cfg.leader_port, control_hz=hz)
    return make_teleop(cfg.teleop, control_hz=hz)


def _make_ui(cfg: Any, teleop: Any) -> Any:
    mode = cfg.ui
    if mode == "auto":
        mode = "window" if os.environ.get("DISPLAY") else "terminal"
    if mode == "window":
        return WindowUI(getattr(teleop, "feed_key", lambda k: None))
    if mode == "terminal":
        return TerminalUI()
    return None


def _session_stack(cfg: Any, loop: Any) -> RobotStack:
    """The robot of a session: --robot sim with the cameras asked for, or an arm."""
    cameras: dict[str, tuple[int, int]] = {}
    if (cfg.robot or "sim") == "sim":
        default = first_camera(cfg.env) if cfg.env in ENVS else "top"
        cams = cfg.cameras or ((default,) if cfg.obs_mode != "state" else ())
        size = tuple(cfg.image_size or (96, 96))
        cameras = {f"images/{c}": size for c in cams}
    # A person needs longer than a task's default time limit; --episode-s governs instead.
    env_kwargs = {} if cfg.teleop == "scripted" else {"time_limit_s": cfg.episode_s + 5.0}
    options = RobotOptions(
        robot=cfg.robot or "sim", port=cfg.port, emulate=cfg.emulate, env=cfg.env, calibration=cfg.calibration
    )
    return RobotStack(
        options,
        Needs(env_id=cfg.env, cameras=cameras, origin="--env"),
        env_kwargs=env_kwargs,
        clock=loop.clock if loop is not None else None,
        seed=cfg.seed,
    )


def _session_features(cfg: Any, spec: Any) -> dict[str, dict[str, Any]]:
    """The store's schema; an existing store (a resumed session) must hold the same features."""
    features = store_features(spec)
    for f in features.values():
        if f["kind"] == "image":
            f["codec"] = cfg.image_codec
    if (cfg.out / "zarr.json").exists():
        have = DemoStore.open(cfg.out)
        theirs = {k: list(v.shape) for k, v in have.features.items() if k != "timestamp"}
        ours = {k: list(v["shape"]) for k, v in features.items()}
        if theirs != ours:
            raise ConfigError(
                f"{cfg.out} holds features {theirs}, this session records {ours}; use another --out to start a new store"
            )
    return features


class _Session:
    """One operator session on the shared loop (``imitation.loop.drive``): ``tick`` records the
    frame while an episode is being recorded, carries out the ``EpisodeFlow``'s transitions
    (the writer, the scene, the device) and updates what the operator sees."""

    def __init__(self, cfg: Any, setup: RobotStack, teleop: Any, writer: Any, loop: Any, ui: Any) -> None:
        self.cfg, self.setup, self.teleop, self.writer, self.loop, self.ui = (
            cfg,
            setup,
            teleop,
            writer,
            loop,
            ui,
        )
        self.robot, self.hz = setup.robot, setup.robot.spec.control_hz
        self.flow = EpisodeFlow(
            cfg.episodes,
            episode_s=cfg.episode_s,
            warmup_s=cfg.warmup_s,
            reset_s=cfg.reset_s,
            auto_start=cfg.auto_start,
            start_s=loop.clock(),
        )
        self.counts = {"saved": 0, "discarded": 0, "rerecorded": 0, "frames": 0, "late": 0, "missed": 0}
        self.status = Status(target=cfg.episodes)
        self.seed = cfg.seed
        self.saving: list[tuple[int, int, str]] = []  # (index, frames, outcome) of saves not yet durable
        self.rec_periods: list[float] = []  # tick-to-tick periods while recording (within episodes)
        self.ep_frames = self.ep_late = self.ep_missed = 0
        self._prev_rec: float | None = None
        self._last_missed = self._last_over = 0

    def _new_episode(self) -> None:
        self.ep_frames = self.ep_late = self.ep_missed = 0
        self._prev_rec = None

    def _scene(self, obs: dict[str, Any], new_scene: bool) -> dict[str, Any]:
        """With ``new_scene``, the simulated scene reset to the session's seed (a real arm: the
        operator resets it); the device starts from the current pose."""
        if new_scene and self.setup.simulated:
            self.setup.begin(self.seed)
            obs = self.robot.observe()
        self.teleop.reset(obs)
        return obs

    def tick(self, t: int, obs: dict[str, Any], sent: np.ndarray | None) -> bool:
        loop, stats = self.loop, self.loop.stats
        missed_now, late_now = stats.missed - self._last_missed, stats.overruns - self._last_over
        self._last_missed, self._last_over = stats.missed, stats.overruns
        events = {e.name for e in self.teleop.events()}
        if self.flow.state == "recording":
            if self._prev_rec is not None:
                self.rec_periods.append(loop.tick_time - self._prev_rec)
            self._prev_rec = loop.tick_time
            self.writer.add_step(obs, sent)
            self.ep_frames += 1
            self.ep_late += late_now
            self.ep_missed += missed_now
        step = self.flow.step(loop.tick_time, events, self.setup.done)
        if step is not None:
            obs = self._carry(step, obs)
        while self.saving and self.writer.is_saved(self.saving[0][0]):
            _report_saved(*self.saving.pop(0))
        self._show(obs)
        if self.flow.done:
            self.robot.disarm()  # the store may take a moment to close; that is no lost command
        return self.flow.done

    def _carry(self, step: Any, obs: dict[str, Any]) -> dict[str, Any]:
        """Carry out one transition of the episode flow; returns the observation to show."""
        cfg, writer = self.cfg, self.writer
        if step.kind == "start":
            new_scene = step.left == "reset"  # the first episode runs in the scene the session opened with
            if new_scene and self.setup.simulated:
                self.seed += 1
            obs = self._scene(obs, new_scene)
            writer.start_episode(
                task=cfg.task or cfg.env,
                operator=cfg.operator or cfg.teleop,
                seed=self.seed,
                info={"teleop": cfg.teleop, "robot": cfg.robot or "sim"},
            )
            self._new_episode()
        elif step.kind == "rerecord":
            writer.rerecord()
            self.counts["rerecorded"] += 1
            obs = self._scene(obs, True)
            self._new_episode()
        elif step.kind == "discard":
            writer.discard_episode()
            self.counts["discarded"] += 1
            if self.setup.simulated:
                self.setup.prepare(self.seed + 1)
            _end_episode(self.teleop)
        elif step.kind == "save":
            success = self.setup.success()
            outcome = (
                "timeout"
                if step.timed_out
                else "unknown"
                if success is None
                else "success"
                if success
                else "failure"
            )
            # The commit runs behind the episode's frames in the writer's thread; the loop keeps its
            # rate meanwhile and reports the save once it is durable.
            index = writer.save_episode(
                outcome=outcome, dropped_frames=self.ep_missed, duration_s=step.elapsed_s, wait=False
            )
            self.saving.append((index, self.ep_frames, outcome))
            if self.setup.simulated:  # the scene of the next episode, ready before it starts
                self.setup.prepare(self.seed + 1)
            c = self.counts
            c["saved"] += 1
            c["frames"] += self.ep_frames
            c["late"] += self.ep_late
            c["missed"] += self.ep_missed
            _end_episode(self.teleop)
        return obs

    def _show(self, obs: dict[str, Any]) -> None:
        status, summ = self.status, self.loop.stats
        status.state = self.flow.state if self.flow.state != "done" else "reset"
        status.episode = self.counts["saved"]
        status.elapsed_s = self.flow.elapsed(self.loop.tick_time)
        if len(summ.starts) >= 2:
            k = min(len(summ.starts), int(self.hz))
            span = summ.starts[-1] - summ.starts[-k]
            status.rate_hz = (k - 1) / span if span > 0 else 0.0
        status.late, status.missed, status.frames = self.ep_late, self.ep_missed, self.ep_frames
        device_status = getattr(self.teleop, "status", None)
        status.device = device_status() if callable(device_status) else ""
        status.clamps = int(sum(self.robot.clamps.values()))
        status.warnings = _warnings(self.setup.base)
        status.saving = len(self.saving)
        if self.ui is not None:
            self.ui.update(status, {k.split("/", 1)[1]: v for k, v in obs.items() if k.startswith("images/")})


def record_session(cfg: Any, *, teleop: Any = None, ui: Any = None, loop: Any = None) -> dict[str, Any]:
    """Run an operator session as ``cfg`` (a ``RecordConfig``) says; returns its counts.

    ``loop``: the ``RateLoop`` that paces it, at the robot's rate (default: one on the wall clock).
    Its clock also times the session's periods and, under --emulate, the simulated arm's physics."""
    # The loop shares the interpreter with the store's writer, the cameras' and the emulator's
    # threads: a shorter GIL switch interval (5 ms by default) bounds how long it can be kept waiting.
    sys.setswitchinterval(0.0005)
    setup = _session_stack(cfg, loop)
    hz = setup.robot.spec.control_hz
    try:
        features = _session_features(cfg, setup.base.spec)
        if loop is None:
            loop = RateLoop(hz)
        elif abs(loop.hz - hz) > 1e-9 * hz:
            raise ValueError(
                f"the session's loop runs at {loop.hz:g} Hz, the robot at {hz:g} Hz; give it RateLoop({hz:g})"
            )
    except BaseException:
        setup.close()
        raise
    owns_teleop = teleop is None
    created = opened = False  # whether this call made the store, and opened its writer
    session: _Session | None = None
    try:
        setup.robot.connect()
        if teleop is None:
            teleop = _make_teleop(cfg, setup.robot, setup.task)
            teleop.connect()
        ui = ui if ui is not None else _make_ui(cfg, teleop)
        created = not cfg.out.exists() and not cfg.out.is_symlink()
        with EpisodeWriter(cfg.out, features=features, fps=hz, robot=setup.base.spec.to_dict()) as writer:
            opened = True
            if setup.simulated:
                setup.begin(cfg.seed)
            teleop.reset(setup.robot.observe())
            session = _Session(cfg, setup, teleop, writer, loop, ui)
            # What exists now lives for the whole session: out of the collector's sight, a full
            # collection no longer walks it (tens of ms, a missed tick at 50 Hz).
            gc.collect()
            gc.freeze()
            drive(setup.robot, Operator(teleop), loop, on_tick=session.tick)
            # An episode still open is discarded by the writer's close (q means: nothing unsaved is
            # kept); the close waits for the saves still queued.
        for item in session.saving:
            _report_saved(*item)
    except BaseException as e:
        # A session that failed (or was interrupted) before its first save leaves no empty store.
        if created and opened:
            discard_new_store(cfg.out, e)
        raise
    finally:
        gc.unfreeze()
        if ui is not None:
            ui.close()
        if teleop is not None and owns_teleop:
            teleop.close()
        setup.close()
    counts = dict(session.counts)
    counts["store_episodes"] = DemoStore.open(cfg.out).n_episodes
    counts["timing"] = loop.stats.summary()
    if session.rec_periods:
        counts["recording_timing"] = period_stats(session.rec_periods, 1.0 / hz)
    counts["cameras"] = {
        n: c.stats()
        for n, c in getattr(setup.base, "cameras", {}).items()
        if callable(getattr(c, "stats", None))
    }
    return counts


def _report_saved(index: int, frames: int, outcome: str) -> None:
    log.info("saved episode %d (%d frames, %s)", index, frames, outcome)


def _end_episode(teleop: Any) -> None:
    end = getattr(teleop, "end_episode", None)
    if callable(end):
        end()


def _warnings(base: Any) -> list[str]:
    out = []
    for name, cam in getattr(base, "cameras", {}).items():
        stats = getattr(cam, "stats", None)
        if callable(stats):
            s = stats()
            if s.get("stale_reads"):
                out.append(f"camera {name} stale ({s['stale_reads']} reads)")
    return out
