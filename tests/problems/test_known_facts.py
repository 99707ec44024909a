"""What each family knows exactly: its minima, sharp and flat minima, conservation laws, Φ."""

import numpy as np
import pytest
from helpers import assert_close, complex_step, complex_step_jacobian, derivative_scale
from hypothesis import assume, given
from hypothesis import strategies as st

from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing
from flatref.testing import FAMILIES, points, small_problem

FAMILY_IDS = [f.__name__ for f in FAMILIES]
CONSERVING = [Example1, LinearRegression, DiagonalLinearNetwork]
seeds = st.integers(0, 2**32 - 1)


def on_minima_set(problem, x, rtol=1e-10):
    """``p(x) = y`` to ``rtol·(1 + ‖y‖)`` and ``∇f(x) = 0`` on the same scale."""
    residual = np.linalg.norm(problem.outputs(x) - problem.y)
    return residual <= rtol * (1 + np.linalg.norm(problem.y))


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@given(seed=seeds, size=st.integers(0, 2))
def test_random_minimum_interpolates_and_is_stationary(family, seed, size):
    problem = small_problem(family, seed, size)
    if family is MatrixSensing:  # a truth near 0: see the test below
        assume(np.linalg.norm(problem.truth_factor()) ** 2 > 0.01)
    x = problem.random_minimum(seed)
    assert on_minima_set(problem, x)
    assert np.linalg.norm(problem.grad(x)) <= 1e-10 * derivative_scale(problem, x)


def test_random_minimum_near_a_degenerate_truth_raises_the_named_error():
    """With ‖M*‖ = 1.3e-3 (seed 16273609, found by hypothesis), y ≈ 0 and A_1 is nearly negative definite, so the PSD
    interpolants crowd the apex U = 0 of the cone ⟨A_i, UUᵀ⟩ = y_i, where X* is not a manifold and J → 0: the
    Gauss–Newton projection does not converge (nor from starts with 2, 4 or 8 times the noise), and says so."""
    from flatref.errors import ConvergenceError

    problem = small_problem(MatrixSensing, 16273609, 0)
    assert np.linalg.norm(problem.truth_factor()) ** 2 < 0.01
    with pytest.raises(ConvergenceError, match="did not reach residual"):
        problem.random_minimum(16273609)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_random_minimum_is_reproducible(family):
    problem = small_problem(family, 7, 1)
    assert np.array_equal(problem.random_minimum(3), problem.random_minimum(3))
    assert not np.array_equal(problem.random_minimum(3), problem.random_minimum(4))


@pytest.mark.parametrize("family", CONSERVING, ids=lambda f: f.__name__)
@given(seed=seeds, size=st.integers(0, 2), data=st.data())
def test_gradient_flow_conserves_the_stated_quantities(family, seed, size, data):
    """d/dt c(x(t)) = Dc(x)·(−∇f(x)) = 0, by the complex step of c along ∇f."""
    problem = small_problem(family, seed, size)
    x = data.draw(points(problem))
    g = problem.grad(x)
    rate = complex_step(problem.conserved, x, -g)
    # Dc has entries O(1 + |x|), so the rate is a sum of O(|x|·|g|) terms that cancel.
    assert_close(rate, 0.0, (1 + np.linalg.norm(x)) * (np.linalg.norm(g) + 1e-300))


def test_conserved_quantities_are_not_conserved_by_other_motions():
    # Guards against a conservation test that cannot fail: moving along e_1 changes them.
    for problem in (Example1(), DiagonalLinearNetwork.random(3, 5, rng=0)):
        x = np.linspace(0.5, 1.5, problem.dim)
        assert np.linalg.norm(complex_step(problem.conserved, x, np.eye(problem.dim)[0])) > 0.5


# ------------------------------------------------------------------ Example 1
def test_example1_trace_is_twice_the_squared_norm():
    problem = Example1()
    for x in ([0.3, -2.0], [3.0, 1 / 3], [0.0, 0.0]):
        x = np.array(x)
        assert problem.trace_hess(x) / problem.dim == pytest.approx(x @ x, rel=1e-15, abs=0)


