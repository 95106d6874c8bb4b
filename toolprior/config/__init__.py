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

Fields declare their help text and constraints in their metadata: `about(help, **constraints)` (or `check(...)`).
The package, one idea a module: `fields` (declarations), `sources` (where a setting was written), `yaml_io`
(reading YAML and overrides, writing YAML), `typecheck` (values against annotations), `checking` (constraints and
`CheckContext`), `loading` (`load_config`, `build_dataclass`).
"""

from toolprior.config.checking import CheckContext
from toolprior.config.fields import (
    CONFIG_PATH,
    INPUT_PATH,
    MODEL_NAMES,
    MODEL_PATH,
    SHIPPED_PREFIX,
    Check,
    Known,
    about,
    check,
    field_help,
    known,
    max_steps_rule,
    shipped_configs_dir,
)
from toolprior.config.loading import build_dataclass, check_instance, load_config
from toolprior.config.sources import COMMAND_LINE, Origin
from toolprior.config.yaml_io import deep_merge, dump_yaml, parse_overrides, read_yaml, to_plain

__all__ = [
    "COMMAND_LINE",
    "CONFIG_PATH",
    "INPUT_PATH",
    "MODEL_NAMES",
    "MODEL_PATH",
    "SHIPPED_PREFIX",
    "Check",
    "CheckContext",
    "Known",
    "Origin",
    "about",
    "build_dataclass",
    "check",
    "check_instance",
    "deep_merge",
    "dump_yaml",
    "field_help",
    "known",
    "load_config",
    "max_steps_rule",
    "parse_overrides",
    "read_yaml",
    "shipped_configs_dir",
    "to_plain",
]
