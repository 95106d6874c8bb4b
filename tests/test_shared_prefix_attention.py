"""Shared-prefix (cascade) attention: the same logits as plain attention over each row, on left-padded groups of
copies of mixed-length prompts; used only where it is exact; the model's attention is restored after an error."""

from __future__ import annotations

import pytest
import torch

from toolprior.evals.global_attention import supports_shared_prefix
from toolprior.evals.shared_prefill import left_padded_position_ids, shared_prefill
from toolprior.evals.shared_prefix_attention import (
    SharedPrefixLayer,
    attending_shared_prefix,
    group_size,
)
from toolprior.training.tiny_configs import tiny_model


def _batch(vocab: int, lengths: list[int], copies: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts of the given lengths, each repeated `copies` times side by side."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths) * copies, width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        row = torch.randint(3, vocab, (n,), generator=gen)
        for c in range(copies):
            ids[i * copies + c, width - n :] = row
            mask[i * copies + c, width - n :] = 1
    return ids, mask


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_decoding_on_a_shared_prefix_gives_the_logits_of_plain_attention(arch):
    """Prefill once per distinct prompt, then decode each copy with its own tokens (one step at a time, then a
    chunk of three): every logit matches a plain forward of the whole row without a cache."""
    model = tiny_model(arch).eval()
    vocab = model.config.vocab_size
    ids, mask = _batch(vocab, [9, 5, 12], copies=3)
    cache = shared_prefill(model, ids, mask)
    assert all(isinstance(layer, SharedPrefixLayer) for layer in cache.layers)
    assert cache.layers[0].prefix_keys.shape[0] == 3  # one copy per distinct prompt, not per row
    gen = torch.Generator().manual_seed(1)
    steps = [ids[:, -1:]] + [torch.randint(3, vocab, (ids.shape[0], 1), generator=gen) for _ in range(3)]
    steps.append(torch.randint(3, vocab, (ids.shape[0], 3), generator=gen))  # a chunk: causal inside it
    full_ids, full_mask = ids[:, :-1], mask[:, :-1]
    logits = []
    with torch.inference_mode(), attending_shared_prefix(model, cache):
        for step in steps:
            full_ids = torch.cat([full_ids, step], dim=1)
            full_mask = torch.cat([full_mask, torch.ones_like(step)], dim=1)
            positions = left_padded_position_ids(full_mask)[:, -step.shape[1] :]
            out = model(input_ids=step, attention_mask=full_mask, position_ids=positions, past_key_values=cache)
            logits.append(out.logits)
    assert model.config._attn_implementation == "sdpa"  # restored on exit
    with torch.inference_mode():
        reference = model(
            input_ids=full_ids, attention_mask=full_mask, position_ids=left_padded_position_ids(full_mask)
        )
    shared_logits = torch.cat(logits, dim=1)
    torch.testing.assert_close(shared_logits, reference.logits[:, -shared_logits.shape[1] :], atol=1e-5, rtol=1e-4)


def test_every_step_matches_plain_decoding():
    """Step by step against a plain copied cache: same logits at every step, on a grouped-query model."""
    model = tiny_model("qwen3").eval()
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    ids, mask = _batch(model.config.vocab_size, [7, 3, 10, 4], copies=2, seed=5)
    shared = shared_prefill(model, ids, mask)
    gen = torch.Generator().manual_seed(2)
    full_mask = mask[:, :-1]
    step = ids[:, -1:]
    plain = None
    with torch.inference_mode():
        for _ in range(4):
            full_mask = torch.cat([full_mask, torch.ones_like(step)], dim=1)
            positions = left_padded_position_ids(full_mask)[:, -1:]
            with attending_shared_prefix(model, shared):
                a = model(input_ids=step, attention_mask=full_mask, position_ids=positions, past_key_values=shared)
            if plain is None:  # the plain side prefills the whole prompt per row
                plain_out = model(input_ids=ids, attention_mask=mask, position_ids=left_padded_position_ids(mask))
                plain, b_logits = plain_out.past_key_values, plain_out.logits[:, -1:]
            else:
                b = model(input_ids=step, attention_mask=full_mask, position_ids=positions, past_key_values=plain)
                b_logits = b.logits
            torch.testing.assert_close(a.logits, b_logits, atol=1e-5, rtol=1e-4)
            step = torch.randint(3, model.config.vocab_size, (ids.shape[0], 1), generator=gen)


def test_group_size_needs_equal_groups_side_by_side():
    assert group_size(torch.tensor([2, 2, 0, 0, 1, 1])) == 2
    assert group_size(torch.tensor([0, 1, 2])) == 1
    assert group_size(torch.tensor([0, 0, 1, 1, 1, 2])) is None  # unequal groups
    assert group_size(torch.tensor([0, 1, 0, 1])) is None  # copies not side by side


def test_uneven_copies_fall_back_to_a_copied_cache():
    model = tiny_model("llama").eval()
    ids, mask = _batch(model.config.vocab_size, [6, 4], copies=2)
    ids, mask = torch.cat([ids, ids[:1]]), torch.cat([mask, mask[:1]])  # a third copy of the first prompt, apart
    cache = shared_prefill(model, ids, mask)
    assert not any(isinstance(layer, SharedPrefixLayer) for layer in cache.layers)
    assert cache.layers[0].keys.shape[0] == ids.shape[0]


@pytest.mark.parametrize(("arch", "expected"), [("llama", True), ("qwen3", True), ("gemma4", False)])
def test_only_global_attention_models_use_it(arch, expected):
    assert supports_shared_prefix(tiny_model(arch)) is expected


def test_the_attention_implementation_is_restored_after_an_error():
    model = tiny_model("llama").eval()
    ids, mask = _batch(model.config.vocab_size, [5, 3], copies=2)
    cache = shared_prefill(model, ids, mask)
    with pytest.raises(RuntimeError, match="boom"), attending_shared_prefix(model, cache):
        assert model.config._attn_implementation != "sdpa"
        raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"
