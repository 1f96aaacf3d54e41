"""The ``imitation`` command. Subcommands are imported only when run, so ``--help`` is instant."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence

# name -> ("module:function", one-line help). Each function takes the remaining arguments.
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": (
        "imitation.quickstart:main",
        "run the whole pipeline on a laptop CPU (the project's main job)",
    ),
    "record": (
        "imitation.record:main",
        "record demonstrations into a demo store (scripted experts in simulation)",
    ),
    "train": ("imitation.train:main", "train an ACT or Diffusion Policy model on a demo store"),
    "eval": ("imitation.evaluate:main", "measure a trained policy's success rate in simulation"),
    "deploy": ("imitation.deploy:main", "run a trained policy on a robot (real, emulated or simulated)"),
    "calibrate": (
        "imitation.robots.calibrate_cli:main",
        "calibrate a real arm's servos onto the joint convention",
    ),
    "emulate": (
        "imitation.robots.buses.emulator:main",
        "serve a virtual arm's servo bus on a pseudo-terminal",
    ),
    "cameras": ("imitation.robots.cameras:main", "list the attached cameras"),
    "replay": ("imitation.replay:main", "re-execute a recorded episode on a robot, through the safety layer"),
    "import-checkpoint": (
        "imitation.import_checkpoint:main",
        "convert a LeRobot ACT or Diffusion Policy checkpoint into ours",
    ),
    "view": ("imitation.view:main", "write an mp4 or a picture of stored episodes or of a simulated task"),
    "data": ("imitation.data.commands:main", "inspect, check, repair, edit and import demo stores"),
}

USAGE = """usage: imitation <command> [options]

Robot imitation learning: record demonstrations, train policies, run them in simulation and on arms.

commands:
{commands}

Run 'imitation <command> --help' for a command's options.
Set IMITATION_DEBUG=1 to see full tracebacks of errors and the libraries' warnings."""


def run_table(table: dict[str, tuple[str, str]], argv: Sequence[str], prog: str) -> int:
    """Dispatch ``argv[0]`` through a command table, importing only the chosen command."""
    width = max(len(n) for n in table) + 2
    usage = USAGE.replace("imitation <command>", f"{prog} <command>").format(
        commands="\n".join(f"  {name:<{width}}{doc}" for name, (_, doc) in table.items())
    )
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage)
        return 0
    if argv[0] == "--version":
        from imitation import __version__

        print(__version__)
        return 0
    name = argv[0]
    if name not in table:
        print(f"{prog}: unknown command {name!r}; choose one of: {', '.join(table)}", file=sys.stderr)
        return 2
    module, func = table[name][0].split(":")
    return getattr(importlib.import_module(module), func)(list(argv[1:]), prog=f"{prog} {name}") or 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Headless machines: MuJoCo renders offscreen through EGL unless the user chose otherwise.
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    from imitation.errors import ImitationError
    from imitation.logs import route_warnings

    route_warnings()  # gymnasium's and foreign libraries' warnings: to the log at DEBUG, not the terminal

    try:
        return run_table(COMMANDS, argv, "imitation")
    except ImitationError as e:
        if os.environ.get("IMITATION_DEBUG"):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        # The machine refused (a full disk, no permission, a device gone): one line, which file.
        if os.environ.get("IMITATION_DEBUG"):
            raise
        where = f": {e.filename}" if e.filename else ""
        print(f"error: {e.strerror or e}{where} (IMITATION_DEBUG=1 shows where)", file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    """The user's message of an error; one raised in a DataLoader worker comes back wrapped with
    the worker's traceback ("Caught X in DataLoader worker ... Original Traceback ..."), whose last
    line is the original "module.X: message"."""
    text = str(e)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    name, sep, message = last.partition(": ")
    looks_like_a_class = name.isidentifier() or "." in name
    return message if sep and looks_like_a_class else last


if __name__ == "__main__":
    sys.exit(main())
