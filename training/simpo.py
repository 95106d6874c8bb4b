"""SimPO on the mined pairs, continuing the SFT adapter: the case study's fix.

    toolprior train simpo experiments/configs/simpo_organism.yaml --set training.learning_rate=1.0e-4

SimPO through TRL (`trl.experimental.cpo.CPOTrainer`, `loss_type="simpo"`, `cpo_alpha=0`: pure SimPO, no CPO
behaviour-cloning term). TRL's loss is `-logsigmoid(beta * (avg_logp(chosen) - avg_logp(rejected)) - simpo_gamma)`:
`simpo_gamma` is the ABSOLUTE target reward margin, gamma in the SimPO paper's equation. The paper tunes and reports
gamma as a ratio to beta (gamma/beta in 0.3 to 0.8), so the config takes `preference.gamma_beta_ratio` and passes
`simpo_gamma = gamma_beta_ratio * beta` (see `simpo_loss_settings`). The case study's "beta 1.0, gamma 0.3 (target
margin)" is the same run either way: at beta 1.0 the ratio 0.3 is the margin 0.3.

What SimPO shares with DPO and adversarial SFT (data, the SFT agent, adapter precision): training.preference.
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
from toolprior.training.run_configs import SimPORunConfig, SimPOSection


def simpo_loss_settings(config: SimPORunConfig) -> dict[str, Any]:
    """The SimPO loss values passed to TRL's CPOConfig: loss_type "simpo", cpo_alpha (0.0 by default: pure SimPO;
    above 0, TRL's CPO-SimPO, which adds the chosen turns' negative log-likelihood), beta, and the absolute margin
    simpo_gamma = gamma_beta_ratio * beta."""
    p = config.preference
    if not p.beta > 0:
        raise bad_setting("preference.beta", f"must be > 0, got {p.beta}")
    if p.gamma_beta_ratio < 0:
        raise bad_setting("preference.gamma_beta_ratio", f"must be >= 0, got {p.gamma_beta_ratio}")
    return {
        "loss_type": "simpo",
        "cpo_alpha": float(p.cpo_alpha),
        "beta": float(p.beta),
        "simpo_gamma": float(p.gamma_beta_ratio) * float(p.beta),
    }


def simpo_trl_config(config: SimPORunConfig, use_cpu: bool) -> Any:
    """The CPOConfig of a SimPO run (loss values from `simpo_loss_settings`)."""
    from trl.experimental.cpo import CPOConfig  # lazy: TRL's trainers load transformers' Trainer (seconds)

    kwargs = trainer_args(config.output_dir, config.training, config.model, use_cpu)
    kwargs.update(simpo_loss_settings(config))
    kwargs.update(label_smoothing=config.preference.label_smoothing, remove_unused_columns=False)
    return build_trl_config(CPOConfig, kwargs, config.training.extra, "simpo")


def train_simpo(config: SimPORunConfig) -> PreferenceResult:
    """Run (or resume) SimPO on the pairs, continuing the SFT adapter."""
    from trl.experimental.cpo import CPOTrainer  # lazy: TRL's trainers load transformers' Trainer (seconds)

    settings = simpo_loss_settings(config)  # a bad beta / ratio fails before anything loads
    args = simpo_trl_config(config, use_cpu_for(config.model))

    def build(model: Any, tokenizer: Any, dataset: Any) -> Any:
        return CPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)

    return run_preference("simpo", config, config.training.max_length, settings, build, preference_text_row)


__all__ = ["SimPORunConfig", "SimPOSection", "simpo_loss_settings", "simpo_trl_config", "train_simpo"]
