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
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolprior.errors import InputError, Problem

if TYPE_CHECKING:
    from torch import nn

DEFAULT_THRESHOLD = 0.5
DEFAULT_KIND_THRESHOLD = 0.10

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

# Parents that only group matrices (attention, MLP); a matrix directly under them is named by its leaf alone.
_CONTAINERS = frozenset(
    {
        "self_attn",
        "attn",
        "attention",
        "cross_attn",
        "linear_attn",
        "mlp",
        "feed_forward",
        "ffn",
        "block_sparse_moe",
        "mixer",
        "moe",
    }
)


@dataclass(frozen=True)
class LinearModule:
    """One weight matrix (or stack of expert matrices) of the model.

    `name` is the module path for an nn.Linear (for a wrapper such as Gemma4ClippableLinear: the wrapper's path, the
    inner linear in `inner`), or the parameter path for a fused expert / bare router weight. Paths are relative to
    the model PEFT would wrap (for a PeftModel: its base model), with PEFT's lora wrappers seen through.
    """

    name: str
    kind: str
    layer: int | None
    in_features: int
    out_features: int
    params: int
    wrapped: bool = False
    is_4bit: bool = False
    form: str = "linear"  # linear | wrapped | fused | param
    module_type: str = "Linear"
    num_experts: int = 1
    inner: str | None = None
    in_decoder: bool = True

    def lora_params(self, r: int) -> int:
        """LoRA parameters PEFT adds at rank r: r*(in+out), per expert for fused experts."""
        return r * self.num_experts * (self.in_features + self.out_features)


@dataclass(frozen=True)
class KindRow:
    kind: str
    form: str
    module_type: str
    count: int
    reached: int
    linear_params: int
    reached_params: int
    lora_params: int
    share: float  # of all decoder linear params


@dataclass(frozen=True)
class OutsideMatch:
    """A module or parameter PEFT would wrap outside the decoder blocks (vision tower, projections, embeddings)."""

    name: str
    module_type: str
    lora_params: int


@dataclass(frozen=True)
class Refusal:
    """A module the config matches that PEFT has no LoRA layer for: `get_peft_model` raises ValueError on it."""

    name: str
    module_type: str


