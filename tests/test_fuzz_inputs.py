"""Fuzzed inputs (issue 16, part 2): random YAML documents and `--set` strings into every config loader, random
bytes and random JSON lines into every JSONL reader. Each must load cleanly or raise InputError (one line per
problem, exit 2 from the CLI): never another exception, never a traceback.

The default suite runs a few dozen examples per test; `make test-slow` (-m slow) runs many more."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolprior.case_io import read_cases
from toolprior.config import load_config
from toolprior.errors import InputError
from toolprior.experiments.ablate_config import AblationConfig
from toolprior.experiments.study_config import StudyConfig
from toolprior.importers import import_bfcl, import_when2call
from toolprior.probes.experiment import ProbeExperimentConfig
from toolprior.training import AdvSFTRunConfig, DPORunConfig, SimPORunConfig
from toolprior.training.base import BaseConfig
from toolprior.training.pairs import read_pairs
from toolprior.training.run_configs import SFTRunConfig
from toolprior.verdict import read_verdicts

CONFIGS: list[type] = [
    StudyConfig,
    AblationConfig,
    SFTRunConfig,
    SimPORunConfig,
    DPORunConfig,
    AdvSFTRunConfig,
    ProbeExperimentConfig,
    BaseConfig,
]
READERS: dict[str, Callable[[Path], Any]] = {
    "cases": read_cases,
    "verdicts": read_verdicts,
    "pairs": read_pairs,
    "bfcl": import_bfcl,
    "when2call": import_when2call,
}

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted setting of a config dataclass (sections included), to aim the fuzzing at real names."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(_paths(hints[f.name], f"{prefix}{f.name}."))
    return out


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["nf4", "none", "decision", "mean_diff", "train", "eval", "organism", "1e-3", "x", "", "-1"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def config_documents(cls: type) -> st.SearchStrategy[Any]:
    """Mappings keyed mostly by the config's own (dotted, then nested) names, valued at random."""
    names = _paths(cls)

    def nest(flat: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for dotted, value in flat.items():
            cursor = doc
            *heads, last = dotted.split(".")
            for head in heads:
                nxt = cursor.get(head)
                if nxt is None:  # absent, or an explicit null drawn for the section itself: a mapping replaces it
                    nxt = cursor[head] = {}
                cursor = nxt if isinstance(nxt, dict) else {}
            cursor[last] = value
        return doc

    keys = st.one_of(st.sampled_from(names), st.text(max_size=10))
    return st.dictionaries(keys, VALUES, max_size=6).map(nest) | VALUES


def _yaml_text(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


RAW_YAML = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "a: &x [*x]\n",
            "steering: {alphas: [1, 'x']}\n",
            "date: 2020-13-01\n",
            "? [a, b]\n: c\n",
            "--- a\n--- b\n",
            "lora: {r: .nan}\n",
            "[1, 2]\n",
            "\t bad: indent\n",
            "data: !!python/object:os.system echo\n",
            "training:\n  learning_rate: 1e-3\n  extra: {a: &y [*y]}\n",
        ]
    ),
)


def _loads_or_input_error(load: Callable[[], Any]) -> None:
    try:
        load()
    except InputError as err:
        assert err.problems and all(str(p) and "\n" not in str(p) for p in err.problems)


def _yaml_case(cls: type, text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _loads_or_input_error(lambda: load_config(cls, path))


def _override_case(cls: type, overrides: list[str]) -> None:
    _loads_or_input_error(lambda: load_config(cls, None, overrides))


def _overrides(cls: type) -> st.SearchStrategy[list[str]]:
    names = _paths(cls)
    structured = st.builds(
        lambda key, value: f"{key}={value}",
        st.one_of(st.sampled_from(names), st.text(max_size=10)),
        st.one_of(st.text(max_size=20), VALUES.map(lambda v: json.dumps(v, default=str))),
    )
    return st.lists(st.one_of(structured, st.text(max_size=30)), max_size=5)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_random_yaml_documents_load_or_are_input_errors(cls: type, data: st.DataObject) -> None:
    document = data.draw(config_documents(cls).map(_yaml_text) | RAW_YAML)
    _yaml_case(cls, document)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_random_set_overrides_load_or_are_input_errors(cls: type, data: st.DataObject) -> None:
    _override_case(cls, data.draw(_overrides(cls)))


def _reader_case(reader: Callable[[Path], Any], content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.json"
        path.write_bytes(content)
        _loads_or_input_error(lambda: reader(path))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
RECORD_KEYS = [
    "id", "category", "split", "expected_action", "messages", "tools", "gold", "acceptable", "meta", "question",
    "function", "ground_truth", "uuid", "correct_answer", "answers", "predicted", "correct", "chosen", "rejected",
    "prompt", "role", "content", "name", "parameters", "involved_classes",
]  # fmt: skip
RECORDS = st.dictionaries(st.sampled_from(RECORD_KEYS) | st.text(max_size=6), JSON_VALUES, max_size=8)
JSON_LINES = st.lists(RECORDS | JSON_VALUES, min_size=1, max_size=4).map(
    lambda rows: ("\n".join(json.dumps(r) for r in rows) + "\n").encode()
)


@pytest.mark.parametrize("name", list(READERS))
@FAST
@given(content=st.binary(max_size=300) | JSON_LINES)
def test_random_bytes_read_or_are_input_errors(name: str, content: bytes) -> None:
    _reader_case(READERS[name], content)


@pytest.mark.slow
@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
@SLOW
@given(data=st.data())
def test_many_random_configs_and_overrides(cls: type, data: st.DataObject) -> None:
    _yaml_case(cls, data.draw(config_documents(cls).map(_yaml_text) | RAW_YAML))
    _override_case(cls, data.draw(_overrides(cls)))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(READERS))
@SLOW
@given(content=st.binary(max_size=2000) | JSON_LINES)
def test_many_random_bytes(name: str, content: bytes) -> None:
    _reader_case(READERS[name], content)
