"""Cells, power-law fits and the speed-up (``flatref.experiments.stats``)."""

import math

import numpy as np
import pytest

from flatref.experiments.stats import _example_row, cells, fit, power_law, speedup


def test_power_law_recovers_exact_exponents_and_its_interval_covers_noisy_ones():
    eps = np.array([0.1, 0.05, 0.1, 0.05, 0.025, 0.025])
    d = np.array([16, 16, 64, 64, 16, 64])
    exact = power_law({"eps": eps, "d": d}, 3.0 * eps**-2.0 * d**-1.0)
    assert exact["eps"][0] == pytest.approx(-2.0) and exact["d"][0] == pytest.approx(-1.0)
    assert exact["eps"][1] < 1e-10
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(200):
        noisy = power_law({"eps": eps, "d": d}, 3.0 * eps**-2.0 * d**-1.0 * np.exp(0.1 * rng.standard_normal(6)))
        covered += abs(noisy["eps"][0] + 2.0) <= noisy["eps"][1]
    assert 0.88 <= covered / 200 <= 1.0  # a 95% interval: 190 ± 3σ = 190 ± 9 of 200
    assert power_law({"eps": [0.1, 0.01]}, [10.0, 1000.0]) == {"eps": (pytest.approx(-2.0), None)}  # no residual dof
    with pytest.raises(ValueError, match="at least 2 points"):
        power_law({"eps": [0.1]}, [3.0])
    with pytest.raises(ValueError, match="rank deficient"):
        power_law({"eps": [0.1, 0.1, 0.1]}, [1.0, 2.0, 3.0])


def _row(seed, steps, eps=0.01, half=None, **options):
    """A row of a network run with ``η′ = 10ε``, ``ρ = 2√ε`` that halves the gap at ``half`` (default: ``steps``)."""
    return _example_row(seed, eps, steps, half=steps if half is None else half, **options)


def test_cells_count_unreached_runs_as_infinite_and_fit_sets_them_aside():
    rows = [_row(0, 100), _row(1, None), _row(2, 300)]  # median 300: two of three reached
    rows += [_row(s, None, eps=0.005) for s in range(2)] + [_row(2, 50, eps=0.005)]  # median inf
    rows += [_row(s, 0, eps=0.0025) for s in range(3)]  # the start already meets the threshold
    rows += [_row(s, 700 + s, dim=32) for s in range(3)] + [_row(s, 4000 + s, dim=32, eps=0.005) for s in range(3)]
    rows += [_row(s, 5, dim=32, eps=0.09, metric_start=0.5) for s in range(3)]  # start at 0.5/0.3 ≤ 2× the threshold
    by_key = {(c.dim, c.eps): c for c in cells(rows, "metric")}
    assert (by_key[16, 0.01].median, by_key[16, 0.01].low, by_key[16, 0.01].high) == (300, 100, math.inf)
    assert by_key[16, 0.005].median == math.inf and by_key[16, 0.0025].median == 0
    assert by_key[32, 0.09].near and not by_key[32, 0.01].near and by_key[32, 0.09].start_ratio == pytest.approx(5 / 3)
    result = fit(list(by_key.values()))
    assert (result.used, result.near, result.at_start, result.censored) == (3, 1, 1, 1)
    assert result.table1 == (-3.0, 0.0) and result.leading_order == pytest.approx(-2.0)  # 1/(η′ρ²) = 1/(40ε²)
    with pytest.raises(ValueError, match="event"):
        cells(rows, "flat")


def test_instances_pool_into_the_fit_and_widen_its_interval():
    """Each instance is its own cell; a spread between instances' levels shows in the d interval, not in the
    estimates, and leaves the within-instance ε slope exact."""
    eps_grid, dims = (0.01, 0.005, 0.0025), (16, 32, 64)
    scale = {0: 1.0, 1: 1.3, 2: 0.8}  # instance-to-instance factors on the steps
    rows = [_row(0, round(scale[k] * 10 * e**-3 * d**-0.5), dim=d, eps=e, instance=k)
            for d in dims for e in eps_grid for k in scale]  # fmt: skip
    result = fit(cells(rows, "metric"))
    assert result.used == 27
    (a, a_half), (b, b_half) = result.exponents["eps"], result.exponents["d"]
    assert a == pytest.approx(-3.0, abs=1e-4) and a_half < 1e-3  # the same ε slope in every instance
    assert b == pytest.approx(-0.5, abs=0.01)  # balanced design: the instance factors average out
    single = fit(cells([r for r in rows if r.instance == 0], "metric"))
    assert single.exponents["d"][1] < 1e-3 < b_half  # one instance: exact; three: their spread is in the interval


def test_left_out_reports_the_largest_change_and_what_caused_it():
    eps_grid, dims = (0.01, 0.005, 0.0025), (16, 32, 64, 128)
    rows = [_row(0, round(10 * e**-3 * d**-1.0 * (8.0 if d == 128 else 1.0)), dim=d, eps=e, instance=k)
            for d in dims for e in eps_grid for k in (0, 1)]  # fmt: skip   # d = 128 is 8× slow
    result = fit(cells(rows, "metric"))
    change, what = result.left_out["d"]
    without = fit(cells([r for r in rows if r.dim != 128], "metric"))
    assert what == "d = 128" and change == pytest.approx(abs(result.exponents["d"][0] - without.exponents["d"][0]))
    assert without.exponents["d"][0] == pytest.approx(-1.0, abs=1e-3)  # the rest is exact
    assert result.left_out["eps"][0] < 1e-3  # every subset has the same ε exponent


def test_speedup_pools_instances():
    rows = [_row(s, None, dim=d, regime="fixed", method=m, instance=k, half=(100 * d * (1 + k) if m == "RS" else 100))
            for m in ("RS", "SA") for d in (16, 32, 64) for k in (0, 1, 2) for s in (0, 1)]  # fmt: skip
    result = speedup(rows)
    assert result.dims == (16, 32, 64) and result.ratio == pytest.approx((32.0, 64.0, 128.0))  # medians: k = 1
    assert result.exponent[0] == pytest.approx(1.0) and result.exponent[1] > 0.1  # the instances' factor 1–3


def test_the_eps_interval_is_clustered_by_instance_and_covers_slopes_that_differ():
    """Instances whose ε slopes differ (−3 ± 0.2): the pooled slope is their mean, and its interval, clustered by
    instance, is of the order of their spread; residuals within an instance alone would give an interval of ~0."""
    slope = {0: -2.8, 1: -3.0, 2: -3.2}
    rows = [_row(0, round(10 * e ** slope[k] * d**-0.5), dim=d, eps=e, instance=k)
            for d in (16, 32, 64) for e in (0.01, 0.005, 0.0025) for k in slope]  # fmt: skip
    (a, half) = fit(cells(rows, "metric")).exponents["eps"]
    assert a == pytest.approx(-3.0, abs=1e-3)
    assert 0.05 < half < 0.5  # t(8) · s.e. of a mean of nine slopes from {−2.8, −3, −3.2}: 2.31 · 0.058 ≈ 0.13
