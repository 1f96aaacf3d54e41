"""``imitation data ...`` (``data/commands.py``) in process: every command in its table runs, and
split, filter, merge and info agree with each other on a real store."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from conftest import write_store

from imitation.data import commands
from imitation.data.store import DemoStore


@pytest.mark.parametrize("name", sorted(commands.COMMANDS))
def test_every_command_in_the_table_exists_and_explains_itself(name, capsys):
    module, func = commands.COMMANDS[name][0].split(":")
    assert callable(getattr(importlib.import_module(module), func))
    with pytest.raises(SystemExit) as e:
        commands.main([name, "--help"], prog="imitation data")
    assert e.value.code == 0 and "usage" in capsys.readouterr().out.lower()


def test_split_filter_merge_and_info_agree(tmp_path, capsys):
    src = tmp_path / "src.zarr"
    write_store(src, episodes=6, length=20)
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    assert commands.main(["split", str(src), str(a), str(b), "--ids", "0", "2"], prog="p") == 0
    assert DemoStore.open(a).n_episodes == 2 and DemoStore.open(b).n_episodes == 4
    kept = tmp_path / "kept.zarr"
    assert commands.main(["filter", str(b), str(kept), "--ids", "3", "1"], prog="p") == 0
    merged = tmp_path / "merged.zarr"
    assert commands.main(["merge", str(a), str(kept), "--out", str(merged)], prog="p") == 0
    m, s = DemoStore.open(merged), DemoStore.open(src)
    assert m.n_episodes == 4 and m.n_frames == 80
    # a's episodes are the source's 0 and 2; then b's 3 and 1, which are the source's 5 and 3.
    for i, j in enumerate((0, 2, 5, 3)):
        np.testing.assert_array_equal(
            m.read_episode(i, ["state"])["state"], s.read_episode(j, ["state"])["state"]
        )
    capsys.readouterr()
    assert commands.main(["info", str(merged), "--json"], prog="p") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 4 and info["frames"] == 80