@dataclass
class PreflightReport:
    model_class: str
    model_type: str | None
    num_layers: int
    layer_types: dict[str, int]
    target_modules: str | list[str]
    target_parameters: list[str] | None
    exclude_modules: str | list[str] | None
    r: int
    effective_target_modules: Any
    effective_target_parameters: list[str]
    rank_pattern: dict[str, int]
    rows: list[KindRow]
    decoder_linear_params: int
    reached_linear_params: int
    lora_params_decoder: int
    outside: list[OutsideMatch]
    refusals: list[Refusal]
    unanalysed: list[str]
    threshold: float = DEFAULT_THRESHOLD
    kind_threshold: float = DEFAULT_KIND_THRESHOLD
    all_linear_kinds: set[str] = field(default_factory=set)  # kinds "all-linear" would reach (for the hint)
    param_targets: dict[str, str] = field(default_factory=dict)  # fused/param kind -> target_parameters suffix
    outside_wrapped: list[LinearModule] = field(default_factory=list)  # wrappers outside the decoder blocks
    outside_wrapped_reached: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Reached decoder linear params / all decoder linear params (fused experts included)."""
        return self.reached_linear_params / self.decoder_linear_params if self.decoder_linear_params else 0.0

    @property
    def lora_params(self) -> int:
        """Analytic LoRA parameter count of everything PEFT would wrap; equals PEFT's trainable count."""
        return self.lora_params_decoder + sum(o.lora_params for o in self.outside)

    @property
    def missed_kinds(self) -> list[str]:
        return [row.kind for row in self.rows if row.reached == 0]

    @property
    def partial_kinds(self) -> list[str]:
        return [row.kind for row in self.rows if 0 < row.reached < row.count]

    @property
    def big_missed_kinds(self) -> list[str]:
        return [row.kind for row in self.rows if row.reached == 0 and row.share > self.kind_threshold]

    @property
    def reasons(self) -> list[str]:
        out = []
        if self.refusals:
            out.append("refusal")
        if self.coverage < self.threshold:
            out.append("coverage")
        if self.big_missed_kinds:
            out.append("missed_kind")
        return out

    @property
    def ok(self) -> bool:
        return not self.reasons

    def targets_text(self) -> str:
        text = f"target_modules {self.target_modules!r}" if self.target_modules is not None else "target_modules None"
        if self.target_parameters:
            text += f" + target_parameters {list(self.target_parameters)!r}"
        return text

    def message(self) -> str:
        """One line saying why the config is refused (empty when ok)."""
        if self.ok:
            return ""
        targets = self.targets_text()
        if self.refusals:
            types = Counter(ref.module_type for ref in self.refusals)
            what = ", ".join(f"{n} {t}" for t, n in types.items())
            in_tower = any(_outside_group(ref.name) in _TOWERS for ref in self.refusals)
            narrow = (
                r"narrow the names to the decoder with a regex such as '.*language_model.*\.(q_proj|k_proj|v_proj|o_proj)'"
                if in_tower
                else "name the inner nn.Linear instead"
            )
            return (
                f"{targets} match {what} module(s) PEFT cannot wrap (e.g. {self.refusals[0].name}), so get_peft_model "
                f"would raise; {narrow}, or use all-linear"
            )
        missed = self.missed_kinds
        # kinds "all-linear" cannot reach: fused experts / bare router weights, reachable only as target_parameters
        beyond = [k for k in missed if k not in self.all_linear_kinds and k in self.param_targets]
        needs_all_linear = any(k in self.all_linear_kinds for k in missed)
        is_all_linear = isinstance(self.target_modules, str) and self.target_modules.lower() == "all-linear"
        if beyond:
            params = ",".join(self.param_targets[k] for k in beyond)
            hint = (
                ("use all-linear, " if needs_all_linear and not is_all_linear else "")
                + "add --target-parameters "
                + params
                + " (fused expert weights are not nn.Linear, no module name reaches them) or pass --force"
            )
        else:
            hint = "use all-linear or pass --force"
        return (
            f"{targets} reach {_pct(self.coverage)} of the decoder's linear parameters "
            f"(missed: {', '.join(missed) if missed else 'none'}); {hint}"
        )

    def format(self, force: bool = False) -> str:
        """The table a person reads before training (`force`: the verdict says the refusal was overridden)."""
        lines = [f"LoRA preflight: {self.model_class}" + (f" ({self.model_type})" if self.model_type else "")]
        layer_desc = f"{self.num_layers} decoder layers"
        if self.layer_types:
            layer_desc += " (" + ", ".join(f"{n} {t}" for t, n in self.layer_types.items()) + ")"
        lines.append(layer_desc)
        lines.append(f"{self.targets_text()}, r={self.r}")
        if self.effective_target_parameters and not self.target_parameters:
            lines.append(f"PEFT adds target_parameters {sorted(self.effective_target_parameters)!r} (MoE conversion)")
        header = ("kind", "form", "modules", "reached", "linear params", "share", "LoRA params")
        table = [header]
        for row in self.rows:
            plain = row.form == "linear" and row.module_type == "Linear"
            form = row.form if plain else f"{row.form}:{row.module_type}"
            table.append(
                (
                    row.kind,
                    form,
                    str(row.count),
                    str(row.reached),
                    f"{row.linear_params:,}",
                    _pct(row.share),
                    f"{row.lora_params:,}",
                )
            )
        total_count = sum(row.count for row in self.rows)
        total_reached = sum(row.reached for row in self.rows)
        table.append(
            (
                "decoder total",
                "",
                str(total_count),
                str(total_reached),
                f"{self.decoder_linear_params:,}",
                "100%",
                f"{self.lora_params_decoder:,}",
            )
        )
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for i, cells in enumerate(table):
            if i == len(table) - 1:
                lines.append("  ".join("-" * w for w in widths))
            lines.append(
                "  ".join(
                    c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths, strict=True))
                )
            )
        if self.outside:
            groups = Counter(_outside_group(o.name) for o in self.outside)
            lora = sum(o.lora_params for o in self.outside)
            desc = ", ".join(f"{g}: {n}" for g, n in groups.items())
            lines.append(
                f"outside the decoder blocks PEFT also wraps {len(self.outside)} module(s) ({desc}): {lora:,} LoRA params"
            )
        lines.append(
            f"coverage: {_pct(self.coverage)} of decoder linear params reached "
            f"({self.reached_linear_params:,} of {self.decoder_linear_params:,})"
        )
        lines.append(
            f"LoRA params: {self.lora_params:,} (analytic r*(in+out) per reached matrix = PEFT trainable count)"
        )
        if self.missed_kinds:
            lines.append(f"missed kinds: {', '.join(self.missed_kinds)}")
        if self.partial_kinds:
            lines.append(f"partly reached kinds: {', '.join(self.partial_kinds)}")
        for ref in self.refusals[:5]:
            lines.append(f"PEFT cannot wrap: {ref.name} ({ref.module_type}) -- get_peft_model raises ValueError")
        if len(self.refusals) > 5:
            lines.append(f"... and {len(self.refusals) - 5} more modules PEFT cannot wrap")
        for name in self.unanalysed:
            lines.append(f"not counted analytically: {name}")
        lines.extend(f"note: {note}" for note in self.notes)
        if self.ok:
            lines.append("verdict: OK")
        elif force and not self.refusals:
            lines.append(f"verdict: below policy, accepted with --force -- {self.message()}")
        else:
            lines.append(f"verdict: REFUSED -- {self.message()}")
        return "\n".join(lines)


