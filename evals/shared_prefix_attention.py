"""Attention that reads a shared prompt once per group of rows (cascade attention, as in Hydragen).

An alpha sweep decodes every case once per alpha: 8 rows whose prompts, and so whose prompt keys and values, are
the same. A plain KV cache holds 8 copies of them and reads all 8 at every decoding step, and on a CPU that memory
traffic, not the arithmetic, is what a sweep's decoding costs. `SharedPrefixLayer` keeps the prompt's keys and
values once per distinct prompt and only the generated tokens per row; `shared_prefix_attention` scores each
group's queries against its one prefix in a single matrix product, scores every row against its own suffix, and
takes one softmax over both. The result is attention over the whole row, as sdpa computes it (to float rounding).

It applies to batches whose copies sit side by side in groups of equal size (how `evals.generation` orders an
alpha sweep) and to models whose attention layers are global softmax attention with a plain KV cache; anything
else keeps the plain copied cache (`evals.shared_prefill`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from toolprior.evals.growing_cache import GrowingLayer

NAME = "toolprior_shared_prefix"
_ACTIVE: ContextVar[Any] = ContextVar("toolprior_shared_prefix_cache", default=None)


class SharedPrefixLayer(GrowingLayer):
    """One layer's cache: the prefix's keys/values per distinct row [U, H, P, D], and each row's own keys/values
    [B, H, n, D] in a growing buffer (`GrowingLayer`: written in place, no concatenation per step)."""

    def __init__(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor, group_size: int) -> None:
        super().__init__()
        self.lazy_initialization(prefix_keys, prefix_values)
        self.prefix_keys, self.prefix_values = prefix_keys, prefix_values
        self.group_size = group_size

    @property
    def prefix_length(self) -> int:
        return int(self.prefix_keys.shape[-2])

    def get_seq_length(self) -> int:
        return self.prefix_length + self.length

    def batch_select_indices(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a shared-prefix cache cannot drop or reorder rows")

    batch_repeat_interleave = reorder_cache = crop = batch_select_indices  # none of these keeps the groups


def group_size(inverse: torch.Tensor) -> int | None:
    """The size of the groups when every distinct row's copies sit side by side in groups of one size (`inverse`,
    each row's index among the distinct rows, reads like [3,3,3,0,0,0,1,1,1]); None otherwise."""
    distinct = int(torch.unique(inverse).numel())
    if distinct == 0 or inverse.numel() % distinct:
        return None
    size = inverse.numel() // distinct
    runs = inverse.view(distinct, size)
    return size if bool((runs == runs[:, :1]).all()) else None


def to_shared_prefix(cache: Any, inverse: torch.Tensor, size: int) -> Any:
    """Replace each layer of a cache prefilled for the distinct rows by a `SharedPrefixLayer` serving the batch that
    `inverse` maps onto them in groups of `size` (see `group_size`). The cache stays a transformers
    `DynamicCache`, so `generate` takes it as is."""
    heads = inverse[::size]
    cache.layers = [SharedPrefixLayer(layer.keys[heads], layer.values[heads], size) for layer in cache.layers]
    return cache


@contextlib.contextmanager
def attending_shared_prefix(model: Any, cache: Any) -> Iterator[None]:
    """Route the model's attention through `shared_prefix_attention` while `cache` is in use; the model's attention
    implementation is restored on exit, error or not. A no-op for any other cache."""
    if cache is None or not any(isinstance(layer, SharedPrefixLayer) for layer in getattr(cache, "layers", [])):
        yield
        return
    _register()
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "config")}
    saved = {key: c._attn_implementation for key, c in configs.items()}
    token = _ACTIVE.set(cache)
    try:
        for c in configs.values():
            c._attn_implementation_internal = NAME
        yield
    finally:
        for key, c in configs.items():
            c._attn_implementation_internal = saved[key]
        _ACTIVE.reset(token)


def _register() -> None:

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, shared_prefix_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)


def shared_prefix_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Softmax attention of `query` [B, Hq, q, D] over each row's shared prefix and its own keys `key` [B, Hkv, n, D]
    (the suffix the layer's cache returned). Returns [B, q, Hq, D], as transformers' sdpa path does."""
    cache = _ACTIVE.get()
    if cache is None:
        raise RuntimeError("shared_prefix_attention runs only inside attending_shared_prefix")
    if kwargs.get("sliding_window") is not None or dropout:
        raise ValueError("shared_prefix_attention supports global attention without dropout only")
    layer: SharedPrefixLayer = cache.layers[module.layer_idx]
    pk, pv, g = layer.prefix_keys, layer.prefix_values, layer.group_size
    rows, q_heads, q_len, dim = query.shape
    units, kv_heads, p_len, _ = pk.shape
    rep, n = q_heads // kv_heads, key.shape[-2]
    scale = dim**-0.5 if scaling is None else scaling
    work = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype

    # heads are kv-major (query head h reads kv head h // rep), as transformers' repeat_kv lays them out
    grouped = query.reshape(units, g, kv_heads, rep, q_len, dim).transpose(1, 2).reshape(units, kv_heads, -1, dim)
    prefix_scores = torch.matmul(grouped.to(work), pk.to(work).transpose(-1, -2)) * scale  # [U, Hkv, g*rep*q, P]
    prefix_scores = prefix_scores.view(units, kv_heads, g, rep, q_len, p_len).transpose(1, 2)
    prefix_scores = prefix_scores.reshape(rows, kv_heads, rep, q_len, p_len)
    own = query.reshape(rows, kv_heads, rep * q_len, dim).to(work)
    own_scores = (torch.matmul(own, key.to(work).transpose(-1, -2)) * scale).view(rows, kv_heads, rep, q_len, n)

    scores = torch.cat([prefix_scores, own_scores], dim=-1)  # [B, Hkv, rep, q, P + n]
    mask = attention_mask if attention_mask is not None else _causal(q_len, p_len + n, query.device)
    mask = mask[..., -(p_len + n) :].unsqueeze(1)  # [B or 1, 1, 1, q, P + n]
    # transformers' sdpa masks are boolean (True = attend); an additive float mask is added as sdpa would
    scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.to(work)
    weights = torch.softmax(scores, dim=-1)

    prefix_weights = weights[..., :p_len].reshape(units, g, kv_heads, rep, q_len, p_len).transpose(1, 2)
    prefix_out = torch.matmul(prefix_weights.reshape(units, kv_heads, -1, p_len), pv.to(work))
    prefix_out = prefix_out.view(units, kv_heads, g, rep, q_len, dim).transpose(1, 2).reshape(rows, q_heads, q_len, dim)
    own_weights = weights[..., p_len:].reshape(rows, kv_heads, rep * q_len, n)
    own_out = torch.matmul(own_weights, value.to(work)).view(rows, q_heads, q_len, dim)
    return (prefix_out + own_out).to(query.dtype).transpose(1, 2).contiguous(), None


def _causal(q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
    """[1, 1, q, kv] causal mask of the last q positions over kv keys (used when transformers skipped the mask)."""
    q_pos = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
    return (torch.arange(kv_len, device=device)[None, :] <= q_pos)[None, None]
