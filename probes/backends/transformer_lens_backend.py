"""The TransformerLens backend (TransformerLens 4.x `TransformerBridge`): the same modules `probes.hook_points`
names, read at the bridge's own HookPoints around them.

    with transformer_lens_runner(model, tokenizer, ["blocks.1.hook_resid_post"]) as run:
        values = run(batch)          # what `capture(..., backend="transformer_lens")` does per batch

Boot: `TransformerBridge.boot_transformers(name_or_path, hf_model=model, tokenizer=copy_of_tokenizer,
device=..., dtype=...)`. With `hf_model=` the bridge takes the already-loaded model as it is (quantised weights
included) and downloads nothing: the config is copied from the model and the tokenizer given is used. A PEFT model
is bridged through `get_base_model()`: the LoRA layers live inside the base model, so the bridge runs them.

Each hook point is read at the bridge component that wraps the module `resolve` names (matched by object
identity): `hook_out` for outputs (resid_post: the BlockBridge; attn_out: the attention bridge; mlp_out: the MLP
bridge) and `hook_in` of the wrapped o_proj for hook_z. The bridge's canonical aliases (`blocks.i.hook_resid_post`,
`blocks.i.attn.hook_z`, ...) point at these same HookPoints on the standard architectures. Batches run through
`bridge.run_with_hooks(ids, attention_mask=, position_ids=, stop_at_layer=)`.

What the bridge does to the model, undone on exit: it replaces the model's submodules with its components, in
place, and forces eager attention. The module tree, instance attributes, buffers and the attention implementation
are snapshotted before the boot and put back afterwards, so the model is as it was after every capture. (The bridge
numbers therefore use eager attention; they agree with the sdpa forward of the hooks backend to ~1e-7 in float32
on the tiny models.)

Not covered (NotImplementedError naming the architecture): architectures TransformerLens has no adapter for, and
hook points whose module the bridge does not wrap -- notably `hook_z` on Qwen3.5's Gated DeltaNet layers, whose
bridge re-implements the layer and calls out_proj without a HookPoint on its input.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from toolprior.model_protocols import CausalLM
from toolprior.probes.batching import Batch, Runner, model_device
from toolprior.probes.hook_points import HookPoint, Read, first_tensor, parse_hook_name, resolve, split_heads


# The per-module dicts a wrapper may mutate in place: children, parameters, buffers and every hook table.
def _tables(module: nn.Module) -> dict[str, dict[Any, Any]]:
    return {
        key: value
        for key, value in module.__dict__.items()
        if isinstance(value, dict) and (key in ("_modules", "_parameters", "_buffers") or "hook" in key)
    }


@dataclass
class _Snapshot:
    modules: list[tuple[nn.Module, dict[str, dict[Any, Any]], dict[str, Any]]]
    attn: dict[int, Any]


def _snapshot(model: CausalLM) -> _Snapshot:
    modules = [(m, {k: dict(v) for k, v in _tables(m).items()}, dict(m.__dict__)) for m in model.modules()]
    attn: dict[int, Any] = {}
    for m in model.modules():
        config = getattr(m, "config", None)
        for c in (config, getattr(config, "text_config", None)):
            if c is not None and hasattr(c, "_attn_implementation") and id(c) not in attn:
                attn[id(c)] = (c, c._attn_implementation)
    return _Snapshot(modules, attn)


def _restore(snapshot: _Snapshot) -> None:
    """Put the module tree, parameters, buffers, instance attributes and attention implementation back."""
    for module, tables, attrs in snapshot.modules:
        for key in set(module.__dict__) - set(attrs):
            del module.__dict__[key]
        for key, value in attrs.items():
            if module.__dict__.get(key) is not value:
                module.__dict__[key] = value
        for key, content in tables.items():
            table = module.__dict__[key]
            table.clear()
            table.update(content)
    for config, value in snapshot.attn.values():
        config._attn_implementation = value


def _bridge_target(model: CausalLM) -> CausalLM:
    """The model the bridge wraps: a PEFT model's base model (LoRA layers included), else the model itself."""
    get_base = getattr(model, "get_base_model", None)
    if callable(get_base) and type(model).__module__.startswith("peft"):
        return get_base()
    return model


def _float_dtype(model: CausalLM) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


