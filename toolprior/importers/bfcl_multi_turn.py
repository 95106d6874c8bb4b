"""BFCL v4 multi_turn_miss_param records as cases: the turn missing a parameter is the decision point (see
`toolprior.importers.bfcl`'s docstring for what is kept and dropped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolprior.actions import Action
from toolprior.cases import Case, Message, ToolSpec
from toolprior.errors import InputError, Problem
from toolprior.importers.bfcl_miss_param_index import MISS_PARAM_INDEX, text_crc
from toolprior.importers.bfcl_records import check_ends_with_user, record_id
from toolprior.importers.common import (
    NOT_CALLING,
    Record,
    RecordError,
    chat_message,
    kind,
    read_records,
    require,
    string_list,
)
from toolprior.importers.schema_convert import tool_spec

MISS_PARAM_SCORING = (
    "BFCL multi_turn_miss_param: the miss-param turn's ground truth is empty, so the turn is correct when no "
    "function is called; clarify (ask for the missing value) is the intended behaviour and every action but "
    "call_tool scores as correct"
)
MISS_PARAM_DROPPED = (
    "assistant turns, tool calls and tool results of the turns before the miss-param turn (BFCL produces them "
    "by running the model against stateful simulators; the file holds user turns only), and initial_config"
)

# BFCL's multi-turn classes -> their function-doc files under bfcl_eval/data/multi_turn_func_doc/.
FUNC_DOC_FILES: dict[str, str] = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
    "WebSearchAPI": "web_search.json",
}


def miss_param_case(
    record: Record,
    split: str,
    category: str,
    truth: dict[str, list[Any]] | None,
    answer_file: Path | None,
    docs: FuncDocs | None,
) -> Case:
    data = record.data
    rid, match = record_id(data, "multi_turn_miss_param")
    question = require(data, "question")
    if not isinstance(question, list) or not question:
        raise RecordError("question", f"expected a non-empty array of turns, got {kind(question)}")
    for t, turn in enumerate(question):
        if not isinstance(turn, list):
            raise RecordError(f"question[{t}]", f"expected an array of messages, got {kind(turn)}")
    classes = string_list(require(data, "involved_classes"), "involved_classes")
    excluded = string_list(data.get("excluded_function") or [], "excluded_function")

    if truth is not None:
        miss = _miss_turn_from_truth(rid, question, truth, answer_file)
        found_by = f"ground truth in {answer_file}"
    else:
        miss = _miss_turn_from_index(rid, int(match.group("number")), question)
        found_by = "built-in index of BFCL v4 (bfcl_miss_param_index.py)"

    messages = tuple(chat_message(m, f"question[{t}][{j}]") for t in range(miss + 1) for j, m in enumerate(question[t]))
    check_ends_with_user(messages, f"question[{miss}]")
    followups: tuple[Message, ...] = ()
    if miss + 1 < len(question):
        nxt = tuple(chat_message(m, f"question[{miss + 1}][{j}]") for j, m in enumerate(question[miss + 1]))
        if nxt and all(m.role == "user" for m in nxt):
            followups = nxt

    meta: dict[str, Any] = {
        "source": "bfcl",
        "source_id": rid,
        "bfcl_category": "multi_turn_miss_param",
        "scoring": MISS_PARAM_SCORING,
        "miss_param_turn": miss,
        "turns": len(question),
        "miss_param_turn_from": found_by,
        "dropped": MISS_PARAM_DROPPED,
        "involved_classes": classes,
    }
    if excluded:
        meta["excluded_function"] = excluded
    path = data.get("path")
    if isinstance(path, list) and all(isinstance(p, str) for p in path):
        meta["bfcl_path"] = path  # BFCL's ground-truth function path over the whole conversation
    tools: tuple[ToolSpec, ...] = ()
    if docs is not None:
        tools, dropped_dupes = docs.tools(classes, excluded, "involved_classes")
        if dropped_dupes:
            meta["duplicate_functions_dropped"] = dropped_dupes
    else:
        meta["tools_note"] = (
            "the data file holds no function docs (BFCL keeps them in multi_turn_func_doc/); no tools offered. "
            "Classes: " + ", ".join(classes)
        )
    return Case(
        id=f"bfcl_{rid}",
        category=category,
        split=split,
        expected_action=Action.CLARIFY,
        messages=messages,
        tools=tools,
        followups=followups,
        acceptable=(Action.CLARIFY, *(a for a in NOT_CALLING if a is not Action.CLARIFY)),
        meta=meta,
    )


def _miss_turn_from_truth(rid: str, question: list[Any], truth: dict[str, list[Any]], answer_file: Path | None) -> int:
    if rid not in truth:
        raise RecordError("id", f"{rid!r} has no ground truth in {answer_file}")
    turns = truth[rid]
    if len(turns) != len(question):
        raise RecordError(
            "question",
            f"{len(question)} turns, but its ground truth in {answer_file} has {len(turns)}: not the same version",
        )
    for t, calls in enumerate(turns):
        if calls == []:
            return t
    raise RecordError("question", f"no turn has an empty ground truth in {answer_file}, so none is missing a parameter")


def _miss_turn_from_index(rid: str, number: int, question: list[Any]) -> int:
    entry = MISS_PARAM_INDEX.get(number)
    advice = (
        "cannot tell which turn is missing a parameter: put BFCL's possible_answer/ folder beside the file "
        "(or pass answers=...)"
    )
    if entry is None:
        raise RecordError("id", f"{rid!r} is not in the built-in index of BFCL v4 miss-param turns; {advice}")
    turns, miss, crc = entry
    if len(question) != turns:
        raise RecordError("question", f"{len(question)} turns where BFCL v4 has {turns} for {rid!r}; {advice}")
    miss_text = "".join(m.get("content", "") if isinstance(m, dict) else "" for m in question[miss])
    if text_crc(miss_text) != crc:
        raise RecordError(f"question[{miss}]", f"differs from BFCL v4's miss-param turn of {rid!r}; {advice}")
    return miss


def read_ground_truth(answer_file: Path) -> dict[str, list[Any]]:
    """BFCL's possible_answer file: {"id": ..., "ground_truth": [[call, ...] per turn]} per line."""
    file = str(answer_file)
    out: dict[str, list[Any]] = {}
    problems: list[Problem] = []
    for record in read_records(answer_file):
        rid, turns = record.data.get("id"), record.data.get("ground_truth")
        if not isinstance(rid, str):
            problems.append(Problem(file, record.line, "id", f"expected a string, got {kind(rid)}"))
        elif not isinstance(turns, list) or not all(isinstance(t, list) for t in turns):
            problems.append(Problem(file, record.line, "ground_truth", "expected an array of arrays (one per turn)"))
        else:
            out[rid] = turns
    if problems:
        raise InputError(problems)
    return out


