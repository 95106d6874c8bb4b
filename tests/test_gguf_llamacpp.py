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

llama.cpp's loader for `--control-vector` (`common_control_vector_load_one`, common/common.cpp) is in its static
common library, not in libllama, so `load_control_vector` below does what it does, over llama.cpp's own GGUF
parser (`gguf_init_from_file` and friends from libggml-base): refuse `direction.0` and non-F32 tensors, put
`direction.k` times the strength at row k - 1, sum repeats; then `llama_set_adapter_cvec(ctx, data, len, n_embd,
1, n_layer)` as `common_init_from_params` calls it with the default --control-vector-layer-range. Everything after
that (which block adds which row, and the sign) is llama.cpp's own code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from steering.apply import steer
from steering.gguf_io import export_gguf
from steering.vector import SteeringVector
from tests.test_gguf_io import REPENG_FILE, make_tiny_llama

bindings = pytest.importorskip("llama_cpp_py_sync._cffi_bindings", reason="no prebuilt llama.cpp bindings here")
pytestmark = pytest.mark.usefixtures("one_thread")

GGML_TYPE_F32 = 0
GGUF_CDEF = """
struct gguf_context;
struct ggml_context;
struct gguf_init_params { bool no_alloc; struct ggml_context ** ctx; };
struct gguf_context * gguf_init_from_file(const char * fname, struct gguf_init_params params);
void gguf_free(struct gguf_context * ctx);
int64_t gguf_get_n_tensors(const struct gguf_context * ctx);
const char * gguf_get_tensor_name(const struct gguf_context * ctx, int64_t tensor_id);
int gguf_get_tensor_type(const struct gguf_context * ctx, int64_t tensor_id);
size_t gguf_get_tensor_offset(const struct gguf_context * ctx, int64_t tensor_id);
size_t gguf_get_tensor_size(const struct gguf_context * ctx, int64_t tensor_id);
size_t gguf_get_data_offset(const struct gguf_context * ctx);
"""


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


class LlamaCpp:
    """One llama.cpp model and context over the prebuilt libllama (F32 KV cache, no flash attention: exact)."""

    def __init__(self, model_path: Path) -> None:
        from cffi import FFI

        try:
            self.lib = bindings.get_lib()
        except RuntimeError as err:  # e.g. built against a newer glibc than this machine's
            pytest.skip(f"the llama.cpp bindings do not load here: {err}")
        self.ffi = bindings.ffi
        self.gguf_ffi = FFI()
        self.gguf_ffi.cdef(GGUF_CDEF)
        self.gguf = self.gguf_ffi.dlopen(str(Path(bindings.__file__).with_name("libggml-base.so.0")))
        self.lib.llama_backend_init()
        params = self.lib.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = self.lib.llama_model_load_from_file(str(model_path).encode(), params)
        assert self.model != self.ffi.NULL, "llama.cpp did not load the tiny Llama"
        ctx_params = self.lib.llama_context_default_params()
        ctx_params.n_ctx, ctx_params.n_batch, ctx_params.n_ubatch = 64, 64, 64
        ctx_params.n_threads = ctx_params.n_threads_batch = 1
        ctx_params.type_k = ctx_params.type_v = GGML_TYPE_F32
        ctx_params.flash_attn_type = 0  # LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = self.lib.llama_init_from_model(self.model, ctx_params)
        assert self.ctx != self.ffi.NULL
        self.n_layer = self.lib.llama_model_n_layer(self.model)
        self.n_embd = self.lib.llama_model_n_embd(self.model)
        self.n_vocab = self.lib.llama_vocab_n_tokens(self.lib.llama_model_get_vocab(self.model))

    def load_control_vector(self, path: Path, strength: float) -> None:
        """`--control-vector-scaled PATH STRENGTH` (see the module docstring)."""
        ctx = self.gguf.gguf_init_from_file(str(path).encode(), {"no_alloc": True, "ctx": self.gguf_ffi.NULL})
        assert ctx != self.gguf_ffi.NULL, f"llama.cpp's GGUF parser refused {path}"
        raw = path.read_bytes()
        rows: dict[int, np.ndarray] = {}
        try:
            for i in range(self.gguf.gguf_get_n_tensors(ctx)):
                name = self.gguf_ffi.string(self.gguf.gguf_get_tensor_name(ctx, i)).decode()
                prefix, _, index = name.partition(".")
                assert prefix == "direction" and int(index) > 0, f"llama.cpp would refuse tensor {name}"
                assert self.gguf.gguf_get_tensor_type(ctx, i) == GGML_TYPE_F32, f"{name} is not F32"
                start = self.gguf.gguf_get_data_offset(ctx) + self.gguf.gguf_get_tensor_offset(ctx, i)
                values = np.frombuffer(raw, np.float32, self.gguf.gguf_get_tensor_size(ctx, i) // 4, start)
                assert values.shape[0] == self.n_embd
                rows[int(index)] = rows.get(int(index), 0) + values * np.float32(strength)
        finally:
            self.gguf.gguf_free(ctx)
        data = np.zeros((max(rows), self.n_embd), np.float32)  # row k - 1 holds direction.k; no row for layer 0
        for k, values in rows.items():
            data[k - 1] = values
        self._cvec = self.ffi.new("float[]", data.ravel().tolist())
        err = self.lib.llama_set_adapter_cvec(self.ctx, self._cvec, data.size, self.n_embd, 1, self.n_layer)
        assert err == 0, f"llama_set_adapter_cvec failed ({err})"

    def clear_control_vector(self) -> None:
        assert self.lib.llama_set_adapter_cvec(self.ctx, self.ffi.NULL, 0, self.n_embd, -1, -1) == 0

    def logits(self, ids: list[int]) -> torch.Tensor:
        """[1, T, vocab] logits at every position of one fresh sequence."""
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        batch = self.lib.llama_batch_init(len(ids), 0, 1)
        try:
            batch.n_tokens = len(ids)
            for t, token in enumerate(ids):
                batch.token[t], batch.pos[t], batch.n_seq_id[t], batch.logits[t] = token, t, 1, 1
                batch.seq_id[t][0] = 0
            assert self.lib.llama_decode(self.ctx, batch) == 0
            rows = [
                np.frombuffer(self.ffi.buffer(self.lib.llama_get_logits_ith(self.ctx, t), 4 * self.n_vocab), np.float32)
                for t in range(len(ids))
            ]
        finally:
            self.lib.llama_batch_free(batch)
        return torch.from_numpy(np.stack(rows).copy())[None]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, LlamaCpp]:
    model = make_tiny_llama()
    return model, LlamaCpp(write_llama_gguf(model, tmp_path_factory.mktemp("llamacpp") / "tiny-llama-f32.gguf"))


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
    from steering.gguf_io import import_gguf

    model, cpp = pair
    cpp.load_control_vector(REPENG_FILE, 0.5)
    got = cpp.logits(IDS)
    cpp.clear_control_vector()
    gap = (got - hf_logits(model, IDS, import_gguf(REPENG_FILE, model=model), 0.5)).abs().max().item()
    print(f"repeng file, strength 0.5: gap {gap:.2e}")
    assert gap < TOLERANCE
