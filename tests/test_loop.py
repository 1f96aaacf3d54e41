"""The shared loop (``imitation.loop``): the episode flow without a robot, the loop itself on a
fake arm, stored actions, and the policy/operator hand-over of ``deploy --takeover``."""

from __future__ import annotations

import numpy as np
import pytest

from imitation.control import RateLoop, SimulatedClock
from imitation.data.edit import filter_store, intervention_stretches
from imitation.data.store import DemoStore, StoreError
from imitation.deploy import DeployConfig, deploy
from imitation.errors import ConfigError
from imitation.loop import EpisodeFlow, Operator, StoredActions, Takeover, drive
from imitation.teleop.base import Event, Teleop
from imitation.teleop.scripted import ScriptedTakeover


# ------------------------------------------------------------------------------ episode flow
def test_flow_waits_warm_up_then_records_saves_and_resets():
    flow = EpisodeFlow(2, episode_s=10.0, warmup_s=1.0, reset_s=2.0, auto_start=True)
    assert flow.step(0.5, {"TOGGLE"}) is None and flow.state == "warm-up"  # a start in warm-up is not taken
    assert flow.step(1.0, set()) is None and flow.state == "waiting"
    assert flow.step(1.5, set()) is None  # waiting needs the operator, auto_start or not
    start = flow.step(2.0, {"TOGGLE"})
    assert (start.kind, start.left) == ("start", "waiting") and flow.state == "recording"
    save = flow.step(5.0, {"TOGGLE"})
    assert (save.kind, save.elapsed_s, save.timed_out) == ("save", 3.0, False) and flow.state == "reset"
    assert flow.step(6.0, set()) is None  # the reset period
    again = flow.step(7.0, set())  # auto_start once reset_s passed
    assert (again.kind, again.left) == ("start", "reset")
    last = flow.step(17.0, set())  # the time limit
    assert last.kind == "save" and last.timed_out and flow.done and flow.saved == 2


def test_flow_rerecord_discard_task_done_and_quit():
    flow = EpisodeFlow(5, episode_s=30.0)
    flow.step(0.0, set())
    flow.step(0.1, {"TOGGLE"})
    re = flow.step(1.0, {"RERECORD"})
    assert re.kind == "rerecord" and flow.state == "recording" and flow.elapsed(1.5) == 0.5
    assert flow.step(2.0, {"DISCARD"}).kind == "discard" and flow.state == "reset" and flow.saved == 0
    flow.step(2.5, {"TOGGLE"})
    asked = []
    done = flow.step(3.0, set(), lambda: asked.append(1) or True)
    assert done.kind == "save" and not done.timed_out and asked == [1]
    not_asked = []
    flow.step(3.5, set(), lambda: not_asked.append(1) or True)  # the task is asked only while recording
    assert not_asked == []
    quit_ = flow.step(4.0, {"QUIT"})
    assert quit_.kind == "quit" and flow.done


# ------------------------------------------------------------------------------ the loop
class FakeArm:
    """Joints that go where they are sent; ``observe`` reports them."""

    def __init__(self, n: int = 3) -> None:
        self.q = np.zeros(n)
        self.sent: list[np.ndarray] = []

    def observe(self) -> dict[str, np.ndarray]:
        return {"state": self.q.copy()}

    def act(self, a: np.ndarray) -> np.ndarray:
        self.q = np.asarray(a, dtype=np.float64).copy()
        self.sent.append(self.q.copy())
        return self.q.copy()


def sim_loop(hz: float = 50.0) -> RateLoop:
    return RateLoop.simulated(hz, SimulatedClock())


def test_drive_stops_on_max_ticks_or_on_tick_and_dry_run_sends_nothing():
    arm = FakeArm()
    seen = []
    n = drive(
        arm, lambda t, obs: np.full(3, t), sim_loop(), max_ticks=5, on_tick=lambda t, o, s: seen.append(s[0])
    )
    assert n == 5 and seen == [0, 1, 2, 3, 4] and len(arm.sent) == 5
    arm2 = FakeArm()
    n = drive(arm2, lambda t, obs: np.ones(3), sim_loop(), on_tick=lambda t, o, s: t == 2, dry_run=True)
    assert n == 3 and arm2.sent == []


