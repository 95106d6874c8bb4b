"""End-of-turn token ids of a model and tokenizer: where generation stops and where a turn of a history ends."""

from __future__ import annotations

from typing import Any


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokenizer's eos (when there is a tokenizer) and whatever the model's generation config lists."""
    ids: list[int] = []
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for i in [configured] if isinstance(configured, int) else configured or []:
        if int(i) not in ids:
            ids.append(int(i))
    return ids
