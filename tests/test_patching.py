"""Logit lens and activation patching on real tiny models (Llama, Qwen3, Qwen3.5, Gemma 4): exactness, left padding,
hooks that always come out, and the attribution-vs-exact comparison."""

from __future__ import annotations

import math

import pytest
import torch

from toolprior.actions import Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.modeling import decoder_layers
from toolprior.probes.attribution import attribution_patching
from toolprior.probes.logit_lens import final_norm, logit_lens, unembed
from toolprior.probes.patch_engine import Patch
from toolprior.probes.patching import patch_heads, patch_metric, patch_resid
from toolprior.probes.patching_compare import compare_patching
from toolprior.probes.twins import TwinPair, pair_cases, twin_pairs

ARCHS = ("llama", "qwen3", "qwen3_5", "gemma4")
TOOL = ToolSpec("verify_shipment", "Check a shipment.", {"type": "object", "properties": {"id": {"type": "string"}}})


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def arch_model(arch: str, tokenizer):
    """The tiny random-weight model of `arch` with the tokenizer's vocabulary (Gemma: with final logit soft-capping,
    so the lens must apply it)."""
    from toolprior.training.tiny_configs import build_model, tiny_config

    config = tiny_config(arch)
    config.vocab_size = len(tokenizer)
    if hasattr(config, "vocab_size_per_layer_input"):
        config.vocab_size_per_layer_input = len(tokenizer)
    if arch == "gemma4":
        config.final_logit_softcapping = 30.0
    return build_model(config)


@pytest.fixture(scope="module")
def built() -> dict[str, torch.nn.Module]:
    """Models built so far in this module, by architecture (each is built once)."""
    return {}


@pytest.fixture(params=ARCHS)
def model(request, built, tiny_tokenizer):
    if request.param not in built:
        built[request.param] = arch_model(request.param, tiny_tokenizer)
    return built[request.param]


def make_twins() -> list[Case]:
    """Three twin pairs of different lengths: the clarify twin's context lists two matching shipments, the call_tool
    twin's one; the user text is the same within a pair. Plus one unpaired case."""
    specs = [
        ("Check my shipment.", ["SHP-1030", "SHP-2044"]),
        ("Verify the pending shipment status for the customer please.", ["SHP-1188", "SHP-7310"]),
        ("Approve refund", ["SHP-5521", "SHP-6012"]),
    ]
    cases = []
    for i, (user, ids) in enumerate(specs):
        for role, listed in (("ambiguous", ids), ("resolved", ids[:1])):
            action = Action.CLARIFY if role == "ambiguous" else Action.CALL_TOOL
            calls = (ToolCall("verify_shipment", {"id": ids[0]}),) if action is Action.CALL_TOOL else ()
            me, other = (f"p{i}a", f"p{i}r") if role == "ambiguous" else (f"p{i}r", f"p{i}a")
            cases.append(
                Case(
                    id=me,
                    category="clarification_loop",
                    split="train",
                    expected_action=action,
                    messages=(
                        Message("system", f"You are a logistics assistant. Open shipments: {', '.join(listed)}."),
                        Message("user", user),
                    ),
                    tools=(TOOL,),
                    gold=GoldTurn("Look at the shipments.", action, content="Which one?", tool_calls=calls),
                    twin=other,
                    meta={"template": f"t{i}", "twin_role": role},
                )
            )
    cases.append(
        Case(
            id="solo",
            category="scope_creep",
            split="train",
            expected_action=Action.REFUSE,
            messages=(Message("system", "You are a logistics assistant."), Message("user", "Delete every account.")),
            tools=(TOOL,),
            gold=GoldTurn("Not allowed.", Action.REFUSE, content="I can't."),
            meta={"template": "t9"},
        )
    )
    return cases


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ---------------------------------------------------------------------------------------------------- logit lens


