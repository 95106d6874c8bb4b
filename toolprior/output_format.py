"""The agent output format: `<think>...</think>` then exactly one action block.

    <think>Two shipments match; I must ask which.</think><clarify>Which shipment, SHP-1029 or SHP-1030?</clarify>
    <think>...</think><tool_call>{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SHP-1030"}}</tool_call>

The action tag follows `</think>` with nothing between them, so the action is decided right after `</think>` (at the
first token where the tags' encodings differ: `toolprior.decision_point`).

Rendering (`render_turn`) produces the exact text SFT trains on. Parsing (`parse_turn`) reads model output back into a
`ParsedTurn`; it never raises and reports every deviation from the format as a short string in `problems`. Foreign
formats (hermes/OpenAI JSON tool calls, plain text) go through other parsers in `PARSERS` (see `get_parser`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from toolprior.actions import ACTION_TAGS, TAG_ACTIONS, Action
from toolprior.case_schema import json_type_name
from toolprior.cases import GoldTurn, ToolCall, ToolSpec

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
# Generation may run past the end of the turn; everything from the first of these markers on is dropped.
END_MARKERS: tuple[str, ...] = ("<|end|>", "<|endoftext|>")

_TAG_NAMES = ("think", *ACTION_TAGS.values())
# Any opening or closing tag of the format's vocabulary.
_TAG_RE = re.compile(r"</?(?:" + "|".join(_TAG_NAMES) + r")>")
# An opening action tag (`<tool_call>`, `<clarify>`, ...); group 1 is the tag name.
_ACTION_OPEN_RE = re.compile(r"<(" + "|".join(ACTION_TAGS.values()) + r")>")
_SNIPPET = 40

ToolLike = ToolSpec | Mapping[str, Any]


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


@dataclass(frozen=True)
class ParsedTurn:
    """One assistant turn read back from model output.

    `action` is None when no action block was found; `think` is None when there is no think block; `content` is the
    text of a clarify / answer / escalate / refuse block ("" otherwise); `tool_calls` holds every call that decoded
    (a call whose JSON is broken is left out, with a problem); `problems` lists every deviation from the format;
    `raw` is the text as given (before the end-of-turn marker was cut off)."""

    action: Action | None
    think: str | None
    content: str
    tool_calls: tuple[ToolCall, ...]
    problems: tuple[str, ...]
    raw: str

    @property
    def ok(self) -> bool:
        """True when an action was found and the output follows the format exactly."""
        return self.action is not None and not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for eval records)."""
        return {
            "action": None if self.action is None else self.action.value,
            "think": self.think,
            "content": self.content,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "problems": list(self.problems),
            "raw": self.raw,
        }


class OutputParser(Protocol):
    """Turns one model output into a ParsedTurn; must never raise on any str."""

    def __call__(self, text: str, tools: Sequence[ToolLike] | None = None) -> ParsedTurn: ...


# ----------------------------------------------------------------------------------------------------------- helpers


def _snip(text: str) -> str:
    text = text.strip()
    if len(text) > _SNIPPET:
        text = text[: _SNIPPET - 3] + "..."
    return repr(text)


def _strip_end(text: str) -> str:
    """Cut `text` at the first end-of-turn marker."""
    cut = len(text)
    for marker in END_MARKERS:
        i = text.find(marker)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def _decode_json(src: str) -> tuple[Any, str | None]:
    """(value, None) or (None, error message)."""
    try:
        return json.loads(src), None
    except json.JSONDecodeError as e:
        where = f"col {e.colno}" if e.lineno == 1 else f"line {e.lineno} col {e.colno}"
        return None, f"invalid JSON: {e.msg.removesuffix(' starting at')} ({where})"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as e:  # e.g. an integer literal past Python's digit limit
        return None, f"invalid JSON: {e}"


def _tool_schema(tool: ToolLike) -> tuple[str | None, Mapping[str, Any]]:
    """(name, parameters schema) of a ToolSpec, a {name, parameters} dict or an OpenAI {"function": {...}} dict."""
    if isinstance(tool, ToolSpec):
        return tool.name, tool.parameters if isinstance(tool.parameters, Mapping) else {}
    if isinstance(tool, Mapping):
        function = tool.get("function")
        inner = function if isinstance(function, Mapping) else tool
        name = inner.get("name")
        params = inner.get("parameters")
        return (name if isinstance(name, str) else None), (params if isinstance(params, Mapping) else {})
    return None, {}


