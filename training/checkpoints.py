"""Which checkpoint a resumed run starts from."""

from __future__ import annotations

import json
import re
from pathlib import Path

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` that a Trainer finished writing, or None.

    The Trainer writes `trainer_state.json` last (after weights, optimizer, scheduler and RNG state), so a
    checkpoint without it, or with one that does not parse, was cut short by a kill and is skipped; resuming from it
    would fail ("Can't find a valid checkpoint")."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True
    )
    for _, path in found:
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        return str(path)
    return None
