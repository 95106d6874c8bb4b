"""Training runs unchanged under `accelerate launch` with two CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_tiny_qwen3
from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

pytestmark = pytest.mark.slow


def test_sft_under_accelerate_with_two_cpu_processes(tmp_path, tiny_tokenizer):
    base = tmp_path / "base"
    make_tiny_qwen3(tiny_tokenizer, seed=0).save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    small = BenchmarkConfig().replace(
        train_size=24, val_size=6, mine_size=6, eval_per_category=1, eval_novel_per_category=1
    )
    write_benchmark(tmp_path / "data", seed=5, config=small)
    out = tmp_path / "run"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        # --multi_gpu selects accelerate's torchrun launcher; on a machine without CUDA the processes join over gloo
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533", "-m", "toolprior.cli", "train", "sft", "experiments/configs/sft_organism.yaml",
        "--output-dir", str(out), "--set", f"model.base={base}", "--set", f"data.dir={tmp_path / 'data'}",
        "--set", "lora.r=4", "--set", "training.max_steps=3", "--set", "training.per_device_train_batch_size=2",
        "--set", "training.max_length=4096", "--set", "training.early_stopping_patience=null",
        "--set", "training.save_steps=3", "--set", "training.eval_steps=3",
    ]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 3
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert summary["world_size"] == 2  # two processes really trained together
