"""Keyboard teleop: escape-sequence parsing, window key codes, key holds (injected clock), and
the device reading a real pseudo-terminal, whose mode it restores on close."""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import termios
import time

import mujoco
import numpy as np
import pytest

from envs.so100 import ARM_XML, HOME_QPOS, ArmIK
from imitation.data.store import DemoStore
from imitation.errors import ImitationError
from imitation.teleop.base import Event
from imitation.teleop.keyboard import HELP, KeyboardTeleop, parse_keys, split_keys, window_key_name


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_parse_keys_plain_and_escape_sequences():
    assert parse_keys(b"\r\nrdq +-") == ["enter", "enter", "r", "d", "q", "space", "+", "-"]
    # arrows: normal (CSI) and application cursor mode (SS3), with a modifier, keypad keys
    assert parse_keys(b"\x1b[A\x1b[B\x1b[C\x1b[D") == ["up", "down", "right", "left"]
    assert parse_keys(b"\x1bOA\x1bOD\x1b[1;5C") == ["up", "left", "right"]
    assert parse_keys(b"\x1b[3~\x1b[5~\x1bOM\x1bOk") == ["delete", "pageup", "enter", "+"]
    assert parse_keys(b"\x1b") == ["esc"]
    assert parse_keys(b"\x1b\x1b[A") == ["esc", "up"]
    assert parse_keys(b"\x1bq") == ["alt+q"]  # Alt-q is not q: no accidental quit
    assert parse_keys(b"\x03\x7f") == ["ctrl+c", "backspace"]
    assert parse_keys("é".encode()) == ["é"]


def test_split_keys_keeps_a_cut_sequence_for_the_next_read():
    assert split_keys(b"i\x1b[") == (["i"], b"\x1b[")
    assert split_keys(b"\x1b") == ([], b"\x1b")
    assert split_keys(b"\x1b[" + b"A") == (["up"], b"")
    assert split_keys("é".encode()[:1]) == ([], "é".encode()[:1])


def test_window_codes():
    assert window_key_name(-1) is None
    assert [window_key_name(c) for c in (13, 10, 32, ord("r"), ord("+"))] == [
        "enter",
        "enter",
        "space",
        "r",
        "+",
    ]
    # full arrow codes (cv2.waitKeyEx): GTK, Qt, Windows; and cv2.waitKey's 8-bit GTK and Qt codes
    for codes in (
        (0xFF52, 0xFF54, 0xFF51, 0xFF53),
        (0x1000013, 0x1000015, 0x1000012, 0x1000014),
        (0x260000, 0x280000, 0x250000, 0x270000),
        (82, 84, 81, 83),
        (19, 21, 18, 20),
    ):
        assert [window_key_name(c) for c in codes] == ["up", "down", "left", "right"]


def test_window_keys_give_events_and_motion():
    clock = Clock()
    kb = KeyboardTeleop(terminal=False, clock=clock)
    with kb:
        assert not kb.terminal
        for code in (13, ord("r"), ord("d"), ord("q"), ord("+"), ord("x"), -1):
            kb.feed_key(code)
        assert kb.events() == [Event.TOGGLE, Event.RERECORD, Event.DISCARD, Event.QUIT, Event.SPEED_UP]
        kb.feed_key(0xFF52)  # up
        assert kb.twist()[0] == pytest.approx(kb.speed_m_s)


def test_a_key_counts_as_held_for_a_while_after_each_press():
    clock = Clock()
    kb = KeyboardTeleop(terminal=False, clock=clock, first_hold_s=0.5, repeat_hold_s=0.1)
    t0 = clock.t
    kb.press("i", t0)
    assert kb.held(t0 + 0.45) == ["i"]  # covers the auto-repeat delay
    assert kb.held(t0 + 0.55) == []
    kb.press("i", t0 + 1.0)
    kb.press("i", t0 + 1.4)  # an auto-repeat: from now on a short hold
    assert kb.held(t0 + 1.48) == ["i"]
    assert kb.held(t0 + 1.52) == []
    kb.press("j", t0 + 2.0)
    kb.press("l", t0 + 2.01)  # the opposite key cancels
    assert kb.held(t0 + 2.02) == ["l"]
    clock.t = t0 + 2.02
    assert kb.twist()[5] == pytest.approx(kb.angular_speed_rad_s)  # l: +wz


