"""QLoRA SFT on a real tiny NF4 model: assistant-only labels, and resume after a kill."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_tiny_qwen3
from toolprior.case_io import read_cases
from toolprior.config import load_config
from toolprior.training.benchmark import BenchmarkConfig, write_benchmark
from toolprior.training.lora import lora_config
from toolprior.training.run_configs import SFTRunConfig
from toolprior.training.sft import case_row, sft_config

SMALL = BenchmarkConfig().replace(
    train_size=24, val_size=6, mine_size=6, eval_per_category=1, eval_novel_per_category=1
)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("sft")
    base = root / "base"
    make_tiny_qwen3(tiny_tokenizer, seed=0).save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    write_benchmark(root / "data", seed=3, config=SMALL)
    return root


def config_for(world: Path, out: Path, *extra: str) -> SFTRunConfig:
    overrides = [
        f"output_dir={out}",
        f"model.base={world / 'base'}",
        f"data.dir={world / 'data'}",
        "lora.r=8",
        "lora.alpha=16",
        "training.per_device_train_batch_size=4",
        "training.gradient_accumulation_steps=1",
        "training.max_length=4096",
        *extra,
    ]
    return load_config(SFTRunConfig, Path("experiments/configs/sft_organism.yaml"), overrides=overrides)


def test_assistant_only_loss_labels_exactly_the_assistant_turns(world, tiny_tokenizer, tmp_path):
    from datasets import Dataset
    from trl import SFTTrainer

    from toolprior.modeling import load_model

    config = config_for(world, tmp_path / "run")
    cases = read_cases(world / "data" / "train.jsonl")[:4]
    model = load_model(world / "base", quantize="nf4")
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, use_cpu=True, has_eval=False),
        train_dataset=Dataset.from_list([case_row(c) for c in cases]),
        processing_class=tiny_tokenizer,
        peft_config=lora_config(config.lora),
    )
    end_id = tiny_tokenizer.convert_tokens_to_ids("<|end|>")
    header = tiny_tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"]
    for case, row in zip(cases, trainer.train_dataset, strict=True):
        ids, labels = row["input_ids"], row["labels"]
        # what the template marks as assistant content, computed independently of TRL
        messages, tools = case_row(case)["messages"], case_row(case)["tools"]
        import json

        ref = tiny_tokenizer.apply_chat_template(
            messages, tools=json.loads(tools), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        assert ids == ref["input_ids"], (
            len(ids),
            len(ref["input_ids"]),
            tiny_tokenizer.decode(ref["input_ids"][len(ids) - 5 :]),
        )
        trained = [lab != -100 for lab in labels]
        assert trained == [m == 1 for m in ref["assistant_masks"]]
        # every trained run starts right after an `<|assistant|>\n` header and ends with `<|end|>`
        runs, start = [], None
        for i, t in enumerate([*trained, False]):
            if t and start is None:
                start = i
            if not t and start is not None:
                runs.append((start, i))
                start = None
        assert runs and sum(b - a for a, b in runs) < len(ids) / 2
        for a, b in runs:
            assert ids[a - len(header) : a] == header
            assert ids[b - 1] == end_id
            assert tiny_tokenizer.decode(ids[a : a + 1]) == "<think>"


def test_full_loss_labels_every_token(world, tiny_tokenizer, tmp_path):
    from datasets import Dataset
    from trl import SFTTrainer

    from toolprior.modeling import load_model

    config = config_for(world, tmp_path / "run", "training.assistant_only_loss=false")
    cases = read_cases(world / "data" / "train.jsonl")[:2]
    trainer = SFTTrainer(
        model=load_model(world / "base", quantize="nf4"),
        args=sft_config(config, use_cpu=True, has_eval=False),
        train_dataset=Dataset.from_list([case_row(c) for c in cases]),
        processing_class=tiny_tokenizer,
        peft_config=lora_config(config.lora),
    )
    row = trainer.train_dataset[0]
    assert all(lab != -100 for lab in row.get("labels", row["input_ids"]))


def test_resume_skips_a_checkpoint_cut_short_by_a_kill(tmp_path):
    from toolprior.training.checkpoints import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "missing") is None
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    (tmp_path / "checkpoint-6" / "adapter_model.safetensors").write_bytes(b"")  # killed before its state was written
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')  # torn write
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")


def test_labelled_positions_loss_equals_trls_fused_loss_on_a_padded_batch(world, tiny_tokenizer, tmp_path):
    """The CPU trainer's loss (LM head on the labelled positions only) is TRL's loss, on rows of mixed lengths with
    gradient accumulation's token count, and so are its gradients."""
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from toolprior.modeling import load_model
    from toolprior.training.labelled_loss import labelled_positions_trainer

    config = config_for(world, tmp_path / "run")
    rows = [case_row(c) for c in read_cases(world / "data" / "train.jsonl")[:3]]
    results = []
    for trainer_class in (SFTTrainer, labelled_positions_trainer()):
        torch.manual_seed(0)
        trainer = trainer_class(
            model=load_model(world / "base", dtype="float32"),
            args=sft_config(config, use_cpu=True, has_eval=False),
            train_dataset=Dataset.from_list(rows),
            processing_class=tiny_tokenizer,
            peft_config=lora_config(config.lora),
        )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
        assert len({int(n) for n in batch["attention_mask"].sum(dim=1)}) > 1  # mixed lengths, padded
        trainer.model.train()
        labelled = int((batch["labels"][:, 1:] != -100).sum())
        loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=torch.tensor(labelled + 7))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))
    (fused, fused_grads), (ours, our_grads) = results
    assert ours == pytest.approx(fused, rel=1e-4)
    assert fused_grads.keys() == our_grads.keys() and fused_grads
    for name, grad in fused_grads.items():
        torch.testing.assert_close(our_grads[name], grad, rtol=1e-3, atol=1e-6, msg=name)
