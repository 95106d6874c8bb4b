"""Generation noise and the QA pass that rejects it.

The case study's LLM generator produced malformed samples (55% of its rejects were truncated JSON in tool objects).
`corrupt` emulates those failures on a small share of raw samples: truncated tool-call or tool-result JSON, a tool
name that is not offered, a think that argues for one action while the action block does another, an empty action
block, an invented id. `check` is the QA pass: it reads the raw assistant turn with the project's own parser
(`toolprior.output_format.parse_turn`) and the history with `json`, and names the first problem it finds. A rejected
sample never reaches a file; the builder generates a new one in its place.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence

from toolprior.actions import ACTION_TAGS, Action
from toolprior.cases import Case, Message, ToolSpec
from toolprior.output_format import check_call, parse_turn, render_turn
from toolprior.training.benchmark.draft import Draft

REASONS: tuple[str, ...] = (
    "truncated_json",
    "unknown_tool",
    "think_action_mismatch",
    "empty_content",
    "hallucinated_argument",
    "missing_required_argument",
    "malformed_output",
)

# How often each failure shows up among corrupted samples (truncation dominates, as in the case study).
CORRUPTION_WEIGHTS: dict[str, float] = {
    "truncated_json": 0.55,
    "think_action_mismatch": 0.15,
    "unknown_tool": 0.10,
    "empty_content": 0.10,
    "hallucinated_argument": 0.10,
}

_ID_RE = re.compile(r"^[A-Z]{1,4}-\d{2,}$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

_STANCE_PATTERNS: tuple[tuple[Action, re.Pattern[str]], ...] = (
    (Action.CLARIFY, re.compile(r"\bask|\bquestion", re.I)),
    (
        Action.ESCALATE,
        re.compile(
            r"escalat|hand (?:it|this) (?:over|off)|handing this off|\broute it\b|\bpass this to\b|\brefer", re.I
        ),
    ),
    (Action.REFUSE, re.compile(r"declin|refus|won't do|say no|turn it down", re.I)),
    (Action.ANSWER_DIRECTLY, re.compile(r"answer|tell them|\brepl|let them know", re.I)),
)


def think_stance(think: str, tool_names: Sequence[str]) -> Action | None:
    """The action a think's final sentence commits to: naming an offered tool means call_tool; otherwise the first
    of ask / escalate / decline / answer cues that matches. None when the conclusion commits to nothing."""
    sentences = [s for s in _SENTENCE_END.split(think.strip()) if s]
    if not sentences:
        return None
    last = sentences[-1]
    if any(re.search(rf"\b{re.escape(name)}\b", last) for name in tool_names):
        return Action.CALL_TOOL
    for action, pattern in _STANCE_PATTERNS:
        if pattern.search(last):
            return action
    return None


def _conversation_text(draft: Draft) -> str:
    return "\n".join(m.content for m in draft.messages)


def check(draft: Draft) -> str | None:
    """The QA verdict on a raw sample: None when it passes, else the reason it is rejected (one of REASONS)."""
    return check_turn(draft.messages, draft.tools, draft.raw)


def check_case(case: Case) -> str | None:
    """The same QA verdict on a written case's gold turn."""
    if case.gold is None:
        return "malformed_output"
    return check_turn(case.messages, case.tools, render_turn(case.gold))


def check_turn(messages: Sequence[Message], tools: Sequence[ToolSpec], raw: str) -> str | None:
    """QA of one assistant turn `raw` given the prompt messages and the offered tools."""
    for message in messages:
        if message.role == "tool":
            try:
                json.loads(message.content)
            except json.JSONDecodeError:
                return "truncated_json"
    parsed = parse_turn(raw)
    if any("invalid JSON" in p or p.endswith(": empty") for p in parsed.problems):
        return "truncated_json"
    if parsed.action is None or parsed.problems or parsed.think is None:
        return "malformed_output"
    names = [t.name for t in tools]
    if think_stance(parsed.think, names) is not parsed.action:
        return "think_action_mismatch"
    if parsed.action is Action.CALL_TOOL:
        for call in parsed.tool_calls:
            problems = check_call(call, tools)
            if any("unknown tool" in p for p in problems):
                return "unknown_tool"
            if any("missing required" in p for p in problems):
                return "missing_required_argument"
            if problems:
                return "malformed_output"
        text = "\n".join(m.content for m in messages)
        for call in parsed.tool_calls:
            for value in call.arguments.values():
                if isinstance(value, str) and _ID_RE.match(value) and value not in text:
                    return "hallucinated_argument"
    elif not parsed.content.strip():
        return "empty_content"
    return None


