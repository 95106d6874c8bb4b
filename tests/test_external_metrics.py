"""When2Call and BFCL metrics on constructed predictions; When2Call on the real 300-record test file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from toolprior.actions import Action
from toolprior.cases import Case, Message, ToolSpec
from toolprior.evals.external_metrics import (
    external_group,
    external_metrics,
    has_call,
    when2call_label,
    when2call_metrics,
)
from toolprior.verdict import Verdict

SHARED = Path(__file__).resolve().parents[2] / "shared"
WHEN2CALL = SHARED / "external" / "when2call" / "when2call_test_llm_judge.jsonl"
LABEL_ACTION = {
    "tool_call": Action.CALL_TOOL,
    "request_for_info": Action.CLARIFY,
    "cannot_answer": Action.REFUSE,
    "direct": Action.ANSWER_DIRECTLY,
}


def when2call_cases() -> list[Case]:
    if not WHEN2CALL.exists():
        pytest.skip(f"When2Call test data not found at {WHEN2CALL}")
    cases = []
    for line in WHEN2CALL.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        tools = []
        for raw in rec["tools"]:
            t = json.loads(raw) if isinstance(raw, str) else raw
            tools.append(ToolSpec(t["name"], t.get("description", ""), t.get("parameters", {})))
        label = rec["correct_answer"]
        cases.append(
            Case(
                id=f"when2call_{rec['uuid']}",
                category="when2call",
                split="eval",
                expected_action=LABEL_ACTION[label],
                messages=(Message("user", rec["question"]),),
                tools=tuple(tools),
                meta={"source": "when2call", "when2call_label": label},
            )
        )
    return cases


def verdict(case: Case, predicted: str | None, calls: list[dict[str, Any]] | None = None) -> Verdict:
    if calls is None:
        calls = [{"name": "some_tool", "arguments": {}}] if predicted == "call_tool" else []
    return Verdict(
        id=case.id,
        category=case.category,
        split=case.split,
        expected=case.expected_action.value,
        acceptable=[a.value for a in case.acceptable_actions],
        predicted=predicted,
        correct=predicted in [a.value for a in case.acceptable_actions],
        tool_calls=calls,
    )


def test_label_mapping():
    assert [when2call_label(a) for a in ("call_tool", "clarify", "refuse", "escalate", "answer_directly")] == [
        "tool_call",
        "request_for_info",
        "cannot_answer",
        "cannot_answer",
        "direct",
    ]
    assert when2call_label(None) == "other" and when2call_label(Action.CLARIFY) == "request_for_info"


def test_when2call_real_file_all_gold():
    cases = when2call_cases()
    assert len(cases) == 300
    pairs = [(c, verdict(c, c.expected_action.value)) for c in cases]
    out = when2call_metrics(pairs)
    assert out["n"] == 300
    assert out["label_set"] == ["tool_call", "request_for_info", "cannot_answer"]  # no "direct" in this file
    assert out["accuracy"] == 1.0 and out["macro_f1"] == 1.0
    assert out["tool_hallucination_rate"] == 0.0
    assert out["tool_hallucination_n"] == 17  # cannot_answer records offered no tools


def test_when2call_real_file_constructed_errors():
    cases = when2call_cases()
    by_label: dict[str, list[Case]] = {"tool_call": [], "request_for_info": [], "cannot_answer": []}
    for c in cases:
        by_label[c.meta["when2call_label"]].append(c)
    ca_no_tools = [c for c in by_label["cannot_answer"] if not c.tools]
    ca_tools = [c for c in by_label["cannot_answer"] if c.tools]
    assert (len(ca_no_tools), len(ca_tools)) == (17, 83)

    changed: dict[str, str | None] = {}
    for c in by_label["request_for_info"][:10]:
        changed[c.id] = "call_tool"  # the call-tool prior: asked for info, called instead
    changed[by_label["request_for_info"][10].id] = "answer_directly"  # -> "direct", outside the label set
    for c in by_label["tool_call"][:5]:
        changed[c.id] = "clarify"
    for c in by_label["tool_call"][5:7]:
        changed[c.id] = None  # unparseable -> "other"
    for c in ca_no_tools[:4]:
        changed[c.id] = "call_tool"  # tool hallucinations: no tools offered, called one anyway
    for c in ca_tools[:3]:
        changed[c.id] = "escalate"  # escalate counts as cannot_answer: still right
    pairs = [(c, verdict(c, changed.get(c.id, c.expected_action.value))) for c in cases]
    out = when2call_metrics(pairs)

    # By hand, per label (TP, FP, FN):
    #   tool_call:        TP = 100 - 5 - 2 = 93, FP = 10 (rfi) + 4 (ca) = 14, FN = 7
    #   request_for_info: TP = 100 - 10 - 1 = 89, FP = 5 (from tool_call), FN = 11
    #   cannot_answer:    TP = 100 - 4 = 96 (3 escalations count), FP = 0, FN = 4
    counts = {"tool_call": (93, 14, 7), "request_for_info": (89, 5, 11), "cannot_answer": (96, 0, 4)}
    f1s = []
    for label, (tp, fp, fn) in counts.items():
        got = out["per_label"][label]
        assert (got["tp"], got["fp"], got["fn"], got["support"]) == (tp, fp, fn, 100)
        p, r = tp / (tp + fp), tp / (tp + fn)
        f1 = 2 * p * r / (p + r)
        assert got["precision"] == round(p, 4) and got["recall"] == round(r, 4) and got["f1"] == round(f1, 4)
        f1s.append(f1)
    # 2TP / (2TP + FP + FN): 186/207, 178/194, 192/196
    assert f1s == pytest.approx([186 / 207, 178 / 194, 192 / 196])
    # (0.89855 + 0.91753 + 0.97959) / 3 = 0.93189
    assert out["macro_f1"] == round((186 / 207 + 178 / 194 + 192 / 196) / 3, 4) == 0.9319
    assert out["accuracy"] == round((93 + 89 + 96) / 300, 4) == 0.9267
    assert out["tool_hallucination_rate"] == round(4 / 17, 4) == 0.2353
    assert out["other_rate"] == round(2 / 300, 4)
    assert out["confusion"]["request_for_info"] == {"tool_call": 10, "request_for_info": 89, "direct": 1}
    assert out["confusion"]["tool_call"] == {"tool_call": 93, "request_for_info": 5, "other": 2}
    assert out["confusion"]["cannot_answer"] == {"tool_call": 4, "cannot_answer": 96}

    # the same through external_metrics, joined by case id
    grouped = external_metrics(cases, [v for _, v in pairs])
    assert list(grouped) == ["when2call"]
    assert grouped["when2call"]["macro_f1"] == out["macro_f1"] and grouped["when2call"]["missing"] == 0


def bfcl_case(flavour: str, n: int, tools: bool = True) -> Case:
    expected = Action.CALL_TOOL if flavour == "live_relevance" else Action.ANSWER_DIRECTLY
    acceptable = (
        (Action.CALL_TOOL,) if flavour == "live_relevance" else tuple(a for a in Action if a != Action.CALL_TOOL)
    )
    return Case(
        id=f"bfcl_{flavour}_{n}",
        category=f"bfcl_{flavour}",
        split="eval",
        expected_action=expected,
        messages=(Message("user", "q"),),
        tools=(ToolSpec("f", "d", {"type": "object", "properties": {}}),) if tools else (),
        acceptable=acceptable,
        meta={"source": "bfcl", "bfcl_category": flavour},
    )


def test_bfcl_metrics_and_grouping():
    irr = [bfcl_case("irrelevance", i) for i in range(4)]
    rel = [bfcl_case("live_relevance", i) for i in range(2)]
    miss = [bfcl_case("multi_turn_miss_param", i) for i in range(3)]
    native = Case(
        id="scope_creep_0001",
        category="scope_creep",
        split="eval",
        expected_action=Action.REFUSE,
        messages=(Message("user", "q"),),
    )
    verdicts = [
        verdict(irr[0], "refuse"),  # no call: right
        verdict(irr[1], "call_tool"),  # a decoded call: wrong
        verdict(irr[2], "call_tool", calls=[]),  # <tool_call> with broken JSON: no decodable call -> right
        # irr[3] has no verdict: counted as missing, left out
        verdict(rel[0], "call_tool"),  # right, arguments unchecked
        verdict(rel[1], "clarify"),  # wrong
        verdict(miss[0], "clarify"),  # right
        verdict(miss[1], "call_tool"),  # wrong
        verdict(miss[2], None),  # unparseable: no call -> right
        verdict(native, "refuse"),
    ]
    assert not has_call(verdicts[2]) and has_call(verdicts[1])
    out = external_metrics([native, *irr, *rel, *miss], verdicts)
    assert list(out) == ["bfcl_irrelevance", "bfcl_live_relevance", "bfcl_multi_turn_miss_param"]
    assert out["bfcl_irrelevance"]["n"] == 3 and out["bfcl_irrelevance"]["correct"] == 2
    assert out["bfcl_irrelevance"]["accuracy"] == 0.6667 and out["bfcl_irrelevance"]["missing"] == 1
    assert out["bfcl_live_relevance"]["accuracy"] == 0.5
    assert out["bfcl_multi_turn_miss_param"]["accuracy"] == 0.6667
    assert out["bfcl_multi_turn_miss_param"]["missing"] == 0
    assert external_group(native) is None
    assert external_metrics([native], verdicts) == {}
