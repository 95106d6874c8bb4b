"""The patching engine: record activations of twin runs, and rerun with some of them replaced.

    run = encode_rows([p.clean for p in pairs], pad_token_id(tokenizer))
    cache = record_run(model, run, [(3, "resid_post")], k, ids)             # activations at offsets 0..k-1
    metric = patched_metric(model, target, cache, [[Patch(3, "resid_post", (0,))]], ids)

**Alignment.** The twins differ only in the system context, so their token sequences share their END (user
message, generation prompt). Positions are counted from the end of each text: offset 0 = the last token (where
the metric is read), 1 = the one before, ... Batches are LEFT padded (`probes.batching`, as in `probes.capture`), so offset j is
column T-1-j in every row, and a pair gives the same numbers alone as in a batch of mixed lengths. An offset beyond
either twin's length is skipped for that pair.

All hooks are registered inside context managers and removed on exit, even on error; the model is never left
modified.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from toolprior.model_protocols import CausalLM
from toolprior.modeling import decoder_layers
from toolprior.probes.batching import model_device, pad_left
from toolprior.probes.hook_points import first_input, first_tensor, hook_name, resolve
from toolprior.probes.logit_lens import forward_logits
from toolprior.probes.twins import TwinPair


@dataclass(frozen=True)
class Patch:
    """Replace the activation at `hook` (kind resid_post or z, of block `layer`) at the given offsets from the end;
    for z, only `head` (None: all heads)."""

    layer: int
    kind: str = "resid_post"
    offsets: tuple[int, ...] = (0,)
    head: int | None = None


@dataclass
class PaddedRun:
    """One left-padded batch; `lengths` are the rows' real lengths."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    lengths: torch.Tensor

    @property
    def width(self) -> int:
        return int(self.input_ids.shape[1])

    def repeat(self, times: int) -> PaddedRun:
        return PaddedRun(
            *(
                t.repeat(times, *([1] * (t.dim() - 1)))
                for t in (self.input_ids, self.attention_mask, self.position_ids, self.lengths)
            )
        )


def encode_rows(rows: Sequence[Sequence[int]], pad_id: int) -> PaddedRun:
    """A left-padded run of token lists (`probes.batching.pad_left`), with each row's real length."""
    ids, mask, pos = pad_left(rows, pad_id)
    return PaddedRun(ids, mask, pos, torch.as_tensor([len(r) for r in rows], dtype=torch.long))


@dataclass
class RunCache:
    """Activations of one batch at offsets 0..k-1: {(layer, kind): [B, k, ...]} (zeros where the row is shorter)."""

    values: dict[tuple[int, str], torch.Tensor]
    lengths: torch.Tensor
    metric: torch.Tensor


def _metric(model: CausalLM, run: PaddedRun, ids: tuple[int, int]) -> torch.Tensor:
    device = model_device(model)
    keep = torch.as_tensor([run.width - 1], device=device)
    logits = forward_logits(
        model, run.input_ids.to(device), run.attention_mask.to(device), run.position_ids.to(device), keep
    )[:, -1].float()
    return (logits[:, ids[0]] - logits[:, ids[1]]).cpu()


def _points(model: CausalLM, kind: str, layer: int) -> tuple[nn.Module, Any]:
    return resolve(model, hook_name(layer, kind))


@contextlib.contextmanager
def patching_hooks(model: CausalLM, specs: dict[tuple[int, str], Any]) -> Iterator[None]:
    """Register `specs[(layer, kind)] = fn(tensor) -> tensor | None` as a replacement of the activation there
    (resid_post: the block's output; z: o_proj's input, [B, T, heads * head_dim]); removed on exit."""
    handles = []
    try:
        for (layer, kind), fn in specs.items():
            module, read = _points(model, kind, layer)
            if read.source == "output":

                def out_hook(mod: nn.Module, args: Any, output: Any, fn: Any = fn) -> Any:
                    value = first_tensor(output)
                    new = fn(value)
                    if new is None:
                        return None
                    if isinstance(output, torch.Tensor):
                        return new
                    if isinstance(output, tuple):
                        return (new, *output[1:])
                    raise TypeError(f"cannot patch a block output of type {type(output).__name__}")

                handles.append(module.register_forward_hook(out_hook))
            else:

                def pre_hook(mod: nn.Module, args: Any, kwargs: Any, fn: Any = fn) -> Any:
                    value = first_input(args, kwargs)
                    new = fn(value)
                    if new is None:
                        return None
                    if args:
                        return (new, *args[1:]), kwargs
                    key = next(iter(kwargs))
                    return args, {**kwargs, key: new}

                handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


def z_head_dim(model: CausalLM, layer: int) -> int:
    """The head_dim of block `layer`'s hook_z."""
    _, read = _points(model, "z", layer)
    assert read.head_dim is not None
    return int(read.head_dim)


