"""tr̄, the stationarity metric and Definition 3 against closed forms on constructed points."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flatref import (
    LimitMapError,
    flatness_along,
    project_tangent,
    flatness_report,
    grad_tr_bar,
    metric_at_minimum,
    stationarity_metric,
    tr_bar,
    trace_curvature,
)
from flatref.errors import FlatrefError
from flatref.flatness import tangent_part
from flatref.flow import exponential_flow, linear_part
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing
from flatref.testing import check_derivatives, points

from ellipse import Ellipse, Ellipsoid

EX1 = Example1()


@given(points(EX1, scale=10.0))
def test_example1_normalized_trace_and_its_gradient(x):
    assert tr_bar(EX1, x) == pytest.approx(x @ x, rel=1e-15, abs=1e-300)
    np.testing.assert_allclose(grad_tr_bar(EX1, x), 2 * x, rtol=1e-15)


def example1_metric(t):
    """On the hyperbola (t, 1/t): tr̄ = t² + 1/t², tangent (t, −1/t), so the metric is |2t² − 2/t²| / √(t² + 1/t²)."""
    return abs(2 * t**2 - 2 / t**2) / np.sqrt(t**2 + 1 / t**2)


@given(st.floats(0.05, 20.0), st.sampled_from([-1.0, 1.0]))
def test_example1_metric_is_the_riemannian_gradient_of_the_trace_on_the_hyperbola(t, sign):
    x_star = sign * np.array([t, 1 / t])
    assert metric_at_minimum(EX1, x_star) == pytest.approx(example1_metric(t), rel=1e-9, abs=1e-13)


@given(st.floats(0.05, 20.0))
def test_example1_metric_vanishes_only_at_the_flat_minima(t):
    assume(abs(t - 1) > 1e-3)
    # Away from t = 1 the metric is at least |2t² − 2/t²|/√(t² + 1/t²) ≥ 2.8e-3 here.
    assert metric_at_minimum(EX1, [t, 1 / t]) > 2e-3
    for x_star in EX1.flat_minima():
        assert metric_at_minimum(EX1, x_star) < 1e-14


def test_stationarity_metric_runs_the_flow_first():
    x = np.array([2.5, 0.1])  # off the hyperbola: the metric is taken at Φ(x)
    t = EX1.exact_limit(x)[0]
    assert stationarity_metric(EX1, x) == pytest.approx(example1_metric(t), rel=1e-7)
    with pytest.raises(LimitMapError, match="saddle"):
        stationarity_metric(EX1, [1.0, -1.0])


def test_linear_regression_minima_are_all_flat():
    problem = LinearRegression.random(3, 7, rng=0)
    x = np.random.default_rng(1).standard_normal(7)
    report = flatness_report(problem, x, eps=10.0, eps_prime=1e-12)
    assert report.metric == 0.0 and report.is_flat
    assert report.trace_gap is None  # LinearRegression does not name its flat minima


# ------------------------------------------------------------- Definition 3
@pytest.mark.parametrize(
    "x, eps, eps_prime, flat",
    [
        ((1.0, 1.0), 0.0, 1e-12, True),  # a flat local minimum is (0, 0)-flat up to rounding
        ((-1.0, -1.0), 0.0, 1e-12, True),
        ((3.0, 1 / 3), 1.0, 1.0, False),  # a minimum, but the trace still falls along X*
        ((3.0, 1 / 3), 1.0, 6.0, True),  # ... unless ε′ exceeds its metric, 5.89
        ((1.05, 0.95), 5e-3, 0.3, False),  # ‖∇f‖ = 0.00708 > ε (the metric 0.282 passes)
        ((1.05, 0.95), 1e-2, 0.2, False),  # the metric 0.282 > ε′ (the gradient passes)
        ((1.05, 0.95), 1e-2, 0.3, True),
        ((1.0, -1.0), 1e3, 1e3, False),  # the flow ends at a saddle: never flat
    ],
)
def test_definition3_classifies_constructed_points(x, eps, eps_prime, flat):
    assert flatness_report(EX1, x, eps, eps_prime).is_flat is flat


def test_report_fields_match_their_definitions():
    x = np.array([1.05, 0.95])
    report = flatness_report(EX1, x, 1e-2, 1e-2)
    x_star = EX1.exact_limit(x)
    assert report.grad_norm == pytest.approx(np.linalg.norm(EX1.grad(x)), rel=1e-15)
    np.testing.assert_allclose(report.x_star, x_star, atol=1e-9)
    assert report.metric == pytest.approx(example1_metric(x_star[0]), rel=1e-6)
    assert report.tr_bar_star == pytest.approx(x_star @ x_star, rel=1e-9)
    assert report.trace_star == pytest.approx(2 * x_star @ x_star, rel=1e-9)
    assert report.trace_gap == pytest.approx(2 * x_star @ x_star - 4.0, rel=1e-6)
    assert report.limit.success and "is_flat=False" in repr(report) and "status=converged" in repr(report)


def test_a_report_without_a_limit_has_no_limit_values():
    report = flatness_report(EX1, [2.0, -2.0], 1.0, 1.0)
    assert report.limit.status == "saddle"
    assert (report.x_star, report.metric, report.tr_bar_star, report.trace_star, report.trace_gap) == (None,) * 5
    assert not report.is_flat and "metric=None" in repr(report)


def test_diagonal_network_sharp_and_flattest_minima():
    problem = DiagonalLinearNetwork.random(20, 40, sparsity=2, rng=0)
    sharp = flatness_report(problem, problem.sharp_minimum(), 1e-6, 1e-3)
    (flattest,) = problem.flat_minima()
    flat = flatness_report(problem, flattest, 1e-6, 1e-3)
    assert not sharp.is_flat and sharp.metric > 1e-2 and sharp.trace_gap > 1.0
    assert flat.is_flat and flat.trace_gap == pytest.approx(0.0, abs=1e-9) and flat.metric < 1e-10
    # tr̄ divides by d = 80: the raw trace gap is the readable number (docs/theory.md §6).
    assert sharp.tr_bar_star == pytest.approx(sharp.trace_star / problem.dim)


def test_bad_tolerances_are_named():
    with pytest.raises(ValueError, match="eps must be non-negative"):
        flatness_report(EX1, [1.0, 1.0], -1.0, 1.0)
    with pytest.raises(ValueError, match="eps_prime must be non-negative"):
        flatness_report(EX1, [1.0, 1.0], 1.0, np.inf)
    with pytest.raises(TypeError, match="eps must be a real number"):
        flatness_report(EX1, [1.0, 1.0], "small", 1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(2,\)"):
        flatness_report(EX1, [1.0], 1.0, 1.0)


def test_flatness_along_a_run_matches_pointwise_reports():
    from flatref import SA, flatness_along, run

    trajectory = run(EX1, SA(0.05, 0.05, 0.3), EX1.sharp_minimum(), steps=300, rng=0, record_every=100)
    cold = flatness_along(EX1, trajectory, warm=False)
    path = flatness_along(EX1, trajectory)
    np.testing.assert_array_equal(path.steps, [0, 100, 200, 300])
    assert path.status == cold.status == ("converged",) * 4
    for k, x in enumerate(trajectory.xs):
        report = flatness_report(EX1, x, 1.0, 1.0)
        assert cold.tr_bar[k] == pytest.approx(report.tr_bar_star, rel=1e-12)  # the cold path is flatness_report's
        assert cold.metric[k] == pytest.approx(report.metric, rel=1e-9, abs=1e-12)
        assert cold.trace_gap[k] == pytest.approx(report.trace_gap, rel=1e-9, abs=1e-12)
        # the warm path: within the exponential flow's tolerance (see test_warm_and_cold_limits_agree_along_runs)
        assert path.tr_bar[k] == pytest.approx(report.tr_bar_star, rel=1e-8)
        assert path.metric[k] == pytest.approx(report.metric, abs=1e-8 * np.linalg.norm(grad_tr_bar(EX1, x)))
    assert path.trace_gap[-1] < path.trace_gap[0]  # SA flattens
    from_array = flatness_along(EX1, trajectory.xs)
    np.testing.assert_array_equal(from_array.steps, np.arange(4))
    np.testing.assert_array_equal(from_array.tr_bar, path.tr_bar)
    with pytest.raises(ValueError, match="trajectory must hold points of length 2"):
        flatness_along(EX1, np.ones((3, 5)))


# ------------------------------------------------------------------ warm starts along a run (issue 12)
def sa_run(problem, eta_prime, rho, steps, record_every=1):
    """SA from the sharp minimum plus 1e-3 noise, at η = 1/λ_max there (recipes.near_sharp_minimum)."""
    from flatref import SA, run
    from flatref.experiments.recipes import near_sharp_minimum

    start, eta = near_sharp_minimum(problem)
    return run(problem, SA(eta, eta_prime, rho), start, steps=steps, rng=0, record_every=record_every)


WARM_CASES = {  # problem, SA's (η′, ρ), steps, and the distance of the iterates to X* (measured)
    "network": (lambda: DiagonalLinearNetwork.random(20, 40, sparsity=2, rng=0), (1e-3, 1e-2), 24),  # 4e-4
    "sensing": (lambda: MatrixSensing.random(8, 3, 1, 12, rng=0), (1e-3, 1e-2), 24),  # 7e-4
    "example1": (Example1, (0.05, 0.3), 40),  # from 0.5 at the first kick down to 1e-6
}


@pytest.mark.parametrize("case", list(WARM_CASES))
def test_warm_and_cold_limits_agree_along_runs(case):
    # The warm flow holds each step's error estimate below atol + rtol·|x| (rtol = 1e-9, atol = 1e-12, as the
    # cold flow's solve_ivp), and errors along X* add up over its few steps: measured at most 2.4e-10 of |x*| on
    # d = 1000 networks and sensing (benchmarks/flatness_along.py) and 2.1e-10 on Example 1 (against its closed
    # form; the cold path: 1e-12). The cold path's own finish is accurate to about 1e-10 (limit_map). So 1e-8.
    factory, (eta_prime, rho), steps = WARM_CASES[case]
    problem = factory()
    trajectory = sa_run(problem, eta_prime, rho, steps) if case != "example1" else None
    if case == "example1":
        from flatref import SA, run

        trajectory = run(problem, SA(0.05, eta_prime, rho), problem.sharp_minimum(), steps=steps, rng=0)
    warm, cold = flatness_along(problem, trajectory), flatness_along(problem, trajectory, warm=False)
    assert warm.status == cold.status and warm.success
    scale = 1.0 + np.max(np.abs(cold.x_star))
    np.testing.assert_allclose(warm.x_star, cold.x_star, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(warm.trace, cold.trace, rtol=1e-8)
    # the metric is a norm of ∇tr̄ projected: its error is that of the point times the scale of ∇tr̄
    gradient = np.max([np.linalg.norm(grad_tr_bar(problem, x)) for x in cold.x_star])
    np.testing.assert_allclose(warm.metric, cold.metric, rtol=0, atol=1e-8 * gradient)
    warmed = [limit.message for limit in warm.limits if "warm start" in limit.message]
    assert len(warmed) >= len(trajectory.xs) // 2  # the warm path was taken (points already at X* need no flow)
    if case == "example1":
        exact = np.array([problem.exact_limit(x) for x in trajectory.xs])
        np.testing.assert_allclose(warm.x_star, exact, rtol=0, atol=1e-8 * scale)


def test_warm_path_is_reproducible_and_cheaper_in_gradients():
    problem = DiagonalLinearNetwork.random(20, 40, sparsity=2, rng=0)
    trajectory = sa_run(problem, 1e-3, 1e-2, 24)
    first, second = flatness_along(problem, trajectory), flatness_along(problem, trajectory)
    np.testing.assert_array_equal(first.x_star, second.x_star)  # no randomness: the same bits
    cold = flatness_along(problem, trajectory, warm=False)
    warm_grads = sum(limit.n_grad for limit in first.limits[1:])
    cold_grads = sum(limit.n_grad for limit in cold.limits[1:])
    assert warm_grads < cold_grads / 2  # measured 0.3 here; at d = 1000, 0.28 (benchmarks/flatness_along.py)


def test_the_warm_path_reports_a_flow_that_ends_at_a_saddle():
    # Along a run on Example 1, a point on the saddle's stable manifold |x1| = |x2|, x1x2 < 0: its flow ends at
    # (0, 0). The warm path reports it with the cold status, keeps going, and the values around it are unchanged.
    points = np.array([[3.0, 0.34], [3.01, 0.34], [1.0, -1.0], [3.02, 0.34], [3.03, 0.33]])
    warm, cold = flatness_along(EX1, points), flatness_along(EX1, points, warm=False)
    assert warm.status == cold.status == ("converged", "converged", "saddle", "converged", "converged")
    np.testing.assert_allclose(warm.x_star, cold.x_star, rtol=0, atol=1e-8)
    assert "smallest Hessian eigenvalue" in warm.limits[2].message
    with pytest.raises(LimitMapError, match="saddle"):
        flatness_along(EX1, points, throw=True)


def test_the_warm_path_reports_budget_failures_as_the_cold_path_does():
    # max_time = 0.5 is far below the flow time to ‖∇f‖ ≤ 1e-6 from these iterates (about 30): every flow that
    # has to move fails with status max_time, warm (whose flow stops at the same limit and is redone cold) or not.
    problem = DiagonalLinearNetwork.random(20, 40, sparsity=2, rng=0)
    trajectory = sa_run(problem, 1e-3, 1e-2, 6)
    options = {"max_time": 0.5, "stiff_method": None}
    warm = flatness_along(problem, trajectory, **options)
    cold = flatness_along(problem, trajectory, warm=False, **options)
    assert warm.status == cold.status and "max_time" in cold.status
    np.testing.assert_array_equal(warm.x_star[1:], cold.x_star[1:])  # the failures are the cold ones, bit for bit
    assert not warm.success


def test_flatness_along_checks_warm_and_its_options():
    with pytest.raises(TypeError, match="warm must be True or False"):
        flatness_along(EX1, [[1.0, 1.0]], warm="yes")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['tolerance'\]"):
        flatness_along(EX1, [[1.0, 1.0]], tolerance=1.0)
    with pytest.raises(ValueError, match="gtol must be positive"):
        flatness_along(EX1, [[3.0, 0.34], [3.01, 0.34]], gtol=-1.0)


# ------------------------------------------------------------------ the metric from the output Jacobian
@pytest.mark.parametrize(
    "problem",
    [DiagonalLinearNetwork.random(20, 40, sparsity=2, rng=0), MatrixSensing.random(8, 3, 1, 12, rng=0), EX1],
    ids=["network", "sensing", "example1"],
)
def test_the_gram_route_of_the_metric_equals_the_svd_route(problem):
    # Pg = g − Jᵀ(JJᵀ)⁻¹Jg by Cholesky with one refinement step: error ≈ ε_mach · cond(J) · ‖g‖ (≤ 1e-11 here)
    rng = np.random.default_rng(0)
    for seed in range(3):
        x_star = problem.random_minimum(seed) if problem is not EX1 else np.array([2.0 + seed, 1 / (2.0 + seed)])
        g = rng.standard_normal(problem.dim)
        np.testing.assert_allclose(tangent_part(problem, x_star, g), project_tangent(problem, x_star, g),
                                   rtol=0, atol=1e-12 * np.linalg.norm(g))  # fmt: skip


def test_the_gram_route_steps_aside_where_the_jacobian_is_singular():
    problem = MatrixSensing.random(4, 3, 1, 6, rng=0)
    truth = problem.truth_factor().ravel()  # two zero columns: J has zero singular values, cut by normal_basis
    g = np.random.default_rng(0).standard_normal(problem.dim)
    np.testing.assert_array_equal(tangent_part(problem, truth, g), project_tangent(problem, truth, g))


# ------------------------------------------------------------------ the exponential flow and its linear part
def test_the_linear_part_is_the_hessian_at_a_minimum():
    for problem in (DiagonalLinearNetwork.random(6, 12, sparsity=2, rng=0), MatrixSensing.random(5, 2, 1, 6, rng=0)):
        x_star = problem.random_minimum(0)
        part = linear_part(problem, x_star)
        V, lam = part.basis, part.eigenvalues
        np.testing.assert_allclose(V.T @ V, np.eye(lam.size), atol=1e-13)  # orthonormal: e^{−hL} is exact
        H = problem.hess(x_star)
        np.testing.assert_allclose((V * lam) @ V.T, H, atol=1e-12 * np.abs(H).max())  # (1/n)JᵀJ on X*
    assert linear_part(EX1, [1.0, 1.0]).eigenvalues.tolist() == pytest.approx([4.0])


def test_the_exponential_flow_follows_example1s_conserved_quantity():
    # x1² − x2² is conserved along the flow, so its limit is known in closed form; from distance 0.1 with an
    # anchor 0.1 away, the flow plus the projection land within 1e-9 of it (measured 7.6e-11)
    for x, anchor in (([2.0, 0.6], [2.0, 0.5]), ([0.4, 3.0], [0.3, 1 / 0.3])):
        flow = exponential_flow(EX1, x, linear_part(EX1, anchor))
        assert flow.success and flow.reason == "converged" and np.linalg.norm(EX1.grad(flow.x)) <= 1e-6
        np.testing.assert_allclose(EX1.project_to_minima(flow.x), EX1.exact_limit(x), rtol=0, atol=1e-9)
        assert (flow.n_grad - 1 - 11 * flow.steps) % 10 == 0  # 10 per doubled step, 1 more where it is accepted


def test_the_exponential_flow_stops_at_its_limits():
    part = linear_part(EX1, [2.0, 0.5])
    assert exponential_flow(EX1, [2.0, 0.6], part, max_steps=2).reason == "2 steps"
    assert exponential_flow(EX1, [2.0, 0.6], part, max_time=0.01).reason == "max_time"
    assert exponential_flow(EX1, [2.0, 0.6], part, max_grad_evals=20).reason == "max_grad_evals"
    short = exponential_flow(EX1, [2.0, 0.6], part, max_time=0.01)
    assert not short.success and short.time <= 0.01
    with pytest.raises(ValueError, match="rtol must be positive"):
        exponential_flow(EX1, [2.0, 0.6], part, rtol=0.0)


# ------------------------------------------- second order along X*: tell a flattest point from a sharpest one
def test_the_curvature_of_the_trace_along_example1s_minima_has_its_closed_form():
    # on X*, γ(s) = (e^s, e^−s): tr̄ = 2 cosh 2s, d²tr̄/ds² = 8 and |γ′| = √2, so 8/2 = 4 per unit arclength²
    for sign in (1.0, -1.0):
        curvature = trace_curvature(EX1, [sign, sign])
        assert curvature.kind == "minimum" and curvature.hessian.shape == (1, 1)
        assert curvature.eigenvalues[0] == pytest.approx(4.0, rel=1e-8)  # measured 1.6e-10 (δ = 1e-5 ‖x*‖)
        assert curvature.projections == 2
        np.testing.assert_allclose(abs(curvature.basis.ravel()), [2**-0.5] * 2, rtol=1e-12)  # T ⟂ ∇p = (1, 1)


def ellipse_curvature_by_angle(problem, theta, h=1e-4):
    """d²tr̄/dσ² at a stationary point: second differences of tr̄(a cos θ, b sin θ), over the speed²."""
    a, b = problem.axes
    q = [tr_bar(problem, [a * np.cos(theta + s * h), b * np.sin(theta + s * h)]) for s in (-1, 0, 1)]
    return (q[0] - 2 * q[1] + q[2]) / h**2 / (a**2 * np.sin(theta) ** 2 + b**2 * np.cos(theta) ** 2)


def test_definition_3_holds_at_both_ends_of_an_ellipse_and_the_curvature_tells_them_apart():
    problem = Ellipse(a=2.0, b=1.0)  # tr̄ = cos²θ/4 + sin²θ at (2 cos θ, sin θ)
    assert check_derivatives(problem, [0.7, -1.3]).passed
    flattest = flatness_report(problem, [2.0, 0.0], eps=1e-3, eps_prime=1e-3)
    sharpest = flatness_report(problem, [0.0, 1.0], eps=1e-3, eps_prime=1e-3)
    assert flattest.is_flat and sharpest.is_flat  # Definition 3 is first order: both are stationary
    assert flattest.metric < 1e-15 and sharpest.metric < 1e-15
    assert flattest.tr_bar_star == pytest.approx(0.25) and sharpest.tr_bar_star == pytest.approx(1.0)
    assert (flattest.kind, sharpest.kind) == ("minimum", "maximum")
    # d²tr̄/dθ² = 3/2 at θ = 0 (speed |dx/dθ| = 1) and −3/2 at θ = π/2 (speed 2): −3/8 per unit arclength²
    assert flattest.curvature.eigenvalues[0] == pytest.approx(1.5, rel=1e-8)  # measured 2.4e-9
    assert sharpest.curvature.eigenvalues[0] == pytest.approx(-0.375, rel=1e-8)  # measured 9e-12
    # an independent route: tr̄ along the ellipse parametrized by angle, converted to arclength
    assert flattest.curvature.eigenvalues[0] == pytest.approx(ellipse_curvature_by_angle(problem, 0.0), rel=1e-6)
    assert sharpest.curvature.eigenvalues[0] == pytest.approx(ellipse_curvature_by_angle(problem, np.pi / 2), rel=1e-6)
    assert "kind=maximum" in repr(sharpest) and "kind=minimum" in repr(flattest)


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_the_kind_does_not_change_when_the_ellipse_is_rescaled(scale):
    problem = Ellipse(a=2.0 * scale, b=scale)  # every curvature scales as scale⁻⁴; the kind must not move
    for j, kind in ((0, "minimum"), (1, "maximum")):
        curvature = trace_curvature(problem, problem.axis_point(j))
        assert curvature.kind == kind
        np.testing.assert_allclose(curvature.eigenvalues, problem.axis_curvature(j), rtol=1e-8)


def test_a_middle_axis_of_an_ellipsoid_is_a_saddle_of_the_trace():
    problem = Ellipsoid(3.0, 2.0, 1.0)  # eigenvalues (4/3) c_i (c_i − c_j), i ≠ j, with c = (1/9, 1/4, 1)
    assert check_derivatives(problem, [0.7, -1.3, 0.4]).passed
    for j, kind in enumerate(("minimum", "saddle", "maximum")):
        for sign in (1.0, -1.0):
            report = flatness_report(problem, problem.axis_point(j, sign), eps=1e-3, eps_prime=1e-3)
            assert report.is_flat and report.kind == kind
            np.testing.assert_allclose(report.curvature.eigenvalues, problem.axis_curvature(j), rtol=1e-7)
    saddle = trace_curvature(problem, problem.axis_point(1)).eigenvalues
    np.testing.assert_allclose(saddle, [4 / 3 * (1 / 9) * (1 / 9 - 1 / 4), 4 / 3 * 1 * (1 - 1 / 4)], rtol=1e-7)


def test_the_diagonal_networks_flattest_minimum_is_a_strict_minimum_of_the_trace_along_its_minima():
    # flat_minima solves min Σ c_k|w_k| over X*, the global minimum of tr on X*: the Hessian is PSD, and here
    # definite (the 2 support weights are pinned by Zw = y; moving off-support weights off 0 costs trace).
    problem = DiagonalLinearNetwork.random(2, 4, rng=0)
    (x_star,) = problem.flat_minima()
    curvature = trace_curvature(problem, x_star)
    assert curvature.kind == "minimum" and curvature.eigenvalues.shape == (6,)  # dim X* = 2·4 − 2
    assert curvature.eigenvalues[0] > 0.02  # measured 0.0285, far above tol = 5e-7
    # an independent route: second differences of the values tr̄(R(x* ± hTv)) give vᵀHv
    h = 1e-3 * np.linalg.norm(x_star)
    for v in np.random.default_rng(0).standard_normal((4, 6)):
        q = [tr_bar(problem, problem.project_to_minima(x_star + s * h * curvature.basis @ v)) for s in (-1, 0, 1)]
        assert (q[0] - 2 * q[1] + q[2]) / h**2 == pytest.approx(v @ curvature.hessian @ v, rel=1e-4)


def test_matrix_sensings_flattest_minimum_is_degenerate_along_its_rotations():
    pytest.importorskip("cvxpy")
    problem = MatrixSensing.random(3, 2, 2, 4, rng=0)
    (x_star,) = problem.flat_minima()  # the SDP's certified flattest minimum: a global minimum of tr̄ on X*
    curvature = trace_curvature(problem, x_star)
    # tr̄ depends on UUᵀ only, so the r(r − 1)/2 = 1 rotation U → UO is a zero eigenvalue; the rest is positive
    assert curvature.kind == "degenerate"
    assert abs(curvature.eigenvalues[0]) < curvature.tol < curvature.eigenvalues[1]
    U = x_star.reshape(3, 2)
    rotation = (U @ np.array([[0.0, 1.0], [-1.0, 0.0]])).ravel()  # d/dt U·exp(tA) at t = 0, A antisymmetric
    null = curvature.basis @ np.linalg.eigh(curvature.hessian)[1][:, 0]
    assert abs(null @ rotation) / np.linalg.norm(rotation) == pytest.approx(1.0, abs=1e-6)


def test_the_curvature_is_optional_and_checks_its_input():
    assert flatness_report(EX1, [1.0, 1.0], eps=1e-3, eps_prime=1e-3, curvature=False).kind is None
    assert flatness_report(EX1, [1.0, -1.0], eps=1e-3, eps_prime=1e-3).kind is None  # a saddle: no limit
    assert flatness_report(EX1, [3.0, 1 / 3], eps=1e-3, eps_prime=1e-3).kind is None  # metric 5.89 > ε′
    with pytest.raises(TypeError, match="problem must be a flatref Problem"):
        trace_curvature(None, [1.0, 1.0])
    with pytest.raises(ValueError, match="step must be positive"):
        trace_curvature(EX1, [1.0, 1.0], step=0.0)
    with pytest.raises(ValueError, match="rtol must be positive"):
        trace_curvature(EX1, [1.0, 1.0], rtol=-1.0)
    with pytest.raises(ValueError, match=r"x_star must have shape \(2,\)"):
        trace_curvature(EX1, [1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="x_star must be real"):
        trace_curvature(EX1, [1.0 + 1e-3j, 1.0])
    with pytest.raises(ValueError, match="x_star contains non-finite"):
        trace_curvature(EX1, [np.nan, 1.0])
    problem = LinearRegression.random(2, 5, rng=0)  # X* is a 3-dimensional affine space
    with pytest.raises(ValueError, match="dimension 3 > max_dim = 2"):
        trace_curvature(problem, problem.random_minimum(0), max_dim=2)
    curvature = trace_curvature(problem, problem.random_minimum(0))
    assert curvature.kind == "degenerate" and np.all(curvature.eigenvalues == 0)  # tr̄ is constant on X*


def test_the_curvature_says_singular_where_the_minima_set_is_not_a_manifold():
    problem = MatrixSensing.random(4, 3, 1, 6, rng=0)
    truth = problem.truth_factor()  # rank 1 in r = 3 columns: UUᵀ = M* with two zero columns, a singular point
    assert trace_curvature(problem, truth.ravel()).kind == "singular"
    assert trace_curvature(problem, problem.random_minimum(0)).kind != "singular"  # full-rank U: a manifold


# ------------------------------------------------------------------------------ bad input, overflow
def test_flatness_along_refuses_complex_points_by_name():
    with pytest.raises(TypeError, match="trajectory must be real"):
        flatness_along(EX1, [[1.0 + 1e-3j, 1.0]])
    empty = flatness_along(EX1, np.zeros((0, 2)))
    assert empty.x_star.shape == (0, 2) and empty.tr_bar.shape == (0,)


def test_a_gradient_whose_square_overflows_still_has_a_finite_norm():
    x = np.array([1.0, 8.187737150746413e76])  # ∇f = 2(x1x2 − 1)(x2, x1) ≈ (1.3e154, 1.6e77): ‖∇f‖² overflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            report = flatness_report(EX1, x, 1.0, 1.0, max_grad_evals=3000, stall_evals=500)
        except (ValueError, FlatrefError):  # a named refusal is fine; a warning or an infinite norm is not
            return
    assert report.grad_norm == pytest.approx(np.hypot(*EX1.grad(x) / 1e154) * 1e154, rel=1e-12)
    assert not report.limit.success or np.isfinite([report.metric, report.trace_star]).all()
