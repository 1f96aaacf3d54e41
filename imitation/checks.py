"""Declared limits of configuration fields, checked once, where a config is built.

A field declares what it accepts in its type: ``steps: Annotated[int, Range(ge=1)] = 10000``.
Every config dataclass calls ``check_fields(self)`` first thing in ``__post_init__``, so a value is
checked however the config is built (command line, YAML file, code): its type, that a float is
finite, and the declared ``Range``/``OneOf``. Paths are checked when a command line is parsed
(``check_paths``), not when a saved config is read back, whose paths may have moved since.

A refused value raises ``FieldError``, which names the field; ``imitation.config`` turns it into
the option a user typed (``--act.lr``) or the key of their YAML file (``x.yaml: act.lr``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from imitation.errors import ConfigError

_MISSING = dataclasses.MISSING


class FieldError(ConfigError):
    """One field's value is refused. ``str()`` names the bare field; ``located(name)`` the option or
    key the user wrote."""

    def __init__(self, cls: type | None, field: str, value: Any, problem: str, fix: str = "") -> None:
        self.cls, self.field, self.value, self.problem, self.fix = cls, field, value, problem, fix
        super().__init__(self.located(field))

    def located(self, name: str) -> str:
        text = f"{name} {_show(self.value)}: {self.problem}"
        return f"{text}; {self.fix}" if self.fix else text


class Escape(Exception):  # noqa: N818 - a carrier, not an error of its own
    """Carries a ``FieldError`` out of the command-line parser, which would wrap a ValueError (as
    every ConfigError is) in its own box and lose which option it was (``config.parse``)."""

    def __init__(self, error: FieldError) -> None:
        super().__init__(str(error))
        self.error = error


escaping: contextvars.ContextVar[bool] = contextvars.ContextVar("escaping", default=False)


def _refuse(error: FieldError) -> typing.NoReturn:
    if escaping.get():
        raise Escape(error)
    raise error


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple | list):
        return " ".join(_show(v) for v in value) if value else "()"
    return str(value)


@dataclass(frozen=True)
class Range:
    """Numeric bounds (each optional); applies to every element of a tuple. ``finite=False``
    accepts ±inf (never NaN)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True
    meaning: str = ""
    """What a special value means, shown with the fix, e.g. "0: off"."""

    def describe(self) -> str:
        parts = []
        if self.gt is not None:
            parts.append(f"> {_num(self.gt)}")
        if self.ge is not None:
            parts.append(f"≥ {_num(self.ge)}")
        if self.lt is not None:
            parts.append(f"< {_num(self.lt)}")
        if self.le is not None:
            parts.append(f"≤ {_num(self.le)}")
        return " and ".join(parts) if parts else "any finite number"

    def problem(self, v: float) -> str | None:
        if isinstance(v, float) and math.isnan(v):
            return "not a number"
        if self.finite and isinstance(v, float) and math.isinf(v):
            return "not a finite number"
        ok = (
            (self.gt is None or v > self.gt)
            and (self.ge is None or v >= self.ge)
            and (self.lt is None or v < self.lt)
            and (self.le is None or v <= self.le)
        )
        return None if ok else "out of range"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True)
class OneOf:
    """A string from a fixed set; ``pattern`` admits more, e.g. ``cuda:N`` (a regular expression)."""

    values: tuple[str, ...]
    pattern: str = ""

    def problem(self, v: str) -> str | None:
        import re

        if v in self.values or (self.pattern and re.fullmatch(self.pattern, v)):
            return None
        return "not a valid choice"


@dataclass(frozen=True)
class InPath:
    """An existing input path: ``kind`` file, dir or any. Checked at the command line only."""

    kind: Literal["file", "dir", "any"] = "any"
    what: str = ""
    """What is expected there, e.g. "demo store" (the message: "no demo store there")."""
    fix: str = "check the path"
    remote: bool = False
    """Also an ``s3://`` URL (a store in a bucket), checked when it is opened."""


@dataclass(frozen=True)
class OutPath:
    """Where a command writes: ``kind`` dir (a directory it creates or fills) or file; ``suffixes``
    the file names it can write. Checked at the command line only, before any work."""

    kind: Literal["file", "dir"] = "dir"
    suffixes: tuple[str, ...] = ()


DEVICE = OneOf(("auto", "cpu", "cuda", "mps"), pattern=r"cuda:\d+")
"""A torch device as the commands accept it."""

DEMO_STORE = InPath("dir", "demo store", "create one by recording or 'imitation data import'", remote=True)
"""A demo store to read."""

SEED = Range(ge=0, lt=2**32)
"""numpy's and gymnasium's seeds: 0 … 2³²−1."""

# -------------------------------------------------------------------------------------- the walk
_HINTS: dict[type, dict[str, Any]] = {}


def hints(cls: type) -> dict[str, Any]:
    """The type hints of a config class, ``Annotated`` marks kept (computed once per class)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def split(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[T, *marks]`` → ``(T, marks)``; anything else → ``(tp, ())``."""
    if typing.get_origin(tp) is typing.Annotated:
        base, *marks = typing.get_args(tp)
        inner, more = split(base)
        return inner, (*marks, *more)
    return tp, ()


