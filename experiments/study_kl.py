"""The study's KL stage: KL(sft || method) of next-token distributions on neutral text, what a method changes where
it should change nothing. Steering is applied at every position there (from the decision point it would touch
nothing, and the KL would be 0 by construction)."""

from __future__ import annotations

from typing import Any

from toolprior.experiments.comparison import mean_kl, next_token_distributions
from toolprior.experiments.study_run import AgentHost
from toolprior.steering.apply import steering_factory


def neutral_texts(study: AgentHost, count: int = 64) -> list[str]:
    """Ordinary enterprise prose with no decision at stake: the system text of val cases, cut mid-sentence after 8
    to 31 words (no chat template, no tools, no request)."""
    texts = []
    for i, case in enumerate(study.cases("val")[:count]):
        words = case.messages[0].content.split()
        texts.append(" ".join(words[: 8 + (i * 7) % 24]))
    return texts


# the compared methods' KL runs right after SimPO's eval, the baselines' (DPO, adversarial SFT: hours more on a
# CPU) at the end, so an interim report of a long study has KL for the methods the comparison is about
COMPARED = ("steering", "steering_random", "simpo", "simpo_steering")
BASELINES = ("dpo", "adv_sft")


def stage_kl(study: AgentHost, methods: tuple[str, ...] = COMPARED + BASELINES) -> dict[str, Any]:
    """KL against sft of each of `methods` the study made: the next-token distribution after each of
    `neutral_texts`, averaged over the texts (`positions: all` says where steering is applied while reading them)."""
    prompts = neutral_texts(study)
    model, tokenizer = study.agent()
    reference = next_token_distributions(model, tokenizer, prompts)
    chosen = study.chosen() if (study.run / "steering" / "chosen.json").is_file() else None
    vectors: dict[str, Any] = {}
    if chosen is not None:
        _, alpha, single, control = study.chosen_vectors(chosen)
        vectors = {"steering": (single, alpha), "steering_random": (control, alpha)}
    wanted = set(study.config.methods) & set(methods)
    kl: dict[str, float] = {}
    for name, (vec, alpha) in vectors.items():
        if name in wanted:
            factory = steering_factory(model, vec, alpha, positions="all", tokenizer=tokenizer)
            kl[name] = round(mean_kl(reference, next_token_distributions(model, tokenizer, prompts, steer=factory)), 5)
    for name in ("simpo", "dpo", "adv_sft"):
        adapter = study.run / name / "adapter"
        if name in wanted and adapter.is_dir():
            trained, tok = study.agent(adapter)
            kl[name] = round(mean_kl(reference, next_token_distributions(trained, tok, prompts)), 5)
            if name == "simpo" and "simpo_steering" in wanted and "steering" in vectors:
                vec, alpha = vectors["steering"]
                factory = steering_factory(trained, vec, alpha, positions="all", tokenizer=tok)
                steered = next_token_distributions(trained, tok, prompts, steer=factory)
                kl["simpo_steering"] = round(mean_kl(reference, steered), 5)
    return {
        "prompts": len(prompts),
        "source": "val cases' system text cut after 8-31 words",
        "positions": "all",
        "methods": kl,
    }
