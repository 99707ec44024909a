"""Cells, power-law fits and the speed-up (``flatref.experiments.stats``)."""

import math

import numpy as np
import pytest

from flatref.experiments.stats import cells, fit, power_law
from flatref.experiments.sweeps import Row


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


def _row(seed, steps, dim=16, eps=0.01):
    """A row of RS under the network's schedule, ``η′ = 10ε``, ``ρ = 2√ε``."""
    return Row("network", dim, "theory", "RS", eps, seed, 1.0, 10 * eps, 2 * math.sqrt(eps), steps, None, steps,
               0, 0, "reached", 1.0, 0.5, 1.0, 0.1)  # fmt: skip


def test_cells_count_unreached_runs_as_infinite_and_fit_sets_them_aside():
    rows = [_row(0, 100), _row(1, None), _row(2, 300)]  # median 300: two of three reached
    rows += [_row(s, None, eps=0.005) for s in range(2)] + [_row(2, 50, eps=0.005)]  # median inf
    rows += [_row(s, 0, eps=0.0025) for s in range(3)]  # the start is already flat
    rows += [_row(s, 700 + s, dim=32) for s in range(3)] + [_row(s, 4000 + s, dim=32, eps=0.005) for s in range(3)]
    by_key = {(c.dim, c.eps): c for c in cells(rows, "flat")}
    assert (by_key[16, 0.01].median, by_key[16, 0.01].low, by_key[16, 0.01].high) == (300, 100, math.inf)
    assert by_key[16, 0.005].median == math.inf and by_key[16, 0.0025].median == 0
    result = fit(list(by_key.values()))
    assert (result.used, result.at_start, result.censored) == (3, 1, 1)
    assert result.table1 == (-3.0, 0.0) and result.leading_order == pytest.approx(-2.0)  # 1/(η′ρ²) = 1/(40ε²)
    with pytest.raises(ValueError, match="event"):
        cells(rows, "flatter")