def test_stored_actions_end_with_the_episode_or_when_the_task_ends():
    acts = np.arange(12, dtype=np.float32).reshape(4, 3)
    arm = FakeArm()
    n = drive(arm, StoredActions(acts), sim_loop(), on_tick=lambda t, o, s: s is None)
    assert n == 5 and np.array_equal(np.stack(arm.sent), acts)  # the fifth tick only observes
    ended = [False]
    arm2 = FakeArm()
    stored = StoredActions(acts, until=lambda: ended[0])

    def tick(t, obs, sent):
        ended[0] = t == 1
        return sent is None

    drive(arm2, stored, sim_loop(), on_tick=tick)
    assert len(arm2.sent) == 2


# ------------------------------------------------------------------------------ take-over
class Script(Teleop):
    """A device whose events come from a list (one entry per tick) and whose target is fixed."""

    def __init__(self, target, events) -> None:
        super().__init__()
        self.target = np.asarray(target, dtype=np.float64)
        self.script = list(events)
        self.resets = 0

    def reset(self, obs):
        self.resets += 1

    def read(self, obs):
        return self.target

    def poll(self):
        if self.script:
            e = self.script.pop(0)
            if e:
                self.emit(e)


class CountingPolicy:
    def __init__(self, value: float) -> None:
        self.value, self.resets = value, []

    def reset(self, obs, t=0):
        self.resets.append(t)

    def __call__(self, t, obs):
        return np.full(3, self.value)


def test_takeover_ramps_to_the_operator_then_hands_back_to_a_reset_policy():
    policy = CountingPolicy(0.0)
    # the operator's leader arm is held 0.1 rad away on every joint, the gripper (index 2) 0.5 away
    device = Script([0.1, 0.1, 0.5], [None, Event.TOGGLE] + [None] * 20 + [Event.TOGGLE])
    take = Takeover(
        policy, device, ramp_step=0.02, gripper_step=0.1, ramp_tolerance=0.001, gripper_index=(2,)
    )
    arm = FakeArm()
    take.reset(arm.observe())
    who = []

    def tick(t, obs, sent):
        who.append(take.in_control)
        return t == 25

    drive(arm, take, sim_loop(), on_tick=tick)
    sent = np.stack(arm.sent)
    assert who[0] == "policy" and who[1] == "ramp" and who[-1] == "policy"
    ramp = sent[1:6]  # five ticks at 0.02 rad reach 0.1 rad
    assert np.all(np.abs(np.diff(sent[:8, :2], axis=0)) <= 0.02 + 1e-6)  # no joint jumps to the leader
    assert np.all(np.abs(np.diff(sent[:8, 2])) <= 0.1 + 1e-6)
    assert np.allclose(ramp[-1], [0.1, 0.1, 0.5])  # reached: the operator's targets pass through
    assert "operator" in who and who.index("operator") == 5
    assert take.handovers == 1 and take.operator_ticks == 21
    assert policy.resets == [0, 22]  # the episode's start, and the hand-back at tick 22
    assert device.resets == 2  # the episode's start, and the take-over (the device starts from the arm)
    assert np.allclose(sent[-1], 0.0)


def test_the_devices_quit_key_stops_the_arm():
    stops = []
    device = Script([0, 0, 0], [Event.QUIT])
    take = Takeover(CountingPolicy(1.0), device, on_quit=stops.append)
    take(0, {"state": np.zeros(3)})
    assert stops == ["the operator's quit key"]


def test_the_scripted_operator_takes_over_on_a_stall_and_hands_back_within_its_budget():
    progress = [0.0]
    op = ScriptedTakeover(
        lambda: lambda obs: np.ones(2), lambda: progress[0], stall_ticks=3, correct_ticks=2, budget=3
    )
    events = []
    for t in range(20):
        got = [e.name for e in op.events()]
        events.append(got)
        if op.driving:
            op.read({})
        elif t < 2:
            progress[0] += 1.0  # the policy makes progress at first
    toggles = [t for t, e in enumerate(events) if e == ["TOGGLE"]]
    # progress stops at tick 2: three stalled ticks later (5) it takes over, drives 2 ticks, hands
    # back (7); the next stall takes over again (11) and the budget (3 ticks) ends it at once (12)
    assert toggles == [5, 7, 11, 12] and op.used == 3
    op.end_episode()
    assert not op.driving


