"""Preference retraining on the mined pairs: SimPO (the case study's fix), and two baselines on the very same pairs,
DPO and adversarial SFT (plain SFT on the chosen turns, rejected discarded).

    toolprior train simpo experiments/configs/simpo_organism.yaml --set training.learning_rate=1.0e-4
    toolprior train dpo experiments/configs/dpo_organism.yaml
    toolprior train adv-sft experiments/configs/adv_sft_organism.yaml

All three continue from the SFT agent: the NF4 base with the SFT adapter loaded trainable
(`PeftModel.from_pretrained(..., is_trainable=True)` through `toolprior.modeling.load_model`), and train that same
adapter further; no second adapter, no merge (merging into NF4 weights would re-quantise them). The result is an
adapter folder that loads exactly like the SFT one. A run folder holds `checkpoint-*` (while training; a rerun
resumes from the last one), `adapter/`, `train_summary.json` and `config.yaml` (the resolved config).

SimPO through TRL (`trl.experimental.cpo.CPOTrainer`, `loss_type="simpo"`, `cpo_alpha=0`: pure SimPO, no CPO
behaviour-cloning term). TRL's loss is `-logsigmoid(beta * (avg_logp(chosen) - avg_logp(rejected)) - simpo_gamma)`:
`simpo_gamma` is the ABSOLUTE target reward margin, gamma in the SimPO paper's equation. The paper tunes and reports
gamma as a ratio to beta (gamma/beta in 0.3 to 0.8), so the config takes `preference.gamma_beta_ratio` and passes
`simpo_gamma = gamma_beta_ratio * beta` (see `simpo_loss_settings`). The case study's "beta 1.0, gamma 0.3 (target
margin)" is the same run either way: at beta 1.0 the ratio 0.3 is the margin 0.3.

DPO through `trl.DPOTrainer`. The reference must be the SFT agent (base + SFT adapter), not the bare base. TRL 1.16
has no `model_adapter_name` / `ref_adapter_name` any more; given a `PeftModel` that already carries an adapter and
no `peft_config`, DPOTrainer copies the "default" adapter into a frozen adapter named "ref" at construction and
computes reference log-probabilities with "ref" active (`use_adapter(model, "ref")`). Passing the trainable SFT
adapter and no `peft_config` therefore gives reference = base + SFT adapter at step 0, which is what we want (with
a `peft_config` TRL would wrap a fresh adapter and use the adapter-disabled base as reference). Only the "default"
adapter is saved.

Adversarial SFT through `trl.SFTTrainer` with training.sft's own `sft_config`: the prompt + chosen conversations,
assistant-only loss, starting from the SFT adapter.

Data. SimPO and DPO train on the same text rows (`preference_text_row`): the prompt rendered by the tokenizer's chat
template with the case's tools and the generation prompt, and each completion rendered by the same template and cut
after the end-of-turn token. Pre-rendering matters: CPOTrainer applies the chat template without the row's tools,
so conversational rows would silently lose the tool list the agent saw. Adversarial SFT uses conversational rows
with tools, exactly like SFT. A pair longer than `training.max_length` tokens is left out rather than truncated
(`fit_pairs`: truncation would cut the action block the pair is about); the ids left out are listed in
train_summary.json, and all three methods leave out the same ones at the same max_length.

Adapter precision. SFTTrainer and DPOTrainer cast the trainable LoRA weights of a 4-bit model to bfloat16 (the
QLoRA paper's advice). At preference learning rates (5e-7 in the case study) one AdamW step is below bfloat16's
resolution of a LoRA weight, so the update would be rounded away; the trainers here put the exact weights back
(float32 as loaded) after the trainer is built. CPOTrainer does not cast them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolprior.atomic import atomic_write_text
from toolprior.config import INPUT_PATH, MODEL_PATH, check, dump_yaml, known, max_steps_rule
from toolprior.errors import InputError, Problem
from training.checkpoints import finish_from_checkpoint, keep_dtypes_on_resume, stopped_at
from training.pairs import Pair
from training.sft import TrainingSection as SFTTrainingSection


@dataclass
class PreferenceModelSection:
    """The agent to continue from: `base` (organism or a local model folder) with the SFT `adapter` on top."""

    base: str = field(default="organism", metadata=check(path=MODEL_PATH))
    adapter: str = field(default="runs/sft_organism/adapter", metadata=check(path=INPUT_PATH))
    quantize: str = field(default="nf4", metadata=check(choices=known("toolprior.modeling", "QUANTIZE")))
    dtype: str = field(default="float32", metadata=check(choices=known("toolprior.modeling", "DTYPES")))
    trust_remote_code: bool = False
    device: str | None = None


@dataclass
class PairsDataSection:
    """`pairs_file` from `toolprior pairs`; `eval_files` are held-out case files checked again before training (no
    pair may be on one of their cases or on a twin of one); `max_pairs` keeps the first N."""

    pairs_file: str = field(default="runs/pairs.jsonl", metadata=check(path=INPUT_PATH))
    eval_files: list[str] = field(default_factory=list, metadata=check(path=INPUT_PATH))
    max_pairs: int | None = field(default=None, metadata=check(ge=1))


@dataclass
class SimPOSection:
    """beta: SimPO's reward scale. gamma_beta_ratio: the target margin as a ratio to beta (the SimPO paper's tuned
    quantity); TRL's absolute `simpo_gamma` = gamma_beta_ratio * beta."""

    beta: float = field(default=1.0, metadata=check(gt=0))
    gamma_beta_ratio: float = field(default=0.3, metadata=check(ge=0))
    label_smoothing: float = field(default=0.0, metadata=check(ge=0, lt=0.5))


