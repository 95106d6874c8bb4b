"""Option types and groups that several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path


def int_list(text: str) -> list[int]:
    """ "2,3" -> [2, 3] (argparse type; one clear error on anything else)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer numbers like 2,3; got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected layer numbers >= 0 like 2,3; got {text!r}")
    return values


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--model, --adapter, --quantize, --dtype and --trust-remote-code: the agent a command loads."""
    parser.add_argument("--model", required=True, help="local model folder, or 'organism' for the embedded base")
    parser.add_argument("--adapter", type=Path, default=None, help="PEFT adapter folder applied on top")
    parser.add_argument("--quantize", choices=["none", "nf4"], default="none")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--trust-remote-code", action="store_true")


def print_help_and_exit(parser: argparse.ArgumentParser, code: int) -> None:
    """A command group run without its subcommand prints its help and exits with `code`."""
    parser.set_defaults(help_parser=parser, help_exit=code)