def test_operator_decider_reads_the_device():
    device = Script([0.3, 0.2, 0.1], [])
    op = Operator(device)
    op.reset({"state": np.zeros(3)})
    assert device.resets == 1 and np.allclose(op(0, {}), [0.3, 0.2, 0.1])


# ------------------------------------------------------------------------------ deploy --takeover
def test_deploy_takeover_records_who_was_in_control(pick_place_checkpoint, tmp_path):
    store = tmp_path / "corrections.zarr"
    cfg = DeployConfig(
        checkpoint=str(pick_place_checkpoint),
        episodes=2,
        episode_s=3.0,
        inference="inline",
        record=str(store),
        takeover="scripted",
        takeover_stall_s=0.4,
        takeover_s=0.5,
    )
    summary = deploy(cfg, loop=sim_loop(50.0))
    s = DemoStore.open(store)
    assert s.n_episodes == 2 and "intervention" in s.features
    flags = np.concatenate([s.read_episode(i, ["intervention"])["intervention"] for i in range(2)])
    assert set(np.unique(flags)) <= {0, 1}
    assert int(flags.sum()) == summary["operator_ticks"] > 0
    assert 0 < flags.mean() < 1  # the policy and the operator both drove
    assert all(e["takeovers"] >= 1 for e in summary["episodes"])
    # the corrections alone, one episode per stretch, ready to merge with demonstrations
    fixes = filter_store(store, tmp_path / "fixes.zarr", interventions=True, progress=False)
    assert "intervention" not in fixes.features and fixes.n_frames == int(flags.sum())
    assert fixes.n_episodes == sum(
        len(intervention_stretches(s.read_episode(i, ["intervention"])["intervention"])) for i in range(2)
    )
    first = fixes.episode_meta(0)
    a, b = first["info"]["source_frames"]
    src = s.read_episode(first["info"]["source_episode"], ["action"])["action"]
    assert np.array_equal(fixes.read_episode(0, ["action"])["action"], src[a:b])
    with pytest.raises(StoreError, match="no `intervention` feature"):
        filter_store(fixes, tmp_path / "again.zarr", interventions=True, progress=False)


def test_intervention_stretches():
    assert intervention_stretches(np.array([0, 1, 1, 0, 1])) == [(1, 3), (4, 5)]
    assert intervention_stretches(np.zeros(4)) == []


def test_takeover_options_are_checked_before_anything_moves():
    with pytest.raises(ConfigError, match="choose one of"):
        DeployConfig(checkpoint="x", takeover="joystick")
    with pytest.raises(ConfigError, match="--leader-port"):
        DeployConfig(checkpoint="x", takeover="so100-leader")
    with pytest.raises(ConfigError, match="simulated task"):
        DeployConfig(checkpoint="x", robot="so100", port="/dev/null", takeover="scripted")


def test_a_simulated_joint_pushed_past_its_range_does_not_stop_the_loop():
    """Contact can push a simulated gripper open past 1; the reading check (for calibrations
    and sensors) gives --robot sim a wider margin than a real arm's 0.15."""
    from imitation.robots.stack import SIM_READING_MARGIN, Needs, RobotOptions, RobotStack

    stack = RobotStack(RobotOptions(robot="sim"), Needs(env_id="imitation/PickPlace-v0", origin="test"))
    try:
        assert stack.robot.limits.reading_margin_rad == SIM_READING_MARGIN > 0.15
        stack.robot.connect()
        obs = dict(stack.robot.observe())
        pushed = np.array(obs["state"], dtype=np.float64)
        pushed[-1] = stack.robot.spec.upper[-1] + 0.154  # the gripper, forced open by a part
        assert stack.robot._reading_problem(obs | {"state": pushed}) is None
        pushed[-1] = stack.robot.spec.upper[-1] + SIM_READING_MARGIN + 0.1
        assert "gripper" in stack.robot._reading_problem(obs | {"state": pushed})
    finally:
        stack.close()
