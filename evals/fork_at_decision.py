"""Generation that forks at the decision point, for batches whose rows repeat prompts (an alpha sweep).

Steering from the decision point (`positions="from_decision"`) leaves everything before a row's decision position
unsteered, so every copy of a prompt writes the same think block whatever its alpha. `forked_generate` writes it
once per distinct prompt (unsteered, stopping at the fork token or the end of the turn), then continues each copy
from its prompt + think under its own steering, the shared prefix prefilled once (`evals.shared_prefill`). Each row's
tokens are what one greedy pass would have written: the same budget of `max_new_tokens`, the same stops.

The fork token is `steering.apply.Steering.fork_token()`: the decision position's token where it is a single
token (`</think>` where the action tags are single tokens). Where the decision is several tokens (`</think>` then
`<`), there is no fork token and `evals.generation` takes the unforked path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from toolprior.evals.shared_prefill import distinct_rows, shared_prefill
from toolprior.generation_batch import GenerationBatch

# (input_ids, attention_mask, max_new_tokens, eos ids, context, cache) -> new tokens [B, T]
Greedy = Callable[[torch.Tensor, torch.Tensor, int, list[int], Any, Any], torch.Tensor]


def repeats_a_row(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> bool:
    """Whether some row of the batch is another row's copy."""
    return int(distinct_rows(input_ids, attention_mask)[0].shape[0]) < int(input_ids.shape[0])


def _cut(tokens: list[int], ends: set[int]) -> list[int]:
    """Tokens up to and including the first of `ends` (all of them when none occurs)."""
    for i, token in enumerate(tokens):
        if token in ends:
            return tokens[: i + 1]
    return tokens


def forked_generate(
    batch: Any,
    steer: Callable[[Any], Any],
    fork_token: int,
    *,
    max_new_tokens: int,
    stops: Sequence[int],
    pad_id: int,
    greedy: Greedy,
    model: Any,
) -> list[list[int]]:
    """New tokens per row of `batch` (a `GenerationBatch`), each cut after its first stop token: think once per
    distinct prompt, then the steered rest per row (see the module docstring)."""

    ids, mask = batch.input_ids, batch.attention_mask
    inverse_list = distinct_rows(ids, mask)[1].tolist()
    first = {u: inverse_list.index(u) for u in sorted(set(inverse_list))}
    distinct = list(first.values())
    think = greedy(ids[distinct], mask[distinct], max_new_tokens, [*stops, fork_token], contextlib.nullcontext(), None)
    thinks = {u: _cut(think[k].tolist(), {*stops, fork_token}) for k, u in enumerate(first)}
    results = [list(thinks[u]) for u in inverse_list]
    forked = [
        b
        for b, u in enumerate(inverse_list)
        if thinks[u] and thinks[u][-1] == fork_token and len(thinks[u]) < max_new_tokens
    ]
    if not forked:
        return results
    sequences = [ids[b][mask[b].bool()].tolist() + thinks[inverse_list[b]] for b in forked]
    width = max(len(s) for s in sequences)
    new_ids = torch.full((len(forked), width), pad_id, dtype=ids.dtype)
    new_mask = torch.zeros((len(forked), width), dtype=mask.dtype)
    for k, sequence in enumerate(sequences):  # left padding, as everywhere else
        new_ids[k, width - len(sequence) :] = torch.tensor(sequence, dtype=ids.dtype)
        new_mask[k, width - len(sequence) :] = 1
    new_ids, new_mask = new_ids.to(ids.device), new_mask.to(mask.device)
    sub = GenerationBatch(input_ids=new_ids, attention_mask=new_mask, rows=tuple(batch.rows[b] for b in forked))
    context = steer(sub)
    untouched = bool(getattr(context, "prefix_untouched", lambda: False)())
    cache = shared_prefill(model, new_ids, new_mask) if untouched else None
    budget = max_new_tokens - min(len(results[b]) for b in forked)
    rest = greedy(new_ids, new_mask, budget, list(stops), context, cache)
    for k, b in enumerate(forked):
        room = max_new_tokens - len(results[b])
        results[b] += _cut(rest[k].tolist()[:room], set(stops))
    return results
