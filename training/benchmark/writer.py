"""write_benchmark: generate all five splits, write them atomically, and summarise what was written."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolprior.actions import ACTION_NAMES, CATEGORIES, SPLITS
from toolprior.atomic import atomic_write_text
from toolprior.case_io import write_cases
from toolprior.cases import Case
from toolprior.training.benchmark.builder import QAStats, build_split
from toolprior.training.benchmark.config import BenchmarkConfig
from toolprior.training.benchmark.draft import Draft, Registry
from toolprior.training.benchmark.splits import plan_mixed, plan_per_category

SCHEMA_OF_SPLIT = {"train": "known", "val": "known", "mine": "known", "eval": "known", "eval_novel": "novel"}
GENERATOR = "toolprior-synthetic-benchmark/1"


@dataclass
class BenchmarkSummary:
    """Counts per split x action, twin pairs per split, and the QA pass's rejects by reason."""

    out_dir: Path
    seed: int
    config: BenchmarkConfig
    counts: dict[str, dict[str, int]]
    twins: dict[str, int]
    qa: QAStats
    qa_by_split: dict[str, QAStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "generator": GENERATOR,
            "seed": self.seed,
            "config": self.config.to_dict(),
            "counts": self.counts,
            "totals": {split: sum(c.values()) for split, c in self.counts.items()},
            "twin_pairs": self.twins,
            "qa": {
                "raw_samples": self.qa.raw,
                "corrupted": self.qa.corrupted,
                "rejected": sum(self.qa.rejects.values()),
                "rejects_by_reason": dict(sorted(self.qa.rejects.items())),
                "corruptions_by_kind": dict(sorted(self.qa.corrupted_by.items())),
                "rejects_by_split": {s: dict(sorted(q.rejects.items())) for s, q in self.qa_by_split.items()},
            },
        }

    def describe(self) -> str:
        """A compact table: cases per split and action, twins, and QA rejects by reason."""
        short = {"call_tool": "call", "answer_directly": "answer", "clarify": "clarify", "escalate": "escalate",
                 "refuse": "refuse"}  # fmt: skip
        head = f"{'split':<11}{'cases':>6}" + "".join(f"{short[a]:>9}" for a in ACTION_NAMES) + f"{'twins':>7}"
        lines = [f"benchmark (seed {self.seed}) -> {self.out_dir}", head]
        for split in SPLITS:
            row = self.counts[split]
            n = sum(row.values())
            cells = "".join(f"{row[a]:>5} {100 * row[a] / n:>2.0f}%" if n else f"{0:>9}" for a in ACTION_NAMES)
            lines.append(f"{split:<11}{n:>6}{cells}{self.twins[split]:>7}")
        rejected = sum(self.qa.rejects.values())
        reasons = ", ".join(f"{r} {n}" for r, n in self.qa.rejects.most_common()) or "none"
        lines.append(
            f"QA: {self.qa.raw} raw samples, {self.qa.corrupted} corrupted by simulated generator noise, "
            f"{rejected} rejected ({reasons}); rejected samples were regenerated and none was written"
        )
        return "\n".join(lines)


def _case_ids(split: str, drafts: list[Draft]) -> list[str]:
    prefix = "" if split == "eval" else f"{split}_"
    counters: Counter[str] = Counter()
    ids = []
    for d in drafts:
        counters[d.category] += 1
        ids.append(f"{prefix}{d.category}_{counters[d.category]:04d}")
    return ids


def _to_cases(split: str, drafts: list[Draft]) -> list[Case]:
    ids = _case_ids(split, drafts)
    by_pair: dict[int, list[str]] = {}
    for case_id, d in zip(ids, drafts, strict=True):
        if d.pair is not None:
            by_pair.setdefault(d.pair, []).append(case_id)
    cases = []
    for case_id, d in zip(ids, drafts, strict=True):
        twin = None
        if d.pair is not None:
            twin = next(other for other in by_pair[d.pair] if other != case_id)
        d.meta = {k: v for k, v in d.meta.items() if not k.startswith("_")}
        cases.append(d.to_case(case_id, split, twin=twin))
    return cases


def generate(seed: int, config: BenchmarkConfig) -> tuple[dict[str, list[Case]], dict[str, QAStats]]:
    """All five splits in memory. Every random choice comes from streams seeded by (seed, split)."""
    registries = {"known": Registry(), "novel": Registry()}
    splits: dict[str, list[Case]] = {}
    stats: dict[str, QAStats] = {}
    for split in SPLITS:
        plan_rng = random.Random(f"toolprior:{seed}:{split}:plan")
        if split in ("train", "val", "mine"):
            slots = plan_mixed(plan_rng, config.size(split), config.train_mix, config.twin_pairs[split])
        else:
            per = config.eval_per_category if split == "eval" else config.eval_novel_per_category
            slots = plan_per_category(plan_rng, per, config.twin_pairs[split])
        schema = SCHEMA_OF_SPLIT[split]
        drafts, stats[split] = build_split(
            slots,
            schema=schema,
            rng=random.Random(f"toolprior:{seed}:{split}:build"),
            noise_rng=random.Random(f"toolprior:{seed}:{split}:noise"),
            registry=registries[schema],
            noise_rate=config.noise_rate,
        )
        order = random.Random(f"toolprior:{seed}:{split}:order")
        if split in ("eval", "eval_novel"):
            drafts.sort(key=lambda d: CATEGORIES.index(d.category))  # stable: build order within a category
        else:
            order.shuffle(drafts)
        splits[split] = _to_cases(split, drafts)
    return splits, stats


def write_benchmark(
    out_dir: str | os.PathLike[str], seed: int = 7, config: BenchmarkConfig | None = None
) -> BenchmarkSummary:
    """Generate the benchmark and write `<split>.jsonl` for the five splits plus `benchmark.json` (resolved config,
    seed, counts, QA rejects). Same seed and config: byte-identical files."""
    config = config or BenchmarkConfig()
    out = Path(out_dir)
    splits, stats = generate(seed, config)
    for split, cases in splits.items():
        write_cases(out / f"{split}.jsonl", cases)
    total = QAStats()
    for s in stats.values():
        total.add(s)
    summary = BenchmarkSummary(
        out_dir=out,
        seed=seed,
        config=config,
        counts={
            s: {a: sum(c.expected_action.value == a for c in cases) for a in ACTION_NAMES}
            for s, cases in splits.items()
        },
        twins={s: sum(1 for c in cases if c.twin is not None) // 2 for s, cases in splits.items()},
        qa=total,
        qa_by_split=stats,
    )
    atomic_write_text(out / "benchmark.json", json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return summary
