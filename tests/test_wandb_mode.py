"""``imitation train``'s wandb mode: --wandb or a config file's ``wandb:`` when given, else
$WANDB_MODE (when valid), else offline."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from imitation.config import load_yaml, parse, save
from imitation.errors import ConfigError
from imitation.train import Dist, Logger, TrainConfig


@pytest.fixture
def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A stand-in ``wandb`` module; the list holds the mode of every ``wandb.init``."""
    modes: list[str] = []

    def init(**kwargs):  # noqa: ANN003, ANN202
        modes.append(kwargs["mode"])
        return SimpleNamespace(log=lambda *a, **k: None, finish=lambda: None)

    monkeypatch.setitem(sys.modules, "wandb", SimpleNamespace(init=init))
    return modes


def _logged_mode(cfg: TrainConfig, run_dir: Path, modes: list[str]) -> str:
    run_dir.mkdir(exist_ok=True)
    before = len(modes)
    Logger(cfg, run_dir, Dist()).close()
    return modes[-1] if len(modes) > before else "disabled"


def _default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command line is parsed only with its input there: the default --store."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demos" / "quickstart.zarr").mkdir(parents=True)


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ("disabled", [], "disabled"),  # the environment wins over the default
        ("online", [], "online"),
        (None, [], "offline"),
        ("nonsense", [], "offline"),
        ("disabled", ["--wandb", "offline"], "offline"),  # the flag wins over the environment
    ],
)
def test_the_environments_wandb_mode_applies_unless_the_flag_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_wandb: list[str], env, flags, expected
) -> None:
    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    _default_store(tmp_path, monkeypatch)
    cfg = parse(TrainConfig, flags)
    assert _logged_mode(cfg, tmp_path / "run", fake_wandb) == expected


def test_a_config_files_wandb_wins_and_the_saved_config_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_wandb: list[str]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    _default_store(tmp_path, monkeypatch)
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(yaml.safe_dump({"wandb": "offline"}))
    assert (
        _logged_mode(parse(TrainConfig, ["--config", str(explicit)]), tmp_path / "a", fake_wandb) == "offline"
    )
    # Saved without a mode, a run's config keeps following the environment when it resumes.
    save(parse(TrainConfig, []), tmp_path / "saved.yaml")
    again = load_yaml(TrainConfig, tmp_path / "saved.yaml")
    assert again.wandb is None and _logged_mode(again, tmp_path / "b", fake_wandb) == "disabled"
    with pytest.raises(ConfigError, match="wandb 'dryrun': not one of offline, online, disabled"):
        TrainConfig(wandb="dryrun")
