"""The overhead measurements of `make bench`, on any model: capture against the forward passes it rides on, steered
against unsteered generation, an 8-alpha sweep against one alpha. experiments.bench runs them on the random bench
model, experiments.bench_real on the SmolLM2 organism."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from toolprior.evals.generation import generate
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.experiments.bench_timing import paired_times
from toolprior.probes.capture import capture
from toolprior.probes.hook_points import all_resid_post
from toolprior.steering.apply import steering_factory
from toolprior.steering.sweep import run_alphas
from toolprior.steering.vector import SteeringVector


def capture_overhead(model: Any, tokenizer: Any, prompts: Sequence[str], repeats: int) -> dict[str, Any]:
    """Our capture of every block's output at the prompt's end against the decoder stack's forward passes alone."""
    hooks = all_resid_post(model)
    stack = model.get_decoder() if hasattr(model, "get_decoder") else model.model

    def forward() -> None:
        # the decoder stack without the LM head and without a KV cache: the same work capture does, minus reading
        # the hook points (a cache would charge the plain side for allocations capture never makes)
        with torch.inference_mode():
            for i in range(0, len(prompts), 16):
                enc = tokenizer(list(prompts[i : i + 16]), add_special_tokens=False, padding=True, return_tensors="pt")
                stack(**enc, use_cache=False)

    def ours() -> Any:
        return capture(model, tokenizer, prompts, hooks, "prompt_end", batch_size=16)

    # this machine's timings swing by 10-20% between runs; three times the samples for the ratios near 1
    plain, ours_s = paired_times(forward, ours, 3 * repeats)
    return {"ratio": ours_s / plain, "capture_s": ours_s, "forward_s": plain}


def steering_overhead(
    model: Any, tokenizer: Any, prompts: Sequence[str], vector: SteeringVector, repeats: int, new_tokens: int = 48
) -> dict[str, Any]:
    """Greedy generation steered at every position against the same generation unsteered, equal lengths."""
    # equal lengths on both sides: a steered model may stop sooner or later, which is not overhead
    factory = steering_factory(model, vector, 4.0, tokenizer=tokenizer)

    def run(steer: Any = None) -> list[str]:
        return generate(
            model, tokenizer, prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            batch_size=len(prompts), steer=steer,
        )  # fmt: skip

    unsteered, steered = paired_times(
        run,
        lambda: run(factory),
        # the goal is within 3%, and one pair of 1-second generations here differs by up to 10% either way while
        # the steering hooks themselves take 0.6% of the steered run (cProfile): 8 pairs a repeat, not 2, so the
        # median is not one quiet or busy second (session 6: 24 pairs gave 1.006, 6 pairs had given 1.09 and 0.90)
        8 * repeats,
    )
    return {"ratio": steered / unsteered, "steered_s": steered, "unsteered_s": unsteered}


SWEEP_ALPHAS = [-8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0, 16.0]


def sweep_cost(
    model: Any,
    tokenizer: Any,
    cases: Sequence[Any],
    vector: SteeringVector,
    repeats: int,
    positions: str = "generated",
    new_tokens: int = 48,
) -> dict[str, Any]:
    """An 8-alpha sweep (`run_alphas`) against one steered evaluation of the same cases, same config."""
    # sweeps score the decision at the first turn (max_turns=1, as steering.sweep does), which is what lets the
    # alpha grid run as one batch: run_alphas widens the batch to 8 alphas x the cases, against the same cases
    # at one alpha with the same config
    config = HarnessConfig(max_new_tokens=new_tokens, batch_size=len(cases), max_turns=1)
    one_alpha = steering_factory(model, vector, 4.0, positions=positions, tokenizer=tokenizer)
    sweep_s, single = paired_times(
        lambda: run_alphas(model, tokenizer, cases, vector, SWEEP_ALPHAS, config, positions=positions),
        lambda: evaluate(model, tokenizer, cases, config=config, steer=one_alpha, progress=False),
        repeats,
    )
    return {"ratio": sweep_s / single, "sweep_8_alphas_s": sweep_s, "single_alpha_s": single, "positions": positions}
