"""One clear line for every bad input.

- The sweep (``tests/hostile.py``): every option of every command, read from the parsers, with
  hostile values; no traceback, no hang, nothing written, and a refusal names its option.
- Every field of every config class declares its limits, so a field added later is checked too.
- Config files: every field of the training config with hostile values (hypothesis).
- The cases found by hand, each run as a user runs it, to the end: one ``error:`` line, a
  non-zero exit, and nothing created or changed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import typing
import zlib
from pathlib import Path

import hostile
import numpy as np
import pytest
import yaml
from conftest import write_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imitation import cli
from imitation.checks import Range, split
from imitation.config import ConfigError, load_yaml

NUMERIC = ("INT", "FLOAT")


# ------------------------------------------------------------------------------ the sweep
@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    hostile.fixture(root)
    return root


def test_every_command_is_in_the_sweep():
    from imitation.data import commands as data

    swept = set(hostile.commands())
    listed = {n for n in cli.COMMANDS if n != "data"} | {f"data {n}" for n in data.COMMANDS}
    assert listed == swept, "add the command's parser and a valid base command line to tests/hostile.py"


def _sample(case: hostile.Case, index: int) -> bool:
    """The fast suite: each option with a third of the values, rotating, so that every value meets
    options of every command (the slow test takes them all)."""
    return index % 3 == zlib.crc32(case.option.encode()) % 3 or case.value in ("nan", "abc")


def _check(result: hostile.Sweep) -> None:
    bad = [c for c in result.cases if c.outcome in ("traceback", "hang", "changed", "unclear")]
    report = "\n".join(
        f"{c.outcome}: imitation {' '.join(c.argv)}\n  {c.stderr.strip()[-300:]}\n  {c.detail[-600:]}"
        for c in bad[:20]
    )
    assert not bad, f"{len(bad)} case(s) not refused cleanly:\n{report}"
    # Not a number is never a number: no numeric option may take nan, inf or a word.
    numeric = _numeric_options()
    taken = [
        c
        for c in result.by("accepted")
        if (c.command, c.option) in numeric and c.value in ("nan", "inf", "-inf", "abc", "")
    ]
    assert not taken, [f"{c.command} {c.option} {c.value!r}" for c in taken]


def _numeric_options() -> set[tuple[str, str]]:
    out = set()
    for command, (parser, _) in hostile.commands().items():
        for action in parser()._actions:
            metavar = str(action.metavar or "")
            if (
                action.option_strings
                and any(m in metavar for m in NUMERIC)
                or action.option_strings
                and action.type in (int, float)
            ):
                out.add((command, max(action.option_strings, key=len)))
    return out


def test_hostile_values_for_every_option_get_one_clear_line(root):
    counter = iter(range(10**9))
    result = hostile.sweep(root, only=lambda c: _sample(c, next(counter)))
    assert len(result.cases) > 500
    _check(result)


@pytest.mark.slow
def test_the_whole_sweep(root):
    _check(hostile.sweep(root))


def test_a_sample_through_real_processes(root, tmp_path):
    """The same refusals from a real ``imitation`` process: exit code 2, one line, no traceback."""
    for argv in (
        ["train", "--store", "store.zarr", "--act.lr", "inf"],
        ["view", "--store", "store.zarr", "--out", "v.txt"],
        ["eval", "--device", "tpu"],
        ["data", "split", "store.zarr", "a.zarr", "b.zarr", "--fraction", "nan"],
    ):
        before = hostile.snapshot(root)
        p = subprocess.run(
            [sys.executable, "-m", "imitation.cli", *argv], cwd=root, capture_output=True, text=True
        )
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, p.stderr)
        assert hostile.snapshot(root) == before


# ------------------------------------------------------------------------------ declared limits
def _config_classes() -> list[type]:
    out: list[type] = []

    def add(cls: type) -> None:
        if cls in out:
            return
        out.append(cls)
        for tp in typing.get_type_hints(cls, include_extras=True).values():
            base, _ = split(tp)
            if dataclasses.is_dataclass(base):
                add(base)

    from imitation.data import commands as data
    from imitation.deploy import DeployConfig
    from imitation.evaluate import EvalConfig
    from imitation.quickstart import QuickstartConfig
    from imitation.record import RecordConfig
    from imitation.replay import ReplayConfig
    from imitation.robots.calibrate_cli import CalibrateConfig
    from imitation.train import TrainConfig
    from imitation.view import ViewConfig

    for cls in (TrainConfig, EvalConfig, DeployConfig, RecordConfig, QuickstartConfig, ViewConfig):
        add(cls)
    for cls in (ReplayConfig, CalibrateConfig):
        add(cls)
    for name in dir(data):
        if name.endswith("Config") and dataclasses.is_dataclass(getattr(data, name)):
            add(getattr(data, name))
    return out


def _numbers_in(tp: typing.Any) -> bool:
    base, _ = split(tp)
    if base in (int, float):
        return True
    return any(_numbers_in(a) for a in typing.get_args(base) if a is not type(None) and a is not Ellipsis)


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda c: c.__name__)
def test_every_numeric_field_declares_its_range_and_checks_itself(cls):
    hints = typing.get_type_hints(cls, include_extras=True)
    undeclared = [
        f.name
        for f in dataclasses.fields(cls)
        if _numbers_in(hints[f.name]) and not any(isinstance(m, Range) for m in split(hints[f.name])[1])
    ]
    assert not undeclared, f"{cls.__name__}: give these fields an Annotated[..., Range(...)]: {undeclared}"
    # check_fields runs when the config is built, however it is built.
    assert "check_fields" in (cls.__post_init__.__code__.co_names if hasattr(cls, "__post_init__") else ())


# ------------------------------------------------------------------------------ config files
HOSTILE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _fields(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        base, _ = split(hints[f.name])
        if dataclasses.is_dataclass(base):
            out += _fields(base, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


TOP = ("TrainConfig", "EvalConfig", "DeployConfig", "RecordConfig", "QuickstartConfig", "ViewConfig")


def _all_fields() -> list[tuple[type, str]]:
    return [(c, f) for c in _config_classes() if c.__name__ in TOP for f in _fields(c)]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(where=st.sampled_from(_all_fields()), value=HOSTILE)
def test_a_config_file_with_any_value_in_any_field_loads_or_names_it(tmp_path_factory, where, value):
    cls, field = where
    data: dict = {  # required fields (deploy's checkpoint) present: the one under test is the question
        f.name: "x"
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    node = data
    *parents, leaf = field.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    path = tmp_path_factory.getbasetemp() / "c.yaml"  # one file, rewritten: examples are many
    path.write_text(yaml.safe_dump(data))
    try:
        cfg = load_yaml(cls, path)
    except ConfigError as e:
        # Named by its key (a cross-field rule names the fields it relates).
        assert leaf in str(e) or field in str(e) or "dim_model" in str(e) or "horizon" in str(e), str(e)
        assert "\n" not in str(e)
        return
    # Taken: then a value of the field's type within its limits.
    got = cfg
    for p in field.split("."):
        got = getattr(got, p)
    for x in got if isinstance(got, tuple | list) else [got]:
        if isinstance(x, float):
            assert math.isfinite(x)


def test_a_word_where_a_number_goes_in_a_config_file(tmp_path):
    from imitation.train import TrainConfig

    (tmp_path / "c.yaml").write_text("act:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: act\.lr 'fast': not a number"):
        load_yaml(TrainConfig, tmp_path / "c.yaml")


# ------------------------------------------------------------------------------ the cases found
def run(argv: list[str], cwd: Path, capsys) -> tuple[int, str]:
    """``imitation argv`` in process from ``cwd``; returns (exit code, the stderr lines)."""
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        rc = cli.main(argv)
    finally:
        os.chdir(old)
    return rc, capsys.readouterr().err


def refused(argv: list[str], cwd: Path, capsys, *words: str) -> str:
    before = hostile.snapshot(cwd)
    rc, err = run(argv, cwd, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
    assert rc != 0, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert hostile.snapshot(cwd) == before, f"{argv} changed files"
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cases")
    write_store(d / "store.zarr", episodes=3, length=12)
    (d / "a-file.txt").write_text("x")
    return d


@pytest.mark.parametrize(
    "argv, words",
    [
        (["view", "--store", "store.zarr", "--episodes", "100"], ["--episodes 100", "3 episode"]),
        (["view", "--store", "store.zarr", "--camera", "nocam"], ["--camera", "top"]),
        (["view", "--store", "store.zarr", "--size", "0", "0"], ["--size"]),
        (["view", "--store", "store.zarr", "--size", "100000", "100000"], ["--size"]),
        (["view", "--store", "store.zarr", "--fps", "-5"], ["--fps"]),
        (["view", "--store", "store.zarr", "--out", "v.txt"], ["--out", ".mp4"]),
        (["replay", "--store", "store.zarr", "--episode", "100"], ["--episode 100"]),
        (["replay", "--store", "store.zarr", "--episode", "-100"], ["--episode -100"]),
        (["record", "--seed", "-5", "--out", "r.zarr"], ["--seed"]),
        (["record", "--image-size", "0", "-3", "--out", "r.zarr"], ["--image-size"]),
        (["record", "--tail-s", "-1", "--out", "r.zarr"], ["--tail-s"]),
        (["train", "--store", "store.zarr", "--act.lr", "inf"], ["--act.lr"]),
        (["train", "--store", "store.zarr", "--grad-clip-norm", "-1"], ["--grad-clip-norm"]),
        (["train", "--store", "store.zarr", "--eval-every", "-1"], ["--eval-every"]),
        (["train", "--store", "store.zarr", "--save-every", "0"], ["--save-every"]),
        (["train", "--store", "store.zarr", "--log-every", "0"], ["--log-every"]),
        (["train", "--store", "store.zarr", "--num-workers", "-1"], ["--num-workers"]),
        (["train", "--store", "store.zarr", "--out", "a-file.txt"], ["--out"]),
        (["quickstart", "--train-steps", "0"], ["--train-steps"]),
        (["quickstart", "--fast", "--eval-episodes", "-1"], ["--eval-episodes"]),
        (["eval", "--checkpoint", "run", "--device", "tpu"], ["--device"]),
        (["eval", "--checkpoint", "run", "--out", "a-file.txt"], ["--out"]),
        (["deploy", "--checkpoint", "run", "--episode-s", "-5"], ["--episode-s"]),
        (["deploy", "--checkpoint", "run", "--episode-s", "nan"], ["--episode-s"]),
        (["deploy", "--checkpoint", "run", "--threads", "-3"], ["--threads"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0][0] != "-" else None,
)
def test_the_cases_found_by_hand(work, capsys, argv, words):
    refused(argv, work, capsys, *words)


def test_a_malformed_mapping_file(work, capsys, tmp_path):
    (work / "bad.yaml").write_text("env: [unclosed\n")
    try:
        refused(
            ["record", "--env", "bad.yaml", "--out", "m.zarr", "--episodes", "1"], work, capsys, "bad.yaml"
        )
    finally:
        (work / "bad.yaml").unlink()


def test_record_with_a_camera_the_task_does_not_have(work, capsys):
    refused(
        ["record", "--cameras", "nocam", "--obs-mode", "images", "--episodes", "1", "--out", "c.zarr"],
        work,
        capsys,
        "nocam",
    )


def test_view_onto_a_disk_that_takes_nothing(work, capsys, monkeypatch):
    """A writer that cannot write (a full disk) is an error, not "N frame(s)" and no file."""
    import cv2

    class Dead:
        def __init__(self, *a):
            pass

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return False

        def write(self, img):
            pass

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoWriter", Dead)
    refused(["view", "--store", "store.zarr", "--camera", "top", "--out", "v.mp4"], work, capsys, "v.mp4")


# ------------------------------------------------------------------------------ foreign checkpoints
def _lerobot_dirs(root: Path) -> dict[str, Path]:
    """Eight malformed LeRobot policy directories."""
    from safetensors.numpy import save_file

    good_cfg = {
        "type": "act",
        "input_features": {"observation.state": {"type": "STATE", "shape": [4]}},
        "output_features": {"action": {"type": "ACTION", "shape": [4]}},
    }
    out = {}

    def make(name: str, config: object | None, weights: bytes | None | str = b"", extra=None) -> None:
        d = root / name
        d.mkdir()
        if config is not None:
            (d / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
        if weights == "valid":
            save_file({"model.x": np.zeros(3, np.float32)}, str(d / "model.safetensors"))
        elif weights is not None:
            (d / "model.safetensors").write_bytes(weights)
        for k, v in (extra or {}).items():
            (d / k).write_text(v)
        out[name] = d

    make("no_weights", good_cfg, None)
    make("config_not_json", "{not json", "valid")
    make("config_a_list", [1, 2], "valid")
    make("unknown_type", {**good_cfg, "type": "pi0"}, "valid")
    make("no_features", {"type": "act"}, "valid")
    make("garbage_weights", {**good_cfg, "chunk_size": 10}, b"garbage" * 4)
    make("wrong_shapes", {**good_cfg, "chunk_size": "ten"}, "valid")
    make(
        "stats_outside",
        {**good_cfg, "chunk_size": 10},
        "valid",
        {
            "policy_preprocessor.json": json.dumps(
                {
                    "steps": [
                        {
                            "registry_name": "normalizer_processor",
                            "config": {},
                            "state_file": "../../etc/passwd",
                        }
                    ]
                }
            )
        },
    )
    return out


def test_eight_malformed_lerobot_directories(tmp_path, capsys):
    for name, d in _lerobot_dirs(tmp_path).items():
        line = refused(["import-checkpoint", "--from", "lerobot", str(d)], tmp_path, capsys)
        assert str(d) in line or name in line, line


# ------------------------------------------------------------------------------ damaged stores
def _damaged(root: Path) -> dict[str, Path]:
    import shutil

    out = {}

    def copy(name: str) -> Path:
        d = root / f"{name}.zarr"
        write_store(d, episodes=2, length=10)
        out[name] = d
        return d

    shutil.rmtree(copy("missing_meta_array") / "meta" / "episode_ends")
    (copy("garbage_zarr_json") / "zarr.json").write_text("{garbage")
    d = copy("no_features")
    attrs = json.loads((d / "zarr.json").read_text())
    attrs["attributes"].pop("features", None)
    (d / "zarr.json").write_text(json.dumps(attrs))
    d = copy("fps_zero")
    attrs = json.loads((d / "zarr.json").read_text())
    attrs["attributes"]["fps"] = 0
    (d / "zarr.json").write_text(json.dumps(attrs))
    d = copy("truncated_timestamp")
    chunk = next(p for p in (d / "data" / "timestamp").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:3])
    d = copy("one_byte_flip")
    chunk = next(p for p in (d / "data" / "action").rglob("*") if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("command", ["validate", "info", "train"])
def test_damaged_stores(tmp_path, capsys, command):
    for name, d in _damaged(tmp_path).items():
        argv = {
            "validate": ["data", "validate", str(d)],
            "info": ["data", "info", str(d)],
            "train": ["train", "--store", str(d), "--steps", "2", "--out", str(tmp_path / f"run-{name}")],
        }[command]
        before = hostile.snapshot(d)
        rc, err = run(argv, tmp_path, capsys)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
        assert "Traceback" not in err, (name, err)
        if command == "validate":
            # It reports every finding on stdout, and its exit says the store failed.
            assert rc != 0, (name, err)
        elif command == "info" and rc == 0:
            continue  # info describes what it can read; validate is the check
        else:
            assert rc != 0 and len(lines) == 1 and lines[0].startswith("error: "), (name, err)
            assert hostile.snapshot(d) == before, f"{command} changed the damaged store {name}"


# ------------------------------------------------------------------------------ a loss that explodes
def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """From step 4 on the gradient is NaN (as a learning rate of inf makes it): training stops at
    the next check with one line, and the run's last checkpoint is the good one of step 2."""
    import torch

    from imitation import checkpoint
    from imitation.config import from_dict
    from imitation.errors import ImitationError
    from imitation.train import TrainConfig, train

    write_store(tmp_path / "s.zarr", episodes=3, length=20)
    real = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def exploding(params, max_norm, *a, **k):
        calls["n"] += 1
        norm = real(params, max_norm, *a, **k)
        return norm * float("nan") if calls["n"] >= 4 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", exploding)
    act = {"obs_keys": ["state"], "chunk_size": 4, "n_action_steps": 4, "dim_model": 16, "n_heads": 2}
    act |= {"dim_feedforward": 16, "n_encoder_layers": 1, "n_vae_encoder_layers": 1, "latent_dim": 4}
    cfg = from_dict(
        TrainConfig,
        {"store": str(tmp_path / "s.zarr"), "out": str(tmp_path / "run"), "act": act, "steps": 8}
        | {"batch_size": 4, "val_fraction": 0.0, "log_every": 2, "save_every": 2, "wandb": "disabled"},
    )
    with pytest.raises(
        ImitationError, match=r"NaN or infinite between steps 2 and 4.*last good checkpoint is step 2"
    ):
        train(cfg)
    assert checkpoint.read_meta(tmp_path / "run" / "checkpoints")["step"] == 2
    for p in (tmp_path / "run" / "checkpoints").iterdir():
        assert p.name in ("0000002", "last") or not p.name.startswith("0"), p


def test_deploy_refuses_a_checkpoint_of_another_task_shape(pick_place_checkpoint, tmp_path, capsys):
    """PickPlace and PushT share the arm (same joints and rate); PickPlace's policy reads a 17-long
    env_state, PushT gives 27. eval refused this; deploy crashed on a tensor size."""
    line = refused(
        [
            "deploy",
            "--checkpoint",
            str(pick_place_checkpoint),
            "--robot",
            "sim",
            "--env",
            "imitation/PushT-v0",
        ],
        tmp_path,
        capsys,
    )
    assert "17-long env_state" in line and "27" in line, line


def test_an_inference_process_that_fails_says_why_at_once(tmp_path):
    """It used to crash in silence and leave deploy waiting 120 s for a first chunk."""
    from imitation.deploy import InferenceProcess
    from imitation.errors import ImitationError

    with pytest.raises(ImitationError, match="could not load"):
        InferenceProcess(tmp_path / "no-checkpoint", start_timeout_s=600)
