"""YAML configs that fill dataclasses, with `--set section.field=value` overrides from the command line.

A config is checked completely when it is loaded, before anything runs: unknown keys, types (list elements and
dict values included), and the constraints each field declares (`check(...)` in its metadata: ranges, known
values, files that must exist), then each dataclass's own `check_config(ctx)` hook for rules that span fields.
Every problem is one `file:line: field: message` (exit 2 from the CLI), all of them at once, so a typo in a config
never silently falls back to a default and never surfaces hours later as a traceback.

The schema is the dataclasses themselves (`typing.get_type_hints`, `dataclasses.fields`); constraints live next to
the field they constrain. Relative paths in a config file resolve against that file's folder; config files named
the way the shipped ones are (`experiments/configs/<name>.yaml`, or a bare `<name>.yaml`) fall back to the copies
installed with the package, so a command works from any folder.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from toolprior.errors import InputError, Problem

T = TypeVar("T")

# Path kinds a field can declare (Check.path).
CONFIG_PATH = "config"  # another config file: the config's folder, then the package's shipped configs
INPUT_PATH = "input"  # a file or folder the run reads: must exist when files are checked
MODEL_PATH = "model"  # "organism", "smollm2", or a local model folder holding config.json
MODEL_NAMES: tuple[str, ...] = ("organism", "smollm2")
SHIPPED_PREFIX = "experiments/configs/"


def shipped_configs_dir() -> Path:
    """The folder of the configs installed with the package (experiments/configs), wherever the command runs."""
    import experiments

    return Path(experiments.__file__).resolve().parent / "configs"


# ------------------------------------------------------------------------------------------------ declarations


@dataclass(frozen=True)
class Known:
    """A set of known values defined elsewhere in the code (`module.NAME`), imported only when a value is checked,
    so loading a config never pays for torch unless a field needs a set that lives beside torch code."""

    module: str
    name: str

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(importlib.import_module(self.module), self.name))


@dataclass(frozen=True)
class Check:
    """What a config field must hold beyond its type. Applied to the value, or to each element of a list value
    (named `field[i]`); None values pass (the type says whether None is allowed).

    gt/ge/lt/le: bounds of a number. choices: the known values (a tuple, or `Known` for a set defined in code).
    nonempty: a list or string that may not be empty. path: CONFIG_PATH, INPUT_PATH or MODEL_PATH (see the module
    docstring). rule: a function returning a message when the value is wrong, None when it is fine; with `whole`
    it sees a list value as one value instead of element by element."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | Known | None = None
    nonempty: bool = False
    path: str | None = None
    rule: Callable[[Any], str | None] | None = None
    whole: bool = False


def check(**constraints: Any) -> dict[str, Check]:
    """Field metadata declaring constraints: `field(default=32, metadata=check(gt=0))`."""
    return {"check": Check(**constraints)}


def known(module: str, name: str) -> Known:
    """`choices=known("steering.apply", "POSITIONS")`: the values `module.name` holds, read when checked."""
    return Known(module, name)


def max_steps_rule(value: Any) -> str | None:
    """TrainingArguments' max_steps: -1 (train by epochs) or a positive step count."""
    return None if value == -1 or value > 0 else f"must be -1 (train by epochs) or > 0, got {value}"


# ------------------------------------------------------------------------------------------------ where things are


@dataclass(frozen=True)
class Origin:
    """Where a setting was written: a config file and line, or an override (`--set`, or one entry of a list of
    overrides inside another config, then `label` names that entry). `folder`: what relative paths in it resolve
    against (None: the current directory, as for a path typed on the command line)."""

    file: str
    line: int | None
    label: str | None = None
    folder: Path | None = None

    def problem(self, field: str, message: str) -> Problem:
        if self.label:
            return Problem(self.file, self.line, self.label, f"{field}: {message}")
        return Problem(self.file, self.line, field, message)


COMMAND_LINE = Origin("--set", None)


