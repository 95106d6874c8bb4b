"""Checking config values against the constraints their fields declare (bounds, known values, paths that must
exist), and the `CheckContext` that a dataclass's own `check_config(ctx)` hook records its problems in."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolprior.config.fields import (
    CONFIG_PATH,
    MODEL_NAMES,
    MODEL_PATH,
    SHIPPED_PREFIX,
    Check,
    Known,
    shipped_configs_dir,
)
from toolprior.config.sources import Origin, Sources
from toolprior.config.typecheck import show_value
from toolprior.errors import Problem


@dataclass
class CheckContext:
    """What a `check_config(self, ctx)` hook (and a field's Check) sees: where each setting came from, whether
    files are checked, and where to record problems. `prefix` is the dotted path of the dataclass being checked."""

    file: str
    sources: Sources
    problems: list[Problem]
    check_files: bool = True
    prefix: str = ""
    rejected: set[str] = dataclasses.field(default_factory=set)

    def at(self, prefix: str) -> CheckContext:
        return dataclasses.replace(self, prefix=prefix)

    def dotted(self, field: str) -> str:
        return f"{self.prefix}{field}" if field else self.prefix.rstrip(".")

    def origin(self, field: str) -> Origin:
        """Where the setting `field` (relative to this dataclass) was written."""
        return self.sources.of(self.dotted(field))

    def problem(self, field: str, message: str) -> None:
        """Record one problem with the setting `field` (relative to this dataclass)."""
        dotted = self.dotted(field) or "<root>"
        self.problems.append(self.origin(field).problem(dotted, message))

    def accepted(self, field: str) -> bool:
        """False when the setting `field` (or its section) was refused, so its default stands in for it and a rule
        across fields should not act on it (e.g. load a sub-config whose path was not found)."""
        return self.dotted(field) not in self.rejected and self.prefix.rstrip(".") not in self.rejected

    def extend(self, problems: Sequence[Problem]) -> None:
        self.problems.extend(problems)

    def resolve(self, field: str, value: str, kind: str) -> str:
        """The path setting `field` resolved as a field declaring `Check(path=kind)` is (a problem if missing)."""
        return resolve_path(value, kind, field, self)


def _choices(choices: tuple[Any, ...] | Known) -> tuple[Any, ...]:
    return choices.values() if isinstance(choices, Known) else tuple(choices)


def _bounds_message(value: Any, c: Check) -> str | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if c.gt is not None and not value > c.gt:
        return f"must be > {c.gt:g}, got {value}"
    if c.ge is not None and not value >= c.ge:
        return f"must be >= {c.ge:g}, got {value}"
    if c.lt is not None and not value < c.lt:
        return f"must be < {c.lt:g}, got {value}"
    if c.le is not None and not value <= c.le:
        return f"must be <= {c.le:g}, got {value}"
    return None


def check_value(value: Any, c: Check, field: str, ctx: CheckContext) -> Any:
    """Apply `c` to one value (a list's elements one by one); returns the value with paths resolved."""
    if value is None:
        return None
    if isinstance(value, list):
        if c.nonempty and not value:
            ctx.problem(field, "must not be empty")
        if c.whole:
            message = c.rule(value) if c.rule is not None else None
            if message is not None:
                ctx.problem(field, message)
            return value
        return [check_value(v, c, f"{field}[{i}]", ctx) for i, v in enumerate(value)]
    if c.nonempty and isinstance(value, str) and not value.strip():
        ctx.problem(field, "must not be empty")
        return value
    message = _bounds_message(value, c)
    if message is None and c.choices is not None:
        options = _choices(c.choices)
        if value not in options:
            message = f"unknown value {show_value(value)}; expected one of {', '.join(map(str, options))}"
    if message is None and c.rule is not None:
        message = c.rule(value)
    if message is not None:
        ctx.problem(field, message)
        return value
    if c.path is not None and isinstance(value, str):
        return resolve_path(value, c.path, field, ctx)
    return value


def _exists(path: Path, kind: str) -> bool:
    """Whether `path` is there (a config must be a file); a name the system cannot even look up is not."""
    try:
        return path.is_file() if kind == CONFIG_PATH else path.exists()
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        return False


def resolve_path(value: str, kind: str, field: str, ctx: CheckContext) -> str:
    """A path setting resolved as the module docstring says; a problem when a file that must exist does not."""
    if kind == MODEL_PATH and value in MODEL_NAMES:
        return value
    origin = ctx.origin(field)
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # `~user` of no such user
        path = Path(value)
    tried: list[Path] = []
    if path.is_absolute():
        tried.append(path)
    elif kind == CONFIG_PATH:
        # the config's own folder (the command line's: the current directory), then the shipped copy
        tried.append((origin.folder or Path.cwd()) / path)
        tried.append(shipped_configs_dir() / value.removeprefix(SHIPPED_PREFIX))
    else:
        if origin.folder is not None:
            tried.append(origin.folder / path)
        # Run products (runs/data, runs/sft_*/adapter) are named from the folder the pipeline runs in, and the
        # shipped configs name them that way, so the working directory is the last place looked.
        tried.append(Path.cwd() / path)
    for candidate in tried:
        if _exists(candidate, kind):
            if kind == MODEL_PATH and not (candidate / "config.json").is_file():
                if ctx.check_files:
                    ctx.problem(field, f"not a model folder (no config.json): {candidate}")
                return value
            found_in_config_folder = origin.folder is not None and candidate == origin.folder / path
            if kind == CONFIG_PATH or found_in_config_folder:
                return str(candidate.resolve())
            return value
    if kind == CONFIG_PATH or ctx.check_files:
        places = ", ".join(dict.fromkeys(str(p) for p in tried))
        what = {MODEL_PATH: "model folder", CONFIG_PATH: "config file"}.get(kind, "file or folder")
        names = f" (or one of {', '.join(MODEL_NAMES)})" if kind == MODEL_PATH else ""
        ctx.problem(field, f"{what} not found{names}: looked for {places}")
    return value


def field_checks(cls: type) -> tuple[dict[str, Check], Callable[[Any, CheckContext], None] | None]:
    checks: dict[str, Check] = {}
    for f in dataclasses.fields(cls):
        declared = f.metadata.get("check") if f.metadata else None
        if isinstance(declared, Check):
            checks[f.name] = declared
    own = getattr(cls, "check_config", None)  # the unbound method: own(instance, ctx)
    return checks, (own if callable(own) else None)
