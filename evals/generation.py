"""Batched greedy generation with left padding and a KV cache, over any Hugging Face causal LM (plain, 4-bit,
PEFT-adapted), with an optional steering context that sees where each row's real tokens are.

Prompts are sorted by length before batching (less padding), and outputs come back in the caller's order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from toolprior.evals.fork_at_decision import forked_generate, repeats_a_row
from toolprior.evals.growing_cache import growing_cache
from toolprior.evals.shared_prefill import shared_prefill
from toolprior.evals.shared_prefix_attention import attending_shared_prefix
from toolprior.forward_contract import cache_keyword
from toolprior.generation_batch import GenerationBatch, SteeringFactory
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.stop_tokens import stop_token_ids


def model_device(model: Any) -> torch.device:
    return next(p.device for p in model.parameters() if p.device.type != "meta")


def decode_new_tokens(tokenizer: Any, new_ids: torch.Tensor | list[int], stops: Sequence[int]) -> str:
    """Decode one row's generated ids up to (not including) the first stop token; format tags are kept."""
    ids = new_ids.tolist() if isinstance(new_ids, torch.Tensor) else list(new_ids)
    for i, token in enumerate(ids):
        if token in stops:
            ids = ids[:i]
            break
    return tokenizer.decode(ids, skip_special_tokens=False)


def encode_prompts(tokenizer: Any, prompts: Sequence[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and mask; prompts already carry the chat template's own special tokens."""
    if tokenizer.padding_side != "left":
        raise ValueError("batched generation needs tokenizer.padding_side == 'left'")
    enc = tokenizer(list(prompts), add_special_tokens=False, padding=True, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


@torch.inference_mode()
def generate(
    model: CausalLM,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 192,
    batch_size: int = 32,
    steer: SteeringFactory | None = None,
    progress: bool = False,
    desc: str = "generate",
    min_new_tokens: int | None = None,
    share_prompts: bool = True,
) -> list[str]:
    """Greedy completions of `prompts`, in order. `steer(batch)` returns a context manager entered around each
    batch's generation (a steering vector's hooks, say). `min_new_tokens` forces equal lengths (for timing).
    `share_prompts`: rows of a batch that repeat a prompt share work the steering cannot change: one prefill of the
    prompt (evals.shared_prefill) and, steering from the decision point, one think block (evals.fork_at_decision).
    The outputs are the same either way."""

    device = model_device(model)
    stops = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]

    def greedy(
        ids: torch.Tensor, mask: torch.Tensor, budget: int, eos: list[int], context: Any, cache: Any
    ) -> torch.Tensor:
        cache = cache if cache is not None else growing_cache(model)  # in-place KV writes where the model allows
        with context, attending_shared_prefix(model, cache):
            generated = model.generate(
                **{cache_keyword(model): cache},
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=budget,
                min_new_tokens=min_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=eos,
                pad_token_id=pad_id,
                use_cache=True,
            )
        return generated[:, ids.shape[1] :]

    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    # equal prompts side by side, so the copies of a prompt (one per alpha in a sweep) share a batch
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], prompts[i], i))
    outputs: list[str] = [""] * len(prompts)
    batches = _batches(order, prompts, batch_size, keep_copies_together=share_prompts)
    for rows in tqdm(batches, desc=desc, disable=not progress, total=len(batches)):
        input_ids, attention_mask = encode_prompts(tokenizer, [prompts[i] for i in rows], device)
        batch = GenerationBatch(input_ids=input_ids, attention_mask=attention_mask, rows=rows)
        context = steer(batch) if steer is not None else contextlib.nullcontext()
        shareable = share_prompts and min_new_tokens is None and repeats_a_row(input_ids, attention_mask)
        fork = getattr(context, "fork_token", lambda: None)() if shareable and steer is not None else None
        # copies write one think, then fork at </think> (evals.fork_at_decision); a fork needs a steer
        if fork is not None and steer is not None:
            new_rows = forked_generate(
                batch, steer, fork, max_new_tokens=max_new_tokens, stops=stops, pad_id=pad_id, greedy=greedy,
                model=model,
            )  # fmt: skip
        else:
            untouched = steer is None or bool(getattr(context, "prefix_untouched", lambda: False)())
            cache = shared_prefill(model, input_ids, attention_mask) if shareable and untouched else None
            new_rows = greedy(input_ids, attention_mask, max_new_tokens, stops, context, cache).tolist()
        for j, row in enumerate(rows):
            outputs[row] = decode_new_tokens(tokenizer, new_rows[j], stops)
    return outputs


def _batches(
    order: Sequence[int], prompts: Sequence[str], batch_size: int, keep_copies_together: bool
) -> list[tuple[int, ...]]:
    """Rows in `order`, cut into batches of at most `batch_size`. With `keep_copies_together`, a batch ends only
    where a run of equal prompts ends (unless one run alone exceeds `batch_size`), so the copies of a prompt share
    one batch and its work (a sweep's alphas of one case stay together)."""
    if not keep_copies_together:
        return [tuple(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    runs: list[list[int]] = []
    for row in order:
        if runs and prompts[runs[-1][0]] == prompts[row]:
            runs[-1].append(row)
        else:
            runs.append([row])
    batches: list[list[int]] = []
    for run in runs:
        for i in range(0, len(run), batch_size):  # a run longer than a batch is cut in batch-sized pieces
            piece = run[i : i + batch_size]
            if batches and len(batches[-1]) + len(piece) <= batch_size:
                batches[-1] += piece
            else:
                batches.append(list(piece))
    return [tuple(b) for b in batches]
