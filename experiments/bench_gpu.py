"""`make bench-gpu`: tokens/s and peak memory of 50 QLoRA SFT steps on a random-weight model shaped like Qwen3-4B.

    python -m toolprior.experiments.bench_gpu --out runs/bench/bench_gpu.json                 # CUDA; says so plainly if absent
    python -m toolprior.experiments.bench_gpu --shape tiny --device cpu --steps 3 --out X    # the same path on CPU (tests)

The model is a real `Qwen3ForCausalLM` with Qwen3-4B's shape (36 layers, 2560 wide, 9728 MLP, 32/8 heads of 128,
151,936-token vocabulary) and random bf16 weights, saved once to a scratch folder and loaded back through the same
`load_model` as every SFT run: NF4 with double quantisation through bitsandbytes, LoRA r=32 on all-linear, batch
4 x 4 accumulation, the organism's tokenizer and the synthetic benchmark's train cases. Speed needs no trained
weights; the numbers are for comparing machines and settings, not model quality.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, Qwen3Config

from toolprior.atomic import atomic_write_text
from toolprior.modeling import load_tokenizer
from toolprior.training import DataSection, ModelSection, SFTRunConfig, TrainingSection, train_sft
from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

SHAPES: dict[str, dict[str, Any]] = {
    "qwen3_4b": dict(
        hidden_size=2560,
        intermediate_size=9728,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_position_embeddings=40960,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        vocab_size=4096,
        max_position_embeddings=2048,
    ),
}


def build_random_model(shape: str, folder: Path) -> int:
    """Save a random-weight Qwen3 of `shape` (bf16) with the organism's tokenizer to `folder`; its parameter count."""

    tokenizer = load_tokenizer("organism")
    dims = dict(SHAPES[shape])
    dims["vocab_size"] = max(dims["vocab_size"], len(tokenizer))
    config = Qwen3Config(
        **dims, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def run(shape: str, device: str, steps: int, out: Path) -> dict[str, Any]:
    """Build, train `steps` SFT steps, and write the record to `out` (atomically). Without CUDA on a `cuda` run,
    write and return a record that says so and measure nothing."""

    if device == "cuda" and not torch.cuda.is_available():
        record = {"cuda": False, "message": "no CUDA device on this machine; nothing measured"}
        atomic_write_text(out, json.dumps(record, indent=2) + "\n")
        return record

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        params = build_random_model(shape, root / "model")
        sizes = BenchmarkConfig().replace(
            train_size=16 * steps, val_size=8, mine_size=1, eval_per_category=1, eval_novel_per_category=1
        )
        write_benchmark(root / "data", seed=7, config=sizes)
        config = SFTRunConfig(
            output_dir=str(root / "sft"),
            model=ModelSection(base=str(root / "model"), quantize="nf4", dtype="bfloat16", device=device),
            data=DataSection(dir=str(root / "data"), max_val_cases=8),
            training=TrainingSection(
                max_steps=steps,
                per_device_train_batch_size=4,
                gradient_accumulation_steps=4,
                eval_steps=steps,
                save_steps=steps,
                logging_steps=max(1, steps // 5),
                early_stopping_patience=None,
            ),
        )
        result = train_sft(config, progress=False)
    record = {
        "cuda": device == "cuda",
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "shape": shape,
        "params": params,
        "quantize": "nf4 (double quant), bf16 compute",
        "lora": "r=32 alpha=64 all-linear",
        "batch": "4 x 4 accumulation",
        "steps": result.steps,
        "train_seconds": round(result.train_seconds, 2),
        "train_tokens": result.train_tokens,
        "tokens_per_s": round(result.train_tokens / result.train_seconds, 1) if result.train_tokens else None,
        "peak_memory_gib": round(result.peak_memory_bytes / 2**30, 2) if result.peak_memory_bytes else None,
        "trainable_params": result.trainable_params,
        "torch": torch.__version__,
    }
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3_4b")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bench_gpu.json"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = run(args.shape, args.device, args.steps, args.out)
    if not record["cuda"] and args.device == "cuda":
        print(f"bench-gpu: {record['message']} (wrote {args.out})")
    else:
        print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
