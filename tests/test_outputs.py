"""What the commands write: data they did not create is never destroyed, and a failed command
removes what it created.

Each test runs the real command (a subprocess of ``python -m imitation.cli``) on the bad input a
user would give, and checks the one-line error, the exit code and what is left on disk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from imitation import checkpoint
from imitation.data.store import DemoStore
from imitation.errors import ConfigError


def cli(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """``imitation <args>``; ``code`` runs first in the same process (to simulate a fault)."""
    prelude = (code or "") + "\nimport sys\nfrom imitation.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", prelude, *args], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The command failed with exit 2 and said why in one line (after any progress log lines),
    without a traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines[-1].startswith("error: "), proc.stderr[-2000:]
    assert all(line.startswith("INFO ") for line in lines[:-1]), proc.stderr[-2000:]
    return lines[-1]


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes: what "untouched" is checked against."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ a LeRobot ACT directory
# Our names -> LeRobot 0.4's: the inverse of imitation.import_checkpoint.ACT_RENAMES.
TO_LEROBOT = [
    ("model.vae_layers.", "model.vae_encoder.layers."),
    ("model.vae_cls.", "model.vae_encoder_cls_embed."),
    ("model.vae_state_proj.", "model.vae_encoder_robot_state_input_proj."),
    ("model.vae_action_proj.", "model.vae_encoder_action_input_proj."),
    ("model.vae_out.", "model.vae_encoder_latent_output_proj."),
    ("model.encoder_layers.", "model.encoder.layers."),
    ("model.decoder_layers.", "model.decoder.layers."),
    ("model.decoder_norm.", "model.decoder.norm."),
    ("model.lowdim_proj.state.", "model.encoder_robot_state_input_proj."),
    ("model.lowdim_proj.env_state.", "model.encoder_env_state_input_proj."),
    ("model.latent_proj.", "model.encoder_latent_input_proj."),
    ("model.token_pos.", "model.encoder_1d_feature_pos_embed."),
    ("model.query_pos.", "model.decoder_pos_embed."),
]
LEROBOT_ACT = {
    "type": "act",
    "chunk_size": 4,
    "n_action_steps": 4,
    "dim_model": 16,
    "n_heads": 2,
    "dim_feedforward": 32,
    "n_encoder_layers": 1,
    "n_decoder_layers": 1,
    "n_vae_encoder_layers": 1,
    "latent_dim": 4,
    "use_vae": True,
    "dropout": 0.0,
    "pre_norm": False,
    "kl_weight": 10.0,
    "input_features": {
        "observation.state": {"type": "STATE", "shape": [4]},
        "observation.environment_state": {"type": "ENV", "shape": [3]},
    },
    "output_features": {"action": {"type": "ACTION", "shape": [4]}},
}


@pytest.fixture(scope="module")
def lerobot_act(tmp_path_factory) -> Path:
    """A state-only LeRobot ACT directory as LeRobot 0.4 saves one (config.json, model.safetensors,
    the normaliser's processor files), written without lerobot: our network's weights under
    LeRobot's names."""
    from imitation.config import from_dict
    from imitation.import_checkpoint import _act_config
    from imitation.policies import policy_classes
    from imitation.policies.common import IOSpec

    src = tmp_path_factory.mktemp("lerobot") / "pretrained_model"
    src.mkdir()
    cfg_cls, policy_cls = policy_classes("act")
    pcfg = from_dict(cfg_cls, _act_config(LEROBOT_ACT, ("state", "env_state")))
    policy = policy_cls(pcfg, IOSpec({"state": 4, "env_state": 3}, {}, 4))
    weights = {}
    for name, tensor in policy.state_dict().items():
        if name.startswith("normalizer."):
            continue
        name = name.replace(".cross_attn.", ".multihead_attn.")
        for ours, theirs in TO_LEROBOT:
            if name.startswith(ours):
                name = theirs + name.removeprefix(ours)
                break
        weights[name] = tensor.contiguous()
    save_file(weights, str(src / "model.safetensors"))
    (src / "config.json").write_text(json.dumps(LEROBOT_ACT))
    stats = {}
    for feature, n in (("observation.state", 4), ("observation.environment_state", 3), ("action", 4)):
        stats[f"{feature}.mean"], stats[f"{feature}.std"] = torch.zeros(n), torch.ones(n)
    save_file(stats, str(src / "normalizer.safetensors"))
    step = {
        "registry_name": "normalizer_processor",
        "config": {"norm_map": {"STATE": "MEAN_STD", "ENV": "MEAN_STD", "ACTION": "MEAN_STD"}, "eps": 1e-8},
        "state_file": "normalizer.safetensors",
    }
    (src / "policy_preprocessor.json").write_text(json.dumps({"steps": [step]}))
    return src


# ------------------------------------------------------------------ checkpoints
def test_save_checkpoint_replaces_only_a_checkpoint(tmp_path):
    weights, meta = {"w": torch.ones(2)}, {"policy": "act", "step": 1}
    # A directory holding anything else is refused, and left as it was.
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="not a checkpoint"):
            checkpoint.save_checkpoint(folder, weights, meta, mark_last=False, overwrite=overwrite)
    assert tree(folder) == {"notes.txt": b"keep me"} and not list(tmp_path.glob(".tmp-*"))
    # An empty directory is filled; an existing checkpoint is replaced only when asked.
    empty = tmp_path / "empty"
    empty.mkdir()
    checkpoint.save_checkpoint(empty, weights, meta, mark_last=False)
    assert checkpoint.read_meta(empty)["step"] == 1
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        checkpoint.save_checkpoint(empty, weights, {**meta, "step": 2}, mark_last=False)
    checkpoint.save_checkpoint(empty, weights, {**meta, "step": 2}, mark_last=False, overwrite=True)
    assert checkpoint.read_meta(empty)["step"] == 2
    # A checkpoint with someone's file added to it is no longer only ours to replace.
    (empty / "notes.txt").write_text("keep me too")
    with pytest.raises(ConfigError, match="notes.txt"):
        checkpoint.save_checkpoint(empty, weights, meta, mark_last=False, overwrite=True)
    assert (empty / "notes.txt").read_text() == "keep me too"


