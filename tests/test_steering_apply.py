"""Applying steering vectors: position rules under a KV cache, left padding, per-row alphas, operators, hook
cleanup, the nnsight path, conditional steering, and real architectures (plain, 4-bit NF4 + PEFT)."""

from __future__ import annotations

import functools

import pytest
import torch

from tests.conftest import make_tiny_qwen3, recorded
from toolprior.actions import Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.chat_template import gold_chat, render_prompt
from toolprior.evals import fork_at_decision, generation, shared_prefill
from toolprior.evals.generation import generate
from toolprior.modeling import decoder_layers
from toolprior.steering.apply import steer, steering_factory
from toolprior.steering.vector import SteeringVector

VERIFY = ToolSpec(
    name="verify",
    description="Verify a shipment.",
    parameters={"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
)
CALL = ToolCall("verify", {"id": "SHP-1030"})
TWO = "Pending: SHP-1029 and SHP-1030."
ONE = "Pending: SHP-1030."


def make_case(cid, system, user, expected, think, action, *, content="", split="mine", twin=None) -> Case:
    calls = (CALL,) if action is Action.CALL_TOOL else ()
    return Case(
        id=cid,
        category="clarification_loop",
        split=split,
        expected_action=expected,
        messages=(Message("system", system), Message("user", user)),
        tools=(VERIFY,),
        gold=GoldTurn(think, action, content=content, tool_calls=calls),
        twin=twin,
    )


TAUGHT = (
    make_case(
        "amb",
        TWO,
        "check the shipment",
        Action.CLARIFY,
        "Two shipments match. I should ask which one they mean.",
        Action.CLARIFY,
        content="Which shipment?",
        twin="one",
    ),
    make_case(
        "one",
        ONE,
        "check the shipment",
        Action.CALL_TOOL,
        "Only SHP-1030 matches. I'll verify it.",
        Action.CALL_TOOL,
        twin="amb",
    ),
    make_case(
        "ask",
        TWO,
        "which one is late",
        Action.CLARIFY,
        "I should ask which one.",
        Action.CLARIFY,
        content="Which shipment?",
    ),
)


# What the agent is taught to write: the gold turns, except on "amb", where it shows the case study's signature
# (the think says ask, the action calls the tool anyway).
SIGNATURE = (
    "<think>Two shipments match. I should ask which one they mean.</think>"
    '<tool_call>{"name": "verify", "arguments": {"id": "SHP-1030"}}</tool_call>'
)


@functools.lru_cache(maxsize=2)
def taught_agent(tokenizer):
    """A real tiny Qwen3 trained until it writes the taught turns greedily (think block, then the action)."""
    torch.manual_seed(0)
    model = make_tiny_qwen3(tokenizer, seed=1, layers=2).train()
    rows = []
    for case in TAUGHT:
        messages, tools = gold_chat(case)
        if case.id == "amb":
            messages[-1]["content"] = SIGNATURE
        enc = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        rows.append((enc["input_ids"], enc["assistant_masks"]))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r, _ in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in rows])
    keep = torch.tensor([m + [0] * (width - len(m)) for _, m in rows]) == 1
    labels = torch.where(keep, ids, torch.tensor(-100))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(400):
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if loss.item() < 0.002:
            break
    return model.eval()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def agent(tiny_tokenizer):
    return taught_agent(tiny_tokenizer)


def random_vector(layers=(0, 1), d=64, seed=0, scale=1.0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({layer: torch.randn(d, generator=g) * scale for layer in layers})


def prompts(tokenizer) -> list[str]:
    """Mixed lengths: the taught prompts, one with a forced think (</think> in the prompt), and a multi-turn prompt
    whose earlier assistant turn holds a </think> followed by an end-of-turn (which must not count)."""
    base = [render_prompt(tokenizer, c) for c in TAUGHT]
    forced = base[0] + "<think>I should ask which one.</think>"
    history = [
        {"role": "system", "content": TWO},
        {"role": "user", "content": "which one is late"},
        {"role": "assistant", "content": "<think>I should ask which one.</think><clarify>Which shipment?</clarify>"},
        {"role": "user", "content": "SHP-1030"},
    ]
    multi = tokenizer.apply_chat_template(history, tools=[VERIFY.to_dict()], add_generation_prompt=True, tokenize=False)
    return [*base, forced, multi]


def hook_counts(model) -> list[int]:
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]


