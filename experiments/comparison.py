"""Comparisons between methods scored on the same cases: collateral damage and next-token KL on neutral prompts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from toolprior.evals.generation import encode_prompts, model_device
from toolprior.generation_batch import GenerationBatch


def collateral(methods: Mapping[str, Mapping[str, Any]], reference: str = "sft") -> dict[str, dict[str, Any]]:
    """Accuracy change of the actions a method did not target (call_tool, answer_directly) against `reference`."""
    out: dict[str, dict[str, Any]] = {}
    ref = methods.get(reference, {}).get("per_action", {})
    for name, m in methods.items():
        if name == reference:
            continue
        row: dict[str, Any] = {}
        for action in ("call_tool", "answer_directly", "clarify"):
            a, b = ref.get(action), m.get("per_action", {}).get(action)
            if a is not None and b is not None:
                row[f"{action}_change"] = round(b["acc"] - a["acc"], 4)
        out[name] = row
    return out


@torch.inference_mode()
def next_token_distributions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    steer: Callable[[GenerationBatch], Any] | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """Log-probabilities of the next token after each prompt ([N, vocab]), optionally under a steering context."""
    device = model_device(model)
    rows = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        ids, mask = encode_prompts(tokenizer, chunk, device)
        batch = GenerationBatch(input_ids=ids, attention_mask=mask, rows=tuple(range(start, start + len(chunk))))
        context = steer(batch) if steer is not None else contextlib.nullcontext()
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with context:
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits[:, -1, :]
        rows.append(torch.log_softmax(logits.float(), dim=-1).cpu())
    return torch.cat(rows)


def mean_kl(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Mean KL(reference || other) over rows of log-probabilities."""
    kl = (reference.exp() * (reference - other)).sum(dim=-1)
    return float(kl.mean())
