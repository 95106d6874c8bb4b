"""The multi-turn harness end to end on a real tiny model taught four behaviours: call the tool when the shipment
id is given, ask when it is not, answer after a successful tool result, and retry after a failed one."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import make_tiny_qwen3
from toolprior.actions import TOOL_MODES, Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.evals.simulator import ToolSimulator

# Short names keep the taught sequences short, so a 2-layer model learns them in seconds.
VERIFY = ToolSpec(
    name="verify",
    description="Verify a shipment.",
    parameters={"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
)
CALL = '<think>verify it</think><tool_call>{"name": "verify", "arguments": {"id": "SHP-1030"}}</tool_call>'
CLARIFY = "<think>which one</think><clarify>Which shipment?</clarify>"
ANSWER = "<think>done</think><answer>Done.</answer>"
SYSTEM = Message("system", "Agent.")
# The model is taught what to do after these two results; every other mode only checks the loop's plumbing.
TAUGHT_MODES = ("ok", "error_500")
# Simulated results are seeded by the case id; taught cases reuse the id so the model sees the results it learnt.
TAUGHT_ID = "taught"


def make_case(case_id: str, user: str, expected: Action, tool_mode: str = "ok", **kw) -> Case:
    gold = GoldTurn("x", Action.CALL_TOOL, tool_calls=(ToolCall("verify", {"id": "SHP-1030"}),))
    if expected is Action.CLARIFY:
        gold = GoldTurn("x", Action.CLARIFY, content="Which shipment?")
    return Case(
        id=case_id,
        category="clarification_follow_through" if expected is Action.CLARIFY else "error_recovery",
        split="eval",
        expected_action=expected,
        messages=(SYSTEM, Message("user", user)),
        tools=(VERIFY,),
        gold=gold,
        tool_mode=tool_mode,
        **kw,
    )


def _conversations(tokenizer) -> list[list[dict]]:
    """Training conversations whose tool results are the simulator's own outputs, so the inputs match."""
    sim = ToolSimulator(seed=0)
    call = ToolCall("verify", {"id": "SHP-1030"})
    base = [{"role": "system", "content": SYSTEM.content}]
    convs = []
    for mode in TAUGHT_MODES:
        case = make_case(TAUGHT_ID, "verify SHP-1030", Action.CALL_TOOL, tool_mode=mode)
        failed = mode.startswith("error")
        conv = [*base, {"role": "user", "content": "verify SHP-1030"}, {"role": "assistant", "content": CALL}]
        # after a failure: retry; after a success: answer
        conv += [
            {"role": "tool", "name": VERIFY.name, "content": sim.respond(case, call, mode, call_index=0)},
            {"role": "assistant", "content": CALL if failed else ANSWER},
        ]
        convs.append(conv)
    convs.append(
        [
            *base,
            {"role": "user", "content": "check the shipment"},
            {"role": "assistant", "content": CLARIFY},
            {"role": "user", "content": "SHP-1030"},
            {"role": "assistant", "content": CALL},
        ]
    )
    return convs


@pytest.fixture(scope="module")
def taught_model(tiny_tokenizer):
    """A real tiny Qwen3 trained on the conversations above until it reproduces them greedily."""
    torch.manual_seed(0)
    model = make_tiny_qwen3(tiny_tokenizer, seed=1, layers=2).train()
    rows = []
    for conv in _conversations(tiny_tokenizer):
        enc = tiny_tokenizer.apply_chat_template(
            conv, tools=[VERIFY.to_dict()], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        rows.append((enc["input_ids"], enc["assistant_masks"]))
    width = max(len(ids) for ids, _ in rows)
    # Right padding is fine for training: pads are masked out of attention and loss.
    ids = torch.tensor([r + [tiny_tokenizer.pad_token_id] * (width - len(r)) for r, _ in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in rows])
    keep = torch.tensor([m + [0] * (width - len(m)) for _, m in rows]) == 1
    labels = torch.where(keep, ids, torch.tensor(-100))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(500):
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if loss.item() < 0.001:
            break
    return model.eval()


def test_single_turn_scores_the_decision(taught_model, tiny_tokenizer):
    cases = [
        make_case("a", "verify SHP-1030", Action.CALL_TOOL),
        make_case("b", "check the shipment", Action.CLARIFY, meta={"ambiguity": "implicit"}),
    ]
    verdicts = evaluate(taught_model, tiny_tokenizer, cases, config=HarnessConfig(max_new_tokens=96), progress=False)
    assert [v.predicted for v in verdicts] == ["call_tool", "clarify"]
    assert "ambiguity" not in verdicts[0].meta and verdicts[1].meta["ambiguity"] == "implicit"  # scored by kind
    assert all(v.correct for v in verdicts), [(v.output, v.problems) for v in verdicts]
    assert all(v.turns == [] for v in verdicts)


@pytest.mark.parametrize("mode", TOOL_MODES)
def test_each_simulator_mode_end_to_end(taught_model, tiny_tokenizer, mode):
    case = make_case(TAUGHT_ID, "verify SHP-1030", Action.CALL_TOOL, tool_mode=mode)
    (verdict,) = evaluate(
        taught_model, tiny_tokenizer, [case], config=HarnessConfig(max_new_tokens=96, max_turns=4), progress=False
    )
    roles = [t["role"] for t in verdict.turns]
    assert roles[:3] == ["assistant", "tool", "assistant"]
    tool_reply = verdict.turns[1]["content"]
    expected_reply = ToolSimulator(seed=0).respond(case, ToolCall("verify", {"id": "SHP-1030"}), mode)
    assert tool_reply == expected_reply
    if mode == "malformed":
        with pytest.raises(json.JSONDecodeError):
            json.loads(tool_reply)
    if mode in TAUGHT_MODES:  # taught: retry after the failure, answer after the success
        assert verdict.turns[2]["action"] == ("call_tool" if mode == "error_500" else "answer_directly"), verdict.turns


def test_clarify_then_scripted_user_then_tool_call(taught_model, tiny_tokenizer):
    case = make_case(
        "c",
        "check the shipment",
        Action.CLARIFY,
        followups=(Message("user", "SHP-1030"),),
        meta={"followup_tool_calls": [{"name": "verify", "arguments": {"id": "SHP-1030"}}]},
    )
    (verdict,) = evaluate(
        taught_model, tiny_tokenizer, [case], config=HarnessConfig(max_new_tokens=96, max_turns=6), progress=False
    )
    assert [t["role"] for t in verdict.turns[:4]] == ["assistant", "user", "assistant", "tool"]
    assert verdict.turns[1]["content"] == "SHP-1030"
    assert verdict.meta["followed_through"] is True
    assert verdict.predicted == "clarify" and verdict.correct


def test_repeated_identical_calls_stop_as_a_loop(taught_model, tiny_tokenizer):
    case = make_case(TAUGHT_ID, "verify SHP-1030", Action.CALL_TOOL, tool_mode="error_500")
    config = HarnessConfig(max_new_tokens=96, max_turns=16, loop_repeats=2)
    (verdict,) = evaluate(taught_model, tiny_tokenizer, [case], config=config, progress=False)
    assert verdict.meta["loop"] is True
    assert verdict.meta["turns"] == 2  # the taught model retries once; the second identical call trips the detector
    (no_loop,) = evaluate(
        taught_model,
        tiny_tokenizer,
        [make_case(TAUGHT_ID, "verify SHP-1030", Action.CALL_TOOL)],
        config=config,
        progress=False,
    )
    assert no_loop.meta["loop"] is False
