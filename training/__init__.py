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
    "AdvSFTRunConfig": "toolprior.training.run_configs",
    "BaseConfig": "toolprior.training.base",
    "DPORunConfig": "toolprior.training.run_configs",
    "DPOSection": "toolprior.training.run_configs",
    "DataSection": "toolprior.training.sections",
    "LoraSection": "toolprior.training.sections",
    "ModelSection": "toolprior.training.sections",
    "PairsDataSection": "toolprior.training.sections",
    "PreferenceModelSection": "toolprior.training.sections",
    "PreferenceResult": "toolprior.training.preference",
    "PreferenceTrainingSection": "toolprior.training.sections",
    "PreflightError": "toolprior.training.preflight_report",
    "PreflightReport": "toolprior.training.preflight_report",
    "SFTResult": "toolprior.training.sft",
    "SFTRunConfig": "toolprior.training.run_configs",
    "SimPORunConfig": "toolprior.training.run_configs",
    "SimPOSection": "toolprior.training.run_configs",
    "TrainingSection": "toolprior.training.sections",
    "build_base": "toolprior.training.base",
    "check_or_raise": "toolprior.training.preflight_report",
    "chosen_sft_row": "toolprior.training.adv_sft",
    "dpo_loss_settings": "toolprior.training.dpo",
    "dpo_trl_config": "toolprior.training.dpo",
    "expose_head_bias": "toolprior.training.lora",
    "fit_pairs": "toolprior.training.preference",
    "load_pairs_for_training": "toolprior.training.preference",
    "load_policy": "toolprior.training.preference",
    "lora_config": "toolprior.training.lora",
    "mine_pairs": "toolprior.training.pair_mining",
    "pair_stats": "toolprior.training.pairs",
    "preference_text_row": "toolprior.training.preference",
    "read_pairs": "toolprior.training.pairs",
    "simpo_loss_settings": "toolprior.training.simpo",
    "simpo_trl_config": "toolprior.training.simpo",
    "train_adv_sft": "toolprior.training.adv_sft",
    "train_dpo": "toolprior.training.dpo",
    "train_sft": "toolprior.training.sft",
    "train_simpo": "toolprior.training.simpo",
    "write_pairs": "toolprior.training.pairs",
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
