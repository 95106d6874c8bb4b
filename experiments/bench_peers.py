"""The peers in `make bench`: our steering and capture against steering-vectors' and repeng's on the same model and
inputs (tests/test_peer_reference.py checks that the three steer to the same outputs where they should)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from toolprior.decoder_config import text_config
from toolprior.experiments.bench_timing import judge, paired_times
from toolprior.modeling import decoder_layers
from toolprior.probes.batching import pad_left, pad_token_id
from toolprior.probes.capture import capture
from toolprior.probes.hook_points import all_resid_post
from toolprior.steering.apply import steer
from toolprior.steering.vector import SteeringVector

PEER_GOALS = {
    "steering_vs_steering_vectors": ("<=", 1.0),
    "steering_vs_repeng": ("<=", 1.0),
    "capture_vs_steering_vectors": ("<=", 1.0),
}


def import_repeng() -> Any:
    """`import repeng` on numpy 2. repeng 0.4.0 names `np.float_` in annotations that run at import
    (repeng/extract.py lines 230, 236, 239: `other: int | float | np.int_ | np.float_`), and numpy 2 removed that
    alias, so a plain import raises AttributeError. The alias (np.float64, what it always meant) is put on numpy
    for the import only and taken off again; nothing in repeng uses it at run time."""

    if "repeng" in sys.modules:
        return sys.modules["repeng"]
    missing = not hasattr(np, "float_")
    if missing:
        setattr(np, "float_", np.float64)  # noqa: B010 (numpy 2's stubs have no float_)
    try:
        # lazy: a peer library, installed with the peers extra
        import repeng
    finally:
        if missing:
            delattr(np, "float_")
    return repeng


@contextmanager
def repeng_control(model: Any, vector: Any, alpha: float) -> Iterator[Any]:
    """repeng's control of `model` by `vector` (a `steering.vector.SteeringVector`) at `alpha` while the block
    lasts: `ControlModel(model, layers)` wraps the decoder blocks in place (repeng/control.py: `layers[layer_id] =
    ControlModule(layer)`), `set_control(ControlVector, coeff=alpha)` adds `coeff * directions[i]` to block i's
    output, and `unwrap()` puts the original blocks back on exit, also on error. Yields the ControlModel."""
    repeng = import_repeng()
    directions = {layer: vector[layer].detach().float().cpu().numpy() for layer in vector.layers}
    control = repeng.ControlModel(model, list(vector.layers))
    try:
        control.set_control(repeng.ControlVector(model_type=model.config.model_type, directions=directions), alpha)
        yield control
    finally:
        control.unwrap()


def left_padded_batches(tokenizer: Any, texts: Sequence[str], batch_size: int) -> list[dict[str, torch.Tensor]]:
    """The texts as `capture` runs them: sorted longest first, left padded, position ids counted from each row's
    first real token (`probes.capture.pad_left`). repeng needs the position ids on a batch: on transformers 5 the
    decoder hands every block [1, T] position ids when the caller gives none, and repeng's padding mask (built from
    them) then fails to reshape to [B, T]."""

    encoded = sorted((tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts), key=len, reverse=True)
    batches = []
    for i in range(0, len(encoded), batch_size):
        ids, mask, positions = pad_left(encoded[i : i + batch_size], pad_token_id(tokenizer))
        batches.append({"input_ids": ids, "attention_mask": mask, "position_ids": positions})
    return batches


def bench_peers(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    repeats: int = 3,
    *,
    layer: int | None = None,
    alpha: float = 4.0,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Our steering and capture against steering-vectors' and repeng's, on `model` (any Hugging Face causal LM
    whose blocks sit at `model.layers`, as both peers expect), side by side, same inputs, medians of runs taken in
    alternation (`paired_times`; 6 pairs per repeat for the steering ratios, 3 for capture).

    - steering_vs_steering_vectors / steering_vs_repeng: the decoder stack's forward passes (`model.model`, no KV
      cache, no LM head: the head is the same work on every side and on long prompts most of it) over the
      left-padded batches, with position ids, a random vector at `layer` (default: the middle block) added at
      every position at `alpha`: our `steer(model, vector, alpha)` / steering-vectors' `SteeringVector({layer:
      v}).apply(model, multiplier=alpha)` / repeng's `set_control(..., coeff=alpha)`. The context is entered once
      around all batches on every side (steering-vectors guesses its layer names on entry, repeng wraps the
      blocks).
    - capture_vs_steering_vectors: every block's output at the last prompt position of every text: our
      `capture(..., all_resid_post(model), "prompt_end")` against `record_activations(model)` around the decoder
      stack's forward passes (`model.model`, no LM head, as the capture_overhead baseline), each side tokenizing
      and padding its own batches, then keeping the last column of each recorded [B, T, d]."""
    # lazy: a peer library, installed with the peers extra
    import steering_vectors

    n_layers = len(decoder_layers(model))
    layer = n_layers // 2 if layer is None else layer
    d = int(text_config(model).hidden_size)
    g = torch.Generator().manual_seed(0)
    ours_vector = SteeringVector({layer: torch.randn(d, generator=g) / d**0.5})
    their_vector = steering_vectors.SteeringVector({layer: ours_vector[layer]})
    batches = left_padded_batches(tokenizer, texts, batch_size)
    results: dict[str, Any] = {}

    stack = model.get_decoder() if hasattr(model, "get_decoder") else model.model

    def forwards() -> None:
        with torch.inference_mode():
            for batch in batches:
                stack(**batch, use_cache=False)

    def under(context: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            with context():
                forwards()

        return run

    ours_steer = under(lambda: steer(model, ours_vector, alpha))
    sv_steer = under(lambda: their_vector.apply(model, multiplier=alpha))
    repeng_steer = under(lambda: repeng_control(model, ours_vector, alpha))
    for key, theirs in (("steering_vs_steering_vectors", sv_steer), ("steering_vs_repeng", repeng_steer)):
        # every side adds one vector to one block's output: the work differs by far less than a forward pass
        # varies from run to run here (2-3%), so these two get more pairs than the other ratios
        theirs_s, ours_s = paired_times(theirs, ours_steer, 6 * repeats)
        results[key] = {"ratio": ours_s / theirs_s, "ours_s": ours_s, "theirs_s": theirs_s}

    hooks = all_resid_post(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ordered = sorted(texts, key=lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"]), reverse=True)

    def ours_capture() -> Any:
        return capture(model, tokenizer, ordered, hooks, "prompt_end", batch_size=batch_size)

    def sv_capture() -> dict[int, torch.Tensor]:

        rows: dict[int, list[torch.Tensor]] = {i: [] for i in range(n_layers)}
        with torch.inference_mode(), steering_vectors.record_activations(model) as recorded:
            for i in range(0, len(ordered), batch_size):
                encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ordered[i : i + batch_size]]
                ids, mask, positions = pad_left(encoded, pad_id)
                stack(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
                for j in range(n_layers):
                    rows[j].append(recorded[j].pop()[:, -1])
        return {j: torch.cat(parts) for j, parts in rows.items()}

    theirs_s, ours_s = paired_times(sv_capture, ours_capture, 3 * repeats)
    results["capture_vs_steering_vectors"] = {"ratio": ours_s / theirs_s, "ours_s": ours_s, "theirs_s": theirs_s}
    for key, (op, goal) in PEER_GOALS.items():
        judge(results[key], op, goal)
        results[key]["layer"] = layer
    return results
