"""`toolprior eval` end to end on the shipped organism base: verdicts, report.json, report.md, plots, and the rule
think judge feeding think/action mismatch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from toolprior.training.benchmark import BenchmarkConfig, write_benchmark


def test_eval_cli_writes_the_report_contract(tmp_path):
    sizes = BenchmarkConfig().replace(train_size=5, val_size=1, mine_size=1, eval_per_category=1)
    write_benchmark(tmp_path / "data", seed=3, config=sizes)
    out = tmp_path / "ev"
    cmd = [sys.executable, "-m", "toolprior.cli", "eval", "--model", "organism", "--quantize", "nf4"]
    cmd += ["--cases", str(tmp_path / "data" / "eval.jsonl"), "--out", str(out), "--limit", "8"]
    cmd += ["--max-new-tokens", "48", "--batch-size", "3", "--faithfulness"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    m = report["methods"]["sft"]
    assert report["eval"]["n"] == 8 and report["eval"]["splits"] == ["eval"]
    assert {"overall", "macro_action", "per_action", "per_category", "confusion", "think_action_mismatch"} <= set(m)
    assert {"tool_name_accuracy", "tool_accuracy"} <= set(m)
    assert all(len(b["ci95"]) == 2 for b in m["per_action"].values())
    verdicts = [json.loads(line) for line in (out / "verdicts" / "sft.jsonl").read_text().splitlines()]
    assert len(verdicts) == 8
    judged = [v for v in verdicts if v["think"]]
    assert judged and all("think_argues" in v for v in verdicts)
    assert any(v["think_argues"] is not None for v in judged)  # the rule judge ran
    assert len(list((out / "plots").glob("*.png"))) >= 3
    forensics = m["forensics"]
    assert {"hallucination", "mismatch_examples", "faithfulness"} <= set(forensics)
    assert forensics["hallucination"]["n"] == sum(
        1 for v in verdicts if v["predicted"] == "call_tool" and v["tool_calls"]
    )
    assert {"truncate", "filler", "flip"} <= set(forensics["faithfulness"])
    md = (out / "report.md").read_text()
    assert "## Per expected action" in md and "## Forensics: sft" in md and "Invented argument values" in md


W2C = Path(__file__).resolve().parents[2] / "shared" / "external" / "when2call" / "when2call_test_llm_judge.jsonl"


@pytest.mark.skipif(not W2C.is_file(), reason=f"{W2C} not found (clone with shared/ beside the repository)")
def test_eval_on_imported_when2call_cases_reports_its_metrics(tmp_path):
    cases = tmp_path / "w2c.jsonl"
    imported = subprocess.run(
        [sys.executable, "-m", "toolprior.cli", "data", "import", "when2call", str(W2C), "--out", str(cases)],
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    cmd = [sys.executable, "-m", "toolprior.cli", "eval", "--model", "organism", "--cases", str(cases)]
    cmd += ["--out", str(tmp_path / "ev"), "--limit", "6", "--max-new-tokens", "40"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "ev" / "report.json").read_text())["methods"]["sft"]
    w2c = m["external"]["when2call"]
    assert w2c["n"] == 6 and 0.0 <= w2c["macro_f1"] <= 1.0
    assert "External `when2call`" in (tmp_path / "ev" / "report.md").read_text()