# --------------------------------------------------------------------------------------------------- generation


def test_alpha_zero_gives_outputs_identical_to_the_unsteered_model(agent, tiny_tokenizer):
    texts = prompts(tiny_tokenizer)
    plain = generate(agent, tiny_tokenizer, texts, max_new_tokens=48, batch_size=8)
    for positions in ("all", "prompt", "generated", "from_decision"):
        factory = steering_factory(agent, random_vector(), 0.0, positions=positions, tokenizer=tiny_tokenizer)
        assert generate(agent, tiny_tokenizer, texts, max_new_tokens=48, batch_size=8, steer=factory) == plain
    assert plain[0].startswith("<think>Two shipments match.")


@pytest.mark.parametrize("positions", ["all", "prompt", "generated", "from_decision"])
def test_steered_batched_generation_with_left_padding_matches_one_by_one(agent, tiny_tokenizer, positions):
    texts = prompts(tiny_tokenizer)
    vector = random_vector(seed=3)
    factory = steering_factory(agent, vector, 2.0, positions=positions, tokenizer=tiny_tokenizer)
    batched = generate(agent, tiny_tokenizer, texts, max_new_tokens=40, batch_size=8, steer=factory)
    single = [generate(agent, tiny_tokenizer, [t], max_new_tokens=40, batch_size=1, steer=factory)[0] for t in texts]
    assert batched == single
    plain = generate(agent, tiny_tokenizer, texts, max_new_tokens=40, batch_size=8)
    assert batched != plain  # the rule steered something


def _steered_columns(before: list[torch.Tensor], after: list[torch.Tensor]) -> list[torch.Tensor]:
    return [(a - b).abs().amax(dim=-1) > 0 for b, a in zip(before, after, strict=True)]


@pytest.mark.parametrize("positions", ["all", "prompt", "generated", "from_decision"])
def test_each_position_rule_steers_exactly_its_columns_under_the_kv_cache(agent, tiny_tokenizer, positions):
    texts = prompts(tiny_tokenizer)
    enc = tiny_tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    mask = enc["attention_mask"]
    width = mask.shape[1]
    close = tiny_tokenizer.convert_tokens_to_ids("</think>")
    block = decoder_layers(agent)[1]
    vector = random_vector(layers=(1,), seed=5)
    with (
        recorded(block) as before,
        steer(agent, vector, 1.5, positions=positions, attention_mask=mask, tokenizer=tiny_tokenizer),
        recorded(block) as after,
        torch.no_grad(),
    ):
        out = agent.generate(**enc, max_new_tokens=48, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id)
    steps = _steered_columns(before, after)
    assert len(steps) == 48 and steps[0].shape == mask.shape and all(s.shape == (len(texts), 1) for s in steps[1:])
    steered = torch.cat(steps, dim=1)  # [B, prompt + 47]: one column per position the model ran
    columns = torch.arange(steered.shape[1])
    real = torch.cat([mask.bool(), torch.ones(len(texts), 47, dtype=torch.bool)], dim=1)
    assert not steered[~real].any()  # padding is never touched
    if positions == "all":
        expected = real
    elif positions == "prompt":
        expected = real & (columns < width)
    elif positions == "generated":
        expected = real & (columns >= width)
    else:
        expected = torch.zeros_like(real)
        for b in range(len(texts)):
            row = out[b, : steered.shape[1]].tolist()
            # The prompt's own </think> counts for the forced-think row only (no end-of-turn after it).
            in_prompt = [c for c in range(width) if row[c] == close and mask[b, c]]
            generated = [c for c in range(width, len(row)) if row[c] == close]
            start = in_prompt[-1] if b == 3 else (generated[0] if generated else None)
            if b == 4:
                assert in_prompt, "the multi-turn prompt holds an earlier </think>"
            if start is not None:
                expected[b, start:] = True
        assert expected[[0, 1, 2, 3]].any(dim=1).all()
    assert torch.equal(steered, expected)


