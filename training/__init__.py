"""Everything that changes weights: the benchmark generator, the tiny base recipe, QLoRA SFT, the LoRA preflight,
SimPO pair mining and preference training (SimPO, DPO, adversarial SFT).

One idea a module: `sections` (the config family every training run composes), `sft` and `lora` (QLoRA SFT),
`preflight`, `preflight_report` and `linear_inventory` (what a LoRA config reaches), `pairs` (mined pairs),
`preference` (what the pair trainers share), `simpo`, `dpo`, `adv_sft` (one trainer per method), `checkpoints`,
`labelled_loss`, `base` and `tiny_configs`.

The public names load on first use (PEP 562): `import training.benchmark` (the data generator) and a config check
must not import torch and the trainers. `training.preflight` is the submodule (the function of that name: `from
training.preflight import preflight`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AdvSFTRunConfig": "training.run_configs",
    "BaseConfig": "training.base",
    "DPORunConfig": "training.run_configs",
    "DPOSection": "training.run_configs",
    "DataSection": "training.sections",
    "LoraSection": "training.sections",
    "ModelSection": "training.sections",
    "PairsDataSection": "training.sections",
    "PreferenceModelSection": "training.sections",
    "PreferenceResult": "training.preference",
    "PreferenceTrainingSection": "training.sections",
    "PreflightError": "training.preflight_report",
    "PreflightReport": "training.preflight_report",
    "SFTResult": "training.sft",
    "SFTRunConfig": "training.run_configs",
    "SimPORunConfig": "training.run_configs",
    "SimPOSection": "training.run_configs",
    "TrainingSection": "training.sections",
    "build_base": "training.base",
    "check_or_raise": "training.preflight_report",
    "chosen_sft_row": "training.adv_sft",
    "dpo_loss_settings": "training.dpo",
    "dpo_trl_config": "training.dpo",
    "expose_head_bias": "training.lora",
    "fit_pairs": "training.preference",
    "load_pairs_for_training": "training.preference",
    "load_policy": "training.preference",
    "lora_config": "training.lora",
    "mine_pairs": "training.pair_mining",
    "pair_stats": "training.pairs",
    "preference_text_row": "training.preference",
    "read_pairs": "training.pairs",
    "simpo_loss_settings": "training.simpo",
    "simpo_trl_config": "training.simpo",
    "train_adv_sft": "training.adv_sft",
    "train_dpo": "training.dpo",
    "train_sft": "training.sft",
    "train_simpo": "training.simpo",
    "write_pairs": "training.pairs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """`training.<name>` for a public name, imported from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
