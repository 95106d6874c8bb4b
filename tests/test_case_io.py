"""Case JSONL reading with validation: every problem named by file:line and field, nothing loaded partially."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from toolprior.actions import SPLITS, Action
from toolprior.case_io import (
    MAX_PROBLEMS_PER_FILE,
    read_case_files,
    read_cases,
    read_splits,
    write_cases,
)
from toolprior.case_validation import case_from_dict
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.errors import InputError


def make_case_dict(case_id: str = "clarification_loop_0001", **changes: Any) -> dict[str, Any]:
    """A valid clarify case as raw JSON; keyword arguments replace (or, with value ..., delete) top-level fields."""
    case: dict[str, Any] = {
        "id": case_id,
        "category": "clarification_loop",
        "split": "eval",
        "expected_action": "clarify",
        "messages": [
            {"role": "system", "content": "Open shipments: SHP-1029 (Acme), SHP-1030 (Acme)."},
            {"role": "user", "content": "Please verify the Acme shipment receipt."},
        ],
        "tools": [
            {
                "name": "verify_shipment_receipt",
                "description": "Mark a shipment as received.",
                "parameters": {
                    "type": "object",
                    "properties": {"shipment_id": {"type": "string"}, "note": {"type": "string"}},
                    "required": ["shipment_id"],
                },
            }
        ],
        "gold": {
            "think": "Two Acme shipments match; I must ask which.",
            "action": "clarify",
            "content": "Which shipment, SHP-1029 or SHP-1030?",
            "tool_calls": [],
        },
        "followups": [{"role": "user", "content": "SHP-1030"}],
        "meta": {"difficulty": "medium", "schema": "known", "ambiguity": "implicit", "template": "t07"},
    }
    for key, value in changes.items():
        if value is ...:
            case.pop(key, None)
        else:
            case[key] = value
    return case


def call_tool_dict(case_id: str = "multi_step_chaining_0001") -> dict[str, Any]:
    case = make_case_dict(case_id, category="multi_step_chaining", expected_action="call_tool")
    case["gold"] = {
        "think": "One shipment matches.",
        "action": "call_tool",
        "content": "",
        "tool_calls": [{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SHP-1030"}}],
    }
    return case


def write_lines(path: Path, lines: list[Any]) -> Path:
    """Each item is a dict (dumped as JSON) or a str (written as is); LF line ends."""
    text = "".join((json.dumps(x, ensure_ascii=False) if isinstance(x, dict) else x) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        read_cases(path)
    return [str(p) for p in info.value.problems]


def assert_problem(messages: list[str], prefix: str, *words: str) -> None:
    """Some problem starts with `prefix` (`file:line: field`) and contains every word."""
    hits = [m for m in messages if m.startswith(prefix) and all(w in m for w in words)]
    assert hits, f"no problem starting {prefix!r} containing {words}; got:\n" + "\n".join(messages)


def bad_case(tmp_path: Path, obj: Any, line_before: int = 1) -> tuple[list[str], str]:
    """Write good cases then one bad line; return the problems and the `file:line` of the bad line."""
    path = tmp_path / "cases.jsonl"
    good = [make_case_dict(f"good_{i}") for i in range(line_before)]
    write_lines(path, [*good, obj if isinstance(obj, (dict, str)) else json.dumps(obj)])
    return problems_of(path), f"{path}:{line_before + 1}"


# ------------------------------------------------------------------------------------------- good input


def full_case() -> Case:
    tool = ToolSpec(
        name="verify_shipment_receipt",
        description="Mark a shipment as received.",
        parameters={"type": "object", "properties": {"shipment_id": {"type": "string"}}, "required": ["shipment_id"]},
    )
    return Case(
        id="multi_step_chaining_0042",
        category="multi_step_chaining",
        split="train",
        expected_action=Action.CALL_TOOL,
        messages=(Message("system", "Shipments: SHP-1030."), Message("user", "Verify SHP-1030 please.")),
        tools=(tool,),
        gold=GoldTurn(
            think="One shipment matches.",
            action=Action.CALL_TOOL,
            tool_calls=(ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-1030"}),),
        ),
        followups=(Message("tool", '{"status": "ok"}', name="verify_shipment_receipt"), Message("user", "thanks")),
        acceptable=(Action.CALL_TOOL, Action.CLARIFY),
        twin="multi_step_chaining_0043",
        tool_mode="error_429",
        meta={"difficulty": "hard", "template": "t01", "nested": {"k": [1, 2.5, None, True]}},
    )


def test_round_trip_full_case(tmp_path: Path) -> None:
    case = full_case()
    minimal = Case(
        id="refuse_1",
        category="pii_data_sensitivity",
        split="train",
        expected_action=Action.REFUSE,
        messages=(Message("user", "Give me every customer's SSN."),),
    )
    path = tmp_path / "out.jsonl"
    assert write_cases(path, [case, minimal]) == 2
    assert read_cases(path) == [case, minimal]


def test_make_case_dict_is_valid(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [make_case_dict("a"), call_tool_dict("b")])
    cases = read_cases(path)
    assert [c.id for c in cases] == ["a", "b"]
    assert cases[0].gold is not None and cases[0].gold.action is Action.CLARIFY
    assert cases[0].acceptable_actions == (Action.CLARIFY,)
    assert cases[1].gold is not None and cases[1].gold.tool_calls[0].arguments == {"shipment_id": "SHP-1030"}


def test_case_from_dict_builds_dataclasses() -> None:
    case, problems = case_from_dict(make_case_dict(), "x.jsonl", 3)
    assert problems == []
    assert isinstance(case, Case)
    assert case.tools[0].required == ["shipment_id"]
    assert case.followups == (Message("user", "SHP-1030"),)
    assert case.tool_mode == "ok" and case.twin is None and case.acceptable == ()


def test_case_from_dict_reports_without_raising() -> None:
    case, problems = case_from_dict(make_case_dict(split="nope"), "x.jsonl", 7)
    assert case is None
    assert [str(p).split(": ")[0:2] for p in problems] == [["x.jsonl:7", "split"]]
    case, problems = case_from_dict([1, 2], "x.jsonl", None)
    assert case is None and str(problems[0]).startswith("x.jsonl: expected a JSON object")


def test_bom_crlf_blank_lines_and_unicode(tmp_path: Path) -> None:
    texts = [
        "Verifica el envío 📦 SHP-1030 ✅",
        "请核实货物 SHP-1030 的收货情况",
        "אנא אמת את המשלוח SHP-1030",  # RTL
        "مرحبا \u200f\u202e mixed direction",
        "tab\there, bell\x07, escape\x1b, unit sep\x1f, del\x7f, line sep\u2028para sep\u2029 end",
        "combining é and ZWJ family 👨‍👩‍👧 and astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    ]
    cases = []
    for i, text in enumerate(texts):
        d = make_case_dict(f"ünïcödé_{i}_案例")
        d["messages"][1]["content"] = text
        d["meta"] = {"note": text, text: i}
        cases.append(d)
    lines = [json.dumps(c, ensure_ascii=(i % 2 == 0)) for i, c in enumerate(cases)]
    body = "\r\n".join([lines[0], "", "   \t ", *lines[1:3], "", *lines[3:]]) + "\r\n\r\n"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    got = read_cases(path)
    assert [c.messages[1].content for c in got] == texts
    assert [c.id for c in got] == [c["id"] for c in cases]
    # line numbers count physical lines, blank ones included
    lines_bad = [*lines[:1], "", "   ", json.dumps(make_case_dict("z", split="bogus"))]
    path2 = tmp_path / "bom_bad.jsonl"
    path2.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines_bad).encode("utf-8"))
    assert_problem(problems_of(path2), f"{path2}:4: split", "bogus")


def test_unicode_round_trip(tmp_path: Path) -> None:
    d = make_case_dict("rt")
    d["messages"][1]["content"] = "emoji 🚚, CJK 货物, RTL עברית, ctrl \x01\x1f, seps \u2028\u2029"
    case, problems = case_from_dict(d, "x", 1)
    assert case is not None and not problems
    path = tmp_path / "rt.jsonl"
    write_cases(path, [case])
    assert read_cases(path) == [case]
    assert len(path.read_text(encoding="utf-8").splitlines()) > 1  # splitlines breaks on U+2028: we must not


# ------------------------------------------------------------------------------------------- files


def test_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "missing.jsonl"
    assert problems_of(path) == [f"{path}: file not found"]


def test_directory(tmp_path: Path) -> None:
    msgs = problems_of(tmp_path)
    assert len(msgs) == 1 and msgs[0].startswith(f"{tmp_path}: ") and "directory" in msgs[0]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \r\n\t\r\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    msgs = problems_of(path)
    assert len(msgs) == 1 and msgs[0].startswith(f"{path}: no cases")


def test_non_utf8_reports_line_and_offset_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(make_case_dict("ok1")).encode()
    bad_bytes = b'{"id": "caf\xe9"}'
    later_bad = json.dumps(make_case_dict("ok2", category="nope")).encode()
    path.write_bytes(good + b"\n" + bad_bytes + b"\n" + later_bad + b"\n")
    msgs = problems_of(path)
    assert_problem(
        msgs, f"{path}:2: not valid UTF-8", "byte offset 11 of the line", f"file offset {len(good) + 1 + 11}"
    )
    assert_problem(msgs, f"{path}:3: category", "nope")


def test_broken_json_line_column(tmp_path: Path) -> None:
    msgs, where = bad_case(tmp_path, '{"id": "x", "category": }')
    assert_problem(msgs, f"{where}: invalid JSON", "Expecting value", "column 25")


def test_truncated_json(tmp_path: Path) -> None:
    msgs, where = bad_case(tmp_path, json.dumps(make_case_dict("t"))[:-5], line_before=2)
    assert_problem(msgs, f"{where}: invalid JSON", "column")


def test_trailing_garbage_and_two_objects(tmp_path: Path) -> None:
    msgs, where = bad_case(tmp_path, json.dumps(make_case_dict("t")) + " {}")
    assert_problem(msgs, f"{where}: invalid JSON", "Extra data")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_is_not_json(tmp_path: Path, token: str) -> None:
    line = json.dumps(make_case_dict("n", meta={"x": 0})).replace('"x": 0', f'"x": {token}')
    msgs, where = bad_case(tmp_path, line)
    assert_problem(msgs, f"{where}: invalid JSON", token)


def test_raw_control_char_in_string_is_invalid_json(tmp_path: Path) -> None:
    line = json.dumps(make_case_dict("c")).replace("Please", "Ple\x01ase")
    msgs, where = bad_case(tmp_path, line)
    assert_problem(msgs, f"{where}: invalid JSON", "control character")


def test_deeply_nested_json(tmp_path: Path) -> None:
    msgs, where = bad_case(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert_problem(msgs, f"{where}: ", "nested too deeply")


def test_huge_integer(tmp_path: Path) -> None:
    line = json.dumps(make_case_dict("h", meta={"x": 0})).replace('"x": 0', '"x": ' + "9" * 5000)
    msgs, where = bad_case(tmp_path, line)
    assert_problem(msgs, f"{where}: invalid JSON")


def test_duplicate_json_key(tmp_path: Path) -> None:
    line = json.dumps(make_case_dict("d")).replace('"split": "eval"', '"split": "eval", "split": "train"')
    msgs, where = bad_case(tmp_path, line)
    assert_problem(msgs, f"{where}: duplicate JSON key 'split'")


@pytest.mark.parametrize(
    ("value", "kind"), [([1, 2], "array"), ("just text", "string"), (3, "integer"), (None, "null")]
)
def test_line_not_an_object(tmp_path: Path, value: Any, kind: str) -> None:
    msgs, where = bad_case(tmp_path, json.dumps(value))
    assert_problem(msgs, f"{where}: expected a JSON object", kind)


def test_lone_surrogate(tmp_path: Path) -> None:
    line = json.dumps(make_case_dict("s")).replace("Please", "Please \\ud800")
    msgs, where = bad_case(tmp_path, line)
    assert_problem(msgs, f"{where}: messages[1].content", "surrogate")


# ------------------------------------------------------------------------------------------- top-level fields


@pytest.mark.parametrize("field", ["id", "category", "split", "expected_action", "messages", "tools"])
def test_missing_required_field(tmp_path: Path, field: str) -> None:
    msgs, where = bad_case(tmp_path, make_case_dict("m", **{field: ...}))
    assert_problem(msgs, f"{where}: {field}: missing required field")


def test_missing_fields_all_reported(tmp_path: Path) -> None:
    msgs, where = bad_case(tmp_path, {"meta": {}})
    for field in ("id", "category", "split", "expected_action", "messages", "tools"):
        assert_problem(msgs, f"{where}: {field}: missing required field")


def test_optional_fields_may_be_absent(tmp_path: Path) -> None:
    d = make_case_dict("o", gold=..., followups=..., meta=..., tools=[])
    path = write_lines(tmp_path / "o.jsonl", [d])
    (case,) = read_cases(path)
    assert case.gold is None and case.followups == () and case.meta == {} and case.tools == ()


def test_unknown_top_level_fields(tmp_path: Path) -> None:
    d = make_case_dict("u")
    d["expected_acton"] = "clarify"
    d["colour"] = "blue"
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: expected_acton: unknown field", "did you mean 'expected_action'")
    assert_problem(msgs, f"{where}: colour: unknown field", "known fields", "tool_mode")


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("category", "clarification_loops", "clarification_loop"),
        ("split", "test", "eval_novel"),
        ("expected_action", "call", "answer_directly"),
        ("tool_mode", "error_418", "malformed"),
    ],
)
def test_unknown_values(tmp_path: Path, field: str, value: str, valid: str) -> None:
    msgs, where = bad_case(tmp_path, make_case_dict("v", **{field: value}))
    assert_problem(msgs, f"{where}: {field}: unknown", repr(value), "expected one of", valid)


def test_external_category_accepted(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "e.jsonl", [make_case_dict("e", category="bfcl_irrelevance")])
    assert read_cases(path)[0].category == "bfcl_irrelevance"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("id", "", ("non-empty",)),
        ("id", "   ", ("non-empty",)),
        ("id", 17, ("string", "integer")),
        ("id", " padded", ("whitespace",)),
        ("category", True, ("string", "boolean")),
        ("split", None, ("null",)),
        ("expected_action", ["clarify"], ("array",)),
        ("messages", [], ("at least one",)),
        ("messages", {"role": "user"}, ("array", "object")),
        ("tools", {}, ("array", "object")),
        ("meta", [], ("object", "array")),
        ("meta", "x", ("object", "string")),
        ("tool_mode", 1, ("string", "integer")),
        ("twin", "", ("non-empty",)),
        ("twin", 5, ("string",)),
        ("followups", "SHP-1030", ("array",)),
        ("gold", None, ("object", "null")),
        ("acceptable", "clarify", ("array",)),
    ],
)
def test_wrong_types(tmp_path: Path, field: str, value: Any, words: tuple[str, ...]) -> None:
    msgs, where = bad_case(tmp_path, make_case_dict("w", **{field: value}))
    assert_problem(msgs, f"{where}: {field}: ", *words)


# ------------------------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("index", "message", "field", "words"),
    [
        (1, {"role": "robot", "content": "hi"}, "messages[1].role", ("unknown role", "'robot'", "system, user")),
        (1, {"role": "user", "content": 5}, "messages[1].content", ("string", "integer")),
        (1, {"role": "user"}, "messages[1].content", ("missing",)),
        (1, {"content": "x"}, "messages[1].role", ("missing",)),
        (1, {"role": "user", "content": "x", "extra": 1}, "messages[1].extra", ("unknown field",)),
        (1, {"role": "user", "content": "x", "name": "bob"}, "messages[1].name", ("only tool messages",)),
        (1, {"role": "tool", "content": "{}", "name": ""}, "messages[1].name", ("non-empty",)),
        (0, "hello", "messages[0]", ("message object", "string")),
        (0, None, "messages[0]", ("message object", "null")),
    ],
)
def test_bad_messages(tmp_path: Path, index: int, message: Any, field: str, words: tuple[str, ...]) -> None:
    d = make_case_dict("msg")
    d["messages"][index] = message
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: {field}: ", *words)


def test_tool_message_with_name_accepted(tmp_path: Path) -> None:
    d = make_case_dict("tm")
    d["messages"].append({"role": "tool", "content": '{"ok": true}', "name": "verify_shipment_receipt"})
    (case,) = read_cases(write_lines(tmp_path / "tm.jsonl", [d]))
    assert case.messages[-1].name == "verify_shipment_receipt"


@pytest.mark.parametrize(
    ("followup", "field", "words"),
    [
        ({"role": "assistant", "content": "x"}, "followups[0].role", ("unknown role", "user, tool")),
        ({"role": "system", "content": "x"}, "followups[0].role", ("unknown role",)),
        ({"role": "user", "content": ["x"]}, "followups[0].content", ("string", "array")),
        ({"role": "user", "content": "x", "when": 2}, "followups[0].when", ("unknown field",)),
        (7, "followups[0]", ("message object",)),
    ],
)
def test_bad_followups(tmp_path: Path, followup: Any, field: str, words: tuple[str, ...]) -> None:
    msgs, where = bad_case(tmp_path, make_case_dict("f", followups=[followup]))
    assert_problem(msgs, f"{where}: {field}: ", *words)


# ------------------------------------------------------------------------------------------- tools


def tool_with(parameters: Any, name: str = "lookup") -> dict[str, Any]:
    return {"name": name, "description": "d", "parameters": parameters}


@pytest.mark.parametrize(
    ("parameters", "field", "words"),
    [
        ("object", "tools[0].parameters", ("JSON-schema object", "string")),
        ({"properties": {}}, "tools[0].parameters.type", ('"object"', "none")),
        ({"type": "array"}, "tools[0].parameters.type", ('"object"', "'array'")),
        ({"type": "object", "properties": []}, "tools[0].parameters.properties", ("object", "array")),
        (
            {"type": "object", "properties": {"shipment_id": "string"}},
            "tools[0].parameters.properties.shipment_id",
            ("schema object", "string"),
        ),
        (
            {"type": "object", "properties": {"shipment_id": {"type": 3}}},
            "tools[0].parameters.properties.shipment_id.type",
            ("type name",),
        ),
        (
            {"type": "object", "properties": {"a": {}}, "required": "a"},
            "tools[0].parameters.required",
            ("array", "string"),
        ),
        (
            {"type": "object", "properties": {"a": {}}, "required": [1]},
            "tools[0].parameters.required[0]",
            ("string", "integer"),
        ),
        (
            {"type": "object", "properties": {"a": {}}, "required": ["a", "b"]},
            "tools[0].parameters.required[1]",
            ("'b'", "not a defined property"),
        ),
        (
            {"type": "object", "properties": {"a": {}}, "required": ["a", "a"]},
            "tools[0].parameters.required[1]",
            ("repeated",),
        ),
    ],
)
def test_bad_tool_parameters(tmp_path: Path, parameters: Any, field: str, words: tuple[str, ...]) -> None:
    msgs, where = bad_case(tmp_path, make_case_dict("t", tools=[tool_with(parameters)]))
    assert_problem(msgs, f"{where}: {field}: ", *words)


@pytest.mark.parametrize(
    ("tool", "field", "words"),
    [
        ({"description": "d", "parameters": {"type": "object"}}, "tools[0].name", ("missing",)),
        ({"name": "x", "parameters": {"type": "object"}}, "tools[0].description", ("missing",)),
        ({"name": "x", "description": "d"}, "tools[0].parameters", ("missing",)),
        ({"name": "", "description": "d", "parameters": {"type": "object"}}, "tools[0].name", ("non-empty",)),
        ({"name": "x", "description": 1, "parameters": {"type": "object"}}, "tools[0].description", ("string",)),
        (
            {"name": "x", "description": "d", "parameters": {"type": "object"}, "returns": {}},
            "tools[0].returns",
            ("unknown field",),
        ),
        ("lookup", "tools[0]", ("tool object", "string")),
    ],
)
def test_bad_tool_spec(tmp_path: Path, tool: Any, field: str, words: tuple[str, ...]) -> None:
    msgs, where = bad_case(tmp_path, make_case_dict("t", tools=[tool]))
    assert_problem(msgs, f"{where}: {field}: ", *words)


def test_duplicate_tool_names(tmp_path: Path) -> None:
    tools = [tool_with({"type": "object"}, "a"), tool_with({"type": "object"}, "b"), tool_with({"type": "object"}, "a")]
    msgs, where = bad_case(tmp_path, make_case_dict("t", tools=tools))
    assert_problem(msgs, f"{where}: tools[2].name: duplicate tool name 'a'", "tools[0]")


def test_empty_tools_and_properties_accepted(tmp_path: Path) -> None:
    d1 = make_case_dict("a", tools=[])
    d2 = make_case_dict("b", tools=[tool_with({"type": "object"})])
    d3 = make_case_dict("c", tools=[tool_with({"type": "object", "properties": {}, "additionalProperties": False})])
    assert len(read_cases(write_lines(tmp_path / "t.jsonl", [d1, d2, d3]))) == 3


# ------------------------------------------------------------------------------------------- gold


def test_gold_action_disagrees(tmp_path: Path) -> None:
    d = call_tool_dict("g")
    d["expected_action"] = "clarify"
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: gold.action: 'call_tool' disagrees with expected_action 'clarify'")


def test_call_tool_gold_needs_a_call(tmp_path: Path) -> None:
    d = call_tool_dict("g")
    d["gold"]["tool_calls"] = []
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: gold.tool_calls: ", "at least one tool call")


def test_non_call_tool_gold_has_no_calls(tmp_path: Path) -> None:
    d = make_case_dict("g")
    d["gold"]["tool_calls"] = [{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SHP-1030"}}]
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: gold.tool_calls: ", "clarify gold must have no tool calls")


@pytest.mark.parametrize(
    ("call", "field", "words"),
    [
        ({"name": "ship_it", "arguments": {}}, "gold.tool_calls[0].name", ("'ship_it'", "not a tool", "verify_shipment")),
        ({"name": "verify_shipment_receipt", "arguments": {}}, "gold.tool_calls[0].arguments", ("'shipment_id'",)),
        (
            {"name": "verify_shipment_receipt", "arguments": {"shipment_id": "S", "force": True}},
            "gold.tool_calls[0].arguments.force",
            ("not a parameter", "shipment_id, note"),
        ),
        ({"name": "verify_shipment_receipt", "arguments": "shipment_id=S"}, "gold.tool_calls[0].arguments", ("object",)),
        ({"name": "verify_shipment_receipt"}, "gold.tool_calls[0].arguments", ("missing",)),
        ({"arguments": {"shipment_id": "S"}}, "gold.tool_calls[0].name", ("missing",)),
        ({"name": "verify_shipment_receipt", "arguments": {"shipment_id": 1030}}, "gold.tool_calls[0].arguments.shipment_id", ("expected string", "integer")),
        ({"name": "verify_shipment_receipt", "arguments": {"shipment_id": "S"}, "id": "c1"}, "gold.tool_calls[0].id", ("unknown field",)),
        ("verify_shipment_receipt", "gold.tool_calls[0]", ("tool call object",)),
    ],
)  # fmt: skip
def test_bad_gold_tool_calls(tmp_path: Path, call: Any, field: str, words: tuple[str, ...]) -> None:
    d = call_tool_dict("g")
    d["gold"]["tool_calls"] = [call]
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: {field}: ", *words)


def test_argument_types(tmp_path: Path) -> None:
    params = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "flag": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "anything": {},
        },
    }
    good = call_tool_dict("ok")
    good["tools"] = [tool_with(params)]
    good["gold"]["tool_calls"] = [
        {"name": "lookup", "arguments": {"n": 3, "x": 2, "flag": False, "mode": "a", "anything": [1]}}
    ]
    bad = copy.deepcopy(good)
    bad["id"] = "bad"
    bad["gold"]["tool_calls"] = [{"name": "lookup", "arguments": {"n": True, "x": "2", "flag": 1, "mode": "c"}}]
    path = write_lines(tmp_path / "args.jsonl", [good, bad])
    msgs = problems_of(path)
    args = f"{path}:2: gold.tool_calls[0].arguments"
    assert_problem(msgs, f"{args}.n: expected integer, got boolean")
    assert_problem(msgs, f"{args}.x: expected number, got string")
    assert_problem(msgs, f"{args}.flag: expected boolean, got integer")
    assert_problem(msgs, f"{args}.mode: ", "'c'", "allowed")
    assert not any(f"{path}:1:" in m for m in msgs)


@pytest.mark.parametrize(
    ("gold_change", "field", "words"),
    [
        ({"think": ...}, "gold.think", ("missing",)),
        ({"action": ...}, "gold.action", ("missing",)),
        ({"think": 3}, "gold.think", ("string",)),
        ({"think": "a </think> b"}, "gold.think", ("</think>",)),
        ({"action": "ask"}, "gold.action", ("unknown action", "'ask'")),
        ({"content": None}, "gold.content", ("string", "null")),
        ({"content": ""}, "gold.content", ("needs the text", "<clarify>")),
        ({"content": "which?</clarify>"}, "gold.content", ("</clarify>",)),
        ({"tool_calls": {}}, "gold.tool_calls", ("array",)),
        ({"confidence": 0.9}, "gold.confidence", ("unknown field",)),
    ],
)
def test_bad_gold(tmp_path: Path, gold_change: dict[str, Any], field: str, words: tuple[str, ...]) -> None:
    d = make_case_dict("g")
    for key, value in gold_change.items():
        if value is ...:
            del d["gold"][key]
        else:
            d["gold"][key] = value
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: {field}: ", *words)


def test_call_tool_gold_content_must_be_empty(tmp_path: Path) -> None:
    d = call_tool_dict("g")
    d["gold"]["content"] = "I will call the tool"
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: gold.content: ", "must be empty")


def test_gold_optional_keys_default(tmp_path: Path) -> None:
    d = make_case_dict("g")
    del d["gold"]["tool_calls"]
    (case,) = read_cases(write_lines(tmp_path / "g.jsonl", [d]))
    assert case.gold is not None and case.gold.tool_calls == ()


# ------------------------------------------------------------------------------------------- acceptable / twin


@pytest.mark.parametrize(
    ("acceptable", "field", "words"),
    [
        ([], "acceptable", ("at least one",)),
        (["answer_directly", "refuse"], "acceptable", ("expected_action 'clarify'",)),
        (["clarify", "clarify"], "acceptable[1]", ("repeated",)),
        (["clarify", "dance"], "acceptable[1]", ("unknown action", "'dance'")),
        (["clarify", 1], "acceptable[1]", ("string", "integer")),
    ],
)
def test_bad_acceptable(tmp_path: Path, acceptable: Any, field: str, words: tuple[str, ...]) -> None:
    msgs, where = bad_case(tmp_path, make_case_dict("a", acceptable=acceptable))
    assert_problem(msgs, f"{where}: {field}: ", *words)


def test_acceptable_accepted(tmp_path: Path) -> None:
    d = make_case_dict("a", acceptable=["answer_directly", "clarify", "refuse"])
    (case,) = read_cases(write_lines(tmp_path / "a.jsonl", [d]))
    assert case.acceptable_actions == (Action.ANSWER_DIRECTLY, Action.CLARIFY, Action.REFUSE)


def test_twin_is_not_self(tmp_path: Path) -> None:
    msgs, where = bad_case(tmp_path, make_case_dict("same", twin="same"))
    assert_problem(msgs, f"{where}: twin: ", "own twin")


# ------------------------------------------------------------------------------------------- whole files


def test_duplicate_ids_in_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [make_case_dict("a"), make_case_dict("b"), "", make_case_dict("a")])
    msgs = problems_of(path)
    assert msgs == [f"{path}:4: id: duplicate id 'a' (first at line 1)"]


def test_duplicate_id_of_an_invalid_case_still_caught(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [make_case_dict("a", split="x"), make_case_dict("a")])
    msgs = problems_of(path)
    assert_problem(msgs, f"{path}:1: split")
    assert_problem(msgs, f"{path}:2: id: duplicate id 'a'", "line 1")


def test_all_problems_of_a_file_together(tmp_path: Path) -> None:
    d_gold = call_tool_dict("g")
    d_gold["gold"]["tool_calls"][0]["name"] = "nope"
    path = tmp_path / "many.jsonl"
    lines = [
        json.dumps(make_case_dict("ok")),
        "{broken",
        json.dumps(make_case_dict("s", split="test")),
        "",
        "[]",
        json.dumps(make_case_dict("m", messages=[{"role": "bot", "content": "x"}])),
        json.dumps(d_gold),
        json.dumps(make_case_dict("ok")),
    ]
    path.write_bytes(("\n".join(lines[:3]) + "\n").encode() + b"\xff\xfe\n" + ("\n".join(lines[3:]) + "\n").encode())
    msgs = problems_of(path)
    assert_problem(msgs, f"{path}:2: invalid JSON")
    assert_problem(msgs, f"{path}:3: split")
    assert_problem(msgs, f"{path}:4: not valid UTF-8", "byte offset 0 ")
    assert_problem(msgs, f"{path}:6: expected a JSON object", "array")
    assert_problem(msgs, f"{path}:7: messages[0].role", "'bot'")
    assert_problem(msgs, f"{path}:8: gold.tool_calls[0].name", "'nope'")
    assert_problem(msgs, f"{path}:9: id: duplicate id 'ok'", "line 1")
    assert len(msgs) == 7
    assert not any(m.startswith(f"{path}:1:") for m in msgs)


def test_problems_are_capped(tmp_path: Path) -> None:
    n = MAX_PROBLEMS_PER_FILE + 50
    path = write_lines(tmp_path / "huge.jsonl", ["{bad"] * n)
    msgs = problems_of(path)
    assert len(msgs) == MAX_PROBLEMS_PER_FILE + 1
    assert msgs[-1] == f"{path}: ... 50 more problems"
    assert msgs[0].startswith(f"{path}:1: invalid JSON")


def test_nothing_returned_partially(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", [make_case_dict("a"), make_case_dict("b", split="?")])
    with pytest.raises(InputError) as info:
        read_cases(path)
    assert len(info.value.problems) == 1
    assert str(info.value).startswith(f"{path}:2: split")


def test_accepts_str_path(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", [make_case_dict("a")])
    assert len(read_cases(str(path))) == 1


# ------------------------------------------------------------------------------------------- several files


def test_read_case_files_ok(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [make_case_dict("a1"), make_case_dict("a2")])
    b = write_lines(tmp_path / "b.jsonl", [make_case_dict("b1")])
    assert [c.id for c in read_case_files([a, b])] == ["a1", "a2", "b1"]


def test_read_case_files_cross_file_duplicates_and_all_problems(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [make_case_dict("x"), make_case_dict("y", split="nope")])
    b = write_lines(tmp_path / "b.jsonl", ["", make_case_dict("z"), make_case_dict("x")])
    c = tmp_path / "c.jsonl"
    with pytest.raises(InputError) as info:
        read_case_files([a, b, c])
    msgs = [str(p) for p in info.value.problems]
    assert_problem(msgs, f"{a}:2: split", "nope")
    assert_problem(msgs, f"{b}:3: id: duplicate id 'x'", f"{a}:1")
    assert_problem(msgs, f"{c}: file not found")
    assert len(msgs) == 3


def test_read_case_files_same_file_twice(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [make_case_dict("x")])
    with pytest.raises(InputError) as info:
        read_case_files([a, tmp_path / "." / "a.jsonl"])
    msgs = [str(p) for p in info.value.problems]
    assert len(msgs) == 1 and "given twice" in msgs[0]


# ------------------------------------------------------------------------------------------- splits


def write_split_folder(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for split in SPLITS:
        write_lines(folder / f"{split}.jsonl", [make_case_dict(f"{split}_{i}", split=split) for i in range(2)])


def test_read_splits_ok(tmp_path: Path) -> None:
    write_split_folder(tmp_path)
    got = read_splits(tmp_path)
    assert list(got) == list(SPLITS)
    assert [c.id for c in got["eval_novel"]] == ["eval_novel_0", "eval_novel_1"]


def test_read_splits_problems(tmp_path: Path) -> None:
    write_split_folder(tmp_path)
    (tmp_path / "val.jsonl").unlink()
    write_lines(tmp_path / "mine.jsonl", [make_case_dict("mine_0", split="mine"), make_case_dict("m", split="train")])
    write_lines(tmp_path / "eval.jsonl", [make_case_dict("train_1", split="eval")])
    with pytest.raises(InputError) as info:
        read_splits(tmp_path)
    msgs = [str(p) for p in info.value.problems]
    assert_problem(msgs, f"{tmp_path / 'val.jsonl'}: missing split file")
    assert_problem(msgs, f"{tmp_path / 'mine.jsonl'}:2: split: 'train' does not match", "'mine'")
    assert_problem(msgs, f"{tmp_path / 'eval.jsonl'}:1: id: duplicate id 'train_1'", f"{tmp_path / 'train.jsonl'}:2")
    assert len(msgs) == 3


def test_read_splits_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="folder not found"):
        read_splits(tmp_path / "nowhere")
    f = write_lines(tmp_path / "f.jsonl", [make_case_dict()])
    with pytest.raises(InputError, match="not a folder"):
        read_splits(f)


def test_gold_calls_checked_even_when_tool_schema_is_bad(tmp_path: Path) -> None:
    d = call_tool_dict("g")
    d["tools"][0]["parameters"]["required"] = ["shipment_id", "zzz"]
    d["gold"]["tool_calls"][0]["arguments"] = {"nte": "x"}
    msgs, where = bad_case(tmp_path, d)
    assert_problem(msgs, f"{where}: tools[0].parameters.required[1]: ", "'zzz'")
    assert_problem(msgs, f"{where}: gold.tool_calls[0].arguments: missing required parameter 'shipment_id'")
    assert_problem(msgs, f"{where}: gold.tool_calls[0].arguments.nte: not a parameter")
    assert not any("'zzz' of tool" in m for m in msgs)


def test_problems_sorted_by_line_across_checks(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [make_case_dict("x")])
    b = write_lines(tmp_path / "b.jsonl", [make_case_dict("x"), make_case_dict("y", split="nope")])
    with pytest.raises(InputError) as info:
        read_case_files([a, b])
    assert [(p.file, p.line, p.field) for p in info.value.problems] == [(str(b), 1, "id"), (str(b), 2, "split")]
