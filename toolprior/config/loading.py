"""Filling a config dataclass from defaults, a YAML file and overrides, checked completely (`load_config`,
`build_dataclass`, `check_instance`)."""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from toolprior.config.checking import CheckContext, check_value, field_checks
from toolprior.config.fields import CONFIG_PATH
from toolprior.config.sources import COMMAND_LINE, Origin, Sources
from toolprior.config.typecheck import convert_value, show_value
from toolprior.config.yaml_io import deep_merge, leaves, parse_override, read_yaml, set_path, to_plain
from toolprior.errors import InputError, Problem

T = TypeVar("T")


def build_dataclass(
    cls: type[T],
    data: dict[str, Any],
    *,
    file: str = "<config>",
    lines: dict[str, int] | None = None,
    prefix: str = "",
    sources: Sources | None = None,
    check_files: bool = False,
) -> T:
    """Fill dataclass `cls` (nested dataclasses allowed) from `data`, checking everything the module docstring
    lists; raises InputError with every problem found."""
    if sources is None:
        folder = Path(file).resolve().parent if Path(file).suffix in (".yaml", ".yml") else None
        sources = Sources(Origin(file, None, folder=folder))
        for key, line in (lines or {}).items():
            sources.map[key] = Origin(file, line, folder=folder)
    ctx = CheckContext(file=file, sources=sources, problems=[], check_files=check_files, prefix=prefix)
    try:
        result = _build(cls, data, ctx, default=None)
    except RecursionError:  # a self-referencing YAML alias inside a free-form section
        raise InputError(Problem(file, None, prefix.rstrip(".") or None, "settings nest too deep")) from None
    if ctx.problems:
        raise InputError(_unique(ctx.problems))
    return result


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _build(cls: Any, data: Any, ctx: CheckContext, default: Any) -> Any:
    if not isinstance(data, dict):
        ctx.problem("", f"expected a mapping of settings, got {show_value(data)}")
        return None
    start = len(ctx.problems)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    checks, hook = field_checks(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            known_names = ", ".join(sorted(fields))
            ctx.problem(str(key), f"unknown setting (known: {known_names})")
            continue
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            # A section given in part keeps the rest of the field's own default (not the section class's).
            nested_default = getattr(default, key) if default is not None else _field_default(fields[key])
            if not dataclasses.is_dataclass(nested_default):
                nested_default = None
            built = _build(hint, value, ctx.at(f"{ctx.prefix}{key}."), default=nested_default)
            if built is not None:
                kwargs[key] = built
            else:
                ctx.rejected.add(ctx.dotted(key))
            continue
        errors: list[tuple[str, str]] = []
        converted = convert_value(value, hint, key, errors)
        for field, message in errors:
            ctx.problem(field, message)
        if errors:
            ctx.rejected.add(ctx.dotted(key))
            continue
        if hint is float and isinstance(converted, int):
            converted = float(converted)
        before = len(ctx.problems)
        if key in checks:
            converted = check_value(converted, checks[key], key, ctx)
        if len(ctx.problems) == before:
            kwargs[key] = converted
        else:
            ctx.rejected.add(ctx.dotted(key))
    # Defaults are checked too where they name a path: a default config file must be found wherever the command
    # runs, and a default input file must exist like a given one. Sections left out are walked for the same reason.
    for key, f in fields.items():
        if key in data:
            continue
        c = checks.get(key)
        value = getattr(default, key) if default is not None else _field_default(f)
        if value is dataclasses.MISSING:
            continue
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and dataclasses.is_dataclass(value):
            built = _build(hint, {}, ctx.at(f"{ctx.prefix}{key}."), default=value)
            if built is not None:
                kwargs[key] = built
        elif c is not None and c.path is not None and (c.path == CONFIG_PATH or ctx.check_files):
            before = len(ctx.problems)
            resolved = check_value(value, c, key, ctx)
            if len(ctx.problems) == before:
                kwargs[key] = resolved
    # A bad setting is left out (its default stands in), so the rules across fields still run on the rest and
    # every problem is reported in one go; the instance itself is never returned then.
    try:
        instance = dataclasses.replace(default, **kwargs) if default is not None else cls(**kwargs)
    except (TypeError, ValueError) as err:
        ctx.problem("", f"cannot build {cls.__name__}: {err}")
        return None
    if hook is not None:
        hook(instance, ctx)
    return None if len(ctx.problems) > start else instance


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def load_config(
    cls: type[T],
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str] = (),
    defaults: dict[str, Any] | None = None,
    *,
    check_files: bool = False,
    origins: Sequence[Origin | None] | None = None,
) -> T:
    """Defaults, then the YAML file, then `--set` overrides, into one dataclass, checked completely.

    check_files: also require the files and folders the config reads (adapters, case files, pairs) to exist; the
    commands turn it on, a caller preparing a config for a later stage leaves it off. origins: where each override
    was written (default: the command line)."""
    data: dict[str, Any] = dict(defaults or {})
    file = "<defaults>"
    folder: Path | None = None
    lines: dict[str, int] = {}
    if path is not None:
        file_data, lines = read_yaml(path)
        data = deep_merge(data, file_data)
        file = str(path)
        folder = Path(path).resolve().parent
    sources = Sources(Origin(file, None, folder=folder))
    for key, line in lines.items():
        sources.map[key] = Origin(file, line, folder=folder)
    changes: dict[str, Any] = {}
    unreadable: list[Problem] = []
    for i, item in enumerate(overrides):
        origin = (origins[i] if origins is not None and i < len(origins) else None) or COMMAND_LINE
        try:
            parts, value = parse_override(item, origin)
        except InputError as err:  # keep going: the other overrides' problems are reported with it
            unreadable.extend(err.problems)
            continue
        set_path(changes, parts, value)
        for leaf in leaves(value, ".".join(parts)):
            sources.replace_under(leaf, origin)
        for i in range(1, len(parts)):  # a section the override creates is the override's too
            sources.map.setdefault(".".join(parts[:i]), origin)
    data = deep_merge(data, changes)
    try:
        config = build_dataclass(cls, data, file=file, sources=sources, check_files=check_files)
    except InputError as err:
        raise InputError(unreadable + err.problems) from None
    if unreadable:
        raise InputError(unreadable)
    return config


def check_instance(config: Any, file: str = "<config>", *, check_files: bool = False) -> None:
    """Check an already-built config dataclass (one made in code, not loaded) the way load_config checks a file."""
    build_dataclass(type(config), to_plain(config), file=file, check_files=check_files)
