"""Interval estimates and paired tests for comparing methods on the same evaluation cases."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats as _stats

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal
EXACT_BELOW = 25  # McNemar uses the exact binomial test when b01 + b10 is below this


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (n = 0 gives the uninformative (0.0, 1.0)).

    center = (p + z^2 / 2n) / (1 + z^2 / n), half = z * sqrt(p(1-p)/n + z^2 / 4n^2) / (1 + z^2 / n)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, center - half)  # both bounds are exact there; avoid 0.9999999999999999
    hi = 1.0 if k == n else min(1.0, center + half)
    return lo, hi


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict[str, Any]:
    """McNemar's test on paired correctness of two methods over the same cases.

    b01 counts cases method a got wrong and b got right; b10 cases a got right and b got wrong. With
    b01 + b10 < 25 the exact two-sided binomial test is used (p = min(1, 2 * P[X <= min(b01, b10)]),
    X ~ Bin(b01 + b10, 1/2); "test": "exact"), otherwise the chi-square test with continuity correction
    ((|b01 - b10| - 1)^2 / (b01 + b10), 1 degree of freedom; "test": "chi2_cc"). No discordant pair gives p = 1.
    """
    a = [bool(x) for x in a_correct]
    b = [bool(x) for x in b_correct]
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    b01 = sum(1 for x, y in zip(a, b, strict=True) if not x and y)
    b10 = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    m = b01 + b10
    out: dict[str, Any] = {"n": len(a), "b01": b01, "b10": b10, "n_discordant": m}
    if m < EXACT_BELOW:
        p = 1.0 if m == 0 else min(1.0, 2.0 * float(_stats.binom.cdf(min(b01, b10), m, 0.5)))
        out.update(test="exact", statistic=None, p=p)
    else:
        stat = (abs(b01 - b10) - 1) ** 2 / m
        out.update(test="chi2_cc", statistic=stat, p=float(_stats.chi2.sf(stat, 1)))
    return out


def _values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("need a non-empty 1-D sequence of numbers")
    return arr


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[[np.ndarray], float] = np.mean,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat(values)` from `n` resamples (seeded: the same inputs give the same
    interval)."""
    arr = _values(values)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n, arr.size))
    boots = np.array([stat(arr[i]) for i in idx], dtype=float)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [tail, 1.0 - tail])
    return float(lo), float(hi)


def paired_bootstrap_diff(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    stat: Callable[[np.ndarray], float] = np.mean,
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """The difference stat(b) - stat(a) on paired samples, with a percentile interval from resampling the pairs
    together, and a two-sided bootstrap p-value (twice the share of resampled differences on the far side of 0,
    capped at 1). Returns {"diff", "ci95" [lo, hi], "p", "n"}; the interval key is "ci95" whatever `level` is."""
    x, y = _values(a), _values(b)
    if x.size != y.size:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n, x.size))
    diffs = np.array([stat(y[i]) - stat(x[i]) for i in idx], dtype=float)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(diffs, [tail, 1.0 - tail])
    diff = float(stat(y) - stat(x))
    p = 1.0 if np.all(diffs == 0) else min(1.0, 2.0 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return {"diff": diff, "ci95": [float(lo), float(hi)], "p": p, "n": int(x.size)}


def mean_sd(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(mean, sample standard deviation with ddof=1); the sd of a single value is 0.0."""
    arr = _values(values)
    if arr.size == 1:
        return float(arr[0]), 0.0
    return float(arr.mean()), float(arr.std(ddof=1))


def rate_greater(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """One-sided Fisher exact p that the rate k1/n1 exceeds k2/n2 (say, asking on the cases that should ask against
    asking on the cases that should not); None when either group is empty or neither has a hit."""
    if not (n1 and n2 and k1 + k2):
        return None
    return float(_stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="greater").pvalue)


def rate_greater_within(strata: Sequence[tuple[int, int, int, int]]) -> float | None:
    """One-sided Mantel-Haenszel test, with continuity correction, that k1/n1 exceeds k2/n2 within strata (each
    stratum (k1, n1, k2, n2), say one case category): `rate_greater` pooled over strata can come from strata that
    differ in both rates alike (a category of call_tool cases that no one asks on), which this test discounts.
    None when no stratum has both groups and a hit."""
    observed = expected = variance = 0.0
    for k1, n1, k2, n2 in strata:
        total, hits = n1 + n2, k1 + k2
        if not (n1 and n2 and hits) or hits == total:
            continue  # a stratum without variance says nothing about the difference
        observed += k1
        expected += n1 * hits / total
        variance += n1 * n2 * hits * (total - hits) / (total**2 * (total - 1))
    if variance == 0:
        return None
    return float(_stats.norm.sf((observed - expected - 0.5) / math.sqrt(variance)))