class PreflightError(InputError):
    """The LoRA config misses most of the adaptation surface (or PEFT would refuse it); carries the report."""

    def __init__(self, report: PreflightReport, source: str = "<model>"):
        self.report = report
        super().__init__(Problem(file=source, line=None, field=None, message=report.message()))


def check_or_raise(report: PreflightReport, force: bool = False, source: str = "<model>") -> PreflightReport:
    """Raise PreflightError unless the report is ok; `force` waives the coverage rules, never a PEFT refusal."""
    if report.ok:
        return report
    if force and not report.refusals:
        return report
    raise PreflightError(report, source=source)


# --------------------------------------------------------------------------------------------------------------------
# inventory


def _base_model(model: nn.Module) -> nn.Module:
    """The model PEFT wraps: a PeftModel's base model, anything else unchanged."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.get_base_model()
    return model


def _is_tuner_layer(module: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def _unwrap_tuner(module: nn.Module) -> nn.Module:
    while _is_tuner_layer(module):
        module = module.get_base_layer()
    return module


def _linear_shape(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) of an nn.Linear (incl. bitsandbytes Linear4bit/8bit, from attributes) or transformers Conv1D."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, nn.Linear):
        return int(module.in_features), int(module.out_features)
    if isinstance(module, Conv1D):
        return int(module.nx), int(module.nf)
    return None


def _is_4bit(module: nn.Module) -> bool:
    return type(module).__name__ == "Linear4bit" or type(getattr(module, "weight", None)).__name__ == "Params4bit"


def _decoder_layer_lists(model: nn.Module) -> list[str]:
    """Paths of the ModuleLists holding the decoder blocks."""
    from torch import nn

    found = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and all(type(_unwrap_tuner(child)).__name__.endswith("DecoderLayer") for child in module)
    ]
    if found:
        return found
    get_decoder = getattr(model, "get_decoder", None)
    decoder = None
    if callable(get_decoder):
        try:
            decoder = get_decoder()
        except Exception:
            decoder = None
    if decoder is not None:
        prefix = next((name for name, module in model.named_modules() if module is decoder), None)
        if prefix is not None:
            lists = [
                (len(module), name)
                for name, module in decoder.named_modules()
                if isinstance(module, nn.ModuleList) and len(module) > 0
            ]
            if lists:
                _, name = max(lists)
                return [f"{prefix}.{name}" if prefix else name]
    from transformers.modeling_layers import GradientCheckpointingLayer

    lists = [
        (len(module), name)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and all(isinstance(child, GradientCheckpointingLayer) for child in module)
    ]
    return [max(lists)[1]] if lists else []


def _kind(path_in_layer: list[str]) -> str:
    """'self_attn.q_proj' -> 'q_proj'; 'mlp.experts.gate_up_proj' -> 'experts.gate_up_proj'; 'router.proj' stays."""
    leaf = path_in_layer[-1]
    if len(path_in_layer) >= 2 and path_in_layer[-2] not in _CONTAINERS:
        return f"{path_in_layer[-2]}.{leaf}"
    return leaf


def _wrapped_child(module: nn.Module) -> tuple[str, nn.Module] | None:
    """A wrapper (Gemma4ClippableLinear): no parameters of its own and a single child, which is a linear."""
    if any(True for _ in module.named_parameters(recurse=False)):
        return None
    children = list(module.named_children())
    if len(children) != 1:
        return None
    name, child = children[0]
    if _linear_shape(_unwrap_tuner(child)) is None:
        return None
    return name, child


def linear_inventory(model: nn.Module, decoder_only: bool = True) -> list[LinearModule]:
    """Every weight matrix inside the decoder blocks (`decoder_only=False`: in the whole model, lm_head included).

    Found: nn.Linear and transformers Conv1D (bitsandbytes 4-bit layers included, their shape read from
    in_features/out_features since the packed weight is [n, 1]); single-linear wrappers such as Gemma4ClippableLinear
    (one entry named after the wrapper, its inner linear counted once); fused 3-D expert parameters and bare 2-D
    weight parameters of non-linear modules (MoE routers). PEFT lora layers are seen through to their base layer.
    Works on meta-device models: only shapes are read.
    """
    from torch import nn

    base = _base_model(model)
    layer_lists = _decoder_layer_lists(base)
    entries: list[LinearModule] = []

    def location(path: str) -> tuple[bool, int | None, list[str]]:
        for prefix in layer_lists:
            if path.startswith(prefix + "."):
                rest = path[len(prefix) + 1 :].split(".")
                if rest and rest[0].isdigit():
                    return True, int(rest[0]), rest[1:]
        return False, None, path.split(".")

    def add_linear(path: str, module: nn.Module, wrapper: nn.Module | None = None, inner: str | None = None) -> None:
        in_decoder, layer, rel = location(path)
        if decoder_only and not in_decoder:
            return
        shape = _linear_shape(module)
        assert shape is not None
        in_f, out_f = shape
        entries.append(
            LinearModule(
                name=path,
                kind=_kind(rel) if rel else path,
                layer=layer,
                in_features=in_f,
                out_features=out_f,
                params=in_f * out_f,
                wrapped=wrapper is not None,
                is_4bit=_is_4bit(module),
                form="wrapped" if wrapper is not None else "linear",
                module_type=type(wrapper if wrapper is not None else module).__name__,
                inner=inner,
                in_decoder=in_decoder,
            )
        )

    def visit(path: str, module: nn.Module) -> None:
        module = _unwrap_tuner(module)
        if path and _linear_shape(module) is not None:
            add_linear(path, module)
            return
        if path and not isinstance(module, (nn.Embedding, nn.modules.conv._ConvNd)):
            wrapped = _wrapped_child(module)
            if wrapped is not None:
                child_name, child = wrapped
                add_linear(path, _unwrap_tuner(child), wrapper=module, inner=f"{path}.{child_name}")
                return
            in_decoder, layer, rel = location(path)
            if in_decoder or not decoder_only:
                for pname, param in module.named_parameters(recurse=False):
                    if param.dim() == 3:
                        num, a, b = (int(s) for s in param.shape)
                        # transformers' fused experts are [E, out, in] unless the module says is_transposed
                        out_f, in_f = (b, a) if getattr(module, "is_transposed", False) else (a, b)
                        entries.append(
                            LinearModule(
                                name=f"{path}.{pname}",
                                kind=_kind([*rel, pname]),
                                layer=layer,
                                in_features=in_f,
                                out_features=out_f,
                                params=num * in_f * out_f,
                                form="fused",
                                module_type=type(module).__name__,
                                num_experts=num,
                                in_decoder=in_decoder,
                            )
                        )
                    elif param.dim() == 2:
                        out_f, in_f = (int(s) for s in param.shape)
                        entries.append(
                            LinearModule(
                                name=f"{path}.{pname}",
                                kind=_kind(rel) if pname == "weight" and rel else _kind([*rel, pname]),
                                layer=layer,
                                in_features=in_f,
                                out_features=out_f,
                                params=in_f * out_f,
                                form="param",
                                module_type=type(module).__name__,
                                in_decoder=in_decoder,
                            )
                        )
        if isinstance(module, (nn.Embedding, nn.modules.conv._ConvNd)):
            return
        for child_name, child in module.named_children():
            visit(f"{path}.{child_name}" if path else child_name, child)

    visit("", base)
    return entries


# --------------------------------------------------------------------------------------------------------------------
# matching, the PEFT way


def _lora_config(
    target_modules: str | list[str] | None,
    r: int,
    exclude_modules: str | list[str] | None,
    target_parameters: list[str] | None,
) -> Any:
    from peft import LoraConfig

    kwargs: dict[str, Any] = {"r": r, "target_modules": target_modules, "lora_dropout": 0.0}
    if exclude_modules:
        kwargs["exclude_modules"] = exclude_modules
    if target_parameters:
        kwargs["target_parameters"] = list(target_parameters)
    return LoraConfig(**kwargs)


def effective_lora_config(model: nn.Module, lora_config: Any) -> Any:
    """A copy of `lora_config` after the rewrites PEFT 0.21's inject_adapter applies before matching."""
    from peft.import_utils import is_transformers_ge_v5
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

    config = copy.deepcopy(lora_config)
    base = _base_model(model)
    if is_transformers_ge_v5 and hasattr(getattr(base, "config", None), "model_type"):
        from peft.utils.transformers_weight_conversion import (
            convert_peft_config_for_transformers,
            get_model_conversion_mapping,
        )

        convert_peft_config_for_transformers(config, model=base, conversions=get_model_conversion_mapping(base))
    return _maybe_include_all_linear_layers(config, base)


