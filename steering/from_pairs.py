"""A steering vector from plain (positive text, negative text) pairs, in one call, on any causal LM: no cases, no
labels of this project. Each text is read at its last real token (`probes.positions` rule "last"; left padding is
handled by the capture), at `blocks.{i}.hook_resid_post` of each layer asked for; pair i's positive and negative
rows are paired, so every method of `steering.compute` applies (mean_diff, pca_paired, probe).

    pairs = [("Could you tell me which account you mean?", "Calling lookup_account now."), ...]
    vector = vector_from_pairs(model, tokenizer, pairs, layers=[10, 12])
    with vector.apply(model, alpha=4.0):
        ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.probes.capture import capture
from toolprior.probes.hook_points import hook_name
from toolprior.steering.compute import Groups, vector_from_groups
from toolprior.steering.vector import SteeringVector, vector_meta


def vector_from_pairs(
    model: CausalLM,
    tokenizer: Tokenizer,
    pairs: Sequence[tuple[str, str]],
    layers: Sequence[int],
    *,
    method: str = "mean_diff",
    positive: str = "positive",
    negative: str = "negative",
    batch_size: int = 16,
    meta: Mapping[str, Any] | None = None,
) -> SteeringVector:
    """`positive - negative` at each of `layers`, from `pairs` of texts read at their last token. `positive` /
    `negative` only name the two sides in the vector's metadata."""
    if not pairs:
        raise ValueError("no text pairs to compute a vector from")
    bad = [i for i, pair in enumerate(pairs) if len(pair) != 2 or not all(isinstance(t, str) and t for t in pair)]
    if bad:
        raise ValueError(f"pairs must be (positive text, negative text); not so at index {bad[0]}")
    n = len(pairs)
    texts = [p for p, _ in pairs] + [q for _, q in pairs]
    labels = [positive] * n + [negative] * n
    acts = capture(
        model, tokenizer, texts, [hook_name(i, "resid_post") for i in layers], "last", batch_size, labels=labels
    )
    groups = Groups(list(range(n)), list(range(n, 2 * n)), paired=True)
    full = vector_meta(
        model,
        tokenizer,
        method=method,
        source="pairs",
        position="last",
        positive=positive,
        negative=negative,
        **dict(meta or {}),
    )
    return vector_from_groups(
        acts, layers, groups, method, positive=positive, negative=negative, source="pairs", meta=full
    )
