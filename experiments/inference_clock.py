"""Wall and CPU time of one evaluation, for the study's cost column."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


@contextlib.contextmanager
def inference_clock() -> Iterator[dict[str, float]]:
    """Yield a dict that holds `infer_s` (wall seconds) and `cpu_s` (this process's CPU seconds, all threads) once
    the block ends. CPU time does not run while the process is stopped (SIGSTOP), so a study paused for other work
    still has a cost to compare in `cpu_s` when `infer_s` has none. It is not immune to a crowded machine (threads
    that spin-wait for cores burn CPU time too), and on a GPU it is host time, not device time."""
    clock: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield clock
    clock["infer_s"] = round(time.perf_counter() - wall, 2)
    clock["cpu_s"] = round(time.process_time() - cpu, 2)
