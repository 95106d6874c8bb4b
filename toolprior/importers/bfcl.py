"""Berkeley Function Calling Leaderboard (github.com/ShishirPatil/gorilla, BFCL v4) -> cases.

Three BFCL files are understood; which one is read from the file name or the record ids:

- `irrelevance` (ids `irrelevance_<n>`): none of the offered functions fits. BFCL scores a reply correct when
  it holds no decodable function call, so expected_action is answer_directly and every action but call_tool is
  acceptable.
- `live_relevance` (ids `live_relevance_<n>-<m>-<k>`): some offered function fits. BFCL scores a reply correct
  when it holds at least one function call, whatever its arguments: expected and only acceptable action is
  call_tool, arguments unchecked.
- `multi_turn_miss_param` (ids `multi_turn_miss_param_<n>`): a multi-turn conversation in which one user turn
  leaves out a parameter that the next user turn supplies. BFCL's ground truth for that turn is empty (no call
  is correct). One case per record: the user turns up to and including the first one missing a parameter;
  expected_action clarify (what the turn is written to elicit), every action but call_tool acceptable (what
  BFCL counts as correct); the next user turn (the missing value) is the case's followup.

BFCL's `.json` files are JSON lines despite the extension.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from toolprior.actions import Action
from toolprior.cases import Case, Message, ToolSpec
from toolprior.errors import InputError, Problem
from toolprior.importers.bfcl_miss_param_index import MISS_PARAM_INDEX, text_crc
from toolprior.importers.common import (
    NOT_CALLING,
    Record,
    RecordError,
    build_cases,
    chat_message,
    check_split,
    kind,
    read_records,
    require,
    string_list,
    text,
)
from toolprior.importers.schema_convert import tool_spec, tool_specs

FLAVOURS: dict[str, re.Pattern[str]] = {
    "irrelevance": re.compile(r"irrelevance_\d+"),
    "live_relevance": re.compile(r"live_relevance_\d+(?:-\d+)*"),
    "multi_turn_miss_param": re.compile(r"multi_turn_miss_param_(\d+)"),
}
CATEGORIES: dict[str, str] = {flavour: f"bfcl_{flavour}" for flavour in FLAVOURS}

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

IRRELEVANCE_SCORING = (
    "BFCL irrelevance: correct when the reply holds no decodable function call; every action but call_tool "
    "scores as correct"
)
RELEVANCE_SCORING = "BFCL relevance: correct when the reply holds at least one function call; arguments are not checked"
MISS_PARAM_SCORING = (
    "BFCL multi_turn_miss_param: the miss-param turn's ground truth is empty, so the turn is correct when no "
    "function is called; clarify (ask for the missing value) is the intended behaviour and every action but "
    "call_tool scores as correct"
)
MISS_PARAM_DROPPED = (
    "assistant turns, tool calls and tool results of the turns before the miss-param turn (BFCL produces them "
    "by running the model against stateful simulators; the file holds user turns only), and initial_config"
)


def import_bfcl(
    path: str | os.PathLike[str],
    split: str = "eval",
    *,
    answers: str | os.PathLike[str] | None = None,
    func_docs: str | os.PathLike[str] | None = None,
) -> list[Case]:
    """Every record of a BFCL irrelevance, live_relevance or multi_turn_miss_param file as a case
    (id `bfcl_<record id>`), or InputError naming each bad record's line and field.

    For multi_turn_miss_param only: `answers` is BFCL's possible_answer file for it (default: BFCL's own layout,
    `possible_answer/<same name>` beside the data file, when present; otherwise a built-in index of BFCL v4's
    miss-param turns); `func_docs` is BFCL's `multi_turn_func_doc/` folder (default: beside the data file, when
    present). Without function docs the cases offer no tools and meta names the classes they would come from."""
    check_split(split)
    records = read_records(path)
    flavour = detect_flavour(path, records)
    category = CATEGORIES[flavour]
    if flavour == "multi_turn_miss_param":
        here = Path(path).parent
        answer_file = Path(answers) if answers is not None else here / "possible_answer" / Path(path).name
        if answers is not None or answer_file.is_file():
            truth: dict[str, list[Any]] | None = _read_ground_truth(answer_file)
        else:
            truth, answer_file = None, None
        doc_dir = Path(func_docs) if func_docs is not None else here / "multi_turn_func_doc"
        if func_docs is not None and not doc_dir.is_dir():
            raise InputError(Problem(str(doc_dir), None, None, "not a folder of BFCL multi-turn function docs"))
        docs = _FuncDocs(doc_dir) if doc_dir.is_dir() else None
        return build_cases(path, records, lambda r: _miss_param_case(r, split, category, truth, answer_file, docs))
    return build_cases(path, records, lambda r: _single_turn_case(r, split, flavour, category))


def detect_flavour(path: str | os.PathLike[str], records: list[Record]) -> str:
    """Which BFCL file this is: from the file name (`BFCL_v4_irrelevance.json`), else from the first record id."""
    stem = re.sub(r"^BFCL_v\d+_", "", Path(path).name)
    stem = stem.removesuffix(".jsonl").removesuffix(".json")
    if stem in FLAVOURS:
        return stem
    first = records[0]
    rid = first.data.get("id")
    if isinstance(rid, str):
        for flavour, pattern in FLAVOURS.items():
            if pattern.fullmatch(rid):
                return flavour
    raise InputError(
        Problem(
            str(path),
            first.line,
            "id",
            f"not a supported BFCL file (first id {rid!r}); supported: "
            + ", ".join(f"BFCL_v4_{f}.json" for f in FLAVOURS),
        )
    )


# -------------------------------------------------------------------------------------------- single turn


def _record_id(data: dict[str, Any], flavour: str) -> tuple[str, re.Match[str]]:
    rid = text(require(data, "id"), "id", nonempty=True)
    match = FLAVOURS[flavour].fullmatch(rid)
    if match is None:
        raise RecordError("id", f"{rid!r} is not a {flavour} id; one BFCL file holds one category")
    return rid, match


def _single_turn_case(record: Record, split: str, flavour: str, category: str) -> Case:
    data = record.data
    rid, _ = _record_id(data, flavour)
    question = require(data, "question")
    if not isinstance(question, list) or len(question) != 1 or not isinstance(question[0], list):
        got = f"{len(question)} turns" if isinstance(question, list) else kind(question)
        raise RecordError("question", f"expected one turn (an array holding one array of messages), got {got}")
    messages = tuple(chat_message(m, f"question[0][{j}]") for j, m in enumerate(question[0]))
    _check_ends_with_user(messages, "question[0]")
    tools = tool_specs(require(data, "function"), "function")
    meta: dict[str, Any] = {"source": "bfcl", "source_id": rid, "bfcl_category": flavour}
    if flavour == "irrelevance":
        expected, acceptable = Action.ANSWER_DIRECTLY, NOT_CALLING
        meta["scoring"] = IRRELEVANCE_SCORING
    else:
        if not tools:
            raise RecordError("function", "a relevance record must offer at least one function")
        expected, acceptable = Action.CALL_TOOL, (Action.CALL_TOOL,)
        meta["scoring"] = RELEVANCE_SCORING
        meta["arguments_checked"] = False
    return Case(
        id=f"bfcl_{rid}",
        category=category,
        split=split,
        expected_action=expected,
        messages=messages,
        tools=tools,
        acceptable=acceptable,
        meta=meta,
    )


def _check_ends_with_user(messages: tuple[Message, ...], field: str) -> None:
    if not messages:
        raise RecordError(field, "holds no messages")
    if messages[-1].role != "user":
        raise RecordError(field, f"must end with a user message (the decision point), ends with {messages[-1].role!r}")


# ---------------------------------------------------------------------------------------- multi-turn miss param


def _miss_param_case(
    record: Record,
    split: str,
    category: str,
    truth: dict[str, list[Any]] | None,
    answer_file: Path | None,
    docs: _FuncDocs | None,
) -> Case:
    data = record.data
    rid, match = _record_id(data, "multi_turn_miss_param")
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
        miss = _miss_turn_from_index(rid, int(match.group(1)), question)
        found_by = "built-in index of BFCL v4 (bfcl_miss_param_index.py)"

    messages = tuple(chat_message(m, f"question[{t}][{j}]") for t in range(miss + 1) for j, m in enumerate(question[t]))
    _check_ends_with_user(messages, f"question[{miss}]")
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


def _read_ground_truth(answer_file: Path) -> dict[str, list[Any]]:
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


class _FuncDocs:
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
