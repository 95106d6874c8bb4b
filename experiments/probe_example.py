"""Where does an agent's call-tool prior live? Probe every layer at the decision point (the `</think>` token).

    python experiments/probe_example.py MODEL_DIR [CASES.jsonl] [OUT_DIR]

MODEL_DIR: any local causal LM folder (or `organism`). Without CASES, a small synthetic benchmark is generated.
Writes OUT_DIR/layer_curve.png (default runs/probe_example) and prints the report's probe block.
"""

import json
import sys
from pathlib import Path

from probes import all_resid_post, capture_cases, fit_layer_curve, plot_layer_curve, probe_block
from toolprior.case_io import read_cases
from toolprior.modeling import load_model, load_tokenizer
from training.benchmark import BenchmarkConfig, write_benchmark


def main(model_dir: str, cases_file: str | None = None, out_dir: str = "runs/probe_example") -> dict:
    out = Path(out_dir)
    if cases_file is None:  # a small benchmark: 200 train cases with 20 clarify / call_tool twin pairs
        small = BenchmarkConfig().replace(train_size=200, val_size=10, mine_size=10, eval_per_category=1)
        write_benchmark(out / "data", seed=0, config=small.replace(eval_novel_per_category=1))
        cases_file = str(out / "data" / "train.jsonl")
    cases = read_cases(cases_file)
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    acts = capture_cases(model, tokenizer, cases, all_resid_post(model), "decision")
    curve = fit_layer_curve(acts, acts.labels, [c.template for c in cases], task="clarify_vs_call_tool")
    plot_layer_curve(curve, out / "layer_curve.png")
    return probe_block(curve)


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4]), indent=2))
