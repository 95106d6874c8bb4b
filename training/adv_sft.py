"""Adversarial SFT on the mined pairs: plain SFT on the chosen turns (rejected discarded), continuing the SFT
adapter; a baseline to SimPO on the very same pairs.

    toolprior train adv-sft experiments/configs/adv_sft_organism.yaml

Adversarial SFT through `trl.SFTTrainer` with training.sft's own `sft_config`: the prompt + chosen conversations,
assistant-only loss, starting from the SFT adapter.

What it shares with SimPO and DPO (data, the SFT agent, adapter precision): training.preference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from training.pairs import Pair
from training.preference import PreferenceResult, run_preference, use_cpu_for
from training.sections import ModelSection, PairsDataSection, PreferenceModelSection, TrainingSection
from training.sft import SFTRunConfig, sft_config


def _adv_sft_training() -> TrainingSection:
    # No validation split for pairs (no early stopping), and no NEFTune: the only difference from the preference
    # runs on the same pairs should be the loss.
    return TrainingSection(
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
    """SFT on the pairs' chosen turns; `training` is the SFT TrainingSection (training.sections; SFTConfig fields)."""

    output_dir: str = "runs/adv_sft"
    model: PreferenceModelSection = field(default_factory=PreferenceModelSection)
    data: PairsDataSection = field(default_factory=PairsDataSection)
    training: TrainingSection = field(default_factory=_adv_sft_training)


def chosen_sft_row(pair: Pair, tokenizer: Any = None) -> dict[str, Any]:
    """One SFT row of adversarial SFT: the prompt and the chosen turn (as training.sft.case_row)."""
    return {"messages": [*pair.prompt, *pair.chosen], "tools": json.dumps(pair.tools, ensure_ascii=False)}


def train_adv_sft(config: AdvSFTRunConfig) -> PreferenceResult:
    """Run (or resume) SFT on the pairs' chosen turns, continuing the SFT adapter."""
    from trl import SFTTrainer  # lazy: TRL's trainers load transformers' Trainer (seconds)

    proxy = SFTRunConfig(
        output_dir=config.output_dir,
        model=ModelSection(base=config.model.base, quantize=config.model.quantize, dtype=config.model.dtype),
        training=config.training,
    )
    args = sft_config(proxy, use_cpu=use_cpu_for(config.model), has_eval=False)
    settings = {"loss": "sft_on_chosen", "assistant_only_loss": config.training.assistant_only_loss}

    def build(model: Any, tokenizer: Any, dataset: Any) -> Any:
        return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)

    return run_preference("adv_sft", config, config.training.max_length, settings, build, chosen_sft_row)


__all__ = ["AdvSFTRunConfig", "chosen_sft_row", "train_adv_sft"]
