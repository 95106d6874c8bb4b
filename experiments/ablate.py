"""`toolprior ablate CONFIG`: arms x seeds of QLoRA SFT on the organism, every run scored on the same cases.

Layout under `out_dir`:
    data/<key>/            one benchmark per distinct data setting (an action-mix arm gets its own train split)
    units/<key>/           one SFT run + its eval (+ steering grid), cached by everything that defines it, so two
                           ablations that share an arm (the recipe) share its runs; stages resume like a study's
    <name>/results.json    per arm: the overrides, per-seed scores, mean +/- sd, and paired tests vs the first arm
    <name>/table.md        the table a reader looks at first, with the split it was computed on
    <name>/plots/          per-arm accuracy with seed dots and sd bars (and the steering grid, when asked)

`record_dir` (optional, a folder kept in git) holds each finished unit's record: its unit.json, stage summaries,
verdicts and steering sweep, without the adapter. A unit whose record is there is restored from it instead of run,
so an ablation of many CPU hours builds up across sessions and checkouts, and `--report-only` tables what is done.
Units run seed by seed (every arm at the first seed, then the next), so a partial ablation compares arms.

Every arm is scored on the reference benchmark's split (the first data setting): an arm with another action mix
trains on its own benchmark, but is compared on the very same held-out cases, and none of them may appear in its
training data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

from toolprior.actions import Action
from toolprior.atomic import atomic_folder, atomic_write_text
from toolprior.case_io import read_cases
from toolprior.config import dump_yaml, load_config, parse_overrides, to_plain
from toolprior.errors import InputError, Problem
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.evals.scoring import accuracy_block, score
from toolprior.evals.statistics import mcnemar, mean_sd
from toolprior.experiments.ablate_config import AblationConfig, arms
from toolprior.experiments.ablate_table import plot_arms, render_table
from toolprior.experiments.sft_reuse import adopt, find_reusable
from toolprior.experiments.stages import StageRunner
from toolprior.experiments.study_config import DataSettings
from toolprior.model_source import file_sha256
from toolprior.modeling import load_agent
from toolprior.steering.compute import compute_from_cases
from toolprior.steering.sweep import sweep
from toolprior.training.benchmark import write_benchmark
from toolprior.training.run_configs import SFTRunConfig
from toolprior.training.sft import train_sft
from toolprior.verdict import read_verdicts, write_verdicts

ACTIONS = [a.value for a in Action]
# in a unit's record: the sha256 of the data files its results rest on, checked before the record is restored
RECORD_DATA = "data.json"
METRICS = [*ACTIONS, "overall", "macro_action", "clarify_to_call_tool", "unparsed_rate"]


def split_overrides(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    """(the SFT config's overrides, the benchmark's settings changed by `bench.KEY=VALUE`)."""
    sft = [o for o in overrides if not o.startswith("bench.")]
    bench = parse_overrides([o.removeprefix("bench.") for o in overrides if o.startswith("bench.")])
    return sft, bench


def _key(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Ablation:
    def __init__(self, config: AblationConfig, progress: bool = True):
        self.config = config
        self.root = Path(config.out_dir)
        self.run = self.root / config.name
        self.run.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.arms = arms(config)

    # ------------------------------------------------------------------------------------------------- data
    def data_settings(self, bench: dict[str, Any]) -> DataSettings:

        known = {f.name for f in dataclasses.fields(DataSettings)}
        unknown = sorted(set(bench) - known)
        if unknown:
            problem = f"unknown benchmark setting(s) {unknown} (known: {', '.join(sorted(known))})"
            raise InputError([Problem("<config>", None, "arms", problem)])
        return dataclasses.replace(self.config.data, **bench)

    def data_dir(self, settings: DataSettings) -> Path:

        folder = self.root / "data" / _key(to_plain(settings))
        # benchmark.json is written last: a benchmark killed half-way (eval.jsonl there, eval_novel.jsonl not) is
        # written again rather than used
        if not (folder / "benchmark.json").is_file():
            write_benchmark(folder, seed=settings.seed, config=settings.benchmark_config())
        return folder

    def scored_cases(self, split: str, limit: int | None) -> list[Any]:
        """The reference benchmark's `split` (a seeded sample of `limit` cases when set): every arm's cases."""

        cases = read_cases(self.data_dir(self.config.data) / f"{split}.jsonl")
        # a seeded sample, not the first N: the files are written category by category
        return random.Random(0).sample(cases, limit) if limit and limit < len(cases) else cases

    def refuse_leaks(self, arm: str, data: Path, scored: list[Any]) -> None:
        """An arm trained on another benchmark must not have seen a scored case's conversation."""

        def text(case: Any) -> str:
            return json.dumps([m.to_dict() for m in case.messages], sort_keys=True)

        seen = {text(c) for split in ("train", "val") for c in read_cases(data / f"{split}.jsonl")}
        leaked = [c.id for c in scored if text(c) in seen]
        if leaked:
            problem = f"{len(leaked)} scored case(s) appear in this arm's training data, e.g. {leaked[0]}"
            raise InputError([Problem(str(data / "train.jsonl"), None, f"arms.{arm}", problem)])

    # -------------------------------------------------------------------------------------------------- units
    def identity(self, arm: str, seed: int) -> tuple[dict[str, Any], Path]:
        """Everything that defines one arm at one seed (its key names the unit's folder), and its data folder."""

        c = self.config
        sft_overrides, bench = split_overrides([*c.sft_set, *self.arms[arm]])
        data = self.data_dir(self.data_settings(bench))
        identity = {
            "base": c.base, "quantize": c.quantize, **self.load_settings(), "sft_config": Path(c.sft_config).read_text(),
            "sft_overrides": sft_overrides, "data": data.name, "seed": seed, "split": c.split,
            "max_cases": c.max_cases, "eval": to_plain(c.eval), "steering": to_plain(c.steering),
        }  # fmt: skip
        return identity, data

    def stage_names(self) -> list[str]:
        """The stages every unit runs."""
        s = self.config.steering
        return ["sft", "eval", *(["steering"] if s.layers and s.alphas else [])]

    def finished(self, arm: str, seed: int) -> dict[str, Any] | None:
        """The stage summaries of a unit that has run (here, or in `record_dir`), else None; trains nothing (a
        unit finished here but not recorded yet is recorded)."""

        identity, data = self.identity(arm, seed)
        key = _key(identity)
        self.restore(key, data)
        markers = self.root / "units" / key / "stages"
        if not self.complete(self.root / "units" / key):
            return None
        self.keep(key, data)
        return {"unit": key, **{n: json.loads((markers / f"{n}.json").read_text()) for n in self.stage_names()}}

    def record_files(self) -> list[str]:
        """A finished unit's files that its record keeps: small text files, never the adapter."""
        names = ["unit.json", "verdicts.jsonl", *(f"stages/{n}.json" for n in self.stage_names())]
        return [*names, *(["steering_sweep.json"] if "steering" in self.stage_names() else [])]

    def complete(self, folder: Path) -> bool:
        """Whether `folder` (a unit's, or its record) holds every file of a finished unit."""
        return all((folder / name).is_file() for name in self.record_files())

    def data_fingerprint(self, data: Path) -> dict[str, str]:
        """sha256 of the bytes a unit's results rest on: its train and val files and the scored split's file."""
        scored = self.data_dir(self.config.data) / f"{self.config.split}.jsonl"
        return {
            "train": file_sha256(data / "train.jsonl"),
            "val": file_sha256(data / "val.jsonl"),
            "scored": file_sha256(scored),
        }

    def restore(self, key: str, data: Path) -> None:
        """Copy a unit's record from `record_dir` into its folder, unless the folder has finished already or the
        record was made on other data bytes (a generator changed since: the unit runs again)."""

        if not self.config.record_dir:
            return
        record, folder = Path(self.config.record_dir) / key, self.root / "units" / key
        if self.complete(folder) or not self.complete(record):
            return
        made_on = json.loads((record / RECORD_DATA).read_text()) if (record / RECORD_DATA).is_file() else None
        if made_on != self.data_fingerprint(data):
            print(f"record {record} was made on other data bytes than today's; not restored")
            return
        for name in self.record_files():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, (record / name).read_text(encoding="utf-8"))

    def keep(self, key: str, data: Path) -> None:
        """Write a finished unit's record (its record_files and the data fingerprint) to `record_dir`, unless the
        record there holds the same already."""

        if not self.config.record_dir:
            return
        folder, record = self.root / "units" / key, Path(self.config.record_dir) / key
        if not self.complete(folder):
            raise RuntimeError(f"unit {folder} is not finished; nothing to record")
        texts = {name: (folder / name).read_text(encoding="utf-8") for name in self.record_files()}
        texts[RECORD_DATA] = json.dumps(self.data_fingerprint(data), indent=2) + "\n"
        if all((record / n).is_file() and (record / n).read_text(encoding="utf-8") == v for n, v in texts.items()):
            return
        with atomic_folder(record) as staging:
            staging.chmod(0o755)  # mkdtemp makes it private; the record is kept in git
            for name, text in texts.items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_text(text, encoding="utf-8")

    def unit(self, arm: str, seed: int) -> dict[str, Any]:
        """Train (or reuse) one arm at one seed and score it; returns the unit's folder name and stage summaries."""

        c = self.config
        identity, data = self.identity(arm, seed)
        sft_overrides = identity["sft_overrides"]
        key = _key(identity)
        self.restore(key, data)
        folder = self.root / "units" / key
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "unit.json", json.dumps(identity, indent=2) + "\n")
        stages = StageRunner(folder, log=lambda m: print(f"[{arm} seed {seed}] {m}"))
        scored = self.scored_cases(c.split, c.max_cases)
        if data != self.data_dir(c.data) and not stages.done("eval"):
            self.refuse_leaks(arm, data, scored)

        def sft() -> dict[str, Any]:

            overrides = [*c.sft_overrides(folder, data, seed), *sft_overrides]
            config = load_config(SFTRunConfig, c.sft_config, overrides=overrides)
            earlier = find_reusable(config, c.reuse_sft)
            if earlier is not None:
                adopt(earlier, folder / "sft")
                summary = json.loads((folder / "sft" / "train_summary.json").read_text())
                return {
                    "train_s": round(summary["train_seconds"], 2),
                    "steps": summary["steps"],
                    "reused_from": str(earlier),
                }
            result = train_sft(config)
            return {"train_s": round(result.train_seconds, 2), "steps": result.steps}

        summaries: dict[str, Any] = {"unit": folder.name, "sft": stages.run("sft", sft)}
        summaries["eval"] = stages.run("eval", lambda: self.evaluate(folder, scored))
        if "steering" in self.stage_names():
            summaries["steering"] = stages.run("steering", lambda: self.steering_grid(folder, data))
        self.keep(key, data)
        return summaries

    def load_settings(self) -> dict[str, Any]:
        """How eval loads a unit's agent, when not the defaults (part of a unit's identity only then, so the units
        of earlier configs keep their keys)."""
        c = self.config
        return {
            k: v for k, v in (("dtype", c.dtype), ("merge_adapters", c.merge_adapters)) if v not in ("float32", False)
        }

    def agent(self, folder: Path) -> tuple[Any, Any]:

        # lazy: peft loads with the model anyway, and only a unit's eval needs it
        from peft import PeftModel

        c = self.config
        model, tokenizer = load_agent(c.base, folder / "sft" / "adapter", quantize=c.quantize, dtype=c.dtype)
        if c.merge_adapters and isinstance(model, PeftModel):
            return model.merge_and_unload(), tokenizer
        return model, tokenizer

    def harness(self) -> Any:

        e = self.config.eval
        return HarnessConfig(max_new_tokens=e.max_new_tokens, batch_size=e.batch_size, max_turns=e.max_turns)

    def evaluate(self, folder: Path, cases: list[Any]) -> dict[str, Any]:

        model, tokenizer = self.agent(folder)
        start = time.perf_counter()
        verdicts = evaluate(model, tokenizer, cases, config=self.harness(), progress=self.progress, desc="eval")
        write_verdicts(folder / "verdicts.jsonl", verdicts)
        return {"cases": len(verdicts), "infer_s": round(time.perf_counter() - start, 2), **metrics(verdicts)}

    def steering_grid(self, folder: Path, data: Path) -> dict[str, Any]:

        s = self.config.steering
        model, tokenizer = self.agent(folder)
        vector = compute_from_cases(
            model,
            tokenizer,
            read_cases(data / "train.jsonl"),
            s.layers,
            source="classes",
            progress=self.progress,
            positive="clarify",
            negative="call_tool",
        )
        result = sweep(
            model, tokenizer, self.scored_cases(s.split, s.max_cases), vector, layers=s.layers, alphas=s.alphas,
            config=self.harness(), positions=s.apply_positions, progress=self.progress,
        )  # fmt: skip
        atomic_write_text(folder / "steering_sweep.json", json.dumps(result.to_dict(), indent=2) + "\n")
        points = [
            {"layer": p.layer, "alpha": p.alpha, "clarify": p.clarify_acc, "call_tool": p.call_tool_acc}
            for p in [result.baseline, *result.points]
        ]
        return {"split": s.split, "points": points}


