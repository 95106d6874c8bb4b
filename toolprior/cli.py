"""The `toolprior` command line.

Each command group lives in its own module under `toolprior/commands/` and exposes `register(subparsers)`.
Command modules import only argparse at module level and pull in torch, TRL and friends inside the command, so
`toolprior --help` is instant. Bad input ends as one line per problem on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from toolprior.errors import InputError

# Order is the order in `toolprior --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "toolprior.commands.data",
    "toolprior.commands.model",
    "toolprior.commands.demo",
    "toolprior.commands.train",
    "toolprior.commands.evaluate",
    "toolprior.commands.study",
    "toolprior.commands.ablate",
    "toolprior.commands.pairs",
    "toolprior.commands.probe",
    "toolprior.commands.steer",
)

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolprior",
        description="Train tool-using agents with QLoRA, locate the call-tool prior, steer it, compare with SimPO.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `toolprior` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT if args.command is None else 0
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
