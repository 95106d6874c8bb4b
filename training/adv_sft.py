"""Adversarial SFT on the mined pairs: plain SFT on the chosen turns (rejected discarded), continuing the SFT
adapter; a baseline to SimPO on the very same pairs.

    toolprior train adv-sft experiments/configs/adv_sft_organism.yaml

Adversarial SFT through `trl.SFTTrainer` with training.sft's own `sft_config`: the prompt + chosen conversations,
assistant-only loss, starting from the SFT adapter.

What it shares with SimPO and DPO (data, the SFT agent, adapter precision): training.preference.
"""

from __future__ import annotations

import json
from typing import Any

from toolprior.training.pairs import Pair
from toolprior.training.preference import PreferenceResult, run_preference, use_cpu_for
from toolprior.training.run_configs import AdvSFTRunConfig, SFTRunConfig
from toolprior.training.sections import ModelSection
from toolprior.training.sft import sft_config


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
