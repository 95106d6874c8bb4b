"""The weight matrices of a model's decoder blocks, each with its kind and form (`linear_inventory`): what the LoRA
preflight (training.preflight) measures a config's reach against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard

from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.pytorch_utils import Conv1D

if TYPE_CHECKING:
    from peft.tuners.tuners_utils import BaseTunerLayer

# Parents that only group matrices (attention, MLP); a matrix directly under them is named by its leaf alone.
CONTAINERS = frozenset(
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


def base_model(model: nn.Module) -> nn.Module:
    """The model PEFT wraps: a PeftModel's base model, anything else unchanged."""
    # lazy: PEFT loads only when a model is adapted or checked, not when a config is read
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.get_base_model()
    return model


def is_tuner_layer(module: nn.Module) -> TypeGuard[BaseTunerLayer]:
    # lazy: PEFT loads only when a model is adapted or checked, not when a config is read
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def unwrap_tuner(module: nn.Module) -> nn.Module:
    while is_tuner_layer(module):
        module = module.get_base_layer()
    return module


def linear_shape(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) of an nn.Linear (incl. bitsandbytes Linear4bit/8bit, from attributes) or transformers Conv1D."""

    if isinstance(module, nn.Linear):
        return int(module.in_features), int(module.out_features)
    if isinstance(module, Conv1D):
        return int(module.nx), int(module.nf)
    return None


def _is_4bit(module: nn.Module) -> bool:
    return type(module).__name__ == "Linear4bit" or type(getattr(module, "weight", None)).__name__ == "Params4bit"


def _decoder_layer_lists(model: nn.Module) -> list[str]:
    """Paths of the ModuleLists holding the decoder blocks."""

    found = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and all(type(unwrap_tuner(child)).__name__.endswith("DecoderLayer") for child in module)
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
    if len(path_in_layer) >= 2 and path_in_layer[-2] not in CONTAINERS:
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
    if linear_shape(unwrap_tuner(child)) is None:
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

    base = base_model(model)
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
        shape = linear_shape(module)
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
        module = unwrap_tuner(module)
        if path and linear_shape(module) is not None:
            add_linear(path, module)
            return
        if path and not isinstance(module, (nn.Embedding, nn.modules.conv._ConvNd)):
            wrapped = _wrapped_child(module)
            if wrapped is not None:
                child_name, child = wrapped
                add_linear(path, unwrap_tuner(child), wrapper=module, inner=f"{path}.{child_name}")
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
