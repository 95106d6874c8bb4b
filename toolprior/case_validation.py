"""Validation of one raw case object (`case_from_dict`): every problem named by its field path
(`messages[1].role`, `tools[0].parameters.properties.shipment_id`, `gold.tool_calls[0].name`), or the `Case`."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from toolprior.actions import ACTION_NAMES, ROLES, SPLITS, TOOL_MODES, Action
from toolprior.case_schema import (
    ALL_CATEGORIES,
    FOLLOWUP_ROLES,
    GOLD_KEYS,
    JSON_TYPES,
    KNOWN_FIELDS,
    MESSAGE_KEYS,
    REQUIRED_FIELDS,
    TOOL_CALL_KEYS,
    TOOL_KEYS,
    Offered,
    choices_text,
    got_text,
    json_type_name,
    matches_type,
    offered_tools,
)
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.errors import Problem


class _Checker:
    """Collects problems of one raw case object, each with its field path."""

    def __init__(self, file: str, line: int | None):
        self.file = file
        self.line = line
        self.problems: list[Problem] = []

    def bad(self, field: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, self.line, field, message))

    # --- scalars

    def string(self, value: Any, field: str, *, nonempty: bool = False) -> str | None:
        if not isinstance(value, str):
            self.bad(field, f"expected {'a non-empty ' if nonempty else 'a '}string, {got_text(value)}")
            return None
        if nonempty and not value.strip():
            self.bad(field, "must be a non-empty string")
            return None
        return value

    def choice(self, value: Any, field: str, valid: Sequence[str], what: str) -> str | None:
        if not isinstance(value, str):
            self.bad(field, f"expected a string, {got_text(value)}")
            return None
        if value not in valid:
            self.bad(field, f"unknown {what} {value!r}; {choices_text(value, valid)}")
            return None
        return value

    def action(self, value: Any, field: str) -> Action | None:
        name = self.choice(value, field, ACTION_NAMES, "action")
        return None if name is None else Action(name)

    def keys(self, obj: dict[str, Any], field: str, known: Sequence[str], required: Sequence[str]) -> None:
        prefix = f"{field}." if field else ""
        for key in required:
            if key not in obj:
                self.bad(f"{prefix}{key}", "missing required field")
        for key in obj:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(known)}"
                self.bad(f"{prefix}{key}", f"unknown field; {hint}")

    def surrogates(self, value: Any, field: str) -> None:
        """Lone surrogates (`"\\ud800"`) parse but cannot be written back as UTF-8."""
        if isinstance(value, str):
            if any("\ud800" <= ch <= "\udfff" for ch in value):
                self.bad(field, "contains an unpaired UTF-16 surrogate escape")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.surrogates(item, f"{field}[{i}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                sub = f"{field}.{key}" if field else str(key)
                if any("\ud800" <= ch <= "\udfff" for ch in key):
                    self.bad(sub, "key contains an unpaired UTF-16 surrogate escape")
                self.surrogates(item, sub)

    # --- composites

    def messages(self, value: Any, field: str, roles: Sequence[str], *, nonempty: bool) -> tuple[Message, ...] | None:
        if not isinstance(value, list):
            self.bad(field, f"expected {'a non-empty ' if nonempty else 'an '}array of messages, {got_text(value)}")
            return None
        if nonempty and not value:
            self.bad(field, "must hold at least one message")
            return None
        out: list[Message] = []
        ok = True
        for i, item in enumerate(value):
            msg = self.message(item, f"{field}[{i}]", roles)
            ok = ok and msg is not None
            if msg is not None:
                out.append(msg)
        return tuple(out) if ok else None

    def message(self, value: Any, field: str, roles: Sequence[str]) -> Message | None:
        if not isinstance(value, dict):
            self.bad(field, f"expected a message object, {got_text(value)}")
            return None
        before = len(self.problems)
        self.keys(value, field, MESSAGE_KEYS, ("role", "content"))
        role = self.choice(value["role"], f"{field}.role", roles, "role") if "role" in value else None
        content = self.string(value["content"], f"{field}.content") if "content" in value else None
        name = None
        if "name" in value:
            name = self.string(value["name"], f"{field}.name", nonempty=True)
            if role is not None and role != "tool":
                self.bad(f"{field}.name", f"only tool messages carry a name (this one is {role!r})")
        if len(self.problems) > before or role is None or content is None:
            return None
        return Message(role=role, content=content, name=name)

    def tools(self, value: Any) -> tuple[ToolSpec, ...] | None:
        if not isinstance(value, list):
            self.bad("tools", f"expected an array of tools, {got_text(value)}")
            return None
        out: list[ToolSpec] = []
        ok = True
        first: dict[str, int] = {}
        for i, item in enumerate(value):
            spec = self.tool(item, f"tools[{i}]")
            if spec is None:
                ok = False
                continue
            if spec.name in first:
                self.bad(f"tools[{i}].name", f"duplicate tool name {spec.name!r} (also tools[{first[spec.name]}])")
                ok = False
            else:
                first[spec.name] = i
            out.append(spec)
        return tuple(out) if ok else None

    def tool(self, value: Any, field: str) -> ToolSpec | None:
        if not isinstance(value, dict):
            self.bad(field, f"expected a tool object, {got_text(value)}")
            return None
        before = len(self.problems)
        self.keys(value, field, TOOL_KEYS, TOOL_KEYS)
        name = self.string(value["name"], f"{field}.name", nonempty=True) if "name" in value else None
        description = self.string(value["description"], f"{field}.description") if "description" in value else None
        if "parameters" in value:
            self.parameters(value["parameters"], f"{field}.parameters")
        if len(self.problems) > before or name is None or description is None:
            return None
        return ToolSpec(name=name, description=description, parameters=value["parameters"])

    def parameters(self, value: Any, field: str) -> None:
        """A JSON-schema object: {"type": "object", "properties": {name: {...}}, "required": [names]}."""
        if not isinstance(value, dict):
            self.bad(field, f"expected a JSON-schema object, {got_text(value)}")
            return
        if value.get("type") != "object":
            got = repr(value["type"]) if "type" in value else "none"
            self.bad(f"{field}.type", f'must be "object" (got {got})')
        props = value.get("properties", {})
        if not isinstance(props, dict):
            self.bad(f"{field}.properties", f"expected an object of parameter schemas, {got_text(props)}")
            props = {}
        for prop, schema in props.items():
            sub = f"{field}.properties.{prop}"
            if not isinstance(schema, dict):
                self.bad(sub, f"expected a parameter schema object, {got_text(schema)}")
            elif "type" in schema and not isinstance(schema["type"], (str, list)):
                self.bad(f"{sub}.type", f"expected a type name or array of them, {got_text(schema['type'])}")
        if "required" in value:
            required = value["required"]
            if not isinstance(required, list):
                self.bad(f"{field}.required", f"expected an array of parameter names, {got_text(required)}")
                return
            seen: set[str] = set()
            for i, item in enumerate(required):
                sub = f"{field}.required[{i}]"
                if not isinstance(item, str):
                    self.bad(sub, f"expected a parameter name string, {got_text(item)}")
                elif item in seen:
                    self.bad(sub, f"{item!r} repeated")
                elif isinstance(props, dict) and item not in props:
                    self.bad(sub, f"{item!r} is not a defined property")
                else:
                    seen.add(item)

    def gold(self, value: Any, expected: Action | None, offered: Offered | None) -> GoldTurn | None:
        if not isinstance(value, dict):
            self.bad("gold", f"expected an object, {got_text(value)}")
            return None
        before = len(self.problems)
        self.keys(value, "gold", GOLD_KEYS, ("think", "action"))
        think = self.string(value["think"], "gold.think") if "think" in value else None
        if think is not None and ("<think>" in think or "</think>" in think):
            self.bad("gold.think", "must not contain <think> or </think> tags")
        action = self.action(value["action"], "gold.action") if "action" in value else None
        if action is not None and expected is not None and action != expected:
            self.bad("gold.action", f"{action.value!r} disagrees with expected_action {expected.value!r}")
        content = self.string(value["content"], "gold.content") if "content" in value else ""
        if action is not None and content is not None:
            if action is Action.CALL_TOOL:
                if content:
                    self.bad(
                        "gold.content", "a call_tool gold carries its payload in tool_calls; content must be empty"
                    )
            elif not content.strip():
                self.bad("gold.content", f"a {action.value} gold needs the text of its <{action.tag}> block")
            elif f"</{action.tag}>" in content:
                self.bad("gold.content", f"must not contain </{action.tag}>")
        raw_calls = value.get("tool_calls", [])
        calls: list[ToolCall] = []
        if not isinstance(raw_calls, list):
            self.bad("gold.tool_calls", f"expected an array of tool calls, {got_text(raw_calls)}")
        else:
            if action is Action.CALL_TOOL and not raw_calls:
                self.bad("gold.tool_calls", "a call_tool gold needs at least one tool call")
            elif action is not None and action is not Action.CALL_TOOL and raw_calls:
                self.bad("gold.tool_calls", f"a {action.value} gold must have no tool calls")
            for i, item in enumerate(raw_calls):
                call = self.tool_call(item, f"gold.tool_calls[{i}]", offered)
                if call is not None:
                    calls.append(call)
        if len(self.problems) > before or think is None or action is None or content is None:
            return None
        return GoldTurn(think=think, action=action, content=content, tool_calls=tuple(calls))

    def tool_call(self, value: Any, field: str, offered: Offered | None) -> ToolCall | None:
        if not isinstance(value, dict):
            self.bad(field, f"expected a tool call object, {got_text(value)}")
            return None
        before = len(self.problems)
        self.keys(value, field, TOOL_CALL_KEYS, TOOL_CALL_KEYS)
        name = self.string(value["name"], f"{field}.name", nonempty=True) if "name" in value else None
        schema = None
        if name is not None and offered is not None:
            if name not in offered:
                names = ", ".join(offered) or "none"
                self.bad(f"{field}.name", f"{name!r} is not a tool this case offers (tools: {names})")
            else:
                schema = offered[name]
        arguments = value.get("arguments")
        if "arguments" in value and not isinstance(arguments, dict):
            self.bad(f"{field}.arguments", f"expected an object, {got_text(arguments)}")
            arguments = None
        if arguments is not None and schema is not None:
            props, required = schema
            for req in required:
                if req not in arguments:
                    self.bad(f"{field}.arguments", f"missing required parameter {req!r} of tool {name!r}")
            for arg, arg_value in arguments.items():
                if arg not in props:
                    defined = ", ".join(props) or "none"
                    self.bad(f"{field}.arguments.{arg}", f"not a parameter of tool {name!r} (defined: {defined})")
                    continue
                declared = props[arg].get("type")
                if isinstance(declared, str) and declared in JSON_TYPES and not matches_type(arg_value, declared):
                    self.bad(f"{field}.arguments.{arg}", f"expected {declared}, got {json_type_name(arg_value)}")
                enum = props[arg].get("enum")
                if isinstance(enum, list) and arg_value not in enum:
                    self.bad(f"{field}.arguments.{arg}", f"{arg_value!r} is not one of the allowed values {enum}")
        if len(self.problems) > before or name is None or arguments is None:
            return None
        return ToolCall(name=name, arguments=arguments)

    def acceptable(self, value: Any, expected: Action | None) -> tuple[Action, ...] | None:
        if not isinstance(value, list):
            self.bad("acceptable", f"expected a non-empty array of actions, {got_text(value)}")
            return None
        if not value:
            self.bad("acceptable", "must list at least one action (omit it to accept only expected_action)")
            return None
        before = len(self.problems)
        out: list[Action] = []
        for i, item in enumerate(value):
            action = self.action(item, f"acceptable[{i}]")
            if action is None:
                continue
            if action in out:
                self.bad(f"acceptable[{i}]", f"{action.value!r} repeated")
            else:
                out.append(action)
        if len(self.problems) > before:
            return None
        if expected is not None and expected not in out:
            self.bad("acceptable", f"must contain expected_action {expected.value!r}")
            return None
        return tuple(out)


def case_from_dict(obj: Any, file: str, line: int | None) -> tuple[Case | None, list[Problem]]:
    """Validate one raw JSON object and build its Case; returns (case, []) or (None, every problem found)."""
    check = _Checker(file, line)
    if not isinstance(obj, dict):
        check.bad(None, f"expected a JSON object (one case per line), got {json_type_name(obj)}")
        return None, check.problems
    check.keys(obj, "", KNOWN_FIELDS, REQUIRED_FIELDS)
    check.surrogates(obj, "")

    case_id = None
    if "id" in obj:
        case_id = check.string(obj["id"], "id", nonempty=True)
        if case_id is not None and case_id != case_id.strip():
            check.bad("id", "must not start or end with whitespace")
    category = check.choice(obj["category"], "category", ALL_CATEGORIES, "category") if "category" in obj else None
    split = check.choice(obj["split"], "split", SPLITS, "split") if "split" in obj else None
    expected = check.action(obj["expected_action"], "expected_action") if "expected_action" in obj else None
    messages = check.messages(obj["messages"], "messages", ROLES, nonempty=True) if "messages" in obj else None
    tools = check.tools(obj["tools"]) if "tools" in obj else None

    gold = check.gold(obj["gold"], expected, offered_tools(obj.get("tools"))) if "gold" in obj else None
    followups: tuple[Message, ...] | None = ()
    if "followups" in obj:
        followups = check.messages(obj["followups"], "followups", FOLLOWUP_ROLES, nonempty=False)
    acceptable: tuple[Action, ...] | None = ()
    if "acceptable" in obj:
        acceptable = check.acceptable(obj["acceptable"], expected)
    twin = None
    if "twin" in obj:
        twin = check.string(obj["twin"], "twin", nonempty=True)
        if twin is not None and twin == case_id:
            check.bad("twin", "a case cannot be its own twin")
    tool_mode = "ok"
    if "tool_mode" in obj:
        tool_mode = check.choice(obj["tool_mode"], "tool_mode", TOOL_MODES, "tool_mode") or "ok"
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        check.bad("meta", f"expected an object, {got_text(meta)}")

    if check.problems:
        return None, check.problems
    assert case_id is not None and category is not None and split is not None and expected is not None
    assert messages is not None and tools is not None and followups is not None and acceptable is not None
    case = Case(
        id=case_id,
        category=category,
        split=split,
        expected_action=expected,
        messages=messages,
        tools=tools,
        gold=gold,
        followups=followups,
        acceptable=acceptable,
        twin=twin,
        tool_mode=tool_mode,
        meta=meta,
    )
    return case, []


__all__ = ["case_from_dict"]
