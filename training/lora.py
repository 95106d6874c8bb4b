"""The LoRA adapter of an SFT run from its `lora` section: PEFT's LoraConfig, the embedding rows trained besides
LoRA (trainable tokens), and the one PEFT/TRL seam that needs mending (`expose_head_bias`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from toolprior.errors import InputError, Problem
from toolprior.tokenizer import FORMAT_TOKENS
from toolprior.training.sections import LoraSection


def trainable_token_ids(section: LoraSection, tokenizer: Any) -> list[int] | None:
    """The ids of `section.trainable_tokens` in `tokenizer`; each must be a single token of its vocabulary."""
    if section.trainable_tokens is None:
        return None
    tokens = list(FORMAT_TOKENS) if section.trainable_tokens == "format" else list(section.trainable_tokens)
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise InputError(
            Problem("<sft config>", None, "lora.trainable_tokens", f"not single tokens of the tokenizer: {missing}")
        )
    return [int(vocab[t]) for t in tokens]


def lora_config(section: LoraSection, tokenizer: Any = None) -> Any:
    """PEFT's LoraConfig for `section`; with a tokenizer, the trainable tokens' ids too."""
    from peft import LoraConfig  # lazy: PEFT is heavy; a config refusal never needs it

    token_ids = trainable_token_ids(section, tokenizer) if tokenizer is not None else None
    extra: dict[str, Any] = {}
    if token_ids:
        extra = {"trainable_token_indices": token_ids}
        if "ensure_weight_tying" in LoraConfig.__dataclass_fields__:  # newer PEFT; older ones tie trainable tokens
            extra["ensure_weight_tying"] = True
    return LoraConfig(
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=section.target_modules,
        exclude_modules=section.exclude_modules,
        task_type="CAUSAL_LM",
        **extra,
    )


def expose_head_bias(model: Any) -> None:
    """Let TRL's fused LM head read `lm_head.bias` through PEFT's trainable-token wrapper.

    TRL (1.x) computes the loss from `lm_head.weight` and `lm_head.bias` directly, without building the logits. On
    a model with tied embeddings, trainable tokens wrap the LM head too; the wrapper gives the merged `weight` (the
    trained rows in place, so gradients reach them) but raises on `bias`. A bias-free head's bias is None."""
    from peft.utils.other import TrainableTokensWrapper  # lazy: PEFT is heavy

    for module in model.modules():
        if isinstance(module, TrainableTokensWrapper) and "bias" not in module.__dict__:
            base = module.token_adapter.base_layer
            if isinstance(base, nn.Linear) and base.bias is None:
                module.bias = None