def metrics(verdicts: list[Any]) -> dict[str, Any]:
    """Per-action accuracy, overall, macro, the share of clarify cases answered with call_tool, unparsed share."""

    s = score(verdicts)
    out: dict[str, Any] = {a: s["per_action"].get(a, {}).get("acc") for a in ACTIONS}
    clarify = s["confusion"].get("clarify", {})
    total = sum(clarify.values())
    out.update(
        overall=s["overall"],
        macro_action=s["macro_action"],
        clarify_to_call_tool=round(clarify.get("call_tool", 0) / total, 4) if total else None,
        unparsed_rate=s["unparsed_rate"],
    )
    return out


def pooled_counts(verdicts: list[Any]) -> dict[str, Any]:
    """Every seed's verdicts pooled: per expected action and overall, n, acc and its Wilson 95% interval (the
    case-sampling uncertainty, beside the seed-to-seed sd), and how many clarify cases were answered with call_tool."""

    s = score(verdicts)
    clarify = s["confusion"].get("clarify", {})
    return {
        **{a: {k: b[k] for k in ("n", "acc", "ci95")} for a, b in s["per_action"].items()},
        "overall": accuracy_block(verdicts),
        "clarify_to_call_tool": {"count": clarify.get("call_tool", 0), "total": sum(clarify.values())},
    }


