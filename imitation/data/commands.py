"""``imitation data ...``: inspect, check, repair, edit and import demo stores.

Each subcommand imports what it runs inside its function: ``imitation data info`` does not load
the converters or the editors.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from imitation import config
from imitation.checks import DEMO_STORE, SEED, InPath, OutPath, Range, check_fields
from imitation.cli import run_table
from imitation.errors import ConfigError

COMMANDS: dict[str, tuple[str, str]] = {
    "info": (
        "imitation.data.commands:info_main",
        "episodes, frames, features, sizes, compression, statistics",
    ),
    "validate": ("imitation.data.commands:validate_main", "full integrity check; exits 1 on problems"),
    "repair": (
        "imitation.data.commands:repair_main",
        "finish interrupted edits, drop an uncommitted tail, stats",
    ),
    "merge": (
        "imitation.data.commands:merge_main",
        "several stores with the same features into one new store",
    ),
    "split": (
        "imitation.data.commands:split_main",
        "one store into two by episode (e.g. train / validation)",
    ),
    "filter": ("imitation.data.commands:filter_main", "a new store with the episodes that match"),
    "delete": ("imitation.data.commands:delete_main", "remove episodes, in place or into a new store"),
    "import": ("imitation.data.commands:import_main", "convert another format into a demo store"),
    "export": ("imitation.data.commands:export_main", "write a demo store in another format"),
    "units": ("imitation.data.commands:units_main", "LeRobot motor values of an imported store -> radians"),
    "push": ("imitation.data.commands:push_main", "copy a store to a bucket (s3://...), committed last"),
    "pull": ("imitation.data.commands:pull_main", "copy a store from a bucket into a new local store"),
}


def _pos(metavar: str) -> tyro.conf.arg:
    return tyro.conf.arg(metavar=metavar)


Store = Annotated[Path, tyro.conf.Positional, _pos("STORE"), DEMO_STORE]


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

    def __post_init__(self) -> None:
        check_fields(self)


def info_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.check import format_info, info
    from imitation.data.store import DemoStore

    cfg = config.parse(InfoConfig, argv, prog=prog)
    d = info(DemoStore.open(cfg.store, check=False), with_stats=cfg.stats, episodes=cfg.episodes)
    print(json.dumps(d, indent=2) if cfg.json else format_info(d))
    return 0


@dataclass
class ValidateConfig:
    """Check a demo store: every frame decodes, episode ends are consistent, no NaN, timestamps increase."""

    store: Store
    """Path of the store."""
    strict: bool = False
    """Treat warnings (an uncommitted tail, missing statistics, left-over temporary files) as errors."""

    def __post_init__(self) -> None:
        check_fields(self)


def validate_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.check import validate
    from imitation.data.store import DemoStore

    cfg = config.parse(ValidateConfig, argv, prog=prog)
    store = DemoStore.open(cfg.store, check=False)  # a damaged commit record is a finding here
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
    """Make a store clean without touching a committed episode: finish interrupted edits, drop the
    uncommitted tail of an interrupted recording, remove temporary files and left-over directories,
    and compute the statistics cache. A store whose commit record is inconsistent, or whose
    committed data is damaged, is refused unless --force is given."""

    store: Annotated[Path, tyro.conf.Positional, _pos("STORE")]
    """Path of the store (it may be missing while an in-place edit was interrupted mid-swap)."""
    force: bool = False
    """Rebuild a damaged store from the episodes that can be proven whole (boundaries from
    meta/episode_ends, or from the per-episode lengths where that is damaged; every frame read back
    and checked). The original is kept whole beside it as <name>.backup-<time>-<pid>."""
    upgrade: bool = False
    """Rewrite a format-1 store in the current format, which adds a checksum to every chunk."""

    def __post_init__(self) -> None:
        check_fields(self)


def repair_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.repair import repair

    cfg = config.parse(RepairConfig, argv, prog=prog)
    lines, clean = repair(cfg.store, force=cfg.force, upgrade=cfg.upgrade, progress=sys.stderr.isatty())
    for line in lines:
        print(f"{cfg.store}: {line}")
    return 0 if clean else 1


@dataclass
class MergeConfig:
    """Merge stores recorded with the same features, fps and robot into one new store."""

    sources: Annotated[tuple[Path, ...], tyro.conf.Positional, _pos("STORE..."), DEMO_STORE]
    """Stores to merge, in order."""
    out: Annotated[Path, OutPath("dir")]
    """Path of the new store (must not exist)."""

    def __post_init__(self) -> None:
        check_fields(self)
        if len(self.sources) < 2:
            raise ConfigError(f"merge needs at least two stores, got {len(self.sources)}")


def merge_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.edit import merge

    cfg = config.parse(MergeConfig, argv, prog=prog)
    store = merge(cfg.sources, cfg.out)
    print(
        f"{cfg.out}: {store.n_episodes} episode(s), {store.n_frames} frame(s) from {len(cfg.sources)} stores"
    )
    return 0


@dataclass
class SplitConfig:
    """Split a store into two new stores by episode; give --fraction or --ids for the first."""

    source: Store
    """The store to split (left unchanged)."""
    first: Annotated[Path, tyro.conf.Positional, _pos("FIRST"), OutPath("dir")]
    """New store that receives --fraction of the episodes, or the episodes in --ids."""
    second: Annotated[Path, tyro.conf.Positional, _pos("SECOND"), OutPath("dir")]
    """New store that receives every other episode."""
    fraction: Annotated[float | None, Range(gt=0, lt=1)] = None
    """Share of episodes for the first store, chosen at random with --seed (e.g. 0.9)."""
    ids: Annotated[tuple[int, ...] | None, Range(ge=0)] = None
    """Exactly these episodes go to the first store."""
    seed: Annotated[int, SEED] = 0
    """Seed of the random choice with --fraction."""

    def __post_init__(self) -> None:
        check_fields(self)


def split_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.edit import split

    cfg = config.parse(SplitConfig, argv, prog=prog)
    a, b = split(cfg.source, cfg.first, cfg.second, fraction=cfg.fraction, ids=cfg.ids, seed=cfg.seed)
    print(f"{cfg.first}: {a.n_episodes} episode(s); {cfg.second}: {b.n_episodes} episode(s)")
    return 0


@dataclass
class FilterConfig:
    """Write a new store with the episodes that meet every given criterion."""

    source: Store
    """The store to read (left unchanged)."""
    out: Annotated[Path, tyro.conf.Positional, _pos("OUT"), OutPath("dir")]
    """Path of the new store."""
    outcome: tuple[str, ...] | None = None
    """Keep episodes with one of these outcomes (e.g. success)."""
    task: tuple[str, ...] | None = None
    """Keep episodes with one of these task texts."""
    operator: tuple[str, ...] | None = None
    """Keep episodes recorded by one of these operators."""
    min_length: Annotated[int | None, Range(ge=0)] = None
    """Keep episodes of at least this many frames."""
    max_length: Annotated[int | None, Range(ge=0)] = None
    """Keep episodes of at most this many frames."""
    ids: Annotated[tuple[int, ...] | None, Range(ge=0)] = None
    """Consider only these episodes (in this order)."""
    interventions: bool = False
    """Keep only the frames an operator drove (a store of 'imitation deploy --takeover --record'),
    each unbroken stretch as an episode: corrections to merge with demonstrations."""

    def __post_init__(self) -> None:
        check_fields(self)


def filter_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.edit import filter_store

    cfg = config.parse(FilterConfig, argv, prog=prog)
    store = filter_store(
        cfg.source,
        cfg.out,
        ids=cfg.ids,
        outcome=cfg.outcome,
        task=cfg.task,
        operator=cfg.operator,
        min_length=cfg.min_length,
        max_length=cfg.max_length,
        interventions=cfg.interventions,
    )
    print(f"{cfg.out}: {store.n_episodes} episode(s), {store.n_frames} frame(s)")
    return 0


@dataclass
class DeleteConfig:
    """Remove episodes. In place, the store is rebuilt beside itself and swapped in, so an
    interruption never loses it ('imitation data repair' finishes an interrupted swap)."""

    store: Store
    """The store to edit."""
    ids: Annotated[tuple[int, ...], Range(ge=0)]
    """Episodes to remove (indices as listed by 'imitation data info --episodes')."""
    output: Annotated[Path | None, OutPath("dir")] = None
    """Write the result to this new store and leave the original unchanged."""

    def __post_init__(self) -> None:
        check_fields(self)


def delete_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.edit import delete_episodes

    cfg = config.parse(DeleteConfig, argv, prog=prog)
    store = delete_episodes(cfg.store, cfg.ids, output=cfg.output)
    print(f"{store.path}: {store.n_episodes} episode(s) left, {store.n_frames} frame(s)")
    return 0


@dataclass
class ImportConfig:
    """Convert a dataset in another format into a new demo store."""

    format: Annotated[
        Literal["diffusion_policy", "lerobot", "robomimic"], tyro.conf.Positional, _pos("FORMAT")
    ]
    """Source format: diffusion_policy (its replay-buffer Zarr, a directory or .zarr.zip), lerobot
    (a LeRobot dataset directory, format v3.0 or v2.1, with its meta/, data/ and videos/) or
    robomimic (its HDF5 file: data/demo_N/obs, actions, states)."""
    source: Annotated[Path, tyro.conf.Positional, _pos("SOURCE"), InPath("any")]
    """Path of the dataset to import."""
    out: Annotated[Path, tyro.conf.Positional, _pos("OUT"), OutPath("dir")]
    """Path of the new store."""
    fps: Annotated[float | None, Range(gt=0, le=10_000)] = None
    """Rate the data was recorded at (PushT: 10); needed when the source does not record it
    (lerobot and robomimic files do)."""
    map: tuple[str, ...] = ()
    """Renames as SOURCE=FEATURE, e.g. img=images/top keypoint=env_state
    (lerobot: observation.images.top=images/high); SOURCE= drops an array."""
    image_codec: Literal["jpeg", "zstd", "blosc", "none"] = "jpeg"
    """Codec for image features."""
    task: str | None = None
    """Task text for every episode."""
    outcome: str | None = None
    """Outcome for every episode (e.g. success for expert demonstrations)."""

    def __post_init__(self) -> None:
        check_fields(self)


def import_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.convert import importer

    cfg = config.parse(ImportConfig, argv, prog=prog)
    mapping: dict[str, str | None] = {}
    for item in cfg.map:
        if "=" not in item:
            raise ConfigError(f"--map {item!r} is not SOURCE=FEATURE; e.g. --map img=images/top")
        src, dst = item.split("=", 1)
        mapping[src] = dst or None
    store = importer(cfg.format)(
        cfg.source,
        cfg.out,
        fps=cfg.fps,
        mapping=mapping or None,
        image_codec=cfg.image_codec,
        task=cfg.task,
        outcome=cfg.outcome,
    )
    print(
        f"{cfg.out}: imported {store.n_episodes} episode(s), {store.n_frames} frame(s); features: "
        + ", ".join(store.features)
    )
    return 0


@dataclass
class ExportConfig:
    """Write a demo store in another format."""

    format: Annotated[Literal["diffusion_policy", "lerobot"], tyro.conf.Positional, _pos("FORMAT")]
    """Target format: diffusion_policy (a Zarr v2 replay buffer) or lerobot (a LeRobot v3.0 dataset
    directory, as LeRobot 0.4-0.6 read: parquet tables and mp4 videos)."""
    source: Store
    """The store to export."""
    out: Annotated[Path, tyro.conf.Positional, _pos("OUT"), OutPath("dir")]
    """Path to write (must not exist)."""
    vcodec: Literal["h264", "av1", "hevc"] = "h264"
    """lerobot: the cameras' video codec (h264 plays everywhere; av1 is LeRobot's own default)."""
    crf: Annotated[int | None, Range(ge=0, le=63)] = None
    """lerobot: the videos' quality (lower is better; default h264 23, av1 30, hevc 28)."""

    def __post_init__(self) -> None:
        check_fields(self)


