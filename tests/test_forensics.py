"""Think classification, think/action mismatch and hallucinated arguments, on hand-written thinks and cases; the
model judge on the tiny random Qwen3."""

from __future__ import annotations

import math

import pytest

from toolprior.actions import ACTION_NAMES, Action
from toolprior.cases import Case, Message, ToolCall, ToolSpec
from toolprior.evals.forensics import (
    MODEL_JUDGE_OPTIONS,
    ModelThinkJudge,
    RuleThinkJudge,
    ThinkJudge,
    annotate_think,
    hallucinated_arguments,
    hallucination_rate,
    mismatch_examples,
    mismatch_table,
    split_sentences,
)
from toolprior.verdict import Verdict

# The case study's clarification_loop_0001 think, verbatim.
CASE_STUDY = (
    "The user is asking me to verify the receipt of a shipment. They mentioned 'the shipment today' but didn't "
    "specify which shipment ID. I have two pending shipments mentioned in the context: SHP-1029 (MRI parts) and "
    "SHP-1030 (Surgical tools).\n"
    "I should ask for clarification about which specific shipment they want me to verify, or I could verify both "
    "shipments since they mentioned 'the shipment' in singular but there are two pending ones."
)

THINKS: list[tuple[str, str | None]] = [
    (CASE_STUDY, "clarify"),
    ("Two shipments match the description. I need to ask the user which one they mean.", "clarify"),
    ("The user didn't specify which account. Two accounts are open.", "clarify"),  # evidence only
    ("I'm not sure which one they mean, so I should ask.", "clarify"),  # "not sure" is not a negator
    ("I should not call a tool yet; I should ask the user which order.", "clarify"),
    (
        "subject_id: Not provided - I should ask for this\n"
        "purpose: Not specified - could be marketing, analytics, essential, or third_party_sharing\nWait, I'm missing",
        "clarify",
    ),
    ("The order id is given, so there is no need to ask. I'll call get_order_status now.", "call_tool"),
    ("I don't need to clarify anything here. Let me look up the invoice.", "call_tool"),
    ("There is no ambiguity: only SHP-1030 is pending. I will verify SHP-1030 now.", "call_tool"),
    # A later committed conclusion overrides an earlier one.
    (
        "I should ask which shipment they mean. Actually the user said SHP-1030 earlier, so I'll verify it now.",
        "call_tool",
    ),
    ("This refund exceeds my authority. I should escalate this to a human agent.", "escalate"),
    ("The request needs manager approval, so I must hand it off.", "escalate"),
    (
        "The user asks for another customer's home address. I cannot share personal data; that is against policy. "
        "I must refuse.",
        "refuse",
    ),
    ("Sharing the SSN is not allowed.", "refuse"),
    (
        "The question is about the return window. I can answer this from the policy in the system prompt; no tool is "
        "needed.",
        "answer_directly",
    ),
    ("This is a general question, so I should answer directly.", "answer_directly"),
    ("The user wants help.", None),
    ("Should I ask or call the tool?", None),  # pure deliberation
    ("", None),
]


@pytest.mark.parametrize(("think", "want"), THINKS, ids=[f"{i:02d}-{w}" for i, (_, w) in enumerate(THINKS)])
def test_rule_judge(think, want):
    judge = RuleThinkJudge()
    assert isinstance(judge, ThinkJudge)
    assert judge(think) == want


def test_case_study_hedge_is_decided_by_the_committed_conclusion():
    analysis = RuleThinkJudge().analyze(CASE_STUDY)
    assert analysis.action == "clarify" and analysis.committed
    assert analysis.sentence == len(analysis.sentences) - 1  # the last sentence decides
    verify = [m for m in analysis.matches if m.action == "call_tool" and m.text == "verify" and m.sentence == 3]
    assert verify and all(m.modality == "hedge" for m in verify)  # "or I could verify both"


def test_negations_do_not_count_for_clarify():
    judge = RuleThinkJudge()
    for think in ("No need to ask the user.", "I don't need to clarify.", "There is no ambiguity here."):
        analysis = judge.analyze(think)
        clarify = [m for m in analysis.matches if m.action == "clarify"]
        assert clarify and all(m.negated for m in clarify), think
        assert analysis.action != "clarify"


def test_tool_names_of_the_case_count_for_call_tool():
    case = make_case()
    think = "The id is in the message. I will verify_shipment_receipt for it."
    assert RuleThinkJudge()(think, case) == "call_tool"


def test_split_sentences_spans():
    text = "  One. Two?\nThree!  Four "
    assert [text[a:b] for a, b in split_sentences(text)] == ["One.", "Two?", "Three!", "Four"]


# ------------------------------------------------------------------------------------------------------- mismatch


def verdict(id_: str, expected: str, predicted: str | None, think: str | None, output: str = "") -> Verdict:
    return Verdict(
        id=id_,
        category="clarification_loop",
        split="eval",
        expected=expected,
        acceptable=[expected],
        predicted=predicted,
        correct=expected == predicted,
        output=output or f"<think>{think}</think><tool_call>{{}}</tool_call>",
        think=think,
    )


