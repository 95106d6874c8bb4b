"""One scored case (`Verdict`), its JSONL I/O, and the rule that decides whether a parsed turn is correct (`judge`).

`judge(case, parsed)` rules:

- `correct` is the decision, as the case study scores it ("expected action / got it right"): the action is one
  of `case.acceptable_actions`. An unparseable turn (action None) is never correct. Which tool was called and
  with which values is execution, checked apart (`tool_name_ok`, `arguments_ok`) and reported as
  `tool_name_accuracy` and `tool_accuracy`, so a call_tool accuracy never hides a wrong tool.
- Where the expected action is call_tool, the prediction is call_tool and the case has a gold turn with tool calls,
  the calls must also match the gold:
  - tool names: the SET of called names must equal the set of gold names (`tool_name_ok`);
  - arguments (`arguments_ok`): the calls must pair one-to-one with the gold calls (same count; a duplicate call
    fails), each pair with the same name and matching arguments. Arguments match when every gold argument is
    present with an equal value; an extra argument the gold does not set is allowed only when the tool's schema
    declares it (an optional parameter the agent filled in; a schema without `properties` declares anything);
    an argument the schema does not declare fails.
  - values: strings compare case-insensitively after stripping whitespace; numbers compare numerically
    (`5 == 5.0`, and a numeric string equals the number it spells: `"5" == 5`); booleans are not numbers
    (`True != 1`); lists compare element by element in order; objects compare key by key recursively, with the
    same keys on both sides; null equals null only.
- A case imported with a benchmark's ground truth of ALLOWED values (`meta.allowed_calls`: BFCL's possible_answer,
  a list of {"name", "arguments": {param: [allowed values]}}) is checked against it instead of a gold turn, by
  BFCL's AST rules: the calls pair one-to-one with the allowed calls (any order), each pair with the same name;
  every argument's value is one of its allowed values, a parameter may be left out only where "" is allowed, and
  an argument the ground truth does not list fails. Allowed values compare as above, except that strings compare
  as BFCL standardises them (case, spaces and the punctuation `,./-_*^` ignored) and an allowed object is itself a
  mapping of keys to allowed values (BFCL's nested dicts), a list of such objects element by element.
- `tool_name_ok` and `arguments_ok` are None when there is nothing to check: the expected action is not call_tool,
  the prediction is not call_tool, or the case has neither gold tool calls nor allowed calls (e.g. When2Call, BFCL
  relevance: only the action is checked).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from toolprior.actions import Action
from toolprior.cases import Case, ToolCall, ToolSpec
from toolprior.verdict import Verdict

# ------------------------------------------------------------------------------------------------------------ judge


def judge(case: Case, parsed: Any) -> tuple[bool, bool | None, bool | None]:
    """(correct, tool_name_ok, arguments_ok) of a parsed turn (a `ParsedTurn`: `.action`, `.tool_calls`) on
    `case`. See the module docstring for the rules."""
    action = _action_value(parsed.action)
    acceptable = {a.value for a in case.acceptable_actions}
    action_ok = action is not None and action in acceptable
    gold_calls = case.gold.tool_calls if case.gold is not None else ()
    allowed = allowed_calls(case)
    checks = case.expected_action is Action.CALL_TOOL and action == Action.CALL_TOOL.value
    if not checks or not (gold_calls or allowed):
        return action_ok, None, None
    calls = list(parsed.tool_calls)
    if allowed:
        name_ok = {c.name for c in calls} == {a.name for a in allowed}
        return action_ok, name_ok, _pair_up(calls, allowed, _allowed_call_matches)
    name_ok = {c.name for c in calls} == {g.name for g in gold_calls}
    args_ok = _calls_match(calls, list(gold_calls), case.tools)
    # The call-tool prior is about WHETHER to call (the decision-point logit gap); which tool and which values
    # are reported next to it (tool_name_accuracy, tool_accuracy, hallucination forensics), not folded in.
    return action_ok, name_ok, args_ok


def verdict_for(
    case: Case,
    parsed: Any,
    *,
    output: str | None = None,
    turns: Sequence[Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
) -> Verdict:
    """The Verdict of `parsed` (the first assistant turn) on `case`; `output` defaults to `parsed.raw`."""
    correct, name_ok, args_ok = judge(case, parsed)
    return Verdict(
        id=case.id,
        category=case.category,
        split=case.split,
        expected=case.expected_action.value,
        acceptable=[a.value for a in case.acceptable_actions],
        predicted=_action_value(parsed.action),
        correct=correct,
        output=output if output is not None else str(getattr(parsed, "raw", "")),
        think=parsed.think,
        tool_calls=[{"name": c.name, "arguments": c.arguments} for c in parsed.tool_calls],
        tool_name_ok=name_ok,
        arguments_ok=args_ok,
        problems=list(parsed.problems),
        turns=[dict(t) for t in turns],
        meta=dict(meta or {}),
    )


def _action_value(action: Any) -> str | None:
    if action is None:
        return None
    return action.value if isinstance(action, Action) else str(action)


def _declared(tools: Sequence[ToolSpec], name: str) -> set[str] | None:
    """The argument names the tool `name` declares; None when it declares no `properties` (anything goes)."""
    for t in tools:
        if t.name == name:
            props = t.parameters.get("properties") if isinstance(t.parameters, Mapping) else None
            return set(props) if isinstance(props, Mapping) else None
    return None


def _call_matches(call: ToolCall, gold: ToolCall, tools: Sequence[ToolSpec]) -> bool:
    if call.name != gold.name:
        return False
    for key, want in gold.arguments.items():
        if key not in call.arguments or not values_match(call.arguments[key], want):
            return False
    extra = set(call.arguments) - set(gold.arguments)
    if extra:
        declared = _declared(tools, call.name)
        if declared is not None and not extra <= declared:
            return False
    return True


def _calls_match(calls: list[ToolCall], gold: list[ToolCall], tools: Sequence[ToolSpec]) -> bool:
    """True when `calls` and `gold` pair one-to-one with matching calls."""
    return _pair_up(calls, gold, lambda c, g: _call_matches(c, g, tools))


def _pair_up(calls: Sequence[Any], wanted: Sequence[Any], matches: Any) -> bool:
    """True when `calls` and `wanted` pair one-to-one with `matches(call, want)` (backtracking; lists are short)."""
    if len(calls) != len(wanted):
        return False
    used = [False] * len(calls)

    def assign(i: int) -> bool:
        if i == len(wanted):
            return True
        for j, c in enumerate(calls):
            if not used[j] and matches(c, wanted[i]):
                used[j] = True
                if assign(i + 1):
                    return True
                used[j] = False
        return False

    return assign(0)


# ---------------------------------------------------------------------------------------------- allowed values


@dataclass(frozen=True)
class AllowedCall:
    """One call of a ground truth given as allowed values: the function, and per parameter every value that is
    right ("" among them: the parameter may be left out)."""

    name: str
    arguments: dict[str, list[Any]]


def allowed_calls(case: Case) -> list[AllowedCall] | None:
    """The case's ground truth of allowed values (`meta.allowed_calls`), or None when it has none."""
    raw = case.meta.get("allowed_calls") if isinstance(case.meta, Mapping) else None
    if not isinstance(raw, list) or not raw:
        return None
    out = []
    for call in raw:
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            return None
        arguments = call.get("arguments") or {}
        if not isinstance(arguments, Mapping) or not all(isinstance(v, list) for v in arguments.values()):
            return None
        out.append(AllowedCall(call["name"], {str(k): list(v) for k, v in arguments.items()}))
    return out


