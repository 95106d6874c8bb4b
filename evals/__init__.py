"""The eval harness: generation, the tool simulator and multi-turn loop, scoring, forensics, reports."""

from evals.generation import generate
from evals.harness import HarnessConfig, evaluate
from evals.report import write_eval_report
from evals.scoring import score
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
