"""``imitation deploy``: a trained policy on a robot at the robot's control rate.

The loop (main process) is paced by ``control.RateLoop`` and sends every command through
``SafeRobot``. Inference runs in its own process, so a slow model never holds the loop past its
deadline. Each chunk of actions is indexed by the tick of the observation it was predicted from:
the action for tick t is taken from the chunks that cover t (ACT with temporal ensembling
averages them, oldest weighted most, exactly as ``select_action`` does; queue-style policies take
the newest chunk), and actions already in the past are dropped. At each tick the loop submits the
new observation and waits for its chunk only while the tick's budget lasts; a policy faster than
that acts on the observation of the same tick, as in simulation, and a slower one is pipelined:
it is asked early enough that its chunk arrives before the previous one runs out. A tick with no
action to take is *starved* and holds the last command. Timing statistics are printed at the end.

Robots: ``--robot sim`` (the simulated task, paced in real time), ``--robot <arm> --port <dev>``
(a real arm), ``--robot <arm> --emulate`` (the servo emulator on a pseudo-terminal whose physics
is the simulator, calibrated like a real arm).

What the policy is handed (``PolicyInputs``): only the observation keys it reads
(``imitation.checkpoint.consumed_keys``), each camera's frames brought to the size it was trained
on by the fit its checkpoint declares or ``--camera-fit`` gives (``imitation.robots.geometry``).
The robot's full observation still goes to ``--record``. Under ``--robot sim`` and ``--emulate``,
``--camera-fps``/``--camera-latency-ms`` and ``--perturb`` act on the simulated cameras as in
``imitation eval``.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import queue as queue_mod
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch

from imitation import outputs
from imitation.checkpoint import consumed_keys, load_policy, policy_config, read_meta, resolve
from imitation.checks import DEVICE, SEED, InPath, OneOf, OutPath, Range, check_fields
from imitation.config import parse
from imitation.control import EStopKey, RateLoop
from imitation.data.schema import INTERVENTION
from imitation.data.store import EpisodeWriter
from imitation.errors import ConfigError, ImitationError
from imitation.loop import Takeover, drive
from imitation.policies.common import Schedule, snap_binary
from imitation.robots.stack import Needs, RobotOptions, RobotStack, store_features
from imitation.teleop import TELEOPS, leader_pair_has_ports, make_teleop
from imitation.teleop.scripted import ScriptedTakeover

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ chunks
class ChunkExecutor:
    """Chunks indexed by the tick of their observation; ``action(t)`` is the action for tick t."""

    def __init__(self, schedule: Schedule) -> None:
        self.s = schedule
        self.chunks: list[tuple[int, np.ndarray]] = []  # (observation tick, (count, A)), oldest first

    def add(self, tick: int, chunk: np.ndarray) -> None:
        rows = np.asarray(chunk)[self.s.start : self.s.start + self.s.count]
        self.chunks.append((tick, rows))
        self.chunks.sort(key=lambda c: c[0])

    def _end(self, tick: int, rows: np.ndarray) -> int:
        return tick + len(rows) * self.s.frame_skip

    def action(self, t: int) -> np.ndarray | None:
        self.chunks = [(k, r) for k, r in self.chunks if self._end(k, r) > t]  # the past is dropped
        covering = [(k, r[(t - k) // self.s.frame_skip]) for k, r in self.chunks if k <= t]
        if not covering:
            return None
        if self.s.mode == "queue":
            return covering[-1][1]
        w = np.exp(-self.s.coeff * np.arange(len(covering)))  # 0 = the oldest chunk
        acts = np.stack([a for _, a in covering])
        return snap_binary((w[:, None] * acts).sum(0) / w.sum(), self.s.binary)

    def remaining(self, t: int) -> int:
        """Ticks from t still covered by the newest chunk."""
        if not self.chunks:
            return 0
        k, r = self.chunks[-1]
        return max(0, self._end(k, r) - t)

    def reset(self) -> None:
        self.chunks = []


# ------------------------------------------------------------------------------------ inference
def _worker(
    ckpt: str, device: str, threads: int, requests: Any, replies: Any
) -> None:  # pragma: no cover - child

    try:
        if threads:
            torch.set_num_threads(threads)
        policy = load_policy(ckpt, device)
        replies.put(("ready", None, None, 0.0))
        while True:
            msg = requests.get()
            if msg is None:
                return
            kind, tick, window = msg
            if kind == "reset":
                policy.reset(seeds=[int(tick)])
                continue
            t = time.perf_counter()
            with torch.no_grad():
                obs = {k: torch.as_tensor(v[None]).to(device) for k, v in window.items()}
                chunk = policy.predict_chunk(obs)[0].float().cpu().numpy()
            replies.put(("chunk", tick, chunk, time.perf_counter() - t))
    except Exception as e:  # the parent says it in one line, at once, instead of waiting
        replies.put(("error", f"{type(e).__name__}: {e}", None, 0.0))


class InferenceProcess:
    """The policy in its own process: ``submit(tick, window)``, ``poll(timeout)``."""

    def __init__(
        self, ckpt: str | Path, device: str = "cpu", threads: int = 0, start_timeout_s: float = 120.0
    ):
        ctx = mp.get_context("spawn")
        self.requests, self.replies = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(
            target=_worker, args=(str(ckpt), device, threads, self.requests, self.replies), daemon=True
        )
        self.proc.start()
        self.busy = False
        self.latency: list[float] = []
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                kind, detail, *_ = self.replies.get(timeout=0.25)
                break
            except queue_mod.Empty:
                if not self.proc.is_alive():  # died before a word: no point waiting the rest
                    raise ImitationError(
                        f"the inference process exited (code {self.proc.exitcode}) while loading {ckpt}; "
                        "try --inference inline to see the error in this process"
                    ) from None
                if time.monotonic() > deadline:
                    self.close()
                    raise ImitationError(
                        f"the inference process did not load {ckpt} within {start_timeout_s:.0f} s"
                    ) from None
        if kind == "error":
            self.close()
            raise ImitationError(f"the inference process could not load {ckpt}: {detail}")

    def reset(self, seed: int) -> None:
        self.requests.put(("reset", seed, None))

    def submit(self, tick: int, window: dict[str, np.ndarray]) -> None:
        self.busy = True
        self.requests.put(("predict", tick, window))

    def _get(self, timeout: float) -> Any:
        """The next reply within ``timeout`` s (``queue.Empty`` if none), waited for in short slices
        so that a process that died is noticed at once, not at the end of the wait."""
        if timeout <= 0:
            return self.replies.get_nowait()
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.replies.get(timeout=min(0.25, max(deadline - time.monotonic(), 1e-3)))
            except queue_mod.Empty:
                if not self.proc.is_alive() or time.monotonic() >= deadline:
                    raise

    def poll(self, timeout: float = 0.0) -> list[tuple[int, np.ndarray, float]]:
        out = []
        while True:
            try:
                msg = self._get(timeout)
            except queue_mod.Empty:
                break
            kind, tick, chunk, dt = msg
            if kind == "error":
                raise ImitationError(f"the inference process failed: {tick}")
            self.busy = False
            self.latency.append(dt)
            out.append((tick, chunk, dt))
            timeout = 0.0
        if not self.proc.is_alive() and not out:
            raise ImitationError(f"the inference process died (exit code {self.proc.exitcode})")
        return out

    def close(self) -> None:
        try:
            self.requests.put(None)
            self.proc.join(timeout=5)
        finally:
            if self.proc.is_alive():
                self.proc.terminate()


class InlineInference:
    """The same interface in this process (tests, and machines where a process cannot start)."""

    def __init__(self, ckpt: str | Path, device: str = "cpu") -> None:
        self.policy = load_policy(ckpt, device)
        self.device = device
        self.busy = False
        self.latency: list[float] = []
        self._done: list[tuple[int, np.ndarray, float]] = []

    def reset(self, seed: int) -> None:
        self.policy.reset(seeds=[seed])

    def submit(self, tick: int, window: dict[str, np.ndarray]) -> None:
        t = time.perf_counter()
        with torch.no_grad():
            obs = {k: torch.as_tensor(v[None]).to(self.device) for k, v in window.items()}
            chunk = self.policy.predict_chunk(obs)[0].float().cpu().numpy()
        dt = time.perf_counter() - t
        self.latency.append(dt)
        self._done.append((tick, chunk, dt))

    def poll(self, timeout: float = 0.0) -> list[tuple[int, np.ndarray, float]]:
        out, self._done = self._done, []
        return out

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------ inputs
class PolicyInputs:
    """A robot's observation -> what the policy is handed: the keys it reads, nothing else, with
    each fitted camera's frame brought to the policy's input size (a frame already at that size
    passes through untouched)."""

    def __init__(self, keys: Sequence[str], fits: dict[str, Any] | None = None) -> None:
        self.keys = tuple(keys)
        self.fits = dict(fits or {})

    def __call__(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {}
        for k in self.keys:
            v = np.asarray(obs[k])
            out[k] = self.fits[k](v) if k in self.fits else v
        return out


# ------------------------------------------------------------------------------------ the loop
@dataclass
class EpisodeStats:
    seed: int | None
    ticks: int = 0
    starved: int = 0
    dropped_rows: int = 0
    chunks: int = 0
    safe_start_ticks: int = 0
    success: bool | None = None
    timing: dict[str, float] = field(default_factory=dict)
    operator_ticks: int = 0  # ticks the operator was in control (--takeover)
    takeovers: int = 0


class PolicyDecider:
    """The policy as the loop's decider (``imitation.loop``): submits observation windows to the
    inference, collects its chunks into a ``ChunkExecutor`` and returns the action for each tick
    (the last one again on a *starved* tick, none before the first chunk after a reset).

    The loop submits the new observation and waits for its chunk only while the tick's budget
    (``budget_frac`` of the period, on ``loop``'s clock) lasts; a slower policy is pipelined:
    asked ``lead`` ticks before the newest chunk runs out, ``lead`` following its measured
    latency. ``reset(obs, t)`` forgets the history and the chunks, and a chunk asked before tick
    ``t`` is thrown away when it arrives."""

    def __init__(
        self,
        infer: Any,
        schedule: Schedule,
        keys: Sequence[str],
        loop: Any,
        *,
        fits: dict[str, Any] | None = None,
        budget_frac: float = 0.6,
        stats: EpisodeStats | None = None,
    ) -> None:
        self.infer, self.s, self.keys, self.loop = infer, schedule, tuple(keys), loop
        self.inputs = PolicyInputs(keys, fits)
        self.budget_frac = budget_frac
        self.stats = stats if stats is not None else EpisodeStats(seed=None)
        self.execu = ChunkExecutor(schedule)
        self.history: deque[dict[str, np.ndarray]] = deque(
            maxlen=(schedule.n_obs - 1) * schedule.frame_skip + 1
        )
        self.lead = 1  # ticks ahead to ask for the next chunk (queue mode), from the measured latency
        self.since = 0  # chunks asked before this tick belong to a past the policy has forgotten
        self.last: np.ndarray | None = None

    def _window(self) -> dict[str, np.ndarray]:
        fs, h = self.s.frame_skip, self.history
        return {
            k: np.stack([h[max(0, len(h) - 1 - i * fs)][k] for i in reversed(range(self.s.n_obs))])
            for k in self.keys
        }

    def _take(self, got: list[tuple[int, np.ndarray, float]], t: int) -> None:
        hz = self.loop.hz
        for tick, chunk, dt in got:
            self.lead = max(1, math.ceil(dt * hz) + 2)  # ask this many ticks before the chunk runs out
            if tick < self.since:
                continue
            self.execu.add(tick, chunk)
            self.stats.chunks += 1
            self.stats.dropped_rows += max(0, min(self.s.count, math.ceil((t - tick) / self.s.frame_skip)))

    def first_action(self, obs: dict[str, Any]) -> np.ndarray | None:
        """Before the clock starts: the first chunk for ``obs``, waited for (nothing moves before
        it); returns its first action. The history starts again with the loop's first tick."""
        # A request of the previous episode may still be in flight (its last tick does not wait
        # for it): its chunk belongs to that episode and its ticks, so it is collected and dropped.
        if self.infer.busy:
            self.infer.poll(timeout=120.0)
        self.history.append(self.inputs(obs))
        self.infer.submit(0, self._window())
        self._take(self.infer.poll(timeout=120.0), 0)
        if not self.execu.chunks:
            raise ImitationError("the policy gave no first chunk within 120 s")
        self.history.clear()
        return self.execu.action(0)

    def reset(self, obs: dict[str, Any], t: int = 0) -> None:
        self.execu.reset()
        self.history.clear()
        self.since = t
        self.last = None

    def __call__(self, t: int, obs: dict[str, Any]) -> np.ndarray | None:
        s, execu, infer = self.s, self.execu, self.infer
        self.history.append(self.inputs(obs))
        want = t % s.frame_skip == 0 and (
            s.mode == "ensemble" or execu.remaining(t) <= self.lead or not execu.chunks
        )
        if want and not infer.busy:
            infer.submit(t, self._window())
        wait = self.loop.tick_time + self.budget_frac * self.loop.period - self.loop.clock()
        self._take(infer.poll(timeout=max(0.0, wait)) if infer.busy else infer.poll(), t)
        a = execu.action(t)
        if a is None:
            self.stats.starved += 1
            a = self.last
        self.last = a
        return a


def run_episode(
    robot: Any,
    infer: Any,
    schedule: Schedule,
    keys: Sequence[str],
    *,
    max_ticks: int,
    budget_frac: float = 0.6,
    dry_run: bool = False,
    done: Any = None,
    on_tick: Any = None,
    loop: Any = None,
    fits: dict[str, Any] | None = None,
    takeover: Any = None,
) -> EpisodeStats:
    """One episode of the policy on ``robot`` through ``imitation.loop.drive``; ``done()`` says
    when the episode is over (besides ``max_ticks``). ``loop``: the ``RateLoop`` that paces it
    (default: one at the robot's rate on the wall clock; tests pass one on a simulated clock,
    with an inference that advances that clock, so that what they check does not depend on the
    machine's load). The policy is handed ``keys`` only, the cameras of ``fits`` fitted to its
    input size (``PolicyInputs``); ``on_tick(t, obs, sent)`` gets the whole observation.
    ``takeover``: an operator's teleop device that may take control (``imitation.loop.Takeover``);
    ``on_tick`` then also gets ``intervention=`` (whether the operator sent the tick's command)."""
    loop = loop if loop is not None else RateLoop(robot.spec.control_hz)
    stats = EpisodeStats(seed=None)
    policy = PolicyDecider(infer, schedule, keys, loop, fits=fits, budget_frac=budget_frac, stats=stats)
    decide: Any = policy
    obs = robot.observe()
    if takeover is not None:
        limits = robot.limits
        hz = robot.spec.control_hz
        decide = Takeover(
            policy,
            takeover,
            ramp_step=limits.safe_start_rad_s / hz,  # toward the operator's pose at the safe-start speed
            gripper_step=2.0 / hz,  # the gripper's whole range in half a second
            gripper_index=limits.gripper_index,
            on_quit=robot.stop,
        )
        decide.reset(obs)
    first = policy.first_action(obs)
    if not dry_run and first is not None and hasattr(robot, "move_to"):
        stats.safe_start_ticks = robot.move_to(first)  # slowly to the first pose, then the policy

    def tick(t: int, obs: dict[str, Any], sent: np.ndarray | None) -> bool:
        stats.ticks += 1
        if on_tick is not None and sent is not None:
            if takeover is not None:
                on_tick(t, obs, sent, intervention=decide.intervention)
            else:
                on_tick(t, obs, sent)
        return done is not None and done()

    drive(robot, decide, loop, max_ticks=max_ticks, on_tick=tick, dry_run=dry_run)
    if takeover is not None:
        stats.operator_ticks, stats.takeovers = decide.operator_ticks, decide.handovers
    stats.timing = loop.stats.summary()
    return stats


# ------------------------------------------------------------------------------------ CLI
@dataclass
class DeployConfig:
    """Run a trained policy on a robot at the robot's control rate."""

    checkpoint: str
    """A run directory or one of its checkpoints/<step>."""
    robot: str = "sim"
    """sim (the simulated task), or an arm: so100, so101, koch, or a configs/robots/*.yaml path."""
    port: str | None = None
    """Serial port of a real arm (e.g. /dev/ttyACM0)."""
    emulate: bool = False
    """Drive the servo emulator (a virtual arm on a pseudo-terminal whose physics is the simulator)."""
    env: str | None = None
    """Task for --robot sim and --emulate (default: the one the training demos came from; one that
    imports code runs only when named here)."""
    episodes: Annotated[int, Range(ge=1, le=1_000_000)] = 1
    """Episodes to run."""
    seed: Annotated[int, SEED] = 100_000
    """First scene seed (simulation and --emulate); episode i uses seed + i."""
    episode_s: Annotated[float | None, Range(gt=0, le=86_400)] = None
    """Longest episode in seconds (default: the task's time limit; a real arm: 30 s)."""
    dry_run: bool = False
    """Run everything but send no goal positions."""
    calibration: Annotated[str | None, InPath("any")] = None
    """Calibration file of a real arm (default: ~/.imitation/calibration/<robot>.yaml); a robot of
    several arms: the directory of its arms' files (default ~/.imitation/calibration/<robot>/)."""
    device: Annotated[str, DEVICE] = "cpu"
    """Where the policy runs: cpu, cuda."""
    inference: Annotated[str, OneOf(("process", "inline"))] = "process"
    """process (its own process, the default) or inline (in the loop; for tests)."""
    threads: Annotated[int, Range(ge=0, le=1024, meaning="0: torch chooses")] = 0
    """Torch threads of the inference process (0: its default)."""
    out: Annotated[str | None, OutPath("file")] = None
    """Write the episodes and timing statistics to this JSON file (never over a file imitation did
    not write, unless --overwrite)."""
    overwrite: bool = False
    """Replace --out even if imitation did not write it."""
    record: Annotated[str | None, OutPath("dir")] = None
    """Also record the deployed episodes (observations and the actions actually sent) into this demo store."""
    camera_fit: tuple[str, ...] = ()
    """How a camera's frames reach the policy's image size, NAME=FIT with FIT resize or
    center_crop_resize (e.g. top=center_crop_resize); replaces what the checkpoint declares."""
    camera_fps: Annotated[float | None, Range(gt=0, le=10_000)] = None
    """--robot sim / --emulate: the simulated cameras capture at this rate on their own clock
    instead of at every control tick (images only)."""
    camera_latency_ms: Annotated[float, Range(ge=0, le=60_000)] = 0.0
    """--robot sim / --emulate: the policy gets the newest capture taken at or before the tick
    minus this (images only; the joint state stays current)."""
    perturb: bool = False
    """--robot sim / --emulate: per episode, from its seed, move the scene cameras by up to ±2 cm
    and 3° and scale the lights by 0.7-1.3."""
    takeover: str | None = None
    """A teleop device with which the operator can take control mid-episode and hand it back
    (Enter / A / left button): keyboard, gamepad, spacemouse, so100-leader, koch-leader,
    aloha-leader or so101-bimanual-leader (with --leader-port), or scripted (simulation: the task's expert takes over when the policy stalls).
    With --record every frame stores who was in control (the `intervention` feature)."""
    leader_port: str | None = None
    """Serial port of the leader arm of --takeover so100-leader / koch-leader; a leader pair:
    left=<path>,right=<path> (or the ports its config names)."""
    takeover_stall_s: Annotated[float, Range(gt=0, le=3600)] = 2.0
    """--takeover scripted: take over when the task's reward has not risen for this long."""
    takeover_s: Annotated[float, Range(gt=0, le=3600)] = 3.0
    """--takeover scripted: hand back after correcting for this long."""
    takeover_budget: Annotated[int | None, Range(ge=0)] = None
    """--takeover scripted: the most ticks the expert may drive over all episodes (default: no cap)."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.takeover is not None:
            if self.takeover not in TELEOPS:
                raise ConfigError(f"--takeover {self.takeover!r}: choose one of {', '.join(TELEOPS)}")
            if (
                self.takeover.endswith("-leader")
                and not self.leader_port
                and not leader_pair_has_ports(self.takeover)
            ):
                raise ConfigError(
                    f"--takeover {self.takeover} needs --leader-port (the leader arm's serial port)"
                )
            if self.takeover == "scripted" and not (self.robot == "sim" or self.emulate):
                raise ConfigError("--takeover scripted needs a simulated task: --robot sim or --emulate")
        self.robot_options().check()

    def robot_options(self) -> RobotOptions:
        """The robot this deploy drives (``imitation.robots.stack``)."""
        return RobotOptions(
            robot=self.robot,
            port=self.port,
            emulate=self.emulate,
            env=self.env,
            calibration=self.calibration,
            camera_fps=self.camera_fps,
            camera_latency_ms=self.camera_latency_ms,
            perturb=self.perturb,
        )


def format_timing(s: dict[str, Any]) -> str:
    t = s["timing"]
    lines = [
        f"period p50 {t.get('period_ms_p50', float('nan')):.2f} ms, p99 {t.get('period_ms_p99', float('nan')):.2f} ms, "
        f"max {t.get('period_ms_max', float('nan')):.2f} ms (p99 error {t.get('period_error_ms_p99', float('nan')):.2f} ms); "
        f"overruns {int(t.get('overruns', 0))}, missed deadlines {int(t.get('missed', 0))}",
        f"inference p50 {s['inference_ms_p50']:.1f} ms, p99 {s['inference_ms_p99']:.1f} ms; chunks {s['chunks']}; "
        f"starved ticks {s['starved']} of {s['ticks']}; clamps {s['clamps_total']} {s['clamps']}",
    ]
    return "\n".join(lines)


def ask_operator(i: int, n: int, seed: int) -> bool:
    """The operator's verdict on a real episode: y (success) or n."""
    while True:
        ans = input(f"episode {i + 1}/{n}: success? [y/n] ").strip().lower()
        if ans in ("y", "n"):
            return ans == "y"


def wait_for_reset(i: int, n: int, seed: int) -> None:
    input(f"reset the scene for episode {i + 1}/{n}, then press Enter (Ctrl-C stops) ")


class _Recorder:
    """``deploy --record``: each episode into a demo store, with the actions actually sent (and,
    under --takeover, the ``intervention`` feature: who was in control)."""

    def __init__(self, path: str, spec: Any, takeover: bool) -> None:
        self.features = store_features(spec)
        if takeover:
            self.features[INTERVENTION] = {"shape": [], "dtype": "uint8", "kind": "scalar"}
        self.writer = EpisodeWriter(path, features=self.features, fps=spec.control_hz, robot=spec.to_dict())

    def on_tick(self, t: int, obs: dict[str, Any], sent: np.ndarray, **flags: bool) -> None:
        if INTERVENTION in self.features:
            obs = obs | {INTERVENTION: np.uint8(flags.get("intervention", False))}
        self.writer.add_step(obs, sent)


def deploy(
    cfg: DeployConfig,
    *,
    judge: Callable[[int, int, int], bool] | None = None,
    before: Callable[[int, int, int], None] | None = None,
    loop: Any = None,
    takeover: Any = None,
) -> dict[str, Any]:
    """Run the episodes; ``before(i, n, seed)`` is called before each one (a real arm: the operator
    resets the scene) and ``judge(i, n, seed)`` after it where the robot cannot tell success.
    ``takeover``: a connected teleop device (default: the one ``cfg.takeover`` names).
    ``loop``: the ``RateLoop`` that paces every episode (default: one on the wall clock); its
    clock also steps an emulated arm's physics, so a test on a simulated clock runs the same
    episodes however loaded the machine is."""
    sys.setswitchinterval(0.0005)  # the loop shares the GIL with camera and bus threads (see session.py)
    ckpt = resolve(cfg.checkpoint)
    meta = read_meta(ckpt)
    schedule = replace(policy_config(meta).schedule, binary=meta.get("binary_actions") or None)
    keys = consumed_keys(meta)
    needs = Needs.of_checkpoint(meta, cfg.camera_fit, origin=f"checkpoint {ckpt}")
    setup = RobotStack(
        cfg.robot_options(), needs, seed=cfg.seed, clock=loop.clock if loop is not None else None
    )
    infer: Any = None
    episodes: list[dict[str, Any]] = []
    rec: _Recorder | None = None
    owns_device = takeover is None and cfg.takeover is not None
    try:
        if cfg.record:
            rec = _Recorder(cfg.record, setup.base.spec, cfg.takeover is not None or takeover is not None)
        setup.robot.connect()
        if owns_device:
            takeover = _takeover_device(cfg, setup)
            takeover.connect()
        infer = (
            InferenceProcess(ckpt, cfg.device, cfg.threads)
            if cfg.inference == "process"
            else InlineInference(ckpt, cfg.device)
        )
        # A keyboard that takes over owns the terminal: its q stops the arm instead of EStopKey's keys.
        estop = nullcontext() if cfg.takeover == "keyboard" else EStopKey(setup.robot.stop)
        with estop:
            for i in range(cfg.episodes):
                seed = cfg.seed + i
                if before is not None and not setup.simulated:
                    before(i, cfg.episodes, seed)
                setup.begin(seed)
                infer.reset(seed)
                n_lat = len(infer.latency)
                if rec is not None:
                    task = str(meta["robot"].get("env_id") or cfg.robot)
                    info = {"checkpoint": str(ckpt), "robot": cfg.robot, "emulate": cfg.emulate}
                    rec.writer.start_episode(task=task, operator="policy", seed=seed, info=info)
                st = run_episode(
                    setup.robot,
                    infer,
                    schedule,
                    keys,
                    max_ticks=setup.max_ticks(cfg.episode_s),
                    dry_run=cfg.dry_run,
                    done=setup.done,
                    on_tick=rec.on_tick if rec is not None else None,
                    fits=setup.fits,
                    loop=loop,
                    takeover=takeover,
                )
                st.seed, st.success = seed, setup.success()
                if st.success is None and judge is not None:
                    st.success = judge(i, cfg.episodes, seed)
                if rec is not None:
                    rec.writer.save_episode(outcome=_outcome(st.success))
                episodes.append(_episode_record(st, infer.latency[n_lat:]))
                took = f"; operator {st.operator_ticks} ticks ({st.takeovers} take-overs)" if takeover else ""
                print(
                    f"episode {i + 1}/{cfg.episodes} (seed {seed}): {st.ticks} ticks"
                    f"{' ' + _outcome(st.success) if st.success is not None else ''}; starved {st.starved}{took}"
                )
    finally:
        if rec is not None:
            rec.writer.close()  # an episode still open (interrupted) is not saved
        if owns_device and takeover is not None:
            takeover.close()
        if infer is not None:
            infer.close()
        report = setup.robot.report()
        setup.close()
    return _summary(cfg, ckpt, setup, episodes, report)


def _outcome(success: bool | None) -> str:
    return "unknown" if success is None else "success" if success else "failure"


def _episode_record(st: EpisodeStats, latency_s: Sequence[float]) -> dict[str, Any]:
    lat = np.asarray(latency_s) * 1e3
    return asdict(st) | {
        "inference_ms_p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "inference_ms_p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def _summary(
    cfg: DeployConfig, ckpt: Path, setup: RobotStack, episodes: list[dict[str, Any]], report: dict[str, Any]
) -> dict[str, Any]:
    """What ``deploy`` returns (and ``--out`` holds): the episodes, their sums and the timing."""
    lat_all = np.asarray([e["inference_ms_p50"] for e in episodes])
    summary = {
        "checkpoint": str(ckpt),
        "robot": cfg.robot,
        "emulate": cfg.emulate,
        "camera_fit": {k: f.fit for k, f in setup.fits.items()},
        "camera_fps": cfg.camera_fps,
        "camera_latency_ms": cfg.camera_latency_ms,
        "perturb": cfg.perturb,
        "episodes": episodes,
        "ticks": sum(e["ticks"] for e in episodes),
        "operator_ticks": sum(e["operator_ticks"] for e in episodes),
        "starved": sum(e["starved"] for e in episodes),
        "chunks": sum(e["chunks"] for e in episodes),
        "timing": _merge_timing([e["timing"] for e in episodes]),
        "inference_ms_p50": float(np.median(lat_all)) if len(lat_all) else float("nan"),
        "inference_ms_p99": float(max((e["inference_ms_p99"] for e in episodes), default=float("nan"))),
        **report,
    }
    wins = [e["success"] for e in episodes if e["success"] is not None]
    if wins:
        summary["success_rate"] = sum(wins) / len(wins)
    return summary


def _takeover_device(cfg: DeployConfig, setup: RobotStack) -> Any:
    """The teleop device of ``--takeover``, not yet connected."""
    hz = setup.robot.spec.control_hz
    if cfg.takeover == "scripted":
        sim = setup.task
        return ScriptedTakeover(
            sim.expert,
            lambda: sim.reward,
            stall_ticks=max(1, round(cfg.takeover_stall_s * hz)),
            correct_ticks=max(1, round(cfg.takeover_s * hz)),
            budget=cfg.takeover_budget,
        )
    if cfg.takeover.endswith("-leader"):
        return make_teleop(cfg.takeover, port=cfg.leader_port, control_hz=hz)
    return make_teleop(cfg.takeover, control_hz=hz)


def _merge_timing(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    out: dict[str, float] = {}
    for key in rows[0]:
        vals = [r[key] for r in rows if key in r]
        if key in ("overruns", "missed", "ticks"):
            out[key] = float(sum(vals))
        elif key.endswith("max"):
            out[key] = float(max(vals))
        else:
            out[key] = float(np.max(vals) if "p99" in key else np.median(vals))
    return out


# A summary file written before the mark existed (imitation.outputs) is recognised by these keys.
SUMMARY_LAYOUT = ("checkpoint", "robot", "episodes", "timing")


def main(argv: Sequence[str] | None = None, prog: str = "imitation deploy") -> int:
    cfg = parse(
        DeployConfig,
        list(sys.argv[1:] if argv is None else argv),
        prog=prog,
        description=DeployConfig.__doc__,
    )
    if cfg.out:  # before anything moves, not after the episodes
        outputs.check_file(
            cfg.out, command="imitation deploy", overwrite=cfg.overwrite, legacy_keys=SUMMARY_LAYOUT
        )
    summary = deploy(cfg)
    print(format_timing(summary))
    if "success_rate" in summary:
        print(f"success {summary['success_rate']:.1%} over {len(summary['episodes'])} episode(s)")
    if cfg.out:
        outputs.write_json(cfg.out, summary, "deploy")
        print(f"results {cfg.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("MUJOCO_GL", "egl")
    sys.exit(main())
