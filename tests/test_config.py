"""Configs: YAML + command-line overrides into dataclasses, with clear errors; every shipped file loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from imitation import config
from imitation.errors import ConfigError
from imitation.quickstart import QuickstartConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Which dataclass each configs/ folder holds.
SCHEMAS = {"record/quickstart.yaml": QuickstartConfig}


@dataclass
class Inner:
    lr: float = 1e-4
    """learning rate"""


@dataclass
class Outer:
    name: str = "run"
    """the run's name"""
    steps: int = 10
    """training steps"""
    out: Path = Path("runs")
    """where to write"""
    inner: Inner = field(default_factory=Inner)
    tags: tuple[str, ...] = ()


def test_defaults_yaml_and_flags_in_order_of_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: from-yaml\nsteps: 5\ninner: {lr: 0.5}\ntags: [a, b]\n")
    assert config.parse(Outer, []) == Outer()
    cfg = config.parse(Outer, ["--config", str(f), "--steps", "7"])
    assert cfg == Outer(name="from-yaml", steps=7, inner=Inner(lr=0.5), tags=("a", "b"))


def test_save_then_load_gives_the_same_config(tmp_path):
    cfg = Outer(name="x", steps=3, out=Path("somewhere"), inner=Inner(lr=2), tags=("t",))
    config.save(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["out"] == "somewhere"
    assert config.load_yaml(Outer, tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize(
    "text, match",
    [
        ("stepz: 3\n", r"unknown field\(s\) \['stepz'\]; valid fields: name, steps"),
        ("inner: {lrr: 1}\n", r"inner: unknown field\(s\) \['lrr'\]"),
        ("- a\n- b\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_yaml_is_one_clear_error(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        config.load_yaml(Outer, f)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.parse(Outer, ["--config", str(tmp_path / "nope.yaml")])


def test_every_shipped_config_loads():
    files = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
    assert files, "configs/ should ship example files"
    for name in files:
        if name.startswith("robots/"):
            from envs.so100 import load_arm_spec
            from imitation.robots.buses import MODELS
            from imitation.robots.config import load_robot_config

            rc = load_robot_config(CONFIGS / name)  # keys, bus, motor order
            if rc.arms:  # several arms: each arm's config is one of these files
                assert all(n.split("/")[0] in rc.arms for n in rc.joint_names)
                assert [n.split("/")[-1] for n in rc.joint_names if n.endswith("gripper")] == [
                    "gripper"
                ] * len(rc.arms)
                continue
            spec = load_arm_spec(CONFIGS / name)  # joint names, limits, rate
            assert spec.joint_names[-1] == "gripper" and (spec.lower < spec.upper).all()
            assert all(m["model"] in MODELS for m in rc.motors.values())
            continue
        if name.startswith("train/"):
            from imitation.train import TrainConfig

            cfg = config.load_yaml(TrainConfig, CONFIGS / name)
            assert name == f"train/{Path(cfg.out).name}.yaml"  # each run lands in its own directory
            continue
        if name.startswith("units/"):
            from imitation.data.units import load_unit_map

            assert load_unit_map(CONFIGS / name)["from"] == "lerobot"  # scales and offsets checked
            continue
        if name.startswith("envs/"):
            from envs.mapping import EnvMapping

            EnvMapping.load(CONFIGS / name)  # keys and selectors checked
            continue
        assert name in SCHEMAS, f"configs/{name} has no schema in tests/test_config.py"
        config.load_yaml(SCHEMAS[name], CONFIGS / name)
