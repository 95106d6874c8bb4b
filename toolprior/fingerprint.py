"""A model's identity (`Fingerprint`): architecture, shape and a hash of config + weights, which every saved vector,
activation file and prepared model folder records and is checked against when loaded."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import torch

from toolprior.decoder_config import text_config
from toolprior.model_protocols import CausalLM


@dataclass(frozen=True)
class Fingerprint:
    """What a saved vector or activation file must match: architecture, shape and a hash of config + weights."""

    id: str
    architecture: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    name_or_path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _canonical_4bit(tensor: torch.Tensor) -> torch.Tensor:
    """The packed NF4 weight in bitsandbytes' storage layout. On CPUs with AVX512-BF16, bitsandbytes repacks a
    Linear4bit weight into a kernel-friendly layout at its first inference forward pass, which would change the
    fingerprint of a model merely because it ran; the inverse is applied to a copy of the quant state, so the
    model is left as it is."""
    state = getattr(tensor, "quant_state", None)
    if state is None or not getattr(state, "packing_format_for_cpu", False):
        return tensor
    # lazy: bitsandbytes is needed only for a 4-bit model
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    return _convert_weight_packed_for_cpu_inverse(tensor.detach(), copy.deepcopy(state))[0]


def _tensor_digest(h: Any, tensor: torch.Tensor, max_elems: int = 65536) -> None:
    if tensor.device.type == "meta":
        h.update(b"meta")
        return
    flat = _canonical_4bit(tensor).detach().reshape(-1)[:max_elems].to("cpu", torch.float32)
    h.update(flat.numpy().tobytes())


def model_fingerprint(model: CausalLM) -> Fingerprint:
    """A stable identity for base weights + adapter. Hashes the config and a sample of every parameter (the first
    64k values of each), so it is cheap on a 4B model yet changes when any weight matrix or LoRA adapter changes.
    Quantised and unquantised loads of the same base differ, because their stored weights differ."""
    cfg = text_config(model)
    h = hashlib.sha256()
    # The folder a model was loaded from is not part of its identity: a copied model folder keeps its vectors.
    identity = {k: v for k, v in cfg.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    h.update(json.dumps(identity, sort_keys=True, default=str).encode())
    for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        _tensor_digest(h, param)
    return Fingerprint(
        id=h.hexdigest()[:16],
        architecture=type(model).__name__,
        hidden_size=int(cfg.hidden_size),
        num_layers=int(cfg.num_hidden_layers),
        vocab_size=int(cfg.vocab_size),
        name_or_path=str(getattr(model.config, "_name_or_path", "")),
    )
