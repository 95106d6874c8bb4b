"""`sft_step_vs_plain_trl`: seconds per SFT step of our `train_sft` against plain TRL (`SFTTrainer` + PEFT) with the
same model, data, LoRA and batch, on the SmolLM2 organism's recipe (experiments/configs/sft_smollm2.yaml), in bf16
and NF4.

Both sides train `steps` optimizer steps from the same base on the same rows (`training.sft.case_row`, the
benchmark's first train cases) with the same TRL `SFTConfig` (`training.sft.sft_config`: batch, accumulation,
NEFTune, assistant-only loss, max length) and the same PEFT `LoraConfig` (`training.lora.lora_config`); no eval and no
checkpoint fall inside the steps. Ours adds what the recipe adds: the adapters kept in the base's dtype, and on CPU
the loss scored at the labelled positions only (`training.labelled_loss`). The plain side gets one fix without
which it cannot train this model at all (`training.lora.expose_head_bias`: TRL's fused LM head reads the tied head's
bias through PEFT's trainable-token wrapper, which raises). Each side's time is its `train()` call
alone (the model and data are loaded before the clock starts), divided by the steps; the sides alternate
(ours, plain, ours, plain, ...) and the ratio is of the medians, as in experiments/bench.py.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from toolprior.config import load_config
from toolprior.modeling import load_model, load_tokenizer
from toolprior.training.benchmark import BenchmarkConfig, write_benchmark
from toolprior.training.lora import expose_head_bias, lora_config
from toolprior.training.run_configs import SFTRunConfig
from toolprior.training.sft import case_row, fit_rows, load_training_cases, sft_config, train_sft

RECIPE = "experiments/configs/sft_smollm2.yaml"


def recipe(data: Path, out: Path, quantize: str, steps: int) -> SFTRunConfig:
    """The organism's SFT config for `steps` steps on `data`, with no eval, checkpoint or early stop inside them."""
    return load_config(
        SFTRunConfig,
        RECIPE,
        overrides=[
            f"output_dir={out}",
            f"data.dir={data}",
            f"model.quantize={quantize}",
            f"training.max_steps={steps}",
            "training.eval_steps=100000",
            "training.save_steps=100000",
            "training.early_stopping_patience=null",
            "training.logging_steps=1",
        ],
    )


def plain_trl_seconds(config: SFTRunConfig) -> float:
    """Seconds of plain TRL's `train()` for `config`: SFTTrainer with the same SFTConfig, rows and LoraConfig."""
    # lazy: datasets and TRL take seconds to import; only this measurement needs them here
    from datasets import Dataset
    from trl import SFTTrainer

    train_cases, _ = load_training_cases(config)
    tokenizer = load_tokenizer(config.model.base)
    model = load_model(config.model.base, quantize=config.model.quantize, dtype=config.model.dtype)
    rows, _ = fit_rows([case_row(c) for c in train_cases], tokenizer, config.training.max_length)
    args = sft_config(config, use_cpu=True, has_eval=False)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(config.lora, tokenizer),
    )
    # plain TRL 1.x + PEFT crash here without it: TRL's fused LM head reads `lm_head.bias`, which PEFT's
    # trainable-token wrapper of a tied head does not pass through (AttributeError on the first step)
    expose_head_bias(trainer.model)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def sft_step_ratio(quantize: str = "none", steps: int = 4, repeats: int = 2) -> dict[str, Any]:
    """{"ratio": ours / plain seconds per step (medians), "ours_s_per_step", "plain_s_per_step", ...}."""
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        # enough train cases for the steps' batches; the organism's seed
        batch = 8 * steps
        write_benchmark(data, seed=7, config=BenchmarkConfig().replace(train_size=batch, val_size=4, mine_size=4))
        for i in range(repeats):
            config = recipe(data, Path(tmp) / f"ours{i}", quantize, steps)
            ours.append(train_sft(config, progress=False).train_seconds / steps)
            plain.append(plain_trl_seconds(recipe(data, Path(tmp) / f"plain{i}", quantize, steps)) / steps)
    ours_s, plain_s = statistics.median(ours), statistics.median(plain)
    return {
        "ratio": ours_s / plain_s,
        "ours_s_per_step": round(ours_s, 3),
        "plain_s_per_step": round(plain_s, 3),
        "steps": steps,
        "repeats": repeats,
        "quantize": quantize,
        "recipe": RECIPE,
    }
