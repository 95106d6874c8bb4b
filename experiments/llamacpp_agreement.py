"""The organism in llama.cpp itself: does our exported control vector move llama.cpp's first-token decision as
`steer()` moves ours?

    PYTHONPATH=DIR LD_PRELOAD=SHIM python -m toolprior.experiments.llamacpp_agreement \\
        --converter LLAMA_CPP/convert_hf_to_gguf.py --vector runs/demo_smol2/steering/vector.safetensors \\
        --layer 22 --alphas 0 0.5 0.75 1 --cases runs/demo_smol2/data/mine.jsonl --limit 24 \\
        --thinks runs/demo_smol2/verdicts_cache/sft_mine.jsonl --out agreement.json

Steps: merge the organism's LoRA adapter (experiments/organism/smollm2/adapter) into the prepared SmolLM2 folder in
float32 (`merge_and_unload`), save it as a Hugging Face folder, convert that with llama.cpp's own
`convert_hf_to_gguf.py` (`--outtype f32`, and any other --outtypes, e.g. f16; no quantisation), export the vector's
layer with `steering.gguf_io.export_gguf`, then on each case read the logits at the decision position (the last
token of `prompt + <think>THINK</think>`, see `toolprior.decision_point`) from

- toolprior: the merged model in transformers under `steer(vector, alpha, positions="all")` (llama.cpp adds the
  control vector at every position, so "all" is the setting that should agree), and
- llama.cpp: the converted GGUF with the exported file loaded as `--control-vector-scaled FILE alpha` does
  (`steering.llamacpp.LlamaCpp`: F32 KV cache, no flash attention, one thread),

and compare the decision (argmax over the five action tags' decision tokens), the largest |logit gap| over the whole
vocabulary and over the five tag logits. THINK is the model's own think from an unsteered run (`--thinks`: a
verdicts JSONL with "id" and "think", e.g. `verdicts_cache/sft_mine.jsonl`), else the case's gold think. With
`--also-from-decision` the toolprior side is also run with positions="from_decision" (what the demo's sweep used:
on a forced think that steers the decision position only), to show how far that setting is from llama.cpp's.

Measured (llama.cpp b11739 prebuilt, converter from llama.cpp 0c1e5709; the first 24 mine cases of the demo, with
the SFT model's own unsteered thinks; the demo's vector at layer 22, norm 106.6): F32 GGUF, 24/24 decisions agree at
each alpha in 0, 0.5, 0.75, 1; max |logit gap| at the decision position 2.2e-4 (1.3e-4 over the five tags), while
the vector moves the tag logits by up to 4.2 / 6.0 / 7.6 and the closest decision margin is 0.028. F16 GGUF: still
24/24, gap 7.1e-2 (3.3e-2 over the tags), the order of that closest margin. positions="from_decision" (what the
demo's sweep used; on a forced think it steers the decision position only) gives the "all" decision on 23/24, 24/24
and 19/24 cases at alpha 0.5, 0.75 and 1.

Skips with one line (exit 0) where no prebuilt llama.cpp bindings load (see `steering.llamacpp`) or no converter is
given (--converter or $LLAMACPP_CONVERT; a llama.cpp checkout's convert_hf_to_gguf.py with its gguf-py beside it).
Set the torch and llama.cpp threads with --threads (default 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_cases
from toolprior.chat_template import render_prompt
from toolprior.decision_point import decision_tokens
from toolprior.model_source import prepare_smollm2
from toolprior.modeling import load_model, load_tokenizer
from toolprior.output_format import THINK_CLOSE, THINK_OPEN
from toolprior.steering.apply import steer
from toolprior.steering.gguf_io import export_gguf, read_vector
from toolprior.steering.llamacpp import LlamaCpp, LlamaCppUnavailable, load_library

ORGANISM_ADAPTER = Path(__file__).resolve().parent / "organism" / "smollm2" / "adapter"
DEFAULT_ALPHAS = (0.0, 0.5, 0.75, 1.0)
CONVERTER_ENV = "LLAMACPP_CONVERT"


class Skip(Exception):
    """The check cannot run here (one-line reason)."""


# ------------------------------------------------------------------------------------------------------ inputs


def load_organism(base: str | os.PathLike[str] | None = None, adapter: str | os.PathLike[str] | None = None) -> Any:
    """(merged model, tokenizer): the base (default: the prepared SmolLM2 folder) with the adapter (default: the
    shipped organism adapter) merged in float32 on the CPU."""

    base = Path(base) if base is not None else prepare_smollm2()
    model = load_model(base, adapter=adapter or ORGANISM_ADAPTER, dtype="float32", device="cpu")
    return model.merge_and_unload().eval(), load_tokenizer(base)


def read_thinks(path: str | os.PathLike[str]) -> dict[str, str]:
    """{case id: think} from a verdicts JSONL (rows without a think are left out)."""
    thinks = {}
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if row.get("think"):
                    thinks[row["id"]] = row["think"]
    return thinks


def decision_inputs(
    tokenizer: Any, cases: Sequence[Any], thinks: dict[str, str] | None = None
) -> list[tuple[str, str, list[int]]]:
    """(case id, think source, token ids) per case: the prompt with its generation prompt, then
    `<think>THINK</think>` and the decision tokens' suffix, so the last token is the decision position. THINK is
    `thinks[case.id]` ("own") where given, else the gold think ("gold"); a case with neither is left out."""

    suffix = decision_tokens(tokenizer).suffix
    out = []
    for case in cases:
        if thinks and case.id in thinks:
            think, source = thinks[case.id], "own"
        elif case.gold is not None and case.gold.think:
            think, source = case.gold.think, "gold"
        else:
            continue
        text = f"{render_prompt(tokenizer, case)}{THINK_OPEN}{think}{THINK_CLOSE}{suffix}"
        out.append((case.id, source, list(tokenizer(text, add_special_tokens=False)["input_ids"])))
    return out


def action_token_ids(tokenizer: Any) -> dict[str, int]:
    """{action name: its decision token id} (the five action tags)."""

    return {action.value: token for action, token in decision_tokens(tokenizer).per_action.items()}


# --------------------------------------------------------------------------------------------------- converting


def find_converter(path: str | os.PathLike[str] | None) -> Path:
    """llama.cpp's convert_hf_to_gguf.py (--converter, else $LLAMACPP_CONVERT), or Skip."""
    given = path or os.environ.get(CONVERTER_ENV)
    if not given:
        raise Skip(f"no llama.cpp converter given (--converter or ${CONVERTER_ENV}: convert_hf_to_gguf.py)")
    converter = Path(given)
    if not converter.is_file():
        raise Skip(f"no llama.cpp converter at {converter}")
    return converter


