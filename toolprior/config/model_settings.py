"""The model settings every config family shares (training runs, probe experiments, studies): each one's help text
and constraints, defined once here in the core, since training, probes and experiments sit in different layers and
none may import another's. A section declares `field(default=..., metadata=MODEL_SETTINGS["quantize"])`."""

from __future__ import annotations

from typing import Any

from toolprior.config.fields import INPUT_PATH, MODEL_PATH, about, known

QUANTIZE = known("toolprior.model_options", "QUANTIZE")
DTYPES = known("toolprior.model_options", "DTYPE_NAMES")

MODEL_SETTINGS: dict[str, dict[str, Any]] = {
    "base": about("the base model: organism, smollm2, or a local model folder", path=MODEL_PATH),
    "adapter": about("the SFT adapter folder the run continues from (loaded trainable)", path=INPUT_PATH),
    "quantize": about("weight quantization of the base (nf4: QLoRA; none: full precision)", choices=QUANTIZE),
    "dtype": about("compute dtype of the base model", choices=DTYPES),
    "trust_remote_code": about("let transformers run the model folder's own code"),
    "device": about("device to load the model on (None: CUDA when available, else CPU)"),
    "quant_storage": about(
        "storage dtype of the 4-bit weights; bfloat16 for FSDP-QLoRA (experiments/configs/accelerate_fsdp_qlora.yaml)",
        choices=DTYPES,
    ),
}
