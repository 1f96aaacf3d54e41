"""``imitation data ...``: inspect, check, repair, edit and import demo stores."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from imitation import config
from imitation.cli import run_table

COMMANDS: dict[str, tuple[str, str]] = {
    "info": (
        "imitation.data.commands:info_main",
        "episodes, frames, features, sizes, compression, statistics",
    ),
    "validate": ("imitation.data.commands:validate_main", "full integrity check; exits 1 on problems"),
    "repair": (
        "imitation.data.commands:repair_main",
        "drop an uncommitted tail, rebuild the statistics cache",
    ),
}

Store = Annotated[Path, tyro.conf.Positional]


def main(argv: Sequence[str], prog: str = "imitation data") -> int:
    return run_table(COMMANDS, argv, prog)


@dataclass
class InfoConfig:
    """Summarise a demo store."""

    store: Store
    """Path of the store (a directory ending in .zarr)."""
    stats: bool = False
    """Compute the normalisation statistics if they are not cached yet, and show them."""
    episodes: bool = False
    """List every episode with its metadata."""
    json: bool = False
    """Print machine-readable JSON instead of text."""


def info_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.check import format_info, info
    from imitation.data.store import DemoStore

    cfg = config.parse(InfoConfig, argv, prog=prog)
    d = info(DemoStore.open(cfg.store), with_stats=cfg.stats, episodes=cfg.episodes)
    print(json.dumps(d, indent=2) if cfg.json else format_info(d))
    return 0


@dataclass
class ValidateConfig:
    """Check a demo store: every frame decodes, episode ends are consistent, no NaN, timestamps increase."""

    store: Store
    """Path of the store."""
    strict: bool = False
    """Treat warnings (an uncommitted tail, missing statistics, left-over temporary files) as errors."""


def validate_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.check import validate
    from imitation.data.store import DemoStore

    cfg = config.parse(ValidateConfig, argv, prog=prog)
    store = DemoStore.open(cfg.store)
    report = validate(store)
    for w in report.warnings:
        print(f"warning: {w}")
    for e in report.errors:
        print(f"error: {e}")
    failed = report.errors or (cfg.strict and report.warnings)
    print(
        f"{cfg.store}: {store.n_episodes} episode(s), {store.n_frames} frame(s): "
        + ("FAILED" if failed else "OK")
        + f" ({len(report.errors)} error(s), {len(report.warnings)} warning(s))"
    )
    return 1 if failed else 0


@dataclass
class RepairConfig:
    """Make a store clean: drop the uncommitted tail of an interrupted recording, remove temporary
    files, and compute the statistics cache. Committed episodes are never modified."""

    store: Store
    """Path of the store."""


def repair_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.store import open_for_repair

    cfg = config.parse(RepairConfig, argv, prog=prog)
    store, report = open_for_repair(cfg.store)
    print(f"{cfg.store}: {report}" if report else f"{cfg.store}: no uncommitted tail, no temporary files")
    if store.n_episodes:
        fresh = store.has_fresh_stats()
        store.stats(progress=sys.stderr.isatty())
        print("statistics: " + ("already up to date" if fresh else "computed and cached"))
    print(f"{store.n_episodes} committed episode(s), {store.n_frames} frame(s)")
    return 0