def check_call(call: ToolCall, tools: Sequence[ToolLike], label: str = "tool_call") -> list[str]:
    """Problems of `call` against the offered tools: unknown tool, missing required or unknown arguments.

    Unknown arguments are those not in the schema's `properties`; they are not flagged when the schema has no
    `properties` at all or sets `additionalProperties` to something truthy."""
    schemas = dict(_tool_schema(t) for t in tools)
    schemas.pop(None, None)
    if call.name not in schemas:
        return [f"{label}: unknown tool {call.name!r}"]
    params = schemas[call.name]
    problems = []
    required = params.get("required", [])
    if isinstance(required, (list, tuple)):
        problems += [f"{label}: missing required argument {r!r}" for r in required if r not in call.arguments]
    properties = params.get("properties")
    if isinstance(properties, Mapping) and not params.get("additionalProperties", False):
        problems += [f"{label}: unknown argument {a!r}" for a in call.arguments if a not in properties]
    return problems


def _call_from_object(obj: Any, label: str, problems: list[str]) -> ToolCall | None:
    """The project's call object `{"name": str, "arguments": {...}}`; anything else is a problem."""
    if not isinstance(obj, dict):
        problems.append(f"{label}: expected a JSON object, got {json_type_name(obj)}")
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f'{label}: missing or non-string "name"')
        return None
    if "arguments" in obj:
        args = obj["arguments"]
    else:
        problems.append(f'{label}: missing "arguments" (taken as {{}})')
        args = {}
    if not isinstance(args, dict):
        problems.append(f'{label}: "arguments" must be an object, got {json_type_name(args)}')
        return None
    extra = sorted(k for k in obj if k not in ("name", "arguments"))
    if extra:
        problems.append(f"{label}: unexpected key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}")
    return ToolCall(name=name, arguments=args)


def _read_block(text: str, open_match: re.Match[str]) -> tuple[str, int, bool]:
    """(content, end position, closed) of the block opened by `open_match`. Unclosed: content runs to the end."""
    tag = open_match.group(1)
    start = open_match.end()
    close = text.find(f"</{tag}>", start)
    if close == -1:
        return text[start:], len(text), False
    return text[start:close], close + len(tag) + 3, True


def _nested_tag(content: str) -> str | None:
    m = _TAG_RE.search(content)
    return m.group(0) if m else None


# ------------------------------------------------------------------------------------------------------ parse_turn


def parse_turn(text: str, tools: Sequence[ToolLike] | None = None) -> ParsedTurn:
    """Parse one assistant turn in the project's format. Never raises on any str.

    Rules:
    - Everything from the first `<|end|>` (or `<|endoftext|>`) on is dropped: generation may run on.
    - Empty or whitespace-only output: action None, problem "empty output".
    - The think block is the first `<think>`..`</think>`. Unclosed: everything after `<think>` is think and there
      is no action. A `</think>` with no `<think>` before it: the text before it is taken as think (a problem).
      No think block at all: think None (a problem).
    - The first action block after the think block decides the action. Consecutive `<tool_call>` blocks are one
      call_tool action with several calls (non-whitespace text between them is a problem). Any further action
      block is a problem ("2 action blocks: clarify then tool_call; the first one counts").
    - An unclosed action block runs to the end of the text (a problem); a tool call in it is decoded anyway.
    - A tool call must be a JSON object with a non-empty str "name" and an object "arguments". Invalid JSON, a
      non-object, a missing name or non-object arguments drop the call (action stays call_tool) with a problem;
      missing "arguments" keeps the call with `{}` and a problem; extra keys keep the call with a problem.
    - With `tools` given, each call is checked (unknown tool, missing required argument, unknown argument); these
      are problems only, the call is kept.
    - A format tag inside a block (`<clarify><tool_call>..</tool_call></clarify>`): the outer block decides, and
      the nested tag is a problem.
    - Non-whitespace text outside the blocks (before the think block, between it and the action, after the
      action) is a problem. Plain text without any tag gives action None.
    """
    if not isinstance(text, str):
        return ParsedTurn(None, None, "", (), (f"expected a str, got {type(text).__name__}",), str(text))
    try:
        return _parse_turn(text, tools)
    except Exception as e:  # pragma: no cover - a safety net; the fuzz tests check it is never reached
        return ParsedTurn(None, None, "", (), (f"internal parser error: {type(e).__name__}: {e}",), text)


