"""Everything that changes weights: the benchmark generator, the tiny base recipe, QLoRA SFT, the LoRA preflight,
SimPO pair mining and preference training (SimPO, DPO, adversarial SFT).

One idea a module: `sections` (the config family every training run composes), `sft` and `lora` (QLoRA SFT),
`preflight`, `preflight_report` and `linear_inventory` (what a LoRA config reaches), `pairs` (mined pairs),
`preference` (what the pair trainers share), `simpo`, `dpo`, `adv_sft` (one trainer per method), `checkpoints`,
`labelled_loss`, `base` and `tiny_configs`.
"""

from training.adv_sft import AdvSFTRunConfig, chosen_sft_row, train_adv_sft
from training.base import BaseConfig, build_base
from training.dpo import DPORunConfig, DPOSection, dpo_loss_settings, dpo_trl_config, train_dpo
from training.lora import expose_head_bias, lora_config
from training.pair_mining import mine_pairs
from training.pairs import pair_stats, read_pairs, write_pairs
from training.preference import PreferenceResult, fit_pairs, load_pairs_for_training, load_policy, preference_text_row
from training.preflight import preflight
from training.preflight_report import PreflightError, PreflightReport, check_or_raise
from training.sections import (
    DataSection,
    LoraSection,
    ModelSection,
    PairsDataSection,
    PreferenceModelSection,
    PreferenceTrainingSection,
    TrainingSection,
)
from training.sft import SFTResult, SFTRunConfig, train_sft
from training.simpo import SimPORunConfig, SimPOSection, simpo_loss_settings, simpo_trl_config, train_simpo

__all__ = [
    "AdvSFTRunConfig",
    "BaseConfig",
    "DPORunConfig",
    "DPOSection",
    "DataSection",
    "LoraSection",
    "ModelSection",
    "PairsDataSection",
    "PreferenceModelSection",
    "PreferenceResult",
    "PreferenceTrainingSection",
    "PreflightError",
    "PreflightReport",
    "SFTResult",
    "SFTRunConfig",
    "SimPORunConfig",
    "SimPOSection",
    "TrainingSection",
    "build_base",
    "check_or_raise",
    "chosen_sft_row",
    "dpo_loss_settings",
    "dpo_trl_config",
    "expose_head_bias",
    "fit_pairs",
    "load_pairs_for_training",
    "load_policy",
    "lora_config",
    "mine_pairs",
    "pair_stats",
    "preference_text_row",
    "preflight",
    "read_pairs",
    "simpo_loss_settings",
    "simpo_trl_config",
    "train_adv_sft",
    "train_dpo",
    "train_sft",
    "train_simpo",
    "write_pairs",
]