def _supported_lora_params(module: nn.Module, r: int) -> int | None:
    """LoRA params PEFT adds to `module` at rank r; None if PEFT has no LoRA layer for it (get_peft_model raises)."""
    from torch import nn

    module = _unwrap_tuner(module)
    shape = _linear_shape(module)
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
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists
    from peft.utils.other import get_pattern_key

    base = _base_model(model)
    rank_pattern = getattr(config, "rank_pattern", None) or {}

    def rank(key: str) -> int:
        return rank_pattern.get(get_pattern_key(rank_pattern.keys(), key), config.r)

    modules: dict[str, tuple[str, int | None]] = {}
    adapter_prefixes: list[str] = []
    named = list(base.named_modules())
    for key, module in named:
        if not key or any(key.startswith(p) for p in adapter_prefixes):
            continue
        if _is_tuner_layer(module):
            adapter_prefixes.append(key + ".")
        if config.target_modules is None:
            continue
        result = check_target_module_exists(config, key)
        if isinstance(result, _ExcludedModule) or not result:
            continue
        modules[key] = (type(_unwrap_tuner(module)).__name__, _supported_lora_params(module, rank(key)))

    params: dict[str, int] = {}
    targets = sorted(set(getattr(config, "target_parameters", None) or []))
    if targets:
        for key, module in named:
            if any(seg.startswith("lora_") for seg in key.split(".")):
                continue  # adapter internals of an already-wrapped model
            module = _unwrap_tuner(module)
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


