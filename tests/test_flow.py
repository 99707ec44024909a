"""The limit map Φ, its Jacobian ∂Φ and the tangent projector against exact answers."""

import numpy as np
import pytest
from hypothesis import assume, given, reject, settings
from hypothesis import strategies as st

from flatref import (
    LabelNoiseSGD,
    run,
    ConvergenceError,
    LimitMapError,
    Status,
    limit_jacobian,
    limit_map,
    tangent_projector,
)
from flatref.flow import decay_exponent
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing, Problem
from flatref.testing import check_derivatives, points, points_near_minima, small_problem
from helpers import Valley

EX1 = Example1()
seeds = st.integers(0, 2**32 - 1)


def residual(problem, x):
    return np.linalg.norm(problem.outputs(x) - problem.y)


# --------------------------------------------------------------- Example 1
@given(points(EX1, scale=3.0))
def test_example1_limit_matches_the_conservation_law(x):
    # Starts within 0.1 of the saddle's stable manifold |x1| = |x2|, x1x2 < 0, pass
    # arbitrarily close to the saddle, where Φ has unbounded derivatives: left out.
    assume(x[0] * x[1] > 0 or abs(abs(x[0]) - abs(x[1])) >= 0.1)
    assume(np.linalg.norm(x) > 1e-3)
    lp = limit_map(EX1, x)
    assert lp.status is Status.CONVERGED, lp.message
    assert np.linalg.norm(lp.x - EX1.exact_limit(x)) <= 1e-8
    assert lp.grad_norm <= 1e-12 and lp.finish_step <= 1e-5


@pytest.mark.parametrize("x", [(1.0, -1.0), (-2.0, 2.0), (0.0, 0.0), (0.5, -0.5)])
def test_example1_flow_on_the_stable_manifold_ends_at_the_saddle(x):
    lp = limit_map(EX1, x)
    assert lp.status is Status.SADDLE and not lp.success
    assert np.linalg.norm(lp.x) < 1e-6
    assert lp.min_eigenvalue == pytest.approx(-2.0, abs=1e-5)  # ∇²f(0) = [[0, −2], [−2, 0]]
    assert "negative Hessian eigenvalue" in lp.message


def test_a_point_of_the_minima_set_is_its_own_limit():
    lp = limit_map(EX1, [3.0, 1 / 3])
    assert lp.success and lp.flow_time == 0.0
    np.testing.assert_allclose(lp.x, [3.0, 1 / 3], rtol=1e-15)


