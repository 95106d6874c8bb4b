"""Timing for `make bench`: ratios from runs taken in alternation, and each ratio judged against its goal."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any


def judge(entry: dict[str, Any], op: str, goal: float) -> dict[str, Any]:
    """`entry` with its ratio rounded and its goal and whether it is met added."""
    ratio = entry["ratio"]
    entry["ratio"] = round(ratio, 3)
    entry["goal"] = f"{op} {goal}"
    entry["met"] = ratio <= goal if op == "<=" else ratio >= goal
    return entry


def paired_times(a: Callable[[], Any], b: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Medians of `a` and `b` timed in alternation, so drift in the machine's speed (other load, frequency scaling)
    falls on both sides alike; a ratio of two medians taken minutes apart does not. The order flips every pair
    (a b, b a, a b, ...): a side that always ran second would always find the caches and the allocator as the
    other side left them."""
    a()
    b()
    times_a: list[float] = []
    times_b: list[float] = []
    for i in range(repeats):
        pair = ((a, times_a), (b, times_b))
        for fn, times in pair if i % 2 == 0 else pair[::-1]:
            gc.collect()  # the garbage one side leaves (nnsight's traced graphs) is not the other side's time
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and lazy imports
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
