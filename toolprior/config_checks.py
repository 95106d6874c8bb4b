"""Constraints of config dataclasses whose own module does not carry them: training.sft's sections (that module is
owned by the training code and kept free of config plumbing). Declared by qualified name, so nothing here imports
training.sft; toolprior.config reads this table the first time it checks a config.

Everything else declares its constraints beside its fields (`field(metadata=check(...))`, `check_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolprior.config import INPUT_PATH, MODEL_PATH, Check, CheckContext, declare, known

QUANTIZE = known("toolprior.modeling", "QUANTIZE")
DTYPES = known("toolprior.modeling", "DTYPES")
# training.sft.train_sft accepts exactly these two (see LoraSection.adapter_dtype's comment there).
ADAPTER_DTYPES: tuple[str, ...] = ("float32", "base")

POSITIVE = Check(gt=0)
AT_LEAST_ONE = Check(ge=1)
NON_NEGATIVE = Check(ge=0)
SHARE = Check(ge=0, le=1)


def max_steps_rule(value: Any) -> str | None:
    """TrainingArguments' max_steps: -1 (train by epochs) or a positive step count."""
    return None if value == -1 or value > 0 else f"must be -1 (train by epochs) or > 0, got {value}"


def trainable_tokens_rule(value: Any) -> str | None:
    """`format` (the format's tags) or a list of tokens: a single string must be `format`."""
    if isinstance(value, str) and value != "format":
        return f"expected 'format' or a list of tokens, got {value!r}"
    return None


def _sft_data_hook(section: Any, ctx: CheckContext) -> None:
    """The train and val files SFT reads: given one by one, or train.jsonl / val.jsonl in `dir`."""
    if section.train_file is not None and section.val_file is not None:
        return
    section.dir = ctx.resolve("dir", section.dir, INPUT_PATH)
    folder = Path(section.dir)
    if ctx.check_files and folder.is_dir():
        for name, given in (("train.jsonl", section.train_file), ("val.jsonl", section.val_file)):
            if given is None and not (folder / name).is_file():
                ctx.problem("dir", f"holds no {name} ({folder}); generate it with `toolprior data generate`")


declare(
    "training.sft.ModelSection",
    base=Check(path=MODEL_PATH),
    quantize=Check(choices=QUANTIZE),
    dtype=Check(choices=DTYPES),
    quant_storage=Check(choices=DTYPES),
)
declare(
    "training.sft.LoraSection",
    r=POSITIVE,
    alpha=POSITIVE,
    dropout=Check(ge=0, lt=1),
    target_modules=Check(nonempty=True),
    trainable_tokens=Check(rule=trainable_tokens_rule, whole=True, nonempty=True),
    adapter_dtype=Check(choices=ADAPTER_DTYPES),
)
declare(
    "training.sft.DataSection",
    hook=_sft_data_hook,
    train_file=Check(path=INPUT_PATH),
    val_file=Check(path=INPUT_PATH),
    max_train_cases=AT_LEAST_ONE,
    max_val_cases=AT_LEAST_ONE,
)
declare(
    "training.sft.TrainingSection",
    learning_rate=POSITIVE,
    warmup_ratio=SHARE,
    per_device_train_batch_size=AT_LEAST_ONE,
    gradient_accumulation_steps=AT_LEAST_ONE,
    num_train_epochs=POSITIVE,
    max_steps=Check(rule=max_steps_rule),
    neftune_noise_alpha=NON_NEGATIVE,
    max_length=AT_LEAST_ONE,
    weight_decay=NON_NEGATIVE,
    max_grad_norm=NON_NEGATIVE,
    eval_steps=AT_LEAST_ONE,
    save_steps=AT_LEAST_ONE,
    logging_steps=AT_LEAST_ONE,
    early_stopping_patience=AT_LEAST_ONE,
    save_total_limit=AT_LEAST_ONE,
)