@dataclass
class DPOSection:
    """beta: DPO's KL strength against the reference (the SFT agent); loss_type: one of TRL's DPO losses."""

    beta: float = field(default=0.1, metadata=check(gt=0))
    loss_type: str = field(default="sigmoid", metadata=check(nonempty=True))


@dataclass
class PreferenceTrainingSection:
    """The TrainingArguments a preference run usually sets (defaults: the case study's SimPO run); anything else of
    TRL's CPOConfig / DPOConfig goes under `extra`."""

    learning_rate: float = field(default=5e-7, metadata=check(gt=0))
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = field(default=0.1, metadata=check(ge=0, le=1))
    per_device_train_batch_size: int = field(default=2, metadata=check(ge=1))
    gradient_accumulation_steps: int = field(default=4, metadata=check(ge=1))
    num_train_epochs: float = field(default=2.0, metadata=check(gt=0))
    max_steps: int = field(default=-1, metadata=check(rule=max_steps_rule))
    max_length: int = field(default=1024, metadata=check(ge=1))
    max_grad_norm: float = field(default=0.5, metadata=check(ge=0))
    weight_decay: float = field(default=0.0, metadata=check(ge=0))
    logging_steps: int = field(default=10, metadata=check(ge=1))
    save_steps: int = field(default=50, metadata=check(ge=1))
    save_total_limit: int = field(default=2, metadata=check(ge=1))
    # None: on for CUDA (memory), off on CPU where recomputing activations doubles the time of a tiny model.
    gradient_checkpointing: bool | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimPORunConfig:
    output_dir: str = "runs/simpo"
    model: PreferenceModelSection = field(default_factory=PreferenceModelSection)
    data: PairsDataSection = field(default_factory=PairsDataSection)
    preference: SimPOSection = field(default_factory=SimPOSection)
    training: PreferenceTrainingSection = field(default_factory=PreferenceTrainingSection)


@dataclass
class DPORunConfig:
    output_dir: str = "runs/dpo"
    model: PreferenceModelSection = field(default_factory=PreferenceModelSection)
    data: PairsDataSection = field(default_factory=PairsDataSection)
    preference: DPOSection = field(default_factory=DPOSection)
    training: PreferenceTrainingSection = field(default_factory=PreferenceTrainingSection)


def _adv_sft_training() -> SFTTrainingSection:
    # No validation split for pairs (no early stopping), and no NEFTune: the only difference from the preference
    # runs on the same pairs should be the loss.
    return SFTTrainingSection(
        learning_rate=5e-7,
        warmup_ratio=0.1,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        neftune_noise_alpha=None,
        max_grad_norm=0.5,
        early_stopping_patience=None,
        train_sampling_strategy="random",  # as the preference trainers
    )


@dataclass
class AdvSFTRunConfig:
    """SFT on the pairs' chosen turns; `training` is training.sft's TrainingSection (SFTConfig fields)."""

    output_dir: str = "runs/adv_sft"
    model: PreferenceModelSection = field(default_factory=PreferenceModelSection)
    data: PairsDataSection = field(default_factory=PairsDataSection)
    training: SFTTrainingSection = field(default_factory=_adv_sft_training)


@dataclass(frozen=True)
class PreferenceResult:
    method: str
    output_dir: Path
    adapter_dir: Path
    train_seconds: float
    pairs: int
    steps: int
    train_loss: float | None
    final_loss: float | None
    trainable_params: int
    resumed_from: str | None


