"""Typed configuration: dataclasses, filled from YAML files and overridden on the command line.

Every command takes a dataclass whose field docstrings are its ``--help`` text. Values come, in
order of precedence, from the command line, then ``--config FILE.yaml`` (plain values, no code),
then the dataclass defaults. The resolved configuration is saved next to every run with ``save``.

tyro is imported when a command line is parsed, not when a config is loaded from YAML.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from imitation.checks import Escape, FieldError, check_paths, escaping, hints, split
from imitation.errors import ConfigError

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from plain values, refusing unknown keys with the list of valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of field: value, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; valid fields: {', '.join(fields)}")
    missing = [
        n
        for n, f in fields.items()
        if n not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required field(s) {missing}; add them")
    types_ = _field_types(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(types_[name], value, _key(where, name))
    try:
        return cls(**kwargs)
    except FieldError as e:
        if e.cls is None:
            raise
        raise ConfigError(e.located(_key(where, e.field))) from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def _key(where: str, name: str) -> str:
    """``file.yaml: act.lr``: where a config came from, then the key path inside it."""
    return f"{where}.{name}" if ": " in where else f"{where}: {name}"


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _coerce(args[0], value, where)
        return value
    if tp is Path and isinstance(value, str):
        return Path(value)
    if origin in (tuple, list) and isinstance(value, list | tuple):
        return origin(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def load_yaml(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    return from_dict(cls, data, where=str(path))


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain values only (paths as strings, tuples as lists), ready for YAML or JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


# The first line of every configuration ``save`` writes: what lets the next run know the file is
# its own to replace (a file without it is someone else's, e.g. an env mapping named like the store).
SAVED_MARK = "# imitation: the resolved configuration of a command; its next run replaces this file"


def saved_by_imitation(cfg: Any, path: Path) -> bool:
    """Whether ``path`` holds a configuration that ``save`` wrote (for this kind of config).

    A file with the mark is; one saved before the mark existed is when it reads as the same config
    class and names the same ``out``. Anything else (another file, the user's own settings) is not.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    if text.startswith(SAVED_MARK):
        return True
    try:
        data = yaml.safe_load(text)
        old = from_dict(type(cfg), data, where=str(path))
    except (yaml.YAMLError, ConfigError, TypeError):
        return False
    if not hasattr(cfg, "out"):
        return True
    a, b = Path(str(old.out)), Path(str(cfg.out))
    return a == b or a.resolve() == b.resolve()


def check_save(cfg: Any, path: str | Path) -> None:
    """Refuse, before the work, a ``save`` that would replace a file this project did not write."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_file() and not path.is_symlink() and saved_by_imitation(cfg, path):
        return
    raise ConfigError(
        f"{path} exists and was not written by imitation (the resolved {type(cfg).__name__} goes "
        "there, and would replace it); move that file away, or choose another --out"
    )


def save(cfg: Any, path: str | Path) -> None:
    """Write the resolved configuration as YAML (atomically), never over a file the project did not
    write (``check_save``)."""
    from imitation.data.durable import atomic_write

    path = Path(path)
    check_save(cfg, path)
    text = f"{SAVED_MARK}\n{yaml.safe_dump(to_dict(cfg), sort_keys=False)}"
    atomic_write(path, text.encode())


def parse(
    cls: type[T],
    args: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
    default: T | None = None,
) -> T:
    """Parse ``args`` into ``cls``: defaults (``default``, else the dataclass's) < ``--config
    FILE`` < command-line flags. Every refusal is one ``ConfigError`` line naming the option: a
    value the parser cannot read, a field outside its declared limits (``imitation.checks``), a
    missing input or an output path that cannot be written."""
    import tyro

    args = list(sys.argv[1:] if args is None else args)
    if "--config" in args:
        i = args.index("--config")
        if i + 1 >= len(args):
            raise ConfigError("--config needs a YAML file path")
        default = load_yaml(cls, args[i + 1])
        del args[i : i + 2]
    kwargs: dict[str, Any] = {"args": args, "prog": prog, "description": description}
    if default is not None:
        kwargs["default"] = default
    captured = io.StringIO()
    token = escaping.set(True)  # a refused field comes out of tyro as itself, to be named here
    try:
        with contextlib.redirect_stderr(captured):
            cfg = tyro.cli(cls, **kwargs)
    except SystemExit as e:
        if e.code in (0, None):
            sys.stderr.write(captured.getvalue())
            raise
        raise ConfigError(one_line(captured.getvalue(), prog or "the command")) from None
    except Escape as escaped:
        e = escaped.error
        if e.cls is None:
            raise e from None
        raise ConfigError(e.located(flag_of(cls, e.cls, e.field))) from None
    finally:
        escaping.reset(token)
    sys.stderr.write(captured.getvalue())
    try:
        check_paths(cfg, lambda path: _flag(cls, path))
    except FieldError as e:
        raise ConfigError(str(e)) from None
    if on_parsed is not None:
        on_parsed(cfg)
    return cfg


on_parsed: typing.Callable[[Any], None] | None = None
"""Called with every command line's config once it is built and checked, before the command works
(the hostile-input sweep stops commands here: ``tests/hostile.py``)."""


def _flag(top: type, path: str) -> str:
    """The command-line spelling of dotted field ``path`` of config class ``top``: ``--act.lr``,
    ``--grad-clip-norm``; a positional argument by its field name in capitals."""
    cls, marks = top, ()
    for name in path.split("."):
        cls, marks = split(hints(cls)[name])
    if any("Positional" in repr(m) for m in marks):
        return path.rsplit(".", 1)[-1].upper()
    return "--" + path.replace("_", "-")


def flag_of(top: type, owner: type, field: str) -> str:
    """The option of ``field`` of nested config class ``owner`` inside ``top`` (``--act.lr``)."""

    def find(cls: type, prefix: str) -> str | None:
        if cls is owner:
            return prefix
        for name, tp in hints(cls).items():
            base, _ = split(tp)
            if dataclasses.is_dataclass(base):
                found = find(base, f"{prefix}{name}.")
                if found is not None:
                    return found
        return None

    prefix = find(top, "")
    return _flag(top, f"{prefix}{field}") if prefix is not None else field


_BOX = "╭╮╰╯│─"


def one_line(text: str, prog: str) -> str:
    """tyro's boxed error as one line: its message, the expected form of the option, a suggestion."""
    sections: list[list[str]] = [[]]
    title = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("╭"):
            title = line.strip(_BOX + " ")
            continue
        if line.startswith("╰"):
            continue
        line = line.strip("│").strip()
        if line and set(line) <= set(_BOX + " "):
            sections.append([])
        elif line:
            sections[-1].append(line)
    message = " ".join(sections[0]) or title or "cannot parse the command line"
    if message.startswith("Error parsing "):
        name, sep, rest = message.removeprefix("Error parsing ").partition(": ")
        # "--steps: ..." keeps its option; "act: ..." / "MergeConfig: ..." (a rule across fields,
        # whose message names them) does not need the group's name.
        message = rest if sep and not name.startswith("-") else f"{name}{sep}{rest}"
    extra = []
    for section in sections[1:]:
        if section and section[0].startswith("Argument helptext") and len(section) > 1:
            extra.append(f"expected {section[1]}")
        elif section and section[0].startswith("Perhaps you meant") and len(section) > 1:
            extra.append(f"did you mean {section[1].split()[0]}?")
    extra.append(f"see {prog} --help")
    return "; ".join([message, *extra])


class ArgParser(argparse.ArgumentParser):
    """``argparse`` for the few commands that do not take a config dataclass: a bad command line is
    one ``ConfigError`` line (``error: ...; see PROG --help``), not usage text and exit code 2."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise ConfigError(f"{message}; see {self.prog} --help")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        if on_parsed is not None:
            on_parsed(parsed)
        return parsed


def bounded(lo: float, hi: float, unit: str = "") -> typing.Callable[[str], float]:
    """An ``ArgParser`` type: a finite number in ``lo`` … ``hi`` (refused at parse time, one line)."""

    def parse_number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo <= value <= hi:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g} … {hi:g}{unit}")
        return value

    parse_number.__name__ = "number"
    return parse_number
