"""The 14 evaluation categories: which kinds of case each holds, and how often.

A kind is one situation with one gold action (a read-only request, an ambiguous reply to a clarification, a refund
over the limit). Each category mixes kinds with weights that give its natural action mix, as in the case study: the
clarification categories are mostly clarify, over_execution and error_recovery mostly call_tool, and so on. Eval
draws kinds per category by these weights; train draws an action first (to hit the configured mix) and then a
(category, kind) among those that produce it, by the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from toolprior.actions import CATEGORIES, Action
from toolprior.training.benchmark.draft import Draft
from toolprior.training.benchmark.kinds import history as h
from toolprior.training.benchmark.kinds import single as s
from toolprior.training.benchmark.kinds.base import KindContext

Build = Callable[[KindContext, str], list[Draft]]


@dataclass(frozen=True)
class KindSpec:
    action: Action
    build: Build
    reuses_texts: bool = False  # an ambiguous variant built from registered call texts: built after the others
    twinnable: bool = False  # can be replaced by a minimal pair (ambiguous + resolved twin)


def _one(fn: Callable[..., Draft], **kw: object) -> Build:
    return lambda kc, kind: [fn(kc, kind=kind, **kw)]


def _pair(family: str, ambiguous: Callable[..., tuple], resolved: Callable[..., tuple]) -> Build:
    """Reuse a registered call text for the ambiguous variant; with none registered yet, build a fresh text and
    return its resolved sibling too, so the text still appears as a call."""

    def build(kc: KindContext, kind: str) -> list[Draft]:
        recipe = kc.registry.pick(kc.rng, family)
        if recipe is not None:
            return [ambiguous(kc, kind, recipe)[0]]
        draft, recipe = ambiguous(kc, kind, None)
        sibling, _ = resolved(kc, kind, recipe)
        return [draft, sibling]

    return build


def _followup(build: Build) -> Build:
    def wrapped(kc: KindContext, kind: str) -> list[Draft]:
        drafts = build(kc, kind)
        domain = next(d for d in kc.domains if d.key == drafts[0].domain)
        s.with_followup(kc, drafts[0], domain)
        return drafts

    return wrapped


def _multi_call(kc: KindContext, kind: str) -> list[Draft]:
    if kc.rng.random() < 0.5:
        return [s.build_call(kc, kind=kind, choose=s.one_intent("write"), parts=["multi"], n_targets=2)]
    return [s.build_call(kc, kind=kind, choose=s.two_writes, parts=["multi"], require=s.has_combos)]


def _handle_call(kc: KindContext, kind: str) -> list[Draft]:
    if kc.rng.random() < 0.3 and any(d.limit for d in kc.domains):
        return [s.build_limit(kc, kind=kind, over=False)]
    return [s.build_call(kc, kind=kind, choose=s.one_intent(), parts=["handle"])]


def _readonly(kc: KindContext, kind: str) -> list[Draft]:
    def write_tool(sc: s.Scene) -> list[str]:
        return [sc.rng.choice(sc.d.write_intents).tool]

    return [
        s.build_call(
            kc, kind=kind, choose=s.one_intent("read"), parts=["readonly"], extra_tools=write_tool, lead_from_write=True
        )
    ]


def _corrected(kc: KindContext, kind: str) -> list[Draft]:
    variant = "id" if kc.rng.random() < 0.6 else "other"
    return [h.build_correction(kc, kind=kind, variant=variant)[0]]


_implicit = lambda kc, kind: s.build_implicit(kc, kind=kind)  # noqa: E731

KINDS: dict[str, KindSpec] = {
    # call_tool
    "multi_call": KindSpec(Action.CALL_TOOL, _multi_call),
    "next_step": KindSpec(Action.CALL_TOOL, _one(h.build_next_step)),
    "scoped_call": KindSpec(Action.CALL_TOOL, _one(s.build_call, choose=s.one_intent(), parts=["scoped"], aside=True)),
    "readonly_call": KindSpec(Action.CALL_TOOL, _readonly),
    "handle_call": KindSpec(Action.CALL_TOOL, _handle_call),
    "own_data_call": KindSpec(Action.CALL_TOOL, _one(s.build_pii, own=True)),
    "approved_call": KindSpec(Action.CALL_TOOL, _one(s.build_permission, variant="approved")),
    "corrected_call": KindSpec(Action.CALL_TOOL, _corrected),
    "history_call": KindSpec(Action.CALL_TOOL, lambda kc, kind: [h.build_history(kc, kind=kind, ambiguous=False)[0]]),
    "reply_resolved": KindSpec(Action.CALL_TOOL, lambda kc, kind: [h.build_reply(kc, kind=kind, variant="attr")[0]]),
    "follow_through_call": KindSpec(
        Action.CALL_TOOL, lambda kc, kind: [h.build_reply(kc, kind=kind, variant="named")[0]]
    ),
    "chain_call": KindSpec(Action.CALL_TOOL, _one(h.build_chain, answer=False)),
    "retry_call": KindSpec(Action.CALL_TOOL, _one(h.build_error, variant="retry")),
    "alternate_call": KindSpec(Action.CALL_TOOL, _one(h.build_error, variant="alternate")),
    "injection_continue": KindSpec(Action.CALL_TOOL, _one(h.build_injection, proceed=True)),
    # clarify
    "implicit_clarify": KindSpec(Action.CLARIFY, _implicit, reuses_texts=True, twinnable=True),
    "explicit_clarify": KindSpec(Action.CLARIFY, _one(s.build_explicit)),
    "missing_clarify": KindSpec(Action.CLARIFY, _one(s.build_missing)),
    "implicit_followup": KindSpec(Action.CLARIFY, _followup(_implicit), reuses_texts=True, twinnable=True),
    "explicit_followup": KindSpec(Action.CLARIFY, _followup(_one(s.build_explicit))),
    "missing_followup": KindSpec(Action.CLARIFY, _followup(_one(s.build_missing))),
    "reply_still": KindSpec(
        Action.CLARIFY,
        _pair(
            "reply_attr",
            lambda kc, kind, r: h.build_reply(kc, kind=kind, variant="attr_still", recipe=r),
            lambda kc, kind, r: h.build_reply(kc, kind="reply_resolved", variant="attr", recipe=r),
        ),
        reuses_texts=True,
    ),
    "not_found_clarify": KindSpec(Action.CLARIFY, _one(h.build_error, variant="not_found")),
    "approval_missing": KindSpec(Action.CLARIFY, _one(s.build_permission, variant="missing")),
    "correction_ambiguous": KindSpec(
        Action.CLARIFY,
        _pair(
            "other",
            lambda kc, kind, r: h.build_correction(kc, kind=kind, variant="other_ambiguous", recipe=r),
            lambda kc, kind, r: h.build_correction(kc, kind="corrected_call", variant="other", recipe=r),
        ),
        reuses_texts=True,
    ),
    "history_ambiguous": KindSpec(
        Action.CLARIFY,
        _pair(
            "backref",
            lambda kc, kind, r: h.build_history(kc, kind=kind, ambiguous=True, recipe=r),
            lambda kc, kind, r: h.build_history(kc, kind="history_call", ambiguous=False, recipe=r),
        ),
        reuses_texts=True,
    ),
    # answer_directly
    "fact_answer": KindSpec(Action.ANSWER_DIRECTLY, _one(s.build_fact)),
    "context_answer": KindSpec(Action.ANSWER_DIRECTLY, _one(s.build_from_context)),
    "route_answer": KindSpec(Action.ANSWER_DIRECTLY, _one(s.build_route_answer)),
    "privacy_answer": KindSpec(Action.ANSWER_DIRECTLY, _one(s.build_privacy_answer)),
    "injection_report": KindSpec(Action.ANSWER_DIRECTLY, _one(h.build_injection, proceed=False)),
    "loop_report": KindSpec(Action.ANSWER_DIRECTLY, _one(h.build_loop, escalate=False)),
    "chain_answer": KindSpec(Action.ANSWER_DIRECTLY, _one(h.build_chain, answer=True)),
    # escalate
    "limit_escalate": KindSpec(Action.ESCALATE, _one(s.build_limit, over=True)),
    "trigger_escalate": KindSpec(Action.ESCALATE, _one(s.build_trigger)),
    "route_escalate": KindSpec(Action.ESCALATE, _one(s.build_route_escalate)),
    "failure_escalate": KindSpec(Action.ESCALATE, _one(h.build_error, variant="failure")),
    "forbidden_escalate": KindSpec(Action.ESCALATE, _one(h.build_error, variant="forbidden")),
    "loop_escalate": KindSpec(Action.ESCALATE, _one(h.build_loop, escalate=True)),
    "authority_escalate": KindSpec(Action.ESCALATE, _one(s.build_permission, variant="over")),
    # refuse
    "policy_refuse": KindSpec(Action.REFUSE, _one(s.build_refusal)),
    "pii_refuse": KindSpec(Action.REFUSE, _one(s.build_pii, own=False)),
    "bypass_refuse": KindSpec(Action.REFUSE, _one(s.build_permission, variant="bypass")),
}

CATEGORY_KINDS: dict[str, dict[str, float]] = {
    "multi_step_chaining": {
        "multi_call": 0.55,
        "next_step": 0.25,
        "implicit_clarify": 0.08,
        "explicit_clarify": 0.04,
        "limit_escalate": 0.08,
    },
    "scope_creep": {
        "scoped_call": 0.55,
        "implicit_clarify": 0.05,
        "trigger_escalate": 0.15,
        "policy_refuse": 0.15,
        "fact_answer": 0.10,
    },
    "error_recovery": {
        "retry_call": 0.38,
        "alternate_call": 0.28,
        "failure_escalate": 0.12,
        "forbidden_escalate": 0.10,
        "not_found_clarify": 0.12,
    },
    "clarification_loop": {
        "implicit_clarify": 0.47,
        "explicit_clarify": 0.22,
        "missing_clarify": 0.08,
        "reply_still": 0.10,
        "reply_resolved": 0.13,
    },
    "tool_result_injection": {"injection_continue": 0.55, "injection_report": 0.45},
    "over_execution": {"readonly_call": 0.72, "implicit_clarify": 0.08, "context_answer": 0.20},
    "tool_loop_prevention": {"loop_report": 0.55, "loop_escalate": 0.45},
    "clarification_follow_through": {
        "implicit_followup": 0.55,
        "explicit_followup": 0.22,
        "missing_followup": 0.08,
        "follow_through_call": 0.15,
    },
    "handoff_routing": {"route_escalate": 0.50, "handle_call": 0.30, "route_answer": 0.20},
    "pii_data_sensitivity": {"pii_refuse": 0.45, "own_data_call": 0.40, "privacy_answer": 0.15},
    "permission_verification": {
        "approval_missing": 0.30,
        "authority_escalate": 0.20,
        "approved_call": 0.40,
        "bypass_refuse": 0.10,
    },
    "correction_handling": {"corrected_call": 0.80, "correction_ambiguous": 0.20},
    "multi_turn_context": {"history_call": 0.80, "history_ambiguous": 0.20},
    "tool_chain_trajectories": {"chain_call": 0.85, "chain_answer": 0.15},
}

assert tuple(CATEGORY_KINDS) == CATEGORIES
assert all(kind in KINDS for kinds in CATEGORY_KINDS.values() for kind in kinds)
