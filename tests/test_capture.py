"""Activation capture on real tiny models: hook names, position rules, left padding, the hooks backend, the store."""

from __future__ import annotations

import json

import pytest
import torch

from toolprior.actions import Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.output_format import render_turn
from toolprior.probes.activations import Activations
from toolprior.probes.backends.hooks_backend import recording
from toolprior.probes.batching import Batch, pad_left
from toolprior.probes.capture import capture, capture_cases, case_texts
from toolprior.probes.hook_points import HookPoint, all_hook_names, all_resid_post, hook_name, parse_hook_name, resolve
from toolprior.probes.positions import POSITION_RULES, MissingThinkError, compute_positions, think_token_ids
from toolprior.probes.store import ActivationStore, load_activations, read_sidecar

ALL_KINDS = ("resid_post", "attn_out", "mlp_out", "z")
TOOL = ToolSpec("verify_shipment", "Check a shipment.", {"type": "object", "properties": {"id": {"type": "string"}}})


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def arch_model(arch: str, tokenizer):
    """The tiny random-weight model of `arch`, with the tokenizer's vocabulary."""
    from toolprior.training.tiny_configs import build_model, tiny_config

    config = tiny_config(arch)
    config.vocab_size = len(tokenizer)
    if hasattr(config, "vocab_size_per_layer_input"):
        config.vocab_size_per_layer_input = len(tokenizer)
    return build_model(config)


def make_cases() -> list[Case]:
    """Cases of clearly different lengths, one of them multi-turn (an earlier assistant turn holds a </think>)."""
    earlier = render_turn(GoldTurn("look it up", Action.CALL_TOOL, tool_calls=(ToolCall("verify_shipment", {}),)))
    specs = [
        ("c0", Action.CLARIFY, "Check my shipment.", "Two shipments match; ask which.", "Which one?"),
        ("c1", Action.CALL_TOOL, "Verify SHP-1030 status pending customer approve invoice ticket.", "One id.", ""),
        ("c2", Action.ANSWER_DIRECTLY, "Hi", "Greeting.", "Hello!"),
        ("c3", Action.REFUSE, "Delete every account refund escalate now.", "Not allowed here at all.", "I can't."),
    ]
    cases = []
    for cid, action, user, think, content in specs:
        calls = (ToolCall("verify_shipment", {"id": "SHP-1030"}),) if action is Action.CALL_TOOL else ()
        messages = [Message("system", "You are a logistics assistant."), Message("user", user)]
        if cid == "c3":
            messages += [Message("assistant", earlier), Message("tool", '{"ok": true}', name="verify_shipment")]
        cases.append(
            Case(
                id=cid,
                category="clarification_loop",
                split="eval",
                expected_action=action,
                messages=tuple(messages),
                tools=(TOOL,),
                gold=GoldTurn(think, action, content=content, tool_calls=calls),
            )
        )
    return cases


