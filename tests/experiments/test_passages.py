"""First-passage times (``flatref.experiments.passages``): the measurement behind Table 1 in numbers."""

import math

import numpy as np
import pytest

from flatref import GD, RS, SA, DiagonalLinearNetwork, Example1, LinearRegression, flatness_report, run
from flatref import metric_at_minimum
from flatref.errors import LimitMapError
from flatref.experiments.passages import first_hits, gradient_finish, screen_limit, screening_steps
from flatref.experiments.registry import network_of_dim
from flatref.spectrum import top_eigenvalue_step


def test_sa_on_example1_reaches_the_flat_minimum_and_every_event():
    problem = Example1()
    x0 = problem.sharp_minimum()
    hits = first_hits(problem, SA(0.05, 0.05, 0.3), x0, [0.1, 0.01, 1e-4], max_steps=20_000, rng=0)
    assert hits.status == "reached" and hits.steps < 20_000
    assert 0 < hits.to_half <= hits.to_metric[0.01]  # tr̄ 9.11 → gap halves long before the metric is 0.1
    assert hits.to_metric[0.1] <= hits.to_metric[0.01] <= hits.to_metric[1e-4]  # smaller ε: later
    assert hits.gap_start == pytest.approx(2 * (9 + 1 / 9) - 4)  # raw trace 2(x1² + x2²) against 4 at (1, 1)
    assert hits.metric_start == pytest.approx(abs(2 * 9 - 2 / 9) / math.sqrt(9 + 1 / 9))  # docs/theory.md §2.4
    assert hits.metric_end <= 1e-2 and hits.gap_end <= hits.gap_start / 2


def test_gd_never_gets_flatter_and_the_run_is_capped():
    problem = Example1()
    hits = first_hits(problem, GD(0.05), problem.sharp_minimum(), 0.01, max_steps=500, rng=0)
    assert hits.status == "capped" and hits.steps == 500
    assert hits.to_metric == {0.01: None} and hits.to_half is None
    assert hits.gap_end == pytest.approx(hits.gap_start)


def test_a_start_that_already_meets_the_threshold_hits_at_step_0():
    problem = network_of_dim(256)  # metric 0.037 at the sharp start: the 1/d scale of tr̄
    hits = first_hits(problem, SA(0.3, 0.05, 0.1), problem.sharp_minimum(), [0.01, 1e-4], max_steps=64, rng=0)
    assert hits.metric_start < 0.1
    assert hits.to_metric[0.01] == 0 and hits.to_metric[1e-4] is None
    assert hits.grad_norm_at_metric[0.01] < 1e-10  # the start is an exact minimum


def test_same_seed_same_hits_and_seeds_matter():
    problem = Example1()
    method, x0 = RS(0.05, 0.05, 0.3), problem.sharp_minimum()
    a, b, c = (first_hits(problem, method, x0, 0.05, max_steps=5000, rng=seed) for seed in (1, 1, 2))
    assert (a.to_metric, a.to_half, a.steps, a.gap_end, a.metric_end) == (b.to_metric, b.to_half, b.steps, b.gap_end,
                                                                         b.metric_end)  # fmt: skip
    assert np.array_equal(a.x_at_metric[0.05], b.x_at_metric[0.05])
    assert (a.to_metric, a.gap_end) != (c.to_metric, c.gap_end)


def test_gradient_steps_from_the_flat_iterate_give_definition_3_with_the_true_phi():
    """Theorem 2's finish: SA's kicks leave ‖∇f(x_t)‖ above ε, GD steps remove that and keep Φ."""
    problem = network_of_dim(32)
    x0, eps = problem.sharp_minimum(), 0.005
    eta = top_eigenvalue_step(problem, x0)
    hits = first_hits(problem, SA(eta, 0.05, 0.1), x0, eps, max_steps=5000, rng=0)
    x_t, finish = hits.x_at_metric[eps], hits.finish[eps]
    assert hits.grad_norm_at_metric[eps] > eps  # the iterate itself is not ε-stationary
    assert finish.steps > 0 and finish.grad_norm <= eps and finish.definition3
    # the same finish by the driver's GD, then Definition 3 with the true Φ (a flow, not the projection)
    by_driver = run(problem, GD(eta), x_t, steps=finish.steps).x_last
    report = flatness_report(problem, by_driver, eps, math.sqrt(eps))
    assert report.is_flat and report.grad_norm == pytest.approx(finish.grad_norm, rel=1e-9)
    assert report.metric == pytest.approx(finish.metric, rel=1e-4)  # projection vs flow: O(dist²), 2e-5 measured
    screened = metric_at_minimum(problem, screen_limit(problem, x_t))
    assert report.metric == pytest.approx(screened, rel=0.05)  # the finish moves Φ only at second order