# ----------------------------------------------------------------------------------------------- settings and data


def _bad(field_name: str, message: str) -> InputError:
    return InputError(Problem("<preference config>", None, field_name, message))


def simpo_loss_settings(config: SimPORunConfig) -> dict[str, Any]:
    """The SimPO loss values passed to TRL's CPOConfig: loss_type "simpo", cpo_alpha 0.0 (pure SimPO), beta, and
    the absolute margin simpo_gamma = gamma_beta_ratio * beta."""
    p = config.preference
    if not p.beta > 0:
        raise _bad("preference.beta", f"must be > 0, got {p.beta}")
    if p.gamma_beta_ratio < 0:
        raise _bad("preference.gamma_beta_ratio", f"must be >= 0, got {p.gamma_beta_ratio}")
    return {
        "loss_type": "simpo",
        "cpo_alpha": 0.0,
        "beta": float(p.beta),
        "simpo_gamma": float(p.gamma_beta_ratio) * float(p.beta),
    }


def dpo_loss_settings(config: DPORunConfig) -> dict[str, Any]:
    """The DPO loss values passed to TRL's DPOConfig."""
    p = config.preference
    if not p.beta > 0:
        raise _bad("preference.beta", f"must be > 0, got {p.beta}")
    return {"loss_type": [p.loss_type], "beta": float(p.beta)}


def _common_prefix(*texts: str) -> str:
    first = texts[0]
    n = len(first)
    for other in texts[1:]:
        n = min(n, len(other))
        for i in range(n):
            if first[i] != other[i]:
                n = i
                break
    return first[:n]


def preference_text_row(pair: Pair, tokenizer: Any) -> dict[str, str]:
    """{"prompt", "chosen", "rejected"} as text: the prompt with its tools and the generation prompt, each completion
    as the chat template renders the assistant turn, cut right after the end-of-turn token (a trailing newline of the
    template is not trained on, as with SFT's assistant mask)."""
    tools = pair.tools or None
    prompt = tokenizer.apply_chat_template(pair.prompt, tools=tools, add_generation_prompt=True, tokenize=False)
    full_chosen = tokenizer.apply_chat_template(pair.prompt + pair.chosen, tools=tools, tokenize=False)
    full_rejected = tokenizer.apply_chat_template(pair.prompt + pair.rejected, tools=tools, tokenize=False)
    prefix = _common_prefix(prompt, full_chosen, full_rejected)
    eos = tokenizer.eos_token or ""

    def completion(full: str) -> str:
        text = full[len(prefix) :]
        stripped = text.rstrip()
        return stripped if eos and stripped.endswith(eos) else text

    return {"prompt": prefix, "chosen": completion(full_chosen), "rejected": completion(full_rejected)}


def fit_pairs(pairs: list[Pair], tokenizer: Any, max_length: int) -> tuple[list[Pair], list[Pair]]:
    """(kept, too_long): a pair is kept when prompt + chosen and prompt + rejected both fit in `max_length` tokens.

    Truncation is no option for these pairs: TRL cuts the completion's end, which is where the action block that
    the pair is about sits (and a prompt alone longer than `max_length` leaves an empty completion, whose average
    log-probability is NaN). All three methods drop the same pairs, so they still train on identical data."""
    kept: list[Pair] = []
    too_long: list[Pair] = []
    for pair in pairs:
        row = preference_text_row(pair, tokenizer)
        longest = max(
            len(tokenizer(row["prompt"] + row[side], add_special_tokens=False)["input_ids"])
            for side in ("chosen", "rejected")
        )
        # +2: the trainers may add a BOS / EOS token, and the SFT chat template a trailing newline
        (kept if longest + 2 <= max_length else too_long).append(pair)
    if not kept:
        raise InputError(
            Problem(
                "<preference config>",
                None,
                "training.max_length",
                f"all {len(pairs)} pairs are longer than {max_length} tokens",
            )
        )
    if too_long:
        print(f"{len(too_long)} of {len(pairs)} pairs are longer than max_length {max_length} tokens and are left out")
    return kept, too_long


def load_pairs_for_training(data: PairsDataSection) -> list[Pair]:
    """The pairs file, validated, checked against the held-out case files, cut to `max_pairs`."""
    from toolprior.case_io import read_case_files
    from training.pairs import check_no_leak, read_pairs

    pairs = read_pairs(data.pairs_file)
    if data.eval_files:
        check_no_leak(pairs, read_case_files(data.eval_files), source=data.pairs_file)
    if data.max_pairs is not None:
        pairs = pairs[: data.max_pairs]
    return pairs