def hook_count(model) -> int:
    """Forward hooks of every kind on every module (transformers installs some of its own on first use)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# --------------------------------------------------------------------------------------------------- hook names


def test_hook_names_parse_and_round_trip():
    for kind in ALL_KINDS:
        name = hook_name(3, kind)
        assert parse_hook_name(name) == HookPoint(3, kind)
        assert str(parse_hook_name(name)) == name
    assert parse_hook_name("blocks.1.attn.hook_z") == HookPoint(1, "z")
    for bad in ("blocks.x.hook_resid_post", "blocks.1.hook_resid_pre", "layers.1.hook_resid_post", "", 3):
        with pytest.raises(ValueError):
            parse_hook_name(bad)


def test_all_resid_post_and_forward_order(tiny_model):
    assert all_resid_post(tiny_model) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert all_hook_names(tiny_model, ALL_KINDS)[:4] == [
        "blocks.0.attn.hook_z",
        "blocks.0.hook_attn_out",
        "blocks.0.hook_mlp_out",
        "blocks.0.hook_resid_post",
    ]


def test_resolve_names_the_modules(tiny_tokenizer):
    from toolprior.training.tiny_configs import tiny_model

    llama = tiny_model("llama", device="meta")
    block = llama.model.layers[1]
    assert resolve(llama, "blocks.1.hook_resid_post")[0] is block
    assert resolve(llama, "blocks.1.hook_attn_out")[0] is block.self_attn
    assert resolve(llama, "blocks.1.hook_mlp_out")[0] is block.mlp
    module, how = resolve(llama, "blocks.1.attn.hook_z")
    assert module is block.self_attn.o_proj and how.source == "input" and how.head_dim == 16
    with pytest.raises(ValueError, match="out of range"):
        resolve(llama, "blocks.2.hook_resid_post")
    # Qwen3.5 DeltaNet layers: hook_z is the input of out_proj, per value head
    qwen35 = tiny_model("qwen3_5", device="meta")
    module, how = resolve(qwen35, "blocks.0.attn.hook_z")
    assert module is qwen35.model.layers[0].linear_attn.out_proj and how.head_dim == 16
    assert resolve(qwen35, "blocks.3.attn.hook_z")[0] is qwen35.model.layers[3].self_attn.o_proj
    # Gemma 4 MoE blocks sum mlp and experts inside the block: no module to read hook_mlp_out from
    with pytest.raises(ValueError, match="experts"):
        resolve(tiny_model("gemma4_moe", device="meta"), "blocks.0.hook_mlp_out")


# ------------------------------------------------------------------------------------------------------ positions


def test_positions_are_the_same_under_left_and_right_padding(tiny_tokenizer):
    texts = case_texts(tiny_tokenizer, make_cases(), "decision")
    rows = [tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    left_ids, left_mask, _ = pad_left(rows, tiny_tokenizer.pad_token_id)
    width = left_ids.shape[1]
    right_ids = torch.full_like(left_ids, tiny_tokenizer.pad_token_id)
    right_mask = torch.zeros_like(left_mask)
    for i, r in enumerate(rows):
        right_ids[i, : len(r)] = torch.tensor(r)
        right_mask[i, : len(r)] = 1
    for rule in POSITION_RULES:
        left = compute_positions(rule, left_ids, left_mask, tiny_tokenizer)
        right = compute_positions(rule, right_ids, right_mask, tiny_tokenizer)
        for i, r in enumerate(rows):
            pad = width - len(r)
            if left.index is not None:
                assert int(left.index[i]) - pad == int(right.index[i])
            else:
                assert left.mask[i, pad:].tolist() == right.mask[i, : len(r)].tolist()
                assert not left.mask[i, :pad].any()


def test_decision_position_lands_on_think_close_in_each_row(tiny_tokenizer):
    cases = make_cases()
    texts = case_texts(tiny_tokenizer, cases, "decision")
    assert all(t.endswith("</think>") for t in texts)
    assert texts[3].count("</think>") == 2  # the earlier assistant turn's, then this turn's
    open_ids, close_ids = think_token_ids(tiny_tokenizer)
    assert len(open_ids) == len(close_ids) == 1
    ids, mask, _ = pad_left([tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], 0)
    decision = compute_positions("decision", ids, mask, tiny_tokenizer).index
    mean = compute_positions("think_mean", ids, mask, tiny_tokenizer).mask
    for i in range(len(texts)):
        assert int(ids[i, decision[i]]) == close_ids[0]
        span = ids[i][mean[i]].tolist()
        assert span[0] == open_ids[0] and span[-1] == close_ids[0] and close_ids[0] not in span[:-1]
    # on the full turn, decision is still the </think> (the action tag comes after it)
    full = case_texts(tiny_tokenizer, cases, "last")
    ids, mask, _ = pad_left([tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in full], 0)
    decision = compute_positions("decision", ids, mask, tiny_tokenizer).index
    assert all(int(ids[i, decision[i]]) == close_ids[0] for i in range(len(full)))


def test_row_without_think_close_raises_naming_the_case(tiny_model, tiny_tokenizer):
    hooks_before = hook_count(tiny_model)
    texts = ["<|user|>\nhi<|end|>\n<|assistant|>\n<think>ok</think>", "<|user|>\nno think here<|end|>\n"]
    with pytest.raises(MissingThinkError, match="'b'") as info:
        capture(tiny_model, tiny_tokenizer, texts, ["blocks.0.hook_resid_post"], "decision", case_ids=["a", "b"])
    assert info.value.rows == (1,)
    assert hook_count(tiny_model) == hooks_before
    with pytest.raises(MissingThinkError, match="c1"):
        capture_cases(
            tiny_model,
            tiny_tokenizer,
            make_cases(),
            ["blocks.0.hook_resid_post"],
            "decision",
            outputs=[
                "<think>a</think><answer>x</answer>",
                "<answer>no think</answer>",
                "<think>b</think>",
                "<think>c</think>",
            ],
        )


# ---------------------------------------------------------------------------------------------------- capture


@pytest.mark.parametrize("position", POSITION_RULES)
def test_capture_with_left_padding_matches_unpadded(tiny_model, tiny_tokenizer, position):
    hooks_before = hook_count(tiny_model)
    cases = make_cases()
    names = all_hook_names(tiny_model, ALL_KINDS)
    batched = capture_cases(tiny_model, tiny_tokenizer, cases, names, position, batch_size=4)
    lengths = [
        len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"])
        for t in case_texts(tiny_tokenizer, cases, position)
    ]
    assert len(set(lengths)) == len(lengths)  # really a mixed-length batch
    for i, case in enumerate(cases):
        alone = capture_cases(tiny_model, tiny_tokenizer, [case], names, position, batch_size=1)
        for name in names:
            torch.testing.assert_close(batched[name][i], alone[name][0], atol=1e-5, rtol=0)
    assert batched.case_ids == ["c0", "c1", "c2", "c3"]
    assert batched.labels == ["clarify", "call_tool", "answer_directly", "refuse"]
    assert batched.position == position
    assert batched["blocks.1.hook_resid_post"].shape == (4, 64)
    assert batched["blocks.1.attn.hook_z"].shape == (4, 4, 16)
    assert hook_count(tiny_model) == hooks_before


def test_resid_post_matches_output_hidden_states(tiny_tokenizer):
    from tests.conftest import make_tiny_qwen3

    tiny_model = make_tiny_qwen3(tiny_tokenizer)  # output_hidden_states leaves transformers' hooks: not the shared one
    texts = case_texts(tiny_tokenizer, make_cases(), "last")
    acts = capture(tiny_model, tiny_tokenizer, texts, all_resid_post(tiny_model), "last", batch_size=4)
    ids, mask, pos = pad_left([tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], 0)
    with torch.no_grad():
        hidden = tiny_model(
            input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True
        ).hidden_states
    torch.testing.assert_close(acts.layer(0), hidden[1][:, -1], atol=1e-6, rtol=0)
    # HF returns the last block's output after the final norm
    torch.testing.assert_close(tiny_model.model.norm(acts.layer(1)), hidden[2][:, -1], atol=1e-6, rtol=0)


def test_hook_z_is_o_proj_input_split_into_heads(tiny_model, tiny_tokenizer):
    texts = case_texts(tiny_tokenizer, make_cases(), "decision")
    acts = capture(tiny_model, tiny_tokenizer, texts, ["blocks.1.attn.hook_z", "blocks.1.hook_attn_out"], "decision")
    ids, mask, pos = pad_left([tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], 0)
    seen = {}
    o_proj = tiny_model.model.layers[1].self_attn.o_proj
    handle = o_proj.register_forward_hook(lambda m, args, out: seen.update(z=args[0], out=out))
    try:
        with torch.no_grad():
            tiny_model(input_ids=ids, attention_mask=mask, position_ids=pos)
    finally:
        handle.remove()
    rows = torch.arange(len(texts))
    at = compute_positions("decision", ids, mask, tiny_tokenizer).index
    torch.testing.assert_close(acts["blocks.1.attn.hook_z"], seen["z"][rows, at].reshape(-1, 4, 16), atol=1e-6, rtol=0)
    # o_proj of hook_z is hook_attn_out
    torch.testing.assert_close(o_proj(acts["blocks.1.attn.hook_z"].flatten(1)), acts["blocks.1.hook_attn_out"])


def test_hooks_are_removed_after_an_exception(tiny_model, tiny_tokenizer):
    before = hook_count(tiny_model)
    with pytest.raises(RuntimeError, match="boom"), recording(tiny_model, all_hook_names(tiny_model, ALL_KINDS)):
        assert hook_count(tiny_model) == before + 9  # 8 hook points + the early stop
        raise RuntimeError("boom")
    assert hook_count(tiny_model) == before
    # an error raised inside the forward pass, from a hook: positions that do not fit the batch
    ids, mask, pos = pad_left([[5, 6, 7]], 0)
    bad = compute_positions("last", torch.tensor([[5, 6, 7, 8, 9]]), torch.ones(1, 5, dtype=torch.long))
    with pytest.raises(IndexError), recording(tiny_model, ["blocks.0.hook_resid_post"]) as run:
        run(Batch(ids, mask, pos, bad, (0,)))
    assert hook_count(tiny_model) == before


def test_capture_stops_after_the_last_needed_block(tiny_model, tiny_tokenizer):
    texts = case_texts(tiny_tokenizer, make_cases(), "prompt_end")
    calls = []
    handles = [
        tiny_model.model.layers[1].register_forward_hook(lambda *a: calls.append("block1")),
        tiny_model.lm_head.register_forward_hook(lambda *a: calls.append("lm_head")),
    ]
    try:
        early = capture(tiny_model, tiny_tokenizer, texts, ["blocks.0.hook_resid_post"], "prompt_end")
        assert calls == []
        full = capture(tiny_model, tiny_tokenizer, texts, all_resid_post(tiny_model), "prompt_end")
        assert calls == ["block1"]  # the last block runs, the LM head never does
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(early.layer(0), full.layer(0), atol=0, rtol=0)


def test_capture_cases_accepts_generated_outputs(tiny_model, tiny_tokenizer):
    cases = make_cases()
    outputs = [
        "<think>Two match.</think><clarify>Which?</clarify>",
        "<think>x</think>",
        "<think></think>",
        "<think>No.</think><refuse>no</refuse>",
    ]
    texts = case_texts(tiny_tokenizer, cases, "decision", outputs=outputs)
    assert texts[0].endswith("<think>Two match.</think>") and "<clarify>" not in texts[0]
    acts = capture_cases(
        tiny_model,
        tiny_tokenizer,
        cases,
        ["blocks.1.hook_resid_post"],
        "think_mean",
        outputs=outputs,
        label=lambda c: c.id.upper(),
    )
    assert acts.labels == ["C0", "C1", "C2", "C3"] and acts.layer(1).shape == (4, 64)
    assert torch.isfinite(acts.layer(1)).all()


@pytest.mark.parametrize("arch", ["llama", "qwen3", "qwen3_5", "gemma4"])
def test_each_tiny_arch_captures_with_left_padding(arch, tiny_tokenizer):
    model = arch_model(arch, tiny_tokenizer)
    hooks_before = hook_count(model)
    cases = make_cases()
    names = all_hook_names(model, ALL_KINDS)
    batched = capture_cases(model, tiny_tokenizer, cases, names, "decision", batch_size=4)
    for i in (0, 2):
        alone = capture_cases(model, tiny_tokenizer, [cases[i]], names, "decision", batch_size=1)
        for name in names:
            torch.testing.assert_close(batched[name][i], alone[name][0], atol=1e-5, rtol=0)
    z = {name: tuple(batched[name].shape) for name in names if name.endswith("hook_z")}
    if arch == "gemma4":  # sliding layers use head_dim 16, the full-attention layer 32
        assert z == {"blocks.0.attn.hook_z": (4, 4, 16), "blocks.1.attn.hook_z": (4, 4, 32)}
    else:  # Qwen3.5: DeltaNet layers 0-2 read 4 value heads of 16, layer 3 4 attention heads of 16
        assert set(z.values()) == {(4, 4, 16)}
    assert hook_count(model) == hooks_before


# ---------------------------------------------------------------------------------------------------------- store


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_store_round_trip(tiny_model, tiny_tokenizer, tmp_path, dtype):
    names = all_hook_names(tiny_model, ALL_KINDS)
    in_memory = capture_cases(tiny_model, tiny_tokenizer, make_cases(), names, "decision")
    store = ActivationStore(tmp_path / "acts", dtype=dtype, shard_rows=2)
    stored = capture_cases(tiny_model, tiny_tokenizer, make_cases(), names, "decision", store=store)
    loaded = load_activations(tmp_path / "acts")
    for acts in (stored, loaded):
        assert acts.case_ids == in_memory.case_ids and acts.labels == in_memory.labels
        assert acts.position == "decision" and acts.fingerprint == in_memory.fingerprint
        for name in names:
            assert acts[name].dtype == dtype
            torch.testing.assert_close(acts[name], in_memory[name].to(dtype), atol=0, rtol=0)
    # only some hook points, and nothing but safetensors + JSON on disk
    some = load_activations(tmp_path / "acts", hooks=["blocks.1.attn.hook_z"])
    assert some.hook_names == ["blocks.1.attn.hook_z"] and some["blocks.1.attn.hook_z"].shape == (4, 4, 16)
    assert sorted(p.suffix for p in (tmp_path / "acts").iterdir()) == [".json", ".safetensors"]
    side = read_sidecar(tmp_path / "acts")
    assert side["dtype"] == str(dtype).removeprefix("torch.") and side["fingerprint"]["id"] == in_memory.fingerprint.id
    assert side["hooks"]["blocks.1.attn.hook_z"] == [4, 16] and "torch" in side["created_with"]
    with pytest.raises(KeyError, match=r"blocks\.9"):
        load_activations(tmp_path / "acts", hooks=["blocks.9.hook_resid_post"])


def test_store_streams_many_texts_into_several_shards(tiny_model, tiny_tokenizer, tmp_path):
    import random

    rng = random.Random(1)
    words = ["shipment", "invoice", "refund", "verify", "status", "pending"]
    texts = [
        f"<|user|>\n{' '.join(rng.choice(words) for _ in range(rng.randint(1, 12)))}<|end|>\n<|assistant|>\n"
        f"<think>{' '.join(rng.choice(words) for _ in range(rng.randint(0, 5)))}</think>"
        for _ in range(200)
    ]
    names = all_resid_post(tiny_model)
    ids = [f"t{i}" for i in range(200)]
    store = ActivationStore(tmp_path / "big", shard_rows=64)
    lazy = capture(tiny_model, tiny_tokenizer, texts, names, "decision", batch_size=8, store=store, case_ids=ids)
    shards = sorted((tmp_path / "big").glob("shard-*.safetensors"))
    assert len(shards) >= 3
    assert json.loads((tmp_path / "big" / "activations.json").read_text())["n"] == 200
    in_memory = capture(tiny_model, tiny_tokenizer, texts, names, "decision", batch_size=8, case_ids=ids)
    loaded = load_activations(tmp_path / "big")
    for name in names:
        torch.testing.assert_close(loaded[name], in_memory[name], atol=0, rtol=0)
        torch.testing.assert_close(lazy[name], in_memory[name], atol=0, rtol=0)
    assert loaded.case_ids == ids and len(loaded) == 200
    assert list(tmp_path.iterdir()) == [tmp_path / "big"]  # no temporary folders left


def test_store_is_atomic(tiny_model, tiny_tokenizer, tmp_path):
    texts = ["<|user|>\nhi<|end|>\n<think>a</think>", "<|user|>\nno think<|end|>\n"]
    path = tmp_path / "acts"
    with pytest.raises(MissingThinkError):
        capture(
            tiny_model,
            tiny_tokenizer,
            texts,
            ["blocks.0.hook_resid_post"],
            "decision",
            store=ActivationStore(path),
            batch_size=1,
        )
    assert list(tmp_path.iterdir()) == []  # the aborted capture left nothing
    capture(
        tiny_model, tiny_tokenizer, texts[:1], ["blocks.0.hook_resid_post"], "decision", store=ActivationStore(path)
    )
    with pytest.raises(FileExistsError):
        capture(
            tiny_model, tiny_tokenizer, texts[:1], ["blocks.0.hook_resid_post"], "last", store=ActivationStore(path)
        )
    capture(
        tiny_model,
        tiny_tokenizer,
        texts,
        ["blocks.1.hook_resid_post"],
        "last",
        store=ActivationStore(path, overwrite=True),
    )
    again = load_activations(path)
    assert again.position == "last" and again.hook_names == ["blocks.1.hook_resid_post"] and len(again) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["acts"]


def test_activations_subset_keeps_rows_and_metadata(tiny_model, tiny_tokenizer):
    acts = capture_cases(tiny_model, tiny_tokenizer, make_cases(), ["blocks.0.hook_resid_post"], "prompt_end")
    assert isinstance(acts, Activations) and len(acts) == 4
    part = acts.subset([2, 0])
    assert part.case_ids == ["c2", "c0"] and part.labels == ["answer_directly", "clarify"]
    torch.testing.assert_close(part.layer(0), acts.layer(0)[[2, 0]])
    with pytest.raises(KeyError, match=r"captured: blocks\.0\.hook_resid_post"):
        acts["blocks.1.hook_resid_post"]