def aggregate(ablation: Ablation, units: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Mean +/- sd per arm and metric over seeds; each arm against the first, paired on the same cases and seeds
    (McNemar over all of them pooled, and the per-seed difference in clarify and call_tool accuracy)."""

    c = ablation.config
    names = list(units)
    reference = next(iter(ablation.arms))

    verdicts = {
        (arm, seed): read_verdicts(ablation.root / "units" / unit["unit"] / "verdicts.jsonl")
        for arm, runs in units.items()
        for seed, unit in runs.items()
    }

    def correct(arm: str, seed: int) -> dict[str, tuple[str, bool]]:
        """Case id -> (expected action, correct)."""
        return {v.id: (v.expected, bool(v.correct)) for v in verdicts[arm, seed]}

    out: dict[str, Any] = {}
    for arm in names:
        per_seed = {seed: u["eval"] for seed, u in units[arm].items()}
        summary: dict[str, Any] = {}
        for metric in METRICS:
            values = [v[metric] for v in per_seed.values() if v.get(metric) is not None]
            summary[metric] = _mean_sd(values)
        train = [u["sft"]["train_s"] for u in units[arm].values()]
        entry: dict[str, Any] = {
            "overrides": ablation.arms[arm],
            "seeds": {str(seed): {**v, **_unit_source(units[arm][seed])} for seed, v in per_seed.items()},
            "mean_sd": summary,
            "pooled": pooled_counts([v for seed in units[arm] for v in verdicts[arm, seed]]),
            # per seed, not pooled: the same case in two seeds is not two independent cases
            "asks_where_it_should": {
                str(seed): score(verdicts[arm, seed])["asks_where_it_should"] for seed in units[arm]
            },
            "train_s": round(sum(train) / len(train), 1),
        }
        if arm != reference and set(units[arm]) & set(units.get(reference, {})):
            pairs: list[tuple[str, bool, bool]] = []  # (expected action, reference correct, arm correct)
            for seed in units[arm]:
                if seed in units[reference]:
                    ref, mine = correct(reference, seed), correct(arm, seed)
                    pairs += [(ref[i][0], ref[i][1], mine[i][1]) for i in sorted(set(ref) & set(mine))]
            entry["vs_reference"] = {
                "reference": reference,
                "mcnemar_pooled": mcnemar([r for _, r, _ in pairs], [m for _, _, m in pairs]),
                # overall correctness can hide a swap (clarify gained, call_tool lost): the two actions on their own
                "mcnemar_by_action": {
                    action: mcnemar([r for e, r, _ in pairs if e == action], [m for e, _, m in pairs if e == action])
                    for action in ("clarify", "call_tool")
                },
            }
            for metric in ("clarify", "call_tool", "overall"):
                diffs = [
                    units[arm][s]["eval"][metric] - units[reference][s]["eval"][metric]
                    for s in units[arm]
                    if s in units[reference]
                    and units[arm][s]["eval"].get(metric) is not None
                    and units[reference][s]["eval"].get(metric) is not None
                ]
                entry["vs_reference"][f"{metric}_diff"] = _mean_sd(diffs)
        steering = [s for u in units[arm].values() if (s := u.get("steering"))]
        if steering:
            entry["steering"] = _steering_summary(steering)
        out[arm] = entry
    missing = [
        {"arm": arm, "seed": seed} for seed in c.seeds for arm in ablation.arms if seed not in units.get(arm, {})
    ]
    return {
        "name": c.name, "question": c.question, "split": c.split, "cases": _cases_count(units),
        "seeds": c.seeds, "reference": reference, "arms": out, "missing": missing, "config": to_plain(c),
    }  # fmt: skip


def _unit_source(unit: dict[str, Any]) -> dict[str, Any]:
    """The unit's folder, and the earlier SFT run it adopted (`reuse_sft`) when it did."""
    reused = unit["sft"].get("reused_from")
    return {"unit": unit["unit"], **({"sft_reused_from": reused} if reused else {})}


def _mean_sd(values: list[float]) -> list[float] | None:
    """[mean, sd] over seeds, rounded to 4 places; None without values."""

    return [round(x, 4) for x in mean_sd(values)] if values else None


def _cases_count(units: dict[str, dict[int, dict[str, Any]]]) -> int | None:
    counts = {u["eval"]["cases"] for seeds in units.values() for u in seeds.values()}
    return counts.pop() if len(counts) == 1 else None


def _steering_summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:

    cells: dict[tuple[Any, float], dict[str, list[float]]] = {}
    for run in runs:
        for p in run["points"]:
            cell = cells.setdefault((p["layer"], p["alpha"]), {"clarify": [], "call_tool": []})
            for metric in ("clarify", "call_tool"):
                if p[metric] is not None:
                    cell[metric].append(p[metric])
    return [
        {"layer": layer, "alpha": alpha, "split": runs[0]["split"],
         **{m: _mean_sd(v) for m, v in cell.items()}}
        for (layer, alpha), cell in cells.items()
    ]  # fmt: skip


def run_ablation(config: AblationConfig, progress: bool = True, report_only: bool = False) -> dict[str, Any]:
    """Run (or resume) every arm x seed, seed by seed, then write results.json, table.md and the plot; returns the
    results. `report_only` runs nothing: it tables the units finished so far (here or in `record_dir`)."""
    ablation = Ablation(config, progress=progress)
    atomic_write_text(ablation.run / "config.yaml", dump_yaml(config))
    units: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in ablation.arms}
    for seed in config.seeds:
        for arm in ablation.arms:
            unit = ablation.finished(arm, seed) if report_only else ablation.unit(arm, seed)
            if unit is not None:
                units[arm][seed] = unit
    units = {arm: runs for arm, runs in units.items() if runs}
    results = aggregate(ablation, units)
    atomic_write_text(ablation.run / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(ablation.run / "table.md", render_table(results))
    plot_arms(results, ablation.run / "plots" / "arms.png")
    return results