def load_policy(section: PreferenceModelSection) -> tuple[Any, Any]:
    """(model, tokenizer): the base (NF4 unless `quantize: none`) with the SFT adapter loaded trainable."""
    from toolprior.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(section.base, trust_remote_code=section.trust_remote_code)
    model = load_model(
        section.base,
        quantize=section.quantize,
        adapter=section.adapter,
        dtype=section.dtype,
        device=section.device,
        trust_remote_code=section.trust_remote_code,
        trainable_adapter=True,
    )
    return model, tokenizer


def _use_cpu(section: PreferenceModelSection) -> bool:
    import torch

    return not torch.cuda.is_available() or section.device == "cpu"


def _trainer_args(
    output_dir: str, t: PreferenceTrainingSection, model: PreferenceModelSection, use_cpu: bool
) -> dict[str, Any]:
    return dict(
        output_dir=output_dir,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        # transformers 5 takes the warmup ratio as a float in [0, 1) through warmup_steps
        warmup_steps=float(t.warmup_ratio),
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        max_length=t.max_length,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        eval_strategy="no",
        gradient_checkpointing=(not use_cpu) if t.gradient_checkpointing is None else t.gradient_checkpointing,
        seed=t.seed,
        data_seed=t.seed,
        report_to=[],
        use_cpu=use_cpu,
        bf16=(model.dtype == "bfloat16") and not use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def _build_config(cls: Any, kwargs: dict[str, Any], extra: dict[str, Any], what: str) -> Any:
    kwargs = {**kwargs, **extra}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # TRL/transformers reject a combination: one line, not a traceback
        raise InputError(Problem(f"<{what} config>", None, "training", str(err).splitlines()[0])) from None


def simpo_trl_config(config: SimPORunConfig, use_cpu: bool) -> Any:
    """The CPOConfig of a SimPO run (loss values from `simpo_loss_settings`)."""
    from trl.experimental.cpo import CPOConfig

    kwargs = _trainer_args(config.output_dir, config.training, config.model, use_cpu)
    kwargs.update(simpo_loss_settings(config))
    kwargs.update(label_smoothing=config.preference.label_smoothing, remove_unused_columns=False)
    return _build_config(CPOConfig, kwargs, config.training.extra, "simpo")


def dpo_trl_config(config: DPORunConfig, use_cpu: bool) -> Any:
    from trl import DPOConfig

    kwargs = _trainer_args(config.output_dir, config.training, config.model, use_cpu)
    kwargs.update(dpo_loss_settings(config))
    return _build_config(DPOConfig, kwargs, config.training.extra, "dpo")


class _KeepTrainableWeights:
    """Snapshot the trainable weights before a trainer is built and put them back (dtype and values) after, undoing
    TRL's bfloat16 cast of a 4-bit model's adapter (see the module docstring)."""

    def __init__(self, model: Any) -> None:
        self.saved = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def restore(self, model: Any) -> None:
        for name, param in model.named_parameters():
            if name in self.saved:
                param.data = self.saved[name].to(param.device)


# ------------------------------------------------------------------------------------------------------- running


def _prepare_run(output_dir: str, config: Any) -> tuple[Path, str | None]:
    from training.checkpoints import last_complete_checkpoint

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_yaml(config))
    return out, last_complete_checkpoint(out)


