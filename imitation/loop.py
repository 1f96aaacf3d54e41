"""The one loop every command that drives a robot runs, and the operator's episode flow.

::

    for t in loop:                        # control.RateLoop, at the robot's rate
        obs = robot.observe()             # through SafeRobot: a bad reading stops the arm
        action = decide(t, obs)           # an operator's device, a policy, a stored episode
        sent = robot.act(action)          # through SafeRobot: clamped and rate-limited
        if on_tick(t, obs, sent): break   # record the frame, show it, move the episode on

``imitation record --teleop`` (``session.py``), ``imitation deploy`` (``deploy.py``) and
``imitation replay`` (``replay.py``) are this loop (``drive``) with a different ``decide``:
``Operator`` (a teleop device), ``deploy.PolicyDecider`` (chunks from an inference process),
``StoredActions`` (a recorded episode) and, under ``deploy --takeover``, ``Takeover`` (the
policy until the operator takes control, the operator until they hand it back).

``EpisodeFlow`` is the operator's episode flow as a state machine with no robot in it: the
session feeds it the time and the device's events and carries out what it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Observation = dict[str, Any]


class Decider(Protocol):
    """What a tick sends: ``decide(t, obs)`` the command for tick ``t`` (None: send nothing, the
    arm holds its last goal); ``reset(obs, t)`` forgets the past (a new episode, a hand-back)."""

    def reset(self, obs: Observation, t: int = 0) -> None: ...

    def __call__(self, t: int, obs: Observation) -> np.ndarray | None: ...


def drive(
    robot: Any,
    decide: Decider | Callable[[int, Observation], np.ndarray | None],
    loop: Iterable[int],
    *,
    max_ticks: int | None = None,
    on_tick: Callable[[int, Observation, np.ndarray | None], bool | None] | None = None,
    dry_run: bool = False,
) -> int:
    """Run the loop until ``on_tick`` returns True or ``max_ticks`` ticks ran; returns the ticks.

    ``robot``: a ``SafeRobot`` (every command goes through the safety layer). ``dry_run``: decide
    everything, send nothing (``on_tick`` gets the command that would have been sent)."""
    ticks = 0
    for t in loop:
        obs = robot.observe()
        action = decide(t, obs)
        sent = None
        if action is not None:
            sent = np.asarray(action) if dry_run else robot.act(action)
        ticks += 1
        stop = on_tick(t, obs, sent) if on_tick is not None else False
        if stop or (max_ticks is not None and ticks >= max_ticks):
            break
    return ticks


# ------------------------------------------------------------------------------ deciders
class Operator:
    """A teleop device as a decider: its joint targets for every tick."""

    def __init__(self, device: Any) -> None:
        self.device = device

    def reset(self, obs: Observation, t: int = 0) -> None:
        self.device.reset(obs)

    def __call__(self, t: int, obs: Observation) -> np.ndarray:
        return self.device.read(obs)


class StoredActions:
    """A recorded episode's actions, one per tick; None past its end or once ``until()`` is True."""

    def __init__(self, actions: np.ndarray, until: Callable[[], bool] | None = None) -> None:
        self.actions = np.asarray(actions)
        self.until = until

    def reset(self, obs: Observation, t: int = 0) -> None:
        pass

    def __call__(self, t: int, obs: Observation) -> np.ndarray | None:
        if t >= len(self.actions) or (self.until is not None and self.until()):
            return None
        return self.actions[t]


