"""The default capture backend (`backend="hooks"`): plain PyTorch forward hooks on the modules
`probes.hook_points.resolve` names.

    with recording(model, ["blocks.0.hook_resid_post"]) as run:
        values = run(batch)          # what `capture(..., backend="hooks")` does per batch

The hooks are registered inside a context manager and removed on exit, even on error. Each hook keeps only the
selected position(s) of each row as soon as its module has run, so no [B, T, d] tensor outlives its module and
nothing is held for all layers but the [B, d] rows of the current batch. Once the last needed block has run, a
private exception stops the forward pass (the later blocks and the LM head are skipped).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from toolprior.model_protocols import CausalLM
from toolprior.modeling import decoder_layers
from toolprior.probes.batching import Batch, Runner, model_device
from toolprior.probes.hook_points import HookPoint, Read, parse_hook_name, resolve
from toolprior.probes.positions import Positions


class _StopForward(Exception):
    """Raised by the hook after the last needed block: everything wanted has been read."""


@dataclass
class _State:
    positions: Positions | None = None
    out: dict[str, torch.Tensor] = field(default_factory=dict)


@contextlib.contextmanager
def recording(model: CausalLM, hook_points: Sequence[str | HookPoint], stop_early: bool = True) -> Iterator[Runner]:
    """Forward hooks on every module the hook points name, for as long as the block lasts; yields a runner that
    takes a `Batch` and returns {hook name: value at the batch's positions}. The hooks come out on exit, whatever
    happens inside.

        with recording(model, ["blocks.0.hook_resid_post"]) as run:
            values = run(batch)

    `stop_early`: end the forward pass after the last needed block (skips later blocks and the LM head)."""
    points = sorted({parse_hook_name(p) for p in hook_points}, key=lambda p: p.fire_order)
    if not points:
        raise ValueError("no hook points to record")
    state = _State()
    handles: list[Any] = []

    def make_hook(name: str, read: Read) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            if state.positions is None:  # a forward pass the caller runs inside the block, not `run`'s
                return
            state.out[name] = state.positions.select(read.extract(args, kwargs, output)).detach()

        return hook

    try:
        for point in points:
            module, read = resolve(model, point)
            handles.append(module.register_forward_hook(make_hook(point.name, read), with_kwargs=True))
        if stop_early:

            def stop(module: nn.Module, args: Any, output: Any) -> None:
                if state.positions is not None:
                    raise _StopForward

            last = decoder_layers(model)[max(p.layer for p in points)]
            handles.append(last.register_forward_hook(stop))  # registered last: fires after the capture hooks

        def run(batch: Batch) -> dict[str, torch.Tensor]:
            device = model_device(model)
            state.positions = batch.positions.to(device)
            state.out = {}
            try:
                # inference mode, not no_grad: 10% less per forward pass on the organism (no version counters)
                with torch.inference_mode():
                    model(
                        input_ids=batch.input_ids.to(device),
                        attention_mask=batch.attention_mask.to(device),
                        position_ids=batch.position_ids.to(device),
                        use_cache=False,
                    )
            except _StopForward:
                pass
            finally:
                state.positions = None
            missing = [p.name for p in points if p.name not in state.out]
            if missing:
                raise RuntimeError(f"hooks did not fire for {', '.join(missing)} (the forward pass skipped them)")
            # inference tensors cannot be written in place or join autograd later: hand out ordinary copies (of the
            # selected positions only, so the copy is small)
            return {name: value.clone() for name, value in state.out.items()}

        yield run
    finally:
        for handle in handles:
            handle.remove()