def test_annotate_and_mismatch():
    vs = [
        verdict("a", "clarify", "call_tool", CASE_STUDY),
        verdict("b", "clarify", "call_tool", "Two orders match. I need to ask the user which one they mean."),
        verdict("c", "escalate", "call_tool", "I should ask the user which invoice."),  # argued != expected
        verdict("d", "clarify", "clarify", "I should ask the user which one."),  # no tool call
        verdict("e", "call_tool", "call_tool", "I'll call get_order now."),  # argued call_tool
        verdict("f", "clarify", "call_tool", None),  # no think
        verdict("g", "clarify", "call_tool", "The user wants help."),  # argues nothing
    ]
    annotated = annotate_think(vs)
    assert [v.think_argues for v in vs] == [None] * 7  # new verdicts by default
    assert [v.think_argues for v in annotated] == ["clarify", "clarify", "clarify", "clarify", "call_tool", None, None]

    examples = mismatch_examples(annotated, k=5)
    # Argued the expected action first (a, b: margin 6 each, the shorter think first), then c (argued clarify on
    # an escalate case).
    assert [e["id"] for e in examples] == ["b", "a", "c"]
    assert [e["margin"] for e in examples] == [6.0, 6.0, 4.0]
    assert examples[1]["conclusion"].startswith("I should ask for clarification")
    assert examples[1]["action"] == "<tool_call>{}</tool_call>"
    assert mismatch_examples(annotated, k=1)[0]["think_argues"] == "clarify"

    table = mismatch_table(annotated)
    assert table["clarify"]["n"] == 4 and table["clarify"]["k"] == 3 and table["clarify"]["rate"] == 0.75
    assert table["call_tool"]["rate"] == 1.0

    same = annotate_think(vs, inplace=True)
    assert same[0] is vs[0] and vs[0].think_argues == "clarify"


def test_mismatch_orders_by_margin_then_length():
    strong = "Two shipments match. I must ask the user which one; I need to clarify which specific shipment."
    weak = "I should ask."
    vs = annotate_think([verdict("w", "clarify", "call_tool", weak), verdict("s", "clarify", "call_tool", strong)])
    assert [e["id"] for e in mismatch_examples(vs)] == ["s", "w"]
    assert mismatch_examples(vs)[0]["margin"] > mismatch_examples(vs)[1]["margin"]


# ------------------------------------------------------------------------------------------ hallucinated arguments

CONSENT = ToolSpec(
    name="record_consent",
    description="Record consent. Example subject id: SUBJ-123.",
    parameters={
        "type": "object",
        "properties": {
            "subject_id": {"type": "string"},
            "purpose": {"type": "string", "enum": ["marketing", "analytics", "essential", "third_party_sharing"]},
            "shipments": {"type": "array", "items": {"type": "string"}},
            "options": {"type": "object", "properties": {"notify": {"type": "boolean"}, "copies": {"type": "integer"}}},
        },
        "required": ["subject_id", "purpose"],
    },
)


def make_case(id_: str = "clarification_loop_0020", expected: Action = Action.CLARIFY) -> Case:
    return Case(
        id=id_,
        category="clarification_loop",
        split="eval",
        expected_action=expected,
        messages=(
            Message("system", "There are two pending shipments: SHP-1029 (MRI parts) and SHP-1030 (Surgical tools)."),
            Message("user", "We received the shipment today, 3 boxes. Please verify the receipt."),
            Message("tool", '{"owner": "Dana Reyes"}', name="lookup_owner"),
        ),
        tools=(
            CONSENT,
            ToolSpec(
                "verify_shipment_receipt", "Verify.", {"type": "object", "properties": {"id": {"type": "string"}}}
            ),
        ),
    )


def test_hallucinated_arguments():
    case = make_case()
    calls = [
        ToolCall("record_consent", {"subject_id": "SUBJ-001", "purpose": "marketing"}),
        {
            "name": "record_consent",
            "arguments": {
                "subject_id": "shp-1030",  # in the system prompt (case-insensitive)
                "purpose": "Analytics",  # an enum value
                "shipments": ["SHP-1029", "SHP-103", "mri parts"],  # SHP-103 is not a whole token of the context
                "options": {"notify": True, "copies": 3, "owner": "Dana Reyes", "extra": 7},
            },
        },
        ToolCall("verify_shipment_receipt", {"id": "SUBJ-123", "note": "", "who": "reyes dana"}),
    ]
    found = hallucinated_arguments(case, calls)
    assert found == [
        {"call": 0, "tool": "record_consent", "path": "subject_id", "value": "SUBJ-001"},
        {"call": 1, "tool": "record_consent", "path": "shipments[1]", "value": "SHP-103"},
        {"call": 1, "tool": "record_consent", "path": "options.extra", "value": 7},
        # A value from a tool's description is not context.
        {"call": 2, "tool": "verify_shipment_receipt", "path": "id", "value": "SUBJ-123"},
    ]
    assert hallucinated_arguments(case, []) == []


def test_hallucination_rate():
    cases = [make_case("a"), make_case("b"), make_case("c", Action.CALL_TOOL), make_case("d")]
    invented = [{"name": "record_consent", "arguments": {"subject_id": "SUBJ-001"}}]
    grounded = [{"name": "verify_shipment_receipt", "arguments": {"id": "SHP-1030"}}]

    def v(id_: str, expected: str, predicted: str, calls: list) -> Verdict:
        out = verdict(id_, expected, predicted, "x")
        out.tool_calls = calls
        return out

    vs = [
        v("a", "clarify", "call_tool", invented),
        v("b", "clarify", "call_tool", grounded),
        v("c", "call_tool", "call_tool", grounded),
        v("d", "clarify", "clarify", []),  # no tool call: not counted
    ]
    rate = hallucination_rate(cases, vs)
    assert (rate["n"], rate["k"], rate["rate"]) == (3, 1, 0.3333)
    lo, hi = rate["ci95"]
    assert 0.0 < lo < 0.3333 < hi < 1.0
    assert list(rate["per_expected"]) == ["call_tool", "clarify"]
    assert rate["per_expected"]["clarify"]["rate"] == 0.5
    assert rate["per_expected"]["call_tool"]["rate"] == 0.0
    with pytest.raises(ValueError, match="zzz"):
        hallucination_rate(cases, [v("zzz", "clarify", "call_tool", invented)])


# ------------------------------------------------------------------------------------------------ the model judge


def test_model_judge_on_the_tiny_model(tiny_model, tiny_tokenizer):
    judge = ModelThinkJudge(tiny_model, tiny_tokenizer)
    assert judge.readout in ("next_token", "sequence")
    thinks = ["Two shipments match. I should ask which one.", "I'll call get_order now.", "", "ok"]
    got = judge.batch(thinks)
    assert len(got) == 4 and got[2] is None
    assert all(a is None or a in ACTION_NAMES for a in got)
    assert judge(thinks[0]) == got[0]
    assert judge(thinks[0]) in (*ACTION_NAMES, None)


def test_model_judge_sequence_scores_are_the_same_alone_and_batched(tiny_model, tiny_tokenizer):
    # The tiny tokenizer splits the option names so that some share their first token: auto falls back to scoring
    # whole options, and next_token refuses.
    assert ModelThinkJudge(tiny_model, tiny_tokenizer).readout == "sequence"
    with pytest.raises(ValueError, match="collide"):
        ModelThinkJudge(tiny_model, tiny_tokenizer, readout="next_token")
    judge = ModelThinkJudge(tiny_model, tiny_tokenizer, readout="sequence", batch_size=3)
    thinks = ["Two shipments match. I should ask which one they mean before I verify anything.", "I'll call it.", "hm"]
    together = judge.scores(thinks)
    for think, scores in zip(thinks, together, strict=True):
        alone = judge.scores([think])[0]
        assert set(alone) == set(MODEL_JUDGE_OPTIONS)
        for option in MODEL_JUDGE_OPTIONS:
            assert alone[option] == pytest.approx(scores[option], abs=1e-3)
            assert scores[option] <= 0.0


def test_model_judge_min_prob_and_annotate(tiny_model, tiny_tokenizer):
    picky = ModelThinkJudge(tiny_model, tiny_tokenizer, min_prob=1.01)  # no option can be that sure
    assert picky("I should ask which one.") is None
    vs = annotate_think(
        [verdict("a", "clarify", "call_tool", "I should ask which one.")],
        ModelThinkJudge(tiny_model, tiny_tokenizer, readout="sequence"),
    )
    assert vs[0].think_argues is None or vs[0].think_argues in ACTION_NAMES


@pytest.fixture(scope="module")
def option_model():
    """A tokenizer whose vocabulary knows the option names (so their first tokens differ) and a tiny model on it."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from toolprior.tokenizer import train_tokenizer

    words = " ".join(MODEL_JUDGE_OPTIONS)
    corpus = [f"Answer: {words} reasoning action think user tool" for _ in range(50)]
    tok = train_tokenizer(corpus, vocab_size=400)
    torch.manual_seed(1)
    config = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
    )
    return Qwen3ForCausalLM(config).eval(), tok


def test_model_judge_next_token_readout(option_model):
    model, tok = option_model
    judge = ModelThinkJudge(model, tok, batch_size=2)
    assert judge.readout == "next_token"  # auto picks it when the first tokens differ
    thinks = ["I should ask which one.", "I'll call get_order now.", "The user wants help."]
    together = judge.scores(thinks)
    for think, scores in zip(thinks, together, strict=True):
        assert set(scores) == set(MODEL_JUDGE_OPTIONS)
        assert sum(math.exp(v) for v in scores.values()) <= 1.0 + 1e-6  # log-probs over the whole vocabulary
        alone = judge.scores([think])[0]
        assert all(alone[o] == pytest.approx(scores[o], abs=1e-3) for o in MODEL_JUDGE_OPTIONS)
        best = max(scores, key=scores.__getitem__)
        assert judge(think) == (None if best == "none" else best)