def _type_name(tp: Any) -> str:
    base, _ = split(tp)
    origin = typing.get_origin(base)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(base) if a is not type(None)]
        return " or ".join(names)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(base))
    if origin is tuple:
        args = typing.get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"{len(args)} values ({', '.join(_type_name(a) for a in args)})"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", Path: "a path"}.get(
        base, getattr(base, "__name__", str(base))
    )


def _type_ok(tp: Any, v: Any) -> bool:
    base, _ = split(tp)
    origin = typing.get_origin(base)
    if base is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(a, v) for a in typing.get_args(base))
    if base is type(None):
        return v is None
    if origin is Literal:
        return v in typing.get_args(base)
    if origin is tuple:
        if not isinstance(v, tuple | list):
            return False
        args = typing.get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(args[0], x) for x in v)
        return len(v) == len(args) and all(_type_ok(a, x) for a, x in zip(args, v, strict=True))
    if base is bool:
        return isinstance(v, bool)
    if base is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if base is float:
        return isinstance(v, int | float) and not isinstance(v, bool)
    if base is Path:
        return isinstance(v, str | Path)
    if dataclasses.is_dataclass(base):
        return isinstance(v, base)
    if isinstance(base, type):
        return isinstance(v, base)
    return True


def _default(f: dataclasses.Field) -> str:
    """``"default X"`` for a field with a plain default, else ``""``."""
    return "" if f.default is _MISSING or f.default is None else f"default {_show(f.default)}"


def _fix(rule: Range | OneOf, f: dataclasses.Field) -> str:
    shown = f" ({_default(f)})" if _default(f) else ""
    if isinstance(rule, OneOf):
        more = " or cuda:N" if "cuda" in rule.values and rule.pattern else ""
        return f"choose one of {', '.join(rule.values)}{more}{shown}"
    meaning = f"; {rule.meaning}" if rule.meaning else ""
    return f"give a value {rule.describe()}{shown}{meaning}"


def _scalars(v: Any) -> list[Any]:
    return list(v) if isinstance(v, tuple | list) else [v]


def check_fields(obj: Any) -> None:
    """Check each field of dataclass ``obj`` against its type and declared rules (not nested
    dataclasses: they checked themselves when they were built)."""
    cls = type(obj)
    hints_ = hints(cls)
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        tp = hints_[f.name]
        v = getattr(obj, f.name)
        base, marks = split(tp)
        if dataclasses.is_dataclass(base) and dataclasses.is_dataclass(v):
            continue
        if not _type_ok(tp, v):
            _refuse(FieldError(cls, f.name, v, f"not {_type_name(tp)}", _default(f)))
        if v is None:
            continue
        numbers = [x for x in _scalars(v) if isinstance(x, int | float) and not isinstance(x, bool)]
        ranged = any(isinstance(m, Range) for m in marks)
        for x in numbers:
            if isinstance(x, float) and not ranged and not math.isfinite(x):
                _refuse(FieldError(cls, f.name, v, "not a finite number", _default(f)))
        for rule in marks:
            if not isinstance(rule, Range | OneOf):
                continue
            values = numbers if isinstance(rule, Range) else [x for x in _scalars(v) if isinstance(x, str)]
            for x in values:
                problem = rule.problem(x)
                if problem:
                    _refuse(FieldError(cls, f.name, v, problem, _fix(rule, f)))


def check_paths(obj: Any, flag: typing.Callable[[str], str]) -> None:
    """Check the ``InPath``/``OutPath`` fields of ``obj`` and its nested configs; ``flag(path)``
    names a field as the user wrote it. Raises ``FieldError`` (already located)."""
    for path, v, marks in walk(obj):
        if v is None or v == "":
            continue
        for rule in marks:
            for one in _scalars(v):
                if isinstance(rule, InPath):
                    _check_in(rule, Path(one), flag(path), one)
                elif isinstance(rule, OutPath):
                    _check_out(rule, Path(one), flag(path), one)


def walk(obj: Any, prefix: str = "") -> typing.Iterator[tuple[str, Any, tuple[Any, ...]]]:
    """Every leaf field of a config tree: ``(dotted path, value, marks)``."""
    hints_ = hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        _, marks = split(hints_[f.name])
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            yield from walk(v, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", v, marks


def _check_in(rule: InPath, p: Path, name: str, v: Any) -> None:
    if rule.remote and str(v).startswith(("s3://", "s3:/")):
        return
    if not p.exists():
        raise FieldError(
            None, name, v, f"no {rule.what} there" if rule.what else "no such file or directory", rule.fix
        )
    if rule.kind == "file" and p.is_dir():
        raise FieldError(None, name, v, "is a directory, not a file", "name the file")
    if rule.kind == "dir" and not p.is_dir():
        raise FieldError(None, name, v, "is a file, not a directory", "name the directory")


def _check_out(rule: OutPath, p: Path, name: str, v: Any) -> None:
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise FieldError(
                None,
                name,
                v,
                f"{parent} is a file, so nothing can be written under it",
                "choose another path",
            )
    if rule.kind == "dir" and p.exists() and not p.is_dir():
        raise FieldError(
            None, name, v, "is a file; a directory goes there", "choose another path or move the file away"
        )
    if rule.kind == "file" and p.is_dir():
        raise FieldError(None, name, v, "is a directory; a file goes there", "name a file inside it")
    if rule.suffixes and p.suffix.lower() not in rule.suffixes:
        raise FieldError(
            None, name, v, "cannot be written", f"name a file ending in {' or '.join(rule.suffixes)}"
        )