_TOWERS = (
    "vision_tower",
    "audio_tower",
    "visual",
    "vision_model",
    "multi_modal_projector",
    "embed_vision",
    "embed_audio",
)


def _outside_group(name: str) -> str:
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part in _TOWERS:
            return part
        if part == "layers" and i + 1 < len(parts) and parts[i + 1].isdigit():
            return ".".join(parts[:i])
    return parts[-1]


def preflight(
    model: nn.Module,
    target_modules: str | list[str],
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
    base = _base_model(model)
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
    report.notes.extend(_notes(report))
    return report


def _notes(report: PreflightReport) -> list[str]:
    notes = []
    fused = [row for row in report.rows if row.form == "fused"]
    if fused:
        params = sum(row.linear_params for row in fused)
        names = ", ".join(row.kind for row in fused)
        reached = [row for row in fused if row.reached]
        if not reached:
            notes.append(
                f"experts ({names}): fused 3-D parameters, not nn.Linear -- not reachable by target_modules; "
                f"{params:,} params ({_pct(params / report.decoder_linear_params)}) missed. PEFT reaches them only "
                "through target_parameters (LoRA per expert, lora_dropout must be 0)"
            )
        else:
            how = (
                "target_parameters that PEFT's transformers-v5 MoE conversion derived from the target names"
                if not report.target_parameters
                else "target_parameters"
            )
            doubled = {k: v for k, v in report.rank_pattern.items() if v != report.r}
            extra = f"; rank_pattern {doubled} (gate and up fused, so rank doubled)" if doubled else ""
            notes.append(
                f"experts ({names}): fused 3-D parameters, not nn.Linear -- reached via {how}{extra}; "
                f"{sum(row.reached_params for row in fused):,} of {params:,} params; PEFT's ParamWrapper raises "
                "unless lora_dropout is 0"
            )
    full_rank = [row.kind for row in report.rows if row.reached and row.lora_params >= row.reached_params]
    if full_rank:
        notes.append(
            f"{', '.join(full_rank)}: the LoRA adapter is as large as the matrix itself (rank >= its smaller side), "
            "so it is not low-rank there; harmless, but exclude_modules or rank_pattern can trim it"
        )
    for row in report.rows:
        if row.form == "wrapped":
            notes.append(
                f"{row.kind}: {row.module_type} wraps an nn.Linear; PEFT wraps the inner .linear, never the wrapper"
            )
    if report.outside_wrapped:
        types = ", ".join(sorted({e.module_type for e in report.outside_wrapped}))
        groups = ", ".join(sorted({_outside_group(e.name) for e in report.outside_wrapped}))
        notes.append(
            f"{len(report.outside_wrapped)} {types} wrappers outside the decoder ({groups}): "
            f"{report.outside_wrapped_reached} reached through their inner .linear; PEFT cannot wrap the wrapper "
            "itself, so naming it (e.g. q_proj) makes get_peft_model raise"
        )
    if any(_outside_group(o.name) in _TOWERS for o in report.outside):
        notes.append(
            "the config also adapts the vision/audio tower; for a text-only agent add e.g. "
            "--exclude-modules '.*(vision_tower|audio_tower|embed_vision|embed_audio).*'"
        )
    return notes


def _pct(x: float) -> str:
    if x == 0:
        return "0%"
    if x < 0.01:
        return f"{100 * x:.2f}%"
    if x < 0.1:
        return f"{100 * x:.1f}%"
    return f"{100 * x:.0f}%"


def peft_trainable_count(model: nn.Module, lora_config: Any) -> int:
    """Trainable parameters after `peft.get_peft_model(copy of model, copy of lora_config)`; model left untouched.

    The copy is a deep copy (cheap for meta-device and tiny models); adapter weights are created empty
    (`low_cpu_mem_usage`), so counting a full-size meta model allocates nothing.
    """
    import warnings

    from peft import get_peft_model

    base = _base_model(model)
    clone = copy.deepcopy(base)
    config = copy.deepcopy(lora_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(clone, config, low_cpu_mem_usage=True)
    return sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