def test_import_checkpoint_never_replaces_what_is_not_a_checkpoint(lerobot_act, synthetic_store, tmp_path):
    out = tmp_path / "demos.zarr"  # the trial: --out named an existing demo store
    shutil.copytree(synthetic_store, out)
    before = tree(out)
    line = one_line_error(cli("import-checkpoint", "--from", "lerobot", str(lerobot_act), "--out", str(out)))
    assert str(out) in line and "not a checkpoint" in line
    line = one_line_error(
        cli("import-checkpoint", "--from", "lerobot", str(lerobot_act), "--out", str(out), "--overwrite")
    )
    assert "not a checkpoint" in line
    assert tree(out) == before and DemoStore.open(out).n_episodes == 6

    # A new directory is written; importing again needs --overwrite, which replaces it.
    out = tmp_path / "imported"
    proc = cli("import-checkpoint", "--from", "lerobot", str(lerobot_act), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert checkpoint.load_policy(out).meta["imported_from"]["type"] == "act"
    line = one_line_error(cli("import-checkpoint", "--from", "lerobot", str(lerobot_act), "--out", str(out)))
    assert "--overwrite" in line
    proc = cli("import-checkpoint", "--from", "lerobot", str(lerobot_act), "--out", str(out), "--overwrite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert checkpoint.load_policy(out) is not None and not list(tmp_path.glob(".*"))


# ------------------------------------------------------------------ configuration sidecars
MAPPING = "env_id: Pusher-v5\nstate: '[0:14]'\n# the user's own file, with its comments\n"


def test_config_save_replaces_only_a_configuration_it_saved(tmp_path):
    from imitation import config
    from imitation.record import RecordConfig

    cfg = RecordConfig(out=tmp_path / "demo.zarr", episodes=3)
    side = tmp_path / "demo.yaml"
    side.write_text(MAPPING)
    with pytest.raises(ConfigError, match=str(side)):
        config.save(cfg, side)
    assert side.read_text() == MAPPING
    side.unlink()
    config.save(cfg, side)  # new: written, and recognisable as ours
    config.save(RecordConfig(out=cfg.out, episodes=4), side)  # ours: replaced
    assert config.load_yaml(RecordConfig, side).episodes == 4
    # Saved before the mark existed: the same kind of configuration for the same output is ours...
    side.write_text(yaml.safe_dump(config.to_dict(cfg)))
    config.save(RecordConfig(out=cfg.out, episodes=5), side)
    assert config.load_yaml(RecordConfig, side).episodes == 5
    # ... one that names another output (or none: someone's own settings) is not.
    for data in ({**config.to_dict(cfg), "out": "elsewhere.zarr"}, {"episodes": 7}):
        side.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError, match="not written by imitation"):
            config.save(cfg, side)
        assert yaml.safe_load(side.read_text()) == data


def test_record_refuses_before_recording_to_replace_a_file_it_did_not_write(tmp_path):
    out = tmp_path / "pusher.zarr"
    side = tmp_path / "pusher.yaml"  # the trial: the user's mapping file, named like the store
    side.write_text(MAPPING)
    line = one_line_error(cli("record", "--episodes", "1", "--obs-mode", "state", "--out", str(out)))
    assert str(side) in line and "--out" in line
    assert side.read_text() == MAPPING and not out.exists()  # refused before anything was recorded
    # Its own sidecar is replaced by the next run (here one that appends to the store).
    side.unlink()
    for episodes in ("1", "2"):
        proc = cli("record", "--episodes", episodes, "--obs-mode", "state", "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert yaml.safe_load(side.read_text())["episodes"] == 2 and DemoStore.open(out).n_episodes == 3


def test_train_writes_only_into_a_new_empty_or_run_directory(synthetic_store, tmp_path):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "config.yaml").write_text("my: notes\n")
    (run / "metrics.jsonl").write_text('{"mine": 1}\n')
    before = tree(run)
    args = ("train", "--store", str(synthetic_store), "--steps", "1", "--wandb", "disabled")
    line = one_line_error(cli(*args, "--out", str(run)))
    assert str(run) in line and "--out" in line
    line = one_line_error(cli(*args, "--out", str(run), "--overwrite"))
    assert tree(run) == before


def test_quickstart_replaces_only_what_it_wrote(tmp_path):
    out = tmp_path / "q.zarr"
    (tmp_path / "q.yaml").write_text(MAPPING)
    line = one_line_error(cli("quickstart", "--fast", "--out", str(out), "--run", str(tmp_path / "run")))
    assert str(tmp_path / "q.yaml") in line and not out.exists()
    # --overwrite replaces a demo store, not a directory of something else...
    (tmp_path / "q.yaml").unlink()
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    line = one_line_error(
        cli("quickstart", "--fast", "--overwrite", "--out", str(out), "--run", str(tmp_path / "run"))
    )
    assert "not a demo store" in line and tree(out) == {"notes.txt": b"keep me"}
    # ... and a run directory of another training is kept unless --overwrite says to replace it.
    shutil.rmtree(out)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("my: notes\n")
    line = one_line_error(cli("quickstart", "--fast", "--out", str(out), "--run", str(tmp_path / "run")))
    assert str(tmp_path / "run") in line and not out.exists()
    assert (tmp_path / "run" / "config.yaml").read_text() == "my: notes\n"


# ------------------------------------------------------------------ failed training
TINY_TRAIN = {
    "policy": "act",
    "act": {
        "obs_keys": ["state", "env_state"],
        "chunk_size": 8,
        "n_action_steps": 4,
        "dim_model": 32,
        "n_heads": 2,
        "dim_feedforward": 64,
        "n_encoder_layers": 1,
        "n_vae_encoder_layers": 1,
    },
    "steps": 12,
    "batch_size": 16,
    "val_fraction": 0.0,
    "log_every": 6,
    "save_every": 6,
    "wandb": "disabled",
}
# The disk fills at the n-th weights file written (the first checkpoint is n = 1).
FULL_DISK = """
import errno, safetensors.torch as st
real, calls = st.save_file, []
def save_file(*a, **k):
    calls.append(1)
    if len(calls) >= {n}:
        raise OSError(errno.ENOSPC, "No space left on device", a[1])
    return real(*a, **k)
st.save_file = save_file
"""


def test_a_failed_train_removes_the_run_directory_it_created(synthetic_store, tmp_path):
    run = tmp_path / "run"
    # Without --config the default recipe reads the store first: nothing is created.
    line = one_line_error(
        cli("train", "--store", str(tmp_path / "nope.zarr"), "--wandb", "disabled", "--out", str(run))
    )
    assert "nope.zarr" in line and not run.exists()
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_TRAIN))
    args = ("train", "--config", str(config), "--store", str(tmp_path / "nope.zarr"), "--wandb", "disabled")
    line = one_line_error(cli(*args, "--out", str(run)))  # a missing store: refused while parsing
    assert "--store" in line and "nope.zarr" in line and not run.exists()
    # A store that exists but cannot be read fails once the run directory is made: it goes again.
    (tmp_path / "nope.zarr").mkdir()
    (tmp_path / "nope.zarr" / "zarr.json").write_text("{not json")
    line = one_line_error(cli(*args, "--out", str(run)))
    assert "nope.zarr" in line and f"removed {run}" in line and not run.exists()
    # A directory that was there before is not removed (an empty one is a valid --out).
    run.mkdir()
    line = one_line_error(cli(*args, "--out", str(run)))
    assert "removed" not in line and run.is_dir()
    # Ctrl-C before the first checkpoint: nothing worth keeping, nothing kept.
    from imitation.config import from_dict
    from imitation.train import TrainConfig, train

    def interrupt(policy, step):
        raise KeyboardInterrupt

    cfg = from_dict(
        TrainConfig, {**TINY_TRAIN, "store": str(synthetic_store), "out": str(tmp_path / "ctrl-c")}
    )
    cfg.eval_every = 3
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_eval=interrupt)
    assert not (tmp_path / "ctrl-c").exists()


