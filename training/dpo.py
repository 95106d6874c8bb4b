"""DPO on the mined pairs, continuing the SFT adapter against the SFT agent as reference: a baseline to SimPO on
the very same pairs.

    toolprior train dpo experiments/configs/dpo_organism.yaml

DPO through `trl.DPOTrainer`. The reference must be the SFT agent (base + SFT adapter), not the bare base. TRL 1.16
has no `model_adapter_name` / `ref_adapter_name` any more; given a `PeftModel` that already carries an adapter and
no `peft_config`, DPOTrainer copies the "default" adapter into a frozen adapter named "ref" at construction and
computes reference log-probabilities with "ref" active (`use_adapter(model, "ref")`). Passing the trainable SFT
adapter and no `peft_config` therefore gives reference = base + SFT adapter at step 0, which is what we want (with
a `peft_config` TRL would wrap a fresh adapter and use the adapter-disabled base as reference). Only the "default"
adapter is saved.

What DPO shares with SimPO and adversarial SFT (data, the SFT agent, adapter precision): training.preference.
"""

from __future__ import annotations

from typing import Any

from toolprior.training.preference import (
    PreferenceResult,
    bad_setting,
    build_trl_config,
    preference_text_row,
    run_preference,
    trainer_args,
    use_cpu_for,
)
from toolprior.training.run_configs import DPORunConfig, DPOSection


def dpo_loss_settings(config: DPORunConfig) -> dict[str, Any]:
    """The DPO loss values passed to TRL's DPOConfig."""
    p = config.preference
    if not p.beta > 0:
        raise bad_setting("preference.beta", f"must be > 0, got {p.beta}")
    return {"loss_type": [p.loss_type], "beta": float(p.beta)}


def dpo_trl_config(config: DPORunConfig, use_cpu: bool) -> Any:
    """The DPOConfig of a DPO run (loss values from `dpo_loss_settings`)."""
    from trl import DPOConfig  # lazy: TRL's trainers load transformers' Trainer (seconds)

    kwargs = trainer_args(config.output_dir, config.training, config.model, use_cpu)
    kwargs.update(dpo_loss_settings(config))
    return build_trl_config(DPOConfig, kwargs, config.training.extra, "dpo")


def copy_trailing_adapter_params(model: Any, source: str, target: str) -> int:
    """Copy the adapter parameters whose names end in `.<source>` into `.<target>`; returns how many.

    TRL's DPOTrainer fills its "ref" adapter from the parameters named `.default.` inside, which misses PEFT's
    trainable-token rows (`...trainable_tokens_delta.default`, at the end): the reference kept freshly initialised
    tag rows, not the SFT adapter's, and the first step's rewards were not 0."""
    params = dict(model.named_parameters())
    copied = 0
    for name, param in params.items():
        twin = name[: -len(source)] + target if name.endswith(f".{source}") else None
        if twin in params:
            params[twin].data.copy_(param.data)
            copied += 1
    return copied


def train_dpo(config: DPORunConfig) -> PreferenceResult:
    """Run (or resume) DPO on the pairs, continuing the SFT adapter against the SFT agent as reference."""
    from trl import DPOTrainer  # lazy: TRL's trainers load transformers' Trainer (seconds)

    settings = {**dpo_loss_settings(config), "reference": "frozen copy of the SFT adapter ('ref')"}
    args = dpo_trl_config(config, use_cpu_for(config.model))

    def build(model: Any, tokenizer: Any, dataset: Any) -> Any:
        # No ref_model and no peft_config: TRL copies the loaded SFT adapter into a frozen "ref" adapter, so the
        # reference is base + SFT adapter.
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer)
        if "ref" not in getattr(trainer.model, "peft_config", {}):
            raise RuntimeError("DPOTrainer made no 'ref' adapter: the reference would be the bare base model")
        copy_trailing_adapter_params(trainer.model, "default", "ref")
        return trainer

    return run_preference("dpo", config, config.training.max_length, settings, build, preference_text_row)


__all__ = ["DPORunConfig", "DPOSection", "dpo_loss_settings", "dpo_trl_config", "train_dpo"]