def convert_to_gguf(converter: Path, folder: Path, out: Path, outtype: str = "f32") -> Path:
    """`python convert_hf_to_gguf.py FOLDER --outtype OUTTYPE --outfile OUT` (its own gguf-py, its log kept
    beside OUT); returns OUT."""
    log = out.with_suffix(".convert.log")
    command = [sys.executable, str(converter), str(folder), "--outtype", outtype, "--outfile", str(out)]
    with log.open("w", encoding="utf-8") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not out.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"convert_hf_to_gguf.py failed ({done.returncode}): {' '.join(tail)} (log: {log})")
    return out


# ------------------------------------------------------------------------------------------------------ logits


def hf_decision_logits(
    model: Any, ids: list[int], vector: Any = None, alpha: float = 0.0, positions: str = "all", tokenizer: Any = None
) -> Any:
    """[vocab] logits at the last position, under `steer(vector, alpha, positions=...)` where a vector is given."""

    tokens = torch.tensor([ids], device=model.device)
    ctx = (
        steer(model, vector, alpha=alpha, positions=positions, tokenizer=tokenizer)
        if vector is not None
        else contextlib.nullcontext()
    )
    with torch.no_grad(), ctx:
        return model(input_ids=tokens, attention_mask=torch.ones_like(tokens), logits_to_keep=1).logits[0, -1].float()


def decision(logits: Any, tags: dict[str, int]) -> tuple[str, float]:
    """(the action whose decision token has the largest logit, its margin over the runner-up)."""
    ranked = sorted(((float(logits[token]), action) for action, token in tags.items()), reverse=True)
    return ranked[0][1], ranked[0][0] - ranked[1][0]


# -------------------------------------------------------------------------------------------------------- check


