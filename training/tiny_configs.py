"""Tiny random-weight configs of real architectures, and full-size configs for meta-device checks.

`tiny_config(arch)` gives a config of the real transformers class (hidden size 64, 2-4 layers, vocab 512) so that
`tiny_model(arch)` builds the real module tree -- same module names, same wrapper classes, same fused expert
parameters -- in well under a second on CPU. Tests use them wherever a behaviour depends on the architecture's
structure (LoRA target matching, hooks, steering) rather than on trained weights.

Architectures (`TINY_ARCHS`):

- ``llama``        LlamaForCausalLM: q/k/v/o + gate/up/down, the baseline every guide assumes.
- ``qwen3``        Qwen3ForCausalLM: same names, q/k norms.
- ``qwen3_5``      Qwen3_5ForCausalLM (the text-only Qwen3.5 LM, config `Qwen3_5TextConfig`): 3 Gated DeltaNet
                   `linear_attention` layers (in_proj_qkv, in_proj_z, in_proj_a, in_proj_b, out_proj) and 1
                   `full_attention` layer (q/k/v/o, q_proj doubled by the output gate), the real 3:1 pattern.
- ``gemma4``       Gemma4ForCausalLM (`Gemma4TextConfig`): sliding + full attention with different head dims, and
                   the per-layer-input projections (per_layer_input_gate, per_layer_projection) of E2B/E4B.
                   In transformers 5.23 the *text* decoder's projections are plain nn.Linear.
- ``gemma4_mm``    Gemma4ForConditionalGeneration with a 1-layer vision tower: what `AutoModelForCausalLM` builds
                   for a real Gemma 4 checkpoint (model_type "gemma4"). The vision tower's projections are
                   `Gemma4ClippableLinear` wrappers around an inner `.linear` nn.Linear -- the wrapped linears.
- ``gemma4_moe``   Gemma4ForCausalLM with `enable_moe_block` (the 26B-A4B layout): dense MLP + router.proj
                   (nn.Linear) + `Gemma4TextExperts` whose experts are fused 3-D nn.Parameters.
- ``qwen3_moe``    Qwen3MoeForCausalLM: `Qwen3MoeExperts` with fused 3-D parameters gate_up_proj [E, 2I, H] and
                   down_proj [E, H, I], router `Qwen3MoeTopKRouter` holding a bare [E, H] weight.
- ``qwen3_5_moe``  Qwen3_5MoeForCausalLM (text): DeltaNet + fused experts + shared expert (nn.Linear).

`full_size_config(name)` gives the real shapes, for meta-device preflights (no weights, no memory):

- ``qwen3_5_4b``   Qwen3.5-4B text model: hidden 2560, 32 layers (24 DeltaNet + 8 full attention), 16 heads / 4 KV
                   heads of dim 256, MLP 9216, DeltaNet 16 key / 32 value heads of dim 128, vocab 248320. The
                   `Qwen3_5TextConfig` defaults are the 9B shape (hidden 4096, MLP 12288), so the 4B values are set
                   here explicitly.
- ``gemma4_text``  the `Gemma4TextConfig` defaults of transformers 5.23 (hidden 2304, 30 layers, 5:1
                   sliding/full, MLP 9216, per-layer inputs of 256), unchanged.
- ``gemma4_31b``   Gemma 4 31B text model as published: hidden 5376, 60 layers, 32 heads, 16 KV heads (4 global
                   KV heads, keys shared as values on full-attention layers), MLP 21504, no per-layer inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

TINY_ARCHS: tuple[str, ...] = (
    "llama",
    "qwen3",
    "qwen3_5",
    "gemma4",
    "gemma4_mm",
    "gemma4_moe",
    "qwen3_moe",
    "qwen3_5_moe",
)
FULL_SIZE_NAMES: tuple[str, ...] = ("qwen3_5_4b", "gemma4_text", "gemma4_31b")

_VOCAB = 512
_HIDDEN = 64

# Shared by the Qwen3.5 dense and MoE tiny configs: 4 layers, so the default 3:1 linear/full pattern appears once.
_QWEN3_5_COMMON: dict[str, Any] = {
    "vocab_size": _VOCAB,
    "hidden_size": _HIDDEN,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "linear_conv_kernel_dim": 4,
    "max_position_embeddings": 256,
}

_GEMMA4_COMMON: dict[str, Any] = {
    "vocab_size": _VOCAB,
    "vocab_size_per_layer_input": _VOCAB,
    "hidden_size": _HIDDEN,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "global_head_dim": 32,
    "hidden_size_per_layer_input": 16,
    "sliding_window": 32,
    "max_position_embeddings": 256,
    "layer_types": ["sliding_attention", "full_attention"],
}


def tiny_config(arch: str) -> PretrainedConfig:
    """A small config of the real architecture `arch` (one of `TINY_ARCHS`)."""
    if arch == "llama":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=_VOCAB,
            hidden_size=_HIDDEN,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
    if arch == "qwen3":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers import Qwen3Config

        return Qwen3Config(
            vocab_size=_VOCAB,
            hidden_size=_HIDDEN,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=256,
        )
    if arch == "qwen3_5":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers.models.qwen3_5 import Qwen3_5TextConfig

        return Qwen3_5TextConfig(intermediate_size=128, **_QWEN3_5_COMMON)
    if arch == "qwen3_5_moe":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers.models.qwen3_5_moe import Qwen3_5MoeTextConfig

        return Qwen3_5MoeTextConfig(
            moe_intermediate_size=32,
            shared_expert_intermediate_size=32,
            num_experts=8,
            num_experts_per_tok=2,
            **_QWEN3_5_COMMON,
        )
    if arch == "gemma4":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers.models.gemma4 import Gemma4TextConfig

        return Gemma4TextConfig(**_GEMMA4_COMMON)
    if arch == "gemma4_moe":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers.models.gemma4 import Gemma4TextConfig

        return Gemma4TextConfig(
            enable_moe_block=True, num_experts=4, top_k_experts=2, moe_intermediate_size=32, **_GEMMA4_COMMON
        )
    if arch == "gemma4_mm":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers.models.gemma4 import Gemma4Config, Gemma4TextConfig, Gemma4VisionConfig

        vision = Gemma4VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=16,
            use_clipped_linears=True,
        )
        return Gemma4Config(
            text_config=Gemma4TextConfig(**_GEMMA4_COMMON).to_dict(),
            vision_config=vision.to_dict(),
            audio_config=None,
        )
    if arch == "qwen3_moe":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers import Qwen3MoeConfig

        # huggingface_hub's @strict config takes extra keywords (head_dim here) that its typed __init__ omits
        return Qwen3MoeConfig(  # type: ignore[call-arg]
            vocab_size=_VOCAB,
            hidden_size=_HIDDEN,
            intermediate_size=128,
            moe_intermediate_size=32,
            num_experts=8,
            num_experts_per_tok=2,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=256,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; known: {', '.join(TINY_ARCHS)}")


def full_size_config(name: str) -> PretrainedConfig:
    """The real model's text config (`FULL_SIZE_NAMES`), for building on the meta device."""
    if name == "qwen3_5_4b":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers.models.qwen3_5 import Qwen3_5TextConfig

        return Qwen3_5TextConfig(
            vocab_size=248320,
            hidden_size=2560,
            intermediate_size=9216,
            num_hidden_layers=32,
            num_attention_heads=16,
            num_key_value_heads=4,
            head_dim=256,
            linear_num_key_heads=16,
            linear_num_value_heads=32,
            linear_key_head_dim=128,
            linear_value_head_dim=128,
            linear_conv_kernel_dim=4,
            max_position_embeddings=262144,
            tie_word_embeddings=True,
        )
    if name == "gemma4_text":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers.models.gemma4 import Gemma4TextConfig

        return Gemma4TextConfig()
    if name == "gemma4_31b":
        # lazy: architectures a given transformers release may lack are imported where they are built
        from transformers.models.gemma4 import Gemma4TextConfig

        pattern = ["sliding_attention"] * 5 + ["full_attention"]
        # huggingface_hub's @strict config takes extra keywords (the global heads here) that its typed __init__ omits
        return Gemma4TextConfig(  # type: ignore[call-arg]
            vocab_size=262144,
            hidden_size=5376,
            intermediate_size=21504,
            num_hidden_layers=60,
            num_attention_heads=32,
            num_key_value_heads=16,
            num_global_key_value_heads=4,
            head_dim=256,
            global_head_dim=512,
            attention_k_eq_v=True,
            hidden_size_per_layer_input=0,
            sliding_window=1024,
            max_position_embeddings=262144,
            final_logit_softcapping=30.0,
            layer_types=pattern * 10,
        )
    raise ValueError(f"unknown full-size config {name!r}; known: {', '.join(FULL_SIZE_NAMES)}")


def build_model(config: PretrainedConfig, device: str = "cpu", seed: int = 0) -> PreTrainedModel:
    """`AutoModelForCausalLM.from_config` in float32, on `device` ("cpu" or "meta"); seeded, global RNG untouched."""
    # lazy: torch loads only when a tiny model is built (the benchmark and configs import this module)
    import torch

    # lazy: architectures a given transformers release may lack are imported where they are built
    from transformers import AutoModelForCausalLM

    if device not in ("cpu", "meta"):
        raise ValueError(f"device must be 'cpu' or 'meta', not {device!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()


def tiny_model(arch: str, device: str = "cpu", seed: int = 0) -> PreTrainedModel:
    """The tiny random-weight model of `arch` (see `tiny_config`), built in float32 on "cpu" or "meta"."""
    return build_model(tiny_config(arch), device=device, seed=seed)
