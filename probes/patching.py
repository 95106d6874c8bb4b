"""Activation patching on minimal-pair twins: where does the model turn "two entities match" into "ask"?

    pairs = twin_pairs(cases, tokenizer)                       # clean = ambiguous (clarify), corrupted = resolved
    exact = patch_resid(model, tokenizer, pairs, k=12)         # layer x position, both directions
    heads = patch_heads(model, tokenizer, pairs)               # layer x head (hook_z at the last position)
    approx = attribution_patching(model, tokenizer, pairs, k=12)
    compare_patching(exact, approx)                            # rank correlation, top-3 layers, disagreements

The pairs and the metric: `probes.twins`; the engine (alignment by offset from the end): `probes.patch_engine`;
the result maps: `probes.patching_result`; attribution patching: `probes.attribution`; the comparison:
`probes.patching_compare`. `k` offsets are patched (`k=12` by default); `aligned` (per pair) says how many trailing
tokens the twins share, and offsets inside it patch identical tokens.

**Exact patching.** For each layer (hook_resid_post, the block output) and offset, one forward pass in which that
single activation is replaced:

- denoising: run CORRUPTED, patch in CLEAN's activation: how much of the clean metric does it restore?
- noising: run CLEAN, patch in CORRUPTED's activation: how much of the clean metric does it destroy?

Per head: `blocks.{i}.attn.hook_z` (the input of o_proj, split into heads) at offset 0, one head at a time.
Patching every position of a layer on twins of equal length restores the clean run exactly (denoising score 1),
patching nothing gives 0 (tests check both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.probes.batching import pad_token_id
from toolprior.probes.patch_engine import (
    Patch,
    check_pairs,
    chosen_layers,
    count_heads,
    encode_rows,
    eval_mode,
    pair_batches,
    patched_metric,
    record_run,
)
from toolprior.probes.patching_result import DIRECTIONS, PatchingResult
from toolprior.probes.twins import TwinPair, metric_token_ids


def patch_resid(
    model: CausalLM,
    tokenizer: Tokenizer,
    pairs: Sequence[TwinPair],
    k: int = 12,
    *,
    layers: Sequence[int] | None = None,
    directions: Sequence[str] = DIRECTIONS,
    batch_size: int = 8,
    position: str = "prompt_end",
    progress: bool = False,
) -> PatchingResult:
    """Exact patching of `hook_resid_post` at each layer x offset (0..k-1 from the end), one activation at a time.

    `batch_size` bounds the rows of one forward pass: pairs x patch variants run stacked in one batch."""
    check_pairs(pairs)
    chosen = chosen_layers(model, layers)
    ids = metric_token_ids(tokenizer)
    pad = pad_token_id(tokenizer)
    variants = [Patch(layer, "resid_post", (off,)) for layer in chosen for off in range(k)]
    return _exact(
        model,
        pairs,
        variants,
        chosen,
        list(range(k)),
        "resid_post",
        k,
        ids,
        pad,
        directions,
        batch_size,
        position,
        progress,
    )


def patch_heads(
    model: CausalLM,
    tokenizer: Tokenizer,
    pairs: Sequence[TwinPair],
    *,
    layers: Sequence[int] | None = None,
    directions: Sequence[str] = DIRECTIONS,
    batch_size: int = 8,
    position: str = "prompt_end",
    progress: bool = False,
) -> PatchingResult:
    """Exact patching of one head's `attn.hook_z` at the last position (offset 0), for every layer x head. Layers
    with fewer heads than the widest get NaN in the missing columns."""
    check_pairs(pairs)
    chosen = chosen_layers(model, layers)
    ids = metric_token_ids(tokenizer)
    pad = pad_token_id(tokenizer)
    heads = {layer: count_heads(model, layer) for layer in chosen}
    width = max(heads.values())
    variants = [Patch(layer, "z", (0,), h) for layer in chosen for h in range(heads[layer])]
    return _exact(
        model, pairs, variants, chosen, list(range(width)), "z", 1, ids, pad, directions, batch_size, position, progress
    )


def _exact(
    model: CausalLM,
    pairs: Sequence[TwinPair],
    variants: list[Patch],
    layers: list[int],
    columns: list[int],
    kind: str,
    k: int,
    ids: tuple[int, int],
    pad: int,
    directions: Sequence[str],
    batch_size: int,
    position: str,
    progress: bool,
) -> PatchingResult:
    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"unknown patching direction {d!r}; expected one of {', '.join(DIRECTIONS)}")
    keys = sorted({(v.layer, v.kind) for v in variants})
    n = len(pairs)
    maps = {d: torch.full((n, len(layers), len(columns)), math.nan) for d in directions}
    clean_m = torch.zeros(n)
    corrupt_m = torch.zeros(n)
    pair_rows = max(1, min(batch_size, n))
    with eval_mode(model):
        bar = tqdm(total=len(directions) * len(variants) * n, desc=f"patch {kind}", disable=not progress)
        for start, chunk in pair_batches(pairs, pair_rows):
            clean = encode_rows([p.clean for p in chunk], pad)
            corrupt = encode_rows([p.corrupted for p in chunk], pad)
            clean_cache = record_run(model, clean, keys, k, ids)
            corrupt_cache = record_run(model, corrupt, keys, k, ids)
            rows = slice(start, start + len(chunk))
            clean_m[rows] = clean_cache.metric
            corrupt_m[rows] = corrupt_cache.metric
            per_pass = max(1, batch_size // len(chunk))
            for direction in directions:
                target, source = (corrupt, clean_cache) if direction == "denoise" else (clean, corrupt_cache)
                for v0 in range(0, len(variants), per_pass):
                    group = variants[v0 : v0 + per_pass]
                    metric = patched_metric(model, target, source, [[p] for p in group], ids)
                    for patch, values in zip(group, metric, strict=True):
                        col = patch.offsets[0] if kind == "resid_post" else int(patch.head or 0)
                        ok = (patch.offsets[0] < target.lengths) & (patch.offsets[0] < source.lengths)
                        values = torch.where(ok, values, torch.full_like(values, math.nan))
                        maps[direction][rows, layers.index(patch.layer), col] = values
                    bar.update(len(group) * len(chunk))
        bar.close()
    return PatchingResult(
        kind,
        "exact",
        position,
        layers,
        columns,
        [p.clean_id for p in pairs],
        clean_m,
        corrupt_m,
        maps,
        [p.aligned for p in pairs],
    )


def patch_metric(
    model: CausalLM,
    tokenizer: Tokenizer,
    pairs: Sequence[TwinPair],
    patches: Sequence[Patch],
    direction: str = "denoise",
    k: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean metric [P], corrupted metric [P], patched metric [P]) with ALL `patches` applied together in one run
    (e.g. every offset of one layer). `k`: offsets to record (default: the largest patched offset + 1)."""
    check_pairs(pairs)
    ids = metric_token_ids(tokenizer)
    pad = pad_token_id(tokenizer)
    k = k or max([off for p in patches for off in p.offsets], default=0) + 1
    keys = sorted({(p.layer, p.kind) for p in patches})
    clean = encode_rows([p.clean for p in pairs], pad)
    corrupt = encode_rows([p.corrupted for p in pairs], pad)
    with eval_mode(model):
        clean_cache = record_run(model, clean, keys, k, ids)
        corrupt_cache = record_run(model, corrupt, keys, k, ids)
        target, source = (corrupt, clean_cache) if direction == "denoise" else (clean, corrupt_cache)
        patched = patched_metric(model, target, source, [list(patches)], ids)[0]
    return clean_cache.metric, corrupt_cache.metric, patched
