"""Berkeley Function Calling Leaderboard (github.com/ShishirPatil/gorilla, BFCL v4) -> cases.

A BFCL file is recognised by its records, never by its name: every record has an `id` of the form
`<category>_<n>[-<m>-<k>]`, a `question` (a list of turns, each a list of messages) and, for single-turn
categories, `function` (the offered function docs). The category in the ids says what a correct reply does, which
maps it to the five actions:

- irrelevance, live_irrelevance: none of the offered functions fits. BFCL scores a reply correct when it holds no
  decodable function call, so expected_action is answer_directly and every action but call_tool is acceptable.
- live_relevance: some offered function fits. BFCL scores a reply correct when it holds at least one function
  call, whatever its arguments: expected and only acceptable action is call_tool, arguments unchecked.
- simple_python / simple_java / simple_javascript, multiple, parallel, parallel_multiple and their live_ versions:
  the reply must call the right functions with right arguments. expected and only acceptable action is call_tool;
  the ground truth comes from BFCL's `possible_answer` file for the same category (`possible_answer/<same name>`
  beside the data file, else the file in that folder whose records carry the same ids, or `answers=`): per call,
  the function and every allowed value of each parameter ("" = the parameter may be left out). It is kept in
  `meta.allowed_calls` and evals.verdicts.judge scores the calls against it. Without a possible_answer file only
  the action is checked (`meta.arguments_checked` false).
- multi_turn_miss_param: a multi-turn conversation in which one user turn leaves out a parameter that the next user
  turn supplies. BFCL's ground truth for that turn is empty (no call is correct). One case per record: the user
  turns up to and including the first one missing a parameter; expected_action clarify (what the turn is written to
  elicit), every action but call_tool acceptable (what BFCL counts as correct); the next user turn (the missing
  value) is the case's followup.

Any other category (multi_turn_base, multi_turn_miss_func, web_search, memory, ...) maps to none of the five
actions and the file is refused with one line saying why. BFCL's `.json` files are JSON lines despite the extension.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from toolprior.actions import BFCL_CATEGORIES, Action
from toolprior.cases import Case
from toolprior.errors import InputError, Problem
from toolprior.importers.bfcl_multi_turn import (
    FuncDocs,
    miss_param_case,
    read_ground_truth,
)
from toolprior.importers.bfcl_records import ID_PATTERN, check_ends_with_user, record_id
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
)
from toolprior.importers.schema_convert import tool_specs

# What a correct reply does in a category: hold no call, hold any call, hold the ground-truth calls, or (multi-turn
# miss-param) hold no call at the turn missing a parameter.
NO_CALL = "no_call"
ANY_CALL = "any_call"
CALLS = "calls"
MISS_PARAM = "miss_param"
KINDS: dict[str, str] = {
    "irrelevance": NO_CALL,
    "live_irrelevance": NO_CALL,
    "live_relevance": ANY_CALL,
    "simple_python": CALLS,
    "simple_java": CALLS,
    "simple_javascript": CALLS,
    "multiple": CALLS,
    "parallel": CALLS,
    "parallel_multiple": CALLS,
    "live_simple": CALLS,
    "live_multiple": CALLS,
    "live_parallel": CALLS,
    "live_parallel_multiple": CALLS,
    "multi_turn_miss_param": MISS_PARAM,
}
assert set(KINDS) == set(BFCL_CATEGORIES), "toolprior.actions.BFCL_CATEGORIES and KINDS must name the same categories"
CATEGORIES: dict[str, str] = {category: f"bfcl_{category}" for category in KINDS}

# BFCL categories that map to none of the five actions, and why.
UNSUPPORTED: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"multi_turn_(base|long_context|composite)"),
        "every turn's ground truth is a sequence of calls run against BFCL's stateful simulators (file system, "
        "trading bot, ...) and the file holds the user turns only, so no single decision with a known right "
        "action can be cut from it",
    ),
    (
        re.compile(r"multi_turn_miss_func"),
        "the function a turn needs is withheld and offered only at a later turn, which a case (one fixed tool "
        "list) cannot express",
    ),
    (
        re.compile(r"(web_search|memory)(_[a-z_]+)?"),
        "an agentic task scored on the final answer of a multi-step run against live search or memory backends, "
        "not on one action",
    ),
    (
        re.compile(r"(sql|rest|exec_[a-z_]+|chatable|java|javascript)"),
        "a BFCL v1-v3 category scored by executing the call or by free text; BFCL v4 files only",
    ),
)

IRRELEVANCE_SCORING = (
    "BFCL irrelevance: correct when the reply holds no decodable function call; every action but call_tool "
    "scores as correct"
)
RELEVANCE_SCORING = "BFCL relevance: correct when the reply holds at least one function call; arguments are not checked"
CALLS_SCORING = (
    "BFCL AST: correct when the reply calls the ground-truth functions (one call per ground-truth call, any order), "
    'each argument one of its allowed values, a parameter left out only where "" is allowed, and no parameter '
    "the ground truth does not list"
)
CALLS_UNCHECKED_SCORING = (
    "BFCL AST without its possible_answer file: only the action (call_tool) is checked; put BFCL's possible_answer/ "
    "folder beside the file (or pass answers=) to check the calls"
)


def import_bfcl(
    path: str | os.PathLike[str],
    split: str = "eval",
    *,
    answers: str | os.PathLike[str] | None = None,
    func_docs: str | os.PathLike[str] | None = None,
) -> list[Case]:
    """Every record of a BFCL v4 file of a supported category (see the module docstring) as a case (id
    `bfcl_<record id>`), or InputError naming each bad record's line and field.

    `answers`: BFCL's possible_answer file for this file (default: found beside it, see the module docstring; for
    multi_turn_miss_param without one, a built-in index of BFCL v4's miss-param turns). `func_docs` (multi-turn
    only): BFCL's `multi_turn_func_doc/` folder (default: beside the data file, when present). Without function
    docs multi-turn cases offer no tools and meta names the classes they would come from."""
    check_split(split)
    records = read_records(path)
    category = detect_category(path, records)
    kind_ = KINDS[category]
    answer_file = _answer_file(path, records, answers) if kind_ in (CALLS, MISS_PARAM) else None
    if kind_ == MISS_PARAM:
        truth = read_ground_truth(answer_file) if answer_file is not None else None
        here = Path(path).parent
        doc_dir = Path(func_docs) if func_docs is not None else here / "multi_turn_func_doc"
        if func_docs is not None and not doc_dir.is_dir():
            raise InputError(Problem(str(doc_dir), None, None, "not a folder of BFCL multi-turn function docs"))
        docs = FuncDocs(doc_dir) if doc_dir.is_dir() else None
        return build_cases(
            path, records, lambda r: miss_param_case(r, split, CATEGORIES[category], truth, answer_file, docs)
        )
    allowed = _read_allowed_calls(answer_file) if answer_file is not None else None
    return build_cases(path, records, lambda r: _single_turn_case(r, split, category, allowed, answer_file))


def category_of(rid: Any) -> str | None:
    """The BFCL category an id names (`live_simple_3-2-0` -> `live_simple`), or None when it is no BFCL id."""
    match = ID_PATTERN.fullmatch(rid) if isinstance(rid, str) else None
    return match.group("category") if match else None


def detect_category(path: str | os.PathLike[str], records: list[Record]) -> str:
    """Which BFCL category a file holds, from its first record: the category its id names, provided the record is
    shaped like a BFCL record (a `question`). A later record of another category is refused where it is built."""
    file = str(path)
    first = records[0]
    rid = first.data.get("id")
    category = category_of(rid)
    if category is None or "question" not in first.data:
        what = f"id {rid!r} is not <category>_<number>" if category is None else "its records have no `question`"
        raise InputError(Problem(file, first.line, "id", f"not a BFCL v4 file ({what})"))
    if category in KINDS:
        return category
    for pattern, why in UNSUPPORTED:
        if pattern.fullmatch(category):
            raise InputError(
                Problem(file, first.line, "id", f"BFCL category {category!r} maps to none of the five actions: {why}")
            )
    known = ", ".join(KINDS)
    raise InputError(
        Problem(
            file, first.line, "id", f"not a supported BFCL file: unknown category {category!r} (supported: {known})"
        )
    )


def _answer_file(path: str | os.PathLike[str], records: list[Record], answers: Any) -> Path | None:
    """BFCL's possible_answer file for this data file: `answers` if given, else `possible_answer/<same name>`
    beside it, else the file in that folder whose first record has this file's first id (a renamed copy)."""
    if answers is not None:
        return Path(answers)
    folder = Path(path).parent / "possible_answer"
    same = folder / Path(path).name
    if same.is_file():
        return same
    first = records[0].data.get("id")
    if folder.is_dir():
        for candidate in sorted(folder.iterdir()):
            if candidate.is_file() and _first_id(candidate) == first:
                return candidate
    return None