def is_clean(draft: Draft) -> bool:
    """True when the raw turn is exactly the rendered gold and every tool result parses: nothing corrupted."""
    if draft.raw != render_turn(draft.gold):
        return False
    try:
        for m in draft.messages:
            if m.role == "tool":
                json.loads(m.content)
    except json.JSONDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- corruption


def applicable(draft: Draft) -> list[str]:
    """The corruptions that make sense for this sample."""
    out = ["think_action_mismatch"]
    has_tool_messages = any(m.role == "tool" for m in draft.messages)
    if draft.action is Action.CALL_TOOL:
        out += ["truncated_json", "unknown_tool"]
        if any(isinstance(v, str) and _ID_RE.match(v) for v in draft.gold.tool_calls[0].arguments.values()):
            out.append("hallucinated_argument")
    else:
        out.append("empty_content")
        if has_tool_messages:
            out.append("truncated_json")
    return out


def corrupt(draft: Draft, rng: random.Random, kind: str | None = None) -> str:
    """Damage the raw sample the way a generator would (`kind`, or one drawn by CORRUPTION_WEIGHTS among those that
    apply); returns the corruption applied."""
    if kind is None:
        options = applicable(draft)
        kind = rng.choices(options, weights=[CORRUPTION_WEIGHTS[o] for o in options])[0]
    think_block = draft.raw[: draft.raw.index("</think>") + len("</think>")]
    if kind == "truncated_json":
        tool_messages = [i for i, m in enumerate(draft.messages) if m.role == "tool"]
        if draft.action is Action.CALL_TOOL and (not tool_messages or rng.random() < 0.6):
            payload = draft.raw[len(think_block) :]
            cut = rng.randint(len("<tool_call>{") + 4, payload.index("</tool_call>") - 2)
            draft.raw = think_block + payload[:cut] + "</tool_call>"  # closed tag, broken JSON inside
        else:
            i = rng.choice(tool_messages)
            m = draft.messages[i]
            cut = rng.randint(max(2, len(m.content) // 3), len(m.content) - 2)
            draft.messages[i] = type(m)(m.role, m.content[:cut], m.name)
    elif kind == "unknown_tool":
        call = draft.gold.tool_calls[0]
        offered = {t.name for t in draft.tools}
        options = [call.name.rsplit("_", 1)[0], "do_" + call.name.split("_", 1)[-1], call.name + "_v2"]
        wrong = rng.choice([o for o in options if o not in offered])
        draft.raw = draft.raw.replace(f'"name": "{call.name}"', f'"name": "{wrong}"', 1)
    elif kind == "hallucinated_argument":
        call = draft.gold.tool_calls[0]
        for key, value in call.arguments.items():
            if isinstance(value, str) and _ID_RE.match(value):
                prefix, digits = value.rsplit("-", 1)
                text = _conversation_text(draft)
                start = int(digits) + rng.randint(3, 40)
                invented = next(f"{prefix}-{n}" for n in range(start, start + 10000) if f"{prefix}-{n}" not in text)
                draft.raw = draft.raw.replace(f'"{key}": "{value}"', f'"{key}": "{invented}"', 1)
                break
    elif kind == "empty_content":
        tag = ACTION_TAGS[draft.action]
        blank = rng.choice(("", " ", "\n"))
        draft.raw = f"{think_block}<{tag}>{blank}</{tag}>"
    else:  # think_action_mismatch: the reasoning argues one way, the action goes another
        draft.raw = think_block + _other_action_block(draft, rng)
    return kind


def _other_action_block(draft: Draft, rng: random.Random) -> str:
    if draft.action is not Action.CALL_TOOL and draft.tools:
        tool: ToolSpec = rng.choice(draft.tools)
        text = _conversation_text(draft)
        ids = re.findall(r"\b[A-Z]{1,4}-\d{2,}\b", text)
        args = {name: (rng.choice(ids) if ids else "unknown") for name in tool.required}
        return "<tool_call>" + json.dumps({"name": tool.name, "arguments": args}) + "</tool_call>"
    other = rng.choice([a for a in (Action.CLARIFY, Action.ANSWER_DIRECTLY, Action.ESCALATE) if a is not draft.action])
    tag = ACTION_TAGS[other]
    return f"<{tag}>{rng.choice(('Which one do you mean?', 'Done.', 'Passing this on.'))}</{tag}>"
