"""Whether a model's attention is global softmax attention over a plain KV cache: the models whose cache can grow in
place (`evals.growing_cache`) and whose rows can share one prefilled prefix (`evals.shared_prefix_attention`)."""

from __future__ import annotations

from typing import Any


def supports_shared_prefix(model: Any) -> bool:
    """Whether every attention layer is global softmax attention reading a plain KV cache through transformers'
    attention interface (no sliding window, no logit soft-capping, no attention-sink or hybrid layers)."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
    layer_types = getattr(text_config, "layer_types", None) or []
    if getattr(text_config, "attn_logit_softcapping", None) or any(t != "full_attention" for t in layer_types):
        return False
    attentions = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "o_proj")]
    if not attentions:
        return False
    return all(getattr(m, "sliding_window", None) is None and not hasattr(m, "sinks") for m in attentions)
