"""Attribution patching (Nanda; Syed et al. 2023): every patch of `probes.patching` estimated at once.

    approx, approx_heads = attribution_patching(model, tokenizer, pairs, k=12)

One forward and one backward pass per direction: effect(layer, offset) ~ (a_source - a_target) · dm/da at the
target run. It is a first-order Taylor expansion, so it is good where m is close to linear in the patched
activation and poor where the patch is large or passes through saturating nonlinearities (attention softmax,
norms); `probes.patching_compare.compare_patching` gives the Spearman correlation with exact patching, whether the
top-3 layers agree, and the cells where the two differ most.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.modeling import decoder_layers
from toolprior.probes.batching import model_device, pad_token_id
from toolprior.probes.hook_points import first_input
from toolprior.probes.logit_lens import forward_logits
from toolprior.probes.patch_engine import (
    PaddedRun,
    check_pairs,
    chosen_layers,
    count_heads,
    encode_rows,
    eval_mode,
    pair_batches,
    patching_hooks,
    record_run,
    z_head_dim,
)
from toolprior.probes.patching_result import DIRECTIONS, PatchingResult
from toolprior.probes.twins import TwinPair, metric_token_ids

_Acts = dict[tuple[int, str], torch.Tensor]  # (layer, kind) -> activations or gradients


def _grad_pass(
    model: CausalLM, run: PaddedRun, keys: Sequence[tuple[int, str]], k: int, ids: tuple[int, int]
) -> tuple[_Acts, _Acts, torch.Tensor]:
    """One forward + backward of `run`: (activations, d metric / d activation) at offsets 0..k-1 per key, and the
    metric. The input of block 0 is made to require grad, so gradients flow with frozen (or 4-bit) weights."""
    width = run.width
    cols = torch.arange(width - 1, width - 1 - k, -1).clamp(min=0)
    kept: dict[tuple[int, str], torch.Tensor] = {}

    def keeper(key: tuple[int, str]) -> Any:
        def fn(value: torch.Tensor) -> None:
            kept[key] = value

        return fn

    first = decoder_layers(model)[0]

    def leaf(module: nn.Module, args: Any, kwargs: Any) -> Any:
        value = first_input(args, kwargs)
        if value.requires_grad:
            return None
        value = value.detach().requires_grad_(True)
        if args:
            return (value, *args[1:]), kwargs
        key = next(iter(kwargs))
        return args, {**kwargs, key: value}

    handle = first.register_forward_pre_hook(leaf, with_kwargs=True)
    try:
        with torch.enable_grad(), patching_hooks(model, {key: keeper(key) for key in keys}):
            device = model_device(model)
            keep = torch.as_tensor([width - 1], device=device)
            logits = forward_logits(
                model, run.input_ids.to(device), run.attention_mask.to(device), run.position_ids.to(device), keep
            )[:, -1].float()
            metric = logits[:, ids[0]] - logits[:, ids[1]]
            tensors = [kept[key] for key in keys]
            with warnings.catch_warnings():
                # bitsandbytes' 4-bit kernel warns it has no autograd registration; its gradients through NF4
                # layers equal the dequantised model's (tests/test_patching.py checks it), so the warning is noise
                warnings.filterwarnings("ignore", message=".*gemv_4bit.*")
                grads = torch.autograd.grad(metric.sum(), tensors, allow_unused=True)
    finally:
        handle.remove()
    acts: dict[tuple[int, str], torch.Tensor] = {}
    grad_out: dict[tuple[int, str], torch.Tensor] = {}
    valid = (torch.arange(k)[None, :] < run.lengths[:, None]).float()
    for key, tensor, grad in zip(keys, tensors, grads, strict=True):
        c = cols.to(tensor.device)
        a = tensor.detach()[:, c].float().cpu()
        g = torch.zeros_like(a) if grad is None else grad[:, c].float().cpu()
        if key[1] == "z":
            hd = z_head_dim(model, key[0])
            a = a.reshape(a.shape[0], a.shape[1], -1, hd)
            g = g.reshape(g.shape[0], g.shape[1], -1, hd)
        mask = valid.reshape(*valid.shape, *([1] * (a.dim() - 2)))
        acts[key] = a * mask
        grad_out[key] = g * mask
    return acts, grad_out, metric.detach().cpu()


def attribution_patching(
    model: CausalLM,
    tokenizer: Tokenizer,
    pairs: Sequence[TwinPair],
    k: int = 12,
    *,
    layers: Sequence[int] | None = None,
    directions: Sequence[str] = DIRECTIONS,
    batch_size: int = 8,
    position: str = "prompt_end",
    heads: bool = True,
) -> tuple[PatchingResult, PatchingResult | None]:
    """Attribution patching estimates of the same maps as `patch_resid` (layer x offset) and `patch_heads`
    (layer x head at offset 0): one forward + backward per batch and direction (at the target run: corrupted for
    denoise, clean for noise), plus one plain forward of the source run for its activations. Returns
    (resid map, head map or None); the maps hold target metric + estimated effect, so `effect()` and `normalised()`
    read like the exact results."""
    check_pairs(pairs)
    chosen = chosen_layers(model, layers)
    ids = metric_token_ids(tokenizer)
    pad = pad_token_id(tokenizer)
    keys = [(layer, "resid_post") for layer in chosen]
    if heads:
        keys += [(layer, "z") for layer in chosen]
    n = len(pairs)
    n_heads = {layer: count_heads(model, layer) for layer in chosen} if heads else {}
    width = max(n_heads.values(), default=0)
    resid_maps = {d: torch.full((n, len(chosen), k), math.nan) for d in directions}
    head_maps = {d: torch.full((n, len(chosen), width), math.nan) for d in directions}
    clean_m = torch.zeros(n)
    corrupt_m = torch.zeros(n)
    with eval_mode(model):
        for start, chunk in pair_batches(pairs, max(1, batch_size)):
            rows = slice(start, start + len(chunk))
            clean = encode_rows([p.clean for p in chunk], pad)
            corrupt = encode_rows([p.corrupted for p in chunk], pad)
            runs = {"clean": clean, "corrupted": corrupt}
            passes: dict[str, tuple[_Acts, _Acts | None, torch.Tensor]] = {}
            targets = {"corrupted" if d == "denoise" else "clean" for d in directions}
            for name in ("clean", "corrupted"):
                if name in targets:  # gradients are needed at the run that gets patched
                    passes[name] = _grad_pass(model, runs[name], keys, k, ids)
                else:
                    cache = record_run(model, runs[name], keys, k, ids)
                    passes[name] = (cache.values, None, cache.metric)
            clean_m[rows] = passes["clean"][2]
            corrupt_m[rows] = passes["corrupted"][2]
            for direction in directions:
                target_name, source_name = ("corrupted", "clean") if direction == "denoise" else ("clean", "corrupted")
                acts_t, grads_t, metric_t = passes[target_name]
                acts_s = passes[source_name][0]
                assert grads_t is not None
                ok = (torch.arange(k)[None, :] < runs[target_name].lengths[:, None]) & (
                    torch.arange(k)[None, :] < runs[source_name].lengths[:, None]
                )
                for li, layer in enumerate(chosen):
                    key = (layer, "resid_post")
                    est = ((acts_s[key] - acts_t[key]) * grads_t[key]).sum(dim=-1)  # [B, k]
                    est = torch.where(ok, est, torch.full_like(est, math.nan))
                    resid_maps[direction][rows, li, :] = metric_t[:, None] + est
                    if heads:
                        key = (layer, "z")
                        est_h = ((acts_s[key][:, 0] - acts_t[key][:, 0]) * grads_t[key][:, 0]).sum(dim=-1)  # [B, H]
                        est_h = torch.where(ok[:, :1], est_h, torch.full_like(est_h, math.nan))
                        head_maps[direction][rows, li, : est_h.shape[1]] = metric_t[:, None] + est_h
    pair_ids = [p.clean_id for p in pairs]
    aligned = [p.aligned for p in pairs]
    resid = PatchingResult(
        "resid_post", "attribution", position, chosen, list(range(k)), pair_ids, clean_m, corrupt_m, resid_maps, aligned
    )
    head = (
        PatchingResult(
            "z", "attribution", position, chosen, list(range(width)), pair_ids, clean_m, corrupt_m, head_maps, aligned
        )
        if heads
        else None
    )
    return resid, head
