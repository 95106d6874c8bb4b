"""The synthetic benchmark: real generation with the default config, checked for the properties the study needs."""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from toolprior.actions import ACTION_NAMES, CATEGORIES, SPLITS, Action
from toolprior.case_io import read_case_files, read_cases, read_splits
from toolprior.cases import Case
from toolprior.cli import main as cli_main
from toolprior.errors import InputError
from toolprior.training.benchmark import DEFAULT_MIX, BenchmarkConfig, parse_mix, qa, write_benchmark
from toolprior.training.benchmark.categories import CATEGORY_KINDS, KINDS
from toolprior.training.benchmark.domains import KNOWN_DOMAINS, NOVEL_DOMAINS
from toolprior.training.benchmark.draft import Registry
from toolprior.training.benchmark.kinds.base import KindContext
from toolprior.training.benchmark.phrasings import FRAMES_KNOWN
from toolprior.training.benchmark.thinks import CONCLUSIONS

FAMILY = {"train": "known", "val": "known", "mine": "known", "eval": "known", "eval_novel": "novel"}
ID_RE = re.compile(r"\b[A-Z]{1,4}-\d{2,}\b")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bench7")
    summary = write_benchmark(out, seed=7, config=BenchmarkConfig())
    return out, summary, read_splits(out)


def user_text(case: Case) -> str:
    return next(m.content for m in reversed(case.messages) if m.role == "user")


def system_text(case: Case) -> str:
    return case.messages[0].content


def shares(cases: list[Case]) -> dict[str, float]:
    counts = Counter(c.expected_action.value for c in cases)
    return {a: counts[a] / len(cases) for a in ACTION_NAMES}


# ---------------------------------------------------------------------------------------------- config


def test_parse_mix_normalises_to_shares():
    mix = parse_mix("call_tool=40, answer_directly=23,escalate=15,clarify=13,refuse=10")
    assert list(mix) == list(ACTION_NAMES)
    assert sum(mix.values()) == pytest.approx(1.0)
    assert mix["call_tool"] == pytest.approx(40 / 101)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "call_tool=40",
        "call_tool=40,answer_directly=23,escalate=15,clarify=13,refuse=10,shout=1",
        "call_tool=forty,answer_directly=23,escalate=15,clarify=13,refuse=10",
        "call_tool=-1,answer_directly=23,escalate=15,clarify=13,refuse=10",
        "call_tool=0,answer_directly=0,escalate=0,clarify=0,refuse=0",
        "call_tool=1,call_tool=2,answer_directly=23,escalate=15,clarify=13",
        "call_tool 40,answer_directly=23,escalate=15,clarify=13,refuse=10",
        "call_tool=nan,answer_directly=23,escalate=15,clarify=13,refuse=10",
    ],
)
def test_parse_mix_rejects_bad_input_with_one_line(text: str):
    with pytest.raises(InputError) as err:
        parse_mix(text)
    assert len(err.value.problems) == 1 and "\n" not in str(err.value)


def test_config_yaml_replace_and_to_dict(tmp_path: Path):
    path = tmp_path / "bench.yaml"
    path.write_text("train_size: 300\ntrain_mix: call_tool=50,answer_directly=20,escalate=10,clarify=10,refuse=10\n")
    config = BenchmarkConfig.from_yaml(path)
    assert config.train_size == 300 and config.train_mix["call_tool"] == pytest.approx(0.5)
    changed = config.replace(val_size=50)
    assert changed.val_size == 50 and changed.train_size == 300
    assert BenchmarkConfig.from_dict(changed.to_dict()) == changed
    (tmp_path / "bad.yaml").write_text("train_sise: 3\n")
    with pytest.raises(InputError, match="unknown field"):
        BenchmarkConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(InputError):
        BenchmarkConfig(train_size=0)
    with pytest.raises(InputError):
        config.replace(nope=1)


# ---------------------------------------------------------------------------------------------- files and sizes


def test_writes_five_splits_and_benchmark_json(bench):
    out, summary, splits = bench
    for split in SPLITS:
        assert (out / f"{split}.jsonl").exists()
    meta = json.loads((out / "benchmark.json").read_text())
    assert meta["seed"] == 7
    assert meta["config"] == BenchmarkConfig().to_dict()
    for split in SPLITS:
        assert meta["counts"][split] == dict(Counter(c.expected_action.value for c in splits[split])) | {
            a: 0 for a in ACTION_NAMES if not any(c.expected_action.value == a for c in splits[split])
        }
    table = summary.describe()
    for split in SPLITS:
        assert split in table
    assert "QA:" in table and "truncated_json" in table


