"""Reading and writing case JSONL files, with validation.

Reading never returns a partial result: every problem of every file is collected (file, line, field, message)
and raised together as one `InputError`. Field names are paths into the case: `messages[1].role`,
`tools[0].parameters.properties.shipment_id`, `gold.tool_calls[0].name`, `followups[0].content`.

>>> cases = read_cases("data/eval.jsonl")            # one file
>>> cases = read_case_files(["a.jsonl", "b.jsonl"])  # several, ids unique across them
>>> by_split = read_splits("data/")                  # train/val/mine/eval/eval_novel.jsonl
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from toolprior.actions import (
    ACTION_NAMES,
    CATEGORIES,
    EXTERNAL_CATEGORIES,
    ROLES,
    SPLITS,
    TOOL_MODES,
    Action,
)
from toolprior.atomic import atomic_open
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.errors import InputError, Problem

MAX_PROBLEMS_PER_FILE = 200

REQUIRED_FIELDS: tuple[str, ...] = ("id", "category", "split", "expected_action", "messages", "tools")
OPTIONAL_FIELDS: tuple[str, ...] = ("gold", "followups", "acceptable", "twin", "tool_mode", "meta")
KNOWN_FIELDS: tuple[str, ...] = REQUIRED_FIELDS + OPTIONAL_FIELDS

ALL_CATEGORIES: tuple[str, ...] = CATEGORIES + EXTERNAL_CATEGORIES
FOLLOWUP_ROLES: tuple[str, ...] = ("user", "tool")
MESSAGE_KEYS: tuple[str, ...] = ("role", "content", "name")
TOOL_KEYS: tuple[str, ...] = ("name", "description", "parameters")
GOLD_KEYS: tuple[str, ...] = ("think", "action", "content", "tool_calls")
TOOL_CALL_KEYS: tuple[str, ...] = ("name", "arguments")
JSON_TYPES: tuple[str, ...] = ("string", "number", "integer", "boolean", "array", "object", "null")

_BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------------------------------------------- writing


def case_to_json(case: Case) -> str:
    """One JSONL line (no newline), UTF-8 text kept as is, keys in schema order."""
    return json.dumps(case.to_dict(), ensure_ascii=False)


def write_cases(path: str | os.PathLike[str], cases: Iterable[Case]) -> int:
    """Write cases as JSONL atomically; returns how many were written."""
    n = 0
    with atomic_open(path, "w") as f:
        for case in cases:
            f.write(case_to_json(case) + "\n")
            n += 1
    return n


# ---------------------------------------------------------------------------------------------------- reading


def read_cases(path: str | os.PathLike[str]) -> list[Case]:
    """Read and validate one case JSONL file; raise `InputError` with every problem of the file if any."""
    scan = _scan_file(path)
    if scan.problems:
        raise InputError(_capped(scan.file, scan.problems))
    return [case for _, case in scan.cases]


def read_case_files(paths: Sequence[str | os.PathLike[str]]) -> list[Case]:
    """Read and validate several case files (cases in file order); ids must be unique across all of them.

    Raises `InputError` with every problem of every file, including ids repeated across files."""
    scans = _scan_files(paths)
    problems = [p for scan in scans for p in _capped(scan.file, scan.problems)]
    if problems:
        raise InputError(problems)
    return [case for scan in scans for _, case in scan.cases]


def read_splits(directory: str | os.PathLike[str]) -> dict[str, list[Case]]:
    """Read `<split>.jsonl` for each of the five splits in `directory`, keyed by split in SPLITS order.

    Every split file must exist, ids must be unique across splits, and each case's `split` field must match its
    file. Raises `InputError` with every problem found."""
    folder = Path(directory)
    dir_name = os.fspath(directory)
    if not folder.exists():
        raise InputError(Problem(dir_name, None, None, "folder not found"))
    if not folder.is_dir():
        raise InputError(Problem(dir_name, None, None, "not a folder (expected one holding <split>.jsonl files)"))
    paths = [folder / f"{split}.jsonl" for split in SPLITS]
    missing = [
        Problem(str(p), None, None, f"missing split file (a split folder holds {', '.join(SPLITS)} .jsonl)")
        for p in paths
        if not p.exists()
    ]
    scans = _scan_files([p for p in paths if p.exists()])
    for scan in scans:
        split = Path(scan.file).name.removesuffix(".jsonl")
        for line, case in scan.cases:
            if case.split != split:
                scan.problems.append(
                    Problem(scan.file, line, "split", f"{case.split!r} does not match its file (expected {split!r})")
                )
    problems = missing + [p for scan in scans for p in _capped(scan.file, scan.problems)]
    if problems:
        raise InputError(problems)
    found = {Path(scan.file).name.removesuffix(".jsonl"): [c for _, c in scan.cases] for scan in scans}
    return {split: found[split] for split in SPLITS}


class _Scan:
    """What reading one file found: the valid cases with their line numbers, every problem, and every id seen."""

    def __init__(self, file: str):
        self.file = file
        self.cases: list[tuple[int, Case]] = []
        self.problems: list[Problem] = []
        self.ids: list[tuple[str, int]] = []  # (id, line) for every line with a usable id, valid case or not


def _capped(file: str, problems: list[Problem]) -> list[Problem]:
    """One file's problems in line order (whole-file ones first), at most MAX_PROBLEMS_PER_FILE and a count."""
    problems = sorted(problems, key=lambda p: (p.line is not None, p.line or 0))
    if len(problems) <= MAX_PROBLEMS_PER_FILE:
        return problems
    more = len(problems) - MAX_PROBLEMS_PER_FILE
    return [*problems[:MAX_PROBLEMS_PER_FILE], Problem(file, None, None, f"... {more} more problems")]


