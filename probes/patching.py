"""Activation patching on minimal-pair twins: where does the model turn "two entities match" into "ask"?

    pairs = twin_pairs(cases, tokenizer)                       # clean = ambiguous (clarify), corrupted = resolved
    exact = patch_resid(model, tokenizer, pairs, k=12)         # layer x position, both directions
    heads = patch_heads(model, tokenizer, pairs)               # layer x head (hook_z at the last position)
    approx = attribution_patching(model, tokenizer, pairs, k=12)
    compare_patching(exact, approx)                            # rank correlation, top-3 layers, disagreements

**The pairs.** A twin pair is a clarify case (two matching entities in the system context; `meta.twin_role`
"ambiguous") and its call_tool twin (one matching entity; "resolved"), with the same user text. CLEAN = the
clarify twin, CORRUPTED = the call_tool twin.

**The metric** m = logit(decision token of `<clarify>`) - logit(decision token of `<tool_call>`) (the tokens where
the tags' encodings after `</think>` part: `toolprior.decision_point`), read at the LAST token of each text. Texts
(`twin_pairs(position=...)`):

- ``prompt_end`` (default): the prompt alone (`render_prompt`, ending with the generation prompt). This is the
  cleanest position that exists identically in both twins: the twins' gold thinks differ (each names its own
  entities and already states the decision), so reading after them would patch reasoning text, not the prompt.
  On a model that always thinks first, the logits here rank the action tags as continuations it does not take
  next; their DIFFERENCE still shows how the context tilts the model between asking and calling.
- ``decision``: the prompt plus the SAME think block for both twins (`think`, default empty:
  `<think></think>`), then the tokens every action tag shares after `</think>` (`DecisionTokens.suffix`: nothing
  on the organism, `<` where the tags are split), so the metric is read at the real decision position while the
  suffix stays identical.

**Alignment.** The twins differ only in the system context, so their token sequences share their END (user
message, generation prompt). Positions are counted from the end of each text: offset 0 = the last token (where
the metric is read), 1 = the one before, ... `k` offsets are patched (`k=12` by default). Batches are LEFT padded
(as in `probes.capture`), so offset j is column T-1-j in every row, and a pair gives the same numbers alone as in
a batch of mixed lengths. An offset beyond either twin's length is skipped for that pair. `aligned` (per pair) says
how many trailing tokens the twins share; offsets inside it patch identical tokens.

**Exact patching.** For each layer (hook_resid_post, the block output) and offset, one forward pass in which that
single activation is replaced:

- denoising: run CORRUPTED, patch in CLEAN's activation: how much of the clean metric does it restore?
- noising: run CLEAN, patch in CORRUPTED's activation: how much of the clean metric does it destroy?

Per head: `blocks.{i}.attn.hook_z` (the input of o_proj, split into heads) at offset 0, one head at a time.
Normalised score = (mean patched - mean corrupted) / (mean clean - mean corrupted), means over pairs (a per-pair
ratio explodes on pairs whose twins barely differ): denoising 0 = no effect, 1 = fully restored; noising 1 = no
effect, 0 = fully corrupted. Patching every position of a layer on twins of equal length restores the clean run
exactly (denoising score 1), patching nothing gives 0 (tests check both).

**Attribution patching** (Nanda; Syed et al. 2023) estimates every patch at once from one forward and one backward
pass per direction: effect(layer, offset) ~ (a_source - a_target) · dm/da at the target run. It is a first-order
Taylor expansion, so it is good where m is close to linear in the patched activation and poor where the patch is
large or passes through saturating nonlinearities (attention softmax, norms); `compare_patching` gives the Spearman
correlation with exact patching, whether the top-3 layers agree, and the cells where the two differ most.

All hooks are registered inside context managers and removed on exit, even on error; the model is never left
modified.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from probes.capture import model_device, pad_left
from probes.hook_points import first_input, first_tensor, hook_name, resolve
from probes.logit_lens import forward_logits
from toolprior.actions import Action
from toolprior.decision_point import decision_tokens
from toolprior.modeling import decoder_layers
from toolprior.output_format import THINK_CLOSE, THINK_OPEN
from toolprior.tokenizer import action_tag_token_ids

if TYPE_CHECKING:
    from toolprior.cases import Case

PATCH_POSITIONS: tuple[str, ...] = ("prompt_end", "decision")
DIRECTIONS: tuple[str, ...] = ("denoise", "noise")


# ------------------------------------------------------------------------------------------------------ the pairs


@dataclass(frozen=True)
class TwinPair:
    """One minimal pair as token ids: `clean` (the clarify twin) and `corrupted` (its call_tool twin)."""

    clean_id: str
    corrupted_id: str
    clean: tuple[int, ...]
    corrupted: tuple[int, ...]

    @property
    def aligned(self) -> int:
        """How many trailing tokens the twins share."""
        n = 0
        while n < min(len(self.clean), len(self.corrupted)) and self.clean[-1 - n] == self.corrupted[-1 - n]:
            n += 1
        return n


def pair_cases(cases: Sequence[Case]) -> list[tuple[Case, Case]]:
    """(clarify twin, call_tool twin) for every twin pair among `cases` whose two members are both present, in the
    order the clarify twins appear."""
    by_id = {c.id: c for c in cases}
    out = []
    for case in cases:
        other = by_id.get(case.twin or "")
        if other is None or other.twin != case.id:
            continue
        if case.expected_action is Action.CLARIFY and other.expected_action is Action.CALL_TOOL:
            out.append((case, other))
    return out


def twin_text(tokenizer: Any, case: Case, position: str = "prompt_end", think: str = "") -> str:
    """The text a twin is run on: the prompt (`prompt_end`), or the prompt + `<think>{think}</think>` + the decision
    tokens' suffix (`decision`: the text ends at the decision position)."""
    from toolprior.chat_template import render_prompt

    if position not in PATCH_POSITIONS:
        raise ValueError(f"unknown patching position {position!r}; expected one of {', '.join(PATCH_POSITIONS)}")
    prompt = render_prompt(tokenizer, case)
    if position == "prompt_end":
        return prompt
    return f"{prompt}{THINK_OPEN}{think}{THINK_CLOSE}{decision_tokens(tokenizer).suffix}"


