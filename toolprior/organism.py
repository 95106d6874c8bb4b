"""The embedded default agent: a tiny Qwen3-architecture decoder pre-trained by `toolprior train base`.

The shipped base lives in `toolprior/assets/organism_base/` (safetensors + tokenizer, 2.9 MB). It was made, and is
rebuilt (same recipe and seed; bytes may differ across CPUs and torch builds), by:

    toolprior train base --out toolprior/assets/organism_base --seed 0
"""

from __future__ import annotations

from pathlib import Path

from toolprior.errors import InputError

ASSETS = Path(__file__).resolve().parent / "assets"
REBUILD_COMMAND = "toolprior train base --out toolprior/assets/organism_base --seed 0"


def organism_base_path() -> Path:
    """Folder of the shipped tiny base model; a clear error if it has not been built."""
    path = ASSETS / "organism_base"
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: the embedded base model is missing; rebuild it with `{REBUILD_COMMAND}`")
    return path
