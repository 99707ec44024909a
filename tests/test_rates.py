"""Table 1 in numbers (``flatref.rates``): first-passage times, the fits, and the quick grid end to end."""

import csv
import math

import numpy as np
import pytest

from flatref import (
    GD,
    RS,
    SA,
    DiagonalLinearNetwork,
    Example1,
    LinearRegression,
    flatness_report,
    limit_map,
    metric_at_minimum,
    run,
)
from flatref.__main__ import main
from flatref.plots import top_eigenvalue_step
from flatref.rates import (
    FULL,
    QUICK,
    Grid,
    cells,
    first_hits,
    fit,
    limit_point,
    measure,
    power_law,
    problem_of,
)


# ------------------------------------------------------------ first passage
def test_sa_on_example1_reaches_the_flat_minimum_and_every_event():
    problem = Example1()
    x0 = problem.sharp_minimum()
    hits = first_hits(problem, SA(0.05, 0.05, 0.3), x0, [0.1, 0.01, 1e-4], max_steps=20_000, rng=0)
    assert hits.status == "reached" and hits.steps < 20_000
    assert 0 < hits.to_half <= hits.to_flat[0.01]  # tr̄ 9.11 → gap halves long before the metric is 0.1
    assert hits.to_flat[0.1] <= hits.to_flat[0.01] <= hits.to_flat[1e-4]  # smaller ε: later
    assert hits.gap_start == pytest.approx(2 * (9 + 1 / 9) - 4)  # raw trace 2(x1² + x2²) against 4 at (1, 1)
    assert hits.metric_start == pytest.approx(abs(2 * 9 - 2 / 9) / math.sqrt(9 + 1 / 9))  # MATH.md closed form
    assert hits.metric_end <= 1e-2 and hits.gap_end <= hits.gap_start / 2


def test_gd_never_gets_flatter_and_the_run_is_capped():
    problem = Example1()
    hits = first_hits(problem, GD(0.05), problem.sharp_minimum(), 0.01, max_steps=500, rng=0)
    assert hits.status == "capped" and hits.steps == 500
    assert hits.to_flat == {0.01: None} and hits.to_half is None
    assert hits.gap_end == pytest.approx(hits.gap_start)


def test_a_start_that_already_meets_the_threshold_hits_at_step_0():
    problem = problem_of("network", 256)  # metric 0.037 at the sharp start: the 1/d scale of tr̄
    hits = first_hits(problem, SA(0.3, 0.05, 0.1), problem.sharp_minimum(), [0.01, 1e-4], max_steps=64, rng=0)
    assert hits.metric_start < 0.1
    assert hits.to_flat[0.01] == 0 and hits.to_flat[1e-4] is None
    assert hits.grad_norm_at_flat[0.01] < 1e-10  # the start is an exact minimum


def test_same_seed_same_hits_and_seeds_matter():
    problem = Example1()
    method, x0 = RS(0.05, 0.05, 0.3), problem.sharp_minimum()
    a, b, c = (first_hits(problem, method, x0, 0.05, max_steps=5000, rng=seed) for seed in (1, 1, 2))
    assert (a.to_flat, a.to_half, a.steps, a.gap_end, a.metric_end) == (b.to_flat, b.to_half, b.steps, b.gap_end,
                                                                         b.metric_end)  # fmt: skip
    assert np.array_equal(a.x_at_flat[0.05], b.x_at_flat[0.05])
    assert (a.to_flat, a.gap_end) != (c.to_flat, c.gap_end)


def test_gradient_steps_from_the_flat_iterate_give_definition_3_with_the_true_phi():
    """Theorem 2's finish: SA's kicks leave ‖∇f(x_t)‖ above ε, GD steps remove that and keep Φ."""
    problem = problem_of("network", 32)
    x0, eps = problem.sharp_minimum(), 0.005
    eta = top_eigenvalue_step(problem, x0)
    hits = first_hits(problem, SA(eta, 0.05, 0.1), x0, eps, max_steps=5000, rng=0)
    x_t = hits.x_at_flat[eps]
    assert hits.grad_norm_at_flat[eps] > eps  # the iterate itself is not ε-stationary
    finished = run(problem, GD(eta), x_t, steps=300).x_last
    report = flatness_report(problem, finished, eps, math.sqrt(eps))
    assert report.is_flat and report.grad_norm <= eps**2
    screened = metric_at_minimum(problem, limit_point(problem, x_t))
    assert report.metric == pytest.approx(screened, rel=0.05)


def test_first_hits_rejects_bad_input():
    problem = Example1()
    x0 = problem.sharp_minimum()
    with pytest.raises(ValueError, match="eps"):
        first_hits(problem, RS(0.05, 0.05, 0.3), x0, [0.1, 0.0], max_steps=10)
    with pytest.raises(ValueError, match="max_steps"):
        first_hits(problem, RS(0.05, 0.05, 0.3), x0, 0.1, max_steps=0)
    with pytest.raises(ValueError, match="x0"):
        first_hits(problem, RS(0.05, 0.05, 0.3), [1.0, 2.0, 3.0], 0.1, max_steps=10)
    regression = LinearRegression.random(5, 10, rng=0)
    with pytest.raises(ValueError, match="flattest minimum"):
        first_hits(regression, GD(0.1), regression.random_minimum(0), 0.1, max_steps=10)


