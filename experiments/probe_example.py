"""Where does an agent's call-tool prior live? Probe every layer at the decision point (`toolprior.decision_point`).

    python experiments/probe_example.py MODEL_DIR [--adapter ADAPTER] [--cases CASES.jsonl] [--out OUT_DIR]

MODEL_DIR: any local causal LM folder (or `organism`); ADAPTER: a LoRA adapter folder on top of it (e.g.
runs/sft_organism/adapter). CASES: train-split cases (default: a small generated benchmark with twins). Writes
OUT_DIR/layer_curve.png (default runs/probe_example) and prints the report's probe block. README "Probes" shows
the body of `probe` as the probe experiment in a few lines; tests/test_probe_experiment.py runs this script.
"""

import argparse
import json
from pathlib import Path

from toolprior.case_io import read_cases
from toolprior.modeling import load_agent
from toolprior.probes import all_resid_post, capture_cases, fit_layer_curve, plot_layer_curve, probe_block
from toolprior.training.benchmark import BenchmarkConfig, write_benchmark


def probe(model_dir: str, adapter: str | None, cases_file: str, out: Path) -> dict:

    model, tokenizer = load_agent(model_dir, adapter)  # add quantize="nf4" to probe the 4-bit agent
    cases = [c for c in read_cases(cases_file) if c.split == "train"]  # never probe on eval
    acts = capture_cases(model, tokenizer, cases, all_resid_post(model), "decision")  # one pass, all layers
    curve = fit_layer_curve(acts, acts.labels, [c.template for c in cases], task="clarify_vs_call_tool")
    plot_layer_curve(curve, out / "layer_curve.png")  # accuracy per layer, with the control task and chance
    return probe_block(curve)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--cases", default=None)
    parser.add_argument("--out", default="runs/probe_example")
    args = parser.parse_args(argv)
    out = Path(args.out)
    cases_file = args.cases
    if cases_file is None:  # a small benchmark: 200 train cases with 20 clarify / call_tool twin pairs
        small = BenchmarkConfig().replace(train_size=200, val_size=10, mine_size=10, eval_per_category=1)
        write_benchmark(out / "data", seed=0, config=small.replace(eval_novel_per_category=1))
        cases_file = str(out / "data" / "train.jsonl")
    return probe(args.model, args.adapter, cases_file, out)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