def test_a_full_disk_mid_checkpoint_keeps_the_last_good_one(synthetic_store, tmp_path):
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump({**TINY_TRAIN, "store": str(synthetic_store)}))
    run = tmp_path / "run"
    line = one_line_error(
        cli("train", "--config", str(cfg_file), "--out", str(run), code=FULL_DISK.format(n=2))
    )
    assert "step 12" in line and "No space left on device" in line
    assert "the last good checkpoint is step 6" in line and f"--resume {run}" in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["0000006", "last"]
    assert (run / "checkpoints" / "last").read_text().strip() == "0000006"
    assert checkpoint.load_policy(run).meta["step"] == 6
    # The run goes on from there once there is space again.
    proc = cli("train", "--resume", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert checkpoint.read_meta(run)["step"] == 12
    # The disk full at the first checkpoint: no checkpoint, so the run this command made is removed.
    run = tmp_path / "run2"
    line = one_line_error(
        cli("train", "--config", str(cfg_file), "--out", str(run), code=FULL_DISK.format(n=1))
    )
    assert "No space left on device" in line and "no checkpoint had been saved" in line
    assert f"removed {run}" in line and not run.exists() and not list(tmp_path.glob(".tmp-*"))


# ------------------------------------------------------------------ failed recording
# An expert that holds the arm where it is: every attempt fails.
IDLE_EXPERT = """
import imitation.robots.sim as sim
sim.SimRobot.expert = lambda self: (lambda obs: obs["state"].copy())
"""


def test_a_failed_record_removes_only_a_store_it_created_and_left_empty(tmp_path):
    from imitation.data.store import EpisodeWriter
    from imitation.record import RecordConfig
    from imitation.robots.sim import SimRobot
    from imitation.robots.stack import store_features

    out = tmp_path / "new.zarr"
    args = ("record", "--episodes", "1", "--max-attempts", "1", "--obs-mode", "state")
    line = one_line_error(cli(*args, "--out", str(out), code=IDLE_EXPERT))
    assert "0 of 1 attempts" in line and f"removed {out}" in line
    assert not out.exists() and not out.with_suffix(".yaml").exists()
    # A store that was there before stays, with its episodes or without any.
    proc = cli("record", "--episodes", "2", "--obs-mode", "state", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = one_line_error(cli(*args, "--out", str(out), code=IDLE_EXPERT))
    assert "removed" not in line and DemoStore.open(out).n_episodes == 2
    empty = tmp_path / "empty.zarr"
    robot = SimRobot(RecordConfig().env, obs_mode="state")
    EpisodeWriter(empty, features=store_features(robot.spec), fps=robot.spec.control_hz).close()
    line = one_line_error(cli(*args, "--out", str(empty), code=IDLE_EXPERT))
    assert "removed" not in line and DemoStore.open(empty).n_episodes == 0


def test_ctrl_c_during_a_recording_removes_the_new_store_only_while_it_is_empty(tmp_path, monkeypatch):
    from imitation.data.store import EpisodeWriter
    from imitation.record import RecordConfig, record_scripted

    start = EpisodeWriter.start_episode
    ctrl_c = {"after": 0}  # Ctrl-C when this many episodes are saved

    def start_episode(self, *a, **k):
        if self.n_episodes == ctrl_c["after"]:
            raise KeyboardInterrupt
        return start(self, *a, **k)

    monkeypatch.setattr(EpisodeWriter, "start_episode", start_episode)
    cfg = RecordConfig(episodes=2, out=tmp_path / "a.zarr", obs_mode="state")
    with pytest.raises(KeyboardInterrupt):
        record_scripted(cfg, progress=False)
    assert not cfg.out.exists()
    ctrl_c["after"] = 1  # Ctrl-C once the first episode is saved: the store keeps it
    with pytest.raises(KeyboardInterrupt):
        record_scripted(cfg, progress=False)
    assert DemoStore.open(cfg.out).n_episodes == 1


class FailingKeys:
    """A teleop device that starts an episode at tick 2, saves it at tick ``save`` (if given), and
    fails at tick ``fail``: a device unplugged mid-session."""

    def __init__(self, fail: int, save: int | None = None) -> None:
        self.fail, self.save, self.tick = fail, save, 0

    def connect(self): ...
    def close(self): ...
    def reset(self, obs): ...

    def read(self, obs):
        self.tick += 1
        if self.tick == self.fail:
            raise OSError(5, "Input/output error", "/dev/input/js0")
        return np.asarray(obs["state"], dtype=np.float64)

    def events(self):
        from types import SimpleNamespace

        keys = {2: "TOGGLE", **({self.save: "TOGGLE"} if self.save else {})}
        return [SimpleNamespace(name=keys[self.tick])] if self.tick in keys else []


def test_a_failed_operator_session_removes_the_new_store_only_while_it_is_empty(tmp_path):
    from imitation.record import RecordConfig
    from imitation.session import record_session

    def session(name: str, teleop: FailingKeys) -> None:
        cfg = RecordConfig(
            robot="sim", teleop="keyboard", obs_mode="state", out=tmp_path / name, warmup_s=0.0, ui="none"
        )
        with pytest.raises(OSError, match="Input/output error"):
            record_session(cfg, teleop=teleop)

    session("a.zarr", FailingKeys(fail=8))  # failed mid-episode, nothing saved: no store
    assert not (tmp_path / "a.zarr").exists()
    session("b.zarr", FailingKeys(fail=12, save=6))  # one episode saved before: kept
    assert DemoStore.open(tmp_path / "b.zarr").n_episodes == 1
    session("b.zarr", FailingKeys(fail=4))  # a resumed store that gets nothing new: kept as it was
    assert DemoStore.open(tmp_path / "b.zarr").n_episodes == 1


def test_quickstart_refuses_a_foreign_evaluation_folder_before_recording(tmp_path):
    evals = tmp_path / "eval"
    evals.mkdir()
    (evals / "results.json").write_text('{"my": "results"}')
    out = tmp_path / "q.zarr"
    line = one_line_error(
        cli(
            "quickstart",
            "--fast",
            "--out",
            str(out),
            "--run",
            str(tmp_path / "run"),
            "--eval-out",
            str(evals),
        )
    )
    assert str(evals) in line and not out.exists()  # refused before anything was recorded
    assert (evals / "results.json").read_text() == '{"my": "results"}'
