"""Paths named by foreign files stay inside their directory (imitation.paths.inside), and the
LeRobot import reads only files inside the directory it imports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from imitation.errors import ConfigError
from imitation.import_checkpoint import _read_stats
from imitation.paths import inside


def test_inside_accepts_names_below_the_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert (
        inside(tmp_path, "sub/stats.safetensors", source="x.json")
        == tmp_path.resolve() / "sub/stats.safetensors"
    )
    assert inside(tmp_path, "sub/../a.bin", source="x.json") == tmp_path.resolve() / "a.bin"


@pytest.mark.parametrize(
    "named, message",
    [
        ("../outside.safetensors", "outside"),
        ("sub/../../outside.safetensors", "outside"),
        ("/etc/passwd", "absolute path"),
        ("", "not a file name"),
        (5, "not a file name"),
        (None, "not a file name"),
    ],
)
def test_inside_refuses_names_that_leave_the_directory(tmp_path: Path, named: object, message: str) -> None:
    root = tmp_path / "foreign"
    root.mkdir()
    with pytest.raises(ConfigError, match=message) as e:
        inside(root, named, source=root / "policy_preprocessor.json")
    assert "policy_preprocessor.json" in str(e.value) and "\n" not in str(e.value)


def test_inside_follows_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "foreign"
    root.mkdir()
    (tmp_path / "secret").write_text("x")
    (root / "link").symlink_to(tmp_path / "secret")
    (root / "dir").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="outside"):
        inside(root, "link", source="p.json")
    with pytest.raises(ConfigError, match="outside"):
        inside(root, "dir/secret", source="p.json")


def _lerobot_dir(root: Path, state_file: str) -> Path:
    """A LeRobot policy directory's processor file naming ``state_file`` for its statistics."""
    root.mkdir(parents=True, exist_ok=True)
    step = {
        "registry_name": "normalizer_processor",
        "config": {"norm_map": {"STATE": "MEAN_STD"}, "eps": 1e-8},
        "state_file": state_file,
    }
    (root / "policy_preprocessor.json").write_text(json.dumps({"steps": [step]}))
    return root


def _stats_file(path: Path) -> None:
    save_file({"observation.state.mean": torch.zeros(2), "observation.state.std": torch.ones(2)}, str(path))


def test_import_reads_statistics_inside_the_directory(tmp_path: Path) -> None:
    src = _lerobot_dir(tmp_path / "model", "stats.safetensors")
    _stats_file(src / "stats.safetensors")
    stats, norm_map, _ = _read_stats(src)
    assert set(stats["observation.state"]) == {"mean", "std"} and norm_map == {"STATE": "MEAN_STD"}


@pytest.mark.parametrize("named", ["../outside.safetensors", "ABSOLUTE", "link.safetensors"])
def test_import_refuses_statistics_outside_the_directory(tmp_path: Path, named: str) -> None:
    outside = tmp_path / "outside.safetensors"
    _stats_file(outside)  # a readable file: without the rule it would be loaded
    src = tmp_path / "model"
    src.mkdir()
    (src / "link.safetensors").symlink_to(outside)
    named = str(outside) if named == "ABSOLUTE" else named
    _lerobot_dir(src, named)
    with pytest.raises(ConfigError, match="policy_preprocessor.json") as e:
        _read_stats(src)
    assert repr(named) in str(e.value) and "\n" not in str(e.value)


def test_import_refuses_etc_passwd(tmp_path: Path) -> None:
    src = _lerobot_dir(tmp_path / "model", "/etc/passwd")
    with pytest.raises(ConfigError, match="absolute path '/etc/passwd'"):
        _read_stats(src)


def test_import_refuses_a_processor_file_linked_from_outside(tmp_path: Path) -> None:
    elsewhere = _lerobot_dir(tmp_path / "elsewhere", "stats.safetensors")
    _stats_file(elsewhere / "stats.safetensors")
    src = tmp_path / "model"
    src.mkdir()
    (src / "policy_preprocessor.json").symlink_to(elsewhere / "policy_preprocessor.json")
    with pytest.raises(ConfigError, match="outside"):
        _read_stats(src)


def test_import_cli_refuses_a_config_linked_from_outside(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "config.json").write_text("{}")
    src = tmp_path / "model"
    src.mkdir()
    (src / "config.json").symlink_to(tmp_path / "config.json")
    (src / "model.safetensors").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "imitation.cli", "import-checkpoint", "--from", "lerobot", str(src),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0 and "outside" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
