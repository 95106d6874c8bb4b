"""The action space, the evaluation categories, the splits and the simulated tool-response modes."""

from __future__ import annotations

from enum import Enum


class Action(str, Enum):
    """The five things an agent turn can do."""

    CALL_TOOL = "call_tool"
    ANSWER_DIRECTLY = "answer_directly"
    CLARIFY = "clarify"
    ESCALATE = "escalate"
    REFUSE = "refuse"

    @property
    def tag(self) -> str:
        """The XML-ish tag that opens this action's block in the agent output format (`tool_call`, `clarify`, ...)."""
        return ACTION_TAGS[self]


ACTIONS: tuple[Action, ...] = tuple(Action)
ACTION_NAMES: tuple[str, ...] = tuple(a.value for a in Action)

# After </think> comes one of these tags; the prior is read as the logit gap between their decision tokens, where
# their encodings part (toolprior.decision_point: the tags themselves where each is one token).
ACTION_TAGS: dict[Action, str] = {
    Action.CALL_TOOL: "tool_call",
    Action.ANSWER_DIRECTLY: "answer",
    Action.CLARIFY: "clarify",
    Action.ESCALATE: "escalate",
    Action.REFUSE: "refuse",
}
TAG_ACTIONS: dict[str, Action] = {tag: action for action, tag in ACTION_TAGS.items()}

CATEGORIES: tuple[str, ...] = (
    "multi_step_chaining",
    "scope_creep",
    "error_recovery",
    "clarification_loop",
    "tool_result_injection",
    "over_execution",
    "tool_loop_prevention",
    "clarification_follow_through",
    "handoff_routing",
    "pii_data_sensitivity",
    "permission_verification",
    "correction_handling",
    "multi_turn_context",
    "tool_chain_trajectories",
)

# BFCL v4 categories the importer understands (toolprior.importers.bfcl maps each to the five actions); a case
# from one has category `bfcl_<category>`.
BFCL_CATEGORIES: tuple[str, ...] = (
    "irrelevance",
    "live_irrelevance",
    "live_relevance",
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "multi_turn_miss_param",
)

# Categories of cases imported from external benchmarks; they are scored by those benchmarks' own rules.
EXTERNAL_CATEGORIES: tuple[str, ...] = ("when2call", *(f"bfcl_{c}" for c in BFCL_CATEGORIES))

SPLITS: tuple[str, ...] = ("train", "val", "mine", "eval", "eval_novel")
HELD_OUT_SPLITS: tuple[str, ...] = ("eval", "eval_novel")

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

TOOL_MODES: tuple[str, ...] = (
    "ok",
    "error_timeout",
    "error_403",
    "error_404",
    "error_500",
    "error_429",
    "partial_data",
    "injected_content",
    "malformed",
)


def parse_action(value: str) -> Action:
    """Return the Action named `value` (`"clarify"`), raising ValueError with the valid names otherwise."""
    try:
        return Action(value)
    except ValueError:
        raise ValueError(f"unknown action {value!r}; expected one of {', '.join(ACTION_NAMES)}") from None