@contextlib.contextmanager
def bridged(model: CausalLM, tokenizer: Any) -> Iterator[Any]:
    """A TransformerBridge over `model` for the block; the model is restored on exit (see the module docstring)."""
    try:
        import transformer_lens.model_bridge.sources  # noqa: F401  # lazy: optional, heavy; attaches boot_*
        from transformer_lens.model_bridge import TransformerBridge  # lazy: optional, heavy; only for this backend
    except ImportError as e:  # pragma: no cover - transformer-lens is a declared dependency
        raise ImportError(
            "backend='transformer_lens' needs transformer-lens >= 4 (pip install transformer-lens)"
        ) from e

    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES  # lazy: optional

    target = _bridge_target(model)
    arch = type(target).__name__
    if arch not in SUPPORTED_ARCHITECTURES:
        raise NotImplementedError(
            f"TransformerLens's TransformerBridge has no adapter for {arch}; use backend='hooks' or 'nnsight'"
        )
    snapshot = _snapshot(model)
    # A model built from a config (not loaded) has no `architectures`; the bridge picks its adapter from that list.
    config = target.config
    architectures = getattr(config, "architectures", None)
    try:
        if not architectures:
            config.architectures = [arch]
        try:
            bridge = TransformerBridge.boot_transformers(
                str(getattr(target.config, "_name_or_path", "") or arch),
                hf_model=target,
                tokenizer=copy.deepcopy(tokenizer),
                device=str(model_device(model)),
                dtype=_float_dtype(target),
            )
        except ValueError as e:
            if "architecture" in str(e).lower():  # "Unsupported architecture: ..." from the adapter factory
                raise NotImplementedError(f"TransformerLens's TransformerBridge cannot wrap {arch}: {e}") from e
            raise
        yield bridge
    finally:
        config.architectures = architectures
        _restore(snapshot)


def _component_hooks(bridge: Any) -> dict[int, str]:
    """id(original HF module) -> the bridge path of the component wrapping it (shortest path wins)."""
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent  # lazy: optional

    found: dict[int, str] = {}
    # Every path, duplicates included: a component sits both at its canonical path (blocks.1.attn) and inside the
    # wrapped HF module it replaced (blocks.1._original_component.self_attn), and only the first is a hook name.
    for name, component in bridge.named_modules(remove_duplicate=False):
        if not isinstance(component, GeneralizedComponent) or "_original_component" in name or not name:
            continue
        if name.startswith("original_model"):
            continue
        original = getattr(component, "original_component", None)
        if original is None:
            continue
        key = id(original)
        if key not in found or len(name) < len(found[key]):
            found[key] = name
    return found


@contextlib.contextmanager
def transformer_lens_runner(
    model: CausalLM, tokenizer: Any, hook_points: Sequence[str | HookPoint]
) -> Iterator[Runner]:
    """A runner reading `hook_points` through a TransformerBridge, open for the block (see the module docstring)."""
    points = sorted({parse_hook_name(p) for p in hook_points}, key=lambda p: p.fire_order)
    targets: list[tuple[HookPoint, nn.Module, Read]] = []
    for point in points:
        module, read = resolve(model, point)
        targets.append((point, module, read))
    arch = type(_bridge_target(model)).__name__

    with bridged(model, tokenizer) as bridge:
        by_module = _component_hooks(bridge)
        plan: list[tuple[str, str, Read]] = []
        for point, module, read in targets:
            path = by_module.get(id(module))
            tl_name = None if path is None else f"{path}.hook_{'in' if read.source == 'input' else 'out'}"
            if tl_name is None or tl_name not in bridge.hook_dict:
                raise NotImplementedError(
                    f"TransformerLens's bridge of {arch} has no HookPoint at the {read.source} of "
                    f"{type(module).__name__} ({point.name}); use backend='hooks' or 'nnsight'"
                )
            plan.append((point.name, tl_name, read))
        n_blocks = len(bridge.blocks)
        stop = max(p.layer for p in points) + 1

        def run(batch: Batch) -> dict[str, torch.Tensor]:
            device = model_device(model)
            positions = batch.positions.to(device)
            out: dict[str, torch.Tensor] = {}

            def make_hook(name: str, read: Read) -> Any:
                def hook(tensor: Any, hook: Any) -> None:
                    value = first_tensor(tensor)
                    if read.head_dim is not None:
                        value = split_heads(value, read.head_dim)
                    out[name] = positions.select(value).detach()

                return hook

            with torch.no_grad():
                bridge.run_with_hooks(
                    batch.input_ids.to(device),
                    fwd_hooks=[(tl_name, make_hook(name, read)) for name, tl_name, read in plan],
                    return_type=None,
                    stop_at_layer=stop if stop < n_blocks else None,
                    attention_mask=batch.attention_mask.to(device),
                    position_ids=batch.position_ids.to(device),
                    use_cache=False,
                )
            missing = [name for name, _, _ in plan if name not in out]
            if missing:
                raise RuntimeError(f"TransformerLens hooks did not fire for {', '.join(missing)}")
            return out

        yield run
