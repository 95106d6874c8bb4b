"""Everything that changes weights: the benchmark generator, the tiny base recipe, QLoRA SFT, the preflight,
SimPO pair mining and preference training (SimPO, DPO, adversarial SFT)."""

from training.base import BaseConfig, build_base
from training.preflight import PreflightReport, check_or_raise, preflight
from training.sft import SFTRunConfig, train_sft

__all__ = [
    "BaseConfig",
    "PreflightReport",
    "SFTRunConfig",
    "build_base",
    "check_or_raise",
    "preflight",
    "train_sft",
]