def test_holding_up_with_auto_repeat_moves_the_gripper_forward():
    clock = Clock()
    kb = KeyboardTeleop(terminal=False, clock=clock)
    obs = {"state": np.concatenate([HOME_QPOS, [1.0]]).astype(np.float32)}
    kb.reset(obs)
    action = obs["state"]
    for tick in range(50):  # 1 s at 50 Hz, the terminal repeating the key every 40 ms
        if tick % 2 == 0:
            kb.feed_key(0xFF52)
        action = kb.read({"state": action})
        clock.t += 0.02
    for _ in range(20):  # let go: it stops within the repeat hold
        action = kb.read({"state": action})
        clock.t += 0.02
    ik = ArmIK(mujoco.MjModel.from_xml_path(str(ARM_XML)))
    moved = ik.forward(action[:5].astype(float))[0] - ik.forward(HOME_QPOS)[0]
    # 0.05 m/s for 1 s plus at most the 0.12 s hold after the last repeat
    assert 0.049 < moved[0] < 0.05 + 0.05 * 0.12 + 1e-3
    assert abs(moved[1]) < 2e-3 and abs(moved[2]) < 2e-3


def test_space_toggles_the_gripper_and_events_only_mode_ignores_motion():
    clock = Clock()
    kb = KeyboardTeleop(terminal=False, clock=clock)
    kb.press("space")
    assert not kb.gripper_open
    ev = KeyboardTeleop(terminal=False, clock=clock, events_only=True)
    for key in ("up", "space", "+", "enter", "q"):
        ev.press(key)
    assert ev.events() == [Event.TOGGLE, Event.QUIT]
    assert ev.held() == [] and ev._ik is None  # no IK model loaded
    assert "Enter" in ev.help and "space" not in ev.help
    with pytest.raises(ImitationError, match="events-only"):
        ev.read({"state": np.zeros(6)})


def test_help_names_the_episode_keys():
    for text in (HELP, KeyboardTeleop(terminal=False).help):
        for word in (
            "Enter",
            " r ",
            " d ",
            " q ",
            "quit",
            "discard",
            "re-record",
            "space",
            "+ / -",
            "0.02, 0.05, 0.1 m/s",
        ):
            assert word in text
        assert "{" not in text
    assert KeyboardTeleop(terminal=False).help == HELP  # the --help text is the device's


def test_terminal_required_but_absent():
    r, w = os.pipe()
    try:
        with pytest.raises(ImitationError, match="not a terminal"):
            KeyboardTeleop(fd=r, terminal=True).connect()
    finally:
        os.close(r)
        os.close(w)


def _poll_until(kb: KeyboardTeleop, done, timeout_s: float = 30.0) -> list[Event]:
    """Poll ``kb`` until ``done(events so far)``; the pty delivers input asynchronously. Returns as
    soon as it holds; the deadline only stops a test that would hang."""
    got: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got += kb.events()
        if done(got):
            return got
        select.select([kb._fd], [], [], 0.02)
    return got


