"""The config family of every training run: the model, LoRA, data and training sections that SFT
(training.sft), SimPO (training.simpo), DPO (training.dpo) and adversarial SFT (training.adv_sft) compose.

Each setting is defined once, in `SETTINGS`: its help text (what `--help` and the docs show,
`toolprior.config.field_help`) and its constraints. A section lists the settings it takes, in its YAML order, with
its own default (`learning_rate: float = field(default=2e-4, metadata=SETTINGS["learning_rate"])`). The SFT and
preference sections differ in defaults (a preference run starts from the SFT agent at a far smaller learning rate)
and in the settings only one method has (NEFTune, early stopping, the starting adapter), never in what a shared
setting means or accepts.

Field names mirror TRL's SFTConfig / CPOConfig / DPOConfig, which the trainers pass them on to; the help texts are
ours (TRL's describe TRL's behaviour, e.g. truncation where these runs leave a long case out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolprior.actions import ACTION_NAMES
from toolprior.config import INPUT_PATH, CheckContext, about, max_steps_rule
from toolprior.config.model_settings import MODEL_SETTINGS

# What `lora.adapter_dtype` may be (see LoraSection): train_sft builds the PEFT model accordingly.
ADAPTER_DTYPES: tuple[str, ...] = ("float32", "base")


def trainable_tokens_rule(value: Any) -> str | None:
    """`format` (the format's tags) or a list of tokens: a single string must be `format`."""
    if isinstance(value, str) and value != "format":
        return f"expected 'format' or a list of tokens, got {value!r}"
    return None


# name -> field metadata (help text and constraints): every shared setting of the training sections, defined once.
SETTINGS: dict[str, dict[str, Any]] = {
    # model: shared with the probe and study configs (toolprior.config.model_settings)
    **MODEL_SETTINGS,
    # training: what TRL's trainer configs take under the same names
    "learning_rate": about("peak learning rate of AdamW", gt=0),
    "lr_scheduler_type": about("learning-rate schedule after warmup (transformers' SchedulerType)"),
    "warmup_ratio": about("share of the steps spent warming the learning rate up", ge=0, le=1),
    "per_device_train_batch_size": about("examples per device per forward pass", ge=1),
    "gradient_accumulation_steps": about("forward passes summed into one optimizer step", ge=1),
    "num_train_epochs": about("passes over the training data (when max_steps is -1)", gt=0),
    "max_steps": about("optimizer steps to train for; -1 trains by epochs", rule=max_steps_rule),
    "neftune_noise_alpha": about("NEFTune embedding-noise scale; None turns it off", ge=0),
    "assistant_only_loss": about("train on the assistant's tokens only, not the prompt"),
    "max_length": about("longest example in tokens; a longer one is left out, never truncated", ge=1),
    "weight_decay": about("AdamW weight decay", ge=0),
    "max_grad_norm": about("gradient-norm clip; 0 turns clipping off", ge=0),
    "eval_steps": about("optimizer steps between validation losses", ge=1),
    "save_steps": about("optimizer steps between checkpoints (a rerun resumes from the last)", ge=1),
    "logging_steps": about("optimizer steps between logged losses", ge=1),
    "early_stopping_patience": about("validations without improvement before stopping; None: never stop early", ge=1),
    "save_total_limit": about("checkpoints kept on disk", ge=1),
    "train_sampling_strategy": about(
        "batch order: group_by_length (less padding: 5x faster on CPU with the organism's lengths) or random"
    ),
    "gradient_checkpointing": about(
        "recompute activations to save memory; None: on for CUDA, off on CPU (it doubles a tiny model's time)"
    ),
    "seed": about("seed of the run (weights init of new parameters, data order, dropout)"),
    "labelled_positions_loss": about(
        "CPU only: apply the LM head to the labelled positions alone (training.labelled_loss), not TRL's fused "
        "head over every position in float32"
    ),
    "extra": about("any other field of TRL's trainer config, passed on as given"),
}


# ------------------------------------------------------------------------------------------------------ model


@dataclass
class ModelSection:
    """The model SFT trains a fresh LoRA adapter on."""

    base: str = field(default="organism", metadata=SETTINGS["base"])
    quantize: str = field(default="nf4", metadata=SETTINGS["quantize"])
    dtype: str = field(default="float32", metadata=SETTINGS["dtype"])
    trust_remote_code: bool = field(default=False, metadata=SETTINGS["trust_remote_code"])
    device: str | None = field(default=None, metadata=SETTINGS["device"])
    quant_storage: str | None = field(default=None, metadata=SETTINGS["quant_storage"])


@dataclass
class PreferenceModelSection:
    """The agent to continue from: `base` (organism or a local model folder) with the SFT `adapter` on top."""

    base: str = field(default="organism", metadata=SETTINGS["base"])
    adapter: str = field(default="runs/sft_organism/adapter", metadata=SETTINGS["adapter"])
    quantize: str = field(default="nf4", metadata=SETTINGS["quantize"])
    dtype: str = field(default="float32", metadata=SETTINGS["dtype"])
    trust_remote_code: bool = field(default=False, metadata=SETTINGS["trust_remote_code"])
    device: str | None = field(default=None, metadata=SETTINGS["device"])


# ------------------------------------------------------------------------------------------------------- LoRA


@dataclass
class LoraSection:
    """The LoRA adapter SFT trains (PEFT's LoraConfig)."""

    r: int = field(default=32, metadata=about("LoRA rank", gt=0))
    alpha: int = field(default=64, metadata=about("LoRA alpha (the update is scaled by alpha / r)", gt=0))
    dropout: float = field(default=0.05, metadata=about("dropout on the LoRA input", ge=0, lt=1))
    target_modules: str | list[str] = field(
        default="all-linear",
        metadata=about(
            "modules LoRA wraps: all-linear, or names / patterns (training.preflight checks them)", nonempty=True
        ),
    )
    exclude_modules: list[str] | None = field(default=None, metadata=about("modules left out of target_modules"))
    # Embedding rows trained besides LoRA (PEFT trainable tokens): "format" = the format's tags that the tokenizer
    # holds as added tokens (`toolprior.tokenizer.FORMAT_TOKENS`, new rows on a real base such as SmolLM2), or a
    # list of tokens. Tied input/output embeddings stay tied. Every other row is left as it is.
    trainable_tokens: str | list[str] | None = field(
        default=None,
        metadata=about(
            "embedding rows trained besides LoRA: 'format' (the format's tags) or a list of tokens",
            rule=trainable_tokens_rule,
            whole=True,
            nonempty=True,
        ),
    )
    # "float32": PEFT's default (adapters upcast to fp32 over a bf16 base). "base": adapters in the base model's
    # dtype, as TRL does for QLoRA; on CPU a bf16 base with bf16 adapters trains 1.4x faster (README, the organism).
    adapter_dtype: str = field(
        default="float32",
        metadata=about("dtype of the LoRA weights: float32, or base (the base model's)", choices=ADAPTER_DTYPES),
    )


# ------------------------------------------------------------------------------------------------------- data


@dataclass
class DataSection:
    """The case files SFT trains and validates on."""

    dir: str = field(default="runs/data", metadata=about("folder holding train.jsonl and val.jsonl"))
    train_file: str | None = field(
        default=None, metadata=about("the training cases (default: dir/train.jsonl)", path=INPUT_PATH)
    )
    val_file: str | None = field(
        default=None, metadata=about("the validation cases (default: dir/val.jsonl)", path=INPUT_PATH)
    )
    max_train_cases: int | None = field(default=None, metadata=about("keep the first N training cases", ge=1))
    # The validation loss only drives early stopping and checkpoint choice; a slice of val is enough for that.
    max_val_cases: int | None = field(default=None, metadata=about("keep the first N validation cases", ge=1))
    # The case study's multi-turn arc: a clarify case that has a follow-up trains as two turns (clarify; the user
    # answers; think about the resolved ambiguity, then the tool call), so the hypothesis that the model compresses
    # that arc into one turn can be tested. Off: every case trains on its first turn only.
    clarify_arc: bool = field(
        default=False, metadata=about("train a clarify case with a follow-up as its two-turn arc")
    )

    def check_config(self, ctx: CheckContext) -> None:
        """The train and val files SFT reads: given one by one, or train.jsonl / val.jsonl in `dir`."""
        if self.train_file is not None and self.val_file is not None:
            return
        self.dir = ctx.resolve("dir", self.dir, INPUT_PATH)
        folder = Path(self.dir)
        if ctx.check_files and folder.is_dir():
            for name, given in (("train.jsonl", self.train_file), ("val.jsonl", self.val_file)):
                if given is None and not (folder / name).is_file():
                    ctx.problem("dir", f"holds no {name} ({folder}); generate it with `toolprior data generate`")


@dataclass
class PairsDataSection:
    """`pairs_file` from `toolprior pairs`; `eval_files` are held-out case files checked again before training (no
    pair may be on one of their cases or on a twin of one); `max_pairs` keeps the first N. `focus_action` with
    `focus_share` trains on a mix like the case study's (76% of its 346 pairs had expected action clarify): every
    pair whose expected action is `focus_action` is kept, and a seeded sample of the others, so that the focus
    pairs make `focus_share` of the set (all the others when there are too few; the sample's seed is fixed, so
    every run focused alike trains on the same pairs). `max_pairs` cuts the file before the focus."""

    pairs_file: str = field(default="runs/pairs.jsonl", metadata=about("the mined preference pairs", path=INPUT_PATH))
    eval_files: list[str] = field(
        default_factory=list, metadata=about("held-out case files no pair may touch", path=INPUT_PATH)
    )
    max_pairs: int | None = field(default=None, metadata=about("keep the first N pairs", ge=1))
    focus_action: str | None = field(
        default=None, metadata=about("keep every pair expecting this action, and sample the rest", choices=ACTION_NAMES)
    )
    focus_share: float | None = field(
        default=None, metadata=about("the share of the focus action's pairs in the set", gt=0, lt=1)
    )

    def check_config(self, ctx: CheckContext) -> None:
        """`focus_action` and `focus_share` come together (judged only when both were accepted: a refused value
        stands as None and is reported once, on its own line)."""
        if not (ctx.accepted("focus_action") and ctx.accepted("focus_share")):
            return
        if (self.focus_action is None) != (self.focus_share is None):
            missing = "focus_share" if self.focus_share is None else "focus_action"
            ctx.problem(missing, "focus_action and focus_share are set together")


# --------------------------------------------------------------------------------------------------- training


@dataclass
class TrainingSection:
    """The SFTConfig fields a recipe usually sets; anything else of TRL's SFTConfig goes under `extra`."""

    learning_rate: float = field(default=2e-4, metadata=SETTINGS["learning_rate"])
    lr_scheduler_type: str = field(default="cosine", metadata=SETTINGS["lr_scheduler_type"])
    warmup_ratio: float = field(default=0.03, metadata=SETTINGS["warmup_ratio"])
    per_device_train_batch_size: int = field(default=4, metadata=SETTINGS["per_device_train_batch_size"])
    gradient_accumulation_steps: int = field(default=4, metadata=SETTINGS["gradient_accumulation_steps"])
    num_train_epochs: float = field(default=2.0, metadata=SETTINGS["num_train_epochs"])
    max_steps: int = field(default=-1, metadata=SETTINGS["max_steps"])
    neftune_noise_alpha: float | None = field(default=5.0, metadata=SETTINGS["neftune_noise_alpha"])
    assistant_only_loss: bool = field(default=True, metadata=SETTINGS["assistant_only_loss"])
    max_length: int = field(default=1024, metadata=SETTINGS["max_length"])
    weight_decay: float = field(default=0.0, metadata=SETTINGS["weight_decay"])
    max_grad_norm: float = field(default=1.0, metadata=SETTINGS["max_grad_norm"])
    eval_steps: int = field(default=50, metadata=SETTINGS["eval_steps"])
    save_steps: int = field(default=50, metadata=SETTINGS["save_steps"])
    logging_steps: int = field(default=10, metadata=SETTINGS["logging_steps"])
    early_stopping_patience: int | None = field(default=3, metadata=SETTINGS["early_stopping_patience"])
    save_total_limit: int = field(default=2, metadata=SETTINGS["save_total_limit"])
    train_sampling_strategy: str = field(default="group_by_length", metadata=SETTINGS["train_sampling_strategy"])
    gradient_checkpointing: bool | None = field(default=None, metadata=SETTINGS["gradient_checkpointing"])
    seed: int = field(default=0, metadata=SETTINGS["seed"])
    labelled_positions_loss: bool = field(default=True, metadata=SETTINGS["labelled_positions_loss"])
    extra: dict[str, Any] = field(default_factory=dict, metadata=SETTINGS["extra"])


@dataclass
class PreferenceTrainingSection:
    """The TrainingArguments a preference run usually sets (defaults: the case study's SimPO run); anything else of
    TRL's CPOConfig / DPOConfig goes under `extra`."""

    learning_rate: float = field(default=5e-7, metadata=SETTINGS["learning_rate"])
    lr_scheduler_type: str = field(default="cosine", metadata=SETTINGS["lr_scheduler_type"])
    warmup_ratio: float = field(default=0.1, metadata=SETTINGS["warmup_ratio"])
    per_device_train_batch_size: int = field(default=2, metadata=SETTINGS["per_device_train_batch_size"])
    gradient_accumulation_steps: int = field(default=4, metadata=SETTINGS["gradient_accumulation_steps"])
    num_train_epochs: float = field(default=2.0, metadata=SETTINGS["num_train_epochs"])
    max_steps: int = field(default=-1, metadata=SETTINGS["max_steps"])
    max_length: int = field(default=1024, metadata=SETTINGS["max_length"])
    max_grad_norm: float = field(default=0.5, metadata=SETTINGS["max_grad_norm"])
    weight_decay: float = field(default=0.0, metadata=SETTINGS["weight_decay"])
    logging_steps: int = field(default=10, metadata=SETTINGS["logging_steps"])
    save_steps: int = field(default=50, metadata=SETTINGS["save_steps"])
    save_total_limit: int = field(default=2, metadata=SETTINGS["save_total_limit"])
    gradient_checkpointing: bool | None = field(default=None, metadata=SETTINGS["gradient_checkpointing"])
    seed: int = field(default=0, metadata=SETTINGS["seed"])
    extra: dict[str, Any] = field(default_factory=dict, metadata=SETTINGS["extra"])


__all__ = [
    "ADAPTER_DTYPES",
    "SETTINGS",
    "DataSection",
    "LoraSection",
    "ModelSection",
    "PairsDataSection",
    "PreferenceModelSection",
    "PreferenceTrainingSection",
    "TrainingSection",
    "trainable_tokens_rule",
]
