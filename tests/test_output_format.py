"""The agent output format: rendering, the parser's rules, round trips and fuzzing."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolprior.actions import ACTION_TAGS, Action
from toolprior.cases import GoldTurn, ToolCall, ToolSpec
from toolprior.output_format import (
    PARSERS,
    ParsedTurn,
    get_parser,
    parse_json_calls,
    parse_turn,
    render_tool_call,
    render_turn,
    think_text,
)

SHIP = ToolSpec(
    name="verify_shipment_receipt",
    description="Verify that a shipment was received.",
    parameters={
        "type": "object",
        "properties": {"shipment_id": {"type": "string"}, "note": {"type": "string"}},
        "required": ["shipment_id"],
    },
)
OPEN_TOOLS = ToolSpec(name="search", description="", parameters={"type": "object", "additionalProperties": True})
CALL = '{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SHP-1030"}}'


# ------------------------------------------------------------------------------------------------------- rendering


def test_render_turn_exact_text():
    clarify = GoldTurn(think="Two match.", action=Action.CLARIFY, content="Which one?")
    assert render_turn(clarify) == "<think>Two match.</think><clarify>Which one?</clarify>"
    calls = (ToolCall("f", {"a": 1}), ToolCall("g", {"b": "é"}))
    turn = GoldTurn(think="t", action=Action.CALL_TOOL, tool_calls=calls)
    assert render_turn(turn) == (
        '<think>t</think><tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>\n'
        '<tool_call>{"name": "g", "arguments": {"b": "é"}}</tool_call>'
    )
    assert render_tool_call(calls[1]) == '<tool_call>{"name": "g", "arguments": {"b": "é"}}</tool_call>'


# ---------------------------------------------------------------------------------------------------- parse rules


@pytest.mark.parametrize("action", list(Action))
def test_each_action_parses(action):
    if action is Action.CALL_TOOL:
        turn = GoldTurn(think="x", action=action, tool_calls=(ToolCall("f", {}),))
    else:
        turn = GoldTurn(think="x", action=action, content="some text")
    parsed = parse_turn(render_turn(turn))
    assert parsed.ok, parsed.problems
    assert (parsed.action, parsed.content, parsed.tool_calls) == (action, turn.content, turn.tool_calls)


def test_empty_output():
    for text in ("", "   \n", "<|end|>", "  <|end|><think>x</think><answer>y</answer>"):
        parsed = parse_turn(text)
        assert parsed.action is None and parsed.think is None
        assert parsed.problems == ("empty output",)
        assert not parsed.ok
        assert parsed.raw == text


def test_plain_text_has_no_action():
    parsed = parse_turn("Sure, shipment SHP-1030 arrived.")
    assert parsed.action is None and parsed.think is None
    assert "no action block" in parsed.problems and "no think block" in parsed.problems


def test_trailing_end_marker_and_run_on_are_dropped():
    text = "<think>a</think><clarify>Which?</clarify><|end|>\n<|user|>\nSHP-1<|end|><think>"
    parsed = parse_turn(text)
    assert parsed.ok and parsed.content == "Which?" and parsed.raw == text
    assert parse_turn("<think>a</think><answer>b</answer><|endoftext|>junk").ok


def test_unicode():
    text = "<think>Ünïcödé 思考 🚚\n</think><answer>Доставлено ✅ — 配送済み</answer>"
    parsed = parse_turn(text)
    assert parsed.ok
    assert parsed.think == "Ünïcödé 思考 🚚\n" and parsed.content == "Доставлено ✅ — 配送済み"
    call = parse_turn('<think>x</think><tool_call>{"name": "f", "arguments": {"q": "über 🚚"}}</tool_call>')
    assert call.tool_calls == (ToolCall("f", {"q": "über 🚚"}),)


def test_two_tool_calls_are_one_action():
    text = (
        f'<think>both</think><tool_call>{CALL}</tool_call>\n<tool_call>{{"name": "g", "arguments": {{}}}}</tool_call>'
    )
    parsed = parse_turn(text)
    assert parsed.ok
    assert parsed.action is Action.CALL_TOOL
    assert [c.name for c in parsed.tool_calls] == ["verify_shipment_receipt", "g"]


def test_text_between_tool_calls_keeps_both_calls():
    parsed = parse_turn(f"<think>x</think><tool_call>{CALL}</tool_call> and then <tool_call>{CALL}</tool_call>")
    assert len(parsed.tool_calls) == 2
    assert parsed.problems == ("text between tool_call blocks: 'and then'",)


def test_truncated_json():
    parsed = parse_turn(
        '<think>x</think><tool_call>{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SH'
    )
    assert parsed.action is Action.CALL_TOOL
    assert parsed.tool_calls == ()
    assert parsed.problems == (
        "tool_call 1: block not closed",
        "tool_call 1: invalid JSON: Unterminated string (col 66)",
    )


def test_unclosed_tool_call_with_complete_json_keeps_the_call():
    parsed = parse_turn(f"<think>x</think><tool_call>{CALL}")
    assert parsed.tool_calls == (ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-1030"}),)
    assert parsed.problems == ("tool_call 1: block not closed",)


def test_second_call_broken_first_kept():
    parsed = parse_turn(f'<think>x</think><tool_call>{CALL}</tool_call><tool_call>{{"name": </tool_call>')
    assert parsed.action is Action.CALL_TOOL and len(parsed.tool_calls) == 1
    assert len(parsed.problems) == 1 and parsed.problems[0].startswith("tool_call 2: invalid JSON: ")


@pytest.mark.parametrize(
    ("payload", "problem", "kept"),
    [
        ("[1, 2]", "tool_call 1: expected a JSON object, got array", False),
        ('"f"', "tool_call 1: expected a JSON object, got string", False),
        ('{"arguments": {}}', 'tool_call 1: missing or non-string "name"', False),
        ('{"name": 3, "arguments": {}}', 'tool_call 1: missing or non-string "name"', False),
        ('{"name": "f"}', 'tool_call 1: missing "arguments" (taken as {})', True),
        ('{"name": "f", "arguments": "{}"}', 'tool_call 1: "arguments" must be an object, got string', False),
        ('{"name": "f", "arguments": {}, "id": "c1"}', "tool_call 1: unexpected key 'id'", True),
        ("", "tool_call 1: empty", False),
        ('{"name": "f", "arguments": {}} {}', "tool_call 1: invalid JSON: Extra data (col 32)", False),
    ],
)
def test_bad_tool_call_objects(payload, problem, kept):
    parsed = parse_turn(f"<think>x</think><tool_call>{payload}</tool_call>")
    assert parsed.action is Action.CALL_TOOL
    assert parsed.problems == (problem,)
    assert len(parsed.tool_calls) == (1 if kept else 0)


def test_missing_arguments_taken_as_empty():
    parsed = parse_turn('<think>x</think><tool_call>{"name": "f"}</tool_call>')
    assert parsed.tool_calls == (ToolCall("f", {}),)


def test_multiline_json_error_names_the_line():
    parsed = parse_turn('<think>x</think><tool_call>{"name": "f",\n "arguments": {,}}</tool_call>')
    assert parsed.problems == (
        "tool_call 1: invalid JSON: Expecting property name enclosed in double quotes (line 2 col 16)",
    )


def test_tools_given_unknown_tool_and_arguments():
    text = (
        '<think>x</think><tool_call>{"name": "foo", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "verify_shipment_receipt", "arguments": {"color": "red"}}</tool_call>'
        '<tool_call>{"name": "search", "arguments": {"anything": 1}}</tool_call>'
    )
    parsed = parse_turn(text, tools=[SHIP, OPEN_TOOLS])
    assert len(parsed.tool_calls) == 3
    assert parsed.problems == (
        "tool_call 1: unknown tool 'foo'",
        "tool_call 2: missing required argument 'shipment_id'",
        "tool_call 2: unknown argument 'color'",
    )
    assert parse_turn(f"<think>x</think><tool_call>{CALL}</tool_call>", tools=[SHIP]).ok
    assert not parse_turn(f"<think>x</think><tool_call>{CALL}</tool_call>", tools=[]).ok


def test_tools_as_dicts():
    openai_style = [{"type": "function", "function": SHIP.to_dict()}]
    assert parse_turn(f"<think>x</think><tool_call>{CALL}</tool_call>", tools=[SHIP.to_dict()]).ok
    assert parse_turn(f"<think>x</think><tool_call>{CALL}</tool_call>", tools=openai_style).ok
    twice = f"<think>x</think><tool_call>{CALL}</tool_call><tool_call>{CALL}</tool_call>"
    assert parse_turn(twice, tools=iter([SHIP])).ok  # an iterator is read once, not once per call


def test_nested_tags_outer_block_decides():
    parsed = parse_turn(f"<think>x</think><clarify><tool_call>{CALL}</tool_call></clarify>")
    assert parsed.action is Action.CLARIFY and parsed.tool_calls == ()
    assert parsed.content == f"<tool_call>{CALL}</tool_call>"
    assert parsed.problems == ("clarify block contains tag <tool_call>; the outer block counts",)
    inner = parse_turn("<think>x</think><tool_call><answer>hi</answer></tool_call>")
    assert inner.action is Action.CALL_TOOL
    assert "tool_call 1: block contains tag <answer>; the outer block counts" in inner.problems


def test_several_action_blocks_first_counts():
    parsed = parse_turn(f"<think>x</think><clarify>Which?</clarify><tool_call>{CALL}</tool_call>")
    assert parsed.action is Action.CLARIFY and parsed.content == "Which?" and parsed.tool_calls == ()
    assert parsed.problems == ("2 action blocks: clarify then tool_call; the first one counts",)
    three = parse_turn(f"<think>x</think><tool_call>{CALL}</tool_call><answer>a</answer><refuse>r</refuse>")
    assert three.action is Action.CALL_TOOL and len(three.tool_calls) == 1
    assert three.problems == ("3 action blocks: tool_call then answer then refuse; the first one counts",)
    calls_after = parse_turn(
        f"<think>x</think><answer>a</answer><tool_call>{CALL}</tool_call>\n<tool_call>{CALL}</tool_call>"
    )
    assert calls_after.problems == ("2 action blocks: answer then tool_call; the first one counts",)


def test_unclosed_think():
    parsed = parse_turn("<think>I should ask <clarify>which")
    assert parsed.action is None
    assert parsed.think == "I should ask <clarify>which"
    assert parsed.problems == ("think block not closed", "think block contains tag <clarify>")


def test_unclosed_action_block():
    parsed = parse_turn("<think>x</think><clarify>Which shipment")
    assert parsed.action is Action.CLARIFY and parsed.content == "Which shipment"
    assert parsed.problems == ("<clarify> block not closed",)


def test_think_not_opened():
    parsed = parse_turn("reasoning here</think><escalate>Handing off.</escalate>")
    assert parsed.think == "reasoning here" and parsed.action is Action.ESCALATE
    assert parsed.problems == ("think block not opened (the text before </think> is taken as think)",)


def test_missing_think_block():
    parsed = parse_turn("<refuse>No.</refuse>")
    assert parsed.think is None and parsed.action is Action.REFUSE and parsed.content == "No."
    assert parsed.problems == ("no think block",)


def test_think_without_action():
    parsed = parse_turn("<think>hmm</think>")
    assert parsed.think == "hmm" and parsed.action is None
    assert parsed.problems == ("no action block",)


def test_text_outside_blocks():
    assert parse_turn("Hi <think>x</think><answer>a</answer>").problems == ("text before the think block: 'Hi'",)
    assert parse_turn("<think>x</think> so <answer>a</answer>").problems == (
        "text between the think block and the action block: 'so'",
    )
    assert parse_turn("<think>x</think><answer>a</answer> bye").problems == ("text after the action block: 'bye'",)
    assert parse_turn("<think>x</think>blah").problems == ("no action block", "text outside any block: 'blah'")
    # whitespace outside the blocks is fine
    assert parse_turn("\n <think>x</think>\n<answer>a</answer>\n ").ok
    long = parse_turn("<think>x</think><answer>a</answer>" + "z" * 100).problems[0]
    assert long == f"text after the action block: '{'z' * 37}...'"


def test_think_text():
    assert think_text("<think>abc</think><answer>d</answer>") == "abc"
    assert think_text("no think") is None
    assert think_text("<think>unclosed") == "unclosed"


def test_non_str_input_does_not_raise():
    parsed = parse_turn(None)  # type: ignore[arg-type]
    assert parsed.action is None and parsed.problems == ("expected a str, got NoneType",)


def test_parsed_turn_ok_needs_an_action():
    assert not ParsedTurn(None, None, "", (), (), "").ok
    assert ParsedTurn(Action.CLARIFY, "t", "c", (), (), "").ok


def test_parsed_turn_to_dict():
    text = f"<think>x</think><tool_call>{CALL}</tool_call> junk"
    record = parse_turn(text).to_dict()
    assert json.loads(json.dumps(record)) == {
        "action": "call_tool",
        "think": "x",
        "content": "",
        "tool_calls": [{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SHP-1030"}}],
        "problems": ["text after the action block: 'junk'"],
        "raw": text,
    }
    assert parse_turn("").to_dict()["action"] is None


# ------------------------------------------------------------------------------------------------- foreign parser


def test_parser_registry():
    assert get_parser("toolprior") is parse_turn
    assert get_parser("json_calls") is parse_json_calls
    assert set(PARSERS) == {"toolprior", "json_calls"}
    with pytest.raises(ValueError, match=r"unknown output parser 'nope'; expected one of json_calls, toolprior"):
        get_parser("nope")


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "f", "arguments": {"a": 1}}',
        '{"name": "f", "parameters": {"a": 1}}',
        '[{"name": "f", "arguments": {"a": 1}}]',
        '{"type": "function", "function": {"name": "f", "arguments": "{\\"a\\": 1}"}}',
        '{"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": {"a": 1}}}]}',
        '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
        '<think>need data</think>\n\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call><|end|>',
        'I will call it:\n```json\n{"name": "f", "arguments": {"a": 1}}\n```',
    ],
)
def test_json_calls_recognises_calls(text):
    parsed = parse_json_calls(text)
    assert parsed.action is Action.CALL_TOOL
    assert parsed.tool_calls == (ToolCall("f", {"a": 1}),)
    assert parsed.problems == ()


def test_json_calls_several_and_checks():
    text = (
        '<tool_call>{"name": "f", "arguments": {}}</tool_call>\n<tool_call>{"name": "g", "arguments": {}}</tool_call>'
    )
    parsed = parse_json_calls(text, tools=[{"name": "f", "parameters": {"type": "object", "properties": {}}}])
    assert [c.name for c in parsed.tool_calls] == ["f", "g"]
    assert parsed.problems == ("tool_call 2: unknown tool 'g'",)
    broken = parse_json_calls('<tool_call>{"name": "f", "argu')
    assert broken.action is Action.CALL_TOOL and broken.tool_calls == ()
    assert broken.problems[0].startswith("tool_call 1: invalid JSON")


def test_json_calls_plain_text_is_an_answer():
    parsed = parse_json_calls("<think>easy</think>Which shipment do you mean?")
    assert parsed.action is Action.ANSWER_DIRECTLY  # never guessed as clarify
    assert parsed.content == "Which shipment do you mean?" and parsed.think == "easy" and parsed.ok
    # JSON that is not a call is text, and objects nested in it are not read as calls
    data = parse_json_calls('Result: {"result": {"name": "f", "arguments": {}}}')
    assert data.action is Action.ANSWER_DIRECTLY
    assert parse_json_calls("").problems == ("empty output",)
    assert parse_json_calls("<think>unclosed").action is None


# ------------------------------------------------------------------------------------------- properties (hypothesis)

SAFE_TEXT = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=30)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SAFE_TEXT, inner, max_size=3),
    max_leaves=8,
)
TOOL_CALLS = st.builds(
    ToolCall,
    name=st.text(alphabet=st.characters(blacklist_characters="<>"), min_size=1, max_size=20),
    arguments=st.dictionaries(SAFE_TEXT, JSON_VALUES, max_size=4),
)


@st.composite
def gold_turns(draw) -> GoldTurn:
    action = draw(st.sampled_from(list(Action)))
    think = draw(SAFE_TEXT)
    if action is Action.CALL_TOOL:
        return GoldTurn(
            think=think, action=action, tool_calls=tuple(draw(st.lists(TOOL_CALLS, min_size=1, max_size=3)))
        )
    return GoldTurn(think=think, action=action, content=draw(SAFE_TEXT))


@settings(max_examples=300, deadline=None)
@given(gold_turns())
def test_round_trip(gold):
    parsed = parse_turn(render_turn(gold))
    assert parsed.problems == ()
    assert parsed.action == gold.action
    assert parsed.think == gold.think
    assert parsed.content == gold.content
    assert parsed.tool_calls == gold.tool_calls


TAG_VOCAB = (
    [f"<{t}>" for t in ("think", *ACTION_TAGS.values())]
    + [f"</{t}>" for t in ("think", *ACTION_TAGS.values())]
    + ["<|end|>", "<|endoftext|>", "{", "}", "[", '"', ":", ",", "\n", "<", ">", "</"]
)


# Drawing structured examples through hypothesis costs ~2 ms each; the mutation fuzz instead draws one seed per
# example and builds the text with `random.Random(seed)`, so 2,000 examples take about a second (a failure still
# reports its seed).
_CHARS = "ab xyz09é思🚚\n\t\"\\{}[]:,'/|-"


def _random_text(rng: random.Random, max_len: int = 12) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, max_len)))


def _random_json(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randint(0, 6 if depth < 2 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(10**6), 10**6)
    if kind == 3:
        return rng.uniform(-1e3, 1e3)
    if kind == 4:
        return _random_text(rng)
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {_random_text(rng, 5): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def random_gold(rng: random.Random) -> GoldTurn:
    action = rng.choice(list(Action))
    think = _random_text(rng, 30)
    if action is Action.CALL_TOOL:
        names = ["verify_shipment_receipt", "search", "f", "ü"]
        calls = tuple(
            ToolCall(rng.choice(names), {rng.choice(["shipment_id", "note", "q"]): _random_json(rng)})
            for _ in range(rng.randint(1, 3))
        )
        return GoldTurn(think=think, action=action, tool_calls=calls)
    return GoldTurn(think=think, action=action, content=_random_text(rng, 30))


def mutate(rng: random.Random, text: str) -> str:
    """Random truncations, insertions from the tag vocabulary and deletions."""
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(("truncate", "insert", "insert", "delete"))
        i = rng.randint(0, len(text))
        if op == "truncate":
            text = text[:i]
        elif op == "insert":
            text = text[:i] + rng.choice(TAG_VOCAB) + text[i:]
        else:
            text = text[:i] + text[rng.randint(i, len(text)) :]
    return text


def test_random_gold_renders_round_trip():
    rng = random.Random(0)
    for _ in range(200):
        gold = random_gold(rng)
        parsed = parse_turn(render_turn(gold))
        assert parsed.ok and parsed.tool_calls == gold.tool_calls and parsed.content == gold.content


def _check_invariants(parsed: ParsedTurn, text: str) -> None:
    assert isinstance(parsed, ParsedTurn)
    assert parsed.raw == text
    assert all(isinstance(p, str) and p for p in parsed.problems)
    assert not any(p.startswith("internal parser error") for p in parsed.problems)
    if parsed.action is not Action.CALL_TOOL:
        assert parsed.tool_calls == ()
    if parsed.action is None:
        assert parsed.content == ""
    if parsed.ok:
        assert parsed.action is not None
    json.dumps([c.to_dict() for c in parsed.tool_calls])  # calls hold plain JSON


FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_fuzz_arbitrary_text_never_raises(text):
    for parser in PARSERS.values():
        _check_invariants(parser(text), text)
    _check_invariants(parse_turn(text, tools=[SHIP]), text)


@FUZZ
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_fuzz_mutated_renders_never_raise(seed):
    rng = random.Random(seed)
    text = mutate(rng, render_turn(random_gold(rng)))
    for parser in PARSERS.values():
        _check_invariants(parser(text), text)
    _check_invariants(parse_turn(text, tools=[SHIP, OPEN_TOOLS]), text)


@FUZZ
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_fuzz_tag_soup_never_raises(seed):
    rng = random.Random(seed)
    text = "".join(
        rng.choice(TAG_VOCAB) if rng.random() < 0.5 else _random_text(rng, 4) for _ in range(rng.randint(0, 12))
    )
    for parser in PARSERS.values():
        _check_invariants(parser(text), text)