def _parse_turn(raw: str, tools: Sequence[ToolLike] | None) -> ParsedTurn:
    tools = tuple(tools) if tools is not None else None
    body = _strip_end(raw)
    if not body.strip():
        return ParsedTurn(None, None, "", (), ("empty output",), raw)
    problems: list[str] = []

    # --- the think block
    think: str | None
    open_i = body.find(THINK_OPEN)
    if open_i != -1:
        if body[:open_i].strip():
            problems.append(f"text before the think block: {_snip(body[:open_i])}")
        close_i = body.find(THINK_CLOSE, open_i + len(THINK_OPEN))
        if close_i == -1:
            think = body[open_i + len(THINK_OPEN) :]
            problems.append("think block not closed")
            if (tag := _nested_tag(think)) is not None:
                problems.append(f"think block contains tag {tag}")
            return ParsedTurn(None, think, "", (), tuple(problems), raw)
        think = body[open_i + len(THINK_OPEN) : close_i]
        rest = body[close_i + len(THINK_CLOSE) :]
    elif (close_i := body.find(THINK_CLOSE)) != -1:
        think = body[:close_i]
        problems.append("think block not opened (the text before </think> is taken as think)")
        rest = body[close_i + len(THINK_CLOSE) :]
    else:
        think = None
        problems.append("no think block")
        rest = body
    if think is not None and (tag := _nested_tag(think)) is not None:
        problems.append(f"think block contains tag {tag}")

    # --- the deciding action block
    first = _ACTION_OPEN_RE.search(rest)
    if first is None:
        problems.append("no action block")
        if rest.strip():
            problems.append(f"text outside any block: {_snip(rest)}")
        return ParsedTurn(None, think, "", (), tuple(problems), raw)
    if rest[: first.start()].strip():
        where = "between the think block and the action block" if think is not None else "before the action block"
        problems.append(f"text {where}: {_snip(rest[: first.start()])}")

    tag = first.group(1)
    action = TAG_ACTIONS[tag]
    content = ""
    calls: list[ToolCall] = []
    if action is Action.CALL_TOOL:
        match: re.Match[str] | None = first
        index = 0
        end = first.start()
        while match is not None and match.group(1) == "tool_call":
            if index and rest[end : match.start()].strip():
                problems.append(f"text between tool_call blocks: {_snip(rest[end : match.start()])}")
            index += 1
            label = f"tool_call {index}"
            block, end, closed = _read_block(rest, match)
            if not closed:
                problems.append(f"{label}: block not closed")
            if (nested := _nested_tag(block)) is not None:
                problems.append(f"{label}: block contains tag {nested}; the outer block counts")
            call = _parse_call_block(block, label, problems)
            if call is not None:
                calls.append(call)
                if tools is not None:
                    problems += check_call(call, tools, label)
            match = _ACTION_OPEN_RE.search(rest, end)
    else:
        content, end, closed = _read_block(rest, first)
        if not closed:
            problems.append(f"<{tag}> block not closed")
        if (nested := _nested_tag(content)) is not None:
            problems.append(f"{tag} block contains tag {nested}; the outer block counts")

    # --- whatever follows the action
    groups = [tag]
    outside = []
    pos = end
    while (extra := _ACTION_OPEN_RE.search(rest, pos)) is not None:
        outside.append(rest[pos : extra.start()])
        if not extra.group(1) == "tool_call" == groups[-1]:  # consecutive tool_call blocks are one action
            groups.append(extra.group(1))
        _, pos, _ = _read_block(rest, extra)
    outside.append(rest[pos:])
    if len(groups) > 1:
        problems.append(f"{len(groups)} action blocks: {' then '.join(groups)}; the first one counts")
    tail = "".join(outside)
    if tail.strip():
        problems.append(f"text after the action block: {_snip(tail)}")

    return ParsedTurn(action, think, content, tuple(calls), tuple(problems), raw)


def _parse_call_block(block: str, label: str, problems: list[str]) -> ToolCall | None:
    src = block.strip()
    if not src:
        problems.append(f"{label}: empty")
        return None
    obj, error = _decode_json(src)
    if error is not None:
        problems.append(f"{label}: {error}")
        return None
    return _call_from_object(obj, label, problems)


def think_text(text: str) -> str | None:
    """The think block of a turn in the project's format (None when there is none)."""
    return parse_turn(text).think


# ------------------------------------------------------------------------------------------------ foreign formats

_HERMES_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_JSON_START_RE = re.compile(r"[\[{]")
_MAX_JSON_STARTS = 200


def _foreign_calls(obj: Any, label: str, problems: list[str]) -> list[ToolCall] | None:
    """Calls in a decoded JSON value, or None when it does not look like tool calls at all.

    Accepts {"name", "arguments"|"parameters"}, OpenAI {"function": {"name", "arguments"}} (arguments may be a JSON
    string), {"tool_calls": [...]}, and a non-empty list of those."""
    if isinstance(obj, list):
        if not obj:
            return None
        out: list[ToolCall] = []
        for item in obj:
            calls = _foreign_calls(item, label, problems)
            if calls is None:
                return None
            out += calls
        return out
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("tool_calls"), list):
        return _foreign_calls(obj["tool_calls"], label, problems) if obj["tool_calls"] else None
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name")
    key = "arguments" if "arguments" in obj else "parameters" if "parameters" in obj else None
    if not isinstance(name, str) or not name or key is None:
        return None
    args = obj[key]
    if isinstance(args, str):
        decoded, error = _decode_json(args) if args.strip() else ({}, None)
        if error is not None:
            problems.append(f"{label}: {key} string: {error}")
            return []
        args = decoded
    if not isinstance(args, dict):
        problems.append(f'{label}: "{key}" must be an object, got {json_type_name(args)}')
        return []
    return [ToolCall(name=name, arguments=args)]


