"""A task named by a checkpoint or a demo store never makes a command import code: eval, deploy
(sim and --emulate), view and replay refuse a mapping that would, and run it when the user names
it with --env."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imitation.errors import ConfigError


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A mapping of PickPlace that imports a module leaving a marker file, a copy of the PickPlace
    checkpoint and of its demo store that both name that mapping as their task."""
    import gymnasium as gym

    import envs  # noqa: F401 - registers the tasks

    module = f"planted_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # the import would succeed: only the rule stops it
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # and in worker and CLI processes
    env = gym.make("imitation/PickPlace-v0").unwrapped
    mapping = tmp_path / "pick_place_mapped.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "env_id": "imitation/PickPlace-v0",
                "imports": [module],
                "state": "state",
                "env_state": "env_state",
                "env_kwargs": {"time_limit_s": 0.2},
                "action_names": list(env.arm.joint_names),
            }
        )
    )
    return mapping, marker, module


def _checkpoint_naming(pick_place_checkpoint: Path, task: Path, dst: Path) -> Path:
    from imitation.checkpoint import resolve

    ckpt = shutil.copytree(resolve(pick_place_checkpoint), dst)
    meta = yaml.safe_load((ckpt / "config.yaml").read_text())
    meta["robot"]["env_id"] = str(task)
    meta["dataset"]["path"] = None
    (ckpt / "config.yaml").write_text(yaml.safe_dump(meta))
    return ckpt


def _store_naming(pick_place_checkpoint: Path, task: Path, dst: Path) -> Path:
    import zarr

    from imitation.checkpoint import read_meta

    store = shutil.copytree(read_meta(pick_place_checkpoint)["dataset"]["path"], dst)
    g = zarr.open_group(store, mode="r+")
    g.attrs["robot"] = dict(g.attrs["robot"]) | {"env_id": str(task)}
    return store


def _refused(e: pytest.ExceptionInfo, mapping: Path) -> None:
    msg = str(e.value)
    assert "would import code" in msg and f"--env {mapping}" in msg and "\n" not in msg


def test_eval_refuses_a_checkpoints_task_that_imports_code_and_runs_it_under_env(
    planted, pick_place_checkpoint, tmp_path
):
    from imitation.evaluate import EvalConfig, evaluate

    mapping, marker, module = planted
    ckpt = _checkpoint_naming(pick_place_checkpoint, mapping, tmp_path / "ckpt")
    cfg = EvalConfig(checkpoint=str(ckpt), episodes=1, num_envs=1, videos=0, out=str(tmp_path / "ev"))
    with pytest.raises(ConfigError) as e:
        evaluate(cfg, progress=False)
    _refused(e, mapping)
    assert not marker.exists() and module not in sys.modules
    cfg.env = str(mapping)  # the user names it: trusted
    assert evaluate(cfg, progress=False)["episodes"] == 1
    assert marker.exists()


def test_eval_cli_refusal_is_one_line(planted, pick_place_checkpoint, tmp_path):
    mapping, marker, _ = planted
    ckpt = _checkpoint_naming(pick_place_checkpoint, mapping, tmp_path / "ckpt")
    proc = subprocess.run(
        [sys.executable, "-m", "imitation.cli", "eval", "--checkpoint", str(ckpt), "--episodes", "1",
         "--out", str(tmp_path / "ev")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--env {mapping}" in lines[0]
    assert not marker.exists()


def test_rollout_takes_a_task_as_untrusted_unless_told(planted, pick_place_checkpoint):
    """What `train --eval-every` calls with the store's task."""
    from imitation.checkpoint import load_policy
    from imitation.evaluate import rollout

    mapping, marker, _ = planted
    with pytest.raises(ConfigError) as e:
        rollout(load_policy(pick_place_checkpoint), str(mapping), [0], env_kwargs={"obs_mode": "state"})
    _refused(e, mapping)
    assert not marker.exists()


@pytest.mark.parametrize(
    "robot, emulate", [("sim", False), ("configs/robots/so100_emulated.yaml", True)], ids=["sim", "emulate"]
)
def test_deploy_refuses_a_checkpoints_task_that_imports_code(
    planted, pick_place_checkpoint, tmp_path, robot, emulate
):
    from imitation.deploy import DeployConfig, deploy

    mapping, marker, module = planted
    ckpt = _checkpoint_naming(pick_place_checkpoint, mapping, tmp_path / "ckpt")
    with pytest.raises(ConfigError) as e:
        deploy(DeployConfig(checkpoint=str(ckpt), robot=robot, emulate=emulate, inference="inline"))
    _refused(e, mapping)
    assert not marker.exists() and module not in sys.modules


def test_deploy_runs_the_task_the_user_names(planted, pick_place_checkpoint, tmp_path):
    from imitation.deploy import DeployConfig, deploy

    mapping, marker, _ = planted
    ckpt = _checkpoint_naming(pick_place_checkpoint, mapping, tmp_path / "ckpt")
    s = deploy(DeployConfig(checkpoint=str(ckpt), env=str(mapping), inference="inline", episode_s=0.1))
    assert s["episodes"][0]["ticks"] >= 1 and marker.exists()  # (the safe start uses up most of 0.2 s)


def test_view_refuses_a_stores_task_that_imports_code_and_resimulates_it_under_env(
    planted, pick_place_checkpoint, tmp_path
):
    from imitation.view import ViewConfig, frames

    mapping, marker, module = planted
    store = _store_naming(pick_place_checkpoint, mapping, tmp_path / "demos.zarr")
    cfg = ViewConfig(store=store, camera="top", size=(48, 64), out=tmp_path / "v.png")
    with pytest.raises(ConfigError) as e:
        next(frames(cfg)[0])
    _refused(e, mapping)
    assert not marker.exists() and module not in sys.modules
    cfg.env = str(mapping)
    assert next(frames(cfg)[0]).shape == (48, 64, 3) and marker.exists()


def test_replay_refuses_a_stores_task_that_imports_code(planted, pick_place_checkpoint, tmp_path):
    from imitation.replay import main as replay_main

    mapping, marker, module = planted
    store = _store_naming(pick_place_checkpoint, mapping, tmp_path / "demos.zarr")
    with pytest.raises(ConfigError) as e:
        replay_main(["--store", str(store)])
    _refused(e, mapping)
    assert not marker.exists() and module not in sys.modules
    assert replay_main(["--store", str(store), "--env", str(mapping)]) == 0 and marker.exists()
