"""vector_from_pairs: plain text pairs -> positive minus negative at each text's last token, equal batched (mixed
lengths, left padding) and one by one, and equal to the hidden states read straight from the model."""

from __future__ import annotations

import pytest
import torch

from toolprior.modeling import decoder_layers
from toolprior.steering import vector_from_pairs

PAIRS = [
    ("Which of your two accounts do you mean, the savings or the checking one?", "Calling lookup_account."),
    ("Could you say which order?", "I will call get_order with the ID from your message right away."),
    ("Do you mean the Berlin office?", "Calling find_office."),
]


def last_token_state(model, tokenizer, text: str, layer: int) -> torch.Tensor:
    """The block's output at the text's last token, read by a plain forward hook on one unpadded text."""
    seen: list[torch.Tensor] = []
    hook = decoder_layers(model)[layer].register_forward_hook(
        lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out)
    )
    try:
        with torch.no_grad():
            model(**tokenizer([text], return_tensors="pt"))
    finally:
        hook.remove()
    return seen[0][0, -1].float()


def test_mean_diff_is_the_mean_of_last_token_differences(tiny_model, tiny_tokenizer):
    vector = vector_from_pairs(tiny_model, tiny_tokenizer, PAIRS, layers=[0, 1], batch_size=4)
    for layer in (0, 1):
        want = torch.stack(
            [
                last_token_state(tiny_model, tiny_tokenizer, p, layer)
                - last_token_state(tiny_model, tiny_tokenizer, n, layer)
                for p, n in PAIRS
            ]
        ).mean(0)
        torch.testing.assert_close(vector[layer], want, atol=1e-4, rtol=1e-4)
    assert vector.meta["direction"] == "positive - negative" and vector.meta["n"] == {"positive": 3, "negative": 3}


@pytest.mark.parametrize("method", ["mean_diff", "pca_paired", "probe"])
def test_batched_equals_one_by_one(tiny_model, tiny_tokenizer, method):
    batched = vector_from_pairs(tiny_model, tiny_tokenizer, PAIRS, layers=[1], method=method, batch_size=6)
    single = vector_from_pairs(tiny_model, tiny_tokenizer, PAIRS, layers=[1], method=method, batch_size=1)
    torch.testing.assert_close(batched[1], single[1], atol=1e-4, rtol=1e-3)


def test_labels_name_the_sides(tiny_model, tiny_tokenizer):
    vector = vector_from_pairs(tiny_model, tiny_tokenizer, PAIRS, layers=[1], positive="ask", negative="act")
    assert vector.meta["direction"] == "ask - act" and vector.meta["n"] == {"ask": 3, "act": 3}


@pytest.mark.parametrize("pairs", [[], [("only one text",)], [("", "empty positive")]])
def test_bad_pairs_are_refused(tiny_model, tiny_tokenizer, pairs):
    with pytest.raises(ValueError):
        vector_from_pairs(tiny_model, tiny_tokenizer, pairs, layers=[1])