class FuncDocs:
    """BFCL's multi-turn function docs, one JSON-lines file per class, converted once per class."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._cache: dict[str, tuple[ToolSpec, ...]] = {}

    def tools(self, classes: list[str], excluded: list[str], field: str) -> tuple[tuple[ToolSpec, ...], list[str]]:
        out: list[ToolSpec] = []
        names: set[str] = set()
        dupes: list[str] = []
        for i, cls in enumerate(classes):
            for spec in self._load(cls, f"{field}[{i}]"):
                if spec.name in excluded:
                    continue
                if spec.name in names:
                    dupes.append(f"{cls}.{spec.name}")
                    continue
                names.add(spec.name)
                out.append(spec)
        return tuple(out), dupes

    def _load(self, cls: str, field: str) -> tuple[ToolSpec, ...]:
        if cls in self._cache:
            return self._cache[cls]
        if cls not in FUNC_DOC_FILES:
            raise RecordError(
                field, f"no function-doc file known for class {cls!r}; known: {', '.join(FUNC_DOC_FILES)}"
            )
        doc_file = self.folder / FUNC_DOC_FILES[cls]
        specs: list[ToolSpec] = []
        problems: list[Problem] = []
        for record in read_records(doc_file):
            try:
                specs.append(tool_spec(record.data, "function"))
            except RecordError as err:
                problems.append(Problem(str(doc_file), record.line, err.field, err.message))
        if problems:
            raise InputError(problems)
        self._cache[cls] = tuple(specs)
        return self._cache[cls]