def twin_pairs(
    cases: Sequence[Case],
    tokenizer: Any,
    position: str = "prompt_end",
    think: str = "",
    max_pairs: int | None = None,
) -> list[TwinPair]:
    """Tokenised twin pairs (see the module docstring for `position` and `think`)."""
    pairs = []
    for clean, corrupted in pair_cases(cases)[:max_pairs]:
        a = tokenizer(twin_text(tokenizer, clean, position, think), add_special_tokens=False)["input_ids"]
        b = tokenizer(twin_text(tokenizer, corrupted, position, think), add_special_tokens=False)["input_ids"]
        pairs.append(TwinPair(clean.id, corrupted.id, tuple(a), tuple(b)))
    return pairs


def metric_token_ids(tokenizer: Any) -> tuple[int, int]:
    """(decision token of `<clarify>`, decision token of `<tool_call>`): m = logit[0] - logit[1]."""
    ids = action_tag_token_ids(tokenizer)
    return ids[Action.CLARIFY], ids[Action.CALL_TOOL]


# ------------------------------------------------------------------------------------------------ the engine


@dataclass(frozen=True)
class Patch:
    """Replace the activation at `hook` (kind resid_post or z, of block `layer`) at the given offsets from the end;
    for z, only `head` (None: all heads)."""

    layer: int
    kind: str = "resid_post"
    offsets: tuple[int, ...] = (0,)
    head: int | None = None


