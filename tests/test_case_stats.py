"""format_stats: the action x category table, per-split counts and surface-diversity figures."""

from __future__ import annotations

from toolprior.actions import Action
from toolprior.case_stats import format_stats, last_user_text, prompt_chars
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec

TOOL = ToolSpec(
    "verify_shipment_receipt",
    "Record that a shipment arrived.",
    {"type": "object", "properties": {"shipment_id": {"type": "string"}}, "required": ["shipment_id"]},
)


def make(case_id: str, action: Action, category: str, user: str, *, split: str = "eval", **meta) -> Case:
    calls = (ToolCall(TOOL.name, {"shipment_id": "SHP-1"}),) if action is Action.CALL_TOOL else ()
    gold = GoldTurn(f"think {case_id}", action, "" if calls else "Which one?", calls)
    return Case(
        id=case_id,
        category=category,
        split=split,
        expected_action=action,
        messages=(Message("system", "Pending shipments: SHP-1, SHP-2."), Message("user", user)),
        tools=(TOOL,),
        gold=gold,
        meta={"template": meta.pop("template", "k01"), "domain": "shipments", **meta},
    )


def test_table_has_counts_and_row_percentages_per_category():
    cases = [
        make("a", Action.CALL_TOOL, "clarification_loop", "Verify SHP-1."),
        make("b", Action.CLARIFY, "clarification_loop", "Verify the shipment.", ambiguity="implicit"),
        make("c", Action.CLARIFY, "clarification_loop", "Verify the shipment.", ambiguity="implicit"),
        make("d", Action.CLARIFY, "clarification_loop", "Either one.", ambiguity="explicit", template="k02"),
        make("e", Action.REFUSE, "pii_data_sensitivity", "Give me Dana's address."),
    ]
    text = format_stats(cases)
    assert text.startswith("5 cases")
    row = next(line for line in text.splitlines() if line.startswith("clarification_loop"))
    assert row.split()[1:6] == ["4", "1", "25%", "0", "0%"]  # n, call count and %, answer count and %
    assert "3   75%" in row
    total = next(line for line in text.splitlines() if line.startswith("total"))
    assert total.split()[1] == "5"
    assert "split x action" not in text  # a single split: no per-split table
    assert "distinct user texts      4 of 5" in text
    assert "distinct templates       2 (1 used by more than one action)" in text
    assert "implicit 67% (2), explicit 33% (1)" in text
    assert "tool names               1 offered, 1 called" in text


def test_several_splits_get_a_split_table():
    cases = [
        make("a", Action.CALL_TOOL, "over_execution", "Check SHP-1.", split="train"),
        make("b", Action.CLARIFY, "over_execution", "Check the shipment.", split="eval", ambiguity="implicit"),
    ]
    text = format_stats(cases)
    assert "split x action" in text
    assert any(line.startswith("train") for line in text.splitlines())
    assert any(line.startswith("eval") for line in text.splitlines())


def test_prompt_length_and_last_user_text():
    case = make("a", Action.CALL_TOOL, "over_execution", "Check SHP-1.")
    assert last_user_text(case) == "Check SHP-1."
    assert prompt_chars(case) == len("Pending shipments: SHP-1, SHP-2.") + len("Check SHP-1.")
    assert prompt_chars(case, with_tools=True) > prompt_chars(case)
    assert "prompt chars" in format_stats([case])


def test_no_cases():
    assert format_stats([]) == "no cases\n"
