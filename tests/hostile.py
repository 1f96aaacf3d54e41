"""The hostile-input sweep: every option of every command, taken from the parsers themselves, with
values no one should pass; each case run in process through ``imitation.cli.main`` and classed.

A case ends in one of:
- ``clean``: a non-zero exit with one ``error: ...`` line on stderr that names the option;
- ``unclear``: a non-zero exit whose stderr is not that one line (several lines, or not naming it);
- ``accepted``: the command line was taken and the command was about to work (the sweep stops
  every command there, through ``imitation.config.on_parsed``, so nothing runs for minutes);
- ``traceback``: any other exception escaped, or a traceback was printed;
- ``hang``: no answer within the time limit;
- ``changed``: the files under the working directory changed (nothing may be created or touched
  by a refused, or a merely parsed, command line).

``tools/sweep_cli.py`` prints the counts; ``tests/test_hostile_inputs.py`` asserts them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MISSING = "missing/nothing-here"
VALUES = ("0", "-1", "-100", "nan", "inf", "-inf", "1e12", "abc", "", MISSING, "FILE", "DIR")
"""Hostile values; FILE and DIR become an existing file where a directory may be expected, and an
existing directory where a file may be."""


class Parsed(BaseException):
    """Raised where a command would start working: the command line was accepted."""


class Hang(BaseException):
    pass


@dataclass
class Case:
    command: str
    option: str
    value: str
    argv: list[str]
    outcome: str = ""
    stderr: str = ""
    detail: str = ""


def commands() -> dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[Path], list[str]]]]:
    """command → (its parser, its valid base command line in a fixture directory)."""
    import tyro

    from imitation import import_checkpoint
    from imitation.data import commands as data
    from imitation.deploy import DeployConfig
    from imitation.evaluate import EvalConfig
    from imitation.quickstart import QuickstartConfig
    from imitation.record import RecordConfig
    from imitation.replay import ReplayConfig
    from imitation.robots import cameras
    from imitation.robots.buses import emulator
    from imitation.robots.calibrate_cli import CalibrateConfig
    from imitation.train import TrainConfig
    from imitation.view import ViewConfig

    def t(cls: type) -> Callable[[], argparse.ArgumentParser]:
        def parser() -> argparse.ArgumentParser:
            with warnings.catch_warnings():  # get_parser is deprecated in tyro 1.0, and still there
                warnings.simplefilter("ignore", DeprecationWarning)
                return tyro.extras.get_parser(cls)

        return parser

    s = "store.zarr"
    return {
        "quickstart": (t(QuickstartConfig), lambda d: []),
        "record": (t(RecordConfig), lambda d: ["--out", "new.zarr"]),
        "train": (t(TrainConfig), lambda d: ["--store", s]),
        "eval": (t(EvalConfig), lambda d: ["--checkpoint", "run"]),
        "deploy": (t(DeployConfig), lambda d: ["--checkpoint", "run"]),
        "calibrate": (t(CalibrateConfig), lambda d: ["--robot", "so101", "--port", "/dev/null"]),
        "emulate": (emulator.parser, lambda d: ["--robot", "so101"]),
        "cameras": (cameras.parser, lambda d: ["--no-probe"]),
        "replay": (t(ReplayConfig), lambda d: ["--store", s]),
        "import-checkpoint": (import_checkpoint.parser, lambda d: ["--from", "lerobot", "DIR"]),
        "view": (t(ViewConfig), lambda d: ["--store", s]),
        "data info": (t(data.InfoConfig), lambda d: [s]),
        "data validate": (t(data.ValidateConfig), lambda d: [s]),
        "data repair": (t(data.RepairConfig), lambda d: [s]),
        "data merge": (t(data.MergeConfig), lambda d: [s, s, "--out", "merged.zarr"]),
        "data split": (t(data.SplitConfig), lambda d: [s, "a.zarr", "b.zarr", "--fraction", "0.5"]),
        "data filter": (t(data.FilterConfig), lambda d: [s, "kept.zarr"]),
        "data delete": (t(data.DeleteConfig), lambda d: [s, "--ids", "0"]),
        "data import": (t(data.ImportConfig), lambda d: ["diffusion_policy", "FILE", "imported.zarr"]),
        "data export": (t(data.ExportConfig), lambda d: ["diffusion_policy", s, "exported.zarr"]),
        "data units": (t(data.UnitsConfig), lambda d: [s, "converted.zarr", "--unit-map", "FILE"]),
        "data push": (t(data.PushConfig), lambda d: [s, "s3://bucket/team/pick.zarr"]),
        "data pull": (t(data.PullConfig), lambda d: ["s3://bucket/team/pick.zarr", "pulled.zarr"]),
    }


def options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, Any]]:
    """(flag, nargs) of every option that takes a value (switches take none)."""
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0:
            continue
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        yield max(action.option_strings, key=len), action.nargs


def cases(root: Path) -> Iterator[Case]:
    for command, (parser, base) in commands().items():
        for flag, nargs in options(parser()):
            for value in VALUES:
                n = nargs if isinstance(nargs, int) else 1
                args = [*base(root), flag, *([value] * n)]
                yield Case(command, flag, value, [*command.split(), *args])


def _resolve(argv: list[str], root: Path) -> list[str]:
    names = {"FILE": str(root / "a-file.txt"), "DIR": str(root / "a-dir")}
    return [names.get(a, a) for a in argv]


def fixture(root: Path) -> None:
    """The working directory of the sweep: a demo store, a file, a directory."""
    import sys

    sys.path.append(str(Path(__file__).parent))
    from conftest import write_store

    write_store(root / "store.zarr", episodes=2, length=10)
    (root / "a-file.txt").write_text("not what anything expects\n")
    (root / "a-dir").mkdir()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns if p.is_file() else 0)
    return out


def run_case(case: Case, root: Path, timeout_s: int = 30) -> Case:
    from imitation import cli, config

    def stop(_cfg: Any) -> None:
        raise Parsed

    def alarm(*_: Any) -> None:
        raise Hang

    argv = _resolve(case.argv, root)
    before = snapshot(root)
    err, out = io.StringIO(), io.StringIO()
    old_hook, old_alarm = config.on_parsed, signal.signal(signal.SIGALRM, alarm)
    config.on_parsed = stop
    cwd = os.getcwd()
    os.chdir(root)
    signal.alarm(timeout_s)
    rc: int | None = None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = cli.main(argv)
    except Parsed:
        case.outcome = "accepted"
    except Hang:
        case.outcome = "hang"
    except SystemExit as e:  # a parser's own exit: --help would be 0
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - what the sweep exists to find
        case.outcome = "traceback"
        case.detail = traceback.format_exc(limit=-3)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_alarm)
        config.on_parsed = old_hook
        os.chdir(cwd)
    case.stderr = err.getvalue()
    if not case.outcome:
        lines = [ln for ln in case.stderr.splitlines() if ln.strip()]
        if rc == 0:
            case.outcome = "accepted"
        elif "Traceback" in case.stderr:
            case.outcome = "traceback"
        elif len(lines) == 1 and lines[0].startswith("error: ") and names(lines[0], case.option):
            case.outcome = "clean"
        else:
            case.outcome = "unclear"
    if snapshot(root) != before:
        case.detail = f"files changed: {sorted(set(snapshot(root).items()) ^ set(before.items()))[:4]}"
        case.outcome = "changed"
    return case


def names(line: str, flag: str) -> bool:
    """Whether an error line names the option (as typed, or its YAML key)."""
    bare = flag.lstrip("-")
    return flag in line or bare in line or bare.replace("-", "_") in line


@dataclass
class Sweep:
    cases: list[Case] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(c.outcome for c in self.cases)

    def by(self, outcome: str) -> list[Case]:
        return [c for c in self.cases if c.outcome == outcome]


def sweep(root: Path, only: Callable[[Case], bool] = lambda c: True) -> Sweep:
    result = Sweep()
    for case in cases(root):
        if only(case):
            result.cases.append(run_case(case, root))
    return result
