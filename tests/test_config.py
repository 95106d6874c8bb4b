from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from toolprior.config import dump_yaml, load_config
from toolprior.errors import InputError


@dataclass
class Inner:
    r: int = 8
    lr: float = 1e-3
    targets: str | list[str] = "all-linear"


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    alpha: float | None = None


def test_yaml_then_overrides_fill_nested_dataclasses(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run\ninner:\n  r: 16\n  lr: 1e-2\n  targets: [q_proj, v_proj]\n")
    config = load_config(Outer, path, overrides=["inner.r=32", "alpha=5"])
    assert config.name == "run" and config.inner.r == 32 and config.inner.lr == 0.01
    assert config.inner.targets == ["q_proj", "v_proj"] and config.alpha == 5.0
    assert "r: 32" in dump_yaml(config)


def test_unknown_key_and_wrong_type_name_file_line_and_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run\ninner:\n  rank: 16\n  lr: fast\n")
    with pytest.raises(InputError) as err:
        load_config(Outer, path)
    lines = [str(p) for p in err.value.problems]
    assert any(line.startswith(f"{path}:3: inner.rank: unknown setting") for line in lines)
    assert any(line.startswith(f"{path}:4: inner.lr: expected float") for line in lines)


def test_broken_yaml_and_bad_override_are_one_line_each(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="invalid YAML"):
        load_config(Outer, path)
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        load_config(Outer, None, overrides=["inner.r"])