def test_gradient_finish_stops_at_eps_and_reports_a_cap():
    problem = Example1()
    x = np.array([1.2, 1.0])  # ∇f = 2s(x2, x1), s = 0.2: ‖∇f‖ ≈ 0.62
    finish = gradient_finish(problem, x, 1e-6, 0.05)
    assert finish.grad_norm <= 1e-6 < np.linalg.norm(problem.grad(run(problem, GD(0.05), x, steps=finish.steps - 1)
                                                                     .x_last))  # fmt: skip
    # The flow keeps x1² − x2² = 0.44, so Φ(1.2, 1) = (a, 1/a) with a² − a⁻² = 0.44 and a² + a⁻² = √(0.44² + 4); the
    # metric there is 2|a² − a⁻²|/√(a² + a⁻²) ≈ 0.615 (docs/theory.md §2.4). GD steps of 0.05 from ‖∇f‖ ≈ 0.6 move
    # Φ by O(η²‖∇f‖²) ≈ 1e-3: hence the tolerance.
    assert finish.metric == pytest.approx(2 * 0.44 / (0.44**2 + 4) ** 0.25, rel=3e-3) and not finish.definition3
    capped = gradient_finish(problem, x, 1e-6, 0.05, max_steps=3)
    assert capped.steps is None and capped.grad_norm > 1e-6 and not capped.definition3
    with pytest.raises(ValueError, match="eta"):
        gradient_finish(problem, x, 1e-6, -0.05)
    with pytest.raises(ValueError, match="x"):
        gradient_finish(problem, [1.0], 1e-6, 0.05)


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


def test_the_projection_differs_from_phi_at_second_order():
    """Trace and metric at the Gauss–Newton projection (the screen where Φ is not known in closed form) and at Φ
    differ by O(dist²): slope 2 in s."""
    problem = DiagonalLinearNetwork.random(4, 8, sparsity=2, rng=3)
    x_star = problem.random_minimum(0)
    direction = np.random.default_rng(1).standard_normal(problem.dim)
    scales = np.array([4e-2, 2e-2, 1e-2, 5e-3])
    trace_diff, metric_diff = [], []
    for s in scales:
        x = x_star + s * direction
        projected, exact = problem.project_to_minima(x), problem.exact_limit(x)
        trace_diff.append(abs(problem.trace_hess(projected) - problem.trace_hess(exact)))
        metric_diff.append(abs(metric_at_minimum(problem, projected) - metric_at_minimum(problem, exact)))
    for diffs in (trace_diff, metric_diff):
        assert np.polyfit(np.log(scales), np.log(diffs), 1)[0] == pytest.approx(2.0, abs=0.25)
    for known, x in ((Example1(), [3.0, 0.5]), (problem, x_star + 0.3 * direction)):  # the screen is Φ where known
        assert np.array_equal(screen_limit(known, x), known.exact_limit(x))
    stuck = DiagonalLinearNetwork([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], [1.0, 2.0])  # only w_0 can move: no interpolant
    with pytest.raises(LimitMapError):
        screen_limit(stuck, [1.0, 0.0, 0.0, 0.5, 0.0, 0.0])


def test_screening_steps_grow_by_chunks_and_end_at_the_cap():
    steps = screening_steps(1000)
    assert steps[:4] == [4, 8, 12, 16] and 64 in steps and steps[-1] == 1000
    assert steps == sorted(set(steps))
    late = np.array(screening_steps(250_000))
    gaps = (np.diff(late) / late[1:])[late[1:] > 5000]
    # A chunk is 1/4 of the steps before it (growth 1.25) and is screened 16 times: 1/64 of t.
    assert gaps.max() <= 1.05 / 64


def test_a_run_stops_once_every_event_is_reached():
    problem = Example1()
    hits = first_hits(problem, SA(0.05, 0.05, 0.3), problem.sharp_minimum(), 0.1, max_steps=50_000, rng=0)
    assert hits.status == "reached" and hits.success
    assert hits.steps == max(hits.to_metric[0.1], hits.to_half)  # stopped at the last event, not at the cap


def test_throw_raises_on_a_capped_run_and_the_schedule_is_checked():
    from flatref import StatusError

    problem = Example1()
    with pytest.raises(StatusError, match="capped") as info:
        first_hits(problem, GD(0.05), problem.sharp_minimum(), 0.01, max_steps=100, throw=True)
    assert info.value.result.steps == 100 and not info.value.result.success
    with pytest.raises(ValueError, match="growth"):
        screening_steps(100, growth=0.5)
    with pytest.raises(ValueError, match="records"):
        screening_steps(100, records=0)
    coarse = first_hits(problem, SA(0.05, 0.05, 0.3), problem.sharp_minimum(), 0.1, max_steps=5000, records=2)
    fine = first_hits(problem, SA(0.05, 0.05, 0.3), problem.sharp_minimum(), 0.1, max_steps=5000)
    assert coarse.to_metric[0.1] in screening_steps(5000, records=2)  # hits are seen at the schedule's screens
    assert fine.to_metric[0.1] in screening_steps(5000)
    assert coarse.to_metric[0.1] != fine.to_metric[0.1]  # the schedule is passed through


def test_a_run_whose_limit_stops_being_a_minimum_reports_it_instead_of_raising():
    problem = network_of_dim(16)
    x0 = problem.sharp_minimum()
    eta = top_eigenvalue_step(problem, x0)
    hits = first_hits(problem, RS(5 * eta, 0.05, 0.1), x0, 0.01, max_steps=400)  # η = 5/λ_max: GD is unstable
    # The run is chaotic, so where it fails depends on the machine's rounding. On one machine, at ‖x_8‖ ≈ 3e3 the
    # flow is stiff: DOP853 stalls, BDF takes over and reaches ‖∇f‖ = 1.7e-8, just above refine·gtol, where it
    # stalls too and the finish is rejected: Φ(x_8) is unknown ('stalled'). On another the iterates overflow at
    # step 9 ('diverged'). Either way the failure is the result's status, not an exception.
    assert hits.status in ("stalled", "diverged") and not hits.success and hits.steps < 400
    expected = {"stalled": "the flow stopped making progress", "diverged": "the iterates blew up"}[hits.status]
    assert hits.message.startswith(expected)
