"""GGUF control vectors (steering.gguf_io): our export reads back bit for bit, a file repeng wrote imports with its
layers and sign, and the layer/sign convention (direction.L is added to the output of block L, unflipped) holds on
a real tiny Llama whose steered logits are computed here by hand from its weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from toolprior.cli import main
from toolprior.errors import InputError
from toolprior.steering.apply import steer
from toolprior.steering.gguf_io import export_gguf, import_gguf
from toolprior.steering.vector import SteeringVector, vector_meta

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURES = Path(__file__).parent / "fixtures"
# Written by repeng 0.4.0's own ControlVector.export_gguf; tests/fixtures/README.md says how.
REPENG_FILE = FIXTURES / "repeng_llama_w64.gguf"
WIDTH = 64


def repeng_directions() -> dict[int, torch.Tensor]:
    """The directions the fixture was made from (the same formulas as its generator)."""
    return {
        1: torch.from_numpy(np.linspace(-1.0, 2.0, WIDTH, dtype=np.float32)),
        3: torch.from_numpy(((np.arange(WIDTH) % 7) - 2).astype(np.float32) / 4),
    }


# ---------------------------------------------------------------------------------------------- round trip + layout


@pytest.fixture(scope="module")
def llama() -> torch.nn.Module:
    return make_tiny_llama()


def test_round_trip_toolprior_gguf_toolprior_is_identical(tmp_path, llama):
    meta = vector_meta(
        llama,
        method="mean_diff",
        source="twins",
        position="decision",
        split="mine",
        positive="clarify",
        negative="call_tool",
    )
    generator = torch.Generator().manual_seed(0)
    vector = SteeringVector(
        {1: torch.randn(64, generator=generator), 3: torch.randn(64, generator=generator)}, meta=meta
    )
    back = import_gguf(export_gguf(vector, tmp_path / "v.gguf"), model=llama)
    assert back.layers == vector.layers and back.hook == vector.hook
    assert all(torch.equal(back[k], vector[k]) and back[k].dtype == torch.float32 for k in vector.layers)
    assert back.meta == json.loads(json.dumps(meta))

    half = SteeringVector({3: torch.randn(64, generator=generator).to(torch.bfloat16)})
    again = import_gguf(export_gguf(half, tmp_path / "bf16.gguf"))
    assert again[3].dtype == torch.bfloat16 and torch.equal(again[3], half[3])


def test_file_has_the_layout_llama_cpp_reads(tmp_path, llama):
    from gguf import GGMLQuantizationType, GGUFReader

    meta = vector_meta(
        llama, method="mean_diff", source="twins", position="decision", positive="clarify", negative="call_tool"
    )
    vector = SteeringVector({1: torch.arange(64.0), 2: -torch.ones(64)}, meta=meta)
    reader = GGUFReader(export_gguf(vector, tmp_path / "v.gguf", alpha=-3.0))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "controlvector"
    assert fields["controlvector.model_hint"] == "llama"  # config.model_type, as repeng writes it
    assert fields["controlvector.layer_count"] == 2
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == ["direction.1", "direction.2"]
    for name, layer in (("direction.1", 1), ("direction.2", 2)):
        tensor = tensors[name]
        assert tensor.tensor_type == GGMLQuantizationType.F32 and list(tensor.shape) == [64]
        # alpha is baked in, sign kept: llama.cpp adds the stored values as they are.
        assert np.array_equal(np.asarray(tensor.data), (-3.0 * vector[layer]).numpy())
    assert import_gguf(tmp_path / "v.gguf").meta["derived"] == ["mul -3"]


def test_export_refuses_layer_0_which_llama_cpp_rejects(tmp_path):
    with pytest.raises(ValueError, match="layer 0"):
        export_gguf(SteeringVector({0: torch.ones(4), 1: torch.ones(4)}), tmp_path / "v.gguf")
    assert not (tmp_path / "v.gguf").exists()


# ---------------------------------------------------------------------------------------------- repeng's file


def test_a_file_repeng_wrote_imports_with_its_layers_and_sign():
    vector = import_gguf(REPENG_FILE)
    assert vector.layers == [1, 3] and vector.d_model == WIDTH and vector.hook == "resid_post"
    for layer, expected in repeng_directions().items():
        assert torch.equal(vector[layer], expected)
    assert vector.meta["model_hint"] == "llama" and "fingerprint" not in vector.meta


def test_import_refuses_files_llama_cpp_would_not_load(tmp_path):
    import gguf

    def write(name: str, arch: str, tensors: dict[str, np.ndarray]) -> Path:
        path = tmp_path / name
        writer = gguf.GGUFWriter(path, arch)
        for key, value in tensors.items():
            writer.add_tensor(key, value)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path

    cases = [
        (write("model.gguf", "llama", {"direction.1": np.ones(4, np.float32)}), "not a control vector"),
        (write("name.gguf", "controlvector", {"dir.1": np.ones(4, np.float32)}), "not a direction"),
        (write("shape.gguf", "controlvector", {"direction.1": np.ones((2, 2), np.float32)}), "one dimension"),
    ]
    text = tmp_path / "text.gguf"
    text.write_text("not gguf")
    cases.append((text, "not a readable GGUF"))
    for path, message in cases:
        with pytest.raises(InputError, match=message) as err:
            import_gguf(path)
        assert len(err.value.problems) == 1 and str(path) in str(err.value)


# ---------------------------------------------------------------------------------------------- conventions by hand


def make_tiny_llama(layers: int = 4) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=WIDTH,
        intermediate_size=2 * WIDTH,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


def llama_logits_by_hand(model: torch.nn.Module, ids: torch.Tensor, add: dict[int, torch.Tensor]) -> torch.Tensor:
    """Llama's forward pass written out from its weights (one row, no padding), adding `add[k]` to the residual
    stream right after block k, where llama.cpp's build_cvec adds direction.k (before `l_out`)."""
    config = model.config
    eps, heads, kv_heads = config.rms_norm_eps, config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    theta = config.rope_parameters["rope_theta"]

    def rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    steps = ids.shape[1]
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.arange(steps, dtype=torch.float32)[:, None] * inv_freq[None, :]
    cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
    causal = torch.full((steps, steps), float("-inf")).triu(1)
    h = model.model.embed_tokens.weight[ids[0]]
    for index, block in enumerate(model.model.layers):
        attn, mlp = block.self_attn, block.mlp
        x = rms(h, block.input_layernorm.weight)
        q = (x @ attn.q_proj.weight.T).view(steps, heads, head_dim).transpose(0, 1)
        k = (x @ attn.k_proj.weight.T).view(steps, kv_heads, head_dim).transpose(0, 1)
        v = (x @ attn.v_proj.weight.T).view(steps, kv_heads, head_dim).transpose(0, 1)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k, v = k.repeat_interleave(heads // kv_heads, 0), v.repeat_interleave(heads // kv_heads, 0)
        probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(head_dim) + causal, dim=-1)
        h = h + (probs @ v).transpose(0, 1).reshape(steps, -1) @ attn.o_proj.weight.T
        x = rms(h, block.post_attention_layernorm.weight)
        gate = torch.nn.functional.silu(x @ mlp.gate_proj.weight.T)
        h = h + (gate * (x @ mlp.up_proj.weight.T)) @ mlp.down_proj.weight.T
        if index in add:
            h = h + add[index]
    return (rms(h, model.model.norm.weight) @ model.lm_head.weight.T)[None]