def test_default_sizes(bench):
    _, summary, splits = bench
    config = BenchmarkConfig()
    assert len(splits["train"]) == 2000
    assert len(splits["val"]) == 200
    assert len(splits["mine"]) == 400
    # held-out splits: per-category cases plus the resolved partners of their twin pairs
    assert len(splits["eval"]) == 14 * 30 + summary.twins["eval"]
    assert 14 * 10 <= len(splits["eval_novel"]) <= 14 * 10 + config.twin_pairs["eval_novel"] + 10
    assert summary.twins["eval"] == config.twin_pairs["eval"]


def test_eval_covers_every_category_and_action_with_enough_clarify(bench):
    _, _, splits = bench
    for split in ("eval", "eval_novel"):
        cases = splits[split]
        assert {c.category for c in cases} == set(CATEGORIES)
        assert {c.expected_action.value for c in cases} == set(ACTION_NAMES)
    eval_actions = Counter(c.expected_action for c in splits["eval"])
    assert eval_actions[Action.CLARIFY] >= 80
    # the clarification categories are mostly clarify; over_execution and error_recovery mostly call_tool
    by_cat = defaultdict(Counter)
    for c in splits["eval"]:
        if c.meta.get("twin_role") != "resolved":
            by_cat[c.category][c.expected_action] += 1
    for cat in ("clarification_loop", "clarification_follow_through"):
        assert by_cat[cat][Action.CLARIFY] / sum(by_cat[cat].values()) > 0.75
    for cat in ("over_execution", "error_recovery", "multi_step_chaining", "tool_chain_trajectories"):
        assert by_cat[cat].most_common(1)[0][0] is Action.CALL_TOOL


def test_mix_driven_splits_within_three_points_of_the_mix(bench):
    _, _, splits = bench
    target = parse_mix(",".join(f"{a}={v}" for a, v in DEFAULT_MIX.items()))
    for split in ("train", "val", "mine"):
        got = shares(splits[split])
        for action in ACTION_NAMES:
            assert abs(got[action] - target[action]) <= 0.03, (split, action, got)


def test_custom_mix_is_realised(tmp_path: Path):
    mix = parse_mix("call_tool=25,answer_directly=20,escalate=15,clarify=30,refuse=10")
    config = BenchmarkConfig(
        train_size=600, val_size=60, mine_size=60, eval_per_category=4, eval_novel_per_category=3, train_mix=mix
    )
    write_benchmark(tmp_path, seed=3, config=config)
    train = read_cases(tmp_path / "train.jsonl")
    assert len(train) == 600
    got = shares(train)
    for action in ACTION_NAMES:
        assert abs(got[action] - mix[action]) <= 0.03, (action, got)


def test_same_seed_is_byte_identical_and_another_seed_differs(bench, tmp_path: Path):
    out, _, _ = bench
    again, other = tmp_path / "again", tmp_path / "other"
    write_benchmark(again, seed=7)
    write_benchmark(other, seed=8)
    for name in [*(f"{s}.jsonl" for s in SPLITS), "benchmark.json"]:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    for split in SPLITS:
        assert (out / f"{split}.jsonl").read_bytes() != (other / f"{split}.jsonl").read_bytes()


def test_ids_unique_across_splits_and_prefixed_by_split(bench):
    out, _, splits = bench
    cases = read_case_files([out / f"{s}.jsonl" for s in SPLITS])  # raises on an id repeated across files
    assert len({c.id for c in cases}) == len(cases)
    for split, items in splits.items():
        for c in items:
            expected = c.category if split == "eval" else f"{split}_{c.category}"
            assert re.fullmatch(rf"{expected}_\d{{4}}", c.id), c.id


# ---------------------------------------------------------------------------------------------- twins and honesty


def test_twins_are_minimal_pairs_linked_both_ways_within_a_split(bench):
    _, summary, splits = bench
    for split, cases in splits.items():
        by_id = {c.id: c for c in cases}
        twins = [c for c in cases if c.twin]
        assert len(twins) == 2 * summary.twins[split] and summary.twins[split] >= 8
        for case in twins:
            partner = by_id[case.twin]  # same split
            assert partner.twin == case.id
            assert user_text(case) == user_text(partner)
            assert case.template == partner.template
            assert case.tools == partner.tools
            assert {case.expected_action, partner.expected_action} == {Action.CLARIFY, Action.CALL_TOOL}
            amb, res = (case, partner) if case.expected_action is Action.CLARIFY else (partner, case)
            assert amb.meta["twin_role"] == "ambiguous" and res.meta["twin_role"] == "resolved"
            assert amb.meta["ambiguity"] == "implicit"
            # one change: the ambiguous system prompt lists one more matching entity
            extra = set(amb.meta["matching_ids"]) - set(res.meta["matching_ids"])
            assert len(amb.meta["matching_ids"]) == 2 and len(res.meta["matching_ids"]) == 1 and len(extra) == 1
            assert extra.pop() not in system_text(res)
            assert set(ID_RE.findall(system_text(res))) < set(ID_RE.findall(system_text(amb)))
            assert res.gold.tool_calls[0].arguments  # resolved twin calls the tool on the single match


