"""The organism's tokenizer and chat template: single-token tags, Unicode, assistant masks, padding, cases."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolprior.actions import ACTION_TAGS, Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.chat_template import CHAT_TEMPLATE, case_to_chat, gold_chat, render_prompt, template_hash
from toolprior.output_format import parse_turn, render_turn
from toolprior.tokenizer import (
    FORMAT_TOKENS,
    MIN_VOCAB_SIZE,
    SPECIAL_TOKENS,
    action_tag_token_ids,
    train_tokenizer,
)

VOCAB = 600
TOOL = ToolSpec(
    name="verify_shipment_receipt",
    description="Verify that a shipment was received.",
    parameters={"type": "object", "properties": {"shipment_id": {"type": "string"}}, "required": ["shipment_id"]},
)


def _corpus(n: int = 300) -> list[str]:
    rng = random.Random(0)
    words = [
        "the",
        "shipment",
        "order",
        "refund",
        "which",
        "one",
        "please",
        "check",
        "arrived",
        "SHP-1030",
        "über",
        "配送",
    ]
    out = []
    for i in range(n):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        tag = rng.choice(list(ACTION_TAGS.values()))
        out.append(f"<|user|>\n{sentence}<|end|>\n<|assistant|>\n<think>{i}</think><{tag}>{sentence}?</{tag}><|end|>")
    return out


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(_corpus(), vocab_size=VOCAB)


def _two_turn_chat() -> tuple[list[dict], list[dict], list[str]]:
    first = render_turn(
        GoldTurn(
            think="One shipment matches.",
            action=Action.CALL_TOOL,
            tool_calls=(ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-1030"}),),
        )
    )
    second = render_turn(GoldTurn(think="It arrived.", action=Action.ANSWER_DIRECTLY, content="Yes, it arrived ✅."))
    messages = [
        {"role": "system", "content": "You are a logistics assistant."},
        {"role": "user", "content": "Did SHP-1030 arrive?"},
        {"role": "assistant", "content": first},
        {"role": "tool", "name": "verify_shipment_receipt", "content": '{"received": true}'},
        {"role": "assistant", "content": second},
    ]
    return messages, [TOOL.to_dict()], [first, second]


# ---------------------------------------------------------------------------------------------------------- tokenizer


def test_format_and_special_tokens_are_single_ids(tok):
    assert len(tok) == VOCAB
    for token in (*FORMAT_TOKENS, *SPECIAL_TOKENS):
        ids = tok.encode(token, add_special_tokens=False)
        assert len(ids) == 1, token
        assert tok.convert_ids_to_tokens(ids[0]) == token
    special_ids = set(tok.all_special_ids)
    assert {tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS} <= special_ids
    assert not {tok.convert_tokens_to_ids(t) for t in FORMAT_TOKENS} & special_ids
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|end|>"


def test_tags_split_out_in_context(tok):
    text = '<think>a</think><tool_call>{"name": "f"}</tool_call><|end|>'
    tokens = tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))
    assert tokens[:4] == ["<think>", "a", "</think>", "<tool_call>"]
    assert tokens[-2:] == ["</tool_call>", "<|end|>"]


def test_no_merges_learned_across_added_tokens(tok):
    added = set(SPECIAL_TOKENS) | set(FORMAT_TOKENS)
    learned = [t for t in tok.get_vocab() if t not in added]
    assert not [t for t in learned if "<|" in t or "think>" in t or "</" in t]


def test_decode_keeps_format_tokens_and_drops_special_ones(tok):
    ids = tok.encode("<think>x</think><refuse>No.</refuse><|end|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "<think>x</think><refuse>No.</refuse>"
    assert tok.decode(ids, skip_special_tokens=False) == "<think>x</think><refuse>No.</refuse><|end|>"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_unicode_round_trips(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=False) == text


def test_unicode_examples(tok):
    for text in ("über 配送 🚚 ✅", "\x00\t\r\n  ", "Ω≈ç√∫ <clarify>Доставлено?</clarify>", "\U0010ffff"):
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_left_padding_is_default(tok):
    assert tok.padding_side == "left"
    batch = tok(["hello", "the shipment arrived today"], padding=True)
    short = batch["input_ids"][0]
    n_pad = len(short) - len(tok.encode("hello", add_special_tokens=False))
    assert n_pad > 0
    assert short[:n_pad] == [tok.pad_token_id] * n_pad
    assert batch["attention_mask"][0][:n_pad] == [0] * n_pad


def test_training_is_deterministic(tok):
    again = train_tokenizer(_corpus(), vocab_size=VOCAB)
    assert again.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


def test_vocab_size_too_small():
    with pytest.raises(ValueError, match="at least"):
        train_tokenizer(["abc"], vocab_size=MIN_VOCAB_SIZE - 1)


def test_save_and_reload(tok, tmp_path):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.padding_side == "left"
    assert loaded.chat_template == CHAT_TEMPLATE
    assert loaded.pad_token == "<|pad|>" and loaded.eos_token == "<|end|>"
    text = "<think>é</think><clarify>Which?</clarify><|end|>"
    assert loaded.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    assert loaded.decode(loaded.encode(text), skip_special_tokens=True) == text.removesuffix("<|end|>")


# ---------------------------------------------------------------------------------------------------- action tag ids


def test_action_tag_token_ids_on_the_organism(tok):
    ids = action_tag_token_ids(tok)
    assert set(ids) == set(Action)
    for action, token_id in ids.items():
        assert tok.convert_ids_to_tokens(token_id) == f"<{action.tag}>"
    assert len(set(ids.values())) == len(Action)


class _FakeTokenizer:
    """`</think>` is one token (id 1); any other text is one token per character (its code point + 100)."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out = []
        for piece in re.split(r"(</think>)", text):
            out += [1] if piece == "</think>" else [ord(c) + 100 for c in piece]
        return out