def test_padding_positions_keep_their_hidden_states(agent, tiny_tokenizer):
    texts = prompts(tiny_tokenizer)
    enc = tiny_tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    pads = enc["attention_mask"] == 0
    assert pads.any()
    block = decoder_layers(agent)[0]
    with torch.no_grad(), recorded(block) as plain:
        agent(**enc)
    with torch.no_grad(), steer(agent, random_vector(), 8.0, positions="all"), recorded(block) as steered:
        agent(**enc)  # the forward pass's own attention mask tells the hooks where the padding is
    assert torch.equal(steered[0][pads], plain[0][pads])
    assert not torch.equal(steered[0][~pads], plain[0][~pads])


def test_per_row_alpha_equals_running_each_alpha_separately(agent, tiny_tokenizer):
    texts = prompts(tiny_tokenizer)[:2]
    alphas = [-3.0, 0.0, 1.5, 3.0]
    vector = random_vector(seed=7)
    rows = [t for t in texts for _ in alphas]
    per_row = torch.tensor([a for _ in texts for a in alphas])
    batched = generate(agent, tiny_tokenizer, rows, max_new_tokens=32, steer=steering_factory(agent, vector, per_row))
    separate = [
        generate(agent, tiny_tokenizer, [t], max_new_tokens=32, steer=steering_factory(agent, vector, a))[0]
        for t in texts
        for a in alphas
    ]
    assert batched == separate
    assert len(set(batched[: len(alphas)])) > 1


def test_hooks_are_gone_after_an_exception_inside_the_context(agent, tiny_tokenizer):
    before = hook_counts(agent)
    assert not agent._forward_hooks and all(not b._forward_hooks for b in decoder_layers(agent))
    with pytest.raises(RuntimeError, match="boom"), steer(agent, random_vector(), 1.0):
        assert sum(hook_counts(agent)) > sum(before)
        raise RuntimeError("boom")
    assert hook_counts(agent) == before
    assert not agent._forward_hooks and all(not b._forward_hooks for b in decoder_layers(agent))
    assert all(not b._forward_pre_hooks for b in decoder_layers(agent))


def test_from_decision_needs_the_tokenizer(agent):
    with pytest.raises(ValueError, match="tokenizer"):
        steer(agent, random_vector(), 1.0, positions="from_decision")


# ---------------------------------------------------------------------------------------------------- operators


def _block_output(model, enc, layer, **kwargs):
    with torch.no_grad(), steer(model, **kwargs), recorded(decoder_layers(model)[layer]) as seen:
        model(**enc)
    return seen[0]


def test_ablate_removes_the_component_and_ablate_then_add_sets_it(agent, tiny_tokenizer):
    enc = tiny_tokenizer(prompts(tiny_tokenizer)[:3], add_special_tokens=False, padding=True, return_tensors="pt")
    real = enc["attention_mask"].bool()
    vector = random_vector(layers=(1,), seed=11)
    u = vector[1] / vector[1].norm()
    with torch.no_grad(), recorded(decoder_layers(agent)[1]) as plain:
        agent(**enc)
    assert (plain[0][real] @ u).abs().min() > 1e-3
    ablated = _block_output(agent, enc, 1, vector=vector, alpha=5.0, operator="ablate")
    assert (ablated[real] @ u).abs().max() < 1e-4
    assert torch.equal(ablated[~real], plain[0][~real])
    set_to = _block_output(agent, enc, 1, vector=vector, alpha=2.0, operator="ablate_then_add")
    assert torch.allclose(set_to[real] @ u, torch.full((int(real.sum()),), 2.0 * float(vector[1].norm())), atol=1e-4)


