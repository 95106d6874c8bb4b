"""The study's probe stage: the probe experiment on the SFT agent, fitted on the train split only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toolprior.config import build_dataclass
from toolprior.probes.experiment import ProbeExperimentConfig
from toolprior.probes.experiment_run import run_probe_experiment

if TYPE_CHECKING:
    from toolprior.experiments.study_run import StudyRun


def stage_probe(study: StudyRun) -> dict[str, Any]:

    p = study.config.probe
    out = study.run / "probe"
    config = build_dataclass(
        ProbeExperimentConfig,
        {
            "output_dir": str(out),
            "model": {
                "path": study.config.base,
                "adapter": str(study.sft_dir / "adapter"),
                "quantize": study.config.quantize,
                "dtype": study.config.dtype,
            },
            "data": {"cases": [str(study.data_dir / "train.jsonl")], "splits": ["train"], "max_cases": p.max_cases},
            "capture": {"positions": [p.position, "prompt_end"], "hooks": ["resid_post"]},
            "probes": {"tasks": ["clarify_vs_call_tool"], "methods": ["logreg", "mass_mean"]},
            "patching": {"max_pairs": p.patching_pairs, "k": p.patching_positions, "heads": p.patching_heads},
            "report": {"position": p.position},
        },
        file="<study probe settings>",
    )
    result = run_probe_experiment(config, out, progress=study.progress)  # writes probe/probe_block.json
    block = result.get("probe") or {}
    return {"best_layer": block.get("best_layer"), "position": block.get("position")}
