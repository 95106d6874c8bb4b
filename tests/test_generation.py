from __future__ import annotations

import contextlib

from toolprior.evals.generation import generate
from toolprior.generation_batch import GenerationBatch

PROMPTS = [
    "<|user|>\nverify the shipment<|end|>\n<|assistant|>\n",
    "<|system|>\nPending shipments: SHP-1029 and SHP-1030 for the customer account refund<|end|>\n"
    "<|user|>\nplease check the status of the pending invoice and escalate<|end|>\n<|assistant|>\n",
    "<|user|>\nrefund<|end|>\n<|assistant|>\n",
    "<|user|>\napprove the ticket for the customer account<|end|>\n<|assistant|>\n",
]


def test_batched_generation_with_mixed_lengths_matches_one_by_one(tiny_model, tiny_tokenizer):
    batched = generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=24, batch_size=4)
    single = [generate(tiny_model, tiny_tokenizer, [p], max_new_tokens=24, batch_size=1)[0] for p in PROMPTS]
    assert batched == single
    assert all(len(out) > 0 for out in batched)


def test_outputs_come_back_in_caller_order_whatever_the_batch_size(tiny_model, tiny_tokenizer):
    a = generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=12, batch_size=3)
    b = generate(tiny_model, tiny_tokenizer, list(reversed(PROMPTS)), max_new_tokens=12, batch_size=2)
    assert a == list(reversed(b))


def test_steering_context_sees_each_rows_padding(tiny_model, tiny_tokenizer):
    seen: list[GenerationBatch] = []

    def steer(batch: GenerationBatch):
        seen.append(batch)
        return contextlib.nullcontext()

    generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=4, batch_size=4, steer=steer)
    (batch,) = seen
    lengths = [len(tiny_tokenizer(PROMPTS[r], add_special_tokens=False)["input_ids"]) for r in batch.rows]
    assert batch.prompt_lengths.tolist() == lengths
    assert (batch.pad_lengths + batch.prompt_lengths).tolist() == [batch.prompt_width] * len(PROMPTS)
    # Left padding: every row's real tokens end at the last column.
    assert batch.attention_mask[:, -1].all()


def test_batches_keep_the_copies_of_a_prompt_together():
    from toolprior.evals.generation import _batches

    prompts = ["a", "a", "a", "b", "b", "b", "c", "c", "c", "d"]
    order = list(range(len(prompts)))
    kept = _batches(order, prompts, batch_size=7, keep_copies_together=True)
    assert kept == [(0, 1, 2, 3, 4, 5), (6, 7, 8, 9)]
    assert _batches(order, prompts, batch_size=7, keep_copies_together=False) == [tuple(range(7)), (7, 8, 9)]
    # a run longer than a batch is cut into batch-sized pieces; every row appears once
    long = _batches(list(range(5)), ["x"] * 5, batch_size=2, keep_copies_together=True)
    assert long == [(0, 1), (2, 3), (4,)]