class _Sources:
    """Dotted setting -> Origin. A setting with no entry of its own takes its parent's (a list element its list's,
    a field its section's), and the root's is the config file."""

    def __init__(self, root: Origin):
        self.root = root
        self.map: dict[str, Origin] = {}

    def of(self, dotted: str) -> Origin:
        key = dotted
        while key:
            if key in self.map:
                return self.map[key]
            key = _parent(key)
        return self.root

    def replace_under(self, dotted: str, origin: Origin) -> None:
        """`dotted` (and everything under it) now comes from `origin`."""
        for key in [k for k in self.map if k == dotted or k.startswith((dotted + ".", dotted + "["))]:
            del self.map[key]
        self.map[dotted] = origin


def _parent(dotted: str) -> str:
    if dotted.endswith("]") and "[" in dotted:
        return dotted[: dotted.rindex("[")]
    return dotted.rpartition(".")[0]


def _line_index(node: yaml.Node | None, prefix: str = "", seen: set[int] | None = None) -> dict[str, int]:
    """Map dotted keys (and `key[i]` list elements) to 1-based line numbers from a composed YAML node."""
    lines: dict[str, int] = {}
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:  # an alias can make the node graph cyclic
        return lines
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}" if isinstance(key_node, yaml.ScalarNode) else f"{prefix}?"
            lines.setdefault(key, key_node.start_mark.line + 1)
            for k, v in _line_index(value_node, key + ".", seen).items():
                lines.setdefault(k, v)
    elif isinstance(node, yaml.SequenceNode) and prefix:
        base = prefix[:-1]
        for i, item in enumerate(node.value):
            lines.setdefault(f"{base}[{i}]", item.start_mark.line + 1)
            inner = _line_index(item, f"{base}[{i}].", seen)
            for k, v in inner.items():
                lines.setdefault(k, v)
    return lines


# ------------------------------------------------------------------------------------------------ reading


