"""LoRA target preflight: which of the decoder's weight matrices a LoRA config actually reaches, before training.

The trap: a `target_modules` list that matches only part of the decoder trains "successfully" -- the loss goes down,
the adapter saves -- while most of the adaptation surface stays frozen. Qwen3.5's Gated DeltaNet layers have no
q/k/v/o (they have in_proj_qkv, in_proj_z, in_proj_a, in_proj_b, out_proj); MoE experts in transformers 5 are fused
3-D parameters, not nn.Linear, so no module name reaches them; Gemma 4's vision tower wraps its projections in
`Gemma4ClippableLinear`, which PEFT cannot wrap. The preflight lists every weight matrix in the decoder blocks, asks
PEFT's own matching code which ones the config reaches, and refuses configs that miss most of them.

Agreement with PEFT is by construction, not by re-implementation: the preflight applies the same steps as
`BaseTuner.inject_adapter` of PEFT 0.21 to a copy of the config --

1. `convert_peft_config_for_transformers` (transformers >= 5): for MoE models whose experts were fused in v5
   (qwen3_moe, mixtral, deepseek_v3, ... -- not qwen3_5_moe, not gemma4), PEFT rewrites expert/router names in
   `target_modules` (and "all-linear") into `target_parameters` and doubles rank/alpha on the fused gate_up_proj;
2. `_maybe_include_all_linear_layers`: "all-linear" becomes every nn.Linear / Conv1D except the output layer;
3. `check_target_module_exists` for every module name, and the `target_parameters` suffix match of
   `_inject_parameters` for every parameter;
4. `get_pattern_key` on `rank_pattern` for each match's rank.

A matched module PEFT has no LoRA layer for (anything but Linear, Conv1D, Embedding, ConvNd, MultiheadAttention)
makes `get_peft_model` raise; the preflight reports it as a refusal instead.

Counting: a reached matrix of shape out x in adds r*(in+out) LoRA parameters (r*E*(in+out) for E fused experts);
`lora_params` sums them over everything PEFT would wrap, inside and outside the decoder, and equals the trainable
parameter count of `get_peft_model` (`peft_trainable_count`; the tests check it on every tiny architecture).

Policy (`PreflightReport.ok`): a config is refused when
- PEFT itself would raise (a matched module it cannot wrap), or
- it reaches less than `threshold` (default 0.5) of the decoder's linear parameters, or
- it entirely misses a kind of matrix (a leaf name such as gate_proj or experts.down_proj) that holds more than
  `kind_threshold` (default 10%) of them.
The second rule alone would pass a config that skips, say, every MLP down_proj of a model with a large attention
share; the third catches it. An attention-only config on a dense transformer is refused too: MLP matrices hold about
two thirds of a decoder, and QLoRA (Dettmers et al., 2023) found all linear layers are needed to match full
fine-tuning. `check_or_raise(report, force=True)` accepts such a config anyway -- except a PEFT refusal, which
`get_peft_model` would raise regardless.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from torch import nn

from toolprior.errors import InputError
from toolprior.training.linear_inventory import (
    LinearModule,
    base_model,
    is_tuner_layer,
    linear_inventory,
    linear_shape,
    unwrap_tuner,
)
from toolprior.training.preflight_report import (
    DEFAULT_KIND_THRESHOLD,
    DEFAULT_THRESHOLD,
    KindRow,
    OutsideMatch,
    PreflightReport,
    Refusal,
    report_notes,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Table order for well-known kinds (attention, DeltaNet, MLP); other kinds follow in model order.
_ROW_ORDER = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "in_proj_qkv",
    "in_proj_z",
    "in_proj_a",
    "in_proj_b",
    "out_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


def _lora_config(
    target_modules: str | list[str] | None,
    r: int,
    exclude_modules: str | list[str] | None,
    target_parameters: list[str] | None,
) -> Any:
    # lazy: PEFT loads only when a model is adapted or checked, not when a config is read
    from peft import LoraConfig

    kwargs: dict[str, Any] = {"r": r, "target_modules": target_modules, "lora_dropout": 0.0}
    if exclude_modules:
        kwargs["exclude_modules"] = exclude_modules
    if target_parameters:
        kwargs["target_parameters"] = list(target_parameters)
    return LoraConfig(**kwargs)


def effective_lora_config(model: nn.Module, lora_config: Any) -> Any:
    """A copy of `lora_config` after the rewrites PEFT 0.21's inject_adapter applies before matching."""
    # lazy: PEFT loads only when a model is adapted or checked, not when a config is read
    from peft.import_utils import is_transformers_ge_v5
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

    config = copy.deepcopy(lora_config)
    base = base_model(model)
    if is_transformers_ge_v5 and hasattr(getattr(base, "config", None), "model_type"):
        # lazy: PEFT loads only when a model is adapted or checked, not when a config is read
        from peft.utils.transformers_weight_conversion import (
            convert_peft_config_for_transformers,
            get_model_conversion_mapping,
        )

        # a module with a transformers config (model_type) is a transformers model
        transformers_model = cast("PreTrainedModel", base)
        conversions = get_model_conversion_mapping(transformers_model)
        convert_peft_config_for_transformers(config, model=base, conversions=conversions)
    return _maybe_include_all_linear_layers(config, base)