def export_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.convert import exporter

    cfg = config.parse(ExportConfig, argv, prog=prog)
    extra = {"vcodec": cfg.vcodec, "crf": cfg.crf} if cfg.format == "lerobot" else {}
    path = exporter(cfg.format)(cfg.source, cfg.out, **extra)
    print(f"{path}: written")
    return 0


@dataclass
class PushConfig:
    """Copy a store to an S3-compatible bucket; its manifest is written last, in one object write, so
    a reader sees the old version or the new one, never a half-copied store."""

    store: Annotated[Path, tyro.conf.Positional, _pos("STORE"), InPath("dir", "demo store")]
    """The local store to copy."""
    url: Annotated[str, tyro.conf.Positional, _pos("URL")]
    """Where: s3://<bucket>/<path>/<name>.zarr (endpoint and credentials from AWS_* variables)."""
    prune: bool = False
    """Remove the versions pushed before this one (readers still copying one fail)."""

    def __post_init__(self) -> None:
        check_fields(self)


def push_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.remote import push

    cfg = config.parse(PushConfig, argv, prog=prog)
    manifest = push(cfg.store, cfg.url, prune=cfg.prune)
    print(
        f"{cfg.url}: {manifest['episodes']} episode(s), {manifest['frames']} frame(s), version {manifest['fingerprint']}"
    )
    return 0


