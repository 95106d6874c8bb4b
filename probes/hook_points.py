"""Names for places in a model: one TransformerLens-style scheme whatever the backend reads them with.

    blocks.{i}.hook_resid_post   output hidden state of decoder block i              [..., d_model]
    blocks.{i}.hook_attn_out     output of block i's attention module                [..., d_model]
    blocks.{i}.hook_mlp_out      output of block i's MLP module                      [..., d_model]
    blocks.{i}.attn.hook_z       attention output per head, before the output        [..., n_heads, head_dim]
                                 projection: the input of o_proj, split into heads

What each name reads, precisely:

- `hook_resid_post` is what decoder block i returns: the residual stream after the block, the same tensor as
  `output_hidden_states=True` gives at index i + 1 (except after the last block, where Hugging Face hands back
  the final-normed state instead).
- `hook_attn_out` / `hook_mlp_out` are the outputs of the block's attention and MLP modules. On architectures with
  sandwich norms (Gemma) they are read BEFORE the post-attention / post-feedforward norm, so they are not exactly
  what is added to the residual stream. Gemma 4 MoE blocks combine `mlp` and `experts` inside the block itself;
  no module outputs the whole MLP contribution there, so `hook_mlp_out` raises on them.
- `hook_z` is the input of `o_proj` (Llama, Qwen3, Gemma 4, Qwen3.5 full attention; on Qwen3.5 that input is
  already multiplied by the output gate), reshaped to [..., n_heads, head_dim] with the layer's own head_dim
  (Gemma 4's full-attention layers use a larger one than its sliding layers). On Qwen3.5's Gated DeltaNet
  (`linear_attention`) layers there is no o_proj: `hook_z` reads the input of `out_proj`, the DeltaNet's output
  per VALUE head after its gated RMSNorm, [..., linear_num_value_heads, linear_value_head_dim].

`resolve` finds the module behind a name in plain, 4-bit (bitsandbytes) and PEFT-wrapped models alike: blocks are
found by `toolprior.modeling.decoder_layers`, and the modules inside a block by their attribute names, so a LoRA
wrapper around o_proj is read at the wrapper (its input is the input of the base layer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from toolprior.decoder_config import text_config
from toolprior.model_protocols import CausalLM
from toolprior.modeling import decoder_layers

HookKind = Literal["resid_post", "attn_out", "mlp_out", "z"]
HOOK_KINDS: tuple[str, ...] = ("z", "attn_out", "mlp_out", "resid_post")  # the order they fire within a block

_TEMPLATES: dict[str, str] = {
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "z": "blocks.{layer}.attn.hook_z",
}
_NAME_RE = re.compile(r"^blocks\.(\d+)\.(hook_resid_post|hook_attn_out|hook_mlp_out|attn\.hook_z)$")
_SUFFIX_KIND = {
    "hook_resid_post": "resid_post",
    "hook_attn_out": "attn_out",
    "hook_mlp_out": "mlp_out",
    "attn.hook_z": "z",
}

# Attribute names of the parts of a decoder block, across architectures (first match wins).
_ATTN_NAMES = ("self_attn", "linear_attn", "attn", "self_attention", "attention", "mixer")
_MLP_NAMES = ("mlp", "feed_forward", "block_sparse_moe", "ffn")
_OUT_PROJ_NAMES = ("o_proj", "out_proj", "dense", "c_proj", "wo")


@dataclass(frozen=True, order=True)
class HookPoint:
    """A parsed hook name: decoder block `layer` and what is read there (`kind`)."""

    layer: int
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in _TEMPLATES:
            raise ValueError(f"unknown hook kind {self.kind!r}; expected one of {', '.join(_TEMPLATES)}")
        if self.layer < 0:
            raise ValueError(f"hook layer must be >= 0, got {self.layer}")

    @property
    def name(self) -> str:
        return _TEMPLATES[self.kind].format(layer=self.layer)

    def __str__(self) -> str:
        return self.name

    @property
    def fire_order(self) -> tuple[int, int]:
        """Where this point is reached in a forward pass: by block, then z < attn_out < mlp_out < resid_post."""
        return (self.layer, HOOK_KINDS.index(self.kind))


def hook_name(layer: int, kind: str) -> str:
    """`hook_name(3, "resid_post") == "blocks.3.hook_resid_post"`."""
    return HookPoint(layer, kind).name


def parse_hook_name(name: str | HookPoint) -> HookPoint:
    """`parse_hook_name("blocks.3.attn.hook_z") == HookPoint(layer=3, kind="z")`; ValueError on anything else."""
    if isinstance(name, HookPoint):
        return name
    match = _NAME_RE.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            f"not a hook name: {name!r}; expected blocks.{{i}}.hook_resid_post, blocks.{{i}}.hook_attn_out, "
            "blocks.{i}.hook_mlp_out or blocks.{i}.attn.hook_z"
        )
    return HookPoint(int(match.group(1)), _SUFFIX_KIND[match.group(2)])


def all_resid_post(model: CausalLM) -> list[str]:
    """Every block's `hook_resid_post`, in order: the usual "all layers" request."""
    return [hook_name(i, "resid_post") for i in range(len(decoder_layers(model)))]


