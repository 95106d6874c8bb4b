"""Preference-pair mining from the agent's own failures: rejected verbatim, chosen keeping the agent's think when it
argued right, quality checks counted, and no eval case (or twin of one) ever reaching a pairs file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolprior.actions import Action
from toolprior.case_io import read_cases, write_cases
from toolprior.cases import Case, GoldTurn, Message, ToolCall, ToolSpec
from toolprior.cli import main as cli_main
from toolprior.errors import InputError
from toolprior.evals.verdicts import verdict_for
from toolprior.output_format import parse_turn, render_turn
from toolprior.training.pair_mining import mine_pairs
from toolprior.training.pairs import (
    COUNT_KEYS,
    GOLD,
    OWN_THINK,
    Pair,
    check_no_leak,
    pair_stats,
    read_pairs,
    write_pairs,
)
from toolprior.verdict import Verdict, write_verdicts

TOOL = ToolSpec(
    "verify_shipment_receipt",
    "Mark a shipment as received.",
    {"type": "object", "properties": {"shipment_id": {"type": "string"}}, "required": ["shipment_id"]},
)
RIGHT_THINK = "Two shipments match and the user did not say which one. I should ask the user which shipment they mean."
WRONG_THINK = "The user wants the receipt verified. I will call verify_shipment_receipt for SHP-1029 now."
TOOL_CALL = '<tool_call>{"name": "verify_shipment_receipt", "arguments": {"shipment_id": "SHP-1029"}}</tool_call>'


def make_case(
    case_id: str,
    split: str = "mine",
    *,
    expected: Action = Action.CLARIFY,
    twin: str | None = None,
    content: str = "Which shipment do you mean, SHP-1029 or SHP-1030?",
    gold: bool = True,
) -> Case:
    turn = None
    if gold and expected is Action.CALL_TOOL:
        calls = (ToolCall("verify_shipment_receipt", {"shipment_id": "SHP-1030"}),)
        turn = GoldTurn("One shipment matches: SHP-1030. I'll verify it.", Action.CALL_TOOL, "", calls)
    elif gold:
        turn = GoldTurn(RIGHT_THINK, expected, content)
    return Case(
        id=case_id,
        category="clarification_loop",
        split=split,
        expected_action=expected,
        messages=(
            Message("system", "Pending shipments: SHP-1029 (MRI parts) and SHP-1030 (surgical tools)."),
            Message("user", "We received the shipment today. Please verify the receipt."),
        ),
        tools=(TOOL,),
        gold=turn,
        twin=twin,
    )


def failed(case: Case, output: str) -> Verdict:
    verdict = verdict_for(case, parse_turn(output, case.tools), output=output)
    assert not verdict.correct
    return verdict


# ------------------------------------------------------------------------------------------------------ mining


def test_own_think_kept_when_it_argued_for_the_right_action():
    case = make_case("mine_clarification_loop_0001")
    output = f"<think>{RIGHT_THINK}</think>{TOOL_CALL}\n{TOOL_CALL}  \n"  # messy on purpose: kept byte for byte
    pairs = mine_pairs([case], [failed(case, output)])
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.rejected == [{"role": "assistant", "content": output}]
    assert pair.rejected_text == output
    assert pair.chosen_source == OWN_THINK and pair.think_argues == "clarify"
    assert pair.chosen_text == f"<think>{RIGHT_THINK}</think><clarify>{case.gold.content}</clarify>"
    assert (pair.expected_action, pair.rejected_action) == ("clarify", "call_tool")
    # TRL's conversational preference format: prompt = the case's messages, completions one assistant message each
    assert pair.prompt == [m.to_dict() for m in case.messages]
    assert pair.tools == [TOOL.to_dict()]
    from trl.data_utils import is_conversational

    assert is_conversational(pair.trl_row())


def test_gold_turn_when_the_think_argued_for_the_wrong_action():
    case = make_case("mine_clarification_loop_0002")
    output = f"<think>{WRONG_THINK}</think>{TOOL_CALL}"
    pair = mine_pairs([case], [failed(case, output)])[0]
    assert pair.chosen_source == GOLD and pair.think_argues == "call_tool"
    assert pair.chosen_text == render_turn(case.gold)
    assert pair.rejected_text == output


def test_call_tool_own_think_with_the_gold_calls():
    case = make_case("mine_clarification_loop_0003", expected=Action.CALL_TOOL)
    think = "SHP-1030 is the one that arrived. I'll call verify_shipment_receipt for it."
    output = f"<think>{think}</think><clarify>Which one?</clarify>"
    pair = mine_pairs([case], [failed(case, output)])[0]
    assert pair.chosen_source == OWN_THINK
    assert pair.chosen_text == f"<think>{think}</think>" + render_turn(case.gold).split("</think>", 1)[1]
    assert parse_turn(pair.chosen_text, case.tools).tool_calls == case.gold.tool_calls


def test_quality_checks_are_counted():
    good = make_case("mine_clarification_loop_0010")
    same = make_case("mine_clarification_loop_0011")
    broken = make_case("mine_clarification_loop_0012", content="Which one? <tool_call>{}</tool_call>")
    no_gold = make_case("mine_clarification_loop_0013", gold=False)
    ok = make_case("mine_clarification_loop_0014")
    tagged = make_case("mine_clarification_loop_0015")
    wrong = f"<think>{WRONG_THINK}</think>{TOOL_CALL}"
    verdicts = [
        failed(good, wrong),
        failed(good, wrong),  # the same failure twice: kept once
        # judged wrong although the output is the gold turn (a scoring quirk): chosen == rejected, dropped
        Verdict(same.id, same.category, "mine", "clarify", ["clarify"], "clarify", False, render_turn(same.gold)),
        failed(broken, wrong),  # its gold turn does not parse cleanly: nested tag
        Verdict(no_gold.id, no_gold.category, "mine", "clarify", ["clarify"], "call_tool", False, wrong),
        verdict_for(ok, parse_turn(render_turn(ok.gold), ok.tools)),  # correct: no pair
        # the own think carries a format tag, so think + action does not parse: the gold turn replaces it
        Verdict(
            tagged.id,
            tagged.category,
            "mine",
            "clarify",
            ["clarify"],
            "call_tool",
            False,
            wrong,
            think="I should ask which one <answer>",
        ),
    ]
    pairs = mine_pairs([good, same, broken, no_gold, ok, tagged], verdicts)
    assert list(pairs.counts) == list(COUNT_KEYS)
    assert pairs.counts == {
        "verdicts": 7,
        "correct": 1,
        "failures": 6,
        "no_gold": 1,
        "own_think_fallback": 1,
        "unparseable": 1,
        "identical": 1,
        "duplicate": 1,
        "kept": 2,
    }
    assert [p.id for p in pairs] == [good.id, tagged.id]
    assert pairs[1].chosen_source == GOLD
    text = pair_stats(pairs)
    assert "pairs: 2 from 6 failures among 7 verdicts" in text
    assert "1 no gold" in text and "1 unparseable" in text and "1 identical" in text and "1 duplicate" in text


# ---------------------------------------------------------------------------------------------------- leakage


def test_failure_on_an_eval_case_is_refused():
    case = make_case("eval_clarification_loop_0001", split="eval")
    with pytest.raises(InputError) as err:
        mine_pairs([case], [failed(case, TOOL_CALL)], allowed_splits=("mine", "train"))
    message = str(err.value)
    assert "eval_clarification_loop_0001" in message and "split eval" in message


def test_case_listed_in_the_eval_files_is_refused_whatever_its_split_field():
    case = make_case("mine_clarification_loop_0020")
    held = make_case("mine_clarification_loop_0020", split="eval_novel")
    with pytest.raises(InputError, match=r"mine_clarification_loop_0020 .*eval_novel"):
        mine_pairs([case], [failed(case, TOOL_CALL)], eval_cases=[held])


def test_case_whose_twin_is_in_eval_is_refused():
    mine = make_case("mine_clarification_loop_0030", twin="eval_clarification_loop_0030")
    twin = make_case("eval_clarification_loop_0030", split="eval", twin="mine_clarification_loop_0030")
    with pytest.raises(InputError) as err:
        mine_pairs([mine], [failed(mine, TOOL_CALL)], eval_cases=[twin])
    assert "mine_clarification_loop_0030" in str(err.value) and "twin eval_clarification_loop_0030 in eval" in str(
        err.value
    )
    # the link named only from the eval side is caught too
    unlinked = make_case("mine_clarification_loop_0030")
    with pytest.raises(InputError, match="twin of eval_clarification_loop_0030 in eval"):
        mine_pairs([unlinked], [failed(unlinked, TOOL_CALL)], eval_cases=[twin])
    # and the same check guards pairs already written, before training
    pair = mine_pairs([unlinked], [failed(unlinked, TOOL_CALL)])[0]
    with pytest.raises(InputError, match="eval_clarification_loop_0030"):
        check_no_leak([pair], [twin])


def test_only_mine_by_default():
    case = make_case("train_clarification_loop_0001", split="train")
    verdict = failed(case, TOOL_CALL)
    with pytest.raises(InputError, match=r"pairs come only from mine.*train_clarification_loop_0001 \(split train\)"):
        mine_pairs([case], [verdict])
    assert len(mine_pairs([case], [verdict], allowed_splits=("mine", "train"))) == 1
    with pytest.raises(InputError, match="never come from held-out"):
        mine_pairs([case], [verdict], allowed_splits=("mine", "eval"))


def test_verdict_without_its_case_is_bad_input():
    case = make_case("mine_clarification_loop_0040")
    with pytest.raises(InputError, match="mine_clarification_loop_0040"):
        mine_pairs([], [failed(case, TOOL_CALL)])


# -------------------------------------------------------------------------------------------------------- I/O


def test_write_and_read_round_trip(tmp_path):
    cases = [
        make_case(f"mine_clarification_loop_00{i}", expected=a)
        for i, a in ((50, Action.CLARIFY), (51, Action.CALL_TOOL))
    ]
    verdicts = [failed(cases[0], TOOL_CALL), failed(cases[1], "<think>x</think><clarify>Which?</clarify>")]
    pairs = mine_pairs(cases, verdicts)
    path = tmp_path / "pairs.jsonl"
    assert write_pairs(path, pairs) == 2
    first = json.loads(path.read_text().splitlines()[0])
    for key in ("id", "category", "expected_action", "rejected_action", "chosen_source"):
        assert key in first
    assert read_pairs(path) == list(pairs)
    assert "call_tool" in pair_stats(read_pairs(path))


def test_read_pairs_names_file_line_and_field(tmp_path):
    case = make_case("mine_clarification_loop_0060")
    good = mine_pairs([case], [failed(case, TOOL_CALL)])[0].to_dict()
    bad_source = {**good, "chosen_source": "frontier"}
    leaked = {**good, "id": "eval_x", "split": "eval"}
    two_chosen = {**good, "chosen": good["chosen"] * 2}
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in (good, bad_source, leaked, two_chosen)) + "\n{broken\n")
    with pytest.raises(InputError) as err:
        read_pairs(path)
    lines = [str(p) for p in err.value.problems]
    assert f"{path}:2: chosen_source: expected one of own_think, gold, got 'frontier'" in lines
    assert any(line.startswith(f"{path}:3: split: 'eval_x' is a held-out case") for line in lines)
    assert f"{path}:4: chosen: expected exactly one assistant message, got 2" in lines
    assert any(line.startswith(f"{path}:5: broken JSON") for line in lines)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no pairs"):
        read_pairs(empty)


# -------------------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

    out = tmp_path_factory.mktemp("bench")
    config = BenchmarkConfig().replace(
        train_size=50, val_size=10, mine_size=40, eval_per_category=1, eval_novel_per_category=1
    )
    write_benchmark(out, seed=1, config=config)
    return out


def agent_verdicts(cases: list[Case]) -> list[Verdict]:
    """An agent with the call-tool prior: every non-tool case answered with a tool call (its think kept)."""
    verdicts = []
    for case in cases:
        if case.expected_action is Action.CALL_TOOL:
            output = render_turn(case.gold)
        else:
            call = json.dumps({"name": case.tools[0].name, "arguments": {}})
            output = f"<think>{case.gold.think}</think><tool_call>{call}</tool_call>"
        verdicts.append(verdict_for(case, parse_turn(output, case.tools), output=output))
    return verdicts


def test_cli_mines_the_benchmark(bench, tmp_path, capsys):
    mine = read_cases(bench / "mine.jsonl")
    write_verdicts(tmp_path / "verdicts.jsonl", agent_verdicts(mine))
    out = tmp_path / "pairs.jsonl"
    args = [
        "pairs",
        "--verdicts",
        str(tmp_path / "verdicts.jsonl"),
        "--cases",
        str(bench / "mine.jsonl"),
        "--out",
        str(out),
    ]
    code = cli_main([*args, "--eval-cases", str(bench / "eval.jsonl"), str(bench / "eval_novel.jsonl")])
    printed = capsys.readouterr().out
    assert code == 0
    pairs = read_pairs(out)
    non_tool = [c for c in mine if c.expected_action is not Action.CALL_TOOL]
    assert [p.id for p in pairs] == [c.id for c in non_tool]
    assert all(p.split == "mine" and p.rejected_action == "call_tool" for p in pairs)
    # the agent's think is the gold think, so whichever source the chosen turn came from, it is the gold turn
    gold_turns = {c.id: render_turn(c.gold) for c in non_tool}
    assert all(p.chosen_text == gold_turns[p.id] for p in pairs)
    assert sum(p.chosen_source == OWN_THINK for p in pairs) >= len(pairs) // 2
    assert f"pairs: {len(non_tool)} from {len(non_tool)} failures among {len(mine)} verdicts" in printed
    assert "expected action" in printed and f"wrote {len(pairs)} pairs" in printed


def test_cli_exits_2_on_eval_leakage_without_a_traceback(bench, tmp_path, capsys):
    mine = read_cases(bench / "mine.jsonl")
    evals = read_cases(bench / "eval.jsonl")
    leaked = next(c for c in evals if c.expected_action is not Action.CALL_TOOL)
    write_verdicts(tmp_path / "verdicts.jsonl", agent_verdicts([*mine, leaked]))
    out = tmp_path / "pairs.jsonl"
    code = cli_main(
        [
            "pairs",
            "--verdicts",
            str(tmp_path / "verdicts.jsonl"),
            "--cases",
            str(bench / "mine.jsonl"),
            "--cases",
            str(bench / "eval.jsonl"),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert not out.exists()
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert leaked.id in err and "split eval" in err


def test_cli_exits_2_when_a_mine_case_is_in_the_eval_files(bench, tmp_path, capsys):
    mine = read_cases(bench / "mine.jsonl")
    write_verdicts(tmp_path / "verdicts.jsonl", agent_verdicts(mine))
    # a held-out file that (wrongly) shares a case with mine
    shared = next(c for c in mine if c.expected_action is not Action.CALL_TOOL)
    write_cases(tmp_path / "held.jsonl", [shared])
    code = cli_main(
        [
            "pairs",
            "--verdicts",
            str(tmp_path / "verdicts.jsonl"),
            "--cases",
            str(bench / "mine.jsonl"),
            "--eval-cases",
            str(tmp_path / "held.jsonl"),
            "--out",
            str(tmp_path / "pairs.jsonl"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and shared.id in err and "Traceback" not in err


def test_cli_exits_2_on_a_broken_verdicts_file(bench, tmp_path, capsys):
    (tmp_path / "verdicts.jsonl").write_text('{"id": "x"\n')
    code = cli_main(
        [
            "pairs",
            "--verdicts",
            str(tmp_path / "verdicts.jsonl"),
            "--cases",
            str(bench / "mine.jsonl"),
            "--out",
            str(tmp_path / "p.jsonl"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'verdicts.jsonl'}:1" in err


def test_pair_dataclass_is_plain_data():
    case = make_case("mine_clarification_loop_0070")
    pair = mine_pairs([case], [failed(case, TOOL_CALL)])[0]
    assert isinstance(pair, Pair)
    assert Pair(**{k: v for k, v in pair.to_dict().items()}) == pair