class Takeover:
    """The policy in control until the operator takes it (``TAKEOVER`` or ``TOGGLE`` from the
    device), the operator until they hand it back (the same event again).

    The hand-over is bumpless. Taking over: the operator's device starts from the arm's pose
    (``reset``), and where its target is elsewhere (a passive leader arm held in another pose)
    the command ramps toward it by at most ``ramp_step`` per tick (radians; the gripper by
    ``gripper_step``) until within ``ramp_tolerance``, after which the operator's targets pass
    straight through. Handing back: the policy restarts from the current observation (its
    history and queued actions forgotten) and, until its first chunk arrives, the arm holds the
    operator's last command. ``in_control`` says who sent the tick's command (``"policy"``,
    ``"ramp"``, ``"operator"``) and ``intervention`` whether it was the operator; every
    command — the ramp's too — goes through the robot's safety layer as the policy's do. The
    device's QUIT calls ``on_quit`` (the deploy stops the arm).
    """

    def __init__(
        self,
        policy: Decider,
        device: Any,
        *,
        ramp_step: float = 0.02,
        gripper_step: float = 0.05,
        ramp_tolerance: float = 0.02,
        gripper_index: Collection[int] = (),
        on_quit: Callable[[str], None] | None = None,
    ) -> None:
        self.policy, self.device, self.on_quit = policy, device, on_quit
        self.ramp_step, self.gripper_step, self.ramp_tolerance = ramp_step, gripper_step, ramp_tolerance
        self.gripper_index = tuple(gripper_index)
        self.in_control = "policy"
        self.handovers = 0  # take-overs in this episode
        self.operator_ticks = 0
        self._last: np.ndarray | None = None

    @property
    def intervention(self) -> bool:
        return self.in_control != "policy"

    def reset(self, obs: Observation, t: int = 0) -> None:
        """A new episode: the policy in control."""
        end = getattr(self.device, "end_episode", None)
        if callable(end):
            end()
        self.policy.reset(obs, t)
        self.device.reset(obs)
        self.in_control, self.handovers, self.operator_ticks = "policy", 0, 0
        self._last = None

    def _steps(self, n: int) -> np.ndarray:
        steps = np.full(n, self.ramp_step)
        steps[list(self.gripper_index)] = self.gripper_step
        return steps

    def __call__(self, t: int, obs: Observation) -> np.ndarray | None:
        names = {getattr(e, "name", str(e)) for e in self.device.events()}
        if "QUIT" in names and self.on_quit is not None:
            self.on_quit("the operator's quit key")  # the device owns the terminal: its q stops
        if names & {"TAKEOVER", "TOGGLE"}:
            if self.in_control == "policy":
                self.device.reset(obs)  # the device starts from where the arm is
                self.in_control = "ramp"
                self.handovers += 1
            else:
                self.policy.reset(obs, t)  # the policy starts afresh from this observation
                self.in_control = "policy"
        if self.in_control == "policy":
            action = self.policy(t, obs)
            if action is not None:
                self._last = np.asarray(action, dtype=np.float64)
            return action
        self.operator_ticks += 1
        target = np.asarray(self.device.read(obs), dtype=np.float64)
        last = (
            self._last
            if self._last is not None
            else np.asarray(obs["state"], dtype=np.float64)[: len(target)]
        )
        if self.in_control == "ramp":
            steps = self._steps(len(target))
            delta = np.clip(target - last, -steps, steps)
            command = last + delta
            if np.all(np.abs(target - command) <= np.maximum(self.ramp_tolerance, 0.0)):
                self.in_control = "operator"
        else:
            command = target
        self._last = command
        return command.astype(np.float32)


# ------------------------------------------------------------------------------ episode flow
@dataclass(frozen=True)
class Transition:
    """What ``EpisodeFlow.step`` asks the session to do: ``kind`` is start, rerecord, discard,
    save or quit; ``left`` the state left and ``elapsed_s`` the time spent in it; ``timed_out``
    whether a save came from the time limit."""

    kind: str
    left: str = ""
    elapsed_s: float = 0.0
    timed_out: bool = False


class EpisodeFlow:
    """The operator's episodes, with no robot in it::

        warm-up ─▶ waiting ──TOGGLE──▶ recording ──TOGGLE / time limit / task done──▶ save ─▶ reset
                                       │  RERECORD: start the episode again
                                       │  DISCARD: drop it ─▶ reset
                                       QUIT (any time) ─▶ done

    From reset, TOGGLE (or ``auto_start`` once ``reset_s`` passed) starts the next episode. After
    ``episodes`` saves the flow is done. ``step(now, events, task_done)`` advances it by one tick
    and returns the ``Transition`` to carry out, if any (``task_done`` is asked only while
    recording)."""

    def __init__(
        self,
        episodes: int,
        *,
        episode_s: float,
        warmup_s: float = 0.0,
        reset_s: float = 0.0,
        auto_start: bool = False,
        start_s: float = 0.0,
    ) -> None:
        self.episodes, self.episode_s, self.warmup_s = episodes, episode_s, warmup_s
        self.reset_s, self.auto_start = reset_s, auto_start
        self.state, self.since = "warm-up", start_s
        self.saved = 0

    @property
    def done(self) -> bool:
        return self.state == "done"

    def elapsed(self, now: float) -> float:
        return now - self.since

    def _go(self, kind: str, state: str, now: float, timed_out: bool = False) -> Transition:
        out = Transition(kind, self.state, now - self.since, timed_out)
        self.state, self.since = state, now
        return out

    def step(
        self, now: float, events: Collection[str], task_done: Callable[[], bool] = lambda: False
    ) -> Transition | None:
        if "QUIT" in events:
            return self._go("quit", "done", now)
        state = self.state
        if state == "warm-up":
            if now - self.since >= self.warmup_s:
                self.state, self.since = "waiting", now
            return None
        if state in ("waiting", "reset"):
            due = state == "reset" and self.auto_start and now - self.since >= self.reset_s
            if "TOGGLE" in events or due:
                return self._go("start", "recording", now)
            return None
        if state != "recording":
            return None
        if "RERECORD" in events:
            return self._go("rerecord", "recording", now)
        if "DISCARD" in events:
            return self._go("discard", "reset", now)
        timed_out = now - self.since >= self.episode_s
        if "TOGGLE" in events or timed_out or task_done():
            self.saved += 1
            return self._go("save", "done" if self.saved >= self.episodes else "reset", now, timed_out)
        return None