def compare(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[tuple[str, str, list[int]]],
    vector: Any,
    alphas: Sequence[float],
    ggufs: dict[str, Path],
    vector_gguf: Path,
    *,
    threads: int = 1,
    also_from_decision: bool = False,
) -> dict[str, Any]:
    """Run both engines on `inputs` at each alpha and compare (see the module docstring). `ggufs` maps a label
    (the converter's outtype) to a model file; `vector_gguf` is the exported vector at scale 1."""

    tags = action_token_ids(tokenizer)
    tag_ids = torch.tensor(list(tags.values()))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    ours: dict[tuple[str, float], Any] = {}
    ours_fd: dict[tuple[str, float], Any] = {}
    for case_id, _, ids in inputs:
        for alpha in alphas:
            ours[case_id, alpha] = hf_decision_logits(model, ids, vector if alpha else None, alpha)
            if also_from_decision and alpha:
                ours_fd[case_id, alpha] = hf_decision_logits(model, ids, vector, alpha, "from_decision", tokenizer)
    timings["toolprior_s"] = round(time.perf_counter() - start, 1)
    n_ctx = -(-max(len(ids) for _, _, ids in inputs) // 256) * 256
    engines: dict[str, Any] = {}
    for label, path in ggufs.items():
        start = time.perf_counter()
        cpp = LlamaCpp(path, n_ctx=n_ctx, threads=threads, quiet=True)
        theirs: dict[tuple[str, float], Any] = {}
        try:
            for alpha in alphas:
                cpp.set_control_vector(vector_gguf, alpha)
                for case_id, _, ids in inputs:
                    theirs[case_id, alpha] = cpp.logits(ids, last_only=True)[0, -1]
        finally:
            cpp.close()
        timings[f"llamacpp_{label}_s"] = round(time.perf_counter() - start, 1)
        per_alpha = []
        for alpha in alphas:
            rows: list[dict[str, Any]] = []
            for case_id, source, ids in inputs:
                a, b = ours[case_id, alpha], theirs[case_id, alpha]
                ours_action, ours_margin = decision(a, tags)
                their_action, their_margin = decision(b, tags)
                row = {
                    "id": case_id,
                    "think": source,
                    "tokens": len(ids),
                    "toolprior": ours_action,
                    "llamacpp": their_action,
                    "toolprior_margin": round(ours_margin, 4),
                    "llamacpp_margin": round(their_margin, 4),
                    "max_abs_logit_gap": float((a - b).abs().max()),
                    "max_abs_tag_logit_gap": float((a[tag_ids] - b[tag_ids]).abs().max()),
                    "vector_moved_tag_logits_by": float((a[tag_ids] - ours[case_id, alphas[0]][tag_ids]).abs().max())
                    if alpha
                    else 0.0,
                }
                if (case_id, alpha) in ours_fd:
                    row["toolprior_from_decision"] = decision(ours_fd[case_id, alpha], tags)[0]
                rows.append(row)
            summary: dict[str, Any] = {
                "alpha": alpha,
                "n": len(rows),
                "agree": sum(r["toolprior"] == r["llamacpp"] for r in rows),
                "max_abs_logit_gap": max(r["max_abs_logit_gap"] for r in rows),
                "max_abs_tag_logit_gap": max(r["max_abs_tag_logit_gap"] for r in rows),
                "min_toolprior_margin": min(r["toolprior_margin"] for r in rows),
                "max_vector_moved_tag_logits_by": max(r["vector_moved_tag_logits_by"] for r in rows),
                "toolprior_decisions": dict(Counter(r["toolprior"] for r in rows)),
                "llamacpp_decisions": dict(Counter(r["llamacpp"] for r in rows)),
            }
            if any("toolprior_from_decision" in r for r in rows):
                summary["from_decision_decisions"] = dict(Counter(r["toolprior_from_decision"] for r in rows))
                summary["from_decision_agrees_with_all"] = sum(
                    r["toolprior_from_decision"] == r["toolprior"] for r in rows
                )
            summary["cases"] = rows
            per_alpha.append(summary)
        engines[label] = per_alpha
    return {"engines": engines, "timings": timings, "tags": tags, "n_ctx": n_ctx}


def run(args: argparse.Namespace) -> dict[str, Any]:

    try:
        load_library()
    except LlamaCppUnavailable as err:
        raise Skip(str(err)) from None
    converter = None if args.gguf else find_converter(args.converter)
    torch.set_num_threads(args.threads)
    vector = read_vector(args.vector).only([args.layer])
    cases = read_cases(args.cases)[: args.limit]
    start = time.perf_counter()
    model, tokenizer = load_organism(args.base, args.adapter)
    merge_s = time.perf_counter() - start
    inputs = decision_inputs(tokenizer, cases, read_thinks(args.thinks) if args.thinks else None)
    if not inputs:
        raise ValueError(f"no case of {args.cases} has a think to force (--thinks or a gold think)")
    with tempfile.TemporaryDirectory(prefix="llamacpp-agreement-", dir=args.work) as scratch:
        work = Path(scratch)
        if converter is None:  # --gguf given
            ggufs = {path.stem: path for path in args.gguf}
        else:
            start = time.perf_counter()
            model.save_pretrained(work / "merged")
            tokenizer.save_pretrained(work / "merged")
            ggufs = {
                t: convert_to_gguf(converter, work / "merged", work / f"organism-{t}.gguf", t) for t in args.outtypes
            }
            convert_s = time.perf_counter() - start
        vector_gguf = export_gguf(vector, work / f"vector-layer{args.layer}.gguf")
        result = compare(
            model,
            tokenizer,
            inputs,
            vector,
            args.alphas,
            ggufs,
            vector_gguf,
            threads=args.threads,
            also_from_decision=args.also_from_decision,
        )
    result["timings"]["merge_s"] = round(merge_s, 1)
    if not args.gguf:
        result["timings"]["save_and_convert_s"] = round(convert_s, 1)
    result["setup"] = {
        "vector": str(args.vector),
        "layer": args.layer,
        "vector_norm": round(vector.norms()[args.layer], 4),
        "alphas": list(args.alphas),
        "cases": str(args.cases),
        "n_cases": len(inputs),
        "thinks": dict(Counter(source for _, source, _ in inputs)),
        "converter": str(converter) if converter else None,
        "gguf": {label: str(path) for label, path in ggufs.items()} if args.gguf else list(ggufs),
        "toolprior": "transformers float32, merged adapter, steer(positions='all')",
        "llamacpp": "F32 KV cache, no flash attention, --control-vector-scaled semantics",
        "threads": args.threads,
    }
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for label, per_alpha in result["engines"].items():
        for s in per_alpha:
            line = (
                f"{label} alpha {s['alpha']:g}: decisions agree {s['agree']}/{s['n']}; max |logit gap| "
                f"{s['max_abs_logit_gap']:.2e} (tags {s['max_abs_tag_logit_gap']:.2e}); vector moved tag logits "
                f"by up to {s['max_vector_moved_tag_logits_by']:.2f}; toolprior {s['toolprior_decisions']}"
            )
            if "from_decision_decisions" in s:
                line += (
                    f"; from_decision {s['from_decision_decisions']} "
                    f"({s['from_decision_agrees_with_all']}/{s['n']} as all)"
                )
            lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--vector", required=True, type=Path, help="V.safetensors (+ sidecar), a vector folder or .gguf"
    )
    parser.add_argument("--layer", type=int, default=22)
    parser.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS))
    parser.add_argument("--cases", required=True, type=Path, help="case JSONL (e.g. the mine split)")
    parser.add_argument("--limit", type=int, default=24, help="the first N cases (default 24)")
    parser.add_argument("--thinks", type=Path, default=None, help="verdicts JSONL whose thinks to force (else gold)")
    parser.add_argument("--base", type=Path, default=None, help="base model folder (default: prepared SmolLM2)")
    parser.add_argument("--adapter", type=Path, default=None, help=f"PEFT adapter (default {ORGANISM_ADAPTER})")
    parser.add_argument("--converter", type=Path, default=None, help=f"convert_hf_to_gguf.py (or ${CONVERTER_ENV})")
    parser.add_argument("--outtypes", nargs="+", default=["f32"], choices=["f32", "f16", "bf16"])
    parser.add_argument("--gguf", type=Path, nargs="+", default=None, help="converted model GGUF(s): skip converting")
    parser.add_argument("--also-from-decision", action="store_true", help="also run toolprior from_decision")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="scratch parent folder (default: the temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="write the full result (JSON) here")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except Skip as err:
        print(f"llamacpp_agreement: skipped: {err}")
        return 0
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    for line in summary_lines(result):
        print(line)
    print(f"timings: {result['timings']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