def test_example1_flat_minima_are_the_stationary_points_of_the_trace_on_the_hyperbola():
    problem = Example1()
    for x in problem.flat_minima():
        assert on_minima_set(problem, x)
        tangent = np.array([x[0], -x[1]])  # the hyperbola x1 x2 = 1 has tangent (x1, −x2)
        assert problem.grad_trace_hess(x) @ tangent == pytest.approx(0.0, abs=1e-15)
    sharp = problem.sharp_minimum()
    assert on_minima_set(problem, sharp)
    assert problem.grad_trace_hess(sharp) @ np.array([sharp[0], -sharp[1]]) > 1.0
    assert problem.trace_hess(sharp) == pytest.approx(2 * (9 + 1 / 9))


@given(points(Example1(), scale=5.0))
def test_example1_exact_limit_lies_on_the_hyperbola_with_the_same_conserved_quantity(x):
    problem = Example1()
    phi = problem.exact_limit(x)
    if abs(x[0]) == abs(x[1]) and x[0] * x[1] <= 0:
        np.testing.assert_array_equal(phi, [0.0, 0.0])
        return
    assert phi[0] * phi[1] == pytest.approx(1.0, rel=1e-14)
    assert_close(problem.conserved(phi), problem.conserved(x), 1 + x @ x, rtol=1e-14)
    big = np.argmax(np.abs(x))
    assert np.sign(phi[big]) == np.sign(x[big])


def test_example1_exact_limit_has_no_cancellation_for_extreme_starts():
    problem = Example1()
    for x in ([1e-4, 1e4], [1e4, -1e-4], [-3.0, 2.999999]):
        phi = problem.exact_limit(x)
        assert phi[0] * phi[1] == pytest.approx(1.0, rel=1e-15)
        assert problem.conserved(phi)[0] == pytest.approx(problem.conserved(x)[0], rel=1e-14)


def test_example1_exact_limit_saddle_and_fixed_points():
    problem = Example1()
    np.testing.assert_array_equal(problem.exact_limit([1.0, -1.0]), [0.0, 0.0])
    np.testing.assert_array_equal(problem.exact_limit([0.0, 0.0]), [0.0, 0.0])
    np.testing.assert_allclose(problem.exact_limit([3.0, 1 / 3]), [3.0, 1 / 3], rtol=1e-15)
    np.testing.assert_allclose(problem.exact_limit([1.0, 1.0]), [1.0, 1.0], rtol=1e-15)


# --------------------------------------------------------- linear regression
@given(seed=seeds, size=st.integers(0, 2))
def test_linear_regression_exact_limit_and_jacobian(seed, size):
    problem = small_problem(LinearRegression, seed, size)
    x = np.random.default_rng(seed).standard_normal(problem.dim)
    phi = problem.exact_limit(x)
    P = problem.exact_limit_jacobian(x)
    scale = 1 + np.linalg.norm(x) + np.linalg.norm(problem.y)
    assert on_minima_set(problem, phi)
    assert_close(problem.exact_limit(phi), phi, scale)  # Φ∘Φ = Φ
    assert_close(problem.conserved(phi), problem.conserved(x), scale)  # only the row-space part moves
    assert_close(P, complex_step_jacobian(problem.exact_limit, x), 1.0)  # ∂Φ is the Jacobian of Φ
    assert_close(P, P.T, 1.0)
    assert_close(P @ P, P, 1.0)
    assert round(np.trace(P)) == problem.dim - problem.n_samples
    assert_close(P @ problem.grad(x), 0.0, np.linalg.norm(problem.grad(x)))  # Lemma 6
    assert_close(problem.grad_trace_hess(x), 0.0, 0.0)  # every minimum equally flat


