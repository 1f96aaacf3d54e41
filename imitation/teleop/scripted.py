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
