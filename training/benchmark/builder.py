"""Building one split: every slot becomes one case (two for a twin pair), each passing QA.

Raw samples come from the kind builders; a configurable share is corrupted the way LLM generators fail; the QA pass
rejects anything malformed and the slot is built again. Nothing that fails QA reaches the output.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from toolprior.training.benchmark import qa
from toolprior.training.benchmark.categories import KINDS
from toolprior.training.benchmark.draft import Draft, Registry
from toolprior.training.benchmark.kinds import single
from toolprior.training.benchmark.kinds.base import KindContext
from toolprior.training.benchmark.splits import Slot, build_order

MAX_ATTEMPTS = 50


@dataclass
class QAStats:
    """What the QA pass saw while building a split."""

    raw: int = 0
    corrupted: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    corrupted_by: Counter[str] = field(default_factory=Counter)
    rejected_clean: int = 0  # clean samples QA rejected: a builder bug; always 0

    def add(self, other: QAStats) -> None:
        self.raw += other.raw
        self.corrupted += other.corrupted
        self.rejects.update(other.rejects)
        self.corrupted_by.update(other.corrupted_by)
        self.rejected_clean += other.rejected_clean


def _build_slot(kc: KindContext, slot: Slot) -> list[Draft]:
    if not slot.twin:
        return KINDS[slot.kind].build(kc, slot.kind)
    drafts = single.build_twins(kc, kind=slot.kind)
    if slot.kind == "implicit_followup":
        domain = next(d for d in kc.domains if d.key == drafts[0].domain)
        single.with_followup(kc, drafts[0], domain)
    return drafts


def build_split(
    slots: list[Slot],
    *,
    schema: str,
    rng: random.Random,
    noise_rng: random.Random,
    registry: Registry,
    noise_rate: float,
) -> tuple[list[Draft], QAStats]:
    """Drafts for every slot (twin pairs numbered in `Draft.pair`), in build order, and the QA statistics."""
    stats = QAStats()
    out: list[Draft] = []
    pairs = 0
    for slot in build_order(slots):
        kc = KindContext(rng=rng, schema=schema, category=slot.category, registry=registry)
        for _ in range(MAX_ATTEMPTS):
            drafts = _build_slot(kc, slot)
            rejected = False
            for draft in drafts:
                stats.raw += 1
                if noise_rng.random() < noise_rate:
                    stats.corrupted += 1
                    stats.corrupted_by[qa.corrupt(draft, noise_rng)] += 1
                reason = qa.check(draft)
                if reason is not None:
                    stats.rejects[reason] += 1
                    stats.rejected_clean += qa.is_clean(draft)
                    rejected = True
            if rejected:
                continue
            if not all(qa.is_clean(d) for d in drafts):
                raise RuntimeError(f"QA passed a corrupted {slot.kind} sample")
            if slot.twin:
                pairs += 1
                for d in drafts:
                    d.pair = pairs
            for d in drafts:
                if d.registers is not None:
                    registry.add(*d.registers)
            out.extend(drafts)
            break
        else:
            raise RuntimeError(f"no {slot.kind} case passed QA in {MAX_ATTEMPTS} attempts")
    return out, stats
