"""Cached, resumable stages of a study: each stage writes its outputs, then a marker `stages/<name>.json` with a
summary. Rerunning a study skips every stage whose marker exists; a stage killed half-way has no marker and runs
again (training stages resume from their own last checkpoint)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolprior.atomic import atomic_write_text


class StageRunner:
    """Runs named stages once per run folder, keeping their summaries."""

    def __init__(self, run_dir: Path, log: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.marker_dir = self.run_dir / "stages"
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.summaries: dict[str, dict[str, Any]] = {}

    def done(self, name: str) -> bool:
        return (self.marker_dir / f"{name}.json").is_file()

    def run(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """Run `fn` unless stage `name` already finished; returns its summary either way."""
        marker = self.marker_dir / f"{name}.json"
        if marker.is_file():
            summary = json.loads(marker.read_text())
            self.log(f"[{name}] done earlier ({summary.get('seconds', 0):.0f} s), skipped")
        else:
            self.log(f"[{name}] running")
            start = time.perf_counter()
            summary = dict(fn() or {})
            summary["seconds"] = round(time.perf_counter() - start, 2)
            atomic_write_text(marker, json.dumps(summary, indent=2, default=str) + "\n")
            self.log(f"[{name}] finished in {summary['seconds']:.0f} s")
        self.summaries[name] = summary
        return summary
