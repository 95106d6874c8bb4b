"""Verdicts, the judge, per-method scores and plots, on hand-built data with hand-computed numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from toolprior.actions import Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.errors import InputError
from toolprior.evals.plots import plot_confusion, plot_methods_per_action, plot_per_action, plot_per_category
from toolprior.evals.scoring import score, score_by_split
from toolprior.evals.verdicts import judge, values_match, verdict_for
from toolprior.output_format import parse_turn
from toolprior.verdict import Verdict, read_verdicts, write_verdicts

Z = 1.959963984540054


def wilson_by_hand(k: int, n: int) -> list[float]:
    p = k / n
    z2 = Z**2
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n**2)) / (1 + z2 / n)
    lo = 0.0 if k == 0 else center - half
    hi = 1.0 if k == n else center + half
    return [round(lo, 4), round(hi, 4)]


# ------------------------------------------------------------------------------------------------------------ judge

VERIFY = ToolSpec(
    name="verify_shipment_receipt",
    description="Mark a shipment as received.",
    parameters={
        "type": "object",
        "properties": {"shipment_id": {"type": "string"}, "note": {"type": "string"}, "quantity": {"type": "integer"}},
        "required": ["shipment_id"],
    },
)
LOOKUP = ToolSpec(
    name="lookup_shipment",
    description="Look up a shipment.",
    parameters={"type": "object", "properties": {"shipment_id": {"type": "string"}}, "required": ["shipment_id"]},
)


def call_case(*gold_calls: ToolCall, gold: bool = True, **kw: Any) -> Case:
    return Case(
        id=kw.pop("id", "multi_step_chaining_0001"),
        category="multi_step_chaining",
        split="eval",
        expected_action=Action.CALL_TOOL,
        messages=(Message("user", "Verify SHP-1030."),),
        tools=(VERIFY, LOOKUP),
        gold=GoldTurn(think="One shipment matches.", action=Action.CALL_TOOL, tool_calls=gold_calls) if gold else None,
        **kw,
    )


def turn(*calls: dict[str, Any]) -> str:
    return "<think>ok</think>" + "".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in calls)


def verify(**args: Any) -> dict[str, Any]:
    return {"name": "verify_shipment_receipt", "arguments": args}


GOLD = ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-1030"})


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (turn(verify(shipment_id="SHP-1030")), (True, True, True)),
        (turn(verify(shipment_id="  shp-1030 ")), (True, True, True)),  # strings: strip + case-insensitive
        (turn(verify(shipment_id="SHP-1029")), (True, True, False)),  # wrong value: right decision, bad execution
        (turn(verify()), (True, True, False)),  # missing argument
        (turn(verify(shipment_id="SHP-1030", note="left at dock")), (True, True, True)),  # declared optional extra
        (turn(verify(shipment_id="SHP-1030", priority="high")), (True, True, False)),  # undeclared extra
        # the wrong tool: the decision (call a tool) is right, the execution (which tool) is not
        (turn({"name": "lookup_shipment", "arguments": {"shipment_id": "SHP-1030"}}), (True, False, False)),
        (turn(verify(shipment_id="SHP-1030"), verify(shipment_id="SHP-1030")), (True, True, False)),  # duplicate
        (
            turn(verify(shipment_id="SHP-1030"), {"name": "lookup_shipment", "arguments": {"shipment_id": "SHP-1030"}}),
            (True, False, False),  # an extra tool: the set of names differs
        ),
        ("<think>two match</think><clarify>Which one?</clarify>", (False, None, None)),
        ("I will verify it now.", (False, None, None)),  # unparseable
        ("<think>x</think><tool_call>{broken</tool_call>", (True, False, False)),  # call_tool, no decoded call
    ],
)
def test_judge_call_tool_case(text, want):
    assert judge(call_case(GOLD), parse_turn(text)) == want


def test_judge_numbers_and_multiple_calls():
    gold_q = ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-1", "quantity": 5})
    case = call_case(gold_q)
    assert judge(case, parse_turn(turn(verify(shipment_id="shp-1", quantity=5.0)))) == (True, True, True)
    assert judge(case, parse_turn(turn(verify(shipment_id="SHP-1", quantity="5")))) == (True, True, True)
    assert judge(case, parse_turn(turn(verify(shipment_id="SHP-1", quantity=6)))) == (True, True, False)
    # two gold calls of one tool: matched one-to-one in any order
    two = call_case(
        ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-1"}),
        ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-2"}),
    )
    swapped = turn(verify(shipment_id="SHP-2"), verify(shipment_id="SHP-1"))
    assert judge(two, parse_turn(swapped)) == (True, True, True)
    same_twice = turn(verify(shipment_id="SHP-1"), verify(shipment_id="SHP-1"))
    assert judge(two, parse_turn(same_twice)) == (True, True, False)


def test_values_match():
    assert values_match(True, True) and not values_match(True, 1) and not values_match(1, True)
    assert values_match(None, None) and not values_match(None, "")
    assert values_match([1, "A "], [1.0, "a"]) and not values_match([1, 2], [2, 1])
    assert values_match({"x": "Y"}, {"x": "y"}) and not values_match({"x": 1, "z": 2}, {"x": 1})
    assert not values_match("abc", 3)


def test_judge_without_gold_and_other_actions():
    no_gold = call_case(gold=False)
    assert judge(no_gold, parse_turn(turn({"name": "anything", "arguments": {}}))) == (True, None, None)
    clarify_case = Case(
        id="clarification_loop_0001",
        category="clarification_loop",
        split="eval",
        expected_action=Action.CLARIFY,
        messages=(Message("user", "Verify the Acme shipment."),),
        tools=(VERIFY,),
        gold=GoldTurn(think="Two match.", action=Action.CLARIFY, content="Which one?"),
    )
    assert judge(clarify_case, parse_turn("<think>a</think><clarify>Which?</clarify>")) == (True, None, None)
    assert judge(clarify_case, parse_turn(turn(verify(shipment_id="SHP-1030")))) == (False, None, None)
    not_calling = tuple(a for a in Action if a is not Action.CALL_TOOL)
    irrelevance = Case(
        id="bfcl_irrelevance_1",
        category="bfcl_irrelevance",
        split="eval",
        expected_action=Action.ANSWER_DIRECTLY,
        messages=(Message("user", "What is love?"),),
        acceptable=not_calling,
    )
    assert judge(irrelevance, parse_turn("<think>a</think><refuse>No.</refuse>")) == (True, None, None)
    assert judge(irrelevance, parse_turn(turn(verify(shipment_id="x"))))[0] is False


# --------------------------------------------------------------------------------------------------- verdict I/O


def test_verdict_for_and_round_trip(tmp_path: Path):
    text = turn(verify(shipment_id="SHP-1030"))
    v = verdict_for(call_case(GOLD), parse_turn(text), turns=[{"role": "user", "content": "hi"}], meta={"seed": 1})
    assert (v.predicted, v.correct, v.tool_name_ok, v.arguments_ok) == ("call_tool", True, True, True)
    assert v.output == text and v.think == "ok" and v.acceptable == ["call_tool"]
    assert v.tool_calls == [{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SHP-1030"}}]
    unparsed = verdict_for(call_case(GOLD, id="x2"), parse_turn("plain text"))
    assert unparsed.predicted is None and unparsed.predicted_label == "unparsed" and unparsed.problems
    path = tmp_path / "verdicts" / "sft.jsonl"
    assert write_verdicts(path, [v, unparsed]) == 2
    back = read_verdicts(path)
    assert back == [v, unparsed]
    assert [p.name for p in path.parent.iterdir()] == ["sft.jsonl"]  # no temporary file left behind
    assert Verdict.from_dict(v.to_dict()) == v


def test_read_verdicts_names_line_and_field(tmp_path: Path):
    good = Verdict("a", "scope_creep", "eval", "refuse", ["refuse"], "refuse", True).to_dict()
    bad_type = dict(good, correct="yes")
    missing = {k: val for k, val in good.items() if k != "expected"}
    path = tmp_path / "v.jsonl"
    path.write_text("\n".join([json.dumps(good), "{broken", json.dumps(bad_type), "", json.dumps(missing)]) + "\n")
    with pytest.raises(InputError) as err:
        read_verdicts(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{path}:2: broken JSON")
    assert lines[1].startswith(f"{path}:3: correct: expected true or false")
    assert lines[2] == f"{path}:5: expected: missing"
    with pytest.raises(InputError, match="no such file"):
        read_verdicts(tmp_path / "nope.jsonl")


# ----------------------------------------------------------------------------------------------------------- score


def V(expected: str, predicted: str | None, correct: bool, category: str, split: str = "eval", **kw: Any) -> Verdict:
    V.count += 1  # type: ignore[attr-defined]
    return Verdict(
        id=f"c{V.count}",  # type: ignore[attr-defined]
        category=category,
        split=split,
        expected=expected,
        acceptable=[expected],
        predicted=predicted,
        correct=correct,
        **kw,
    )


V.count = 0  # type: ignore[attr-defined]


def twelve() -> list[Verdict]:
    ok = {"tool_name_ok": True, "arguments_ok": True}
    return [
        # call_tool x4: 3 right decisions (one of them with the wrong arguments, one with the wrong tool); 1 answered
        V("call_tool", "call_tool", True, "multi_step_chaining", think_argues="call_tool", **ok),
        V("call_tool", "call_tool", True, "multi_step_chaining", tool_name_ok=True, arguments_ok=False),
        V(
            "call_tool",
            "call_tool",
            True,
            "multi_step_chaining",
            split="eval_novel",
            tool_name_ok=False,
            arguments_ok=False,
        ),
        V("call_tool", "answer_directly", False, "multi_step_chaining"),
        # clarify x5: 1 right, 3 call_tool, 1 unparsed
        V("clarify", "clarify", True, "clarification_loop", think_argues="clarify"),
        V("clarify", "call_tool", False, "clarification_loop", think_argues="clarify"),
        V("clarify", "call_tool", False, "clarification_loop", think_argues="clarify"),
        V("clarify", "call_tool", False, "clarification_loop", think_argues="call_tool"),
        V("clarify", None, False, "clarification_loop", split="eval_novel"),
        # refuse x2: 1 right, 1 escalate
        V("refuse", "refuse", True, "pii_data_sensitivity"),
        V("refuse", "escalate", False, "pii_data_sensitivity", think_argues="refuse"),
        # answer_directly x1: right, in a category outside CATEGORIES
        V("answer_directly", "answer_directly", True, "custom_extra"),
    ]


def test_score_by_hand():
    s = score(twelve())
    assert s["n"] == 12
    assert s["overall"] == 0.5  # 6 of 12
    # per-action accuracies 3/4, 1/5, 1/2, 1/1 -> macro (0.75 + 0.2 + 0.5 + 1.0) / 4
    assert s["macro_action"] == 0.6125
    assert list(s["per_action"]) == ["call_tool", "answer_directly", "clarify", "refuse"]
    assert s["per_action"]["call_tool"] == {
        "n": 4,
        "acc": 0.75,
        "ci95": wilson_by_hand(3, 4),
        "top_wrong": "answer_directly",
        "top_wrong_rate": 0.25,
    }
    assert s["per_action"]["clarify"] == {
        "n": 5,
        "acc": 0.2,
        "ci95": wilson_by_hand(1, 5),
        "top_wrong": "call_tool",
        "top_wrong_rate": 0.6,  # 3 of ALL 5 clarify cases
    }
    assert s["per_action"]["clarify"]["ci95"] == [0.0362, 0.6245]
    assert s["per_action"]["refuse"]["top_wrong"] == "escalate"
    assert s["per_action"]["refuse"]["top_wrong_rate"] == 0.5
    assert s["per_action"]["answer_directly"] == {
        "n": 1,
        "acc": 1.0,
        "ci95": wilson_by_hand(1, 1),
        "top_wrong": None,
        "top_wrong_rate": None,
    }
    assert list(s["per_category"]) == [
        "multi_step_chaining",
        "clarification_loop",
        "pii_data_sensitivity",
        "custom_extra",
    ]
    assert s["per_category"]["clarification_loop"] == {"n": 5, "acc": 0.2, "ci95": wilson_by_hand(1, 5)}
    assert s["per_category"]["custom_extra"]["acc"] == 1.0
    assert s["confusion"] == {
        "call_tool": {"call_tool": 3, "answer_directly": 1},
        "answer_directly": {"answer_directly": 1},
        "clarify": {"call_tool": 3, "clarify": 1, "unparsed": 1},
        "refuse": {"escalate": 1, "refuse": 1},
    }
    assert list(s["confusion"]["clarify"]) == ["call_tool", "clarify", "unparsed"]
    # think argues for a non-call_tool action in 4 verdicts (clarify x3, refuse x1); 2 of them called the tool
    assert s["think_action_mismatch"] == 0.5
    # call_tool expected and predicted, checked: 3; right tool: 2; right tool and arguments: 1
    assert s["tool_name_accuracy"] == 0.6667
    assert s["tool_accuracy"] == 0.3333
    assert s["unparsed_rate"] == round(1 / 12, 4) == 0.0833
    assert s["splits"] == ["eval", "eval_novel"]


def test_top_wrong_ties_follow_action_order():
    vs = [
        V("escalate", "refuse", False, "handoff_routing"),
        V("escalate", "call_tool", False, "handoff_routing"),
        V("escalate", None, False, "handoff_routing"),
        V("escalate", "escalate", True, "handoff_routing"),
    ]
    block = score(vs)["per_action"]["escalate"]
    assert block["top_wrong"] == "call_tool" and block["top_wrong_rate"] == 0.25
    vs2 = [V("refuse", None, False, "scope_creep"), V("refuse", None, False, "scope_creep")]
    assert score(vs2)["per_action"]["refuse"]["top_wrong"] == "unparsed"


def test_score_empty_and_no_think():
    s = score([])
    assert s["n"] == 0 and s["overall"] is None and s["macro_action"] is None and s["per_action"] == {}
    s2 = score([V("refuse", "refuse", True, "scope_creep")])
    assert s2["think_action_mismatch"] is None and s2["tool_accuracy"] is None


def test_score_by_split():
    by = score_by_split(twelve())
    assert list(by) == ["eval", "eval_novel"]
    assert by["eval"]["n"] == 10 and by["eval_novel"]["n"] == 2
    assert by["eval"]["overall"] == 0.5  # 5 right of 10
    assert by["eval_novel"]["confusion"] == {"call_tool": {"call_tool": 1}, "clarify": {"unparsed": 1}}
    assert by["eval_novel"]["splits"] == ["eval_novel"]


# ----------------------------------------------------------------------------------------------------------- plots


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_plots_write_pngs(tmp_path: Path):
    report = score(twelve())
    other = score(
        [V("clarify", "clarify", True, "clarification_loop"), V("call_tool", "clarify", False, "scope_creep")]
    )
    outs = [
        plot_per_action(report, tmp_path / "plots" / "per_action.png", "sft"),
        plot_per_category(report, tmp_path / "plots" / "per_category.png"),
        plot_confusion(report, tmp_path / "plots" / "confusion.png"),
        plot_methods_per_action({"sft": report, "steering": other}, tmp_path / "plots" / "methods.png"),
        plot_per_action(score([]), tmp_path / "plots" / "empty.png", "empty"),
        plot_confusion(score([]), tmp_path / "plots" / "empty_confusion.png"),
    ]
    for out in outs:
        assert_png(Path(out))


def test_clarify_by_ambiguity_and_think_says_clarify_by_hand():
    vs = [
        V("clarify", "clarify", True, "clarification_loop", meta={"ambiguity": "explicit"}, think_argues="clarify"),
        V("clarify", "clarify", True, "clarification_loop", meta={"ambiguity": "explicit"}),
        V("clarify", "call_tool", False, "clarification_loop", meta={"ambiguity": "explicit"}),
        V("clarify", "call_tool", False, "clarification_loop", meta={"ambiguity": "implicit"}, think_argues="clarify"),
        V("clarify", "call_tool", False, "clarification_loop", meta={"ambiguity": "implicit"}, think_argues="clarify"),
        V("clarify", "answer_directly", False, "clarification_loop", meta={"ambiguity": "implicit"}),
        V("clarify", "clarify", True, "clarification_loop", meta={"ambiguity": "implicit"}),
        V("call_tool", "call_tool", True, "multi_step_chaining", think_argues="clarify"),
    ]
    s = score(vs)
    assert s["clarify_by_ambiguity"] == {
        "explicit": {"n": 3, "acc": 0.6667, "ci95": wilson_by_hand(2, 3), "top_wrong": "call_tool",
                     "top_wrong_rate": 0.3333},
        "implicit": {"n": 4, "acc": 0.25, "ci95": wilson_by_hand(1, 4), "top_wrong": "call_tool",
                     "top_wrong_rate": 0.5},
    }  # fmt: skip
    # the think argued for clarify 4 times; the action called a tool in 3 of them
    assert s["think_says_clarify"] == {"n": 4, "called_tool": 3}


def test_asking_more_where_it_should_is_a_one_sided_fisher_test_against_asking_on_call_tool_cases():
    from scipy.stats import hypergeom

    def run(clarify_asks: int, call_tool_asks: int) -> list:
        vs = [
            V("clarify", "clarify" if i < clarify_asks else "call_tool", i < clarify_asks, "clarification_loop")
            for i in range(12)
        ]
        vs += [
            V(
                "call_tool",
                "clarify" if i < call_tool_asks else "call_tool",
                i >= call_tool_asks,
                "tool_chain_trajectories",
            )
            for i in range(30)
        ]
        return vs + [
            V("answer_directly", "clarify", False, "direct_answer") for _ in range(5)
        ]  # neither group: not counted

    sharp = score(run(9, 3))["asks_where_it_should"]
    assert sharp["clarify_cases"] == {"asked": 9, "n": 12} and sharp["call_tool_cases"] == {"asked": 3, "n": 30}
    # one-sided: the chance that at least 9 of the 12 asks land on the 12 clarify cases among 42
    assert sharp["p"] == pytest.approx(hypergeom.sf(8, 42, 12, 12), rel=1e-9) and sharp["p"] < 0.001
    assert score(run(6, 15))["asks_where_it_should"]["p"] > 0.3  # asks on half of each: more often, not where
    assert score(run(0, 0))["asks_where_it_should"]["p"] is None  # never asks: nothing to test


def test_asking_within_case_category_discounts_a_category_no_one_asks_on():
    # the clarification_loop cases are asked alike, ambiguous or not; the trajectory's call_tool cases never
    vs = [V("clarify", "clarify", True, "clarification_loop") for _ in range(8)]
    vs += [V("call_tool", "clarify", False, "clarification_loop") for _ in range(8)]
    vs += [V("call_tool", "call_tool", True, "tool_chain_trajectories") for _ in range(24)]
    asks = score(vs)["asks_where_it_should"]
    assert asks["clarify_cases"] == {"asked": 8, "n": 8} and asks["call_tool_cases"] == {"asked": 8, "n": 32}
    assert asks["p"] < 0.001  # pooled: asks on 100% of clarify cases against 25% of call_tool cases
    assert asks["p_within_category"] is None  # the one category with both kinds asks on all of them: no signal
    vs += [V("call_tool", "call_tool", True, "clarification_loop") for _ in range(8)]  # now it asks on half
    assert score(vs)["asks_where_it_should"]["p_within_category"] < 0.05


def test_asking_without_call_tool_cases_has_counts_but_no_test():
    vs = [V("clarify", "clarify", True, "clarification_loop"), V("clarify", None, False, "clarification_loop")]
    asks = score(vs)["asks_where_it_should"]
    # an unparsed output is not an ask, and still one of the clarify cases
    assert asks["clarify_cases"] == {"asked": 1, "n": 2} and asks["call_tool_cases"] == {"asked": 0, "n": 0}
    assert asks["p"] is None and asks["p_within_category"] is None
