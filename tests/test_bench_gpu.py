"""`make bench-gpu`: the same QLoRA SFT path on a tiny shape on CPU (tokens/s recorded), and a plain message with
nothing measured when a CUDA run finds no GPU."""

import json

import pytest
import torch

from toolprior.experiments.bench_gpu import SHAPES, run


def test_tiny_shape_trains_nf4_lora_and_records_speed(tmp_path):
    record = run("tiny", "cpu", steps=2, out=tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text()) == record
    assert record["steps"] == 2 and record["train_tokens"] > 0 and record["tokens_per_s"] > 0
    assert record["peak_memory_gib"] is None  # CPU: no CUDA allocator to read
    hidden, inter, layers = (SHAPES["tiny"][k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers"))
    per_layer = 32 * ((hidden + 2 * 32) + (hidden + 1 * 32) * 2 + (2 * 32 + hidden)) + 32 * (hidden + inter) * 3
    assert record["trainable_params"] == layers * per_layer  # r*(in+out) over q,k,v,o,gate,up,down


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_run_without_a_gpu_says_so_and_measures_nothing(tmp_path):
    record = run("qwen3_4b", "cuda", steps=50, out=tmp_path / "b.json")
    assert record == {"cuda": False, "message": "no CUDA device on this machine; nothing measured"}
    assert json.loads((tmp_path / "b.json").read_text()) == record