def test_logit_lens_last_layer_equals_the_models_logits(model, tiny_tokenizer):
    cases = make_twins()
    lens = logit_lens(model, tiny_tokenizer, cases, "decision", batch_size=3)
    assert lens.final_max_abs_diff < 1e-4
    last = lens.tag_logits[-1]
    assert torch.allclose(last, lens.final_logits, atol=1e-4)
    assert torch.allclose(lens.gap[-1], lens.final_gap, atol=1e-4)
    assert lens.gap.shape == (len(lens.layers), len(cases))
    per_action = lens.per_action()
    assert set(per_action) == {"clarify", "call_tool", "refuse"}
    assert per_action["call_tool"] == [0.0] * len(lens.layers)  # the gap of a call_tool case is 0 by definition
    assert isinstance(final_norm(model), torch.nn.Module)


def test_unembed_token_subset_matches_full_vocabulary(model):
    resid = torch.randn(3, model.config.get_text_config().hidden_size)
    with torch.no_grad():
        full = unembed(model, resid)
        part = unembed(model, resid, [5, 17, 3])
    assert torch.allclose(full[:, [5, 17, 3]], part, atol=1e-5)


# ------------------------------------------------------------------------------------------------------ patching


def equal_length_pair(tokenizer) -> TwinPair:
    """Twins of equal token length that differ in two early tokens: patching every position of a layer must then
    reproduce the clean run exactly."""
    text = "<|user|>\nverify shipment status pending customer approve invoice ticket<|end|>\n<|assistant|>\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    corrupted = list(ids)
    corrupted[2] = ids[4]
    corrupted[5] = ids[1]
    assert corrupted != list(ids)
    return TwinPair("clean", "corrupted", tuple(ids), tuple(corrupted))


def test_patching_every_position_restores_clean_and_nothing_gives_zero(model, tiny_tokenizer):
    pair = equal_length_pair(tiny_tokenizer)
    n = len(pair.clean)
    before = hook_count(model)
    for layer in range(len(decoder_layers(model))):
        clean, corrupted, patched = patch_metric(
            model, tiny_tokenizer, [pair], [Patch(layer, "resid_post", tuple(range(n)))]
        )
        assert abs(float(clean - corrupted)) > 1e-6, "the twins must differ for the test to mean anything"
        assert float((patched - corrupted) / (clean - corrupted)) == pytest.approx(1.0, abs=1e-4)
        _, _, kept = patch_metric(model, tiny_tokenizer, [pair], [Patch(layer, "resid_post", tuple(range(n)))], "noise")
        assert float((kept - corrupted) / (clean - corrupted)) == pytest.approx(0.0, abs=1e-4)
    clean, corrupted, nothing = patch_metric(model, tiny_tokenizer, [pair], [])
    assert float((nothing - corrupted) / (clean - corrupted)) == pytest.approx(0.0, abs=1e-6)
    assert hook_count(model) == before


def test_patching_a_pair_alone_equals_patching_it_in_a_mixed_length_batch(model, tiny_tokenizer):
    pairs = twin_pairs(make_twins(), tiny_tokenizer)
    assert len({len(p.clean) for p in pairs}) > 1 and any(len(p.clean) != len(p.corrupted) for p in pairs)
    batched = patch_resid(model, tiny_tokenizer, pairs, k=3, batch_size=16)
    heads_batched = patch_heads(model, tiny_tokenizer, pairs, batch_size=16)
    for i, pair in enumerate(pairs):
        alone = patch_resid(model, tiny_tokenizer, [pair], k=3, batch_size=1)
        heads_alone = patch_heads(model, tiny_tokenizer, [pair], batch_size=1)
        for direction in ("denoise", "noise"):
            assert torch.allclose(alone.maps[direction][0], batched.maps[direction][i], atol=1e-4)
            assert torch.allclose(
                heads_alone.maps[direction][0], heads_batched.maps[direction][i], atol=1e-4, equal_nan=True
            )
        assert float(alone.clean[0]) == pytest.approx(float(batched.clean[i]), abs=1e-4)
    # the last position of the last layer carries everything the metric reads: patching it restores it fully
    last = len(batched.layers) - 1
    assert float(batched.normalised("denoise")[last, 0]) == pytest.approx(1.0, abs=1e-3)
    assert float(batched.normalised("noise")[last, 0]) == pytest.approx(0.0, abs=1e-3)