def _scan_files(paths: Sequence[str | os.PathLike[str]]) -> list[_Scan]:
    """Scan each file once; flag a file given twice and ids repeated across files (at the later location)."""
    scans: list[_Scan] = []
    seen_files: dict[str, str] = {}
    first_at: dict[str, tuple[str, int]] = {}
    for path in paths:
        name = os.fspath(path)
        key = os.path.realpath(name)
        if key in seen_files:
            scan = _Scan(name)
            scan.problems.append(Problem(name, None, None, f"the same file is given twice (also as {seen_files[key]})"))
            scans.append(scan)
            continue
        seen_files[key] = name
        scan = _scan_file(path)
        for case_id, line in scan.ids:
            if case_id in first_at:
                other_file, other_line = first_at[case_id]
                if other_file != scan.file:
                    scan.problems.append(
                        Problem(scan.file, line, "id", f"duplicate id {case_id!r} (first at {other_file}:{other_line})")
                    )
            else:
                first_at[case_id] = (scan.file, line)
        scans.append(scan)
    return scans


def _scan_file(path: str | os.PathLike[str]) -> _Scan:
    """Read one file line by line, validating each; never raises for bad content."""
    name = os.fspath(path)
    scan = _Scan(name)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        scan.problems.append(Problem(name, None, None, "file not found"))
        return scan
    except IsADirectoryError:
        scan.problems.append(Problem(name, None, None, "is a directory, not a case file"))
        return scan
    except OSError as err:
        scan.problems.append(Problem(name, None, None, f"cannot read: {err.strerror or err}"))
        return scan

    offset = 0
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
        offset = len(_BOM)
    first_line: dict[str, int] = {}
    nonblank = 0
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        line_offset = offset
        offset += len(raw) + 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            nonblank += 1
            scan.problems.append(
                Problem(
                    name,
                    lineno,
                    None,
                    f"not valid UTF-8 at byte offset {err.start} of the line (file offset {line_offset + err.start})",
                )
            )
            continue
        if not text.strip():
            continue
        nonblank += 1
        parsed, obj, problems = _parse_json(text, name, lineno)
        scan.problems.extend(problems)
        if not parsed:
            continue
        case_id = obj.get("id") if isinstance(obj, dict) else None
        if isinstance(case_id, str) and case_id.strip():
            if case_id in first_line:
                scan.problems.append(
                    Problem(name, lineno, "id", f"duplicate id {case_id!r} (first at line {first_line[case_id]})")
                )
            else:
                first_line[case_id] = lineno
                scan.ids.append((case_id, lineno))
        try:
            case, problems = case_from_dict(obj, name, lineno)
        except RecursionError:
            case, problems = None, [Problem(name, lineno, None, "JSON nested too deeply")]
        scan.problems.extend(problems)
        if case is not None:
            scan.cases.append((lineno, case))
    if nonblank == 0:
        scan.problems.append(Problem(name, None, None, "no cases (the file is empty or holds only blank lines)"))
    return scan


