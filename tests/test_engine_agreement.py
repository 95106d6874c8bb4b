"""The pieces of the engine agreement checks that run without llama.cpp or vLLM: the decision-point inputs both
scripts feed (experiments/llamacpp_agreement.py, experiments/vllm_steering.py) on the organism's own tokenizer, and
the vLLM script's one-line answer where vLLM is not installed."""

from __future__ import annotations

import importlib.util
import json

import pytest

from toolprior.case_validation import case_from_dict
from toolprior.decision_point import decision_tokens
from toolprior.experiments.llamacpp_agreement import action_token_ids, decision_inputs, read_thinks
from toolprior.modeling import load_tokenizer

CASE = {
    "id": "mine_engine_0001",
    "category": "clarification_loop",
    "split": "mine",
    "expected_action": "clarify",
    "messages": [
        {"role": "system", "content": "Role: support assistant.\nOrders on file: ORD-1: jacket; ORD-2: headphones."},
        {"role": "user", "content": "Can you check on my order?"},
    ],
    "tools": [
        {
            "name": "get_order",
            "description": "Read an order.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        }
    ],
    "gold": {"think": "Two orders are on file, so I should ask which one.", "action": "clarify", "content": "Which?"},
}


@pytest.fixture(scope="module")
def smol_tokenizer(smollm2_folder):
    return load_tokenizer(smollm2_folder)


def test_inputs_end_at_the_decision_position_with_the_own_think_or_the_gold_one(smol_tokenizer, tmp_path):
    case, problems = case_from_dict(CASE, "<test>", None)
    assert case is not None, problems
    other = case_from_dict({**CASE, "id": "mine_engine_0002"}, "<test>", None)[0]
    no_think = case_from_dict({k: v for k, v in CASE.items() if k != "gold"} | {"id": "x_3"}, "<test>", None)[0]
    verdicts = tmp_path / "verdicts.jsonl"
    rows = [{"id": case.id, "think": "The user has one order in mind."}, {"id": other.id, "think": None}]
    verdicts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    thinks = read_thinks(verdicts)
    assert thinks == {case.id: "The user has one order in mind."}

    inputs = decision_inputs(smol_tokenizer, [case, other, no_think], thinks)
    assert [(case_id, source) for case_id, source, _ in inputs] == [(case.id, "own"), (other.id, "gold")]
    shared = decision_tokens(smol_tokenizer).shared
    for _, _, ids in inputs:
        assert tuple(ids[-len(shared) :]) == shared  # the last token is the decision position
    own_text = smol_tokenizer.decode(inputs[0][2])
    assert own_text.endswith("<|im_start|>assistant\n<think>The user has one order in mind.</think>")
    assert set(action_token_ids(smol_tokenizer)) == {"call_tool", "answer_directly", "clarify", "escalate", "refuse"}


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None and importlib.util.find_spec("vllm_lens") is not None,
    reason="vLLM and vllm-lens are installed here",
)
def test_vllm_script_says_in_one_line_that_vllm_is_missing(tmp_path, capsys):
    from toolprior.experiments.vllm_steering import main

    out = tmp_path / "out"
    code = main(["--model", str(tmp_path), "--vector", "v.safetensors", "--cases", "c.jsonl", "--out", str(out)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert code == 2
    assert len(printed) == 1 and "vllm-lens" in printed[0]
    assert not out.exists()
