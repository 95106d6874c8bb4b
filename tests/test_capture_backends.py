"""The three capture backends (plain hooks, nnsight, TransformerLens) read the same numbers, on plain, 4-bit NF4 and
PEFT-adapted tiny models, and leave the model as they found it."""

from __future__ import annotations

import pytest
import torch

from tests.test_capture import ALL_KINDS, arch_model, hook_count, make_cases
from toolprior.probes.capture import capture, capture_cases
from toolprior.probes.hook_points import all_hook_names

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

BACKENDS = ("nnsight", "transformer_lens")


def model_state(model) -> dict:
    """What a backend could leave changed: the module tree, instance attributes, hooks, attention implementation."""
    return {
        "tree": [(name, type(m).__name__, sorted(m.__dict__)) for name, m in model.named_modules()],
        "hooks": hook_count(model),
        "attn": model.config._attn_implementation,
    }


def supported(names: list[str], backend: str, arch: str) -> list[str]:
    """TransformerLens's Gated DeltaNet bridge has no HookPoint at the input of out_proj (hook_z of layers 0-2)."""
    if backend == "transformer_lens" and arch == "qwen3_5":
        return [n for n in names if not (n.endswith("attn.hook_z") and n != "blocks.3.attn.hook_z")]
    return names


def assert_backends_agree(model, tokenizer, names, arch: str, position: str = "decision") -> None:
    cases = make_cases()
    reference = capture_cases(model, tokenizer, cases, names, position, batch_size=4)
    before = model_state(model)
    for backend in BACKENDS:
        wanted = supported(names, backend, arch)
        got = capture_cases(model, tokenizer, cases, wanted, position, batch_size=4, backend=backend)
        assert got.meta["backend"] == backend
        for name in wanted:
            torch.testing.assert_close(got[name], reference[name], atol=1e-5, rtol=1e-5, msg=f"{backend} {name}")
        assert model_state(model) == before, f"{backend} left the model changed"
    # and the model still computes exactly what it did (TransformerLens switched it to eager attention for a while)
    again = capture_cases(model, tokenizer, cases, names, position, batch_size=4)
    for name in names:
        torch.testing.assert_close(again[name], reference[name], atol=0, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "qwen3", "qwen3_5", "gemma4"])
def test_backends_agree_on_a_left_padded_batch(arch, tiny_tokenizer):
    model = arch_model(arch, tiny_tokenizer)
    assert_backends_agree(model, tiny_tokenizer, all_hook_names(model, ALL_KINDS), arch)


@pytest.mark.parametrize("position", ["prompt_end", "think_mean"])
def test_backends_agree_for_other_positions(position, tiny_model, tiny_tokenizer):
    assert_backends_agree(tiny_model, tiny_tokenizer, all_hook_names(tiny_model, ALL_KINDS), "qwen3", position)


def test_transformer_lens_refuses_what_it_cannot_read(tiny_tokenizer):
    qwen35 = arch_model("qwen3_5", tiny_tokenizer)
    texts = ["<|user|>\nhi<|end|>\n<|assistant|>\n<think>a</think>"]
    before = model_state(qwen35)
    with pytest.raises(NotImplementedError, match=r"Qwen3_5ForCausalLM.*blocks\.0\.attn\.hook_z"):
        capture(qwen35, tiny_tokenizer, texts, ["blocks.0.attn.hook_z"], "decision", backend="transformer_lens")
    assert model_state(qwen35) == before
    # an architecture TransformerLens has no adapter for (the hooks backend reads it fine)
    from transformers import HeliumConfig, HeliumForCausalLM

    torch.manual_seed(0)
    config = HeliumConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    )
    helium = HeliumForCausalLM(config).eval()
    with pytest.raises(NotImplementedError, match="HeliumForCausalLM"):
        capture(helium, tiny_tokenizer, texts, ["blocks.1.hook_resid_post"], "decision", backend="transformer_lens")
    hooks = capture(helium, tiny_tokenizer, texts, ["blocks.1.hook_resid_post"], "decision")
    nn = capture(helium, tiny_tokenizer, texts, ["blocks.1.hook_resid_post"], "decision", backend="nnsight")
    torch.testing.assert_close(nn.layer(1), hooks.layer(1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown capture backend"):
        capture(helium, tiny_tokenizer, texts, ["blocks.1.hook_resid_post"], "decision", backend="pyvene")


def test_nf4_model_captures_with_every_backend(tiny_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    arch_model("llama", tiny_tokenizer).save_pretrained(tmp_path / "llama")
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    # Eager attention: bitsandbytes' CPU 4-bit matmul rounds its output to half precision, so the ~1e-8 by which
    # sdpa and eager attention (which TransformerLens forces) differ can flip a rounding step (~1e-5) downstream.
    model = AutoModelForCausalLM.from_pretrained(
        tmp_path / "llama", quantization_config=quantization, device_map={"": "cpu"}, attn_implementation="eager"
    ).eval()
    o_proj = model.model.layers[1].self_attn.o_proj
    assert type(o_proj).__name__ == "Linear4bit"
    names = all_hook_names(model, ALL_KINDS)
    assert_backends_agree(model, tiny_tokenizer, names, "llama")
    # left padding holds on the quantised model too
    cases = make_cases()
    batched = capture_cases(model, tiny_tokenizer, cases, names, "decision", batch_size=4)
    alone = capture_cases(model, tiny_tokenizer, cases[2:3], names, "decision", batch_size=1)
    for name in names:
        torch.testing.assert_close(batched[name][2], alone[name][0], atol=1e-5, rtol=0)
        assert batched[name].dtype == torch.float32


def test_peft_model_captures_with_every_backend(tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    base = arch_model("qwen3", tiny_tokenizer)
    plain = capture_cases(base, tiny_tokenizer, make_cases(), ["blocks.1.hook_resid_post"], "decision")
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(0)
    model = get_peft_model(base, config).eval()
    assert type(model.base_model.model.model.layers[1].self_attn.o_proj).__module__.startswith("peft")
    names = all_hook_names(model, ALL_KINDS)
    assert_backends_agree(model, tiny_tokenizer, names, "qwen3")
    adapted = capture_cases(model, tiny_tokenizer, make_cases(), ["blocks.1.hook_resid_post"], "decision")
    assert not torch.allclose(adapted.layer(1), plain.layer(1))  # the adapter is in the numbers
    assert adapted.fingerprint.id != plain.fingerprint.id
