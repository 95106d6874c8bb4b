"""Capture and probe fitting end to end on tiny random-weight configs of every architecture we support (patching on
each is in tests/test_patching.py): mixed-length batches, and a class signal the probe must find."""

from __future__ import annotations

import pytest
import torch

from tests.test_capture import TOOL, arch_model
from toolprior.actions import Action
from toolprior.cases import Case, GoldTurn, Message, ToolCall
from toolprior.probes.capture import capture_cases
from toolprior.probes.hook_points import all_resid_post
from toolprior.probes.layer_curve import fit_layer_curve

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

FILLER = ["please", "today", "for the audit team", "before noon on friday", "thanks a lot for the help here"]


def signal_cases(n_templates: int = 6, per_template: int = 4) -> list[Case]:
    """Clarify / call_tool cases whose gold think words differ by class (ask / look up), with user texts of many
    lengths so every batch is padded; each template holds both classes, so grouping by template keeps the task."""
    cases = []
    for t in range(n_templates):
        for i in range(per_template):
            clarify = i % 2 == 0
            action = Action.CLARIFY if clarify else Action.CALL_TOOL
            user = f"Check shipment {t}{i} " + " ".join(FILLER[: (t + i) % len(FILLER) + 1])
            think = "two match, ask which one, ask ask" if clarify else "one match, look it up, call call"
            calls = () if clarify else (ToolCall("verify_shipment", {"id": f"SHP-{t}{i}"}),)
            cases.append(
                Case(
                    id=f"t{t}_{i}",
                    category="clarification_loop",
                    split="train",
                    expected_action=action,
                    messages=(Message("system", "You are a logistics assistant."), Message("user", user)),
                    tools=(TOOL,),
                    gold=GoldTurn(think, action, content="Which one?" if clarify else "", tool_calls=calls),
                    meta={"template": f"t{t}"},
                )
            )
    return cases


@pytest.mark.parametrize("arch", ["llama", "qwen3", "qwen3_5", "gemma4"])
def test_capture_and_probe_find_the_think_signal_on_each_arch(arch, tiny_tokenizer):
    torch.manual_seed(0)
    model = arch_model(arch, tiny_tokenizer)
    cases = signal_cases()
    texts_lengths = {len(c.messages[1].content) for c in cases}
    assert len(texts_lengths) > 3  # mixed lengths: the batch is left-padded
    acts = capture_cases(model, tiny_tokenizer, cases, all_resid_post(model), "think_mean", batch_size=8)
    curve = fit_layer_curve(acts, None, [c.template for c in cases], folds=3, permutations=0)
    assert [row.layer for row in curve.rows] == list(range(len(all_resid_post(model))))
    assert all(0.0 <= row.acc <= 1.0 and 0.0 <= row.control_acc <= 1.0 for row in curve.rows)
    # the think words differ by class, so the mean over think tokens separates them from the first block on
    assert curve.rows[0].acc >= 0.9, curve.rows[0]
    assert curve.best() is not None