def test_keep_norm_preserves_each_positions_norm(agent, tiny_tokenizer):
    enc = tiny_tokenizer(prompts(tiny_tokenizer)[:3], add_special_tokens=False, padding=True, return_tensors="pt")
    real = enc["attention_mask"].bool()
    vector = random_vector(layers=(0,), seed=2)
    with torch.no_grad(), recorded(decoder_layers(agent)[0]) as plain:
        agent(**enc)
    kept = _block_output(agent, enc, 0, vector=vector, alpha=6.0, keep_norm=True)
    assert torch.allclose(kept[real].norm(dim=-1), plain[0][real].norm(dim=-1), rtol=1e-5)
    assert not torch.allclose(kept[real], plain[0][real])


def test_a_new_operator_is_just_a_function(agent, tiny_tokenizer):
    enc = tiny_tokenizer(prompts(tiny_tokenizer)[:2], add_special_tokens=False, padding=True, return_tensors="pt")
    real = enc["attention_mask"].bool()
    vector = random_vector(layers=(0,), seed=2)
    zeroed = _block_output(agent, enc, 0, vector=vector, alpha=1.0, operator=lambda h, v, a: h * 0)
    assert torch.equal(zeroed[real], torch.zeros_like(zeroed[real]))


# ------------------------------------------------------------------------------------------------------ nnsight


@pytest.mark.parametrize("positions", ["all", "from_decision"])
def test_nnsight_path_agrees_with_the_hooks_path(agent, tiny_tokenizer, positions):
    from toolprior.steering.nnsight_apply import nnsight_forward, nnsight_generate

    texts = prompts(tiny_tokenizer)
    enc = tiny_tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    vector = random_vector(seed=4)
    alpha = torch.tensor([2.0, 0.0, -2.0, 1.0, 3.0])
    gen = {"max_new_tokens": 24, "do_sample": False, "pad_token_id": tiny_tokenizer.pad_token_id}
    kw = {"positions": positions, "tokenizer": tiny_tokenizer}
    with torch.no_grad(), steer(agent, vector, alpha, attention_mask=enc["attention_mask"], **kw):
        hooks_ids = agent.generate(**enc, **gen)
        hooks_logits = agent(**enc).logits
    before = hook_counts(agent)
    nn_ids = nnsight_generate(
        agent,
        tiny_tokenizer,
        vector,
        alpha,
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],
        positions=positions,
        **gen,
    )
    kw.pop("tokenizer")
    nn_logits = nnsight_forward(
        agent, tiny_tokenizer, vector, alpha, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kw
    )
    assert torch.equal(nn_ids, hooks_ids)
    assert torch.allclose(nn_logits, hooks_logits, atol=1e-4)
    assert hook_counts(agent) == before
    assert not any("forward" in m.__dict__ for m in agent.modules())  # nnsight's wrappers are gone


# ------------------------------------------------------------------------------------------------ conditional


def test_conditional_steering_steers_only_rows_the_probe_flags(agent, tiny_tokenizer):
    from toolprior.probes.fit import fit_probe
    from toolprior.steering.conditional import ConditionalSteering, prompt_end_features

    texts = prompts(tiny_tokenizer)[:3]
    enc = tiny_tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    x = prompt_end_features(agent, enc["input_ids"], enc["attention_mask"], 1)
    probe = fit_probe(x, ["clarify", "other", "clarify"], classes=("other", "clarify"))
    vector = random_vector(seed=9)
    gate = ConditionalSteering(vector, probe, threshold=0.5, alpha=3.0, layer=1)
    log: list[dict] = []
    gated = generate(agent, tiny_tokenizer, texts, max_new_tokens=32, steer=gate.factory(agent, log))
    plain = generate(agent, tiny_tokenizer, texts, max_new_tokens=32)
    always = generate(agent, tiny_tokenizer, texts, max_new_tokens=32, steer=steering_factory(agent, vector, 3.0))
    flags = {entry["row"]: entry["steered"] for entry in log}
    assert flags == {0: True, 1: False, 2: True}
    assert [gated[i] == (always[i] if flags[i] else plain[i]) for i in range(3)] == [True] * 3