# -------------------------------------------------------- linear regression
@settings(max_examples=15)
@given(seeds, st.integers(0, 2))
def test_linear_regression_limit_and_jacobian_match_the_closed_forms(seed, size):
    problem = small_problem(LinearRegression, seed, size)
    x = np.random.default_rng(seed).standard_normal(problem.dim)
    np.testing.assert_allclose(limit_map(problem, x).x, problem.exact_limit(x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(limit_jacobian(problem, x), problem.exact_limit_jacobian(x), rtol=0, atol=1e-8)
    np.testing.assert_allclose(tangent_projector(problem, x), problem.exact_limit_jacobian(x), rtol=0, atol=1e-12)


# --------------------------------------------------- diagonal linear network
@settings(max_examples=15)
@given(seeds, st.floats(1e-3, 0.3))
def test_diagonal_network_limit_conserves_balances_and_interpolates(seed, distance):
    problem = DiagonalLinearNetwork.random(5, 12, sparsity=2, rng=seed % 1000)
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(problem.dim)
    x = problem.random_minimum(rng) + distance * e / np.linalg.norm(e)
    lp = limit_map(problem, x)
    assert lp.success
    assert residual(problem, lp.x) <= 1e-12 * (1 + np.linalg.norm(problem.y))
    np.testing.assert_allclose(problem.conserved(lp.x), problem.conserved(x), rtol=0, atol=1e-9)


@settings(max_examples=10)
@given(seeds, st.integers(0, 2))
def test_diagonal_network_limit_and_jacobian_match_the_closed_forms(seed, size):
    # ∂Φ off X* from the variational equation against P T(b): limit_jacobian's error is O(gtol/λ) (its docstring);
    # over 450 instances at this distance the largest was 1.1e-7, Φ's 7e-11
    problem = small_problem(DiagonalLinearNetwork, seed, size)
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(problem.dim)
    x = problem.random_minimum(rng) + 0.1 * e / np.linalg.norm(e)
    np.testing.assert_allclose(limit_map(problem, x).x, problem.exact_limit(x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(limit_jacobian(problem, x), problem.exact_limit_jacobian(x), rtol=0, atol=5e-7)
    phi = problem.exact_limit(x)
    np.testing.assert_allclose(tangent_projector(problem, phi), problem.exact_limit_jacobian(phi), rtol=0, atol=1e-12)


# ----------------------------------------------------------- matrix sensing
@pytest.mark.parametrize("distance", [1e-3, 1e-2, 0.3])
def test_matrix_sensing_limit_matches_a_tight_reference(distance):
    # Reference: the flow at rtol 1e-13 run to |∇f| ≤ 1e-10, finished from within 1e-7.
    problem = MatrixSensing.random(6, 3, 1, 8, rng=0)
    rng = np.random.default_rng(1)
    e = rng.standard_normal(problem.dim)
    x = problem.random_minimum(rng) + distance * e / np.linalg.norm(e)
    ref = limit_map(problem, x, rtol=1e-13, atol=1e-15, gtol=1e-10, finish_radius=1e-7)
    lp = limit_map(problem, x)
    assert lp.success and ref.success
    assert np.linalg.norm(lp.x - ref.x) <= 1e-9
    assert residual(problem, lp.x) <= 1e-12 * (1 + np.linalg.norm(problem.y))


def test_finish_lands_on_the_flow_limit_not_on_the_nearest_minimum():
    # From distance 0.3 the Gauss-Newton projection of the start misses Φ by O(dist²);
    # the flow-then-finish result does not.
    problem = DiagonalLinearNetwork.random(5, 12, sparsity=2, rng=3)
    rng = np.random.default_rng(0)
    e = rng.standard_normal(problem.dim)
    x = problem.random_minimum(rng) + 0.3 * e / np.linalg.norm(e)
    ref = limit_map(problem, x, rtol=1e-13, atol=1e-15, gtol=1e-10, finish_radius=1e-7).x
    assert np.linalg.norm(problem.project_to_minima(x) - ref) > 1e-4
    assert np.linalg.norm(limit_map(problem, x).x - ref) <= 1e-9


def test_general_problems_use_the_top_eigenspace_newton_finish():
    x = np.array([1.3, -0.4])  # the flow is radial: Φ(x) = x/|x|
    lp = limit_map(Valley(), x)
    assert lp.success and 0 < lp.finish_step <= 1e-5
    np.testing.assert_allclose(lp.x, x / np.linalg.norm(x), atol=1e-10)
    assert lp.min_eigenvalue == pytest.approx(0.0, abs=1e-8)


# -------------------------------------------------------------- ∂Φ and Lemma 6
SMALL = [
    ("Example1", lambda: EX1),
    ("DiagonalLinearNetwork", lambda: DiagonalLinearNetwork.random(3, 5, sparsity=1, rng=0)),
    ("MatrixSensing", lambda: MatrixSensing.random(3, 2, 1, 3, rng=0)),
]


@pytest.mark.parametrize("make", [m for _, m in SMALL], ids=[n for n, _ in SMALL])
@settings(max_examples=5)
@given(data=st.data())
def test_lemma6_the_limit_jacobian_annihilates_the_gradient(make, data):
    problem = make()
    x = data.draw(points_near_minima(problem, max_distance=0.05))
    g = problem.grad(x)
    assume(np.linalg.norm(g) > 1e-6)
    try:
        product = limit_jacobian(problem, x, g)
    except ConvergenceError:
        # About 1 start in 100 flows to a nearly degenerate minimum (some w_k ≈ 0), where the
        # variational equation settles too slowly for its budget; ∂Φ is not computed there.
        reject()
    # ∂Φ(x)∇f(x) = d/dt Φ(x(t)) = 0: the flow does not move its own limit.
    np.testing.assert_allclose(product, 0.0, atol=1e-7 * np.linalg.norm(g))


@pytest.mark.parametrize("make", [m for _, m in SMALL], ids=[n for n, _ in SMALL])
def test_limit_jacobian_is_the_finite_difference_of_the_limit_map(make):
    # Central differences along two random directions with h = 1e-4: truncation
    # O(h²|∂²Φ|) ≈ 1e-8, and Φ's error (≤ 1e-11 at these tolerances) / h ≈ 1e-7.
    problem = make()
    rng = np.random.default_rng(0)
    x = problem.random_minimum(rng) + 0.05 * rng.standard_normal(problem.dim)
    V = rng.standard_normal((problem.dim, 2))
    h = 1e-4
    tight = {"rtol": 1e-12, "atol": 1e-14, "gtol": 1e-8}
    fd = np.stack(
        [(limit_map(problem, x + h * v, **tight).x - limit_map(problem, x - h * v, **tight).x) / (2 * h) for v in V.T],
        axis=1,
    )
    np.testing.assert_allclose(limit_jacobian(problem, x, V), fd, atol=1e-5)
    columns = limit_jacobian(problem, x, np.eye(problem.dim)[:, :2])
    np.testing.assert_allclose(limit_jacobian(problem, x)[:, :2], columns, atol=1e-10)


@pytest.mark.parametrize("make", [m for _, m in SMALL], ids=[n for n, _ in SMALL])
def test_at_a_minimum_the_jacobian_is_the_tangent_projector(make):
    problem = make()
    x_star = problem.random_minimum(0)
    P = tangent_projector(problem, x_star)
    H = problem.hess(x_star)
    rank_H = np.linalg.matrix_rank(H, tol=1e-8 * np.linalg.norm(H, 2))
    np.testing.assert_allclose(P, P.T, atol=1e-14)
    np.testing.assert_allclose(P @ P, P, atol=1e-12)
    assert round(np.trace(P)) == problem.dim - rank_H
    np.testing.assert_allclose(P @ H, 0.0, atol=1e-10 * np.linalg.norm(H, 2))  # tangent = null space of ∇²f
    np.testing.assert_allclose(limit_jacobian(problem, x_star), P, atol=1e-8)
    # Near the minima set the two differ by O(distance).
    x = x_star + 1e-4 * np.random.default_rng(1).standard_normal(problem.dim)
    assert np.max(np.abs(limit_jacobian(problem, x) - P)) < 1e-2


# ------------------------------------------------------------ how flows end
class Repeller(Problem):
    """``f = −‖x‖²/2``: the flow ``ẋ = x`` leaves every bound."""

    def __init__(self):
        super().__init__(2)

    def _f(self, x):
        return -(x @ x) / 2

    def _grad(self, x):
        return -x

    def _hess(self, x):
        return -np.eye(2)

    def _third_contract(self, x, u, v):
        return np.zeros(2)


class Explosive(Repeller):
    """``f = −exp(x1) − exp(x2)``: ``ẋ = exp(x)`` reaches infinity in finite time."""

    def _f(self, x):
        return -np.sum(np.exp(x))

    def _grad(self, x):
        with np.errstate(over="ignore"):
            return -np.exp(x)

    def _hess(self, x):
        return -np.diag(np.exp(x))


def test_a_flow_that_leaves_every_bound_is_reported_diverged():
    lp = limit_map(Repeller(), [0.1, 0.2])
    assert lp.status is Status.DIVERGED and "exceeded" in lp.message
    assert lp.grad_norm == np.inf and np.all(np.isfinite(lp.x))


def test_a_flow_that_overflows_is_reported_diverged_without_nan():
    lp = limit_map(Explosive(), [0.0, 0.0])
    assert lp.status is Status.DIVERGED
    assert np.all(np.isfinite(lp.x))
    assert lp.flow_time == pytest.approx(1.0, abs=1e-6)  # ẋ = eˣ from 0 blows up at t = 1


def test_time_and_evaluation_budgets_have_their_own_statuses():
    x = [2.0, 0.1]
    lp = limit_map(EX1, x, max_time=1e-3)
    assert lp.status is Status.MAX_TIME and "flow time" in lp.message and not lp.success
    lp = limit_map(EX1, x, max_grad_evals=20)
    assert lp.status is Status.BUDGET and "20 gradient evaluations" in lp.message and not lp.success
    assert np.all(np.isfinite(lp.x)) and np.isfinite(lp.grad_norm)


def test_limit_jacobian_raises_where_the_limit_is_not_a_minimum():
    with pytest.raises(LimitMapError, match="saddle") as info:
        limit_jacobian(EX1, [1.0, -1.0])
    assert info.value.limit_point.status is Status.SADDLE


def test_status_values_are_the_documented_strings():
    assert str(Status.SADDLE) == "saddle" and Status.SADDLE == "saddle"
    assert "status='converged'" in repr(limit_map(EX1, [3.0, 1 / 3]))
    lp = limit_map(EX1, [1.0, -1.0])
    assert lp.message.startswith(Status.SADDLE.message)


def test_throw_raises_what_the_result_would_report():
    with pytest.raises(LimitMapError, match="saddle") as info:
        limit_map(EX1, [1.0, -1.0], throw=True)
    assert info.value.result.status is Status.SADDLE
    assert limit_map(EX1, [2.0, 0.1], throw=True).success


# -------------------------------------------------------------- bad input
def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"x must have shape \(2,\)"):
        limit_map(EX1, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="x contains non-finite"):
        limit_map(EX1, [np.nan, 1.0])
    for name in ("gtol", "rtol", "atol", "finish_radius", "max_time", "blowup", "saddle_tol"):
        with pytest.raises(ValueError, match=f"{name} must be positive"):
            limit_map(EX1, [1.0, 2.0], **{name: 0.0})
    with pytest.raises(ValueError, match="max_grad_evals must be >= 1"):
        limit_map(EX1, [1.0, 2.0], max_grad_evals=0)
    with pytest.raises(ValueError, match="method"):
        limit_map(EX1, [1.0, 2.0], method="Euler")
    with pytest.raises(ValueError, match=r"v must have shape \(2,\) or \(2, k\)"):
        limit_jacobian(EX1, [1.0, 2.0], np.ones(3))
    with pytest.raises(ValueError, match="x_star must have shape"):
        tangent_projector(EX1, [1.0])


def test_implicit_methods_get_the_exact_jacobian():
    lp = limit_map(EX1, [2.0, 0.1], method="Radau")
    assert lp.success and lp.n_hess > 1
    assert np.linalg.norm(lp.x - EX1.exact_limit([2.0, 0.1])) <= 1e-8


def test_large_problems_are_classified_without_dense_hessians():
    problem = DiagonalLinearNetwork.random(20, 800, sparsity=2, rng=0)  # d = 1600 > the dense limit
    rng = np.random.default_rng(0)
    x = problem.random_minimum(rng) + 1e-2 * rng.standard_normal(problem.dim) / 40
    lp = limit_map(problem, x, finish=False)
    assert lp.status is Status.CONVERGED and lp.min_eigenvalue > -1e-6


def test_an_unreachable_gtol_stalls_into_the_finish_instead_of_spending_the_budget():
    # |grad f| cannot be integrated below about rtol·|x|·λ_max ≈ 1e-9 here; gtol = 1e-13 stalls.
    problem = DiagonalLinearNetwork.random(3, 5, sparsity=1, rng=1)
    x = problem.random_minimum(2) + 1e-3
    lp = limit_map(problem, x, gtol=1e-13)
    assert lp.success and lp.n_grad < 12_000
    ref = limit_map(problem, x)
    assert np.linalg.norm(lp.x - ref.x) <= 1e-9
    lp = limit_map(problem, x, gtol=1e-13, finish=False, stall_evals=500, stiff_method=None)
    assert lp.status is Status.CONVERGED and lp.grad_norm > 1e-13  # ended at the stall, classified by eigenvalues
    assert "stalled" in lp.message and lp.n_grad < 5_000
    switched = limit_map(problem, x, gtol=1e-13, finish=False, stall_evals=500)  # BDF takes over at the stall
    assert switched.status is Status.CONVERGED and switched.grad_norm <= 1e-13 and "continued with BDF" in switched.message
    assert np.linalg.norm(switched.x - ref.x) <= 1e-9


def test_limit_jacobian_has_an_evaluation_budget():
    with pytest.raises(ConvergenceError, match="did not settle within 5 evaluations"):
        limit_jacobian(EX1, [2.0, 0.1], max_evals=5)


def test_a_flow_whose_gradient_norm_overflows_raises_no_warning():
    from flatref.experiments.registry import network_of_dim

    problem = network_of_dim(16)
    lp = limit_map(problem, np.full(16, 1e53))  # ‖∇f‖² overflows at the start: filterwarnings = error would raise
    assert lp.status is Status.CONVERGED and residual(problem, lp.x) < 1e-10  # and the flow still finds X*


def test_limit_jacobian_that_runs_out_of_time_says_so_with_a_convergence_error():
    problem = LinearRegression.random(2, 4, rng=0)
    x = problem.random_minimum(0) + 0.1
    enough_for_phi = 1.05 * limit_map(problem, x).flow_time  # Φ is found by then (to 1e-6, then the finish) ...
    with pytest.raises(ConvergenceError, match="did not settle by flow time"):
        limit_jacobian(problem, x, max_time=enough_for_phi)  # ... but W needs ‖∇²f W‖ ≤ 1e-9, which takes longer


# ----------------------------------------------- stiff flows and flows without a minimum (issue 11)
class Scalar(Problem):
    """A one-dimensional ``f`` from its first three derivatives ``(f, f′, f″, f‴)`` as functions of ``x``."""

    def __init__(self, *derivatives):
        super().__init__(1)
        self.derivatives = derivatives

    def _f(self, x):
        return self.derivatives[0](x[0])

    def _grad(self, x):
        return np.array([self.derivatives[1](x[0])])

    def _hess(self, x):
        return np.array([[self.derivatives[2](x[0])]])

    def _third(self, x):
        return np.array([[[self.derivatives[3](x[0])]]])


EXP = Scalar(lambda x: np.exp(-x), lambda x: -np.exp(-x), lambda x: np.exp(-x), lambda x: -np.exp(-x))
GAUSS = Scalar(lambda x: np.exp(-x * x), lambda x: -2 * x * np.exp(-x * x), lambda x: (4 * x * x - 2) * np.exp(-x * x),
               lambda x: (12 * x - 8 * x**3) * np.exp(-x * x))  # fmt: skip
INVERSE = Scalar(lambda x: 1 / x, lambda x: -1 / x**2, lambda x: 2 / x**3, lambda x: -6 / x**4)


def power(k):
    return Scalar(lambda x: x**k, lambda x: k * x ** (k - 1), lambda x: k * (k - 1) * x ** (k - 2),
                  lambda x: k * (k - 1) * (k - 2) * x ** (k - 3))  # fmt: skip


@pytest.mark.parametrize("x", [0.3, 2.0, 11.0])
def test_decay_exponent_matches_the_closed_forms_of_power_law_flows(x):
    # e^{−x}: ‖∇f‖ = 1/(t + c), α = 1; 1/x: x ∝ t^{1/3}, ‖∇f‖ ∝ t^{−2/3}; x^{2k}: ‖∇f‖ ∝ t^{−(2k−1)/(2k−2)}
    assert decay_exponent(EXP, [x]) == pytest.approx(1.0, rel=1e-12)
    assert decay_exponent(INVERSE, [x]) == pytest.approx(2 / 3, rel=1e-12)
    for k in (2, 3, 5):
        assert decay_exponent(power(2 * k), [x]) == pytest.approx((2 * k - 1) / (2 * k - 2), rel=1e-12)


def test_decay_exponent_ignores_fast_modes_dying_out():
    # A quadratic has ∇³f = 0: its curvature never fades, so α = inf, although its decay rate r falls
    # as the fast normal modes die (the weighted variance of the eigenvalues, which α leaves out).
    problem = LinearRegression.random(3, 5, rng=0)
    for x in np.random.default_rng(1).standard_normal((5, 5)):
        assert decay_exponent(problem, x) == np.inf


def test_a_flow_that_runs_off_to_no_minimum_is_not_reported_converged():
    for problem, x0 in ((EXP, 0.0), (EXP, 13.5), (GAUSS, 0.5)):
        lp = limit_map(problem, [x0])
        assert lp.status is Status.NO_MINIMUM and not lp.success and "t^-1" in lp.message
    assert limit_map(INVERSE, [1.0]).status is Status.MAX_TIME  # ‖∇f‖ ∝ t^{−2/3} never reaches gtol in time
    for k in (2, 3, 10):  # degenerate minima: ‖∇f‖ ∝ t^{−(2k−1)/(2k−2)}, a path of finite length
        lp = limit_map(power(2 * k), [1.0])
        assert lp.status is Status.CONVERGED and abs(lp.x[0]) < 0.35


def test_a_stiff_flow_switches_to_the_implicit_method_and_reaches_the_exact_limit():
    # ∇²f has eigenvalues ≈ 2(x1² + x2²) = 2e12 and ≈ 0: DOP853's first step overflows
    x0 = [1e6, 1.01e-6]
    assert limit_map(EX1, x0, stiff_method=None).status is Status.DIVERGED
    lp = limit_map(EX1, x0)
    exact = EX1.exact_limit(x0)  # x1² − x2² is conserved along the flow
    assert lp.status is Status.CONVERGED and "continued with BDF" in lp.message
    assert np.allclose(lp.x, exact, rtol=1e-12, atol=0)


def test_a_stiff_tanh_network_flow_converges_with_the_implicit_fallback():
    from tanh_network import TanhNetwork

    rng = np.random.default_rng(8)
    problem = TanhNetwork(rng.standard_normal((3, 2)), rng.standard_normal(3), hidden=2)  # d = 6, n = 3
    x = rng.standard_normal(6)
    assert check_derivatives(problem, x).passed  # the test problem's hand-written derivatives are right
    assert limit_map(problem, x, stiff_method=None).status is Status.STALLED
    lp = limit_map(problem, x)
    radau = limit_map(problem, x, method="Radau")  # implicit from the start: another route to Φ(x)
    assert lp.status is Status.CONVERGED and radau.status is Status.CONVERGED and "continued with BDF" in lp.message
    assert np.linalg.norm(lp.x - radau.x) < 1e-7  # both integrate to rtol = 1e-9 over a flow time of 1.8e3
    assert np.linalg.norm(problem.outputs(lp.x) - problem.y) < 1e-12


def test_limit_map_rejects_tolerances_solve_ivp_would_clip_and_explicit_stiff_methods():
    with pytest.raises(ValueError, match="rtol must be at least 2.2e-14"):
        limit_map(EX1, [2.0, 0.6], rtol=1e-15)
    with pytest.raises(ValueError, match="rtol must be at least"):
        limit_jacobian(EX1, [2.0, 0.6], rtol=1e-15)
    with pytest.raises(ValueError, match="stiff_method must be one of"):
        limit_map(EX1, [2.0, 0.6], stiff_method="RK45")


def test_a_start_next_to_the_saddle_is_a_saddle_not_a_numpy_error():
    lp = limit_map(EX1, [1e-300, 1e-300])  # ∇f ≈ 0 at once; the projection's first step overflows
    assert lp.status is Status.SADDLE and lp.min_eigenvalue == pytest.approx(-2.0)


def test_limit_jacobian_at_a_minimum_keeps_tangent_vectors_and_kills_normal_ones():
    tangent, normal = np.array([1.0, -1.0]), np.array([1.0, 1.0])  # at (1, 1) X* = {x1 x2 = 1} has tangent (1, −1)
    assert np.allclose(limit_jacobian(EX1, [1.0, 1.0], tangent), tangent, rtol=0, atol=1e-15)  # settled at t = 0
    assert np.allclose(limit_jacobian(EX1, [1.0, 1.0], normal), 0.0, atol=1e-12)


def test_a_failed_event_location_is_not_a_scipy_error():
    # BDF's dense output at a step's end disagreed with the step, and solve_ivp's brentq raised
    # "f(a) and f(b) must have different signs" from this point (found while certifying issue 15's SDP).
    from flatref.experiments.recipes import near_sharp_minimum

    problem = MatrixSensing.random(10, 4, 1, 18, rng=2)
    start, eta = near_sharp_minimum(problem)
    x = run(problem, LabelNoiseSGD(eta / 2, 0.05), start, steps=600, rng=0).x_last
    lp = limit_map(problem, x)
    assert lp.status is Status.CONVERGED and lp.grad_norm <= 1e-8


def test_a_stationary_point_whose_curvature_does_not_converge_is_unclassified(monkeypatch):
    # ARPACK's non-convergence above the dense route's size is a status, not an exception from limit_map
    import flatref.flow

    def no_convergence(problem, x, **options):
        raise ConvergenceError("ARPACK did not converge to the smallest eigenvalue")

    from helpers import Valley

    monkeypatch.setattr(flatref.flow, "extreme_eigenvalues", no_convergence)
    result = limit_map(Valley(), [0.6, 0.9])  # a plain Problem: its finish is not known to be global
    assert result.status == "unclassified" and not result.success and result.min_eigenvalue is None
    assert "ARPACK did not converge" in result.message
    np.testing.assert_allclose(result.x, np.array([0.6, 0.9]) / np.hypot(0.6, 0.9), atol=1e-9)  # Φ(x) = x/‖x‖
    with pytest.raises(LimitMapError, match="unclassified"):
        limit_map(Valley(), [0.6, 0.9], throw=True)


def test_limit_jacobian_from_a_point_whose_hessian_overflows_raises_without_warning():
    # found by the fuzz suite: the settled-start check took the norm of ∇²f W, which overflows here
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConvergenceError, match="did not settle"):
            limit_jacobian(Example1(), np.array([0.0, 8.187737150746413e76]), max_evals=2000)


def test_limit_jacobian_settles_where_the_explicit_method_hovers_at_its_stability_limit(monkeypatch):
    """Found by hypothesis: on this linear regression (λ = 0.113 and 8.13, ‖x‖ = 4) DOP853's error on the stiff
    mode keeps ‖∇f‖ near gtol for 1.5 million evaluations, where the flow settles by t = 200. Radau settles it."""
    import flatref.flow as flow
    from flatref.errors import ConvergenceError

    problem = small_problem(LinearRegression, 4981001, 1)
    x = np.random.default_rng(4981001).standard_normal(problem.dim)
    np.testing.assert_allclose(limit_jacobian(problem, x), problem.exact_limit_jacobian(x), rtol=0, atol=1e-8)
    monkeypatch.setattr(flow, "VARIATIONAL_FALLBACK", "DOP853")  # without the second method: the named error
    with pytest.raises(ConvergenceError, match="did not settle within 50000 evaluations"):
        limit_jacobian(problem, x)
