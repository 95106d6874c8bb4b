"""Planning a split: which (category, kind) slots it holds, and which become twin pairs.

train, val and mine are mix-driven: action counts come from the configured mix (largest remainder, so the shares are
exact), then each action's slots are spread over the categories and kinds that produce it, by the category weights.
eval and eval_novel are category-driven: a fixed number of cases per category, split over its kinds by weight, so
their action mix follows from the categories. Twin pairs replace implicit-clarify slots; in mix-driven splits the
resolved partner takes a call_tool slot, in held-out splits it is added to the category.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from toolprior.actions import ACTION_NAMES, CATEGORIES, Action
from toolprior.training.benchmark.categories import CATEGORY_KINDS, KINDS


@dataclass
class Slot:
    category: str
    kind: str
    twin: bool = False

    @property
    def action(self) -> Action:
        return KINDS[self.kind].action


def largest_remainder(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to `total` in proportion to `weights` (ties broken by key order)."""
    norm = sum(weights.values())
    exact = {k: total * w / norm for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    short = total - sum(counts.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), list(weights).index(k)))[:short]:
        counts[k] += 1
    return counts


def plan_mixed(rng: random.Random, size: int, mix: dict[str, float], twin_pairs: int) -> list[Slot]:
    counts = largest_remainder(size, {a: mix[a] for a in ACTION_NAMES})
    slots: list[Slot] = []
    for action in ACTION_NAMES:
        options = [
            (category, kind, weight)
            for category, kinds in CATEGORY_KINDS.items()
            for kind, weight in kinds.items()
            if KINDS[kind].action.value == action
        ]
        picks = rng.choices(options, weights=[w for _, _, w in options], k=counts[action])
        slots += [Slot(category, kind) for category, kind, _ in picks]
    twinnable = [i for i, slot in enumerate(slots) if KINDS[slot.kind].twinnable]
    calls = [i for i, slot in enumerate(slots) if slot.action is Action.CALL_TOOL]
    n = min(twin_pairs, len(twinnable), len(calls))
    for i in rng.sample(twinnable, n):
        slots[i].twin = True
    dropped = set(rng.sample(calls, n))  # each resolved twin takes one call_tool place
    return [slot for i, slot in enumerate(slots) if i not in dropped]


def plan_per_category(rng: random.Random, per_category: int, twin_pairs: int) -> list[Slot]:
    slots: list[Slot] = []
    for category in CATEGORIES:
        counts = largest_remainder(per_category, CATEGORY_KINDS[category])
        slots += [Slot(category, kind) for kind, n in counts.items() for _ in range(n)]
    twinnable = [i for i, slot in enumerate(slots) if KINDS[slot.kind].twinnable]
    for i in rng.sample(twinnable, min(twin_pairs, len(twinnable))):
        slots[i].twin = True
    return slots


def build_order(slots: list[Slot]) -> list[Slot]:
    """Slots whose ambiguous variants reuse registered call texts go last, after the calls that register them."""
    first = [s for s in slots if not KINDS[s.kind].reuses_texts and not s.twin]
    twins = [s for s in slots if s.twin]
    reuse = [s for s in slots if KINDS[s.kind].reuses_texts and not s.twin]
    return first + twins + reuse
