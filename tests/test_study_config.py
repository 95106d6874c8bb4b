"""The shipped study configs load, the demo scores every method the report contract names, and the sweep's layers
follow the probe's best layer when asked."""

from __future__ import annotations

import json

from experiments.study import Study
from experiments.study_config import StudyConfig
from toolprior.config import load_config
from training.tiny_configs import tiny_model


def test_demo_and_full_study_configs_load():
    demo = load_config(StudyConfig, "experiments/configs/demo.yaml")
    full = load_config(StudyConfig, "experiments/configs/study.yaml")
    assert {"sft", "steering", "steering_random", "simpo", "guardrail", "conditional_steering"} <= set(demo.methods)
    assert {"dpo", "adv_sft"} <= set(full.methods) and not {"dpo", "adv_sft"} & set(demo.methods)
    assert demo.steering.layers_around_probe == 0 and demo.probe.enabled


def test_sweep_layers_surround_the_probes_best_layer(tmp_path):
    model = tiny_model("llama")  # 2 decoder layers
    config = load_config(StudyConfig, "experiments/configs/demo.yaml", overrides=[f"out_dir={tmp_path}"])
    study = Study(config, progress=False)
    assert study.steering_layers(model) == [0, 1]  # no probe yet: every layer
    (study.run / "stages" / "probe.json").write_text(json.dumps({"best_layer": 1}))
    study.stages.run("probe", lambda: None)  # cached: loads the summary
    config.steering.layers_around_probe = 0
    assert study.steering_layers(model) == [1]
    config.steering.layers_around_probe = 1
    assert study.steering_layers(model) == [0, 1]  # clipped to the model's layers