# --------------------------------------------------- diagonal linear network
@given(seed=seeds, size=st.integers(0, 2))
def test_diagonal_network_sharp_minimum_is_unbalanced_and_sharper_than_the_flattest(seed, size):
    problem = small_problem(DiagonalLinearNetwork, seed, size)
    sharp = problem.sharp_minimum(balance=2.0)
    (flat,) = problem.flat_minima()
    u, v = problem.split(sharp)
    assert on_minima_set(problem, sharp) and on_minima_set(problem, flat)
    np.testing.assert_allclose(np.abs(u), 4 * np.abs(v), rtol=1e-12)
    # Balanced: tr = (2/n) Σ c|w| exactly; unbalanced by 2: (4 + 1/4)/2 times that.
    w_sharp = problem.weights(sharp)
    balanced_trace = 2 * problem._c @ np.abs(w_sharp) / problem.n_samples
    assert problem.trace_hess(sharp) == pytest.approx(balanced_trace * (4 + 0.25) / 2, rel=1e-12)
    assert problem.trace_hess(flat) <= balanced_trace * (1 + 1e-9)


@given(seed=seeds, size=st.integers(0, 2))
def test_diagonal_network_flattest_minimum_is_below_every_random_minimum(seed, size):
    problem = small_problem(DiagonalLinearNetwork, seed, size)
    (flat,) = problem.flat_minima()
    u, v = problem.split(flat)
    np.testing.assert_allclose(np.abs(u), np.abs(v), rtol=1e-12)
    for k in range(5):
        x = problem.random_minimum(seed + k)
        assert problem.trace_hess(flat) <= problem.trace_hess(x) * (1 + 1e-9)


def test_diagonal_network_flattest_minimum_recovers_the_sparse_ground_truth():
    # 20 Gaussian samples recover a 2-sparse w* in 40 features by (weighted) l1 with high
    # probability; this instance is fixed, and the dense minimum-norm interpolant is far from w*.
    problem = DiagonalLinearNetwork.random(20, 40, sparsity=2, rng=0)
    (flat,) = problem.flat_minima()
    np.testing.assert_allclose(problem.weights(flat), problem.ground_truth, atol=1e-10)
    dense = problem.weights(problem.sharp_minimum())
    assert np.linalg.norm(dense - problem.ground_truth) > 0.5


def _near_minimum(problem, seed, distance):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(problem.dim)
    return problem.random_minimum(rng) + distance * e / np.linalg.norm(e)


@given(seed=seeds, size=st.integers(0, 2), distance=st.floats(1e-3, 3.0))
def test_diagonal_network_exact_limit_interpolates_and_keeps_what_the_flow_keeps(seed, size, distance):
    problem = small_problem(DiagonalLinearNetwork, seed, size)
    x = _near_minimum(problem, seed, distance)
    phi = problem.exact_limit(x)
    scale = 1 + np.linalg.norm(x) ** 2 + np.linalg.norm(phi) ** 2  # u² − v² and u ± v are quadratic and linear in x
    assert on_minima_set(problem, phi)
    assert_close(problem.conserved(phi), problem.conserved(x), scale)  # the balances u² − v²
    assert_close(problem.exact_limit(phi), phi, scale)  # Φ∘Φ = Φ
    # u + v and u − v scale by e^{−b} and e^{b}: neither changes sign
    (u0, v0), (u, v) = problem.split(x), problem.split(phi)
    assert np.all(np.sign(u + v) == np.sign(u0 + v0)) and np.all(np.sign(u - v) == np.sign(u0 - v0))