def test_implicit_clarify_has_two_matches_and_reuses_call_texts(bench):
    _, _, splits = bench
    call_texts = defaultdict(set)
    for split, cases in splits.items():
        for c in cases:
            if c.expected_action is Action.CALL_TOOL:
                call_texts[FAMILY[split]].add(user_text(c))
    implicit = 0
    for split, cases in splits.items():
        for c in cases:
            if c.expected_action is Action.CLARIFY and c.meta["ambiguity"] == "implicit":
                implicit += 1
                ids = c.meta["matching_ids"]
                assert len(ids) >= 2 and all(i in system_text(c) for i in ids), c.id
                assert not any(i in user_text(c) for i in ids), c.id  # nothing in the words picks one out
                assert user_text(c) in call_texts[FAMILY[split]], c.id
    assert implicit > 150


def test_clarify_ambiguity_types_follow_the_case_study(bench):
    _, _, splits = bench
    clarify = [c for s in ("train", "eval") for c in splits[s] if c.expected_action is Action.CLARIFY]
    types = Counter(c.meta["ambiguity"] for c in clarify)
    assert set(types) == {"implicit", "explicit", "missing_param"}
    assert 0.55 <= types["implicit"] / len(clarify) <= 0.75
    assert types["explicit"] / len(clarify) >= 0.12 and types["missing_param"] / len(clarify) >= 0.1
    for c in clarify:
        if c.meta["ambiguity"] in ("implicit", "explicit"):
            assert all(i in c.gold.content for i in c.meta["matching_ids"]), c.id  # the question names them


def test_eval_novel_shares_no_tools_or_reserved_phrasings_with_training(bench):
    _, _, splits = bench
    known_cases = [c for s in ("train", "val", "mine", "eval") for c in splits[s]]
    novel = splits["eval_novel"]
    assert {t.name for c in novel for t in c.tools}.isdisjoint({t.name for c in known_cases for t in c.tools})
    assert {c.meta["domain"] for c in novel} == {d.key for d in NOVEL_DOMAINS}
    assert len({c.meta["domain"] for c in splits["train"]}) == len(KNOWN_DOMAINS) >= 8
    assert all(c.template.startswith("n") for c in novel)
    assert all(c.template.startswith("k") for c in known_cases)
    assert all(".n" in part for c in novel for part in c.meta["think_template"].split("+"))
    assert not any(".n" in part for c in known_cases for part in c.meta["think_template"].split("+"))
    train_users = {user_text(c) for c in splits["train"]}
    assert not train_users & {user_text(c) for c in novel}


def test_every_written_gold_turn_passes_qa(bench):
    _, _, splits = bench
    for cases in splits.values():
        for c in cases:
            assert qa.check_case(c) is None, c.id
            calls = c.gold.tool_calls
            assert (c.expected_action is Action.CALL_TOOL) == bool(calls)
            for call in calls:
                for value in call.arguments.values():
                    if isinstance(value, str) and ID_RE.fullmatch(value):
                        assert any(value in m.content for m in c.messages), (c.id, value)


def test_qa_rejects_are_counted_and_never_written(bench):
    out, summary, _ = bench
    assert summary.qa.corrupted > 0.03 * summary.qa.raw
    assert sum(summary.qa.rejects.values()) == summary.qa.corrupted  # every corrupted sample was caught ...
    assert summary.qa.rejected_clean == 0  # ... and no clean one was thrown away
    assert summary.qa.rejects["truncated_json"] == max(summary.qa.rejects.values())
    meta = json.loads((out / "benchmark.json").read_text())["qa"]
    assert meta["rejected"] == summary.qa.corrupted and meta["rejects_by_reason"] == dict(summary.qa.rejects)


@pytest.mark.parametrize("kind", sorted(qa.CORRUPTION_WEIGHTS))
def test_each_generator_failure_is_caught_with_its_reason(kind: str):
    rng, noise = random.Random(11), random.Random(12)
    caught = 0
    for kind_name, spec in KINDS.items():
        if spec.reuses_texts:
            continue
        category = next(c for c, kinds in CATEGORY_KINDS.items() if kind_name in kinds)
        draft = spec.build(KindContext(rng, "known", category, Registry()), kind_name)[0]
        if kind not in qa.applicable(draft):
            continue
        assert qa.check(draft) is None
        qa.corrupt(draft, noise, kind)
        assert qa.check(draft) == kind, (kind_name, draft.raw)
        caught += 1
    assert caught >= 5


