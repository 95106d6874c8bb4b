"""The eval harness: generation, the tool simulator and multi-turn loop, scoring, forensics, reports."""

from toolprior.evals.generation import generate
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.evals.report import write_eval_report
from toolprior.evals.scoring import score
from toolprior.generation_batch import GenerationBatch
from toolprior.verdict import Verdict, read_verdicts, write_verdicts

__all__ = [
    "GenerationBatch",
    "HarnessConfig",
    "Verdict",
    "evaluate",
    "generate",
    "read_verdicts",
    "score",
    "write_eval_report",
    "write_verdicts",
]