@dataclass
class PullConfig:
    """Copy the store at an s3:// URL into a new local store."""

    url: Annotated[str, tyro.conf.Positional, _pos("URL")]
    """s3://<bucket>/<path>/<name>.zarr"""
    out: Annotated[Path, tyro.conf.Positional, _pos("OUT"), OutPath("dir")]
    """Path of the new local store (must not exist)."""

    def __post_init__(self) -> None:
        check_fields(self)


def pull_main(argv: Sequence[str], prog: str) -> int:
    from imitation.data.remote import pull

    cfg = config.parse(PullConfig, argv, prog=prog)
    store = pull(cfg.url, cfg.out)
    print(f"{store.path}: {store.n_episodes} episode(s), {store.n_frames} frame(s)")
    return 0


@dataclass
class UnitsConfig:
    """Convert the joints of a store imported from LeRobot (its calibrated motor values) into this
    project's units (radians, a [0, 1] gripper), with a unit map: given (configs/units/ has nominal
    maps for SO-100/101 data whose arm is not at hand), or derived from the arm's two calibrations,
    LeRobot's (its calibration JSON) and this project's."""

    store: Store
    """The imported store (its robot attribute says units: lerobot)."""
    out: Annotated[Path, tyro.conf.Positional, _pos("OUT"), OutPath("dir")]
    """Path of the new, converted store."""
    robot: str | None = None
    """The robot config (name or YAML path) of the arm: joint names, servo ids; with --calibration."""
    calibration: Annotated[Path | None, InPath("file", "calibration file")] = None
    """This project's calibration of the arm (imitation calibrate writes it)."""
    lerobot_calibration: Annotated[Path | None, InPath("file", "LeRobot calibration file")] = None
    """LeRobot's calibration JSON of the same arm (~/.cache/huggingface/lerobot/calibration/robots/...)."""
    lerobot_norm: Literal["range", "degrees"] = "range"
    """How LeRobot normalised the joints: range (-100..100; Koch, and SO-100/101 before LeRobot 0.4.4) or
    degrees (use_degrees=True; SO-100/101 since 0.4.4)."""
    unit_map: Annotated[Path | None, InPath("file", "unit map")] = None
    """A unit map written before (--save-map), instead of the two calibrations."""
    save_map: Annotated[Path | None, OutPath("file", (".yaml", ".yml"))] = None
    """Also write the derived unit map here, to convert more stores of the same arm."""

    def __post_init__(self) -> None:
        check_fields(self)