def test_attribution_and_exact_patching_give_comparable_rankings(model, tiny_tokenizer):
    pairs = twin_pairs(make_twins(), tiny_tokenizer)
    before = hook_count(model)
    exact = patch_resid(model, tiny_tokenizer, pairs, k=3, batch_size=16)
    heads = patch_heads(model, tiny_tokenizer, pairs, batch_size=16)
    approx, approx_heads = attribution_patching(model, tiny_tokenizer, pairs, k=3)
    assert hook_count(model) == before
    assert torch.allclose(approx.clean, exact.clean, atol=1e-4) and torch.allclose(
        approx.corrupted, exact.corrupted, atol=1e-4
    )
    for e, a in ((exact, approx), (heads, approx_heads)):
        comparison = compare_patching(e, a)
        for direction in ("denoise", "noise"):
            block = comparison[direction]
            assert sorted(block["exact_layer_ranking"]) == sorted(block["attribution_layer_ranking"]) == e.layers
            assert isinstance(block["top_layers_agree"], bool)
            assert math.isnan(block["spearman"]) or -1.0 <= block["spearman"] <= 1.0
            assert block["largest_differences"]
        assert comparison["note"]
    # first order is exact for a patch the metric is linear in: the last block's output at the last position
    # feeds the final norm and unembedding only, so the estimate there is close on every architecture's scale
    assert not torch.isnan(approx.effect("denoise")).any()


def test_hooks_come_out_when_patching_fails(built, tiny_tokenizer):
    from toolprior.probes.patch_engine import encode_rows, patched_metric, record_run
    from toolprior.probes.twins import metric_token_ids

    model = built.get("qwen3") or arch_model("qwen3", tiny_tokenizer)
    pair = equal_length_pair(tiny_tokenizer)
    ids = metric_token_ids(tiny_tokenizer)
    pad = tiny_tokenizer.pad_token_id
    cache = record_run(model, encode_rows([pair.clean], pad), [(0, "resid_post"), (1, "resid_post")], 2, ids)
    cache.values[(1, "resid_post")] = torch.zeros(1, 2, 3)  # wrong width: the hook fails inside the forward pass
    before = hook_count(model)
    with pytest.raises(RuntimeError):
        patched_metric(model, encode_rows([pair.corrupted], pad), cache, [[Patch(0), Patch(1)]], ids)
    assert hook_count(model) == before


def test_twin_pairs_pick_clarify_clean_and_share_their_suffix(tiny_tokenizer):
    cases = make_twins()
    paired = pair_cases(cases)
    assert [(a.id, b.id) for a, b in paired] == [("p0a", "p0r"), ("p1a", "p1r"), ("p2a", "p2r")]
    pairs = twin_pairs(cases, tiny_tokenizer)
    assert all(p.aligned >= 8 for p in pairs)  # user message + generation prompt are shared
    decision = twin_pairs(cases, tiny_tokenizer, position="decision", max_pairs=2)
    assert len(decision) == 2
    assert tiny_tokenizer.decode(decision[0].clean).endswith("<think></think>")


def test_attribution_through_nf4_layers_equals_the_dequantised_model(tiny_tokenizer, tmp_path):
    """bitsandbytes warns that its 4-bit kernel has no autograd registration; attribution patching differentiates
    through NF4 layers, so check its gradients against the same weights dequantised into plain fp32 Linears."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import dequantize_4bit
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    arch_model("llama", tiny_tokenizer).save_pretrained(tmp_path / "llama")
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
    )
    model = AutoModelForCausalLM.from_pretrained(
        tmp_path / "llama", quantization_config=quantization, device_map={"": "cpu"}
    ).eval()
    pairs = twin_pairs(make_twins(), tiny_tokenizer)
    nf4, _ = attribution_patching(model, tiny_tokenizer, pairs, k=3, heads=False)
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, bnb.nn.Linear4bit):
                weight = dequantize_4bit(child.weight.data, child.weight.quant_state).float()
                linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
                linear.weight.data = weight
                setattr(module, name, linear)
                replaced += 1
    assert replaced > 0
    plain, _ = attribution_patching(model, tiny_tokenizer, pairs, k=3, heads=False)
    for direction in ("denoise", "noise"):
        effect = plain.effect(direction)
        assert float(effect.abs().max()) > 0  # there is a gradient to compare
        torch.testing.assert_close(nf4.effect(direction), effect, atol=1e-4, rtol=1e-3)