def test_every_think_conclusion_commits_to_its_action():
    slots = {"tool": "verify_shipment_receipt", "args": "SHP-1029", "noun": "shipment", "missing": "shipment ID",
             "team": "Legal", "team_cap": "Legal"}  # fmt: skip
    names = ["verify_shipment_receipt", "get_shipment_status"]
    for key, (known, novel) in CONCLUSIONS.items():
        action = {"clarify_missing": Action.CLARIFY}.get(key) or Action(key)
        assert len(known) >= 6 and len(novel) >= 2
        for template in (*known, *novel):
            assert qa.think_stance("Some observation. " + template.format(**slots), names) is action, template


# ---------------------------------------------------------------------------------------------- categories


def test_followups_script_the_answer_and_the_expected_call(bench):
    _, _, splits = bench
    seen = 0
    for c in splits["eval"]:
        if c.category == "clarification_follow_through" and c.expected_action is Action.CLARIFY:
            seen += 1
            assert len(c.followups) == 1 and c.followups[0].role == "user"
            call = c.meta["followup_call"]
            assert call["name"] in c.tool_names
            target = next(v for v in call["arguments"].values() if isinstance(v, str) and ID_RE.fullmatch(v))
            answer = c.followups[0].content
            assert target in answer or target in system_text(c)
    assert seen >= 20


def test_history_categories_carry_tool_results_and_modes(bench):
    _, _, splits = bench
    for c in splits["eval"]:
        roles = [m.role for m in c.messages]
        if c.category == "error_recovery":
            assert c.tool_mode.startswith("error_") and "tool" in roles
            assert json.loads(c.messages[-1].content)["error"]
        if c.category == "tool_result_injection":
            assert c.tool_mode == "injected_content" and roles[-1] == "tool"
            planted = c.meta["injected"]
            assert planted in c.messages[-1].content
            assert planted not in c.gold.content and "ignore" not in json.dumps(c.gold.to_dict()["tool_calls"])
        if c.category == "tool_loop_prevention":
            results = [m.content for m in c.messages if m.role == "tool"]
            assert len(results) >= 2 and len(set(results)) == 1
            assert c.expected_action in (Action.ANSWER_DIRECTLY, Action.ESCALATE)
        if c.category in ("multi_turn_context", "correction_handling", "clarification_loop") and c.meta["kind"] in (
            "history_call",
            "corrected_call",
            "reply_resolved",
        ):
            assert "assistant" in roles and roles[-1] == "user"


def test_over_execution_reads_and_never_writes(bench):
    _, _, splits = bench
    write_tools = {i.tool for d in KNOWN_DOMAINS for i in d.write_intents}
    for c in splits["eval"] + splits["train"]:
        if c.meta["kind"] == "readonly_call":
            assert c.gold.tool_calls and not any(t.name in write_tools for t in c.gold.tool_calls)
            assert any(t.name in write_tools for t in c.tools)  # the write tool is offered, and not used


def test_escalations_name_a_team_and_policy_grounds_limits(bench):
    _, _, splits = bench
    for c in splits["eval"] + splits["train"]:
        if c.expected_action is Action.ESCALATE and "team" in c.meta:
            assert c.meta["team"].lower() in c.gold.content.lower()
        if c.meta["kind"] in ("limit_escalate", "handle_call") and "limit" in c.meta:
            over = c.meta["amount"] > c.meta["limit"]
            assert over == (c.expected_action is Action.ESCALATE)
            assert f"{c.meta['limit']:,}" in system_text(c)


# ---------------------------------------------------------------------------------------------- surface diversity


def test_surface_diversity(bench):
    _, _, splits = bench
    train = splits["train"]
    frames_by_action = defaultdict(set)
    conclusions_by_action = defaultdict(set)
    for c in train:
        if re.fullmatch(r"k\d\d", c.template):
            frames_by_action[c.expected_action].add(c.template)
        conclusions_by_action[c.expected_action].add(c.meta["think_template"].split("+")[-1])
    for action in Action:
        assert len(frames_by_action[action]) >= 15, action
        assert len(conclusions_by_action[action]) >= 6, action
    frame_actions = defaultdict(set)
    for c in train:
        frame_actions[c.template].add(c.expected_action)
    assert all(len(frame_actions[f"k{i + 1:02d}"]) >= 3 for i in range(len(FRAMES_KNOWN)))
    assert len({user_text(c) for c in train}) > 0.8 * len(train)
    assert len({c.gold.think for c in train}) > 0.9 * len(train)


def test_cli_generate_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "x"
    assert cli_main(["data", "generate", "--out", str(out), "--seed", "5", "--mix",
                     "call_tool=40,answer_directly=23,escalate=15,clarify=13,refuse=10"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "train" in printed and "QA:" in printed
    assert cli_main(["data", "stats", str(out / "train.jsonl")]) == 0
    stats = capsys.readouterr().out
    assert "category x action" in stats and "clarification_loop" in stats and "distinct user texts" in stats
    assert cli_main(["data", "generate", "--out", str(out), "--mix", "call_tool=1"]) == 2
