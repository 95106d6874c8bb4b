"""toolprior: train tool-using agents, locate their call-tool prior, steer it, and compare against SimPO."""

from toolprior.actions import ACTION_NAMES, ACTIONS, CATEGORIES, SPLITS, TOOL_MODES, Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.errors import InputError, Problem

__all__ = [
    "ACTIONS",
    "ACTION_NAMES",
    "CATEGORIES",
    "SPLITS",
    "TOOL_MODES",
    "Action",
    "Case",
    "GoldTurn",
    "InputError",
    "Message",
    "Problem",
    "ToolCall",
    "ToolSpec",
]
__version__ = "0.1.0"
