"""`toolprior study CONFIG`: one command from nothing to "steering vs SimPO" on the same held-out cases.

Stages (each cached under runs/<name>/stages/, so a rerun after an interrupt skips what finished):
data -> sft -> eval_sft (eval + eval_novel, and mine for pairs and sweeps) -> probe (train split) ->
steer_compute (train split) -> steer_sweep (mine only; layer and alpha chosen there) -> eval of guardrail,
steering, conditional steering and the random-direction control -> pairs (mine failures) -> simpo -> eval of simpo
and simpo+steering -> external held-out files (sft, steering, simpo) -> DPO and adversarial SFT on the same pairs ->
their evals -> KL -> report (report.json / report.md / plots; paired tests, collateral damage, KL, cost).
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolprior.atomic import atomic_write_text
from toolprior.config import dump_yaml, load_config
from toolprior.evals.harness import evaluate
from toolprior.experiments.inference_clock import inference_clock
from toolprior.experiments.organism_adapter import install, verify
from toolprior.experiments.stages import StageRunner
from toolprior.experiments.steering_variants import SteeringVariant, parse_variant, rescaled, variant_row
from toolprior.experiments.study_config import StudyConfig
from toolprior.experiments.study_external import stage_external
from toolprior.experiments.study_kl import BASELINES, COMPARED, stage_kl
from toolprior.experiments.study_probe import stage_probe
from toolprior.experiments.study_report import write_study_report
from toolprior.experiments.study_run import StudyRun, probe_digest, steering_key
from toolprior.experiments.study_simpo_search import stage_simpo_search
from toolprior.memory import release_memory
from toolprior.modeling import decoder_layers, load_model, load_tokenizer
from toolprior.steering.apply import steering_factory
from toolprior.steering.compute import capture_for_vector, compute_from_cases
from toolprior.steering.conditional import fit_conditional
from toolprior.steering.guardrail import guardrail_evaluate
from toolprior.steering.plots import plot_controls, plot_dose_response, plot_heatmap
from toolprior.steering.sweep import choose, controls, preference, random_control, saved_sweep, sweep
from toolprior.steering.vector import SteeringVector
from toolprior.training import AdvSFTRunConfig, DPORunConfig, SimPORunConfig, train_adv_sft, train_dpo, train_simpo
from toolprior.training.benchmark import write_benchmark
from toolprior.training.pair_mining import mine_pairs
from toolprior.training.pairs import pair_stats, write_pairs
from toolprior.training.run_configs import SFTRunConfig
from toolprior.training.sft import train_sft


class Study(StudyRun):
    """The stages of one study run, over the state they share (`StudyRun`)."""

    def __init__(self, config: StudyConfig, progress: bool = True):
        super().__init__(config, progress)
        self.stages = StageRunner(self.run)
        self._agent: tuple[Any, Any] | None = None

    def agent(self, adapter: Path | None = None) -> tuple[Any, Any]:
        """(model, tokenizer) of base + adapter (the SFT adapter by default), loaded once per adapter."""

        adapter = adapter or self.sft_dir / "adapter"
        if self._agent is None or self._agent[0].__dict__.get("_toolprior_adapter") != str(adapter):
            self._agent = None
            release_memory()  # the agent loaded before, and whatever a training left
            tokenizer = load_tokenizer(self.config.base)
            model = load_model(
                self.config.base, quantize=self.config.quantize, adapter=adapter, dtype=self.config.dtype
            )
            if self.config.merge_adapters:
                model = model.merge_and_unload()
            model.__dict__["_toolprior_adapter"] = str(adapter)
            self._agent = (model, tokenizer)
        return self._agent

    def evaluate(
        self,
        name: str,
        cases: list[Any],
        steer: Any = None,
        adapter: Path | None = None,
        steering: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Score `cases` with the agent (`adapter`, the SFT one by default) under `steer`, saving the verdicts as
        `name`. `steering` names what `steer` applies (`study_run.steering_key`); with it, or with no `steer`,
        verdicts saved earlier under the same key (`StudyRun.verdicts_key`) are taken as they are, so a stage cut
        after some of its evaluations (an hour or more each here) redoes only the rest. A `steer` without
        `steering` is always run."""
        key = None
        if steer is None or steering is not None:
            key = self.verdicts_key(cases, adapter or self.sft_dir / "adapter", steering)
            kept = self.kept_verdicts(name, key)
            if kept is not None:
                return {"cases": len(cases), "infer_s": kept.get("infer_s"), "cpu_s": kept.get("cpu_s"), "kept": True}
        model, tokenizer = self.agent(adapter)
        with inference_clock() as clock:
            verdicts = evaluate(
                model, tokenizer, cases, config=self.harness(), steer=steer, progress=self.progress, desc=name
            )
        self.save_verdicts(name, verdicts, key=key, **clock)
        return {"cases": len(cases), **clock}

    # ------------------------------------------------------------------------------------------------- stages
    def stage_data(self) -> dict[str, Any]:

        d = self.config.data
        summary = write_benchmark(self.data_dir, seed=d.seed, config=d.benchmark_config())
        return {"describe": summary.describe()}

    def stage_sft(self) -> dict[str, Any]:
        """Train the SFT adapter, or install the shipped one (`sft_adapter`) once its sidecar matches this study's
        SFT config, its generated train / val files and its base."""

        overrides = [*self.config.sft_overrides(), *self.config.sft_set]
        config = load_config(SFTRunConfig, self.config.sft_config, overrides=overrides)
        if self.config.sft_adapter:
            shipped = Path(self.config.sft_adapter)
            sidecar = verify(shipped, config, self.data_dir)
            install(shipped, self.sft_dir / "adapter")
            return {
                "shipped_adapter": str(shipped),
                "config_hash": sidecar["config_hash"],
                "commit": sidecar["commit"],
                "train_s": sidecar["train"]["train_seconds"],
                "steps": sidecar["train"]["steps"],
                "best_eval_loss": sidecar["train"]["best_eval_loss"],
            }
        result = train_sft(config)
        return {
            "train_s": round(result.train_seconds, 2),
            "steps": result.steps,
            "best_eval_loss": result.best_eval_loss,
        }

    def stage_eval_sft(self) -> dict[str, Any]:
        held = self.evaluate("sft", self.held_out)
        mine = self.evaluate("sft_mine", self.cases("mine"))
        return {"held_out": held, "mine": mine}

    def stage_guardrail(self) -> dict[str, Any]:

        model, tokenizer = self.agent()
        first = [v.output for v in self.load_verdicts("sft")]
        with inference_clock() as clock:
            verdicts = guardrail_evaluate(model, tokenizer, self.held_out, self.harness(), first_outputs=first)
        self.save_verdicts("guardrail", verdicts)
        return dict(clock)

    def steering_layers(self, model: Any) -> list[int]:
        """The layers the sweep tries: around the probe's best layer when asked (where the probe found the
        clarify/call_tool split), else the configured list, else every decoder layer."""

        s = self.config.steering
        count = len(decoder_layers(model))
        best = self.stages.summaries.get("probe", {}).get("best_layer") if self.stages.done("probe") else None
        if s.layers_around_probe is not None and best is not None:
            r = s.layers_around_probe
            return list(range(max(0, int(best) - r), min(count, int(best) + r + 1)))
        return s.layers or list(range(count))

    def variants(self) -> list[SteeringVariant]:
        """The ways to make and apply the vector that the sweep compares on mine (`steering.variants`, else the one
        the steering fields name)."""
        s = self.config.steering
        if s.variants:
            return [parse_variant(v) for v in s.variants]
        return [SteeringVariant(s.method, s.source, s.position, s.apply_positions)]

    def stage_steer_compute(self) -> dict[str, Any]:
        """One vector per variant (variants read at the same position from the same cases share one capture); the
        first is steering/vector.safetensors until the sweep picks one."""
        model, tokenizer = self.agent()
        layers = self.steering_layers(model)
        captured: dict[tuple[str, str], tuple[Any, list[Any]]] = {}

        def activations(source: str, position: str) -> tuple[Any, list[Any]]:
            # variants read at the same position from the same cases share one capture
            if (source, position) not in captured:
                cases = self.source_sample() if source == "classes" else self.twin_sample()
                captured[source, position] = capture_for_vector(
                    model, tokenizer, cases, layers, position,
                    positive="clarify", negative="call_tool", progress=self.progress,
                )  # fmt: skip
            return captured[source, position]

        def compute(method: str, source: str, position: str) -> SteeringVector:
            acts, cases = activations(source, position)
            return compute_from_cases(
                model, tokenizer, cases, layers, method=method, source=source, position=position,
                positive="clarify", negative="call_tool", acts=acts,
            )  # fmt: skip

        # `steering.variant_scale: decision_mean_diff`: every variant at the norm, layer by layer, of the class-mean
        # difference at the decision point on the source sample
        scale = None
        if self.config.steering.variant_scale == "decision_mean_diff":
            scale = compute("mean_diff", "classes", "decision").norms()
        out: dict[str, Any] = {}
        variants = self.variants()
        for i, variant in enumerate(variants):
            vector = compute(variant.method, variant.source, variant.position)
            if scale is not None:
                vector = rescaled(vector, scale)
            if len(variants) > 1:
                vector.save(self.run / "steering" / "variants" / f"{variant.name}.safetensors")
            if i == 0:
                vector.save(self.run / "steering" / "vector.safetensors")
            out[variant.name] = {"layers": vector.layers, "norms": vector.norms(), "n": vector.meta.get("n")}
        if len(out) == 1:
            (only,) = out.values()
            return {"vector": str(self.run / "steering" / "vector.safetensors"), **only}
        return {"variants": out}

    def twin_sample(self) -> list[Any]:
        """The source split's clarify / call_tool twin pairs (both members), at most `source_cases` cases: a
        random sample would split nearly every pair."""
        s = self.config.steering
        source = self.cases(s.source_split)
        by_id = {c.id: c for c in source}
        wanted = ("clarify", "call_tool")
        members: list[Any] = []
        for case in source:
            twin = by_id.get(case.twin or "")
            if case.expected_action.value == "clarify" and twin is not None and twin.expected_action.value in wanted:
                members += [case, twin]
        return members[: 2 * (s.source_cases // 2)] if s.source_cases else members

    def source_sample(self) -> list[Any]:
        """The cases the vector and the conditional gate's probe are fitted on: `steering.source_cases` of the
        source split, a seeded sample (the files go category by category), or all of it."""
        s = self.config.steering
        source = self.cases(s.source_split)
        if s.source_cases and s.source_cases < len(source):
            return random.Random(0).sample(source, s.source_cases)
        return source

    def vector(self) -> Any:

        model, tokenizer = self.agent()
        return SteeringVector.load(self.run / "steering" / "vector.safetensors", model=model, tokenizer=tokenizer)

    def mine_for_sweep(self) -> list[Any]:
        mine = self.cases("mine")
        limit = self.config.steering.mine_cases
        # a seeded sample, not the first N: the files are written category by category
        return random.Random(0).sample(mine, limit) if limit and limit < len(mine) else mine

    def stage_steer_sweep(self) -> dict[str, Any]:
        """Every variant at the layers x alphas on mine; the best clarify that keeps call_tool above the floor wins
        (`steering.sweep.choose` within a variant, the same order across them), then its controls."""
        s = self.config.steering
        model, tokenizer = self.agent()
        layers = self.steering_layers(model)
        out = self.run / "steering"
        variants = self.variants()
        mine = self.mine_for_sweep()
        # every variant is swept on the same cases, and the controls too: their unsteered verdicts once
        baseline = self.sweep_baseline(mine)
        searched: list[tuple[SteeringVariant, Any, Any]] = []
        for variant in variants:
            path = out / "variants" / f"{variant.name}.safetensors" if len(variants) > 1 else out / "vector.safetensors"
            vector = SteeringVector.load(path, model=model, tokenizer=tokenizer)
            record = out / "variants" / f"sweep_{variant.name}.json"
            # a stage cut after some variants (an hour here) keeps their sweeps and redoes only the rest
            # and a grid widened since then sweeps only its new points
            result = (
                saved_sweep(record, vector, mine, layers, s.alphas, variant.apply, config=self.harness())
                if len(variants) > 1
                else None
            )
            if result is None or len(result.points) < len(layers) * len(s.alphas):
                result = sweep(
                    model, tokenizer, mine, vector, layers=layers, alphas=s.alphas, config=self.harness(),
                    positions=variant.apply, progress=self.progress, baseline=baseline, kept=result,
                )  # fmt: skip
                if len(variants) > 1:
                    atomic_write_text(record, json.dumps(result.to_dict()) + "\n")
            searched.append((variant, result, choose(result, min_call_tool=s.min_call_tool)))
        picked = [row for row in searched if row[2] is not None]
        variant, result, best = max(picked, key=lambda r: preference(r[2])) if picked else searched[0]
        if len(variants) > 1:  # the downstream stages read the chosen variant's vector
            shutil.copyfile(out / "variants" / f"{variant.name}.safetensors", out / "vector.safetensors")
        atomic_write_text(out / "sweep.json", json.dumps(result.to_dict(), indent=2) + "\n")
        plots = self.run / "plots"
        plot_dose_response(
            result, best.layer if best else layers[len(layers) // 2], plots / "steering_dose_response.png"
        )
        plot_heatmap(result, plots / "steering_layer_alpha.png")
        chosen = None if best is None else {"layer": best.layer, "alpha": best.alpha, "chosen_on": "mine"}
        if chosen is not None and len(variants) > 1:
            chosen.update(variant=variant.to_dict(), apply_positions=variant.apply)
        atomic_write_text(out / "chosen.json", json.dumps(chosen, indent=2) + "\n")
        summary: dict[str, Any] = {"chosen": chosen, "baseline": result.baseline.to_dict(scores=False)}
        # what was tried, for the report's first page (one variant too: a miss names the grid it swept)
        summary["variants"] = [variant_row(v, r, b) for v, r, b in searched]
        if best is not None:
            vector = self.vector()
            ctrl = controls(
                model, tokenizer, mine, vector, best.layer, best.alpha, seeds=s.random_seeds,
                config=self.harness(), positions=variant.apply, baseline=baseline, swept=result,
            )  # fmt: skip
            atomic_write_text(out / "controls.json", json.dumps(ctrl.to_dict(), indent=2) + "\n")
            plot_controls(ctrl, plots / "steering_controls.png")
            summary["controls"] = [
                {"label": p.label, "clarify_acc": p.clarify_acc, "call_tool_acc": p.call_tool_acc} for p in ctrl.points
            ]
        return summary

    def sweep_baseline(self, mine: list[Any]) -> list[Any]:
        """The unsteered verdicts of the sweep's mine cases (`evaluate` keys them, so a resumed sweep reuses them
        only for the same cases, harness and adapter)."""
        self.evaluate("sweep_baseline", mine)
        return self.load_verdicts("sweep_baseline")

    def apply_positions(self) -> str:
        """Where the chosen vector is applied: the chosen variant's positions, else `steering.apply_positions`."""
        chosen = self.chosen() if (self.run / "steering" / "chosen.json").is_file() else None
        return (chosen or {}).get("apply_positions", self.config.steering.apply_positions)

    def chosen(self) -> dict[str, Any] | None:
        return json.loads((self.run / "steering" / "chosen.json").read_text())

    def chosen_vectors(self, chosen: dict[str, Any]) -> tuple[int, float, Any, Any]:
        """(layer, alpha, the vector at that layer alone, its random-direction control of equal norm)."""

        layer, alpha = int(chosen["layer"]), float(chosen["alpha"])
        vector = self.vector()
        control = random_control(vector, layer, seed=self.config.steering.random_seeds[0])
        return layer, alpha, vector.only([layer]), control

    def stage_eval_steering(self) -> dict[str, Any]:

        chosen = self.chosen()
        if chosen is None:
            return {"skipped": "no layer x alpha met the call_tool floor on mine"}
        s = self.config.steering
        model, tokenizer = self.agent()
        layer, alpha, single, control = self.chosen_vectors(chosen)
        out: dict[str, Any] = {}
        positions = self.apply_positions()  # read from chosen.json once for the three evaluations
        factory = steering_factory(model, single, alpha, positions=positions, tokenizer=tokenizer)
        steering = steering_key(single, alpha, positions)
        out["steering"] = self.evaluate("steering", self.held_out, steer=factory, steering=steering)
        factory = steering_factory(model, control, alpha, positions=positions, tokenizer=tokenizer)
        random_steering = steering_key(control, alpha, positions)
        out["steering_random"] = self.evaluate(
            "steering_random", self.held_out, steer=factory, steering=random_steering
        )
        conditional = fit_conditional(
            model,
            tokenizer,
            single,
            layer=layer,
            alpha=alpha,
            train_cases=self.source_sample(),
            mine_cases=self.mine_for_sweep(),
            target=s.conditional_target,
            positions=positions,
        )
        gate = probe_digest(conditional.probe)
        gated = None if gate is None else {**steering, "gate": gate, "gate_threshold": float(conditional.threshold)}
        out["conditional_steering"] = self.evaluate(
            "conditional_steering", self.held_out, steer=conditional.factory(model), steering=gated
        )
        out["threshold"] = float(conditional.threshold)
        return out

    def stage_pairs(self) -> dict[str, Any]:

        pairs = mine_pairs(self.cases("mine"), self.load_verdicts("sft_mine"), eval_cases=self.held_out)
        write_pairs(self.run / "pairs.jsonl", pairs.pairs)
        print(pair_stats(pairs.pairs))
        return {"pairs": len(pairs.pairs), "counts": dict(pairs.counts)}

    def stage_pair_training(self, method: str) -> dict[str, Any]:
        """SimPO, or a baseline on the same mined pairs (DPO, adversarial SFT), continuing the SFT adapter."""

        config_class, train, path, extra = {
            "simpo": (SimPORunConfig, train_simpo, self.config.simpo_config, self.config.simpo_set),
            "dpo": (DPORunConfig, train_dpo, self.config.dpo_config, self.config.dpo_set),
            "adv_sft": (AdvSFTRunConfig, train_adv_sft, self.config.adv_sft_config, self.config.adv_sft_set),
        }[method]
        overrides = [*self.config.pair_overrides(method), *extra]
        result = train(load_config(config_class, path, overrides=overrides))
        return {"train_s": round(result.train_seconds, 2), "steps": result.steps, "pairs": result.pairs}

    def stage_eval_adapter(self, method: str) -> dict[str, Any]:
        """`method`'s adapter scored on the held-out cases."""
        return {method: self.evaluate(method, self.held_out, adapter=self.run / method / "adapter")}

    def stage_eval_simpo(self) -> dict[str, Any]:

        adapter = self.run / "simpo" / "adapter"
        out = {"simpo": self.evaluate("simpo", self.held_out, adapter=adapter)}
        chosen = self.chosen()
        if chosen is not None and "simpo_steering" in self.config.methods:
            model, tokenizer = self.agent(adapter)
            # The vector was computed on the SFT agent; applied unchanged to the SimPO agent (same base, same layers).

            vector = SteeringVector.load(self.run / "steering" / "vector.safetensors").only([int(chosen["layer"])])
            factory = steering_factory(
                model,
                vector,
                float(chosen["alpha"]),
                positions=self.apply_positions(),
                tokenizer=tokenizer,
            )
            steering = steering_key(vector, float(chosen["alpha"]), self.apply_positions())
            out["simpo_steering"] = self.evaluate(
                "simpo_steering", self.held_out, steer=factory, adapter=adapter, steering=steering
            )
        return out


def study_stages(study: Study) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """Every stage `study`'s config asks for, by name, in the order they run."""
    config = study.config
    wanted = set(config.methods)
    stages: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("data", study.stage_data),
        ("sft", study.stage_sft),
        ("eval_sft", study.stage_eval_sft),
    ]
    if config.probe.enabled:
        stages.append(("probe", lambda: stage_probe(study)))
    if "guardrail" in wanted:
        stages.append(("guardrail", study.stage_guardrail))
    if wanted & {"steering", "conditional_steering", "steering_random", "simpo_steering"}:
        stages += [
            ("steer_compute", study.stage_steer_compute),
            ("steer_sweep", study.stage_steer_sweep),
            ("eval_steering", study.stage_eval_steering),
        ]
    if wanted & {"simpo", "simpo_steering", "dpo", "adv_sft"}:
        stages.append(("pairs", study.stage_pairs))
    if wanted & {"simpo", "simpo_steering"}:
        search = config.simpo_search
        stages.append(
            ("simpo", (lambda: stage_simpo_search(study)) if search else lambda: study.stage_pair_training("simpo"))
        )
        stages.append(("eval_simpo", study.stage_eval_simpo))
    stages.append(("kl", lambda: stage_kl(study, COMPARED)))
    # before DPO and adversarial SFT: the external sets score the methods the issue compares (sft, steering, SimPO)
    if config.external.enabled:
        stages.append(("external", lambda: stage_external(study)))
    for method in ("dpo", "adv_sft"):
        if method in wanted:
            stages.append((method, functools.partial(study.stage_pair_training, method)))
            stages.append((f"eval_{method}", functools.partial(study.stage_eval_adapter, method)))
    if wanted & set(BASELINES):
        stages.append(("kl_baselines", lambda: stage_kl(study, BASELINES)))
    return stages


def run_study(config: StudyConfig, progress: bool = True, report_only: bool = False) -> dict[str, Any]:
    """Run (or resume) every stage of a study and write the report; returns report.json's content. With
    `report_only`, run nothing: write the report from the stages finished so far, naming the others (`unfinished`),
    so a run of hours can be read while it goes on."""

    if report_only:
        config.check_reportable()
    study = Study(config, progress=progress)
    stages = study_stages(study)
    if report_only:
        return write_study_report(study, unfinished=[name for name, _ in stages if not study.stages.done(name)])
    atomic_write_text(study.run / "config.yaml", dump_yaml(config))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name, fn in stages:
        study.stages.run(name, fn)
    return write_study_report(study)