def _run(method: str, config: Any, max_length: int, settings: dict[str, Any], build: Any, row: Any) -> PreferenceResult:
    """Shared by the three methods: pairs (checked, fitted to max_length), the SFT agent, the trainer `build(model,
    tokenizer, dataset)` makes, training with resume, the adapter and train_summary.json."""
    from datasets import Dataset

    pairs = load_pairs_for_training(config.data)
    out, last = _prepare_run(config.output_dir, config)
    model, tokenizer = load_policy(config.model)
    pairs, too_long = fit_pairs(pairs, tokenizer, max_length)
    dataset = Dataset.from_list([row(p, tokenizer) for p in pairs])
    keep = _KeepTrainableWeights(model)
    trainer = build(model, tokenizer, dataset)
    keep.restore(trainer.model)
    keep_dtypes_on_resume(trainer)
    start = time.perf_counter()
    train_loss = None
    if stopped_at(last, trainer.args) is not None:  # killed after training had ended, before the adapter was written
        finish_from_checkpoint(trainer, last)
    else:
        output = trainer.train(resume_from_checkpoint=last)
        train_loss = float(output.training_loss) if output.training_loss is not None else None
    seconds = time.perf_counter() - start

    adapter_dir = out / "adapter"
    model = trainer.model
    names = list(getattr(model, "peft_config", {}) or {})
    if "default" in names and len(names) > 1:  # DPO's frozen "ref" copy is not part of the result
        model.save_pretrained(adapter_dir, selected_adapters=["default"])
    else:
        model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    history = trainer.state.log_history
    logged = [h for h in history if "loss" in h]
    result = PreferenceResult(
        method=method,
        output_dir=out,
        adapter_dir=adapter_dir,
        train_seconds=seconds,
        pairs=len(pairs),
        steps=int(trainer.state.global_step),
        train_loss=train_loss,
        final_loss=float(logged[-1]["loss"]) if logged else train_loss,
        trainable_params=int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        resumed_from=last,
    )
    summary: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
    summary.update(
        base=config.model.base,
        start_adapter=config.model.adapter,
        pairs_file=config.data.pairs_file,
        pairs_too_long=[p.id for p in too_long],
        settings=settings,
        final_metrics=logged[-1] if logged else {},
    )
    atomic_write_text(out / "train_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return result


def train_simpo(config: SimPORunConfig) -> PreferenceResult:
    """Run (or resume) SimPO on the pairs, continuing the SFT adapter."""
    from trl.experimental.cpo import CPOTrainer

    settings = simpo_loss_settings(config)  # a bad beta / ratio fails before anything loads
    args = simpo_trl_config(config, _use_cpu(config.model))

    def build(model: Any, tokenizer: Any, dataset: Any) -> Any:
        return CPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)

    return _run("simpo", config, config.training.max_length, settings, build, preference_text_row)


def train_dpo(config: DPORunConfig) -> PreferenceResult:
    """Run (or resume) DPO on the pairs, continuing the SFT adapter against the SFT agent as reference."""
    from trl import DPOTrainer

    settings = {**dpo_loss_settings(config), "reference": "frozen copy of the SFT adapter ('ref')"}
    args = dpo_trl_config(config, _use_cpu(config.model))

    def build(model: Any, tokenizer: Any, dataset: Any) -> Any:
        # No ref_model and no peft_config: TRL copies the loaded SFT adapter into a frozen "ref" adapter, so the
        # reference is base + SFT adapter.
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer)
        if "ref" not in trainer.model.peft_config:
            raise RuntimeError("DPOTrainer made no 'ref' adapter: the reference would be the bare base model")
        return trainer

    return _run("dpo", config, config.training.max_length, settings, build, preference_text_row)


def chosen_sft_row(pair: Pair, tokenizer: Any = None) -> dict[str, Any]:
    """One SFT row of adversarial SFT: the prompt and the chosen turn (as training.sft.case_row)."""
    return {"messages": [*pair.prompt, *pair.chosen], "tools": json.dumps(pair.tools, ensure_ascii=False)}


def train_adv_sft(config: AdvSFTRunConfig) -> PreferenceResult:
    """Run (or resume) SFT on the pairs' chosen turns, continuing the SFT adapter."""
    from trl import SFTTrainer

    from training.sft import ModelSection, SFTRunConfig, sft_config

    proxy = SFTRunConfig(
        output_dir=config.output_dir,
        model=ModelSection(base=config.model.base, quantize=config.model.quantize, dtype=config.model.dtype),
        training=config.training,
    )
    args = sft_config(proxy, use_cpu=_use_cpu(config.model), has_eval=False)
    settings = {"loss": "sft_on_chosen", "assistant_only_loss": config.training.assistant_only_loss}

    def build(model: Any, tokenizer: Any, dataset: Any) -> Any:
        return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)

    return _run("adv_sft", config, config.training.max_length, settings, build, chosen_sft_row)


__all__ = [
    "AdvSFTRunConfig",
    "DPORunConfig",
    "DPOSection",
    "PairsDataSection",
    "PreferenceModelSection",
    "PreferenceResult",
    "PreferenceTrainingSection",
    "SimPORunConfig",
    "SimPOSection",
    "chosen_sft_row",
    "dpo_loss_settings",
    "dpo_trl_config",
    "fit_pairs",
    "load_pairs_for_training",
    "load_policy",
    "preference_text_row",
    "simpo_loss_settings",
    "simpo_trl_config",
    "train_adv_sft",
    "train_dpo",
    "train_simpo",
]
