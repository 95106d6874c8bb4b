"""The base-model baseline of a probe experiment: the model the baseline curves are computed on.

    with baseline_model(config, model) as baseline:      # None, or (what it is, the model)
        ...

The config's `probes.baseline` chooses it: the adapter switched off (`auto` with an adapter), `model.base` (a
separate folder), or a random initialisation of the same architecture (`auto` without either; `random`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from toolprior.errors import InputError, Problem
from toolprior.fingerprint import model_fingerprint
from toolprior.modeling import load_model
from toolprior.probes.experiment import ProbeExperimentConfig

RANDOM_BASELINE_SEED = 104_729


def random_twin(model: Any, seed: int = 0) -> Any:
    """A randomly initialised model of `model`'s architecture and size (same device and dtype; never quantised).

    Seeded from `seed` but never with the seed a tiny model is usually built with, and checked to differ from
    `model`: a "random" baseline that happens to equal the agent would report the agent's own curve."""
    base = getattr(model, "get_base_model", lambda: model)()
    config = copy.deepcopy(base.config)
    if getattr(config, "quantization_config", None) is not None:
        delattr(config, "quantization_config")
    param = next(base.parameters())
    dtype = param.dtype if param.dtype.is_floating_point else torch.float32
    reference = model_fingerprint(base).id
    for attempt in range(3):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_BASELINE_SEED + 7919 * seed + attempt)
            fresh = AutoModelForCausalLM.from_config(config, dtype=dtype).to(param.device).eval()
        if model_fingerprint(fresh).id != reference:
            return fresh
    raise RuntimeError("could not draw a random initialisation that differs from the agent")


@contextlib.contextmanager
def baseline_model(config: ProbeExperimentConfig, model: Any) -> Iterator[tuple[str, Any] | None]:
    """The model the baseline curves are computed on, for the block: (what it is, the model), or None."""
    choice = config.probes.baseline
    has_adapter = config.model.adapter is not None and hasattr(model, "disable_adapter")
    if choice == "none":
        yield None
        return
    if choice == "base" or (choice == "auto" and (has_adapter or config.model.base)):
        if config.model.base:
            other = load_model(
                config.model.base,
                quantize=config.model.quantize,
                dtype=config.model.dtype,
                device=config.model.device,
                trust_remote_code=config.model.trust_remote_code,
            )
            try:
                yield f"base model {config.model.base}", other
            finally:
                del other
            return
        if not has_adapter:
            raise InputError(
                Problem(
                    "<config>", None, "probes.baseline", "'base' needs model.adapter or model.base to know the base"
                )
            )
        with model.disable_adapter():
            yield "base model (adapter disabled)", model
        return
    fresh = random_twin(model, seed=config.probes.seed)
    try:
        yield "random initialisation", fresh
    finally:
        del fresh
