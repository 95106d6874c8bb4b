"""The study report's first-page sentence on where sft's clarify failures start, built from real verdicts run
through the rule judge, the scorer and the invented-argument check (no hand-written report blocks)."""

from __future__ import annotations

import dataclasses

from tests.test_forensics import CASE_STUDY, make_case, verdict
from toolprior.cases import ToolCall
from toolprior.evals.forensics import annotate_think
from toolprior.evals.scoring import score
from toolprior.experiments.steering_variants import SteeringVariant, variant_row
from toolprior.experiments.study_report import method_forensics
from toolprior.experiments.study_summary import findings, think_line
from toolprior.steering.sweep import SweepPoint, SweepResult


def sft_block(verdicts, cases):
    annotated = annotate_think(verdicts, cases=cases)
    return score(annotated) | {"forensics": method_forensics(cases, annotated)}


def test_the_think_line_counts_asks_followed_by_a_call_and_invented_ids():
    cases = [make_case(f"clarification_loop_{i:04d}") for i in range(5)]
    invented = [ToolCall("verify_shipment_receipt", {"id": "SHP-7777"})]  # in no message of the case
    grounded = [ToolCall("verify_shipment_receipt", {"id": "SHP-1030"})]  # named in the system message
    verdicts = [
        verdict(cases[0].id, "clarify", "call_tool", CASE_STUDY),  # says ask, calls: the case study's signature
        verdict(cases[1].id, "clarify", "call_tool", "The user gave the ID directly: SHP-7777. I'll verify it now."),
        verdict(cases[2].id, "clarify", "call_tool", "Only SHP-1030 is pending, so I will verify SHP-1030 now."),
        verdict(cases[3].id, "clarify", "clarify", "Two shipments match. I need to ask the user which one."),
        # a think that says ask on a call_tool case is not one of the clarify cases' failures
        verdict(cases[4].id, "call_tool", "call_tool", "I should ask the user which one."),
    ]
    verdicts = [
        dataclasses.replace(v, tool_calls=calls)
        for v, calls in zip(verdicts, [grounded, invented, grounded, [], grounded], strict=True)
    ]
    line = think_line(sft_block(verdicts, cases))
    assert line is not None
    assert line.startswith("- On the 4 held-out clarify cases sft calls a tool in 3.")
    assert "the tool call in 2, for asking in 2 (a tool call follows in 1 of them" in line
    assert "for another action in 0, and for nothing the rule judge can name in 0" in line
    assert "1 of its 3 tool-calling turns on these cases hold an argument value found nowhere" in line
    assert line in findings({"methods": {"sft": sft_block(verdicts, cases)}})


def test_no_think_line_without_clarify_cases():
    assert think_line({}) is None
    cases = [make_case("clarification_loop_0001")]
    only_call = [verdict(cases[0].id, "call_tool", "call_tool", "I'll verify SHP-1030 now.")]
    assert think_line(sft_block(only_call, cases)) is None  # scored, but no clarify case to speak of
    assert findings({"methods": {"sft": {}}}) == []


def test_a_steering_miss_names_the_grid_it_swept_on_mine():
    def point(layer, alpha, clarify, call_tool):
        return SweepPoint("vector", layer, alpha, 10, clarify, 5, call_tool, 5, None, 0.0, 0.0)

    baseline = SweepPoint("baseline", None, 0.0, 10, 0.0, 5, 0.7, 5, None, 0.0, 0.0)
    points = [point(8, 0.5, 0.0, 0.7), point(8, 1.0, 0.2, 0.6), point(22, 0.5, 0.0, 0.7), point(22, 1.0, 0.8, 0.1)]
    result = SweepResult(baseline, points, case_ids=[], splits=["mine"])
    row = variant_row(SteeringVariant("mean_diff", "classes", "decision", "from_decision"), result, points[0])
    acc = {"n": 5, "acc": 0.0, "ci95": [0.0, 0.5]}
    report = {
        "methods": {"sft": {"per_action": {"clarify": acc}}, "steering": {"per_action": {"clarify": acc}}},
        "steering_selection": {"variants": [row]},
    }
    (line,) = [f for f in findings(report) if f.startswith("- **steering**")]
    assert "does not reach the target" in line
    assert "Tried on mine: 1 variant at blocks 8, 22 x alphas 0.5, 1 (see Steering selection)" in line
    assert "the most clarify any reached there was 0.80 (mean_diff-classes-decision-from_decision, layer 22" in line