def count_heads(model: CausalLM, layer: int) -> int:
    """How many attention heads block `layer` has (o_proj's input width / head_dim)."""
    module, read = _points(model, "z", layer)
    in_features = getattr(module, "in_features", None)
    if not isinstance(in_features, int):
        weight = getattr(module, "weight", None)
        in_features = int(weight.shape[1]) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else None
    if in_features is None:
        raise ValueError(f"cannot tell how many heads {hook_name(layer, 'z')} has")
    assert read.head_dim is not None
    return in_features // read.head_dim


def record_run(
    model: CausalLM, run: PaddedRun, keys: Sequence[tuple[int, str]], k: int, ids: tuple[int, int]
) -> RunCache:
    """One forward pass of `run` keeping each (layer, kind)'s activation at offsets 0..k-1, and the metric."""
    width = run.width
    cols = torch.arange(width - 1, width - 1 - k, -1).clamp(min=0)
    values: dict[tuple[int, str], torch.Tensor] = {}

    def keeper(key: tuple[int, str]) -> Any:
        head_dim = z_head_dim(model, key[0]) if key[1] == "z" else 0

        def fn(value: torch.Tensor) -> None:
            picked = value[:, cols.to(value.device)].detach().float().cpu()
            if head_dim:
                picked = picked.reshape(picked.shape[0], picked.shape[1], -1, head_dim)
            values[key] = picked

        return fn

    with torch.no_grad(), patching_hooks(model, {key: keeper(key) for key in keys}):
        metric = _metric(model, run, ids)
    valid = torch.arange(k)[None, :] < run.lengths[:, None]
    for v in values.values():
        v[~valid] = 0.0
    return RunCache(values, run.lengths, metric)


def patched_metric(
    model: CausalLM, target: PaddedRun, source: RunCache, groups: Sequence[Sequence[Patch]], ids: tuple[int, int]
) -> torch.Tensor:
    """The metric of `target` with each group of patches applied together to its own copy of the batch: [V, B]
    for V groups (all copies run stacked in one forward pass)."""
    b = target.input_ids.shape[0]
    v = len(groups)
    if v == 0 or not any(groups):
        with torch.no_grad():
            return _metric(model, target, ids)[None].repeat(max(v, 1), 1)
    stacked = target.repeat(v)
    width = target.width
    ops: dict[tuple[int, str], list[tuple[torch.Tensor, torch.Tensor, int | None, torch.Tensor]]] = {}
    for i, group in enumerate(groups):
        for patch in group:
            key = (patch.layer, patch.kind)
            if key not in source.values:
                raise KeyError(f"no source activations for {hook_name(*key)}")
            src = source.values[key]
            for off in patch.offsets:
                if off >= src.shape[1]:
                    raise ValueError(f"offset {off} beyond the {src.shape[1]} recorded positions")
                rows = torch.nonzero((off < target.lengths) & (off < source.lengths)).flatten()
                if len(rows) == 0:
                    continue
                values = src[rows, off]
                if patch.kind == "z" and patch.head is not None:
                    values = values[:, patch.head]
                ops.setdefault(key, []).append(
                    (rows + i * b, torch.full_like(rows, width - 1 - off), patch.head, values)
                )

    def replacer(key: tuple[int, str]) -> Any:
        head_dim = z_head_dim(model, key[0]) if key[1] == "z" else 0

        def fn(value: torch.Tensor) -> torch.Tensor:
            new = value.clone()
            view = new.view(new.shape[0], new.shape[1], -1, head_dim) if head_dim else new
            for rows, cols, head, vals in ops[key]:
                r, c = rows.to(new.device), cols.to(new.device)
                if head is None:
                    view[r, c] = vals.to(new.device, new.dtype)
                else:
                    view[r, c, head] = vals.to(new.device, new.dtype)
            return new

        return fn

    with torch.no_grad(), patching_hooks(model, {key: replacer(key) for key in ops}):
        metric = _metric(model, stacked, ids)
    return metric.reshape(v, b)


# ------------------------------------------------------------------------------------------------------- runs of pairs


def pair_batches(pairs: Sequence[TwinPair], size: int) -> Iterator[tuple[int, Sequence[TwinPair]]]:
    """(index of the first pair, the pairs) for consecutive chunks of `size` pairs."""
    for start in range(0, len(pairs), size):
        yield start, pairs[start : start + size]


def check_pairs(pairs: Sequence[TwinPair]) -> None:
    """ValueError when there are no pairs to patch."""
    if not pairs:
        raise ValueError("no twin pairs to patch (need clarify cases whose call_tool twin is among the cases)")


def chosen_layers(model: CausalLM, layers: Sequence[int] | None) -> list[int]:
    """The blocks to patch: `layers` sorted and checked against the model (None: every block)."""
    n = len(decoder_layers(model))
    chosen = list(range(n)) if layers is None else sorted(set(layers))
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise ValueError(f"layers {bad} out of range; the model has {n} blocks")
    return chosen


@contextlib.contextmanager
def eval_mode(model: CausalLM) -> Iterator[None]:
    """The model in eval mode for the block; each module's own mode is put back on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.train(mode)
