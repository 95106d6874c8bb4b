"""The `toolprior` command line.

Two halves per command group: its options in `toolprior/commands/options/<group>.py` (argparse and name lists only,
`register(subparsers)`), and what it runs in `toolprior/commands/<module>.py` (imports at module top). The parser is
built from the options alone; `main` imports the one module that runs the chosen subcommand, so `toolprior --help`
and a refused option never load torch. Bad input ends as one line per problem on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from toolprior.commands.options import ablate, data, demo, evaluate, model, pairs, probe, steer, study, train
from toolprior.commands.quiet import quiet_libraries
from toolprior.errors import InputError

# Order is the order in `toolprior --help`.
COMMAND_OPTIONS = (data, model, demo, train, evaluate, study, ablate, pairs, probe, steer)

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolprior",
        description="Train tool-using agents with QLoRA, locate the call-tool prior, steer it, compare with SimPO.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for options in COMMAND_OPTIONS:
        options.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `toolprior` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:  # no command, or a command group without its subcommand
        getattr(args, "help_parser", parser).print_help()
        return getattr(args, "help_exit", EXIT_BAD_INPUT)
    module_name, function_name = run
    try:
        if getattr(args, "quiet_libraries", False):
            quiet_libraries()  # before the import: the chatter of importing TRL, bitsandbytes, ... too
        # lazy: only the chosen command's module (and so torch, TRL, ...) loads; --help and refusals stay fast
        module = importlib.import_module(f"toolprior.commands.{module_name}")
        return int(getattr(module, function_name)(args) or 0)
    except InputError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
