"""Interval estimates and paired tests, against numbers worked out by hand from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from toolprior.evals.statistics import bootstrap_ci, mcnemar, mean_sd, paired_bootstrap_diff, wilson_interval

Z = 1.959963984540054


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval written out: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    z2 = Z**2
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n**2)) / (1 + z2 / n)
    return max(0.0, center - half), min(1.0, center + half)


@pytest.mark.parametrize(
    ("k", "n", "approx"),
    [(7, 10, (0.3968, 0.8922)), (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)), (1, 5, (0.0362, 0.6245))],
)
def test_wilson_matches_the_formula(k, n, approx):
    lo, hi = wilson_interval(k, n)
    want = wilson_by_hand(k, n)
    assert lo == pytest.approx(want[0], abs=1e-12)
    assert hi == pytest.approx(want[1], abs=1e-12)
    assert (round(lo, 4), round(hi, 4)) == approx


def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, _hi = wilson_interval(0, 10)
    assert lo == 0.0  # z²/2n over (1+z²/n) minus the same half-width: exactly 0
    assert wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(-1, 10)


def paired(b01: int, b10: int, both: int = 5, neither: int = 3) -> tuple[list[bool], list[bool]]:
    """Correctness lists with b01 cases a wrong / b right, b10 cases a right / b wrong, plus concordant ones."""
    a = [False] * b01 + [True] * b10 + [True] * both + [False] * neither
    b = [True] * b01 + [False] * b10 + [True] * both + [False] * neither
    return a, b


def test_mcnemar_exact():
    a, b = paired(1, 9)
    out = mcnemar(a, b)
    # p = 2 * sum_{i<=1} C(10, i) / 2^10 = 2 * (1 + 10) / 1024
    assert out["test"] == "exact"
    assert (out["b01"], out["b10"], out["n_discordant"], out["n"]) == (1, 9, 10, 18)
    assert out["p"] == pytest.approx(22 / 1024, abs=1e-12)
    assert mcnemar(b, a)["p"] == pytest.approx(22 / 1024, abs=1e-12)  # symmetric


def test_mcnemar_exact_balanced_is_capped_at_one():
    a, b = paired(3, 3)
    # 2 * P[X <= 3], X ~ Bin(6, 1/2) = 2 * (1 + 6 + 15 + 20) / 64 = 84/64 -> capped at 1
    assert mcnemar(a, b)["p"] == 1.0


def test_mcnemar_chi_square_branch():
    a, b = paired(10, 30)
    out = mcnemar(a, b)
    stat = (abs(10 - 30) - 1) ** 2 / 40  # 9.025
    assert out["test"] == "chi2_cc"
    assert out["statistic"] == pytest.approx(9.025)
    # the chi-square survival function with 1 degree of freedom is erfc(sqrt(x / 2))
    assert out["p"] == pytest.approx(math.erfc(math.sqrt(stat / 2)), rel=1e-9)
    assert out["p"] == pytest.approx(0.002663, abs=1e-5)


def test_mcnemar_switches_at_25():
    assert mcnemar(*paired(12, 12))["test"] == "exact"
    assert mcnemar(*paired(12, 13))["test"] == "chi2_cc"


def test_mcnemar_no_discordant_and_bad_input():
    out = mcnemar([True, False], [True, False])
    assert out["p"] == 1.0 and out["n_discordant"] == 0
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_bootstrap_ci_is_seeded_and_sensible():
    values = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    a = bootstrap_ci(values, n=500, seed=3)
    assert a == bootstrap_ci(values, n=500, seed=3)
    assert a[0] <= 0.7 <= a[1]
    assert 0.0 <= a[0] < a[1] <= 1.0
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    lo, hi = bootstrap_ci(values, stat=np.median, n=200)
    assert 0.0 <= lo <= hi <= 1.0
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_paired_bootstrap_diff():
    same = paired_bootstrap_diff([0, 1, 1, 0], [0, 1, 1, 0], n=200)
    assert same["diff"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["p"] == 1.0
    better = paired_bootstrap_diff([0] * 8, [1] * 8, n=200)
    assert better["diff"] == 1.0 and better["ci95"] == [1.0, 1.0] and better["p"] == 0.0 and better["n"] == 8
    a = [1, 0, 0, 1, 0, 1, 0, 0, 1, 0]
    b = [1, 1, 0, 1, 1, 1, 0, 1, 1, 0]
    out = paired_bootstrap_diff(a, b, n=1000, seed=1)
    assert out["diff"] == pytest.approx(0.3)  # 7/10 - 4/10
    assert out["ci95"][0] <= 0.3 <= out["ci95"][1]
    assert out == paired_bootstrap_diff(a, b, n=1000, seed=1)
    with pytest.raises(ValueError):
        paired_bootstrap_diff([1, 0], [1])


def test_mean_sd():
    mean, sd = mean_sd([2, 4, 4, 4, 5, 5, 7, 9])
    # deviations from 5: -3 -1 -1 -1 0 0 2 4 -> squares sum to 32; ddof=1 -> 32/7
    assert mean == 5.0
    assert sd == pytest.approx(math.sqrt(32 / 7))
    assert mean_sd([0.42]) == (0.42, 0.0)
    with pytest.raises(ValueError):
        mean_sd([])


def test_rate_greater_within_one_stratum_is_the_mantel_haenszel_chi_square():
    from scipy.stats import chi2_contingency, norm

    from toolprior.evals.statistics import rate_greater_within

    k1, n1, k2, n2 = 9, 12, 5, 30
    table = [[k1, n1 - k1], [k2, n2 - k2]]
    # the Mantel-Haenszel chi-square of one table is Pearson's times (N - 1) / N; here without the 0.5 correction
    # on either side, compared through the corrected one-sided p's z: z = (O - E - 0.5) / sqrt(V)
    total, hits = n1 + n2, k1 + k2
    observed_minus_expected = k1 - n1 * hits / total
    pearson = chi2_contingency(table, correction=False).statistic
    variance = observed_minus_expected**2 / (pearson * (total - 1) / total)
    z = (observed_minus_expected - 0.5) / math.sqrt(variance)
    assert rate_greater_within([(k1, n1, k2, n2)]) == pytest.approx(norm.sf(z), rel=1e-9)


def test_rate_greater_within_discounts_a_stratum_where_both_rates_differ_alike():
    from toolprior.evals.statistics import rate_greater, rate_greater_within

    # stratum A: asks on 9 of 10 of each group; stratum B (only the second group): never asks
    strata = [(9, 10, 9, 10), (0, 0, 0, 20)]
    pooled = rate_greater(9, 10, 9, 30)
    assert pooled < 0.01  # pooled over categories, it looks like asking where it should
    assert rate_greater_within(strata) > 0.5  # within category it asks alike
    assert rate_greater_within([(0, 5, 0, 5), (3, 0, 2, 4)]) is None  # no stratum with both groups and a hit
