"""What lets a study stage cut after some of its evaluations redo only the rest: verdicts saved with the key of
what decided them are reused only under the same key."""

from __future__ import annotations

import dataclasses

import torch

from tests.test_forensics import make_case, verdict
from toolprior.actions import Action
from toolprior.config import load_config
from toolprior.experiments.study import Study, study_stages
from toolprior.experiments.study_config import StudyConfig
from toolprior.experiments.study_run import (
    StudyRun,
    cases_digest,
    folder_digest,
    probe_digest,
    steering_key,
    vector_digest,
)
from toolprior.probes.linear_probe import LinearProbe
from toolprior.steering.vector import SteeringVector


def test_saved_verdicts_are_kept_only_under_their_key(tmp_path):
    config = load_config(StudyConfig, "experiments/configs/study_tiny.yaml", overrides=[f"out_dir={tmp_path}"])
    study = StudyRun(config, progress=False)
    verdicts = [verdict("a", "clarify", "call_tool", "I should ask.")]
    key = {"cases": ["a"], "adapter": "ab12", "steering": {"vector": "cd34", "alpha": 1.0}}
    assert study.kept_verdicts("steering", key) is None  # nothing saved yet
    study.save_verdicts("steering", verdicts, key=key, infer_s=12.5)
    assert study.kept_verdicts("steering", key) == {"key": key, "infer_s": 12.5}
    assert study.kept_verdicts("steering", {**key, "steering": {"vector": "cd34", "alpha": 2.0}}) is None
    assert study.kept_verdicts("steering_random", key) is None  # another name
    study.save_verdicts("steering", verdicts)  # saved again without a key: the old record no longer speaks for it
    assert study.kept_verdicts("steering", key) is None
    study.save_verdicts("steering", verdicts, key=key, infer_s=1.0)
    study.verdicts_path("steering").unlink()  # a record without its verdicts keeps nothing
    assert study.kept_verdicts("steering", key) is None


def test_the_vector_digest_changes_with_any_layer_or_value():
    v = SteeringVector({3: torch.ones(4), 5: torch.zeros(4)})
    same = SteeringVector({5: torch.zeros(4, dtype=torch.bfloat16), 3: torch.ones(4)})
    assert vector_digest(v) == vector_digest(same)  # layer order and storage dtype of equal values do not matter
    assert vector_digest(v) != vector_digest(SteeringVector({3: torch.ones(4), 6: torch.zeros(4)}))
    assert vector_digest(v) != vector_digest(SteeringVector({3: torch.ones(4) * 1.001, 5: torch.zeros(4)}))


def test_the_case_and_adapter_digests_see_content_not_names(tmp_path):
    case = make_case("clarification_loop_0001")
    relabelled = dataclasses.replace(case, expected_action=Action.CALL_TOOL)  # same id, other content
    assert cases_digest([case]) != cases_digest([relabelled])
    assert cases_digest([case]) == cases_digest([make_case("clarification_loop_0001")])
    adapter = tmp_path / "adapter"
    assert folder_digest(adapter) is None  # no folder, no files: nothing to key on
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    first = folder_digest(adapter)
    (adapter / "adapter_config.json").write_text('{"r": 16}')  # same weights file, another LoRA config
    assert first is not None and folder_digest(adapter) != first
    # peft writes target_modules (a set) in the process's hash order: the same adapter from another process
    (adapter / "adapter_config.json").write_text('{"r": 16, "target_modules": ["q_proj", "v_proj", "up_proj"]}')
    saved_once = folder_digest(adapter)
    (adapter / "adapter_config.json").write_text('{"target_modules": ["up_proj", "q_proj", "v_proj"], "r": 16}')
    assert folder_digest(adapter) == saved_once
    (adapter / "adapter_config.json").write_text('{"target_modules": ["up_proj", "q_proj"], "r": 16}')
    assert folder_digest(adapter) != saved_once


def test_a_gate_keys_on_its_probe_and_threshold():
    probe = LinearProbe(
        ("other", "clarify"), torch.ones(1, 4), torch.zeros(1), torch.zeros(4), torch.ones(4)
    )  # fmt: skip
    moved = dataclasses.replace(probe, intercept=torch.full((1,), 0.5))
    assert probe_digest(probe) == probe_digest(dataclasses.replace(probe))
    assert probe_digest(probe) != probe_digest(moved)
    assert probe_digest(object()) is None  # a probe of another kind keys nothing (its gate is always run)
    v = SteeringVector({3: torch.ones(4)})
    assert steering_key(v, 1, "generated", gate="g") == {
        "vector": vector_digest(v), "alpha": 1.0, "positions": "generated", "gate": "g"
    }  # fmt: skip


def test_the_compared_methods_kl_and_external_sets_run_before_dpo_and_adversarial_sft(tmp_path):
    """The issue compares sft, steering and SimPO: their KL and the external sets come before the longer DPO and
    adversarial SFT stages, whose KL comes last."""
    external = "external.bfcl=[../external/bfcl/BFCL_v4_irrelevance.json]"
    config = load_config(
        StudyConfig, "experiments/configs/study_tiny.yaml", overrides=[f"out_dir={tmp_path}", external]
    )
    names = [name for name, _ in study_stages(Study(config, progress=False))]
    assert names[:3] == ["data", "sft", "eval_sft"] and names[-1] == "kl_baselines"
    order = ["eval_simpo", "kl", "external", "dpo", "eval_adv_sft", "kl_baselines"]
    assert [names.index(name) for name in order] == sorted(names.index(name) for name in order)
    assert len(names) == len(set(names))