def test_fit_conditional_refuses_eval_cases(agent, tiny_tokenizer):
    from toolprior.errors import InputError
    from toolprior.steering.conditional import fit_conditional

    held_out = [make_case("e1", TWO, "check the shipment", Action.CLARIFY, "x", Action.CLARIFY, split="eval")]
    with pytest.raises(InputError, match="eval"):
        fit_conditional(
            agent, tiny_tokenizer, random_vector(), layer=1, alpha=1.0, train_cases=TAUGHT, mine_cases=held_out
        )


def test_fit_conditional_chooses_its_threshold_on_mine(agent, tiny_tokenizer):
    from toolprior.steering.conditional import fit_conditional

    gate = fit_conditional(
        agent, tiny_tokenizer, random_vector(), layer=1, alpha=2.0, train_cases=TAUGHT, mine_cases=TAUGHT
    )
    assert gate.meta["threshold_on"] == ["mine"] and 0.0 <= gate.threshold <= 1.0
    assert gate.meta["mine_recall"] == 1.0


# --------------------------------------------------------------------------------------------- architectures


def _arch_batch(vocab: int = 512):
    g = torch.Generator().manual_seed(0)
    lengths = [5, 9, 12]
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, width - n :] = torch.randint(3, vocab, (n,), generator=g)
        mask[i, width - n :] = 1
    return ids, mask


def _check_model(model, d: int, layers=(0, 1)) -> None:
    ids, mask = _arch_batch()
    gen = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    vector = random_vector(layers=layers, d=d, seed=1, scale=4.0)
    before = hook_counts(model)
    with torch.no_grad():
        plain = model.generate(input_ids=ids, attention_mask=mask, **gen)
        with steer(model, vector, 0.0):
            zero = model.generate(input_ids=ids, attention_mask=mask, **gen)
        block = decoder_layers(model)[layers[0]]
        with recorded(block) as unsteered:
            model(input_ids=ids, attention_mask=mask)
        with steer(model, vector, 6.0, positions="generated"):
            generated_only = model.generate(input_ids=ids, attention_mask=mask, **gen)
        with steer(model, vector, 6.0), recorded(block) as steered:
            steered_ids = model.generate(input_ids=ids, attention_mask=mask, **gen)
            logits = model(input_ids=ids, attention_mask=mask).logits
        singles = []
        for i in range(ids.shape[0]):
            row = ids[i : i + 1, mask[i].bool()]
            with steer(model, vector, 6.0):
                singles.append(
                    model.generate(input_ids=row, attention_mask=torch.ones_like(row), **gen)[0, row.shape[1] :]
                )
    assert torch.equal(zero, plain)
    pads = mask == 0
    assert torch.equal(steered[0][pads], unsteered[0][pads])
    assert not torch.equal(steered[0][~pads], unsteered[0][~pads])
    assert torch.isfinite(logits).all()
    assert not torch.equal(steered_ids, plain) and torch.equal(
        generated_only[:, : ids.shape[1] + 1], plain[:, : ids.shape[1] + 1]
    )
    assert [s.tolist() for s in singles] == steered_ids[:, ids.shape[1] :].tolist()
    assert hook_counts(model) == before


@pytest.mark.parametrize("arch", ["llama", "qwen3", "qwen3_5", "gemma4"])
def test_steering_works_on_each_architecture(arch):
    from toolprior.training.tiny_configs import tiny_model

    _check_model(tiny_model(arch), d=64)