@torch.no_grad()
def test_layer_and_sign_conventions_match_logits_computed_by_hand(llama):
    model = llama
    ids = torch.tensor([[5, 17, 42, 8, 63, 2, 90]])
    mask = torch.ones_like(ids)
    plain = model(input_ids=ids, attention_mask=mask).logits
    # First: the hand-written forward pass is Llama's.
    assert torch.allclose(plain, llama_logits_by_hand(model, ids, {}), atol=1e-5, rtol=1e-4)

    vector = import_gguf(REPENG_FILE, model=model)  # direction.1 and direction.3 from repeng's file
    d = repeng_directions()
    alpha = 0.5
    with steer(model, vector, alpha=alpha):
        steered = model(input_ids=ids, attention_mask=mask).logits
    expected = llama_logits_by_hand(model, ids, {1: alpha * d[1], 3: alpha * d[3]})
    assert torch.allclose(steered, expected, atol=1e-5, rtol=1e-4)

    # The check can tell the conventions apart: one block early, one block late, or the sign flipped is far off.
    wrong = {
        "one block early": {0: alpha * d[1], 2: alpha * d[3]},
        "one block late": {2: alpha * d[1]},  # block 4 does not exist in a 4-block model
        "sign flipped": {1: -alpha * d[1], 3: -alpha * d[3]},
    }
    for label, add in wrong.items():
        gap = (steered - llama_logits_by_hand(model, ids, add)).abs().max().item()
        assert gap > 100 * 1e-5, f"{label}: only {gap:.2e} away, the tolerance above would not tell them apart"


# ---------------------------------------------------------------------------------------------- command line


def test_cli_export_and_import(tmp_path, capsys, llama):
    meta = vector_meta(
        llama,
        method="mean_diff",
        source="twins",
        position="decision",
        split="mine",
        positive="clarify",
        negative="call_tool",
    )
    vector = SteeringVector({0: torch.randn(64), 1: torch.randn(64), 2: torch.randn(64)}, meta=meta)
    source = vector.save(tmp_path / "v.safetensors")

    assert main(["steer", "export", "--format", "gguf", str(source), str(tmp_path / "v.gguf")]) == 2
    assert "layer 0 cannot be exported" in capsys.readouterr().err

    gguf_path = tmp_path / "v.gguf"
    assert main(["steer", "export", "--layers", "1,2", str(source), str(gguf_path)]) == 0
    assert main(["steer", "import", str(gguf_path), str(tmp_path / "back.safetensors")]) == 0
    back = SteeringVector.load(tmp_path / "back.safetensors", model=llama)
    assert back.layers == [1, 2] and all(torch.equal(back[k], vector[k]) for k in (1, 2))

    assert main(["steer", "import", str(REPENG_FILE), str(tmp_path / "repeng.safetensors")]) == 0
    assert SteeringVector.load(tmp_path / "repeng.safetensors").layers == [1, 3]
    assert "layers [1, 3]" in capsys.readouterr().out
