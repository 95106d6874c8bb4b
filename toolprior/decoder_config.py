"""The part of a model's config that describes its decoder stack (multimodal models keep it under `text_config`)."""

from __future__ import annotations

from typing import Any

from toolprior.model_protocols import CausalLM


def text_config(model: CausalLM) -> Any:
    """The config that describes the decoder stack (multimodal models keep it under `text_config`)."""
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError("model has no config")
    get_text = getattr(config, "get_text_config", None)
    return get_text() if callable(get_text) else config
