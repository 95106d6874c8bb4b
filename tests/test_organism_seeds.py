"""The organism table over seeds: mean ± sd per action, the clarify failure mode, tool accuracies."""

from toolprior.experiments.organism_seeds import render


def _method(call: float, clarify: float, name_acc: float) -> dict:
    per_action = {
        "call_tool": {"acc": call, "top_wrong": "unparsed", "top_wrong_rate": 1 - call},
        "clarify": {"acc": clarify, "top_wrong": "call_tool", "top_wrong_rate": 1 - clarify},
    }
    return {"per_action": per_action, "tool_name_accuracy": name_acc, "tool_accuracy": 0.0}


def test_render_reports_mean_and_spread_per_mix():
    runs = [
        {
            "seed": 0,
            "times": {"base_s": 130.0},
            "methods": {"realistic": _method(0.9, 0.1, 0.2), "balanced": _method(0.5, 0.5, 0.1)},
        },
        {
            "seed": 1,
            "times": {"base_s": 131.0},
            "methods": {"realistic": _method(1.0, 0.0, 0.4), "balanced": _method(0.7, 0.3, 0.1)},
        },
    ]
    text = render(runs)
    realistic = next(line for line in text.splitlines() if line.startswith("| realistic"))
    balanced = next(line for line in text.splitlines() if line.startswith("| balanced"))
    assert "0.950 ± 0.071" in realistic and "0.050 ± 0.071" in realistic  # call_tool, clarify
    assert "call_tool 95%" in realistic and "0.300 ± 0.141" in realistic  # clarify -> call_tool; tool names
    assert "0.600 ± 0.141" in balanced and "call_tool 60%" in balanced
    assert "splits: eval + eval_novel, held out" in text and "seed 1" in text