@dataclass
class _Run:
    """One left-padded batch; `lengths` are the rows' real lengths."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    lengths: torch.Tensor

    @property
    def width(self) -> int:
        return int(self.input_ids.shape[1])

    def repeat(self, times: int) -> _Run:
        return _Run(
            *(
                t.repeat(times, *([1] * (t.dim() - 1)))
                for t in (self.input_ids, self.attention_mask, self.position_ids, self.lengths)
            )
        )


def _encode(rows: Sequence[Sequence[int]], pad_id: int) -> _Run:
    ids, mask, pos = pad_left(rows, pad_id)
    return _Run(ids, mask, pos, torch.as_tensor([len(r) for r in rows], dtype=torch.long))


@dataclass
class _Cache:
    """Activations of one batch at offsets 0..k-1: {(layer, kind): [B, k, ...]} (zeros where the row is shorter)."""

    values: dict[tuple[int, str], torch.Tensor]
    lengths: torch.Tensor
    metric: torch.Tensor


def _metric(model: nn.Module, run: _Run, ids: tuple[int, int]) -> torch.Tensor:
    device = model_device(model)
    keep = torch.as_tensor([run.width - 1], device=device)
    logits = forward_logits(
        model, run.input_ids.to(device), run.attention_mask.to(device), run.position_ids.to(device), keep
    )[:, -1].float()
    return (logits[:, ids[0]] - logits[:, ids[1]]).cpu()


def _points(model: nn.Module, kind: str, layer: int) -> tuple[nn.Module, Any]:
    return resolve(model, hook_name(layer, kind))


@contextlib.contextmanager
def _hooks(model: nn.Module, specs: dict[tuple[int, str], Any]) -> Iterator[None]:
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


def _head_dim(model: nn.Module, layer: int) -> int:
    _, read = _points(model, "z", layer)
    assert read.head_dim is not None
    return int(read.head_dim)


def _record(model: nn.Module, run: _Run, keys: Sequence[tuple[int, str]], k: int, ids: tuple[int, int]) -> _Cache:
    """One forward pass of `run` keeping each (layer, kind)'s activation at offsets 0..k-1, and the metric."""
    width = run.width
    cols = torch.arange(width - 1, width - 1 - k, -1).clamp(min=0)
    values: dict[tuple[int, str], torch.Tensor] = {}

    def keeper(key: tuple[int, str]) -> Any:
        head_dim = _head_dim(model, key[0]) if key[1] == "z" else 0

        def fn(value: torch.Tensor) -> None:
            picked = value[:, cols.to(value.device)].detach().float().cpu()
            if head_dim:
                picked = picked.reshape(picked.shape[0], picked.shape[1], -1, head_dim)
            values[key] = picked

        return fn

    with torch.no_grad(), _hooks(model, {key: keeper(key) for key in keys}):
        metric = _metric(model, run, ids)
    valid = torch.arange(k)[None, :] < run.lengths[:, None]
    for v in values.values():
        v[~valid] = 0.0
    return _Cache(values, run.lengths, metric)


