"""Steering through nnsight (0.8): the same edit as `steering.apply`, written as an nnsight intervention.

    ids = nnsight_generate(model, tokenizer, vector, 4.0, input_ids=ids, attention_mask=mask, max_new_tokens=32)
    logits = nnsight_forward(model, tokenizer, vector, 4.0, input_ids=ids, attention_mask=mask)

Same semantics as the hooks path, by construction: every forward pass (each decode step of `generate`) reads the
inputs of the module that owns the decoder blocks (`.inputs`: token ids, 2-D attention mask, cache) into the same
`PositionTracker`, then replaces each steered block's `.output` with `steer_hidden(...)` of it. Only the mechanism
differs (nnsight's interleaving instead of forward hooks), which is what the cross-check in the tests is for.

nnsight wraps every module with an instance `forward`; like `probes.backends.nnsight_backend`, these functions
remove whatever nnsight added when they return, so the model comes back as it was.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from toolprior.model_protocols import CausalLM
from toolprior.modeling import decoder_layers
from toolprior.nnsight_guard import restoring_instance_attrs
from toolprior.probes.hook_points import first_tensor, module_path
from toolprior.steering.apply import Steering, _owner_inputs, _replace_first, decoder_owner
from toolprior.steering.operators import Alpha, Operator

if TYPE_CHECKING:
    from toolprior.steering.vector import SteeringVector


@contextlib.contextmanager
def _wrapped(model: CausalLM, tokenizer: Any) -> Iterator[Any]:
    # lazy: nnsight is an optional backend
    from nnsight.modeling.transformers import TransformersModel
    from transformers.utils import logging as hf_logging

    with restoring_instance_attrs(model):
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity(hf_logging.CRITICAL)  # the pipeline complains about classes it does not list
        try:
            # nnsight reconfigures the tokenizer it is given; it only needs one for text inputs, and ids are passed.
            wrapped = TransformersModel(model, tokenizer=copy.deepcopy(tokenizer), task="text-generation")
        finally:
            hf_logging.set_verbosity(verbosity)
        with warnings.catch_warnings():
            # An open `tracer.all()` loop ends with a "was never reached" warning by design.
            warnings.filterwarnings("ignore", message=".*was never reached.*")
            yield wrapped


def _intervene(wrapped: Any, model: CausalLM, steering: Steering) -> None:
    """The body run at each forward pass: feed the tracker from the owner's inputs, then edit each block."""
    tracker = steering.tracker
    assert tracker is not None
    blocks = decoder_layers(model)
    owner = wrapped.get(module_path(model, decoder_owner(model)))
    args, kwargs = owner.inputs
    mask = tracker.begin(**_owner_inputs(tuple(args), dict(kwargs)))
    for layer in steering.vector.layers:
        envoy = wrapped.get(module_path(model, blocks[layer]))
        output = envoy.output
        envoy.output = _replace_first(output, steering.edit(layer, first_tensor(output), mask))


def _steering(
    model: CausalLM,
    vector: SteeringVector,
    alpha: Alpha,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> Steering:
    steering = Steering(model, vector, alpha, attention_mask=attention_mask, **kwargs)
    steering.tracker = steering.new_tracker()  # the hooks are not entered: nnsight does the editing
    return steering


def nnsight_generate(
    model: CausalLM,
    tokenizer: Any,
    vector: SteeringVector,
    alpha: Alpha = 1.0,
    *,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: str = "all",
    operator: str | Operator = "add",
    keep_norm: bool = False,
    layers: Iterable[int] | None = None,
    rows: torch.Tensor | Sequence[bool] | None = None,
    **generate_kwargs: Any,
) -> torch.Tensor:
    """`model.generate(input_ids=, attention_mask=, **generate_kwargs)` steered through nnsight; returns the full
    sequences ([B, prompt + new]) as `generate` does."""
    steering = _steering(
        model,
        vector,
        alpha,
        attention_mask,
        positions=positions,
        operator=operator,
        keep_norm=keep_norm,
        layers=layers,
        tokenizer=tokenizer,
        rows=rows,
    )
    # lazy: nnsight is an optional backend
    import nnsight

    holder: dict[str, Any] = {}
    with _wrapped(model, tokenizer) as wrapped, torch.no_grad(), wrapped.generate(**generate_kwargs) as tracer:
        with tracer.invoke(input_ids=input_ids, attention_mask=attention_mask):
            for _ in tracer.all():
                _intervene(wrapped, model, steering)
        with tracer.invoke():
            holder["ids"] = nnsight.save(tracer.result)
    return holder["ids"]


def nnsight_forward(
    model: CausalLM,
    tokenizer: Any,
    vector: SteeringVector,
    alpha: Alpha = 1.0,
    *,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    positions: str = "all",
    operator: str | Operator = "add",
    keep_norm: bool = False,
    layers: Iterable[int] | None = None,
    rows: torch.Tensor | Sequence[bool] | None = None,
) -> torch.Tensor:
    """The logits of one steered forward pass through nnsight ([B, T, vocab])."""
    steering = _steering(
        model,
        vector,
        alpha,
        attention_mask,
        positions=positions,
        operator=operator,
        keep_norm=keep_norm,
        layers=layers,
        tokenizer=tokenizer,
        rows=rows,
    )
    # lazy: nnsight is an optional backend
    import nnsight

    kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": False}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    with _wrapped(model, tokenizer) as wrapped, torch.no_grad(), wrapped.trace(**kwargs):
        _intervene(wrapped, model, steering)
        logits = nnsight.save(wrapped.output.logits)
    return logits
