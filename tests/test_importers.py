"""Importers of external benchmarks (When2Call, BFCL) on the real files kept in ../shared/external."""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from toolprior.actions import ACTIONS, EXTERNAL_CATEGORIES, ROLES, Action
from toolprior.case_io import read_cases, write_cases
from toolprior.cases import Case
from toolprior.errors import InputError
from toolprior.importers import import_bfcl, import_file, import_when2call
from toolprior.importers.bfcl_miss_param_index import MISS_PARAM_INDEX
from toolprior.importers.common import RecordError
from toolprior.importers.schema_convert import convert_parameters, convert_schema, tool_spec

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external"
WHEN2CALL = EXTERNAL / "when2call" / "when2call_test_llm_judge.jsonl"
BFCL = EXTERNAL / "bfcl"
# Every BFCL file kept in ../shared/external/bfcl: records, and the action each maps to.
BFCL_FILES = {
    "BFCL_v4_irrelevance.json": 240,
    "BFCL_v4_live_relevance.json": 16,
    "BFCL_v4_multi_turn_miss_param.json": 200,
    "BFCL_v4_simple_python.json": 400,
    "BFCL_v4_multiple.json": 200,
    "BFCL_v4_parallel.json": 200,
    "BFCL_v4_parallel_multiple.json": 200,
    "BFCL_v4_live_simple.json": 258,
    "BFCL_v4_live_multiple.json": 1053,
    "BFCL_v4_live_parallel.json": 16,
    "BFCL_v4_live_parallel_multiple.json": 24,
}
BFCL_ACTIONS = {"irrelevance": Action.ANSWER_DIRECTLY, "multi_turn_miss_param": Action.CLARIFY}
NOT_CALLING = {a for a in ACTIONS if a is not Action.CALL_TOOL}
BFCL_TYPE_NAMES = {"dict", "float", "tuple", "any", "int", "str", "list", "bool", "double"}

