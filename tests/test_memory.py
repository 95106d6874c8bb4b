"""release_memory frees what reference cycles hold (a trainer and its callbacks), without waiting for the collector."""

from __future__ import annotations

import gc
import weakref

import torch

from toolprior.memory import release_memory


class Holder:
    def __init__(self) -> None:
        self.weights = torch.zeros(1024, 1024)
        self.me = self  # a cycle, as a trainer and its callbacks make


def test_a_cycle_holding_a_tensor_is_freed_at_once() -> None:
    gc.disable()  # the collector's own passes must not be what frees it
    try:
        holder = Holder()
        alive = weakref.ref(holder.weights)
        del holder
        assert alive() is not None  # the cycle keeps it
        release_memory()
        assert alive() is None
    finally:
        gc.enable()