def calls_match_allowed(case: Case, calls: Sequence[ToolCall | Mapping[str, Any]]) -> bool | None:
    """Whether `calls` (ToolCalls or {"name", "arguments"} dicts, as a Verdict keeps them) match the case's allowed
    calls; None when the case has none."""
    allowed = allowed_calls(case)
    if allowed is None:
        return None
    made = [
        c if isinstance(c, ToolCall) else ToolCall(str(c.get("name")), dict(c.get("arguments") or {})) for c in calls
    ]
    return _pair_up(made, allowed, _allowed_call_matches)


_BFCL_PUNCTUATION = re.compile(r"[ ,./\-_*^]")


def _bfcl_text(value: str) -> str:
    """A string as BFCL compares it: lower case, without spaces and the punctuation `,./-_*^`."""
    return _BFCL_PUNCTUATION.sub("", value).lower()


def _allowed_call_matches(call: ToolCall, want: AllowedCall) -> bool:
    if call.name != want.name or not isinstance(call.arguments, Mapping):
        return False
    if set(call.arguments) - set(want.arguments):  # BFCL: a parameter the ground truth does not list is wrong
        return False
    return _allowed_mapping(call.arguments, want.arguments)


def _allowed_mapping(got: Mapping[str, Any], want: Mapping[str, list[Any]]) -> bool:
    """Every key of `want` either left out where "" is allowed, or given one of its allowed values."""
    for key, options in want.items():
        if key not in got:
            if "" not in options:
                return False
        elif not any(_allowed_value(got[key], option) for option in options if option != ""):
            return False
    return True


def _allowed_value(got: Any, want: Any) -> bool:
    if isinstance(want, dict):  # BFCL's nested ground truth: each key maps to its own allowed values
        if not isinstance(got, dict) or set(got) - set(want):
            return False
        nested = {k: (v if isinstance(v, list) else [v]) for k, v in want.items()}
        return _allowed_mapping(got, nested)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_allowed_value(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, str) and isinstance(got, str):
        return _bfcl_text(got) == _bfcl_text(want)
    return values_match(got, want)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


def values_match(got: Any, want: Any) -> bool:
    """Whether an argument value matches the gold value (rules in the module docstring)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool) and got is want
    if want is None or got is None:
        return want is None and got is None
    if isinstance(want, (int, float)) or isinstance(got, (int, float)):
        a, b = _as_number(got), _as_number(want)
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(want, str) and isinstance(got, str):
        return got.strip().casefold() == want.strip().casefold()
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(values_match(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict) and isinstance(got, dict):
        return set(got) == set(want) and all(values_match(got[k], want[k]) for k in want)
    return False
