"""The leader-arm and scripted wrappers, and ``make_teleop``."""

from __future__ import annotations

import numpy as np
import pytest

from imitation.errors import ConfigError
from imitation.teleop import TELEOPS, Event, make_teleop
from imitation.teleop.keyboard import KeyboardTeleop
from imitation.teleop.leader import LeaderTeleop
from imitation.teleop.scripted import ScriptedTeleop


class FakeLeader:
    def __init__(self, joints) -> None:
        self.joints = np.asarray(joints, dtype=np.float64)
        self.calls: list[str] = []

    def connect(self) -> None:
        self.calls.append("connect")

    def disconnect(self) -> None:
        self.calls.append("disconnect")

    def action(self) -> np.ndarray:
        return self.joints


class FakeEvents:
    help = "  Enter  start / save"

    def __init__(self) -> None:
        self.pending = [Event.TOGGLE]
        self.closed = False

    def events(self):
        out, self.pending = self.pending, []
        return out

    def close(self) -> None:
        self.closed = True


def test_leader_gives_its_joints_and_the_other_devices_events():
    leader, events = FakeLeader([0.1, -0.2, 0.3, 0.4, -0.5, 0.75]), FakeEvents()
    dev = LeaderTeleop(leader, events)
    with dev:
        action = dev.read({"state": np.zeros(6, np.float32)})
        np.testing.assert_allclose(action, leader.joints, rtol=1e-6)
        assert action.dtype == np.float32
        assert dev.events() == [Event.TOGGLE] and dev.events() == []
    assert leader.calls == ["connect", "disconnect"] and events.closed
    assert "Leader arm" in dev.help and "Enter" in dev.help


def test_two_leaders_for_a_bimanual_follower_and_a_size_check():
    left, right = FakeLeader(np.zeros(6)), FakeLeader(np.ones(6))
    dev = LeaderTeleop([left, right])
    assert dev.read({"state": np.zeros(12)}).tolist() == [0.0] * 6 + [1.0] * 6
    assert dev.events() == []
    with pytest.raises(ValueError, match="12 joint values, the robot's state has 6"):
        dev.read({"state": np.zeros(6)})


def test_leader_with_a_keyboard_for_events():
    kb = KeyboardTeleop(terminal=False, events_only=True)
    dev = LeaderTeleop(FakeLeader(np.zeros(6)), kb)
    kb.feed_key(13)
    kb.feed_key(ord("d"))
    assert dev.events() == [Event.TOGGLE, Event.DISCARD]


def test_scripted_reports_toggle_while_waiting_and_starts_at_the_next_reset():
    made = []

    def make_expert():
        made.append(len(made))
        return lambda obs: obs["state"] + len(made)

    dev = ScriptedTeleop(make_expert=make_expert)
    obs = {"state": np.zeros(3)}
    dev.reset(obs)  # the session's first scene: no TOGGLE yet, still waiting
    assert dev.read(obs).tolist() == [1.0] * 3
    assert dev.events() == [Event.TOGGLE]  # e.g. during a warm-up that ignores it
    assert dev.events() == [Event.TOGGLE]  # reported until the episode starts
    dev.reset(obs)  # the recorder starts the episode
    assert not dev.waiting and dev.events() == [] and dev.events() == []
    assert dev.read(obs).tolist() == [2.0] * 3  # a fresh expert
    dev.reset(obs)  # a re-record: same episode, no TOGGLE (it would save)
    assert dev.events() == []
    dev.end_episode()  # saved: the next one starts by itself
    assert dev.events() == [Event.TOGGLE]
    dev.reset(obs)
    assert dev.events() == [] and made == [0, 1, 2, 3]


def test_scripted_with_one_expert():
    expert = lambda obs: obs["state"] * 2  # noqa: E731
    dev = ScriptedTeleop(expert)
    assert dev.events() == [Event.TOGGLE]
    dev.reset({"state": np.ones(2)})
    assert dev.read({"state": np.ones(2)}).tolist() == [2.0, 2.0] and dev.expert is expert
    with pytest.raises(ValueError, match="exactly one"):
        ScriptedTeleop()
    with pytest.raises(ValueError, match="exactly one"):
        ScriptedTeleop(expert, make_expert=lambda: expert)


def test_make_teleop():
    assert set(TELEOPS) == {
        "keyboard",
        "gamepad",
        "spacemouse",
        "so100-leader",
        "koch-leader",
        "aloha-leader",
        "so101-bimanual-leader",
        "scripted",
    }
    with pytest.raises(
        ConfigError, match="unknown teleop device 'joystick'; choose one of: keyboard, gamepad"
    ):
        make_teleop("joystick")
    with pytest.raises(ConfigError, match="serial port"):
        make_teleop("so100-leader")
    kb = make_teleop("keyboard", terminal=False, control_hz=30)
    assert isinstance(kb, KeyboardTeleop) and kb.control_hz == 30
    assert make_teleop("gamepad").name == "gamepad" and make_teleop("spacemouse").name == "spacemouse"
    assert isinstance(make_teleop("scripted", expert=lambda obs: obs["state"]), ScriptedTeleop)
    for name in ("so100-leader", "koch-leader"):
        dev = make_teleop(name, port="/dev/ttyUSB-not-opened", control_hz=30)  # opens nothing yet
        assert isinstance(dev, LeaderTeleop) and dev.name == name
        assert isinstance(dev.event_source, KeyboardTeleop) and dev.event_source.events_only
        assert "Enter" in dev.help
