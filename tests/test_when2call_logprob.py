"""When2Call's multiple-choice scoring by log-probability: batched continuation scores equal the one-by-one ones
(mixed lengths, right padding), the candidates become the project's action blocks, and the choice is the most
likely candidate, on real When2Call records and a real tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from toolprior.chat_template import render_prompt
from toolprior.evals.continuation_logprob import continuation_logprobs
from toolprior.evals.when2call_logprob import candidate_blocks, choose_candidates, when2call_logprob
from toolprior.importers.when2call import import_when2call
from toolprior.output_format import parse_turn

pytestmark = pytest.mark.usefixtures("one_thread")

WHEN2CALL = (
    Path(__file__).resolve().parents[1] / "experiments" / "external" / "when2call" / "when2call_test_llm_judge.jsonl"
)


@pytest.fixture(scope="module")
def records():
    cases = import_when2call(WHEN2CALL)
    # the file goes label by label: take a few of each
    by_label: dict[str, list] = {}
    for case in cases:
        by_label.setdefault(case.meta["when2call_label"], []).append(case)
    return [c for group in by_label.values() for c in group[:3]]


def _by_hand(model, tokenizer, prompt: str, continuation: str) -> float:
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    tail = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([head + tail])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)[0]
    return sum(logp[len(head) - 1 + k, t].item() for k, t in enumerate(tail))


def test_batched_scores_equal_one_by_one_on_mixed_lengths(tiny_model, tiny_tokenizer):
    prompts = ["hello", "a much longer prompt about shipments and invoices", "x y", "a much longer prompt"]
    continuations = [" world", " ask which one", " z z z z z z z z", "!"]
    batched = continuation_logprobs(tiny_model, tiny_tokenizer, prompts, continuations, batch_size=3)
    for prompt, continuation, score in zip(prompts, continuations, batched, strict=True):
        expected = _by_hand(tiny_model, tiny_tokenizer, prompt, continuation)
        assert score.logprob == pytest.approx(expected, abs=1e-4)
        assert score.tokens == len(tiny_tokenizer(continuation, add_special_tokens=False)["input_ids"])
        assert score.mean == pytest.approx(score.logprob / score.tokens)
    # the order of the rows in the batch does not matter
    again = continuation_logprobs(tiny_model, tiny_tokenizer, prompts[::-1], continuations[::-1], batch_size=4)
    assert [s.logprob for s in again[::-1]] == pytest.approx([s.logprob for s in batched], abs=1e-4)


def test_mismatched_or_empty_rows_are_refused(tiny_model, tiny_tokenizer):
    with pytest.raises(ValueError, match="2 prompts but 1"):
        continuation_logprobs(tiny_model, tiny_tokenizer, ["a", "b"], ["c"])
    with pytest.raises(ValueError, match="row 0"):
        continuation_logprobs(tiny_model, tiny_tokenizer, ["a"], [""])


def test_candidates_are_action_blocks_that_parse_back(records):
    expected_action = {
        "tool_call": "call_tool",
        "request_for_info": "clarify",
        "cannot_answer": "refuse",
        "direct": "answer_directly",
    }
    for case in records:
        blocks = candidate_blocks(case)
        assert set(blocks) == set(case.meta["answers"])
        for label, block in blocks.items():
            parsed = parse_turn("<think>t</think>" + block)
            assert parsed.action is not None and parsed.action.value == expected_action[label], (label, block)
            if label == "tool_call":
                assert parsed.tool_calls, block


def test_the_choice_is_the_most_likely_candidate(tiny_model, tiny_tokenizer, records):
    choices = choose_candidates(tiny_model, tiny_tokenizer, records, batch_size=5)
    assert [c.case_id for c in choices] == [c.id for c in records]
    for case, choice in zip(records, choices, strict=True):
        prompt = render_prompt(tiny_tokenizer, case)
        blocks = candidate_blocks(case)
        labels = list(blocks)
        scores = continuation_logprobs(tiny_model, tiny_tokenizer, [prompt] * len(labels), list(blocks.values()))
        means = {lab: s.mean for lab, s in zip(labels, scores, strict=True)}
        assert choice.scores == pytest.approx(means, abs=1e-4)
        assert choice.label == max(means, key=means.get)
        assert choice.prefix == ""


def test_metrics_under_both_protocols(tiny_model, tiny_tokenizer, records):
    out = when2call_logprob(tiny_model, tiny_tokenizer, records, max_think_tokens=8, batch_size=4)
    assert set(out) == {"answer_only", "own_think"}
    for result in out.values():
        metrics = result["metrics"]
        assert metrics["n"] == len(records)
        assert metrics["label_set"] == ["tool_call", "request_for_info", "cannot_answer"]
        picked = sum(sum(row.values()) for row in metrics["confusion"].values())
        assert picked == len(records)
        for choice in result["choices"]:
            assert choice["label"] in choice["scores"]
    # a random tiny model writes no closed think in 8 tokens: every case gets the empty one, and says so
    assert out["own_think"]["no_think"] == len(records)
    assert all(c["prefix"] == "<think></think>" for c in out["own_think"]["choices"])