def parse_json_calls(text: str, tools: Sequence[ToolLike] | None = None) -> ParsedTurn:
    """Parse output of a model that is not trained on the project's format. Never raises on any str.

    An optional `<think>...</think>` block is read as think. Then, in order:
    - hermes blocks `<tool_call>{...}</tool_call>` (Qwen, Hermes): each block's JSON is one or more calls;
    - otherwise any decodable JSON in the text (whole, fenced in ``` or embedded) that is a call object
      `{"name", "arguments"|"parameters"}`, an OpenAI `{"function": {...}}` / `{"tool_calls": [...]}`, or a list
      of those.
    Either gives action call_tool. Anything else is plain text and maps to answer_directly with the text as
    content, without a problem: whether plain text asks a question (clarify), hands off (escalate) or declines
    (refuse) cannot be told reliably from the surface, so this parser never guesses those; score such outputs with
    a benchmark's own rules or a judge.
    """
    if not isinstance(text, str):
        return ParsedTurn(None, None, "", (), (f"expected a str, got {type(text).__name__}",), str(text))
    try:
        return _parse_json_calls(text, tools)
    except Exception as e:  # pragma: no cover - a safety net
        return ParsedTurn(None, None, "", (), (f"internal parser error: {type(e).__name__}: {e}",), text)


def _parse_json_calls(raw: str, tools: Sequence[ToolLike] | None) -> ParsedTurn:
    tools = tuple(tools) if tools is not None else None
    body = _strip_end(raw)
    problems: list[str] = []
    think: str | None = None
    open_i = body.find(THINK_OPEN)
    close_i = body.find(THINK_CLOSE, open_i + len(THINK_OPEN) if open_i != -1 else 0)
    if open_i != -1 and close_i == -1:
        think = body[open_i + len(THINK_OPEN) :]
        return ParsedTurn(None, think, "", (), ("think block not closed",), raw)
    if close_i != -1:
        start = open_i + len(THINK_OPEN) if open_i != -1 else 0
        think = body[start:close_i]
        body = body[: max(open_i, 0)] + body[close_i + len(THINK_CLOSE) :]
    if not body.strip():
        return ParsedTurn(None, think, "", (), ("empty output",), raw)

    calls: list[ToolCall] = []
    found = False
    hermes = _HERMES_RE.findall(body)
    if hermes:
        found = True
        for i, block in enumerate(hermes, 1):
            label = f"tool_call {i}"
            obj, error = _decode_json(block.strip())
            if error is not None:
                problems.append(f"{label}: {error}")
                continue
            got = _foreign_calls(obj, label, problems)
            if got is None:
                problems.append(f"{label}: not a tool call object")
                continue
            calls += got
    else:
        decoder = json.JSONDecoder()
        pos, starts = 0, 0
        while starts < _MAX_JSON_STARTS:
            m = _JSON_START_RE.search(body, pos)
            if m is None:
                break
            starts += 1
            try:
                obj, end = decoder.raw_decode(body, m.start())
            except (ValueError, RecursionError):
                pos = m.start() + 1
                continue
            got = _foreign_calls(obj, f"tool_call {len(calls) + 1}", problems)
            pos = end  # a JSON value that is not a call is skipped whole: nothing nested in it is read as a call
            if got is not None:
                found = True
                calls += got
    if found:
        if tools is not None:
            for i, call in enumerate(calls, 1):
                problems += check_call(call, tools, f"tool_call {i}")
        return ParsedTurn(Action.CALL_TOOL, think, "", tuple(calls), tuple(problems), raw)
    return ParsedTurn(Action.ANSWER_DIRECTLY, think, body.strip(), (), tuple(problems), raw)


PARSERS: dict[str, OutputParser] = {
    "toolprior": parse_turn,
    "json_calls": parse_json_calls,
}


def get_parser(name: str) -> OutputParser:
    """The parser registered as `name` in PARSERS; ValueError listing the names otherwise."""
    try:
        return PARSERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown output parser {name!r}; expected one of {', '.join(sorted(PARSERS))}") from None