class _PrefixTokenizer(_FakeTokenizer):
    """Tags start with a `<x` token whose id depends on the tag's first letter; the tag's rest is one token each."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out = []
        for piece in re.split(r"(</think>)", text):
            if piece == "</think>":
                out.append(1)
            elif piece.startswith("<") and len(piece) > 1:
                out += [1000 + ord(piece[1])] + [ord(c) + 100 for c in piece[2:]]
            else:
                out += [ord(c) + 100 for c in piece]
        return out


def test_action_tag_token_ids_on_multi_token_tags():
    # every tag starts with "<": the decision token is the one after it, where the tags part
    # (toolprior.decision_point; real tokenizers in tests/test_decision_point.py)
    ids = action_tag_token_ids(_FakeTokenizer())
    assert ids[Action.CLARIFY] == ord("c") + 100 and ids[Action.CALL_TOOL] == ord("t") + 100
    ids = action_tag_token_ids(_PrefixTokenizer())
    assert ids[Action.CLARIFY] == 1000 + ord("c") and ids[Action.REFUSE] == 1000 + ord("r")


# ------------------------------------------------------------------------------------------------------- chat template


def test_template_text(tok):
    messages, tools, turns = _two_turn_chat()
    text = tok.apply_chat_template(messages, tools=tools, tokenize=False)
    assert text == (
        "<|system|>\nYou are a logistics assistant.\n\n# Tools (* = required)\n"
        "- verify_shipment_receipt(shipment_id*: string): Verify that a shipment was received.<|end|>\n"
        "<|user|>\nDid SHP-1030 arrive?<|end|>\n"
        f"<|assistant|>\n{turns[0]}<|end|>\n"
        '<|tool|>\n[verify_shipment_receipt]\n{"received": true}<|end|>\n'
        f"<|assistant|>\n{turns[1]}<|end|>\n"
    )
    # OpenAI-style tool entries render the same line
    wrapped = [{"type": "function", "function": t} for t in tools]
    assert tok.apply_chat_template(messages, tools=wrapped, tokenize=False) == text


def test_template_without_system_or_tools(tok):
    user = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(user, tokenize=False) == "<|user|>\nhi<|end|>\n"
    with_tools = tok.apply_chat_template(user, tools=[TOOL.to_dict()], tokenize=False)
    assert with_tools.startswith("<|system|>\n# Tools (* = required)\n- ") and with_tools.endswith(
        "<|end|>\n<|user|>\nhi<|end|>\n"
    )
    assert tok.apply_chat_template([{"role": "tool", "content": "{}"}], tokenize=False) == "<|tool|>\n{}<|end|>\n"


def test_template_markers_are_special_tokens():
    assert set(re.findall(r"<\|\w+\|>", CHAT_TEMPLATE)) <= set(SPECIAL_TOKENS)


def test_unknown_role_raises(tok):
    with pytest.raises(Exception, match="unknown chat role: robot"):
        tok.apply_chat_template([{"role": "robot", "content": "x"}], tokenize=False)


def test_add_generation_prompt(tok):
    messages, tools, _ = _two_turn_chat()
    text = tok.apply_chat_template(messages[:2], tools=tools, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|end|>\n<|assistant|>\n")
    plain = tok.apply_chat_template(messages[:2], tools=tools, tokenize=False)
    assert text == plain + "<|assistant|>\n"


def test_assistant_mask_covers_exactly_the_assistant_turns(tok):
    messages, tools, turns = _two_turn_chat()
    out = tok.apply_chat_template(
        messages, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(mask) == len(ids) and set(mask) == {0, 1}

    # expected: the tokens whose characters lie inside each assistant content + <|end|>
    text = tok.apply_chat_template(messages, tools=tools, tokenize=False)
    spans = []
    for turn in turns:
        start = text.index(f"<|assistant|>\n{turn}<|end|>") + len("<|assistant|>\n")
        spans.append((start, start + len(turn) + len("<|end|>")))
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == ids
    expected = [int(any(s <= a and b <= e for s, e in spans)) for a, b in enc["offset_mapping"]]
    assert mask == expected

    # two runs, each decoding to the turn + <|end|>, each preceded by the "<|assistant|>\n" header
    runs, current, starts = [], [], []
    for i, (token_id, m) in enumerate(zip(ids, mask, strict=True)):
        if m:
            if not current:
                starts.append(i)
            current.append(token_id)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    assert [tok.decode(r, skip_special_tokens=False) for r in runs] == [t + "<|end|>" for t in turns]
    for i in starts:
        assert tok.convert_ids_to_tokens(ids[i - 2 : i]) == ["<|assistant|>", "Ċ"]
    assert runs[0][-1] == tok.eos_token_id
    # what the model learns to produce parses back to the gold turn
    assert parse_turn(tok.decode(runs[0], skip_special_tokens=False), tools=tools).ok


# ------------------------------------------------------------------------------------------------------------- cases


def _case(gold: GoldTurn | None = None) -> Case:
    return Case(
        id="clarification_loop_0001",
        category="clarification_loop",
        split="eval",
        expected_action=Action.CLARIFY,
        messages=(
            Message("system", "You are a logistics assistant."),
            Message("user", "Check SHP-1030."),
            Message("assistant", render_turn(GoldTurn("x", Action.CALL_TOOL, tool_calls=(ToolCall("f", {}),)))),
            Message("tool", '{"ok": true}', name="verify_shipment_receipt"),
        ),
        tools=(TOOL,),
        gold=gold,
    )


def test_case_to_chat():
    messages, tools = case_to_chat(_case())
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[3] == {"role": "tool", "content": '{"ok": true}', "name": "verify_shipment_receipt"}
    assert "name" not in messages[1]
    assert tools == [TOOL.to_dict()]


def test_gold_chat():
    gold = GoldTurn(think="Which?", action=Action.CLARIFY, content="Which shipment?")
    messages, tools = gold_chat(_case(gold))
    assert messages[-1] == {"role": "assistant", "content": render_turn(gold)}
    assert messages[:-1] == case_to_chat(_case(gold))[0] and tools == [TOOL.to_dict()]
    with pytest.raises(ValueError, match="no gold turn"):
        gold_chat(_case())


def test_render_prompt_is_a_token_prefix_of_the_gold_chat(tok):
    gold = GoldTurn(think="Which?", action=Action.CLARIFY, content="Which shipment?")
    case = _case(gold)
    prompt = render_prompt(tok, case)
    assert prompt.endswith('<|tool|>\n[verify_shipment_receipt]\n{"ok": true}<|end|>\n<|assistant|>\n')
    messages, tools = gold_chat(case)
    full = tok.apply_chat_template(messages, tools=tools, tokenize=False)
    assert full == prompt + render_turn(gold) + "<|end|>\n"
    # TRL's prompt-completion path needs the tokenized prompt to be a prefix of the tokenized whole
    prompt_ids = tok.encode(prompt, add_special_tokens=False)
    assert tok.encode(full, add_special_tokens=False)[: len(prompt_ids)] == prompt_ids


def test_template_hash():
    h = template_hash(CHAT_TEMPLATE)
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert h == template_hash(CHAT_TEMPLATE)
    assert h != template_hash(CHAT_TEMPLATE + " ")


def test_tool_signatures_show_required_marks_enums_and_optional_params(tok):
    tool = {
        "name": "record_consent",
        "description": "Record a consent decision.",
        "parameters": {
            "type": "object",
            "properties": {
                "subject_id": {"type": "string"},
                "purpose": {"type": "string", "enum": ["marketing", "analytics"]},
                "note": {"type": "string"},
                "weird": {},
            },
            "required": ["subject_id", "purpose"],
        },
    }
    text = tok.apply_chat_template([{"role": "user", "content": "x"}], tools=[tool], tokenize=False)
    line = "- record_consent(subject_id*: string, purpose*: marketing|analytics, note: string, weird: any): Record a consent decision."
    assert line in text