def units_main(argv: Sequence[str], prog: str) -> int:
    import yaml

    from imitation.data.units import convert, load_unit_map, unit_map

    cfg = config.parse(UnitsConfig, argv, prog=prog)
    if cfg.unit_map is not None:
        umap = load_unit_map(cfg.unit_map)
    elif cfg.calibration and cfg.lerobot_calibration and cfg.robot:
        from imitation.robots.calibration import Calibration
        from imitation.robots.config import load_robot_config

        robot = load_robot_config(cfg.robot)
        ours = Calibration.load(cfg.calibration, robot)
        try:
            lerobot_cal = json.loads(cfg.lerobot_calibration.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(
                f"--lerobot-calibration {cfg.lerobot_calibration}: not a JSON file ({e})"
            ) from e
        umap = unit_map(lerobot_cal, ours, norm=cfg.lerobot_norm)
    else:
        raise ConfigError(
            "give --unit-map, or --robot, --calibration and --lerobot-calibration (the arm's two calibrations)"
        )
    if cfg.save_map is not None:
        cfg.save_map.write_text(yaml.safe_dump(umap, sort_keys=False))
    store = convert(cfg.store, cfg.out, umap)
    print(
        f"{store.path}: {store.n_episodes} episode(s); joints {', '.join(umap['joints'])} in radians (gripper 0..1)"
    )
    return 0