def test_keyboard_device_in_a_real_pseudo_terminal():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON and before[3] & termios.ECHO  # a fresh pty is cooked
        clock = Clock()
        kb = KeyboardTeleop(fd=slave, terminal=True, clock=clock)
        with kb:
            assert kb.terminal
            mode = termios.tcgetattr(slave)
            assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO
            assert mode[3] & termios.ISIG  # Ctrl-C still interrupts

            os.write(master, b"\r")  # Enter, as a terminal sends it
            assert _poll_until(kb, lambda e: len(e) >= 1) == [Event.TOGGLE]

            os.write(master, b"\x1b[A")  # the up arrow
            _poll_until(kb, lambda e: bool(kb.held()))
            assert kb.held() == ["up"] and kb.twist()[0] > 0

            os.write(master, b"\x1b")  # an escape sequence cut in two writes
            _poll_until(kb, lambda e: bool(kb._pending))
            os.write(master, b"[B")
            _poll_until(kb, lambda e: kb.held() == ["down"])
            assert kb.held() == ["down"]  # and the opposite key cancelled up

            os.write(master, b"rdq")
            assert _poll_until(kb, lambda e: len(e) >= 3) == [Event.RERECORD, Event.DISCARD, Event.QUIT]
            assert not select.select([master], [], [], 0.05)[0]  # nothing echoed to the screen
        assert termios.tcgetattr(slave) == before  # mode restored on close
        kb.close()  # twice is fine
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_recording_from_the_keyboard_in_tmux(tmp_path):
    """The operator's path end to end: `imitation record` in a tmux pane, keys sent by tmux."""
    out = tmp_path / "kb.zarr"
    log = tmp_path / "record.log"
    sock = f"imitation-test-{os.getpid()}"
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    cmd = (
        f"{shlex.quote(sys.executable)} -m imitation.cli record --robot sim --teleop keyboard "
        f"--env imitation/PickPlace-v0 --obs-mode state --episodes 1 --warmup-s 0 --ui terminal "
        f"--out {shlex.quote(str(out))} 2> {shlex.quote(str(log))}; echo $? > {shlex.quote(str(log))}.rc"
    )
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    subprocess.run([*tmux, "new-session", "-d", "-x", "200", "-y", "20", cmd], check=True, env=env)
    try:

        def wait_for(text: str, timeout_s: float = 60.0) -> None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if log.exists() and text in log.read_text(errors="replace"):
                    return
                time.sleep(0.1)
            raise AssertionError(
                f"{text!r} never appeared; the recorder wrote:\n{log.read_text(errors='replace')}"
            )

        def keys(*k: str) -> None:
            subprocess.run([*tmux, "send-keys", *k], check=True)

        def wait_for_status(holds, after: int, timeout_s: float = 60.0) -> tuple[str, int]:
            """The first status line written after character ``after`` of the log for which
            ``holds(line)``, and where it ends. The recorder writes one a few times a second, once
            the tick it describes has read its keys: a key sent after a line is read by a later tick."""
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                text = log.read_text(errors="replace") if log.exists() else ""
                for m in re.finditer(r"\[[^\r\n]*?(?=\x1b\[K)", text[after:]):
                    if holds(m.group()):
                        return m.group(), after + m.end()
                time.sleep(0.05)
            raise AssertionError(
                f"no such status line; the recorder wrote:\n{log.read_text(errors='replace')}"
            )

        def frames(line: str) -> int:
            m = re.search(r"(\d+) frames", line)
            return int(m.group(1)) if m else -1

        wait_for("[ready]")
        keys("Enter")
        _, pos = wait_for_status(lambda ln: ln.startswith("[● REC]"), 0)
        # Up, then Space (open/close the gripper), five times; each pair is sent once a status line
        # shows the gripper as the previous pair left it. Each Up is thus read by a tick of its own,
        # and moves the arm in that tick at least, however slowly the recorder runs.
        gripper = "open"
        for _ in range(5):
            keys("Up")
            keys("Space")
            gripper = "closed" if gripper == "open" else "open"
            line, pos = wait_for_status(lambda ln, g=gripper: f"gripper {g}" in ln, pos)
        assert gripper == "closed"
        # The gripper closes by 0.1 a tick: after 8 recorded ticks it is below 0.5, wherever it started.
        closed_at = frames(line)
        wait_for_status(lambda ln: frames(ln) >= closed_at + 8, pos)
        keys("Enter")  # save: one episode asked for, so the recorder closes the store and exits
        deadline = time.monotonic() + 60
        while not (tmp_path / "record.log.rc").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "record.log.rc").read_text().strip() == "0", log.read_text(errors="replace")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    store = DemoStore.open(out)
    assert store.n_episodes == 1
    action = store.read("action")
    assert len(action) > 10
    assert np.abs(action[-1, :5] - action[0, :5]).max() > 0.01  # the arrows moved the arm
    assert action[:, 5].min() < 0.5 < action[0, 5]  # the gripper closed from open
