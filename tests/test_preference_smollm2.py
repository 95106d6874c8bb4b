"""DPO and adversarial SFT continuing the real organism's shipped adapter (SmolLM2-135M-Instruct, whose tied LM head
carries the action tags' trainable-token rows), as the full study runs them. TRL's DPOTrainer and SFTTrainer score
through a fused LM head that reads `lm_head.bias`; PEFT's trainable-token wrapper on the tied head raised on it,
and the study's DPO stage died on its first step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from toolprior.config import load_config
from toolprior.training import AdvSFTRunConfig, DPORunConfig, train_adv_sft, train_dpo
from toolprior.training.pairs import Pair, write_pairs

REPO_ROOT = Path(__file__).resolve().parents[1]
ADAPTER = REPO_ROOT / "experiments" / "organism" / "smollm2" / "adapter"


def pair(i: int, expected: str, chosen: str, rejected: str) -> Pair:
    return Pair(
        id=f"mine_clarification_loop_{i:04d}",
        category="clarification_loop",
        split="mine",
        expected_action=expected,
        rejected_action="call_tool",
        chosen_source="gold",
        prompt=[
            {"role": "system", "content": "You are the support agent of Acme. Two open bookings: BKG-1 and BKG-2."},
            {"role": "user", "content": "Can you cancel my booking?" + " Thanks." * i},  # mixed lengths
        ],
        tools=[],
        chosen=[{"role": "assistant", "content": chosen}],
        rejected=[{"role": "assistant", "content": rejected}],
    )


@pytest.mark.parametrize(
    ("config_class", "train", "config_file"),
    [(DPORunConfig, train_dpo, "dpo_organism.yaml"), (AdvSFTRunConfig, train_adv_sft, "adv_sft_organism.yaml")],
)
def test_preference_training_continues_the_shipped_adapter_and_trains_its_tag_rows(
    smollm2_folder, tmp_path, config_class, train, config_file
):
    call = '<think>I will cancel it.</think><tool_call>{"name": "cancel_booking", "arguments": {"id": "BKG-1"}}</tool_call>'
    pairs = [
        pair(
            1, "clarify", "<think>Two bookings are open; I must ask which.</think><clarify>Which one?</clarify>", call
        ),
        pair(2, "clarify", "<think>BKG-1 or BKG-2: ask.</think><clarify>BKG-1 or BKG-2?</clarify>", call),
    ]
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    overrides = [
        f"output_dir={tmp_path / 'run'}",
        "model.base=smollm2",
        f"model.adapter={ADAPTER}",
        "model.quantize=none",
        "model.dtype=bfloat16",
        f"data.pairs_file={tmp_path / 'pairs.jsonl'}",
        "data.eval_files=[]",
        "training.max_steps=1",
        "training.per_device_train_batch_size=2",
        "training.gradient_accumulation_steps=1",
        "training.learning_rate=1.0e-3",
        "training.warmup_ratio=0.0",
        "training.logging_steps=1",
        "training.save_steps=1",
        "training.max_length=256",
    ]
    result = train(load_config(config_class, REPO_ROOT / "experiments" / "configs" / config_file, overrides=overrides))
    assert result.steps == 1
    before = load_file(str(ADAPTER / "adapter_model.safetensors"))
    after = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    rows = [k for k in before if "trainable_tokens" in k]
    assert rows and before.keys() == after.keys()
    assert any(not before[k].equal(after[k].to(before[k].dtype)) for k in rows)  # the tag rows trained
    if train is train_dpo:
        # the first step is scored before any update: through the fused head too, policy == reference (the frozen
        # copy of the SFT adapter, its tag rows included), so both rewards are exactly 0
        state = json.loads((result.output_dir / "checkpoint-1" / "trainer_state.json").read_text())
        first = next(h for h in state["log_history"] if "loss" in h)
        assert first["rewards/chosen"] == 0.0 and first["rewards/rejected"] == 0.0
