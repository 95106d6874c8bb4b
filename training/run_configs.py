"""The run configs of every trainer (SFT, SimPO, DPO, adversarial SFT) and the method-specific sections, composed of
the shared sections of `training.sections`: plain dataclasses that import no torch, so a study or ablation config
is checked whole (every training config it names loaded) in about two seconds, before any trainer loads."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolprior.config import check
from toolprior.training.sections import (
    DataSection,
    LoraSection,
    ModelSection,
    PairsDataSection,
    PreferenceModelSection,
    PreferenceTrainingSection,
    TrainingSection,
)


@dataclass
class SFTRunConfig:
    output_dir: str = "runs/sft"
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    merge: bool = False
    force: bool = False


@dataclass
class SimPOSection:
    """beta: SimPO's reward scale. gamma_beta_ratio: the target margin as a ratio to beta (the SimPO paper's tuned
    quantity); TRL's absolute `simpo_gamma` = gamma_beta_ratio * beta. cpo_alpha: the weight of a negative
    log-likelihood term on the chosen turns (TRL's CPO-SimPO); 0, the default, is pure SimPO as the paper and the
    case study have it."""

    beta: float = field(default=1.0, metadata=check(gt=0))
    gamma_beta_ratio: float = field(default=0.3, metadata=check(ge=0))
    label_smoothing: float = field(default=0.0, metadata=check(ge=0, lt=0.5))
    cpo_alpha: float = field(default=0.0, metadata=check(ge=0))


@dataclass
class SimPORunConfig:
    output_dir: str = "runs/simpo"
    model: PreferenceModelSection = field(default_factory=PreferenceModelSection)
    data: PairsDataSection = field(default_factory=PairsDataSection)
    preference: SimPOSection = field(default_factory=SimPOSection)
    training: PreferenceTrainingSection = field(default_factory=PreferenceTrainingSection)


@dataclass
class DPOSection:
    """beta: DPO's KL strength against the reference (the SFT agent); loss_type: one of TRL's DPO losses."""

    beta: float = field(default=0.1, metadata=check(gt=0))
    loss_type: str = field(default="sigmoid", metadata=check(nonempty=True))


@dataclass
class DPORunConfig:
    output_dir: str = "runs/dpo"
    model: PreferenceModelSection = field(default_factory=PreferenceModelSection)
    data: PairsDataSection = field(default_factory=PairsDataSection)
    preference: DPOSection = field(default_factory=DPOSection)
    training: PreferenceTrainingSection = field(default_factory=PreferenceTrainingSection)


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
