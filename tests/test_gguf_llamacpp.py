"""Our GGUF control vectors in llama.cpp itself: a tiny random Llama written as an F32 GGUF runs in llama.cpp with
the vector and in transformers under `steer()`, and the logits agree (measured: max |gap| 1.5e-7 over every position
and the 97 logits, against 2e-2 .. 9e-1 for a vector one block early or late or with the sign flipped).

Runs where a prebuilt llama.cpp with Python bindings is importable; skipped elsewhere (the project does not depend
on one: PyPI has no binary wheel of llama-cpp-python, only its source, and compiling llama.cpp is out of scope). The
one it was checked with: `llama-cpp-py-sync` 0.11739, a CPU manylinux wheel of llama.cpp b11739 (commit 0ce8cd114)
driven through cffi: `pip install --target DIR llama-cpp-py-sync cffi`, then `PYTHONPATH=DIR pytest -s THIS_FILE`.
Its libraries need glibc 2.38 for four C23 names (`__isoc23_strtol`, `_strtoul`, `_strtoull`, `_sscanf`); on glibc
2.36 (Debian 12) they load once `patchelf --clear-symbol-version` has unversioned those four, the GLIBC_2.38
requirement is flagged VER_FLG_WEAK, and LD_PRELOAD names a shim that maps them to strtol & co.

The loader (`steering.llamacpp.LlamaCpp`, shared with experiments/llamacpp_agreement.py and the organism check in
tests/test_llamacpp_organism.py) does what llama.cpp's `--control-vector` loader does, over llama.cpp's own GGUF
parser, then calls `llama_set_adapter_cvec` as `common_init_from_params` does (see its docstring). Everything after
that (which block adds which row, and the sign) is llama.cpp's own code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.test_gguf_io import REPENG_FILE, make_tiny_llama
from toolprior.steering.apply import steer
from toolprior.steering.gguf_io import export_gguf
from toolprior.steering.llamacpp import LlamaCpp, LlamaCppUnavailable
from toolprior.steering.vector import SteeringVector

bindings = pytest.importorskip("llama_cpp_py_sync._cffi_bindings", reason="no prebuilt llama.cpp bindings here")
pytestmark = pytest.mark.usefixtures("one_thread")


def permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf's LlamaModel.permute: Hugging Face's half-split rotary layout to llama.cpp's pairs."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_llama_gguf(model: torch.nn.Module, path: Path) -> Path:
    """The tiny Llama as an F32 GGUF llama.cpp loads (names and keys as convert_hf_to_gguf writes them)."""
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    # A SentencePiece-style vocabulary of placeholder pieces: the check feeds token ids, never text.
    vocab = config.vocab_size
    writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, vocab)])
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    def add(name: str, tensor: torch.Tensor | np.ndarray) -> None:
        array = tensor.detach().float().numpy() if isinstance(tensor, torch.Tensor) else tensor
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))

    add("token_embd.weight", model.model.embed_tokens.weight)
    add("output_norm.weight", model.model.norm.weight)
    add("output.weight", model.lm_head.weight)
    for i, block in enumerate(model.model.layers):
        attn, mlp = block.self_attn, block.mlp
        add(f"blk.{i}.attn_norm.weight", block.input_layernorm.weight)
        add(f"blk.{i}.attn_q.weight", permute(attn.q_proj.weight.detach().numpy(), config.num_attention_heads))
        add(f"blk.{i}.attn_k.weight", permute(attn.k_proj.weight.detach().numpy(), config.num_key_value_heads))
        add(f"blk.{i}.attn_v.weight", attn.v_proj.weight)
        add(f"blk.{i}.attn_output.weight", attn.o_proj.weight)
        add(f"blk.{i}.ffn_norm.weight", block.post_attention_layernorm.weight)
        add(f"blk.{i}.ffn_gate.weight", mlp.gate_proj.weight)
        add(f"blk.{i}.ffn_up.weight", mlp.up_proj.weight)
        add(f"blk.{i}.ffn_down.weight", mlp.down_proj.weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, LlamaCpp]:
    model = make_tiny_llama()
    try:
        return model, LlamaCpp(write_llama_gguf(model, tmp_path_factory.mktemp("llamacpp") / "tiny-llama-f32.gguf"))
    except LlamaCppUnavailable as err:  # e.g. built against a newer glibc than this machine's
        pytest.skip(str(err))


def hf_logits(model: torch.nn.Module, ids: list[int], vector: SteeringVector | None = None, alpha: float = 0.0) -> Any:
    tokens = torch.tensor([ids])
    with torch.no_grad():
        if vector is None:
            return model(input_ids=tokens, attention_mask=torch.ones_like(tokens)).logits
        with steer(model, vector, alpha=alpha):
            return model(input_ids=tokens, attention_mask=torch.ones_like(tokens)).logits


IDS = [1, 17, 42, 8, 63, 5, 90, 33]
TOLERANCE = 1e-4  # float32 in both; measured gaps are ~1e-6


def test_llama_cpp_runs_the_tiny_llama_as_transformers_does(pair):
    model, cpp = pair
    cpp.clear_control_vector()
    gap = (cpp.logits(IDS) - hf_logits(model, IDS)).abs().max().item()
    print(f"unsteered: max |logit gap| llama.cpp vs transformers = {gap:.2e}")
    assert gap < TOLERANCE


@pytest.mark.parametrize("strength", [0.5, -0.5])
def test_our_gguf_in_llama_cpp_matches_steer(tmp_path, pair, strength):
    model, cpp = pair
    generator = torch.Generator().manual_seed(1)
    vector = SteeringVector({1: torch.randn(64, generator=generator), 3: torch.randn(64, generator=generator)})
    cpp.load_control_vector(export_gguf(vector, tmp_path / "v.gguf"), strength)
    got = cpp.logits(IDS)
    cpp.clear_control_vector()
    ours = hf_logits(model, IDS, vector, strength)
    gap = (got - ours).abs().max().item()
    # Against the conventions that would be wrong, for the scale of the agreement.
    early = (got - hf_logits(model, IDS, SteeringVector({0: vector[1], 2: vector[3]}), strength)).abs().max().item()
    late = (got - hf_logits(model, IDS, SteeringVector({2: vector[1]}), strength)).abs().max().item()
    flipped = (got - hf_logits(model, IDS, vector, -strength)).abs().max().item()
    moved = (got - hf_logits(model, IDS)).abs().max().item()
    print(
        f"strength {strength:+g}: gap {gap:.2e}; vs one block early {early:.2e}, one block late {late:.2e}, "
        f"sign flipped {flipped:.2e}; the vector moved the logits by {moved:.2e}"
    )
    assert gap < TOLERANCE
    assert min(early, late, flipped, moved) > 100 * TOLERANCE


def test_repeng_file_in_llama_cpp_matches_steer_of_its_import(pair):
    from toolprior.steering.gguf_io import import_gguf

    model, cpp = pair
    cpp.load_control_vector(REPENG_FILE, 0.5)
    got = cpp.logits(IDS)
    cpp.clear_control_vector()
    gap = (got - hf_logits(model, IDS, import_gguf(REPENG_FILE, model=model), 0.5)).abs().max().item()
    print(f"repeng file, strength 0.5: gap {gap:.2e}")
    assert gap < TOLERANCE