@given(seed=seeds, size=st.integers(0, 2))
def test_diagonal_network_exact_limit_jacobian_is_the_derivative_of_the_limit(seed, size):
    problem = small_problem(DiagonalLinearNetwork, seed, size)
    x = _near_minimum(problem, seed, 0.3)
    A = problem.exact_limit_jacobian(x)
    # Fourth-order central differences, h = 1e-5: truncation ~h⁴‖∂⁵Φ‖, rounding ~1e-16/h. Over 903 instances the
    # largest error was 6.6e-11 of the scale (second-order differences reached 9.8e-7 on seed 12330, size 2).
    h = 1e-5

    def shifted(s):
        return np.stack([problem.exact_limit(x + s * h * e) for e in np.eye(problem.dim)], axis=1)

    fd = (8 * (shifted(1) - shifted(-1)) - (shifted(2) - shifted(-2))) / (12 * h)
    assert_close(A, fd, 1 + np.max(np.abs(A)), rtol=1e-8)
    assert_close(A @ problem.grad(x), 0.0, np.linalg.norm(problem.grad(x)))  # Φ is constant along the flow
    at_limit = problem.exact_limit_jacobian(problem.exact_limit(x))  # on X*: the tangent projector P, and P A = A
    assert_close(at_limit @ at_limit, at_limit, 1.0)
    assert_close(at_limit @ A, A, 1 + np.max(np.abs(A)))
    assert round(np.trace(at_limit)) == problem.dim - problem.n_samples


def test_diagonal_network_exact_limit_handles_balanced_and_dead_pairs_and_far_starts():
    problem = DiagonalLinearNetwork.random(3, 8, rng=0)
    x = problem.random_minimum(rng=1) + 0.2
    u, v = problem.split(x)
    u[0] = v[0]  # balanced (u² − v² = 0: arcsinh(2w/δ) would be infinite), and a dead pair u = v = 0
    u[1] = v[1] = 0.0
    phi = problem.exact_limit(x)
    assert on_minima_set(problem, phi)
    pu, pv = problem.split(phi)
    assert pu[0] == pv[0] and pu[1] == pv[1] == 0.0  # balanced pairs stay balanced, dead ones dead
    far = problem.exact_limit(10 * x)
    assert on_minima_set(problem, far) and np.allclose(problem.conserved(far), problem.conserved(10 * x))


def test_diagonal_network_exact_limit_says_when_the_flow_cannot_interpolate():
    from flatref.errors import ConvergenceError

    problem = DiagonalLinearNetwork([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], [1.0, 2.0])
    x = np.array([1.0, 0.0, 0.0, 0.5, 0.0, 0.0])  # only w_0 can move; Zw = y needs w_1 ≠ 0
    with pytest.raises(ConvergenceError, match="no interpolating limit"):
        problem.exact_limit(x)
    with pytest.raises(ValueError, match="max_iter"):
        problem.exact_limit(x, max_iter=0)


# ------------------------------------------------------------ matrix sensing
def test_matrix_sensing_sharp_minimum_interpolates_with_large_extra_columns():
    problem = MatrixSensing.random(10, 4, 1, 10, rng=0)
    sharp = problem.sharp_minimum(scale=1.0)
    truth = problem.truth_factor().ravel()
    assert on_minima_set(problem, sharp)
    U = problem.as_matrix(sharp)
    assert np.linalg.norm(U[:, 1:]) > 0.5  # extra columns survive the projection
    assert problem.recovery_error(sharp) > 1.0
    assert problem.recovery_error(truth) < 1e-12
    assert problem.trace_hess(sharp) > 2 * problem.trace_hess(truth)


def test_matrix_sensing_sharp_minimum_refuses_when_the_truth_is_the_only_interpolant():
    # m = 30 = 3nk Gaussian measurements: M* is the only PSD solution, X* is the truth orbit.
    problem = MatrixSensing.random(10, 4, 1, 30, rng=0)
    with pytest.raises(ValueError, match="only PSD interpolant"):
        problem.sharp_minimum()


def test_matrix_sensing_trace_is_constant_on_the_truth_orbit():
    # tr∇²f = ⟨K, UUᵀ⟩ + const, so every U with UUᵀ = M* has the same trace.
    problem = MatrixSensing.random(5, 3, 2, 8, rng=1)
    U = problem.truth_factor()
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    assert problem.trace_hess((U @ Q).ravel()) == pytest.approx(problem.trace_hess(U.ravel()), rel=1e-12)
