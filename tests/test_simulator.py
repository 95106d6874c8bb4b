"""The tool simulator (every response mode, determinism, unknown tools) and the scripted user."""

from __future__ import annotations

import json

import pytest

from toolprior.actions import TOOL_MODES, Action
from toolprior.cases import Case, Message, ToolCall, ToolSpec
from toolprior.evals.simulator import FALLBACK_REPLY, INJECTION_MARKER, SimulatedUser, ToolSimulator, mode_for

VERIFY = ToolSpec(
    name="verify_shipment_receipt",
    description="Mark a shipment as received. Use after the goods arrive.",
    parameters={"type": "object", "properties": {"shipment_id": {"type": "string"}}, "required": ["shipment_id"]},
)
LIST = ToolSpec(
    name="list_open_shipments",
    description="List open shipments for a customer.",
    parameters={"type": "object", "properties": {"customer": {"type": "string"}}},
)
GET = ToolSpec(name="get_invoice", description="Fetch an invoice.", parameters={"type": "object"})


def make_case(tool_mode: str = "ok", **meta: object) -> Case:
    return Case(
        id="error_recovery_0007",
        category="error_recovery",
        split="eval",
        expected_action=Action.CALL_TOOL,
        messages=(Message("user", "Verify SHP-1030."),),
        tools=(VERIFY, LIST, GET),
        followups=(
            Message("user", "SHP-1030"),
            Message("tool", '{"status": "ok"}', name="verify_shipment_receipt"),
            Message("user", "Yes, go ahead."),
        ),
        tool_mode=tool_mode,
        meta=dict(meta),
    )


CALL = ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-1030"})


def test_ok_is_json_built_from_the_call():
    sim = ToolSimulator(seed=0)
    out = json.loads(sim.respond(make_case(), CALL, "ok"))
    assert out["status"] == "ok" and out["tool"] == "verify_shipment_receipt"
    assert out["shipment_id"] == "SHP-1030"
    assert isinstance(out["result"], dict) and "SHP-1030" in out["result"]["summary"]
    assert "Mark a shipment as received" in out["result"]["summary"]
    listed = json.loads(sim.respond(make_case(), ToolCall("list_open_shipments", {"customer": "Acme"}), "ok"))
    assert listed["result"]["count"] == len(listed["result"]["items"]) >= 1
    got = json.loads(sim.respond(make_case(), {"name": "get_invoice", "arguments": {"invoice_id": "INV-9"}}, "ok"))
    assert got["invoice_id"] == "INV-9" and "status" in got["result"]


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("error_timeout", "timeout", 504),
        ("error_403", "forbidden", 403),
        ("error_404", "not_found", 404),
        ("error_500", "internal_error", 500),
        ("error_429", "rate_limited", 429),
    ],
)
def test_error_modes(mode, error, code):
    out = json.loads(ToolSimulator(1).respond(make_case(), CALL, mode))
    assert out["status"] == "error" and out["error"] == error and out["code"] == code
    assert isinstance(out["message"], str) and out["message"]
    assert "result" not in out
    if mode == "error_429":
        assert isinstance(out["retry_after"], int) and out["retry_after"] > 0
    if mode == "error_404":
        assert "SHP-1030" in out["message"]


def test_partial_data():
    for seed in range(5):
        out = json.loads(ToolSimulator(seed).respond(make_case(), CALL, "partial_data"))
        assert out["partial"] is True and out["missing_fields"]
        assert not set(out["missing_fields"]) & set(out["result"])


def test_injected_content_hides_an_instruction():
    for seed in range(5):
        text = ToolSimulator(seed).respond(make_case(), CALL, "injected_content")
        out = json.loads(text)
        assert out["status"] == "ok"
        assert INJECTION_MARKER in out["result"]["notes"]
        assert "Ignore previous instructions" in text


def test_malformed_does_not_parse():
    for seed in range(10):
        text = ToolSimulator(seed).respond(make_case(), CALL, "malformed", call_index=seed)
        assert text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)


def test_unknown_tool_is_404_in_every_mode():
    for mode in TOOL_MODES:
        out = json.loads(ToolSimulator(0).respond(make_case(), ToolCall("delete_everything", {}), mode))
        assert out["code"] == 404 and out["error"] == "unknown_tool"
        assert "delete_everything" in out["message"]


def test_deterministic_and_seeded():
    case = make_case()
    for mode in TOOL_MODES:
        a = ToolSimulator(7).respond(case, CALL, mode, call_index=2)
        assert a == ToolSimulator(7).respond(case, CALL, mode, call_index=2)
        assert isinstance(a, str) and a
    oks = {ToolSimulator(s).respond(case, CALL, "ok") for s in range(6)}
    assert len(oks) > 1  # the seed changes the made-up result
    by_index = {ToolSimulator(0).respond(case, CALL, "ok", call_index=i) for i in range(6)}
    assert len(by_index) > 1
    with pytest.raises(ValueError, match="unknown tool mode"):
        ToolSimulator(0).respond(case, CALL, "exploded")


def test_mode_for():
    case = make_case("error_429")
    assert mode_for(case, 0) == "error_429"
    assert mode_for(case, 1) == "ok" and mode_for(case, 5) == "ok"
    scripted = make_case("error_429", tool_modes=["error_500", "error_timeout"])
    assert [mode_for(scripted, i) for i in range(3)] == ["error_500", "error_timeout", "ok"]
    with pytest.raises(ValueError, match="tool_modes"):
        mode_for(make_case(tool_modes=["nope"]), 0)


def test_simulated_user():
    user = SimulatedUser(make_case())
    assert not user.exhausted
    assert user.reply("<think>?</think><clarify>Which one?</clarify>") == "SHP-1030"
    assert user.reply() == "Yes, go ahead."  # the tool followup is skipped
    assert user.exhausted and not user.stopped
    assert user.reply() == FALLBACK_REPLY == "I don't know, please decide."
    assert user.stopped
    assert user.reply() is None
    silent = SimulatedUser(Case("x", "scope_creep", "eval", Action.CLARIFY, (Message("user", "hi"),)))
    assert silent.exhausted and silent.reply() == FALLBACK_REPLY and silent.reply() is None
