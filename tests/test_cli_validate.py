"""`toolprior data validate FILE...` as a user runs it: one `error: file:line: field: message` per problem, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


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
                    "properties": {"shipment_id": {"type": "string"}},
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
        "meta": {"difficulty": "medium", "template": "t07"},
    }
    for key, value in changes.items():
        if value is ...:
            case.pop(key, None)
        else:
            case[key] = value
    return case


def validate(*paths: Path | str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "toolprior.cli", "data", "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env,
        timeout=120,
    )


def write_file(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def gold_with_call(case_id: str, call: dict[str, Any]) -> dict[str, Any]:
    d = make_case_dict(case_id, expected_action="call_tool")
    d["gold"] = {"think": "t", "action": "call_tool", "content": "", "tool_calls": [call]}
    return d


def message(index: int, msg: Any) -> dict[str, Any]:
    d = make_case_dict("m")
    d["messages"][index] = msg
    return d


# Each bad case is written as line 2 of a file (line 1 is a good case); `field` must follow `file:2: `.
BAD_LINES: dict[str, tuple[Any, str]] = {
    "broken_json": ('{"id": "x",', "invalid JSON"),
    "not_object": ("[1, 2, 3]", "expected a JSON object"),
    "missing_id": (make_case_dict(id=...), "id: missing required field"),
    "missing_tools": (make_case_dict("t", tools=...), "tools: missing required field"),
    "unknown_field": (make_case_dict("u", colour="blue"), "colour: unknown field"),
    "unknown_category": (make_case_dict("c", category="gossip"), "category: unknown category 'gossip'"),
    "unknown_split": (make_case_dict("s", split="test"), "split: unknown split 'test'"),
    "unknown_action": (make_case_dict("a", expected_action="ask"), "expected_action: unknown action 'ask'"),
    "unknown_tool_mode": (make_case_dict("a", tool_mode="error_418"), "tool_mode: unknown tool_mode"),
    "id_type": (make_case_dict(id=5), "id: expected a non-empty string, got integer"),
    "empty_messages": (make_case_dict("e", messages=[]), "messages: must hold at least one message"),
    "content_type": (message(1, {"role": "user", "content": True}), "messages[1].content: expected a string"),
    "bad_role": (message(0, {"role": "robot", "content": "x"}), "messages[0].role: unknown role 'robot'"),
    "name_on_user": (
        message(1, {"role": "user", "content": "x", "name": "n"}),
        "messages[1].name: only tool messages",
    ),
    "meta_type": (make_case_dict("mt", meta=[1]), "meta: expected an object"),
    "params_not_object_schema": (
        make_case_dict("p", tools=[{"name": "t", "description": "", "parameters": {"type": "string"}}]),
        'tools[0].parameters.type: must be "object"',
    ),
    "required_not_property": (
        make_case_dict(
            "r", tools=[{"name": "t", "description": "", "parameters": {"type": "object", "required": ["x"]}}]
        ),
        "tools[0].parameters.required[0]: 'x' is not a defined property",
    ),
    "duplicate_tool": (
        make_case_dict("d", tools=[make_case_dict()["tools"][0], make_case_dict()["tools"][0]]),
        "tools[1].name: duplicate tool name",
    ),
    "gold_disagrees": (
        make_case_dict("g", gold={"think": "", "action": "refuse", "content": "no"}),
        "gold.action: 'refuse' disagrees with expected_action 'clarify'",
    ),
    "gold_unknown_tool": (
        gold_with_call("gu", {"name": "nope", "arguments": {}}),
        "gold.tool_calls[0].name: 'nope' is not a tool this case offers",
    ),
    "gold_missing_argument": (
        gold_with_call("gm", {"name": "verify_shipment_receipt", "arguments": {}}),
        "gold.tool_calls[0].arguments: missing required parameter 'shipment_id'",
    ),
    "gold_extra_argument": (
        gold_with_call("ge", {"name": "verify_shipment_receipt", "arguments": {"shipment_id": "S", "x": 1}}),
        "gold.tool_calls[0].arguments.x: not a parameter",
    ),
    "call_tool_without_call": (
        make_case_dict("cn", expected_action="call_tool", gold={"think": "", "action": "call_tool", "tool_calls": []}),
        "gold.tool_calls: a call_tool gold needs at least one tool call",
    ),
    "acceptable_missing_expected": (
        make_case_dict("am", acceptable=["refuse"]),
        "acceptable: must contain expected_action 'clarify'",
    ),
    "acceptable_repeat": (make_case_dict("ar", acceptable=["clarify", "clarify"]), "acceptable[1]: 'clarify' repeated"),
    "twin_self": (make_case_dict("ts", twin="ts"), "twin: a case cannot be its own twin"),
    "followup_role": (
        make_case_dict("fr", followups=[{"role": "assistant", "content": "x"}]),
        "followups[0].role: unknown role 'assistant'",
    ),
    "duplicate_id": (make_case_dict("good_1"), "id: duplicate id 'good_1' (first at line 1)"),
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_bad_line(tmp_path: Path, name: str) -> None:
    obj, expected = BAD_LINES[name]
    path = write_file(tmp_path / f"{name}.jsonl", [make_case_dict("good_1"), obj])
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert f"error: {path}:2: {expected}" in result.stderr, result.stderr
    assert all(line.startswith(f"error: {path}:2: ") for line in lines), result.stderr
    assert result.stdout == ""


def test_good_file(tmp_path: Path) -> None:
    path = write_file(tmp_path / "good.jsonl", [make_case_dict("a"), make_case_dict("b", split="train")])
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("ok")
    assert "2 cases in 1 file" in result.stdout


def test_good_unicode_bom_crlf_file(tmp_path: Path) -> None:
    d = make_case_dict("案例_1")
    d["messages"][1]["content"] = "📦 货物 עברית \u2028 \x07"
    path = tmp_path / "uni.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(d, ensure_ascii=False) + "\r\n\r\n").encode("utf-8"))
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 1 cases")


def test_relative_path_is_reported_as_given(tmp_path: Path) -> None:
    write_file(tmp_path / "rel.jsonl", [make_case_dict("x", split="nope")])
    result = validate("rel.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: rel.jsonl:1: split: unknown split 'nope'")


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "file not found"),
        ("directory", "is a directory"),
        ("empty", "no cases"),
        ("blank", "no cases"),
    ],
)
def test_bad_files(tmp_path: Path, setup: str, expected: str) -> None:
    path = tmp_path / f"{setup}.jsonl"
    if setup == "directory":
        path.mkdir()
    elif setup == "empty":
        path.write_bytes(b"")
    elif setup == "blank":
        path.write_bytes(b"\n  \r\n\n")
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path}: {expected}")
    assert len(result.stderr.splitlines()) == 1


def test_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(make_case_dict("a")).encode() + b"\n" + b'{"id": "caf\xe9"}\n')
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: {path}:2: not valid UTF-8 at byte offset 11" in result.stderr


def test_several_files_report_together_with_cross_file_duplicates(tmp_path: Path) -> None:
    a = write_file(tmp_path / "a.jsonl", [make_case_dict("x"), make_case_dict("y", split="nope")])
    b = write_file(tmp_path / "b.jsonl", ["{oops", make_case_dict("x")])
    c = tmp_path / "c.jsonl"
    result = validate(a, b, c, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {a}:2: split: ")
    assert lines[1].startswith(f"error: {b}:1: invalid JSON")
    assert lines[2] == f"error: {b}:2: id: duplicate id 'x' (first at {a}:1)"
    assert lines[3] == f"error: {c}: file not found"
    assert len(lines) == 4


def test_several_good_files(tmp_path: Path) -> None:
    a = write_file(tmp_path / "a.jsonl", [make_case_dict("x")])
    b = write_file(tmp_path / "b.jsonl", [make_case_dict("y"), make_case_dict("z")])
    result = validate(a, b, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok: 3 cases in 2 file(s)"


def test_huge_bad_file_is_capped(tmp_path: Path) -> None:
    path = write_file(tmp_path / "huge.jsonl", ["{bad"] * 1000)
    result = validate(path, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 201
    assert lines[-1] == f"error: {path}: ... 800 more problems"