def all_hook_names(model: CausalLM, kinds: tuple[str, ...] = ("resid_post",)) -> list[str]:
    """Every block's hook of each of `kinds`, in forward order."""
    points = [HookPoint(i, k) for i in range(len(decoder_layers(model))) for k in kinds]
    return [p.name for p in sorted(points, key=lambda p: p.fire_order)]


@dataclass(frozen=True)
class Read:
    """How to read a hook point off its module: its first input or its output, split into heads or not."""

    source: Literal["input", "output"]
    head_dim: int | None = None

    def extract(self, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> torch.Tensor:
        """The tensor this point names, from a forward hook's (args, kwargs, output)."""
        value = first_tensor(output if self.source == "output" else first_input(args, kwargs))
        return value if self.head_dim is None else split_heads(value, self.head_dim)


def first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A module call's first input: the first positional argument, else the first keyword argument."""
    if args:
        return args[0]
    if not kwargs:
        raise ValueError("the module was called without inputs")
    return next(iter(kwargs.values()))


def split_heads(value: torch.Tensor, head_dim: int) -> torch.Tensor:
    """[B, T, n_heads * head_dim] (or already [B, T, n_heads, head_dim]) -> [B, T, n_heads, head_dim]."""
    return value.reshape(value.shape[0], value.shape[1], -1, head_dim)


def first_tensor(value: Any) -> torch.Tensor:
    """The tensor inside a module's output: itself, or the first element of a tuple / ModelOutput."""
    while not isinstance(value, torch.Tensor):
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        elif hasattr(value, "to_tuple"):
            value = value.to_tuple()[0]
        else:
            raise TypeError(f"expected a tensor or a tuple starting with one, got {type(value).__name__}")
    return value


def _child(module: nn.Module, names: tuple[str, ...]) -> tuple[str, nn.Module] | None:
    for name in names:
        child = getattr(module, name, None)
        if isinstance(child, nn.Module):
            return name, child
    return None


def _head_dim(attn: nn.Module, model: CausalLM) -> int:
    for attr in ("head_v_dim", "head_dim"):  # DeltaNet value heads first: its head_dim is the key head's
        value = getattr(attn, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    config = text_config(model)
    head_dim = getattr(config, "head_dim", None)
    return int(head_dim or config.hidden_size // config.num_attention_heads)


def resolve(model: CausalLM, hook_point: str | HookPoint) -> tuple[nn.Module, Read]:
    """The module behind a hook point and how to read it there.

        module, how = resolve(model, "blocks.1.attn.hook_z")   # o_proj, Read("input", head_dim=16)
        module, how = resolve(model, "blocks.1.hook_resid_post")  # decoder block 1, Read("output")

    Works through PEFT wrappers and quantised layers. ValueError for a layer out of range, or a block whose
    parts cannot be found (naming the block's children, so a new architecture is quick to add)."""
    point = parse_hook_name(hook_point)
    blocks = decoder_layers(model)
    if point.layer >= len(blocks):
        raise ValueError(f"{point.name}: layer {point.layer} out of range; the model has {len(blocks)} blocks")
    block = blocks[point.layer]
    if point.kind == "resid_post":
        return block, Read("output")
    children = ", ".join(name for name, _ in block.named_children())
    if point.kind == "mlp_out":
        found = _child(block, _MLP_NAMES)
        if found is None:
            raise ValueError(f"{point.name}: no MLP module in {type(block).__name__} (children: {children})")
        if isinstance(getattr(block, "experts", None), nn.Module) and found[0] == "mlp":
            raise ValueError(
                f"{point.name}: {type(block).__name__} adds its dense `mlp` and its `experts` inside the block, "
                "so no single module outputs the MLP contribution; read hook_resid_post instead"
            )
        return found[1], Read("output")
    found = _child(block, _ATTN_NAMES)
    if found is None:
        raise ValueError(f"{point.name}: no attention module in {type(block).__name__} (children: {children})")
    attn = found[1]
    if point.kind == "attn_out":
        return attn, Read("output")
    out = _child(attn, _OUT_PROJ_NAMES)
    if out is None:
        inner = ", ".join(name for name, _ in attn.named_children())
        raise ValueError(
            f"{point.name}: {type(attn).__name__} has no output projection to read per-head outputs from "
            f"(children: {inner})"
        )
    return out[1], Read("input", head_dim=_head_dim(attn, model))


def module_path(model: CausalLM, module: nn.Module) -> str:
    """The dotted path of `module` inside `model` (what nnsight's `envoy.get(path)` takes)."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(model).__name__}")
