"""The decision point on real tokenizers: single-token tags (the organism), tags split into BPE pieces after a
`</think>` token, and a vocabulary where `</think><` merges across the boundary. Positions, the logit gap and
from_decision steering are read where the tags' tokens part, on left-padded batches of mixed lengths."""

from __future__ import annotations

import random

import pytest
import torch

from tests.conftest import make_tiny_qwen3, recorded
from toolprior.actions import ACTION_TAGS, Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.chat_template import render_prompt
from toolprior.decision_point import DecisionTokens, decision_tokens
from toolprior.evals.generation import generate
from toolprior.generation_batch import GenerationBatch
from toolprior.modeling import decoder_layers
from toolprior.probes.capture import case_texts
from toolprior.probes.logit_lens import logit_lens
from toolprior.probes.positions import MissingThinkError, compute_positions
from toolprior.probes.twins import metric_token_ids, twin_text
from toolprior.steering.apply import Steering, steer, steering_factory
from toolprior.steering.vector import SteeringVector
from toolprior.tokenizer import action_tag_token_ids, train_tokenizer

VERIFY = ToolSpec(
    name="verify",
    description="Verify a shipment.",
    parameters={"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
)
WORDS = ["shipment", "invoice", "pending", "verify", "which", "one", "refund", "status", "customer", "clarify"]


def _corpus() -> list[str]:
    """Turns in the agent format, so BPE learns the tags' pieces (and, without added tags, `</`, `think`, `><`)."""
    rng = random.Random(0)
    texts = []
    for _ in range(300):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        tag = rng.choice(list(ACTION_TAGS.values()))
        texts.append(f"<think>{body}</think><{tag}>{body}</{tag}>")
    return texts


@pytest.fixture(scope="module")
def split_tokenizer():
    """`<think>` / `</think>` are tokens, the action tags are not (as on a real model's vocabulary)."""
    return train_tokenizer(_corpus(), vocab_size=600, format_tokens=("<think>", "</think>"))


@pytest.fixture(scope="module")
def merged_tokenizer():
    """No format token added: `</think>` is BPE pieces and `>` merges with the tags' `<` into `><`."""
    return train_tokenizer(_corpus(), vocab_size=600, format_tokens=())


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def make_case(cid: str, system: str, user: str, action: Action, think: str) -> Case:
    calls = (ToolCall("verify", {"id": "SHP-1030"}),) if action is Action.CALL_TOOL else ()
    return Case(
        id=cid,
        category="clarification_loop",
        split="mine",
        expected_action=action,
        messages=(Message("system", system), Message("user", user)),
        tools=(VERIFY,),
        gold=GoldTurn(think, action, content="" if calls else "Which shipment?", tool_calls=calls),
    )


# Mixed lengths, so every batch below is left padded.
CASES = (
    make_case("amb", "Pending: SHP-1029 and SHP-1030.", "check it", Action.CLARIFY, "Two match; ask which one."),
    make_case("one", "Pending: SHP-1030.", "check the shipment status now", Action.CALL_TOOL, "One matches."),
    make_case("ans", "You help with invoices and refunds.", "hi", Action.ANSWER_DIRECTLY, "Just greet them back."),
)


def occurrences(row: list[int], pattern: tuple[int, ...]) -> list[int]:
    n = len(pattern)
    return [i for i in range(len(row) - n + 1) if tuple(row[i : i + n]) == pattern]


# ------------------------------------------------------------------------------------------------- the definition


def test_single_token_tags_decide_at_the_think_close(tiny_tokenizer):
    dt = decision_tokens(tiny_tokenizer)
    assert dt.shared == tuple(encode(tiny_tokenizer, "</think>")) and len(dt.shared) == 1
    assert dt.suffix == "" and dt.text == "</think>"
    for action, tag in ACTION_TAGS.items():
        assert dt.per_action[action] == tiny_tokenizer.convert_tokens_to_ids(f"<{tag}>")
    assert action_tag_token_ids(tiny_tokenizer) == dict(dt.per_action)
    # positions unchanged: the `</think>` token of each (left-padded, mixed-length) row
    texts = case_texts(tiny_tokenizer, CASES, "decision")
    assert all(t.endswith("</think>") for t in texts)
    enc = tiny_tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    assert not enc["attention_mask"].all()
    at = compute_positions("decision", enc["input_ids"], enc["attention_mask"], tiny_tokenizer).index
    assert all(int(enc["input_ids"][b, at[b]]) == dt.shared[0] for b in range(len(texts)))
    assert at.tolist() == [enc["input_ids"].shape[1] - 1] * len(texts)


def test_split_tags_decide_after_their_shared_lt(split_tokenizer):
    tok = split_tokenizer
    close, lt = encode(tok, "</think>"), encode(tok, "<")
    assert len(close) == 1 and len(lt) == 1
    for tag in ACTION_TAGS.values():  # every tag is several tokens, all starting with `<`
        ids = encode(tok, f"</think><{tag}>")
        assert len(ids) > 3 and ids[:2] == close + lt
    dt = decision_tokens(tok)
    assert dt.shared == (close[0], lt[0]) and dt.suffix == "<"
    assert dt.per_action[Action.CALL_TOOL] == encode(tok, "</think><tool_call>")[2]
    assert dt.per_action[Action.CLARIFY] == encode(tok, "</think><clarify>")[2]
    assert len(set(dt.per_action.values())) == len(Action) and lt[0] not in dt.per_action.values()
    assert action_tag_token_ids(tok) == dict(dt.per_action)
    assert dt.action_of[dt.per_action[Action.REFUSE]] is Action.REFUSE


def test_a_merge_across_the_boundary_is_what_the_decision_point_sees(merged_tokenizer):
    tok = merged_tokenizer
    close = encode(tok, "</think>")
    clarify = encode(tok, "</think><clarify>")
    assert clarify[: len(close)] != close  # `</think>` + `<` is not how `</think><` is tokenized
    dt = decision_tokens(tok)
    assert dt.shared == tuple(encode(tok, "</think><")) and dt.suffix == "<"
    assert tok.decode(list(dt.shared)) == "</think><"
    assert dt.per_action[Action.CLARIFY] == clarify[len(dt.shared)]
    assert len(set(dt.per_action.values())) == len(Action)


def test_two_actions_sharing_their_decision_token_raise():
    """A real BPE whose vocabulary knows `<`, `>`, `_` and `</think>` but no letter: every letter is [UNK], so the
    tags part at the `_` of `tool_call` while answer, clarify, escalate and refuse all go on with [UNK]."""
    from tokenizers import AddedToken, Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(vocab={"[UNK]": 0, "<": 1, ">": 2, "_": 3}, merges=[], unk_token="[UNK]"))
    backend.add_tokens([AddedToken("</think>", special=False, normalized=False)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    assert encode(tok, "</think><clarify>")[:4] == [4, 1, 0, 0]
    with pytest.raises(ValueError, match=r"same decision token id 0 .*add_format_tokens"):
        decision_tokens(tok)
    with pytest.raises(ValueError, match="same decision token"):
        action_tag_token_ids(tok)


# -------------------------------------------------------------------------------------------------- the positions


@pytest.mark.parametrize("which", ["split_tokenizer", "merged_tokenizer"])
def test_the_decision_position_is_where_the_tags_part(which, request):
    tok = request.getfixturevalue(which)
    dt = decision_tokens(tok)
    texts = case_texts(tok, CASES, "decision")
    assert all(t.endswith("</think><") for t in texts)
    # a multi-turn row: an earlier turn's `</think><clarify>` is in the prompt, the current turn's decision last
    history = [
        {"role": "system", "content": "Pending: SHP-1029 and SHP-1030."},
        {"role": "user", "content": "which one"},
        {"role": "assistant", "content": "<think>Ask.</think><clarify>Which shipment?</clarify>"},
        {"role": "user", "content": "SHP-1030"},
    ]
    multi = tok.apply_chat_template(history, add_generation_prompt=True, tokenize=False)
    texts.append(multi + "<think>Verify it.</think>" + dt.suffix)
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert tok.padding_side == "left" and len(set(mask.sum(dim=1).tolist())) == len(texts)
    at = compute_positions("decision", ids, mask, tok).index
    for b in range(len(texts)):
        row = ids[b].tolist()
        found = occurrences(row, dt.shared)
        assert len(found) == (2 if b == len(texts) - 1 else 1)
        assert int(at[b]) == found[-1] + len(dt.shared) - 1 == len(row) - 1  # the text ends at the decision
        assert row[int(at[b])] == dt.shared[-1]  # the shared `<` (or `><`), not the `</think>` before it
    # cut at `</think>` without the suffix: the last `</think>` has no decision yet, and the earlier turn's must
    # not be read instead
    bare = tok([multi + "<think>Verify it.</think>"], add_special_tokens=False, return_tensors="pt")
    assert occurrences(bare["input_ids"][0].tolist(), dt.shared)
    with pytest.raises(MissingThinkError, match="suffix"):
        compute_positions("decision", bare["input_ids"], bare["attention_mask"], tok)
    # patching's decision texts end at the same position, and its metric reads the decision tokens
    text = twin_text(tok, CASES[0], "decision", think="Two match.")
    assert tuple(encode(tok, text)[-len(dt.shared) :]) == dt.shared
    assert metric_token_ids(tok) == (dt.per_action[Action.CLARIFY], dt.per_action[Action.CALL_TOOL])


@pytest.mark.parametrize("which", ["split_tokenizer", "merged_tokenizer"])
def test_the_logit_gap_is_read_at_the_decision_position(which, request):
    tok = request.getfixturevalue(which)
    dt = decision_tokens(tok)
    model = make_tiny_qwen3(tok, seed=2)
    lens = logit_lens(model, tok, CASES, "decision", batch_size=3)  # one left-padded batch of three lengths
    assert lens.final_max_abs_diff < 1e-4
    texts = case_texts(tok, CASES, "decision")
    tool = dt.per_action[Action.CALL_TOOL]
    for i, case in enumerate(CASES):
        ids = encode(tok, texts[i])
        pos = occurrences(ids, dt.shared)[-1] + len(dt.shared) - 1
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, pos].float()
        by_hand = logits[tool] - logits[dt.per_action[case.expected_action]]
        torch.testing.assert_close(lens.final_gap[i], by_hand, atol=1e-4, rtol=1e-4)
        if case.expected_action is Action.CLARIFY:
            torch.testing.assert_close(
                lens.final_gap[i], logits[tool] - logits[dt.per_action[Action.CLARIFY]], atol=1e-4, rtol=1e-4
            )
        # the `</think>`'s own logits (one position earlier) are not what is read
        before = model(input_ids=torch.tensor([ids[:pos]])).logits[0, -1].float().detach()
        tags = list(dt.per_action.values())
        assert not torch.allclose(before[tags], logits[tags])


# ------------------------------------------------------------------------------------------------------ steering


def random_vector(layers=(0, 1), d=64, seed=0, scale=4.0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({layer: torch.randn(d, generator=g) * scale for layer in layers})


def steering_prompts(tok, dt: DecisionTokens) -> list[str]:
    """Mixed lengths. 0: ends at the decision (forced think); 1: its decision inside the prompt, text after it;
    2: ends one token short of the decision (P's last token is fed next); 3: an earlier turn's decision, closed by
    an end-of-turn (does not count)."""
    base = [render_prompt(tok, c) for c in CASES]
    short = tok.decode(list(dt.shared[:-1]))
    history = [
        {"role": "user", "content": "which one"},
        {"role": "assistant", "content": "<think>Ask.</think><clarify>Which shipment?</clarify>"},
        {"role": "user", "content": "SHP-1030"},
    ]
    multi = tok.apply_chat_template(history, add_generation_prompt=True, tokenize=False)
    return [
        base[0] + "<think>Two match; ask.</think>" + dt.suffix,
        base[1] + "<think>One.</think>" + dt.suffix + "tool_call>",
        base[2] + "<think>Greet" + short,
        multi,
    ]


@pytest.mark.parametrize("which", ["split_tokenizer", "merged_tokenizer"])
def test_from_decision_steering_starts_at_the_decision_position(which, request):
    tok = request.getfixturevalue(which)
    dt = decision_tokens(tok)
    model = make_tiny_qwen3(tok, seed=1)
    texts = steering_prompts(tok, dt)
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    width = ids.shape[1]
    assert len(set(mask.sum(dim=1).tolist())) == len(texts)  # left padded, mixed lengths
    assert len(dt.shared) > 1 and tuple(ids[2, width - len(dt.shared) + 1 :].tolist()) == dt.shared[:-1]
    # the decision columns by hand
    expected = [occurrences(ids[b].tolist(), dt.shared) for b in range(len(texts))]
    assert len(expected[0]) == len(expected[1]) == len(expected[3]) == 1 and not expected[2]
    start = [expected[0][0] + len(dt.shared) - 1, expected[1][0] + len(dt.shared) - 1, width, None]
    assert start[0] == width - 1 and start[1] < width - 1
    # step 1: the prompt; step 2: one token per row, P's last token for row 2 (its decision lands there)
    step = torch.full((len(texts), 1), encode(tok, "x")[0], dtype=ids.dtype)
    step[2, 0] = dt.shared[-1]
    step[3, 0] = dt.shared[-1]  # no `</think>` before it in this turn: not a decision
    block = decoder_layers(model)[1]
    context = steer(
        model, random_vector(layers=(1,)), 1.5, positions="from_decision", attention_mask=mask, tokenizer=tok
    )
    with recorded(block) as before, context, recorded(block) as after, torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, use_cache=True)
        model(
            input_ids=step,
            attention_mask=torch.cat([mask, torch.ones_like(step)], dim=1),
            past_key_values=out.past_key_values,
            use_cache=True,
        )
        assert context.tracker is not None and context.tracker.decision == start
    steered = torch.cat([(a - b).abs().amax(dim=-1) > 0 for b, a in zip(before, after, strict=True)], dim=1)
    want = torch.zeros(len(texts), width + 1, dtype=torch.bool)
    for b, s in enumerate(start):
        if s is not None:
            want[b, s:] = True
    assert torch.equal(steered, want)
    # a decision of several tokens has no single fork token: generation takes the unforked path
    batch = GenerationBatch(input_ids=ids[2:], attention_mask=mask[2:], rows=(0, 1))
    fork = Steering(model, random_vector(), 1.0, positions="from_decision", batch=batch, tokenizer=tok).fork_token()
    assert fork is None


@pytest.mark.parametrize("which", ["split_tokenizer", "merged_tokenizer"])
def test_from_decision_batched_generation_matches_one_by_one(which, request):
    tok = request.getfixturevalue(which)
    model = make_tiny_qwen3(tok, seed=1)
    texts = steering_prompts(tok, decision_tokens(tok))
    factory = steering_factory(model, random_vector(seed=3), 4.0, positions="from_decision", tokenizer=tok)
    batched = generate(model, tok, texts, max_new_tokens=6, batch_size=4, steer=factory)
    single = [generate(model, tok, [t], max_new_tokens=6, batch_size=1, steer=factory)[0] for t in texts]
    assert batched == single
    plain = generate(model, tok, texts, max_new_tokens=6, batch_size=4)
    assert batched[:2] != plain[:2]  # rows whose decision is in the prompt are steered


def test_fork_token_is_the_think_close_where_the_tags_are_single_tokens(tiny_tokenizer):
    model = make_tiny_qwen3(tiny_tokenizer)
    prompts = [render_prompt(tiny_tokenizer, c) for c in CASES[:2]]
    enc = tiny_tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    batch = GenerationBatch(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], rows=(0, 1))
    context = Steering(model, random_vector(), 1.0, positions="from_decision", batch=batch, tokenizer=tiny_tokenizer)
    assert context.fork_token() == tiny_tokenizer.convert_tokens_to_ids("</think>")
