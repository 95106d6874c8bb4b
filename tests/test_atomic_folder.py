"""toolprior.atomic.atomic_folder: a folder appears whole or not at all (the SmolLM2 conversion, the shipped
organism adapter and a study's installed adapter are written through it)."""

from __future__ import annotations

import pytest

from toolprior.atomic import atomic_folder


def test_a_finished_folder_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "stale.bin").write_bytes(b"old")
    with atomic_folder(target) as staging:
        assert staging.parent == tmp_path and staging != target
        (staging / "weights.bin").write_bytes(b"new")
        assert (target / "stale.bin").is_file()  # the old folder stays until the new one is whole
    assert sorted(p.name for p in target.iterdir()) == ["weights.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no staging or old copy left behind


def test_a_failed_folder_leaves_the_old_one_and_no_staging(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "kept.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_folder(target) as staging:
        (staging / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed half-way")
    assert sorted(p.name for p in target.iterdir()) == ["kept.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
