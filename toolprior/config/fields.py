"""What a config field declares besides its type: its help text and its constraints (`setting`, `check`), the
path kinds a path field can be, and the sets of known values that live elsewhere in the code (`known`)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Path kinds a field can declare (Check.path).
CONFIG_PATH = "config"  # another config file: the config's folder, then the package's shipped configs
INPUT_PATH = "input"  # a file or folder the run reads: must exist when files are checked
MODEL_PATH = "model"  # "organism", "smollm2", or a local model folder holding config.json
MODEL_NAMES: tuple[str, ...] = ("organism", "smollm2")
SHIPPED_PREFIX = "experiments/configs/"


def shipped_configs_dir() -> Path:
    """The folder of the configs installed with the package (experiments/configs), wherever the command runs."""
    # The package is located, not imported: toolprior sits below experiments in the house.
    spec = importlib.util.find_spec("toolprior.experiments")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("No module named 'toolprior.experiments'")
    return Path(spec.origin).resolve().parent / "configs"


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
    """`choices=known("toolprior.steering.apply", "POSITIONS")`: the values `module.name` holds, read when checked."""
    return Known(module, name)


def about(help: str, **constraints: Any) -> dict[str, Any]:
    """Field metadata with the field's help text (what `--help` and the docs show) and, optionally, its constraints:
    `field(default=32, metadata=about("LoRA rank", gt=0))`."""
    metadata: dict[str, Any] = {"help": help}
    if constraints:
        metadata["check"] = Check(**constraints)
    return metadata


def field_help(cls: type) -> dict[str, str]:
    """Each field of dataclass `cls` with the help text its metadata carries ("" where it has none)."""
    return {f.name: str(f.metadata.get("help", "")) for f in dataclasses.fields(cls)}


def max_steps_rule(value: Any) -> str | None:
    """TrainingArguments' max_steps: -1 (train by epochs) or a positive step count."""
    return None if value == -1 or value > 0 else f"must be -1 (train by epochs) or > 0, got {value}"
