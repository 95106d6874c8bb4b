"""When2Call (NVIDIA, github.com/NVIDIA/When2Call) -> cases.

One record is one user question, the tools offered (a list of JSON strings) and the right kind of answer,
`correct_answer`: tool_call -> call_tool, request_for_info -> clarify, cannot_answer -> refuse,
direct -> answer_directly. When2Call's own metrics (macro F1 over the labels, accuracy, the tool-hallucination
rate) work on those labels alone, so `acceptable` is the mapped action and there is no gold turn: the
`answers` field holds one model-written candidate per label, kept in meta for reference, not as gold.
"""

from __future__ import annotations

import json
import os
from typing import Any

from toolprior.actions import Action
from toolprior.cases import Case, Message
from toolprior.importers.common import (
    Record,
    RecordError,
    build_cases,
    check_split,
    kind,
    read_records,
    require,
    text,
)
from toolprior.importers.schema_convert import tool_spec

CATEGORY = "when2call"

LABEL_ACTIONS: dict[str, Action] = {
    "tool_call": Action.CALL_TOOL,
    "request_for_info": Action.CLARIFY,
    "cannot_answer": Action.REFUSE,
    "direct": Action.ANSWER_DIRECTLY,
}


def import_when2call(path: str | os.PathLike[str], split: str = "eval") -> list[Case]:
    """Every record of a When2Call JSONL file as a case (id `when2call_<uuid>`), or InputError naming each bad
    record's line and field."""
    check_split(split)
    records = read_records(path)
    return build_cases(path, records, lambda record: _case(record, split))


def _case(record: Record, split: str) -> Case:
    data = record.data
    uuid = text(require(data, "uuid"), "uuid", nonempty=True).strip()
    source_id = text(require(data, "source_id"), "source_id", nonempty=True)
    question = text(require(data, "question"), "question", nonempty=True)
    label = text(require(data, "correct_answer"), "correct_answer")
    if label not in LABEL_ACTIONS:
        raise RecordError("correct_answer", f"unknown label {label!r}; expected one of {', '.join(LABEL_ACTIONS)}")
    action = LABEL_ACTIONS[label]

    raw_tools = require(data, "tools")
    if not isinstance(raw_tools, list):
        raise RecordError("tools", f"expected an array of JSON strings, got {kind(raw_tools)}")
    tools = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_tools):
        spec = tool_spec(_json_value(raw, f"tools[{i}]"), f"tools[{i}]")
        if spec.name in seen:
            raise RecordError(f"tools[{i}].name", f"duplicate tool name {spec.name!r} (also tools[{seen[spec.name]}])")
        seen[spec.name] = i
        tools.append(spec)
    if action is Action.CALL_TOOL and not tools:
        raise RecordError("tools", "a tool_call record must offer at least one tool")

    meta: dict[str, Any] = {
        "source": "when2call",
        "source_id": source_id,
        "uuid": uuid,
        "when2call_label": label,
        "template": f"when2call:{source_id}",  # questions repeat across records: group splits and CV folds by it
    }
    if isinstance(data.get("source"), str):
        meta["origin"] = data["source"]
    if data.get("held_out_param") is not None:
        meta["held_out_param"] = text(data["held_out_param"], "held_out_param")
    target = data.get("target_tool")
    if target is not None:
        target_obj = _json_value(target, "target_tool")
        if isinstance(target_obj, dict) and isinstance(target_obj.get("name"), str):
            meta["target_tool"] = target_obj["name"]
    if label == "cannot_answer" and not tools:
        meta["tool_hallucination_probe"] = True  # When2Call's hallucination rate counts tool calls on these
    answers = data.get("answers")
    if answers is not None:
        if not isinstance(answers, dict):
            raise RecordError("answers", f"expected an object of candidate answers, got {kind(answers)}")
        meta["answers"] = {k: text(v, f"answers.{k}") for k, v in answers.items()}

    return Case(
        id=f"when2call_{uuid}",
        category=CATEGORY,
        split=split,
        expected_action=action,
        messages=(Message(role="user", content=question),),
        tools=tuple(tools),
        gold=None,
        acceptable=(action,),
        meta=meta,
    )


def _json_value(raw: Any, field: str) -> Any:
    """When2Call stores tools as JSON strings; an already-parsed object is taken as it is."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as err:
            raise RecordError(field, f"broken JSON in the string: {err.msg} (column {err.colno})") from None
    if isinstance(raw, dict):
        return raw
    raise RecordError(field, f"expected a JSON string, got {kind(raw)}")