def _supported_lora_params(module: nn.Module, r: int) -> int | None:
    """LoRA params PEFT adds to `module` at rank r; None if PEFT has no LoRA layer for it (get_peft_model raises)."""

    module = unwrap_tuner(module)
    shape = linear_shape(module)
    if shape is not None:
        return r * (shape[0] + shape[1])
    if isinstance(module, nn.Embedding):
        return r * (module.num_embeddings + module.embedding_dim)
    if isinstance(module, nn.modules.conv._ConvNd) and type(module).__name__ in ("Conv1d", "Conv2d", "Conv3d"):
        a = module.in_channels * r * math.prod(module.kernel_size)
        b = module.out_channels * (r // module.groups)
        return a + b
    if isinstance(module, nn.MultiheadAttention):
        return -1  # supported, not counted analytically
    return None


@dataclass
class _Matches:
    modules: dict[str, tuple[str, int | None]]  # key -> (module type, lora params or None if unsupported)
    params: dict[str, int]  # parameter key -> lora params


def _match(model: nn.Module, config: Any) -> _Matches:
    # lazy: PEFT loads only when a model is adapted or checked, not when a config is read
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists
    from peft.utils.other import get_pattern_key

    base = base_model(model)
    rank_pattern: dict[str, int] = getattr(config, "rank_pattern", None) or {}

    def rank(key: str) -> int:
        return rank_pattern.get(get_pattern_key(list(rank_pattern), key), config.r)

    modules: dict[str, tuple[str, int | None]] = {}
    adapter_prefixes: list[str] = []
    named = list(base.named_modules())
    for key, module in named:
        if not key or any(key.startswith(p) for p in adapter_prefixes):
            continue
        if is_tuner_layer(module):
            adapter_prefixes.append(key + ".")
        if config.target_modules is None:
            continue
        result = check_target_module_exists(config, key)
        if isinstance(result, _ExcludedModule) or not result:
            continue
        modules[key] = (type(unwrap_tuner(module)).__name__, _supported_lora_params(module, rank(key)))

    params: dict[str, int] = {}
    targets = sorted(set(getattr(config, "target_parameters", None) or []))
    if targets:
        for key, module in named:
            if any(seg.startswith("lora_") for seg in key.split(".")):
                continue  # adapter internals of an already-wrapped model
            module = unwrap_tuner(module)
            clean = key.replace(".base_layer", "")
            for pname, param in module.named_parameters(recurse=False):
                pkey = f"{clean}.{pname}"
                if pkey in params:
                    continue
                if pkey in targets or any(pkey.endswith(f".{t}") for t in targets):
                    shape = tuple(int(s) for s in param.shape)
                    if len(shape) == 3:
                        params[pkey] = rank(pkey) * shape[0] * (shape[1] + shape[2])
                    elif len(shape) == 2:
                        params[pkey] = rank(pkey) * (shape[0] + shape[1])
    return _Matches(modules=modules, params=params)


def _resolve(inventory: list[LinearModule], matches: _Matches) -> tuple[set[str], dict[str, int]]:
    """Inventory entries the matches reach (a wrapper through its inner linear), and each one's LoRA params."""
    reached: set[str] = set()
    lora: dict[str, int] = {}
    for entry in inventory:
        if entry.form in ("fused", "param"):
            if entry.name in matches.params:
                reached.add(entry.name)
                lora[entry.name] = matches.params[entry.name]
            continue
        hit = matches.modules.get((entry.inner if entry.wrapped else entry.name) or "")
        if hit is not None and hit[1] is not None and hit[1] >= 0:
            reached.add(entry.name)
            lora[entry.name] = hit[1]
    return reached, lora


def preflight(
    model: nn.Module,
    target_modules: str | list[str] | None,
    r: int,
    exclude_modules: str | list[str] | None = None,
    target_parameters: list[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    kind_threshold: float = DEFAULT_KIND_THRESHOLD,
) -> PreflightReport:
    """Which decoder matrices a LoRA config (target_modules, r, exclude_modules, target_parameters) reaches.

    Never loads or touches weights; meta-device and 4-bit models work. See the module docstring for the policy.
    """
    if r <= 0:
        raise InputError(f"r must be a positive integer, not {r}")
    base = base_model(model)
    config = effective_lora_config(base, _lora_config(target_modules, r, exclude_modules, target_parameters))
    matches = _match(base, config)
    inventory = linear_inventory(base, decoder_only=False)
    decoder = [e for e in inventory if e.in_decoder]
    if not decoder:
        raise InputError(f"{type(base).__name__}: no decoder blocks with linear layers found")

    reached_keys, entry_lora = _resolve(inventory, matches)
    refused: dict[str, str] = {k: t for k, (t, lora) in matches.modules.items() if lora is None}

    decoder_keys = {e.name for e in decoder} | {e.inner for e in decoder if e.inner}
    decoder_params_keys = {e.name for e in decoder if e.form in ("fused", "param")}
    outside: list[OutsideMatch] = []
    unanalysed: list[str] = []
    for key, (mtype, lora) in matches.modules.items():
        if lora is None or key in decoder_keys:
            continue
        if lora < 0:
            unanalysed.append(f"{key} ({mtype})")
            continue
        outside.append(OutsideMatch(name=key, module_type=mtype, lora_params=lora))
    for key, lora in matches.params.items():
        if key not in decoder_params_keys:
            outside.append(OutsideMatch(name=key, module_type="parameter", lora_params=lora))

    # Which kinds "all-linear" (with the same exclusions and target_parameters) would reach: decides the hint.
    if isinstance(target_modules, str) and target_modules.lower() == "all-linear":
        all_linear_reached = reached_keys
    else:
        all_linear = effective_lora_config(base, _lora_config("all-linear", r, exclude_modules, target_parameters))
        all_linear_reached, _ = _resolve(inventory, _match(base, all_linear))
    all_linear_kinds = {e.kind for e in decoder if e.name in all_linear_reached}

    total = sum(e.params for e in decoder)
    order: dict[str, list[LinearModule]] = {}
    for e in decoder:
        order.setdefault(e.kind, []).append(e)
    seen = list(order)
    kinds = sorted(seen, key=lambda k: (_ROW_ORDER.index(k) if k in _ROW_ORDER else len(_ROW_ORDER), seen.index(k)))
    rows = []
    for kind in kinds:
        group = order[kind]
        first = group[0]
        params = sum(e.params for e in group)
        rows.append(
            KindRow(
                kind=kind,
                form=first.form,
                module_type=first.module_type,
                count=len(group),
                reached=sum(1 for e in group if e.name in reached_keys),
                linear_params=params,
                reached_params=sum(e.params for e in group if e.name in reached_keys),
                lora_params=sum(entry_lora.get(e.name, 0) for e in group),
                share=params / total if total else 0.0,
            )
        )

    layer_types: dict[str, int] = {}
    text_config = getattr(base, "config", None)
    if text_config is not None and hasattr(text_config, "get_text_config"):
        text_config = text_config.get_text_config()
    types = getattr(text_config, "layer_types", None)
    if types:
        layer_types = dict(Counter(types))

    report = PreflightReport(
        model_class=type(base).__name__,
        model_type=getattr(getattr(base, "config", None), "model_type", None),
        num_layers=len({(e.layer) for e in decoder if e.layer is not None}),
        layer_types=layer_types,
        target_modules=target_modules,
        target_parameters=list(target_parameters) if target_parameters else None,
        exclude_modules=exclude_modules,
        r=r,
        effective_target_modules=config.target_modules,
        effective_target_parameters=sorted(set(getattr(config, "target_parameters", None) or [])),
        rank_pattern=dict(getattr(config, "rank_pattern", None) or {}),
        rows=rows,
        decoder_linear_params=total,
        reached_linear_params=sum(row.reached_params for row in rows),
        lora_params_decoder=sum(row.lora_params for row in rows),
        outside=outside,
        refusals=[Refusal(name=k, module_type=t) for k, t in refused.items()],
        unanalysed=unanalysed,
        threshold=threshold,
        kind_threshold=kind_threshold,
        all_linear_kinds=all_linear_kinds,
        param_targets={e.kind: ".".join(e.name.split(".")[-2:]) for e in decoder if e.form in ("fused", "param")},
        outside_wrapped=[e for e in inventory if e.wrapped and not e.in_decoder],
        outside_wrapped_reached=sum(1 for e in inventory if e.wrapped and not e.in_decoder and e.name in reached_keys),
    )
    report.notes.extend(report_notes(report))
    return report


def peft_trainable_count(model: nn.Module, lora_config: Any) -> int:
    """Trainable parameters after `peft.get_peft_model(copy of model, copy of lora_config)`; model left untouched.

    The copy is a deep copy (cheap for meta-device and tiny models); adapter weights are created empty
    (`low_cpu_mem_usage`), so counting a full-size meta model allocates nothing.
    """

    # lazy: PEFT loads only when a model is adapted or checked, not when a config is read
    from peft import get_peft_model

    base = base_model(model)
    clone = copy.deepcopy(base)
    config = copy.deepcopy(lora_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(clone, config, low_cpu_mem_usage=True)
    return sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


__all__ = ["effective_lora_config", "peft_trainable_count", "preflight"]