def _first_id(path: Path) -> Any:
    """The id of a JSON-lines file's first record (None when it cannot be read that way)."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    return record.get("id") if isinstance(record, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return None


# -------------------------------------------------------------------------------------------- single turn


def _single_turn_case(
    record: Record,
    split: str,
    category: str,
    allowed: dict[str, list[dict[str, Any]]] | None,
    answer_file: Path | None,
) -> Case:
    data = record.data
    rid, _ = record_id(data, category)
    question = require(data, "question")
    if not isinstance(question, list) or len(question) != 1 or not isinstance(question[0], list):
        got = f"{len(question)} turns" if isinstance(question, list) else kind(question)
        raise RecordError("question", f"expected one turn (an array holding one array of messages), got {got}")
    messages = tuple(chat_message(m, f"question[0][{j}]") for j, m in enumerate(question[0]))
    check_ends_with_user(messages, "question[0]")
    tools = tool_specs(require(data, "function"), "function")
    meta: dict[str, Any] = {"source": "bfcl", "source_id": rid, "bfcl_category": category}
    kind_ = KINDS[category]
    if kind_ == NO_CALL:
        expected, acceptable = Action.ANSWER_DIRECTLY, NOT_CALLING
        meta["scoring"] = IRRELEVANCE_SCORING
    else:
        if not tools:
            raise RecordError("function", f"a {category} record must offer at least one function")
        expected, acceptable = Action.CALL_TOOL, (Action.CALL_TOOL,)
        meta["arguments_checked"] = False
        meta["scoring"] = RELEVANCE_SCORING if kind_ == ANY_CALL else CALLS_UNCHECKED_SCORING
    if kind_ == CALLS and allowed is not None:
        if rid not in allowed:
            raise RecordError("id", f"{rid!r} has no ground truth in {answer_file}")
        offered = {t.name for t in tools}
        for i, call in enumerate(allowed[rid]):
            if call["name"] not in offered:
                raise RecordError(
                    "function", f"its ground truth (call {i} in {answer_file}) calls {call['name']!r}, not offered"
                )
        meta["allowed_calls"] = allowed[rid]
        meta["arguments_checked"] = True
        meta["scoring"] = CALLS_SCORING
    return Case(
        id=f"bfcl_{rid}",
        category=CATEGORIES[category],
        split=split,
        expected_action=expected,
        messages=messages,
        tools=tools,
        acceptable=acceptable,
        meta=meta,
    )


def _read_allowed_calls(answer_file: Path) -> dict[str, list[dict[str, Any]]]:
    """BFCL's possible_answer file of a single-turn category: {"id": ..., "ground_truth": [{function: {param:
    [allowed values]}}, ...]} per line -> id -> [{"name": function, "arguments": {param: [allowed values]}}]."""
    file = str(answer_file)
    out: dict[str, list[dict[str, Any]]] = {}
    problems: list[Problem] = []
    for record in read_records(answer_file):
        rid, truth = record.data.get("id"), record.data.get("ground_truth")
        try:
            if not isinstance(rid, str):
                raise RecordError("id", f"expected a string, got {kind(rid)}")
            out[rid] = _allowed_calls(truth)
        except RecordError as err:
            problems.append(Problem(file, record.line, err.field, err.message))
    if problems:
        raise InputError(problems)
    return out


def _allowed_calls(truth: Any) -> list[dict[str, Any]]:
    if not isinstance(truth, list) or not truth:
        raise RecordError("ground_truth", f"expected a non-empty array of calls, got {kind(truth)}")
    calls = []
    for i, call in enumerate(truth):
        where = f"ground_truth[{i}]"
        if not isinstance(call, dict) or len(call) != 1:
            raise RecordError(where, "expected an object holding one function name")
        ((name, params),) = call.items()
        if not isinstance(params, dict):
            raise RecordError(f"{where}.{name}", f"expected an object of parameters, got {kind(params)}")
        for param, values in params.items():
            if not isinstance(values, list):
                raise RecordError(f"{where}.{name}.{param}", f"expected an array of allowed values, got {kind(values)}")
        calls.append({"name": name, "arguments": params})
    return calls