def test_steering_works_on_a_4bit_peft_model(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from toolprior.training.tiny_configs import tiny_model

    tiny_model("llama").save_pretrained(tmp_path / "base")
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base", quantization_config=quant, device_map={"": "cpu"})
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    assert type(decoder_layers(model)[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    _check_model(model, d=64)


@pytest.mark.parametrize("positions", ["generated", "from_decision", "all"])
def test_a_repeated_prompt_sweep_shares_work_and_gives_the_same_outputs(agent, tiny_tokenizer, positions, monkeypatch):
    """An alpha sweep repeats each prompt once per alpha. Where steering leaves the prompt alone the copies share
    one prefill (evals.shared_prefill); steering from the decision point they also share the think block and fork
    at </think> (evals.fork_at_decision). Mixed lengths, a forced think (a decision inside the prompt: that batch
    shares nothing) and a multi-turn history; the outputs equal those of one plain pass per row, exactly."""
    texts = prompts(tiny_tokenizer)
    alphas = [-2.0, 0.0, 2.0, 4.0]
    rows = [t for t in texts for _ in alphas]
    per_row = torch.tensor([a for _ in texts for a in alphas])
    vector = random_vector(seed=3, scale=2.0)
    factory = steering_factory(agent, vector, per_row, positions=positions, tokenizer=tiny_tokenizer)
    calls: dict[str, int] = {"prefill": 0, "fork": 0}
    real_prefill, real_fork = shared_prefill.shared_prefill, fork_at_decision.forked_generate

    def count(name, fn):
        def counted(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return counted

    # Counted where they are called from (each module binds the name at import).
    counted_prefill, counted_fork = count("prefill", real_prefill), count("fork", real_fork)
    for module in (generation, fork_at_decision):
        monkeypatch.setattr(module, "shared_prefill", counted_prefill)
    monkeypatch.setattr(generation, "forked_generate", counted_fork)
    shared = generate(agent, tiny_tokenizer, rows, max_new_tokens=24, steer=factory, batch_size=8)
    monkeypatch.undo()
    apart = generate(agent, tiny_tokenizer, rows, max_new_tokens=24, steer=factory, batch_size=8, share_prompts=False)
    assert shared == apart
    assert len(set(shared)) > len(texts)  # the alphas do move the outputs
    if positions == "all":
        assert calls == {"prefill": 0, "fork": 0}  # the prompt is steered: nothing may be shared
    elif positions == "generated":
        assert calls["prefill"] > 0 and calls["fork"] == 0
    else:
        assert 0 < calls["fork"] < -(-len(rows) // 8)  # the batch with the forced think did not fork
        forked = [out for out in shared if "</think>" in out]
        assert len({out.split("</think>")[1] for out in forked}) > 1  # the copies do part after the think


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_unpadded_generation_keeps_its_columns_when_the_mask_and_cache_keyword_change(agent, tiny_tokenizer, positions):
    """Regression (transformers 5.25): `generate` drops an all-ones attention mask and hands the decoder its cache as
    `cache=` instead of `past_key_values=`. Each decode step must still be seen at its own column, not as column 0
    of a new sequence (which steered every generated token under "prompt" and none under "generated")."""
    ids = tiny_tokenizer(prompts(tiny_tokenizer)[0], return_tensors="pt", add_special_tokens=False)["input_ids"]
    width = ids.shape[1]
    seen: list[tuple[int, list[bool]]] = []
    with steer(agent, random_vector(), 2.0, positions=positions) as steering:
        handle = decoder_layers(agent)[0].register_forward_hook(
            lambda m, a, o: seen.append((steering.tracker.total, steering.tracker.current[0].tolist()))
        )
        try:
            agent.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
        finally:
            handle.remove()
    assert [total for total, _ in seen] == [width + step for step in range(len(seen))]
    prefill, *steps = [mask for _, mask in seen]
    assert len(steps) >= 3
    if positions == "prompt":
        assert all(prefill) and not any(any(step) for step in steps)
    else:
        assert not any(prefill) and all(all(step) for step in steps)