def test_the_projection_screen_differs_from_phi_at_second_order():
    """Trace and metric at the Gauss–Newton projection and at Φ differ by O(dist²): slope 2 in s."""
    problem = DiagonalLinearNetwork.random(4, 8, sparsity=2, rng=3)
    x_star = problem.random_minimum(0)
    direction = np.random.default_rng(1).standard_normal(problem.dim)
    scales = np.array([4e-2, 2e-2, 1e-2, 5e-3])
    trace_diff, metric_diff = [], []
    for s in scales:
        x = x_star + s * direction
        screened, flowed = limit_point(problem, x), limit_map(problem, x).x
        trace_diff.append(abs(problem.trace_hess(screened) - problem.trace_hess(flowed)))
        metric_diff.append(abs(metric_at_minimum(problem, screened) - metric_at_minimum(problem, flowed)))
    for diffs in (trace_diff, metric_diff):
        assert np.polyfit(np.log(scales), np.log(diffs), 1)[0] == pytest.approx(2.0, abs=0.25)
    assert np.allclose(limit_point(Example1(), [3.0, 0.5]), Example1().exact_limit([3.0, 0.5]), rtol=0, atol=0)


# ------------------------------------------------------------ fits
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
    row = {"problem": "network", "regime": "theory", "method": "RS", "dim": dim, "eps": eps, "seed": seed}
    return row | {"eta_prime": 10 * eps, "rho": 2 * math.sqrt(eps), "steps_to_flat": steps, "steps_to_half": steps}


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


def test_grids_are_checked():
    assert FULL.seeds >= 5 and len(FULL.network_dims) >= 4 and max(FULL.network_dims) >= 200
    assert len(FULL.network_eps) >= 4 and len(FULL.example1_eps) >= 4
    with pytest.raises(ValueError, match="multiples of 8"):
        Grid((20,), (0.01,), (0.1,), seeds=1, max_steps=10)
    with pytest.raises(ValueError, match="network_eps"):
        Grid((16,), (1.5,), (0.1,), seeds=1, max_steps=10)
    with pytest.raises(ValueError, match="seeds"):
        Grid((16,), (0.01,), (0.1,), seeds=0, max_steps=10)


def test_rows_do_not_depend_on_the_number_of_processes():
    tiny = Grid((16,), (0.01,), (0.1,), seeds=1, max_steps=1500)
    serial = measure(tiny, jobs=1)
    assert len(serial) == 8  # 2 problems × 2 methods × (1 theory ε + 1 fixed threshold)
    assert measure(tiny, jobs=2) == serial


# ------------------------------------------------------------ the quick grid
@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("rates")
    assert main(["rates", "--quick", "--out", str(out)]) == 0
    with open(out / "rates.csv") as handle:
        rows = list(csv.DictReader(handle))
    return out, rows, (out / "rates.md").read_text()


def test_quick_rates_write_every_run_a_table_and_a_figure(quick):
    out, rows, table = quick
    n_eps_network, n_eps_example1 = len(QUICK.network_eps), len(QUICK.example1_eps)
    runs_per_size = 2 * QUICK.seeds * 2  # methods × seeds × (theory per ε + fixed per threshold)
    expected = runs_per_size * (n_eps_example1 + n_eps_network * len(QUICK.network_dims))
    assert len(rows) == expected
    assert (out / "rates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| network | theorems' schedules | SA | (ε, √ε)-flat |" in table and "Table 1" in table
    assert {row["status"] for row in rows} <= {"reached", "capped"}  # nothing diverged


def test_quick_rates_speedup_of_sa_over_rs_grows_like_d(quick):
    _, _, table = quick
    lines = table.split("## RS against SA")[1].split("\n## ")[0].splitlines()
    ratios = {int(line.split("|")[1]): float(line.split("|")[4]) for line in lines if line.startswith("| ") and
              line.split("|")[1].strip().isdigit()}  # fmt: skip
    dims = sorted(ratios)
    assert dims == list(QUICK.network_dims)
    assert all(ratios[a] < ratios[b] for a, b in zip(dims, dims[1:]))  # grows with d
    for d in dims:
        assert 0.7 <= ratios[d] / d <= 2.0  # Lemma 4 against Lemma 2: about d
    exponent = float(table.split("ratio ∝ d^(")[1].split()[0])
    assert 0.7 <= exponent <= 1.5


def test_quick_rates_sa_beats_rs_under_the_theorems_schedules(quick):
    _, rows, _ = quick
    medians = {}
    for row in rows:
        if row["regime"] == "theory" and row["steps_to_flat"] not in ("", "0"):
            key = (row["problem"], row["dim"], row["eps"], row["method"])
            medians.setdefault(key, []).append(int(row["steps_to_flat"]))
    pairs = [(np.median(medians[k]), np.median(medians[k[:3] + ("SA",)])) for k in medians if k[3] == "RS"]
    assert len(pairs) >= 6 and all(sa < rs for rs, sa in pairs)


def test_rates_command_rejects_a_bad_job_count(capsys):
    assert main(["rates", "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
