"""Conditional steering: steer a row only when a probe at prompt_end says the case looks ambiguous.

    gate = fit_conditional(model, tokenizer, vector, layer=2, alpha=4.0, train_cases=train, mine_cases=mine)
    verdicts = evaluate(model, tokenizer, eval_cases, steer=gate.factory(model))

Before each batch is generated, one extra forward pass over its prompts (unsteered, stopped after block `layer`)
reads `blocks.{layer}.hook_resid_post` at each row's last prompt token, the probe turns it into p(clarify), and
the rows with p >= `threshold` are steered with `vector` at `alpha`; the others are left untouched (alpha 0,
bit for bit the unsteered model). The gate forward sees exactly what the prefill will see, since the prompt is
the same and nothing is steered yet.

The probe is `probes.fit.fit_probe` (logistic regression) on clarify vs every other action at prompt_end, fitted
on the training split; the threshold is chosen on the `mine` split (`probes.fit.calibrate_threshold`, balanced
accuracy by default), never on eval cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from toolprior.errors import InputError
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.probes.backends.hooks_backend import recording
from toolprior.probes.batching import Batch, model_device
from toolprior.probes.capture import capture_cases
from toolprior.probes.fit import calibrate_threshold, fit_probe
from toolprior.probes.hook_points import hook_name
from toolprior.probes.positions import compute_positions
from toolprior.steering.apply import Steering, steer
from toolprior.steering.operators import Operator

if TYPE_CHECKING:
    from toolprior.cases import Case
    from toolprior.generation_batch import GenerationBatch
    from toolprior.steering.vector import SteeringVector

HELD_OUT_SPLITS: tuple[str, ...] = ("eval", "eval_novel")


class Probe(Protocol):
    """Anything with `predict_proba(x [N, d]) -> [N, 2]` (column 1: p(clarify)), like `probes.fit.LinearProbe`."""

    def predict_proba(self, x: torch.Tensor) -> Any: ...


def refuse_held_out(cases: Sequence[Case], what: str) -> None:
    """InputError when any case belongs to a held-out split: tuning there would leak into the reported numbers."""

    bad = [c.id for c in cases if c.split in HELD_OUT_SPLITS]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise InputError(
            f"{what} must not see eval cases (tune on the mine split); got {len(bad)} eval case(s): {shown}"
        )


def prompt_end_features(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
    """[B, d] `blocks.{layer}.hook_resid_post` at each row's last real token of a left-padded prompt batch, from
    one forward pass that stops after block `layer`."""

    name = hook_name(layer, "resid_post")
    mask = attention_mask.to("cpu")
    positions = compute_positions("prompt_end", input_ids.to("cpu"), mask)
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
    batch = Batch(input_ids.to("cpu"), mask, position_ids, positions, tuple(range(input_ids.shape[0])))
    with recording(model, [name]) as run:
        return run(batch)[name].to(device=model_device(model), dtype=torch.float32)


@dataclass
class ConditionalSteering:
    """Steer rows whose p(clarify) at prompt_end (probe at block `layer`) is >= `threshold` with `vector` at
    `alpha`. `steer_kwargs` go to `steering.apply.steer` (positions, operator, keep_norm, tokenizer)."""

    vector: SteeringVector
    probe: Probe
    threshold: float
    alpha: float
    layer: int
    positions: str = "all"
    operator: str | Operator = "add"
    keep_norm: bool = False
    tokenizer: Tokenizer | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def p_clarify(self, model: CausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B] the probe's p(clarify) of each prompt row."""
        x = prompt_end_features(model, input_ids, attention_mask, self.layer)
        proba = torch.as_tensor(self.probe.predict_proba(x.cpu()))
        return proba[:, 1].to(torch.float32) if proba.dim() == 2 else proba.to(torch.float32)

    def context(self, model: CausalLM, batch: GenerationBatch, log: list[dict[str, Any]] | None = None) -> Steering:
        """The steering context of one generation batch: gate first, then steer the rows it lets through."""
        p = self.p_clarify(model, batch.input_ids, batch.attention_mask)
        rows = p >= self.threshold
        if log is not None:
            log.extend(
                {"row": r, "p_clarify": float(pi), "steered": bool(s)}
                for r, pi, s in zip(batch.rows, p, rows, strict=True)
            )
        return steer(
            model,
            self.vector,
            self.alpha,
            positions=self.positions,
            operator=self.operator,
            keep_norm=self.keep_norm,
            batch=batch,
            tokenizer=self.tokenizer,
            rows=rows,
        )

    def factory(
        self, model: CausalLM, log: list[dict[str, Any]] | None = None
    ) -> Callable[[GenerationBatch], Steering]:
        """A `steer=` for `evals.generation.generate` / `evals.harness.evaluate`. With `log`, each prompt's gate
        decision is appended ({"row", "p_clarify", "steered"}; row = the prompt's index in that call)."""

        def make(batch: GenerationBatch) -> Steering:
            return self.context(model, batch, log)

        return make


def fit_conditional(
    model: CausalLM,
    tokenizer: Tokenizer,
    vector: SteeringVector,
    *,
    layer: int,
    alpha: float,
    train_cases: Sequence[Case],
    mine_cases: Sequence[Case],
    target: str = "balanced",
    positions: str = "all",
    operator: str | Operator = "add",
    batch_size: int = 16,
) -> ConditionalSteering:
    """Fit the gate's probe (clarify vs the rest, prompt_end, block `layer`) on `train_cases` and choose its
    threshold on `mine_cases` (`probes.fit.calibrate_threshold` target, e.g. "balanced" or "recall@0.9")."""

    refuse_held_out(train_cases, "the conditional-steering probe")
    refuse_held_out(mine_cases, "the conditional-steering threshold")
    name = hook_name(layer, "resid_post")

    def labelled(cases: Sequence[Case]) -> tuple[torch.Tensor, list[str]]:
        acts = capture_cases(model, tokenizer, cases, [name], "prompt_end", batch_size=batch_size)
        return acts[name], ["clarify" if lab == "clarify" else "other" for lab in acts.labels]

    x_train, y_train = labelled(train_cases)
    probe = fit_probe(x_train, y_train, classes=("other", "clarify"))
    x_mine, y_mine = labelled(mine_cases)
    p_mine = torch.as_tensor(probe.predict_proba(x_mine))[:, 1]
    threshold = calibrate_threshold(p_mine, [y == "clarify" for y in y_mine], target)
    flagged = p_mine >= threshold
    truth = torch.tensor([y == "clarify" for y in y_mine])
    meta = {
        "threshold_target": target,
        "threshold_on": sorted({c.split for c in mine_cases}),
        "probe_on": sorted({c.split for c in train_cases}),
        "mine_recall": round(float((flagged & truth).sum() / max(int(truth.sum()), 1)), 4),
        "mine_flag_rate": round(float(flagged.float().mean()), 4),
    }
    return ConditionalSteering(
        vector,
        probe,
        float(threshold),
        float(alpha),
        layer,
        positions=positions,
        operator=operator,
        tokenizer=tokenizer,
        meta=meta,
    )
