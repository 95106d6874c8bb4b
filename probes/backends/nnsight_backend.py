"""The nnsight backend (nnsight 0.8): the same modules `probes.hook_points.resolve` names, read through an nnsight
trace of the same Hugging Face model object.

    with nnsight_runner(model, tokenizer, ["blocks.1.hook_resid_post"]) as run:
        values = run(batch)          # what `capture(..., backend="nnsight")` does per batch

The model is wrapped with `nnsight.modeling.transformers.TransformersModel(model, tokenizer=..., task=
"text-generation")`: in 0.8 `LanguageModel` is a deprecated alias of it that only adds a warning. Each batch is one
`trace(input_ids=, attention_mask=, position_ids=)` whose body reads `.input` (hook_z: the input of o_proj) or
`.output` of each module in forward order (nnsight refuses out-of-order reads), keeps the batch's positions, and
`tracer.stop()`s after the last one.

nnsight installs its controller as an instance `forward` on every module it wraps and leaves it there ("inert
outside a trace"). This backend removes what it added when the capture ends, so the model comes back as it was;
modules nnsight had wrapped before (another wrapper of the same model) are left alone
(`toolprior.nnsight_guard.restoring_instance_attrs`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from toolprior.model_protocols import CausalLM
from toolprior.nnsight_guard import restoring_instance_attrs
from toolprior.probes.batching import Batch, Runner, model_device
from toolprior.probes.hook_points import HookPoint, first_tensor, module_path, parse_hook_name, resolve, split_heads


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(hf_logging.CRITICAL)
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


@contextlib.contextmanager
def nnsight_runner(model: CausalLM, tokenizer: Any, hook_points: Sequence[str | HookPoint]) -> Iterator[Runner]:
    """A runner reading `hook_points` through nnsight, open for the block (see the module docstring)."""
    try:
        import nnsight  # lazy: optional, heavy; only for this backend
        from nnsight.modeling.transformers import TransformersModel  # lazy: optional, heavy; only for this backend
    except ImportError as e:  # pragma: no cover - nnsight is a declared dependency
        raise ImportError("backend='nnsight' needs the nnsight package (pip install nnsight)") from e

    points = sorted({parse_hook_name(p) for p in hook_points}, key=lambda p: p.fire_order)
    reads = []
    for point in points:
        module, read = resolve(model, point)
        reads.append((point.name, module_path(model, module), read))

    with restoring_instance_attrs(model):
        # nnsight configures the tokenizer it is given (pad token, padding side): give it a copy. It only needs one to
        # tokenize text, and this backend passes token ids.
        with _quiet_transformers():  # the pipeline logs an error for model classes it does not list (PeftModel)
            wrapped = TransformersModel(model, tokenizer=copy.deepcopy(tokenizer), task="text-generation")

        def run(batch: Batch) -> dict[str, torch.Tensor]:
            device = model_device(model)
            positions = batch.positions.to(device)
            out: dict[str, torch.Tensor] = {}
            with (
                torch.no_grad(),
                wrapped.trace(
                    input_ids=batch.input_ids.to(device),
                    attention_mask=batch.attention_mask.to(device),
                    position_ids=batch.position_ids.to(device),
                    use_cache=False,
                ) as tracer,
            ):
                for name, path, read in reads:
                    envoy = wrapped.get(path)
                    value = first_tensor(envoy.input if read.source == "input" else envoy.output)
                    if read.head_dim is not None:
                        value = split_heads(value, read.head_dim)
                    out[name] = nnsight.save(positions.select(value).detach())
                tracer.stop()
            return dict(out)

        yield run
