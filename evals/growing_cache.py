"""A KV cache layer that writes each step's keys and values in place, into a buffer that doubles when full.

transformers' `DynamicLayer` concatenates the whole cache with the new token at every step, so decoding T tokens
copies O(T * length) memory; on a CPU that copying is a large share of a batched decode. `GrowingLayer` keeps the
same contents and returns views of its buffer, so attention sees exactly the tensors it saw before.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from toolprior.evals.global_attention import supports_shared_prefix


class GrowingLayer(DynamicLayer):
    """`DynamicLayer` with in-place writes: `keys` / `values` are views of the first `length` positions."""

    buffer_keys: torch.Tensor | None
    buffer_values: torch.Tensor | None
    length: int

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = self.values = None
        self.buffer_keys = self.buffer_values = None
        self.length = 0
        self.is_initialized = True

    def _reserve(self, buffer: torch.Tensor | None, like: torch.Tensor, needed: int) -> torch.Tensor:
        if buffer is not None and buffer.shape[0] == like.shape[0] and buffer.shape[-2] >= needed:
            return buffer
        capacity = max(64, needed, 2 * (0 if buffer is None else buffer.shape[-2]))
        grown = like.new_empty(like.shape[0], like.shape[1], capacity, like.shape[-1])
        if buffer is not None and self.length:
            grown[:, :, : self.length] = buffer[:, :, : self.length]
        return grown

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self.buffer_keys = self._reserve(self.buffer_keys, key_states, end)
        self.buffer_values = self._reserve(self.buffer_values, value_states, end)
        self.buffer_keys[:, :, self.length : end] = key_states
        self.buffer_values[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self.buffer_keys[:, :, :end], self.buffer_values[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def _adopt(self) -> None:
        """After an operation that replaced `keys` / `values` (row selection, cropping): they become the buffer."""
        self.buffer_keys, self.buffer_values = self.keys, self.values
        self.length = int(self.keys.shape[-2]) if self.keys is not None else 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self._adopt()

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self._adopt()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self._adopt()

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        self._adopt()


def growing_cache(model: Any) -> Any | None:
    """An empty cache of `GrowingLayer`s for models whose every attention layer is global softmax attention over
    a plain KV cache; None for others (sliding-window, hybrid linear-attention), which keep transformers' own."""
    if not supports_shared_prefix(model):
        return None
    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache
