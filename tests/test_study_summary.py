"""The study report's first-page sentence on where sft's clarify failures start, built from real verdicts run
through the rule judge, the scorer and the invented-argument check (no hand-written report blocks)."""

from __future__ import annotations

import dataclasses

from tests.test_forensics import CASE_STUDY, make_case, verdict
from toolprior.cases import ToolCall
from toolprior.evals.forensics import annotate_think, hallucination_rate
from toolprior.evals.scoring import score
from toolprior.experiments.study_summary import findings, think_line


def sft_block(verdicts, cases):
    annotated = annotate_think(verdicts, cases=cases)
    return score(annotated) | {"forensics": {"hallucination": hallucination_rate(cases, annotated)}}


def test_the_think_line_counts_asks_followed_by_a_call_and_invented_ids():
    cases = [make_case(f"clarification_loop_{i:04d}") for i in range(4)]
    invented = [ToolCall("verify_shipment_receipt", {"id": "SHP-7777"})]  # in no message of the case
    grounded = [ToolCall("verify_shipment_receipt", {"id": "SHP-1030"})]  # named in the system message
    verdicts = [
        verdict(cases[0].id, "clarify", "call_tool", CASE_STUDY),  # says ask, calls: the case study's signature
        verdict(cases[1].id, "clarify", "call_tool", "The user gave the ID directly: SHP-7777. I'll verify it now."),
        verdict(cases[2].id, "clarify", "call_tool", "Only SHP-1030 is pending, so I will verify SHP-1030 now."),
        verdict(cases[3].id, "clarify", "clarify", "Two shipments match. I need to ask the user which one."),
    ]
    verdicts = [
        dataclasses.replace(v, tool_calls=calls)
        for v, calls in zip(verdicts, [grounded, invented, grounded, []], strict=True)
    ]
    line = think_line(sft_block(verdicts, cases))
    assert line is not None
    assert "argues for clarify in 2 held-out turns and the turn calls a tool in 1 of them" in line
    assert "1 of its 3 tool calls hold an argument value found nowhere" in line
    report = {"methods": {"sft": sft_block(verdicts, cases)}}
    assert line in findings(report)


def test_no_think_line_without_the_blocks():
    assert think_line({}) is None
    assert findings({"methods": {"sft": {}}}) == []