def _parse_json(text: str, file: str, line: int) -> tuple[bool, Any, list[Problem]]:
    """(parsed, value, problems): strict JSON (no NaN / Infinity); repeated keys in an object are a problem."""
    duplicates: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        obj = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=no_constant)
    except json.JSONDecodeError as err:
        return False, None, [Problem(file, line, None, f"invalid JSON: {err.msg} at column {err.colno}")]
    except RecursionError:
        return False, None, [Problem(file, line, None, "invalid JSON: nested too deeply")]
    except ValueError as err:  # NaN / Infinity, integers too long to convert
        return False, None, [Problem(file, line, None, f"invalid JSON: {err}")]
    problems = [
        Problem(file, line, None, f"duplicate JSON key {key!r} in one object") for key in dict.fromkeys(duplicates)
    ]
    return True, obj, problems


# ---------------------------------------------------------------------------------------------------- validation


def _jtype(value: Any) -> str:
    """The JSON name of a parsed value's type (bool is not an integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _got(value: Any) -> str:
    kind = _jtype(value)
    return "got null (omit an optional field instead)" if kind == "null" else f"got {kind}"


def _choices(value: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"expected one of: {', '.join(valid)}{hint}"


def _matches_type(value: Any, json_type: str) -> bool:
    """Does a parsed JSON value fit a JSON-schema type name? (3.0 is an integer; true is not a number.)"""
    kind = _jtype(value)
    if json_type == "integer":
        return kind == "integer" or (kind == "number" and value.is_integer())
    if json_type == "number":
        return kind in ("integer", "number")
    return kind == json_type


# tool name -> (parameter schemas by name, required names); read leniently from the raw tools so that gold tool
# calls are checked even while a tool's schema has problems of its own.
_Offered = dict[str, tuple[dict[str, dict[str, Any]], list[str]]]


def _offered_tools(raw_tools: Any) -> _Offered | None:
    """The tools a case offers, best effort; None when `tools` is not even a list (nothing sensible to check)."""
    if not isinstance(raw_tools, list):
        return None
    offered: _Offered = {}
    for item in raw_tools:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item["name"] in offered:
            continue
        params = item.get("parameters")
        props = params.get("properties", {}) if isinstance(params, dict) else {}
        props = {k: v if isinstance(v, dict) else {} for k, v in props.items()} if isinstance(props, dict) else {}
        required = params.get("required", []) if isinstance(params, dict) else []
        required = [r for r in required if isinstance(r, str) and r in props] if isinstance(required, list) else []
        offered[item["name"]] = (props, list(dict.fromkeys(required)))
    return offered


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
            self.bad(field, f"expected {'a non-empty ' if nonempty else 'a '}string, {_got(value)}")
            return None
        if nonempty and not value.strip():
            self.bad(field, "must be a non-empty string")
            return None
        return value

    def choice(self, value: Any, field: str, valid: Sequence[str], what: str) -> str | None:
        if not isinstance(value, str):
            self.bad(field, f"expected a string, {_got(value)}")
            return None
        if value not in valid:
            self.bad(field, f"unknown {what} {value!r}; {_choices(value, valid)}")
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
            self.bad(field, f"expected {'a non-empty ' if nonempty else 'an '}array of messages, {_got(value)}")
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
            self.bad(field, f"expected a message object, {_got(value)}")
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
            self.bad("tools", f"expected an array of tools, {_got(value)}")
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
            self.bad(field, f"expected a tool object, {_got(value)}")
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
            self.bad(field, f"expected a JSON-schema object, {_got(value)}")
            return
        if value.get("type") != "object":
            got = repr(value["type"]) if "type" in value else "none"
            self.bad(f"{field}.type", f'must be "object" (got {got})')
        props = value.get("properties", {})
        if not isinstance(props, dict):
            self.bad(f"{field}.properties", f"expected an object of parameter schemas, {_got(props)}")
            props = {}
        for prop, schema in props.items():
            sub = f"{field}.properties.{prop}"
            if not isinstance(schema, dict):
                self.bad(sub, f"expected a parameter schema object, {_got(schema)}")
            elif "type" in schema and not isinstance(schema["type"], (str, list)):
                self.bad(f"{sub}.type", f"expected a type name or array of them, {_got(schema['type'])}")
        if "required" in value:
            required = value["required"]
            if not isinstance(required, list):
                self.bad(f"{field}.required", f"expected an array of parameter names, {_got(required)}")
                return
            seen: set[str] = set()
            for i, item in enumerate(required):
                sub = f"{field}.required[{i}]"
                if not isinstance(item, str):
                    self.bad(sub, f"expected a parameter name string, {_got(item)}")
                elif item in seen:
                    self.bad(sub, f"{item!r} repeated")
                elif isinstance(props, dict) and item not in props:
                    self.bad(sub, f"{item!r} is not a defined property")
                else:
                    seen.add(item)

    def gold(self, value: Any, expected: Action | None, offered: _Offered | None) -> GoldTurn | None:
        if not isinstance(value, dict):
            self.bad("gold", f"expected an object, {_got(value)}")
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
            self.bad("gold.tool_calls", f"expected an array of tool calls, {_got(raw_calls)}")
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

    def tool_call(self, value: Any, field: str, offered: _Offered | None) -> ToolCall | None:
        if not isinstance(value, dict):
            self.bad(field, f"expected a tool call object, {_got(value)}")
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
            self.bad(f"{field}.arguments", f"expected an object, {_got(arguments)}")
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
                if isinstance(declared, str) and declared in JSON_TYPES and not _matches_type(arg_value, declared):
                    self.bad(f"{field}.arguments.{arg}", f"expected {declared}, got {_jtype(arg_value)}")
                enum = props[arg].get("enum")
                if isinstance(enum, list) and arg_value not in enum:
                    self.bad(f"{field}.arguments.{arg}", f"{arg_value!r} is not one of the allowed values {enum}")
        if len(self.problems) > before or name is None or arguments is None:
            return None
        return ToolCall(name=name, arguments=arguments)

    def acceptable(self, value: Any, expected: Action | None) -> tuple[Action, ...] | None:
        if not isinstance(value, list):
            self.bad("acceptable", f"expected a non-empty array of actions, {_got(value)}")
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
        check.bad(None, f"expected a JSON object (one case per line), got {_jtype(obj)}")
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

    gold = check.gold(obj["gold"], expected, _offered_tools(obj.get("tools"))) if "gold" in obj else None
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
        check.bad("meta", f"expected an object, {_got(meta)}")

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


__all__ = [
    "MAX_PROBLEMS_PER_FILE",
    "case_from_dict",
    "case_to_json",
    "read_case_files",
    "read_cases",
    "read_splits",
    "write_cases",
]
