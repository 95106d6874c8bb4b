"""The shipped study configs load, the demo scores every method the report contract names, and the sweep's layers
follow the probe's best layer when asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolprior.config import load_config
from toolprior.errors import InputError
from toolprior.experiments.organism_adapter import ORGANISM_DIR
from toolprior.experiments.study import Study
from toolprior.experiments.study_config import StudyConfig
from toolprior.training.tiny_configs import tiny_model


@pytest.mark.parametrize("organism", ["", "_tiny"])
def test_demo_and_full_study_configs_load(organism):
    demo = load_config(StudyConfig, f"experiments/configs/demo{organism}.yaml")
    full = load_config(StudyConfig, f"experiments/configs/study{organism}.yaml")
    assert {"sft", "steering", "steering_random", "simpo", "guardrail", "conditional_steering"} <= set(demo.methods)
    assert {"dpo", "adv_sft"} <= set(full.methods) and not {"dpo", "adv_sft"} & set(demo.methods)
    assert demo.steering.layers_around_probe is not None and demo.probe.enabled
    assert demo.base == full.base == ("organism" if organism else "smollm2")


def test_the_demo_starts_from_the_shipped_organism_adapter_and_says_what_it_trims():
    demo = load_config(StudyConfig, "experiments/configs/demo.yaml")
    assert demo.sft_adapter and Path(demo.sft_adapter).resolve() == ORGANISM_DIR
    assert "not retrained" in demo.scope and demo.merge_adapters


def test_a_shipped_adapter_trained_with_another_sft_config_is_refused_before_any_work(tmp_path):
    with pytest.raises(InputError, match="sft_adapter"):
        load_config(
            StudyConfig, "experiments/configs/demo.yaml", overrides=["sft_set=[lora.r=8]", f"out_dir={tmp_path}"]
        )
    assert not any(tmp_path.iterdir())


def test_sweep_layers_surround_the_probes_best_layer(tmp_path):
    model = tiny_model("llama")  # 2 decoder layers
    config = load_config(StudyConfig, "experiments/configs/demo_tiny.yaml", overrides=[f"out_dir={tmp_path}"])
    study = Study(config, progress=False)
    assert study.steering_layers(model) == [0, 1]  # no probe yet: every layer
    (study.run / "stages" / "probe.json").write_text(json.dumps({"best_layer": 1}))
    study.stages.run("probe", lambda: None)  # cached: loads the summary
    config.steering.layers_around_probe = 0
    assert study.steering_layers(model) == [1]
    config.steering.layers_around_probe = 1
    assert study.steering_layers(model) == [0, 1]  # clipped to the model's layers


def test_merged_agent_gives_the_unmerged_agents_logits_on_a_padded_batch(tmp_path, tiny_tokenizer):
    import torch
    from peft import LoraConfig, get_peft_model

    from tests.conftest import make_tiny_qwen3
    from toolprior.modeling import load_model

    base = tmp_path / "base"
    make_tiny_qwen3(tiny_tokenizer, seed=0, layers=2).save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    lora = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)  # random B: the adapter matters
    get_peft_model(make_tiny_qwen3(tiny_tokenizer, seed=0, layers=2), lora).save_pretrained(tmp_path / "adapter")
    overrides = [f"out_dir={tmp_path}", f"base={base}", "quantize=none", "merge_adapters=true"]
    study = Study(load_config(StudyConfig, "experiments/configs/demo_tiny.yaml", overrides=overrides), progress=False)
    merged, _ = study.agent(tmp_path / "adapter")
    unmerged = load_model(base, adapter=tmp_path / "adapter")
    plain = load_model(base)
    tiny_tokenizer.padding_side = "left"
    batch = tiny_tokenizer(["call the tool now", "ask"], return_tensors="pt", padding=True)
    with torch.no_grad():
        want, got, without = (m(**batch).logits for m in (unmerged, merged, plain))
    real = batch["attention_mask"].bool()
    assert not hasattr(merged, "peft_config")  # folded into the weights
    assert torch.allclose(got[real], want[real], atol=1e-4) and not torch.allclose(got[real], without[real], atol=1e-3)


def test_an_external_method_the_study_does_not_run_is_refused(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text("name: s\nmethods: [sft, steering]\nexternal:\n  bfcl: [study.yaml]\n  methods: [sft, simpo]\n")
    with pytest.raises(InputError, match=r"external\.methods.*'simpo' is not among the study's methods"):
        load_config(StudyConfig, config)


def test_a_bad_simpo_search_setting_is_refused_with_its_name(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text("name: s\nsimpo_search:\n  ok: []\n  broken: [preference.beta=oops]\n")
    with pytest.raises(InputError, match=r"simpo_search\.broken"):
        load_config(StudyConfig, config)


def test_a_bad_steering_variant_is_refused_with_the_part_that_is_wrong(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(
        "name: s\nsteering:\n  variants: [mean_diff/classes/decision/from_decision, pca_paired/classes/decision/all]\n"
    )
    with pytest.raises(InputError, match=r"steering\.variants\[1\].*pca_paired needs source twins"):
        load_config(StudyConfig, config)
