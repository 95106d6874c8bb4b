"""The agent output format: `<think>...</think>` then exactly one action block.

    <think>Two shipments match; I must ask which.</think><clarify>Which shipment, SHP-1029 or SHP-1030?</clarify>
    <think>...</think><tool_call>{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SHP-1030"}}</tool_call>

The action tag follows `</think>` with nothing between them, so the token after `</think>` is the decision.
"""

from __future__ import annotations

import json

from toolprior.actions import ACTION_TAGS, Action
from toolprior.cases import GoldTurn, ToolCall

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def render_tool_call(call: ToolCall) -> str:
    """One `<tool_call>{json}</tool_call>` block."""
    payload = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"<tool_call>{payload}</tool_call>"


def render_turn(turn: GoldTurn) -> str:
    """Render a gold assistant turn in the project's format (the exact text SFT trains on)."""
    think = f"{THINK_OPEN}{turn.think}{THINK_CLOSE}"
    if turn.action is Action.CALL_TOOL:
        return think + "\n".join(render_tool_call(c) for c in turn.tool_calls)
    tag = ACTION_TAGS[turn.action]
    return f"{think}<{tag}>{turn.content}</{tag}>"
