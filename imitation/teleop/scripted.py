"""Scripted teleop: a callable expert (``obs -> action``) behind the teleop interface.

The simulated tasks' scripted experts (``SimRobot.expert()``) keep state within an episode, so
pass ``make_expert`` (e.g. ``robot.expert``) to get a fresh one at the start of every episode;
a plain ``expert`` is used as it is for every episode.

Events: TOGGLE (start an episode), nothing else; the recorder decides when an expert episode
ends (task done, time limit). The device is *waiting* at first: while it waits, every
``events()`` call reports TOGGLE, so a start is not lost when the recorder is not yet ready
for it. The first ``reset`` after a TOGGLE was reported is the start of the episode: the waiting
ends (and a fresh expert is made). ``end_episode()`` (the recorder's notice that the episode was
saved or dropped) makes it wait again. A ``reset`` before any TOGGLE (a session's first scene)
or during an episode (a re-record) does not change whether it waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from imitation.teleop.base import Event, Teleop

Expert = Callable[[dict[str, Any]], np.ndarray]


class ScriptedTeleop(Teleop):
    """Actions from ``expert`` (or from a new ``make_expert()`` per episode)."""

    name = "scripted"
    help = "Scripted expert: each episode starts by itself and ends when the task is done."

    def __init__(
        self, expert: Expert | None = None, *, make_expert: Callable[[], Expert] | None = None
    ) -> None:
        super().__init__()
        if (expert is None) == (make_expert is None):
            raise ValueError(
                "scripted teleop: pass exactly one of expert= (a callable obs -> action) or make_expert="
            )
        self.make_expert = make_expert
        self.expert: Expert | None = expert
        self.waiting = True
        self._toggled = False  # a TOGGLE was reported since the last reset

    def reset(self, obs: dict[str, Any]) -> None:
        if self.make_expert is not None:
            self.expert = self.make_expert()
        if self.waiting and self._toggled:
            self.waiting = False
        self._toggled = False

    def end_episode(self) -> None:
        self.waiting = True

    def read(self, obs: dict[str, Any]) -> np.ndarray:
        if self.expert is None:
            assert self.make_expert is not None
            self.expert = self.make_expert()
        return np.asarray(self.expert(obs))

    def poll(self) -> None:
        if self.waiting:
            self._toggled = True
            self.emit(Event.TOGGLE)


class ScriptedTakeover(ScriptedTeleop):
    """A scripted operator for ``deploy --takeover scripted``: it watches the task's progress
    (``progress()``, e.g. the simulated task's reward) while the policy is in control and takes
    over (TOGGLE) when it has not risen by ``min_gain`` for ``stall_ticks`` ticks; a fresh expert
    then drives for ``correct_ticks`` ticks and it hands back (TOGGLE again). ``budget`` caps the
    ticks it may drive over all episodes (None: no cap); once spent it no longer takes over."""

    name = "scripted-takeover"
    help = "Scripted operator: takes over when the policy stalls, hands back after a correction."

    def __init__(
        self,
        make_expert: Callable[[], Expert],
        progress: Callable[[], float],
        *,
        stall_ticks: int,
        correct_ticks: int,
        min_gain: float = 1e-3,
        budget: int | None = None,
    ) -> None:
        super().__init__(make_expert=make_expert)
        if stall_ticks < 1 or correct_ticks < 1:
            raise ValueError(f"stall_ticks={stall_ticks} and correct_ticks={correct_ticks} must be ≥ 1")
        self.progress, self.stall_ticks, self.correct_ticks = progress, stall_ticks, correct_ticks
        self.min_gain, self.budget = min_gain, budget
        self.waiting = False
        self.driving = False
        self.used = 0  # ticks driven over all episodes
        self._best = -float("inf")
        self._stalled = 0
        self._driven = 0

    def end_episode(self) -> None:
        self.driving = False
        self._best, self._stalled, self._driven = -float("inf"), 0, 0

    def reset(self, obs: dict[str, Any]) -> None:
        self.expert = self.make_expert()  # a fresh expert for each take-over (make_expert is required)

    def read(self, obs: dict[str, Any]) -> np.ndarray:
        self._driven += 1
        self.used += 1
        return super().read(obs)

    def poll(self) -> None:
        if self.driving:
            spent = self.budget is not None and self.used >= self.budget
            if self._driven >= self.correct_ticks or spent:
                self.driving = False
                self._best, self._stalled = -float("inf"), 0
                self.emit(Event.TOGGLE)
            return
        value = float(self.progress())
        if value > self._best + self.min_gain:
            self._best, self._stalled = value, 0
            return
        self._stalled += 1
        if self._stalled >= self.stall_ticks and (self.budget is None or self.used < self.budget):
            self.driving, self._driven = True, 0
            self.emit(Event.TOGGLE)