def test_a_simpo_miss_names_the_settings_it_searched_on_mine():
    """The rows are scored by the sweep's own `score_point` and chosen by the search's `_chosen`, as the stage
    does: an 'ask always' setting reaches the most clarify but loses call_tool, so the rule keeps the gentle one."""
    from toolprior.experiments.study_simpo_search import _chosen
    from toolprior.steering.sweep import MAX_CALL_TOOL_DROP, score_point

    expected = ["clarify", "clarify", "call_tool", "call_tool"]
    sft = [verdict(f"c{i}", e, "call_tool", "I'll call the tool.") for i, e in enumerate(expected)]
    asks = [verdict(f"c{i}", e, "clarify", "I should ask.") for i, e in enumerate(expected)]
    rows = {
        name: {"overrides": [], "steps": 3, **score_point(name, None, 0.0, verdicts, sft).to_dict(scores=False)}
        for name, verdicts in (("gentle", sft), ("asks", asks))
    }
    base = score_point("baseline", None, 0.0, sft, sft)
    chosen, rule = _chosen(rows, base.call_tool_acc - MAX_CALL_TOOL_DROP)
    search = {"chosen": chosen, "rule": rule, "settings": rows}
    report = {
        "methods": {
            "sft": score(sft),
            "simpo": score(sft) | {"search": search},
            "simpo_steering": score(asks),
        }
    }
    lines = {f.split("**")[1]: f for f in findings(report) if f.startswith("- **simpo")}
    clause = (
        "SimPO tried on mine: 2 settings (see SimPO selection); the most clarify any reached there was 1.00 (`asks`), "
        "with call_tool 0.00; the rule (most clarify with call_tool kept) kept `gentle` (clarify 0.00, call_tool 1.00 "
        "there)."
    )
    assert "does not reach the target" in lines["simpo"] and clause in lines["simpo"]
    assert clause in lines["simpo_steering"]  # its SimPO half was searched the same way


def test_the_report_says_whether_a_method_asks_where_it_should_or_only_more_often():
    from toolprior.experiments.study_summary import results_table

    expected = ["clarify"] * 6 + ["call_tool"] * 14
    sft = [verdict(f"c{i}", e, "call_tool", "I'll call the tool.") for i, e in enumerate(expected)]
    # steering asks on 5 of 6 clarify cases and 1 of 14 call_tool cases; simpo asks on half of each
    sharp = [verdict(f"c{i}", e, "clarify" if (i < 5 or i == 6) else "call_tool", "") for i, e in enumerate(expected)]
    blunt = [verdict(f"c{i}", e, "clarify" if i % 2 else "call_tool", "") for i, e in enumerate(expected)]
    report = {"methods": {"sft": score(sft), "steering": score(sharp), "simpo": score(blunt)}}
    lines = {f.split("**")[1]: f for f in findings(report) if f.startswith("- **")}
    assert (
        "It asks on 5 of 6 clarify cases and 1 of 14 call_tool cases (one-sided Fisher p = 0.0022" in lines["steering"]
    )
    assert "It asks on 3 of 6 clarify cases and 7 of 14 call_tool cases (one-sided Fisher p = 0.69" in lines["simpo"]
    rows = {row.split(" | ")[0][2:]: row for row in results_table(report)[2:]}
    assert (
        "| 0 of 6 / 0 of 14 |" in rows["sft"]
        and "| 5 of 6 / 1 of 14 (p = 0.0022; within category 0.0025) |" in rows["steering"]
    )
