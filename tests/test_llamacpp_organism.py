"""The organism in llama.cpp itself (issue 20): SmolLM2 with the shipped adapter merged in float32, as an F32 GGUF, and
a control vector at block 22 written by `export_gguf` give the first-token decision `steer(positions="all")` gives,
on two short cases with a forced think, at alpha 0 and 1 (experiments/llamacpp_agreement.py runs the same check on
24 mine cases and the demo's vector).

Slow, and skipped where no prebuilt llama.cpp bindings load (steering/llamacpp.py says which and how). The GGUF comes
from llama.cpp's own convert_hf_to_gguf.py where $LLAMACPP_CONVERT names one, else from tests/test_gguf_llamacpp.py's
writer (the converter's tensor names, keys and Q/K permutation; placeholder vocabulary, as the check feeds token ids).
The vector is the tied unembedding's clarify-minus-call_tool direction, scaled to the demo vector's norm (about 100),
so alpha 1 moves the tag logits by several units.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from toolprior.case_validation import case_from_dict
from toolprior.experiments.llamacpp_agreement import (
    CONVERTER_ENV,
    action_token_ids,
    convert_to_gguf,
    decision,
    decision_inputs,
    hf_decision_logits,
    load_organism,
)
from toolprior.steering.gguf_io import export_gguf
from toolprior.steering.llamacpp import LlamaCpp, LlamaCppUnavailable, load_library
from toolprior.steering.vector import SteeringVector

pytest.importorskip("llama_cpp_py_sync._cffi_bindings", reason="no prebuilt llama.cpp bindings here")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

LAYER = 22
ALPHAS = (0.0, 1.0)
LOGIT_TOLERANCE = 2e-3  # float32 in both; measured on 24 mine cases: at most ~1e-4 over the whole vocabulary
SYSTEM = (
    "Role: customer-support assistant at Brook & Vale.\n\nPolicies:\n- Returns are accepted within 30 days of "
    "delivery.\nWhat's on file:\nOrders awaiting refund: ORD-232163: winter jacket; ORD-379893: headphones."
)
GET_ORDER = {
    "name": "get_order",
    "description": "Read an order: items, total, delivery and return status.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "Order ID, e.g. ORD-442910"}},
        "required": ["order_id"],
    },
}
CASES = [
    (
        "ambiguous",
        "Are you able to check on my order? No rush.",
        "'my order' could be either of the two orders on file. Guessing could read the wrong one, so I should ask "
        "which one they mean.",
    ),
    (
        "explicit",
        "Can you check order ORD-232163 for me?",
        "They named ORD-232163 explicitly. Nothing is missing, so get_order it is, with ORD-232163.",
    ),
]


def _cases() -> tuple[list, dict[str, str]]:
    cases, thinks = [], {}
    for name, user, think in CASES:
        raw = {
            "id": f"mine_organism_{name}",
            "category": "clarification_loop",
            "split": "mine",
            "expected_action": "clarify" if name == "ambiguous" else "call_tool",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
            "tools": [GET_ORDER],
        }
        case, problems = case_from_dict(raw, "<test>", None)
        assert case is not None, problems
        cases.append(case)
        thinks[case.id] = think
    return cases, thinks


@pytest.fixture(scope="module", autouse=True)
def llama_cpp_loads() -> None:
    """Skip before merging and converting where the libraries do not load (e.g. a glibc older than theirs)."""
    try:
        load_library()
    except LlamaCppUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def organism(smollm2_folder):
    return load_organism(smollm2_folder)


@pytest.fixture(scope="module")
def organism_gguf(organism, tmp_path_factory) -> Path:
    model, tokenizer = organism
    work = tmp_path_factory.mktemp("organism")
    converter = os.environ.get(CONVERTER_ENV)
    if converter:
        model.save_pretrained(work / "merged")
        tokenizer.save_pretrained(work / "merged")
        return convert_to_gguf(Path(converter), work / "merged", work / "organism-f32.gguf", "f32")
    from tests.test_gguf_llamacpp import write_llama_gguf

    return write_llama_gguf(model, work / "organism-f32.gguf")


def test_organism_decisions_in_llama_cpp_match_steer(organism, organism_gguf, tmp_path):
    model, tokenizer = organism
    tags = action_token_ids(tokenizer)
    embed = model.get_input_embeddings().weight.detach().float()
    direction = embed[tags["clarify"]] - embed[tags["call_tool"]]
    vector = SteeringVector({LAYER: direction * (100.0 / direction.norm())})
    vector_file = export_gguf(vector, tmp_path / "organism-layer22.gguf")
    inputs = decision_inputs(tokenizer, *_cases())
    tag_ids = torch.tensor(list(tags.values()))
    unsteered = {case_id: hf_decision_logits(model, ids) for case_id, _, ids in inputs}
    cpp = LlamaCpp(organism_gguf, n_ctx=512, quiet=True)
    try:
        for alpha in ALPHAS:
            cpp.set_control_vector(vector_file, alpha)
            for case_id, _, ids in inputs:
                theirs = cpp.logits(ids, last_only=True)[0, -1]
                ours = hf_decision_logits(model, ids, vector, alpha) if alpha else unsteered[case_id]
                gap = (theirs - ours).abs().max().item()
                moved = (ours[tag_ids] - unsteered[case_id][tag_ids]).abs().max().item()
                print(
                    f"{case_id} alpha {alpha:g}: toolprior {decision(ours, tags)}, llama.cpp {decision(theirs, tags)}; "
                    f"max |logit gap| {gap:.2e}; the vector moved the tag logits by {moved:.2f}"
                )
                assert decision(theirs, tags)[0] == decision(ours, tags)[0]
                assert gap < LOGIT_TOLERANCE
                if alpha:
                    assert moved > 100 * LOGIT_TOLERANCE
    finally:
        cpp.close()
