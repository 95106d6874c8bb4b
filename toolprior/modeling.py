"""Loading agents (plain, 4-bit NF4, with a PEFT adapter), finding their decoder blocks, and fingerprints.

The embedded default is addressed as `organism` (see `toolprior.organism`); any other string is a local Hugging
Face model folder. Nothing is ever fetched from a hub, and `trust_remote_code` stays off unless asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from toolprior.decoder_config import text_config
from toolprior.errors import InputError, Problem
from toolprior.model_options import DTYPE_NAMES, QUANTIZE
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.model_source import prepare_smollm2
from toolprior.organism import organism_base_path

DTYPES: dict[str, torch.dtype] = dict(zip(DTYPE_NAMES, (torch.float32, torch.bfloat16, torch.float16), strict=True))


def parse_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise InputError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}") from None


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def nf4_config(compute_dtype: torch.dtype = torch.float32, quant_storage: torch.dtype | None = None) -> Any:
    """The QLoRA quantisation: 4-bit NF4 with double quantisation. `quant_storage` matching the model dtype is what
    FSDP-QLoRA needs to shard the packed weights."""

    kwargs: dict[str, Any] = {}
    if quant_storage is not None:
        kwargs["bnb_4bit_quant_storage"] = quant_storage
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        **kwargs,
    )


def resolve_model_path(model: str | os.PathLike[str]) -> Path:
    """`organism` -> the shipped tiny base; `smollm2` -> SmolLM2-135M-Instruct prepared from its wheel; anything
    else must be an existing local folder with a config.json."""
    if str(model) == "organism":
        return organism_base_path()
    if str(model) == "smollm2":  # converted from its wheel the first time (toolprior.model_source)
        return prepare_smollm2()
    path = Path(model)
    if not (path / "config.json").is_file():
        raise InputError(
            Problem(str(path), None, None, "not a model folder (no config.json); models are loaded from local paths")
        )
    return path


def load_tokenizer(model: str | os.PathLike[str], trust_remote_code: bool = False) -> Any:
    """The tokenizer stored with a model (left padding, so batched generation and capture line up at the end).

    A `Tokenizer` (`toolprior.model_protocols`, which mypy checks transformers' tokenizer classes against here),
    returned untyped because training also saves it and adds tokens to it."""

    tokenizer: Tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model), trust_remote_code=trust_remote_code)
    return _left_padded(tokenizer)


def _left_padded(tokenizer: Any) -> Any:
    """`tokenizer` padding on the left (batched generation and capture line up at the end), eos as pad if none."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    model: str | os.PathLike[str],
    *,
    quantize: str = "none",
    adapter: str | os.PathLike[str] | None = None,
    dtype: str = "float32",
    device: str | None = None,
    trust_remote_code: bool = False,
    trainable_adapter: bool = False,
    quant_storage: str | None = None,
) -> Any:
    """Load a causal LM for inference or training.

    quantize: "none" or "nf4" (bitsandbytes 4-bit, double quant; runs on CPU here and on CUDA).
    adapter: a PEFT adapter folder applied on top (trainable only if `trainable_adapter`).
    quant_storage: dtype the packed NF4 weights are stored in ("bfloat16" for FSDP-QLoRA, which shards them).

    A `CausalLM` (`toolprior.model_protocols`, which mypy checks transformers' and PEFT's model classes against
    here), returned untyped because training also hands it to what wants those classes (get_peft_model, trainers).
    """

    path = resolve_model_path(model)
    torch_dtype = parse_dtype(dtype)
    device = device or default_device()
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if quantize == "nf4":
        storage = parse_dtype(quant_storage) if quant_storage else None
        kwargs["quantization_config"] = nf4_config(compute_dtype=torch_dtype, quant_storage=storage)
        kwargs["device_map"] = {"": device}
    elif quantize not in QUANTIZE:
        raise InputError(f"unknown quantize {quantize!r}; expected one of {', '.join(QUANTIZE)}")
    base = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantize == "none":
        # transformers declares `to` with @wraps(nn.Module.to), whose type takes the model as its first argument
        base = base.to(device)  # type: ignore[arg-type]
    loaded: CausalLM = base
    if adapter is not None:
        adapter_path = Path(adapter)
        if not (adapter_path / "adapter_config.json").is_file():
            raise InputError(
                Problem(str(adapter_path), None, None, "not a PEFT adapter folder (no adapter_config.json)")
            )
        loaded = PeftModel.from_pretrained(base, adapter_path, is_trainable=trainable_adapter)
    loaded.eval()
    return loaded


def load_agent(
    model: str | os.PathLike[str],
    adapter: str | os.PathLike[str] | None = None,
    *,
    quantize: str = "none",
    dtype: str = "float32",
    device: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[CausalLM, Tokenizer]:
    """(model, tokenizer) of an agent: the base model with its adapter on top (see `load_model`). The tokenizer
    saved with the adapter wins when there is one (fine-tuning may have added the format tokens)."""
    loaded = load_model(
        model, quantize=quantize, adapter=adapter, dtype=dtype, device=device, trust_remote_code=trust_remote_code
    )
    if adapter is None or not (Path(adapter) / "tokenizer_config.json").is_file():
        return loaded, load_tokenizer(model, trust_remote_code=trust_remote_code)

    return loaded, _left_padded(AutoTokenizer.from_pretrained(adapter, trust_remote_code=trust_remote_code))


def decoder_layers(model: CausalLM) -> nn.ModuleList:
    """The ModuleList of decoder blocks, wherever the architecture keeps it (model.layers, language_model.layers,
    transformer.h, through PEFT wrappers). Found by shape, not by a table of names, so new architectures work."""
    n_layers = getattr(text_config(model), "num_hidden_layers", None)
    best: tuple[int, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in ("layers", "h", "blocks", "layer"):
            continue
        if n_layers is not None and len(module) != n_layers:
            continue
        # Prefer the shallowest match: vision towers and audio encoders sit deeper or elsewhere.
        depth = name.count(".")
        if "vision" in name or "audio" in name:
            continue
        if best is None or depth < best[0]:
            best = (depth, module)
    if best is None:
        raise ValueError(f"could not find the decoder blocks of {type(model).__name__}")
    return best[1]