def _safe_load(text: str) -> Any:
    """yaml.safe_load, with the few non-YAMLError failures (an impossible date such as 2020-13-01, nesting too
    deep) turned into YAMLError so every caller reports one line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        raise yaml.YAMLError(f"{type(err).__name__}: {err}") from None


def _yaml_problem(err: BaseException) -> str:
    """The gist of a YAML error on one line (PyYAML's own text adds the position on further lines)."""
    text = str(getattr(err, "problem", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_yaml(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse a YAML mapping; returns (data, dotted-key -> line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(Problem(str(path), None, None, "file not found")) from None
    except (UnicodeDecodeError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        raise InputError(Problem(str(path), None, None, f"cannot read: {err}")) from None
    try:
        node = yaml.compose(text)
        data = _safe_load(text)
    except (yaml.YAMLError, RecursionError) as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(Problem(str(path), line, None, f"invalid YAML: {_yaml_problem(err)}")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(Problem(str(path), 1, None, "expected a mapping of settings"))
    try:
        lines = _line_index(node)
    except RecursionError:
        lines = {}
    return data, lines


def _parse_override(item: Any, origin: Origin) -> tuple[list[str], Any]:
    """`"a.b=1"` -> (["a", "b"], 1), the value read as YAML; InputError naming the override otherwise."""

    def bad(message: str) -> InputError:
        label = origin.label or _show(item)
        return InputError(Problem(origin.file, origin.line, label, message))

    if not isinstance(item, str) or "=" not in item:
        raise bad("expected KEY=VALUE")
    key, raw = item.split("=", 1)
    parts = [p.strip() for p in key.split(".")]
    if not all(parts):
        raise bad("expected KEY=VALUE with a dotted KEY such as lora.r")
    try:
        value = _safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        raise bad(f"invalid YAML value: {_yaml_problem(err)}") from None
    return parts, value


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`["training.learning_rate=1e-4", "lora.r=8"]` -> nested dict with YAML-typed values."""
    out: dict[str, Any] = {}
    for item in items:
        parts, value = _parse_override(item, COMMAND_LINE)
        _set_path(out, parts, value)
    return out


def _set_path(out: dict[str, Any], parts: list[str], value: Any) -> None:
    cursor = out
    for part in parts[:-1]:
        nxt = cursor.get(part)
        if not isinstance(nxt, dict):  # a later `a.b=1` after `a=2`: the later override wins, as on a command line
            nxt = cursor[part] = {}
        cursor = nxt
    cursor[parts[-1]] = value


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `base`; nested mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _leaves(value: Any, prefix: str) -> list[str]:
    """Dotted paths of the leaves of an override's value (a mapping merges into the config key by key)."""
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{prefix}.{k}")]
    return [prefix]


# ------------------------------------------------------------------------------------------------ types


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) is not None or isinstance(hint, types.UnionType):
        return str(hint).replace("typing.", "").replace("NoneType", "None")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_list(hint: Any) -> bool:
    return typing.get_origin(hint) in (list, tuple, Sequence) or hint in (list, tuple)


def _is_dict(hint: Any) -> bool:
    return typing.get_origin(hint) is dict or hint is dict


def _shape_fits(value: Any, hint: Any) -> bool:
    """Whether `value` is the kind of thing `hint` describes (before looking inside it), to pick a union's arm."""
    if hint is Any or hint is object or typing.get_origin(hint) is typing.Literal:
        return True
    if hint is type(None):
        return value is None
    if _is_list(hint):
        return isinstance(value, (list, tuple))
    if _is_dict(hint) or dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    if hint is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or isinstance(value, str)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _as_float(value: Any) -> Any:
    """YAML 1.1 reads `1e-2` (no dot) as a string; accept it where the field wants a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _convert(value: Any, hint: Any, where: str, out: list[tuple[str, str]]) -> Any:
    """`value` checked against `hint` (elements of lists and values of dicts too); appends (field, message) for each
    mismatch and returns the value with YAML's string spellings of floats read as floats."""
    if hint is Any or hint is object:
        return value
    if _is_union(hint):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None) and _shape_fits(value, a)]
        for arm in candidates:
            trial: list[tuple[str, str]] = []
            converted = _convert(value, arm, where, trial)
            if not trial:
                return converted
        if len(candidates) == 1:  # one arm has the value's shape: its precise message (e.g. which element)
            return _convert(value, candidates[0], where, out)
        out.append((where, f"expected {_hint_name(hint)}, got {_show(value)}"))
        return value
    if hint is type(None):
        if value is not None:
            out.append((where, f"expected null, got {_show(value)}"))
        return value
    if typing.get_origin(hint) is typing.Literal:
        if value not in typing.get_args(hint):
            out.append((where, f"expected one of {', '.join(map(str, typing.get_args(hint)))}, got {_show(value)}"))
        return value
    if _is_list(hint):
        if not isinstance(value, (list, tuple)):
            out.append((where, f"expected a list ({_hint_name(hint)}), got {_show(value)}"))
            return value
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        element = args[0] if len(args) == 1 else Any
        return [_convert(v, element, f"{where}[{i}]", out) for i, v in enumerate(value)]
    if _is_dict(hint):
        if not isinstance(value, dict):
            out.append((where, f"expected a mapping ({_hint_name(hint)}), got {_show(value)}"))
            return value
        key_hint, value_hint = typing.get_args(hint) or (Any, Any)
        converted: dict[Any, Any] = {}
        for k, v in value.items():
            if key_hint is str and not isinstance(k, str):
                out.append((f"{where}.{k}", f"expected a text key, got {_show(k)}"))
            converted[k] = _convert(v, value_hint, f"{where}.{k}", out)
        return converted
    if hint is float:
        value = _as_float(value)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out.append((where, f"expected float, got {_show(value)}"))
        elif not math.isfinite(value):  # nan and inf are never a meaningful setting; they only poison a run
            out.append((where, f"expected a finite number, got {value}"))
        return value
    if hint is int:
        if not (isinstance(value, int) and not isinstance(value, bool)):
            out.append((where, f"expected int, got {_show(value)}"))
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        out.append((where, f"expected {_hint_name(hint)}, got {_show(value)}"))
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------------------ checking


@dataclass
class CheckContext:
    """What a `check_config(self, ctx)` hook (and a field's Check) sees: where each setting came from, whether
    files are checked, and where to record problems. `prefix` is the dotted path of the dataclass being checked."""

    file: str
    sources: _Sources
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
        return _resolve_path(value, kind, field, self)


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


def _check_value(value: Any, c: Check, field: str, ctx: CheckContext) -> Any:
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
        return [_check_value(v, c, f"{field}[{i}]", ctx) for i, v in enumerate(value)]
    if c.nonempty and isinstance(value, str) and not value.strip():
        ctx.problem(field, "must not be empty")
        return value
    message = _bounds_message(value, c)
    if message is None and c.choices is not None:
        options = _choices(c.choices)
        if value not in options:
            message = f"unknown value {_show(value)}; expected one of {', '.join(map(str, options))}"
    if message is None and c.rule is not None:
        message = c.rule(value)
    if message is not None:
        ctx.problem(field, message)
        return value
    if c.path is not None and isinstance(value, str):
        return _resolve_path(value, c.path, field, ctx)
    return value


def _exists(path: Path, kind: str) -> bool:
    """Whether `path` is there (a config must be a file); a name the system cannot even look up is not."""
    try:
        return path.is_file() if kind == CONFIG_PATH else path.exists()
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        return False


def _resolve_path(value: str, kind: str, field: str, ctx: CheckContext) -> str:
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


def _field_checks(cls: type) -> tuple[dict[str, Check], Callable[[Any, CheckContext], None] | None]:
    checks: dict[str, Check] = {}
    for f in dataclasses.fields(cls):
        declared = f.metadata.get("check") if f.metadata else None
        if isinstance(declared, Check):
            checks[f.name] = declared
    own = getattr(cls, "check_config", None)  # the unbound method: own(instance, ctx)
    return checks, (own if callable(own) else None)


def build_dataclass(
    cls: type[T],
    data: dict[str, Any],
    *,
    file: str = "<config>",
    lines: dict[str, int] | None = None,
    prefix: str = "",
    sources: _Sources | None = None,
    check_files: bool = False,
) -> T:
    """Fill dataclass `cls` (nested dataclasses allowed) from `data`, checking everything the module docstring
    lists; raises InputError with every problem found."""
    if sources is None:
        folder = Path(file).resolve().parent if Path(file).suffix in (".yaml", ".yml") else None
        sources = _Sources(Origin(file, None, folder=folder))
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
        ctx.problem("", f"expected a mapping of settings, got {_show(data)}")
        return None
    start = len(ctx.problems)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    checks, hook = _field_checks(cls)
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
        converted = _convert(value, hint, key, errors)
        for field, message in errors:
            ctx.problem(field, message)
        if errors:
            ctx.rejected.add(ctx.dotted(key))
            continue
        if hint is float and isinstance(converted, int):
            converted = float(converted)
        before = len(ctx.problems)
        if key in checks:
            converted = _check_value(converted, checks[key], key, ctx)
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
            resolved = _check_value(value, c, key, ctx)
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
    sources = _Sources(Origin(file, None, folder=folder))
    for key, line in lines.items():
        sources.map[key] = Origin(file, line, folder=folder)
    changes: dict[str, Any] = {}
    unreadable: list[Problem] = []
    for i, item in enumerate(overrides):
        origin = (origins[i] if origins is not None and i < len(origins) else None) or COMMAND_LINE
        try:
            parts, value = _parse_override(item, origin)
        except InputError as err:  # keep going: the other overrides' problems are reported with it
            unreadable.extend(err.problems)
            continue
        _set_path(changes, parts, value)
        for leaf in _leaves(value, ".".join(parts)):
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


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain dicts/lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_plain(obj), sort_keys=False, allow_unicode=True)


__all__ = [
    "CONFIG_PATH",
    "INPUT_PATH",
    "MODEL_PATH",
    "Check",
    "CheckContext",
    "Known",
    "Origin",
    "build_dataclass",
    "check",
    "check_instance",
    "deep_merge",
    "dump_yaml",
    "known",
    "load_config",
    "max_steps_rule",
    "parse_overrides",
    "read_yaml",
    "shipped_configs_dir",
    "to_plain",
]