def _patched_metric(
    model: nn.Module, target: _Run, source: _Cache, groups: Sequence[Sequence[Patch]], ids: tuple[int, int]
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
        head_dim = _head_dim(model, key[0]) if key[1] == "z" else 0

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

    with torch.no_grad(), _hooks(model, {key: replacer(key) for key in ops}):
        metric = _metric(model, stacked, ids)
    return metric.reshape(v, b)


def _batches(pairs: Sequence[TwinPair], size: int) -> Iterator[tuple[int, Sequence[TwinPair]]]:
    for start in range(0, len(pairs), size):
        yield start, pairs[start : start + size]


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad token nor an eos token to pad with")
    return int(pad)


def normalised(patched: float, clean: float, corrupted: float) -> float:
    """(patched - corrupted) / (clean - corrupted); NaN when the twins' metrics do not differ."""
    denominator = clean - corrupted
    if abs(denominator) < 1e-6:
        return math.nan
    return (patched - corrupted) / denominator


# ------------------------------------------------------------------------------------------------ results


@dataclass
class PatchingResult:
    """Patched metrics per pair. `maps[direction]` is [P, L, X] (X = positions or heads), the metric of the target
    run (denoise: corrupted; noise: clean) with that one activation patched; NaN where nothing could be patched.

    `kind`: "resid_post" (X = offsets from the end, 0 = last token) or "z" (X = heads, at offset 0).
    `method`: "exact" or "attribution" (then `maps` hold the ESTIMATED patched metric = target + estimated
    effect)."""

    kind: str
    method: str
    position: str
    layers: list[int]
    columns: list[int]
    pair_ids: list[str]
    clean: torch.Tensor
    corrupted: torch.Tensor
    maps: dict[str, torch.Tensor]
    aligned: list[int] = field(default_factory=list)

    def effect(self, direction: str) -> torch.Tensor:
        """[L, X] mean over pairs of patched - target metric (metric units; NaN cells skipped)."""
        target = self.corrupted if direction == "denoise" else self.clean
        diff = self.maps[direction] - target[:, None, None]
        return _nanmean(diff, dim=0)

    def normalised(self, direction: str) -> torch.Tensor:
        """[L, X] (mean patched - mean corrupted) / (mean clean - mean corrupted), means over pairs (see the module
        docstring): denoise 0 -> 1 = restored; noise 1 -> 0 = destroyed."""
        patched = _nanmean(self.maps[direction], dim=0)
        clean, corrupted = float(self.clean.mean()), float(self.corrupted.mean())
        denominator = clean - corrupted
        if abs(denominator) < 1e-6:
            return torch.full_like(patched, math.nan)
        return (patched - corrupted) / denominator

    def to_dict(self) -> dict[str, Any]:
        def grid(t: torch.Tensor) -> list[list[float | None]]:
            return [[None if math.isnan(x) else round(float(x), 6) for x in row] for row in t.tolist()]

        return {
            "kind": self.kind,
            "method": self.method,
            "position": self.position,
            "metric": "logit(<clarify>) - logit(<tool_call>) at the last token",
            "layers": self.layers,
            "columns": self.columns,
            "columns_are": "offset from the end (0 = last token)" if self.kind == "resid_post" else "head",
            "pairs": self.pair_ids,
            "aligned": self.aligned,
            "clean_mean": float(self.clean.mean()),
            "corrupted_mean": float(self.corrupted.mean()),
            "normalised": {d: grid(self.normalised(d)) for d in self.maps},
            "effect": {d: grid(self.effect(d)) for d in self.maps},
        }


def _nanmean(t: torch.Tensor, dim: int) -> torch.Tensor:
    mask = ~torch.isnan(t)
    total = torch.where(mask, t, torch.zeros((), dtype=t.dtype)).sum(dim=dim)
    count = mask.sum(dim=dim)
    out = total / count.clamp(min=1)
    return torch.where(count > 0, out, torch.full_like(out, math.nan))


def _check_pairs(pairs: Sequence[TwinPair]) -> None:
    if not pairs:
        raise ValueError("no twin pairs to patch (need clarify cases whose call_tool twin is among the cases)")


def _layers(model: nn.Module, layers: Sequence[int] | None) -> list[int]:
    n = len(decoder_layers(model))
    chosen = list(range(n)) if layers is None else sorted(set(layers))
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise ValueError(f"layers {bad} out of range; the model has {n} blocks")
    return chosen


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.train(mode)


def patch_resid(
    model: nn.Module,
    tokenizer: Any,
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
    _check_pairs(pairs)
    chosen = _layers(model, layers)
    ids = metric_token_ids(tokenizer)
    pad = _pad_id(tokenizer)
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
    model: nn.Module,
    tokenizer: Any,
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
    _check_pairs(pairs)
    chosen = _layers(model, layers)
    ids = metric_token_ids(tokenizer)
    pad = _pad_id(tokenizer)
    heads = {layer: _n_heads(model, layer) for layer in chosen}
    width = max(heads.values())
    variants = [Patch(layer, "z", (0,), h) for layer in chosen for h in range(heads[layer])]
    return _exact(
        model, pairs, variants, chosen, list(range(width)), "z", 1, ids, pad, directions, batch_size, position, progress
    )


def _n_heads(model: nn.Module, layer: int) -> int:
    module, read = _points(model, "z", layer)
    in_features = getattr(module, "in_features", None)
    if not isinstance(in_features, int):
        weight = getattr(module, "weight", None)
        in_features = int(weight.shape[1]) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else None
    if in_features is None:
        raise ValueError(f"cannot tell how many heads {hook_name(layer, 'z')} has")
    assert read.head_dim is not None
    return in_features // read.head_dim


def _exact(
    model: nn.Module,
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
    from tqdm.auto import tqdm

    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"unknown patching direction {d!r}; expected one of {', '.join(DIRECTIONS)}")
    keys = sorted({(v.layer, v.kind) for v in variants})
    n = len(pairs)
    maps = {d: torch.full((n, len(layers), len(columns)), math.nan) for d in directions}
    clean_m = torch.zeros(n)
    corrupt_m = torch.zeros(n)
    pair_rows = max(1, min(batch_size, n))
    with _eval_mode(model):
        bar = tqdm(total=len(directions) * len(variants) * n, desc=f"patch {kind}", disable=not progress)
        for start, chunk in _batches(pairs, pair_rows):
            clean = _encode([p.clean for p in chunk], pad)
            corrupt = _encode([p.corrupted for p in chunk], pad)
            clean_cache = _record(model, clean, keys, k, ids)
            corrupt_cache = _record(model, corrupt, keys, k, ids)
            rows = slice(start, start + len(chunk))
            clean_m[rows] = clean_cache.metric
            corrupt_m[rows] = corrupt_cache.metric
            per_pass = max(1, batch_size // len(chunk))
            for direction in directions:
                target, source = (corrupt, clean_cache) if direction == "denoise" else (clean, corrupt_cache)
                for v0 in range(0, len(variants), per_pass):
                    group = variants[v0 : v0 + per_pass]
                    metric = _patched_metric(model, target, source, [[p] for p in group], ids)
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
    model: nn.Module,
    tokenizer: Any,
    pairs: Sequence[TwinPair],
    patches: Sequence[Patch],
    direction: str = "denoise",
    k: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean metric [P], corrupted metric [P], patched metric [P]) with ALL `patches` applied together in one run
    (e.g. every offset of one layer). `k`: offsets to record (default: the largest patched offset + 1)."""
    _check_pairs(pairs)
    ids = metric_token_ids(tokenizer)
    pad = _pad_id(tokenizer)
    k = k or max([off for p in patches for off in p.offsets], default=0) + 1
    keys = sorted({(p.layer, p.kind) for p in patches})
    clean = _encode([p.clean for p in pairs], pad)
    corrupt = _encode([p.corrupted for p in pairs], pad)
    with _eval_mode(model):
        clean_cache = _record(model, clean, keys, k, ids)
        corrupt_cache = _record(model, corrupt, keys, k, ids)
        target, source = (corrupt, clean_cache) if direction == "denoise" else (clean, corrupt_cache)
        patched = _patched_metric(model, target, source, [list(patches)], ids)[0]
    return clean_cache.metric, corrupt_cache.metric, patched


# ------------------------------------------------------------------------------------------ attribution patching


def _grad_pass(
    model: nn.Module, run: _Run, keys: Sequence[tuple[int, str]], k: int, ids: tuple[int, int]
) -> tuple[dict[tuple[int, str], torch.Tensor], dict[tuple[int, str], torch.Tensor], torch.Tensor]:
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
        with torch.enable_grad(), _hooks(model, {key: keeper(key) for key in keys}):
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
            hd = _head_dim(model, key[0])
            a = a.reshape(a.shape[0], a.shape[1], -1, hd)
            g = g.reshape(g.shape[0], g.shape[1], -1, hd)
        mask = valid.reshape(*valid.shape, *([1] * (a.dim() - 2)))
        acts[key] = a * mask
        grad_out[key] = g * mask
    return acts, grad_out, metric.detach().cpu()


def attribution_patching(
    model: nn.Module,
    tokenizer: Any,
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
    _check_pairs(pairs)
    chosen = _layers(model, layers)
    ids = metric_token_ids(tokenizer)
    pad = _pad_id(tokenizer)
    keys = [(layer, "resid_post") for layer in chosen]
    if heads:
        keys += [(layer, "z") for layer in chosen]
    n = len(pairs)
    n_heads = {layer: _n_heads(model, layer) for layer in chosen} if heads else {}
    width = max(n_heads.values(), default=0)
    resid_maps = {d: torch.full((n, len(chosen), k), math.nan) for d in directions}
    head_maps = {d: torch.full((n, len(chosen), width), math.nan) for d in directions}
    clean_m = torch.zeros(n)
    corrupt_m = torch.zeros(n)
    with _eval_mode(model):
        for start, chunk in _batches(pairs, max(1, batch_size)):
            rows = slice(start, start + len(chunk))
            clean = _encode([p.clean for p in chunk], pad)
            corrupt = _encode([p.corrupted for p in chunk], pad)
            runs = {"clean": clean, "corrupted": corrupt}
            passes = {}
            targets = {"corrupted" if d == "denoise" else "clean" for d in directions}
            for name in ("clean", "corrupted"):
                if name in targets:  # gradients are needed at the run that gets patched
                    passes[name] = _grad_pass(model, runs[name], keys, k, ids)
                else:
                    cache = _record(model, runs[name], keys, k, ids)
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


# ------------------------------------------------------------------------------------------------ comparison


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return math.nan
    return float(spearmanr(a[ok], b[ok]).statistic)


def layer_ranking(result: PatchingResult, direction: str = "denoise") -> list[int]:
    """Layers ordered by their largest |effect| over the map's columns (most important first)."""
    effect = result.effect(direction).abs()
    score = torch.where(torch.isnan(effect), torch.zeros_like(effect), effect).max(dim=1).values
    order = torch.argsort(score, descending=True, stable=True).tolist()
    return [result.layers[i] for i in order]


def compare_patching(exact: PatchingResult, approx: PatchingResult, top: int = 3) -> dict[str, Any]:
    """How well attribution patching reproduces exact patching, per direction: Spearman correlation of the effects
    over all cells, the layer rankings (by largest |effect|) and whether their top-`top` sets agree, and the cells
    where they differ most, with the size of the activation change there as the usual reason (a first-order
    estimate degrades as the patch grows and as nonlinearities downstream saturate)."""
    if exact.layers != approx.layers or exact.columns != approx.columns:
        raise ValueError("exact and attribution maps cover different layers or columns")
    out: dict[str, Any] = {"kind": exact.kind, "top": top, "twin_gap": twin_gap(exact)}
    for direction in exact.maps:
        if direction not in approx.maps:
            continue
        e = exact.effect(direction)
        a = approx.effect(direction)
        rank_e = layer_ranking(exact, direction)
        rank_a = layer_ranking(approx, direction)
        n_top = min(top, len(exact.layers))
        cells = []
        diff = (e - a).abs()
        flat = torch.where(torch.isnan(diff), torch.full_like(diff, -1.0), diff).flatten()
        for index in torch.argsort(flat, descending=True)[: min(5, int((flat >= 0).sum()))].tolist():
            li, col = divmod(index, e.shape[1])
            cells.append(
                {
                    "layer": exact.layers[li],
                    "column": exact.columns[col],
                    "exact": round(float(e[li, col]), 6),
                    "attribution": round(float(a[li, col]), 6),
                }
            )
        out[direction] = {
            "spearman": _spearman(e.flatten().numpy(), a.flatten().numpy()),
            "spearman_layers": _spearman(
                np.asarray([float(_max_abs(e[i])) for i in range(len(exact.layers))]),
                np.asarray([float(_max_abs(a[i])) for i in range(len(exact.layers))]),
            ),
            "exact_layer_ranking": rank_e,
            "attribution_layer_ranking": rank_a,
            "top_layers_agree": set(rank_e[:n_top]) == set(rank_a[:n_top]),
            "largest_differences": cells,
        }
    out["note"] = explain_differences(out)
    return out


def twin_gap(result: PatchingResult) -> dict[str, float]:
    """How far apart the twins are on the metric before any patch: the mean clean - corrupted difference, the
    spread of the per-pair gaps, and the largest mean effect any patch made. When the gap is small against its own
    spread, the model does not tell the twins apart here and a patching map ranks noise."""
    gaps = (result.clean - result.corrupted).float()
    spread = float(gaps.std()) if gaps.numel() > 1 else 0.0
    largest = max((_max_abs(result.effect(d)) for d in result.maps), default=0.0)
    return {
        "mean": round(float(gaps.mean()), 6),
        "std": round(spread, 6),
        "sem": round(spread / max(gaps.numel(), 1) ** 0.5, 6),
        "largest_effect": round(largest, 6),
    }


def twins_told_apart(gap: dict[str, float]) -> bool:
    """Whether the twins' metric gap stands clear of zero: |mean| > 2 standard errors and at least 0.1 logit."""
    return abs(gap["mean"]) > max(2.0 * gap["sem"], 0.1)


def _max_abs(row: torch.Tensor) -> float:
    row = row.abs()
    row = torch.where(torch.isnan(row), torch.zeros_like(row), row)
    return float(row.max()) if row.numel() else 0.0


def explain_differences(comparison: dict[str, Any]) -> str:
    """A sentence per direction on where exact and attribution patching differ, for the report."""
    lines = []
    gap = comparison.get("twin_gap")
    if gap is not None and not twins_told_apart(gap):
        lines.append(
            f"the twins are not told apart at this position: mean clean - corrupted metric {gap['mean']:+.3f} logit "
            f"(standard error {gap['sem']:.3f}), and no patch moves the metric by more than {gap['largest_effect']:.3f}"
            ", so both maps rank noise and their top layers need not agree; localise on a model that separates the "
            "twins (or at a position where it does)"
        )
    for direction in DIRECTIONS:
        block = comparison.get(direction)
        if not block:
            continue
        rho = block["spearman"]
        agree = block["top_layers_agree"]
        worst = block["largest_differences"][:1]
        text = f"{direction}: Spearman {rho:.2f} over cells; top-{comparison['top']} layers " + (
            "agree" if agree else "differ"
        )
        if worst:
            w = worst[0]
            text += (
                f"; largest gap at layer {w['layer']}, column {w['column']} (exact {w['exact']:+.3f} vs attribution "
                f"{w['attribution']:+.3f})"
            )
        if not agree or (not math.isnan(rho) and rho < 0.5):
            text += (
                ". Attribution is a first-order estimate: it misses effects that pass through saturating "
                "nonlinearities (attention softmax, norms) and grows less accurate the larger the activation change "
                "a patch makes, which is largest in the early blocks and at positions where the twins' context differs"
            )
        lines.append(text)
    return "; ".join(lines) + ("." if lines else "")