needs_external = pytest.mark.skipif(
    not EXTERNAL.is_dir(),
    reason=f"real benchmark files not found at {EXTERNAL} (clone the repository with shared/ beside it)",
)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _schema_types(node: Any) -> list[Any]:
    """Every value of a "type" key at a schema position (property names are skipped)."""
    out: list[Any] = []
    if isinstance(node, dict):
        if "type" in node and not isinstance(node["type"], dict):
            out.append(node["type"])
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    out.extend(_schema_types(sub))
            elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
                out.extend(_schema_types(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(_schema_types(item))
    return out


def _check_common(cases: list[Case], category: str) -> None:
    assert category in EXTERNAL_CATEGORIES
    assert len({c.id for c in cases}) == len(cases)
    for case in cases:
        assert case.category == category
        assert case.split == "eval"
        assert case.messages and case.messages[-1].role == "user"
        assert all(m.role in ROLES for m in case.messages)
        assert case.expected_action in case.acceptable_actions
        for tool in case.tools:
            assert tool.parameters["type"] == "object"
            assert isinstance(tool.parameters["properties"], dict)
            for t in _schema_types(tool.parameters):
                names = t if isinstance(t, list) else [t]
                assert not BFCL_TYPE_NAMES & set(names), (case.id, tool.name, t)


def _round_trip(cases: list[Case], tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    assert write_cases(out, cases) == len(cases)
    back = read_cases(out)  # the project's strict validation
    assert [c.to_dict() for c in back] == [c.to_dict() for c in cases]


# ------------------------------------------------------------------------------------------------- When2Call


@needs_external
def test_when2call_imports_every_record_with_its_label(tmp_path: Path) -> None:
    records = _lines(WHEN2CALL)
    cases = import_when2call(WHEN2CALL)
    assert len(cases) == len(records) == 300
    labels = collections.Counter(r["correct_answer"] for r in records)
    assert labels == {"tool_call": 100, "request_for_info": 100, "cannot_answer": 100}
    actions = collections.Counter(c.expected_action for c in cases)
    assert actions == {Action.CALL_TOOL: 100, Action.CLARIFY: 100, Action.REFUSE: 100}
    _check_common(cases, "when2call")
    for record, case in zip(records, cases, strict=True):
        assert case.id == f"when2call_{record['uuid']}"
        assert case.messages[0].content == record["question"]
        assert case.acceptable == (case.expected_action,)
        assert case.gold is None
        assert case.meta["source"] == "when2call"
        assert case.meta["source_id"] == record["source_id"]
        assert case.meta["when2call_label"] == record["correct_answer"]
        assert case.meta["answers"] == record["answers"]
        assert case.meta.get("held_out_param") == record.get("held_out_param")
        assert [t.name for t in case.tools] == [json.loads(t)["name"] for t in record["tools"]]
    # When2Call's tool-hallucination rate is measured on cannot_answer records that offer no tools
    probes = sum(1 for r in records if r["correct_answer"] == "cannot_answer" and not r["tools"])
    assert probes > 0
    assert sum(1 for c in cases if c.meta.get("tool_hallucination_probe")) == probes
    _round_trip(cases, tmp_path, "when2call.jsonl")


@needs_external
def test_when2call_split_is_written_on_every_case() -> None:
    cases = import_file("when2call", WHEN2CALL, split="mine")
    assert {c.split for c in cases} == {"mine"}


# ------------------------------------------------------------------------------------------------------ BFCL


@needs_external
@pytest.mark.parametrize("name", list(BFCL_FILES))
def test_bfcl_files_import_one_case_per_record(name: str, tmp_path: Path) -> None:
    path = BFCL / name
    records = _lines(path)  # JSON lines despite the .json extension
    cases = import_file("bfcl", path)
    assert len(cases) == len(records) == BFCL_FILES[name]
    assert [c.id for c in cases] == [f"bfcl_{r['id']}" for r in records]
    category = name.removeprefix("BFCL_v4_").removesuffix(".json")
    _check_common(cases, f"bfcl_{category}")
    assert {c.expected_action for c in cases} == {BFCL_ACTIONS.get(category, Action.CALL_TOOL)}
    if (BFCL / "possible_answer" / name).is_file():  # the call categories: ground truth for every case
        truth = {r["id"]: r["ground_truth"] for r in _lines(BFCL / "possible_answer" / name)}
        for case, record in zip(cases, records, strict=True):
            assert case.meta["arguments_checked"] is True
            want = [{"name": n, "arguments": a} for call in truth[record["id"]] for n, a in call.items()]
            assert case.meta["allowed_calls"] == want
    _round_trip(cases, tmp_path, name + "l")


@needs_external
def test_every_bfcl_file_imports_and_validates_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from toolprior.cli import main

    outputs = []
    for name in BFCL_FILES:
        out = tmp_path / (name.removesuffix(".json") + ".jsonl")
        assert main(["data", "import", "bfcl", str(BFCL / name), "--out", str(out)]) == 0, capsys.readouterr().err
        outputs.append(str(out))
    assert main(["data", "validate", *outputs]) == 0
    assert f"ok: {sum(BFCL_FILES.values())} cases in {len(BFCL_FILES)} file(s)" in capsys.readouterr().out


@needs_external
@pytest.mark.parametrize("name", ["BFCL_v4_parallel.json", "BFCL_v4_live_relevance.json"])
def test_a_renamed_bfcl_file_imports_the_same(name: str, tmp_path: Path) -> None:
    original = import_bfcl(BFCL / name)
    renamed = tmp_path / "my_benchmark_copy.jsonl"
    shutil.copy(BFCL / name, renamed)
    if (BFCL / "possible_answer" / name).is_file():
        # no answer file of the same name: the one in possible_answer/ whose ids match is found
        (tmp_path / "possible_answer").mkdir()
        shutil.copy(BFCL / "possible_answer" / name, tmp_path / "possible_answer" / "answers.json")
    assert [c.to_dict() for c in import_bfcl(renamed)] == [c.to_dict() for c in original]


@needs_external
def test_a_call_file_without_its_answers_checks_the_action_only(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    shutil.copy(BFCL / "BFCL_v4_multiple.json", path)
    cases = import_bfcl(path)
    assert all(c.meta["arguments_checked"] is False and "allowed_calls" not in c.meta for c in cases)
    with_answers = import_bfcl(path, answers=BFCL / "possible_answer" / "BFCL_v4_multiple.json")
    assert all(c.meta["arguments_checked"] is True for c in with_answers)


def _parsed(*calls: tuple[str, dict[str, Any]]) -> Any:
    from types import SimpleNamespace

    from toolprior.cases import ToolCall

    made = [ToolCall(name, args) for name, args in calls]
    return SimpleNamespace(action=Action.CALL_TOOL, tool_calls=made, think=None, problems=[], raw="")


# Hand-checked against the records (read from the files):
# simple_python_0: calculate_triangle_area(base=[10], height=[5], unit=["units", ""]);
# parallel_0: spotify.play(artist=["Taylor Swift"], duration=[20]) and spotify.play(artist=["Maroon 5"], duration=[15]);
# live_multiple_0-0-0: ChaDri.change_drink(drink_id=["latte"], new_preferences=[{size: ["large"], milk_type:
#   ["coconut"], sweetness_level: ["extra"], temperature: ["hot"], special_instructions: ["served boiling hot",
#   "serve boiling hot", "boiling hot", "served 'boiling hot'"]}]).
HAND_CHECKED: list[tuple[str, str, list[tuple[str, dict[str, Any]]], bool]] = [
    ("BFCL_v4_simple_python.json", "simple_python_0", [("calculate_triangle_area", {"base": 10, "height": 5})], True),
    (
        "BFCL_v4_simple_python.json",
        "simple_python_0",
        [("calculate_triangle_area", {"base": 10, "height": 5, "unit": "units"})],
        True,
    ),
    (
        "BFCL_v4_simple_python.json",
        "simple_python_0",
        [("calculate_triangle_area", {"base": 10, "height": 5, "unit": "cm"})],
        False,
    ),
    ("BFCL_v4_simple_python.json", "simple_python_0", [("calculate_triangle_area", {"base": 10})], False),
    (
        "BFCL_v4_simple_python.json",
        "simple_python_0",
        [("calculate_triangle_area", {"base": 10, "height": 5, "colour": "red"})],
        False,
    ),
    (
        "BFCL_v4_parallel.json",
        "parallel_0",
        [
            ("spotify.play", {"artist": "Maroon 5", "duration": 15}),
            ("spotify.play", {"artist": "taylor swift", "duration": 20}),
        ],
        True,
    ),
    ("BFCL_v4_parallel.json", "parallel_0", [("spotify.play", {"artist": "Taylor Swift", "duration": 20})], False),
    (
        "BFCL_v4_parallel.json",
        "parallel_0",
        [
            ("spotify.play", {"artist": "Taylor Swift", "duration": 15}),
            ("spotify.play", {"artist": "Maroon 5", "duration": 20}),
        ],
        False,
    ),
    (
        "BFCL_v4_live_multiple.json",
        "live_multiple_0-0-0",
        [
            (
                "ChaDri.change_drink",
                {
                    "drink_id": "latte",
                    "new_preferences": {
                        "size": "large",
                        "milk_type": "coconut",
                        "sweetness_level": "extra",
                        "temperature": "hot",
                        "special_instructions": "boiling hot",
                    },
                },
            )
        ],
        True,
    ),
    (
        "BFCL_v4_live_multiple.json",
        "live_multiple_0-0-0",
        [
            (
                "ChaDri.change_drink",
                {
                    "drink_id": "latte",
                    "new_preferences": {"size": "large", "milk_type": "coconut", "temperature": "hot"},
                },
            )
        ],
        False,
    ),
    ("BFCL_v4_live_multiple.json", "live_multiple_0-0-0", [("ChaFod", {"foodItem": "latte"})], False),
]


@needs_external
@pytest.mark.parametrize(("name", "rid", "calls", "right"), HAND_CHECKED)
def test_bfcl_calls_are_scored_against_every_allowed_value(
    name: str, rid: str, calls: list[tuple[str, dict[str, Any]]], right: bool
) -> None:
    from toolprior.evals.external_metrics import external_metrics
    from toolprior.evals.verdicts import judge, verdict_for

    case = next(c for c in import_bfcl(BFCL / name) if c.id == f"bfcl_{rid}")
    parsed = _parsed(*calls)
    correct, name_ok, args_ok = judge(case, parsed)
    assert correct  # the decision (call a tool) is right either way; the calls are scored apart
    assert args_ok is right
    assert name_ok is ({c[0] for c in calls} == {a["name"] for a in case.meta["allowed_calls"]})
    metrics = external_metrics([case], [verdict_for(case, parsed)])
    assert metrics[case.category]["accuracy"] == (1.0 if right else 0.0)


def test_bfcl_live_irrelevance_maps_like_irrelevance(tmp_path: Path) -> None:
    path = _write(tmp_path / "anything.jsonl", [_bfcl_record("live_irrelevance_0-0-0")])
    (case,) = import_bfcl(path)
    assert case.category == "bfcl_live_irrelevance" and case.expected_action is Action.ANSWER_DIRECTLY
    assert set(case.acceptable) == NOT_CALLING


@needs_external
def test_bfcl_irrelevance_accepts_anything_but_a_tool_call() -> None:
    cases = import_bfcl(BFCL / "BFCL_v4_irrelevance.json")
    for case in cases:
        assert case.category == "bfcl_irrelevance"
        assert case.expected_action is Action.ANSWER_DIRECTLY
        assert set(case.acceptable) == NOT_CALLING
        assert case.tools  # functions are offered, none fits
    assert cases[0].messages[0].content.startswith("Calculate the area of a triangle")


@needs_external
def test_bfcl_live_relevance_wants_a_call_and_keeps_the_system_prompt() -> None:
    cases = import_bfcl(BFCL / "BFCL_v4_live_relevance.json")
    assert all(c.expected_action is Action.CALL_TOOL and c.acceptable == (Action.CALL_TOOL,) for c in cases)
    assert all(c.meta["arguments_checked"] is False for c in cases)
    with_system = [c for c in cases if c.messages[0].role == "system"]
    assert [c.id for c in with_system] == ["bfcl_live_relevance_6-6-0"]
    # BFCL's "tuple" of floats becomes a JSON-schema array of numbers
    weather = next(c for c in cases if c.id == "bfcl_live_relevance_3-3-0")
    coordinates = weather.tools[0].parameters["properties"]["coordinates"]
    assert coordinates["type"] == "array" and coordinates["items"] == {"type": "number"}


@needs_external
def test_bfcl_miss_param_cuts_at_the_turn_missing_a_parameter() -> None:
    records = {r["id"]: r for r in _lines(BFCL / "BFCL_v4_multi_turn_miss_param.json")}
    cases = import_bfcl(BFCL / "BFCL_v4_multi_turn_miss_param.json")
    for case in cases:
        record = records[case.meta["source_id"]]
        miss = case.meta["miss_param_turn"]
        assert case.expected_action is Action.CLARIFY
        assert set(case.acceptable) == NOT_CALLING
        assert case.tools == ()  # the file holds no function docs
        assert case.meta["involved_classes"] == record["involved_classes"]
        assert "no function docs" in case.meta["tools_note"]
        assert "dropped" in case.meta
        # the prompt is every user turn up to and including the miss-param turn, in order
        expected = [m["content"] for turn in record["question"][: miss + 1] for m in turn]
        assert [m.content for m in case.messages] == expected
        assert all(m.role == "user" for m in case.messages)
        # the next user turn (the missing value) is the scripted answer to the clarification
        if miss + 1 < len(record["question"]):
            assert [m.content for m in case.followups] == [m["content"] for m in record["question"][miss + 1]]
    first = cases[0]
    assert first.meta["miss_param_turn"] == 3
    assert first.messages[-1].content.startswith("Move one of the file in document directory to temp")
    assert first.followups[0].content == "The specific file is previous_report.pdf."
    assert collections.Counter(c.meta["miss_param_turn"] for c in cases)[0] > 50  # the first turn is common


@needs_external
def test_bfcl_miss_param_prefers_bfcl_ground_truth_beside_the_file(tmp_path: Path) -> None:
    data = tmp_path / "BFCL_v4_multi_turn_miss_param.json"
    shutil.copy(BFCL / data.name, data)
    (tmp_path / "possible_answer").mkdir()
    truth = []
    for n, (turns, miss, _) in sorted(MISS_PARAM_INDEX.items()):
        if n == 0:
            miss = 1  # a different answer than the built-in index: the file must win
        truth.append(
            {"id": f"multi_turn_miss_param_{n}", "ground_truth": [[] if t == miss else ["f()"] for t in range(turns)]}
        )
    (tmp_path / "possible_answer" / data.name).write_text("\n".join(json.dumps(t) for t in truth) + "\n")
    cases = import_bfcl(data)
    assert cases[0].meta["miss_param_turn"] == 1 and len(cases[0].messages) == 2
    assert "ground truth in" in cases[0].meta["miss_param_turn_from"]
    assert [c.meta["miss_param_turn"] for c in cases[1:]] == [MISS_PARAM_INDEX[n][1] for n in range(1, 200)]


@needs_external
def test_bfcl_miss_param_without_ground_truth_refuses_an_edited_record(tmp_path: Path) -> None:
    records = _lines(BFCL / "BFCL_v4_multi_turn_miss_param.json")[:3]
    records[1]["question"][MISS_PARAM_INDEX[1][1]][0]["content"] = "Something else entirely."
    records[2]["question"].append([{"role": "user", "content": "one more turn"}])
    path = tmp_path / "BFCL_v4_multi_turn_miss_param.json"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.raises(InputError) as err:
        import_bfcl(path)
    where = [(p.line, p.field) for p in err.value.problems]
    assert where == [(2, f"question[{MISS_PARAM_INDEX[1][1]}]"), (3, "question")]
    assert all("possible_answer" in p.message for p in err.value.problems)


@needs_external
def test_bfcl_miss_param_builds_tools_from_bfcl_function_docs(tmp_path: Path) -> None:
    record = next(
        r for r in _lines(BFCL / "BFCL_v4_multi_turn_miss_param.json") if r["involved_classes"] == ["GorillaFileSystem"]
    )
    record["excluded_function"] = ["rm"]
    data = tmp_path / "BFCL_v4_multi_turn_miss_param.json"
    data.write_text(json.dumps(record) + "\n")
    docs = tmp_path / "multi_turn_func_doc"
    docs.mkdir()
    functions = [
        {
            "name": "cd",
            "description": "Change directory.",
            "parameters": {"type": "dict", "properties": {"folder": {"type": "string"}}, "required": ["folder"]},
            "response": {"type": "dict", "properties": {"current_working_directory": {"type": "string"}}},
        },
        {
            "name": "du",
            "description": "Disk usage.",
            "parameters": {"type": "dict", "properties": {"human_readable": {"type": "boolean"}}, "required": []},
        },
        {"name": "rm", "description": "Remove a file.", "parameters": {"type": "dict", "properties": {}}},
    ]
    (docs / "gorilla_file_system.json").write_text("\n".join(json.dumps(f) for f in functions) + "\n")
    (case,) = import_bfcl(data)
    assert [t.name for t in case.tools] == ["cd", "du"]  # rm is excluded for this record
    assert case.tools[0].parameters == {
        "type": "object",
        "properties": {"folder": {"type": "string"}},
        "required": ["folder"],
    }
    assert "tools_note" not in case.meta
    _round_trip([case], tmp_path, "one.jsonl")


# ------------------------------------------------------------------------------------------------- bad input


def _write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def _w2c_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uuid": "u1",
        "source": "BFCL v2 Live Simple",
        "source_id": "live_simple_1",
        "question": "What's the weather in Paris?",
        "correct_answer": "tool_call",
        "answers": {"tool_call": '{"name": "weather", "arguments": {"city": "Paris"}}'},
        "target_tool": None,
        "tools": [
            json.dumps(
                {
                    "name": "weather",
                    "description": "Current weather.",
                    "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                }
            )
        ],
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputError) as err:
        import_file("when2call", missing)
    assert err.value.problems[0].file == str(missing)
    assert "no such file" in err.value.problems[0].message


def test_broken_lines_are_named_and_nothing_is_returned(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "w.jsonl", [_w2c_record(), '{"uuid": "u2", "question": ', _w2c_record(uuid="u3"), "[1, 2]"]
    )
    with pytest.raises(InputError) as err:
        import_when2call(path)
    assert [(p.file, p.line) for p in err.value.problems] == [(str(path), 2), (str(path), 4)]
    assert "broken JSON" in err.value.problems[0].message


def test_bad_records_name_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "w.jsonl",
        [
            _w2c_record(),
            _w2c_record(uuid="u2", correct_answer=...),
            _w2c_record(uuid="u3", correct_answer="maybe"),
            _w2c_record(uuid="u4", tools=["{not json"]),
            _w2c_record(
                uuid="u5",
                tools=[
                    json.dumps({"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "complex"}}}})
                ],
            ),
            _w2c_record(uuid="u1"),
        ],
    )
    with pytest.raises(InputError) as err:
        import_when2call(path)
    got = [(p.line, p.field) for p in err.value.problems]
    assert got == [
        (2, "correct_answer"),
        (3, "correct_answer"),
        (4, "tools[0]"),
        (5, "tools[0].parameters.properties.x.type"),
        (6, None),
    ]
    assert "missing required field" in err.value.problems[0].message
    assert "duplicate case id" in err.value.problems[-1].message


def test_when2call_direct_label_and_parsed_tools(tmp_path: Path) -> None:
    path = _write(tmp_path / "w.jsonl", [_w2c_record(correct_answer="direct", tools=[])])
    (case,) = import_when2call(path)
    assert case.expected_action is Action.ANSWER_DIRECTLY and case.tools == ()
    (case,) = import_when2call(_write(tmp_path / "v.jsonl", [_w2c_record()]))
    assert case.tools[0].parameters == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }


def test_unknown_source_and_split_are_input_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "w.jsonl", [_w2c_record()])
    with pytest.raises(InputError, match="unknown benchmark"):
        import_file("gsm8k", path)
    with pytest.raises(InputError, match="unknown split"):
        import_file("when2call", path, split="test")


def _bfcl_record(rid: str, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": rid,
        "question": [[{"role": "user", "content": "What is the capital of France?"}]],
        "function": [
            {
                "name": "bmi",
                "description": "Body mass index.",
                "parameters": {"type": "dict", "properties": {"w": {"type": "float"}}},
            }
        ],
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def test_bfcl_unsupported_or_mixed_files_are_input_errors(tmp_path: Path) -> None:
    base = _write(tmp_path / "BFCL_v4_simple_python.json", [_bfcl_record("multi_turn_base_0")])
    with pytest.raises(InputError, match="maps to none of the five actions: every turn's ground truth") as err:
        import_bfcl(base)
    assert [(p.line, p.field) for p in err.value.problems] == [(1, "id")]
    unknown = _write(tmp_path / "x.json", [_bfcl_record("telepathy_0")])
    with pytest.raises(InputError, match="unknown category 'telepathy'"):
        import_bfcl(unknown)
    not_bfcl = _write(tmp_path / "y.json", [{"uuid": "1", "question": "x"}])
    with pytest.raises(InputError, match="not a BFCL v4 file"):
        import_bfcl(not_bfcl)
    mixed = _write(tmp_path / "data.json", [_bfcl_record("irrelevance_0"), _bfcl_record("live_relevance_1-1-0")])
    with pytest.raises(InputError) as err:
        import_bfcl(mixed)
    assert [(p.line, p.field) for p in err.value.problems] == [(2, "id")]


def test_bfcl_bad_roles_and_turns_are_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "BFCL_v4_irrelevance.json",
        [
            _bfcl_record("irrelevance_0", question=[[{"role": "narrator", "content": "x"}]]),
            _bfcl_record(
                "irrelevance_1", question=[[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
            ),
            _bfcl_record(
                "irrelevance_2", question=[[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]]
            ),
            _bfcl_record("irrelevance_3", function=...),
        ],
    )
    with pytest.raises(InputError) as err:
        import_bfcl(path)
    assert [(p.line, p.field) for p in err.value.problems] == [
        (1, "question[0][0].role"),
        (2, "question"),
        (3, "question[0]"),
        (4, "function"),
    ]


def test_bfcl_json_array_file_reads_too(tmp_path: Path) -> None:
    path = tmp_path / "BFCL_v4_irrelevance.json"
    path.write_text(json.dumps([_bfcl_record("irrelevance_0"), _bfcl_record("irrelevance_1")]))
    cases = import_bfcl(path)
    assert [c.id for c in cases] == ["bfcl_irrelevance_0", "bfcl_irrelevance_1"]
    assert cases[0].tools[0].parameters["properties"]["w"] == {"type": "number"}


# -------------------------------------------------------------------------------------------- schema convert


def test_schema_conversion_is_recursive_and_only_at_schema_positions() -> None:
    schema = {
        "type": "dict",
        "properties": {
            "type": {"type": "string", "enum": ["dict", "float"]},  # a property called "type" is a name
            "point": {"type": "tuple", "items": {"type": "float"}},
            "payload": {"type": "any", "description": "anything"},
            "nested": {
                "type": "dict",
                "properties": {
                    "rows": {"type": "array", "items": {"type": "dict", "properties": {"n": {"type": "integer"}}}}
                },
                "additionalProperties": {"type": "float"},
            },
            "either": {"anyOf": [{"type": "float"}, {"type": "string"}]},
            "pair": {"type": ["float", "integer", "float"]},
        },
        "required": ["type"],
    }
    out = convert_parameters(schema, "parameters")
    props = out["properties"]
    assert out["type"] == "object" and out["required"] == ["type"]
    assert props["type"] == {"type": "string", "enum": ["dict", "float"]}
    assert props["point"] == {"type": "array", "items": {"type": "number"}}
    assert props["payload"] == {"description": "anything"}
    assert props["nested"]["properties"]["rows"]["items"] == {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
    }
    assert props["nested"]["additionalProperties"] == {"type": "number"}
    assert props["either"] == {"anyOf": [{"type": "number"}, {"type": "string"}]}
    assert props["pair"] == {"type": ["number", "integer"]}
    assert schema["type"] == "dict"  # the input is left alone


def test_schema_conversion_errors_name_the_field() -> None:
    with pytest.raises(RecordError) as err:
        convert_schema({"type": "dict", "properties": {"a": {"type": "array", "items": {"type": "complex"}}}}, "p")
    assert err.value.field == "p.properties.a.items.type"
    with pytest.raises(RecordError, match="must be an object schema"):
        convert_parameters({"type": "string"}, "p")
    with pytest.raises(RecordError, match="not defined"):
        convert_parameters({"type": "dict", "properties": {}, "required": ["x"]}, "p")


def test_tool_spec_fills_missing_parameters_and_drops_extra_keys() -> None:
    spec = tool_spec({"name": "ping", "description": "Ping.", "response": {"type": "dict"}}, "f")
    assert spec.to_dict() == {
        "name": "ping",
        "description": "Ping.",
        "parameters": {"type": "object", "properties": {}},
    }


# ------------------------------------------------------------------------------------------------------ CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolprior.cli", "data", "import", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_external
def test_cli_import_writes_cases_and_fails_cleanly_on_a_broken_copy(tmp_path: Path) -> None:
    out = tmp_path / "w2c.jsonl"
    done = _cli("when2call", str(WHEN2CALL), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(read_cases(out)) == 300

    broken = tmp_path / "broken.jsonl"
    lines = WHEN2CALL.read_text(encoding="utf-8").splitlines()
    lines[41] = lines[41][: len(lines[41]) // 2]  # cut line 42 in half
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out2 = tmp_path / "never.jsonl"
    done = _cli("when2call", str(broken), "--out", str(out2))
    assert done.returncode == 2
    assert f"{broken}:42" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out2.exists()

    bfcl_out = tmp_path / "irr.jsonl"
    done = _cli("bfcl", str(BFCL / "BFCL_v4_irrelevance.json"), "--out", str(bfcl_out), "--split", "eval_novel")
    assert done.returncode == 0, done.stderr
    assert {c.split for c in read_cases(bfcl_out)} == {"eval_novel"}
