"""``imitation replay``: a recorded episode re-executed on a robot through the safety layer."""

from __future__ import annotations

import pytest

from imitation.cli import main as cli_main
from imitation.control import RateLoop
from imitation.errors import ConfigError
from imitation.record import RecordConfig, record_scripted
from imitation.replay import ReplayConfig, replay

ENV = "imitation/PickPlace-v0"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "demos.zarr"
    record_scripted(RecordConfig(env=ENV, episodes=2, out=path, seed=3, obs_mode="state"), progress=False)
    return path


def test_a_successful_episode_succeeds_again_from_its_seed(store):
    r = replay(ReplayConfig(store=str(store), episode=-1), loop=RateLoop.simulated(50.0))
    assert r["episode"] == 1 and r["seed"] == 4 and r["success"] is True
    # The simulated arm follows its commands closely: the error is the arm's lag, not a drift.
    assert 0.0 <= r["tracking_error_mean"] < 0.05
    assert r["timing"]["ticks"] >= 2 and r["clamps_total"] >= 0


def test_a_dry_run_sends_nothing(store):
    r = replay(ReplayConfig(store=str(store), episode=0, dry_run=True), loop=RateLoop.simulated(50.0))
    assert r["success"] is False and r["clamps_total"] == 0


def test_an_episode_the_store_does_not_hold_is_refused_in_one_line(store, capsys):
    with pytest.raises(ConfigError, match=r"holds 2 episode\(s\); give 0\.\.1"):
        replay(ReplayConfig(store=str(store), episode=2))
    assert cli_main(["replay", "--store", str(store), "--episode", "-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --episode -3")


def test_a_robot_of_other_joints_is_refused_before_anything_moves(store):
    with pytest.raises(ConfigError, match=r"demo store .* does not fit robot .*: joints"):
        replay(ReplayConfig(store=str(store), env="imitation/TransferCube-v0"))
