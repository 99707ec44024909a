"""The derivative checker passes correct problems and catches each kind of mistake."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing
from flatref.testing import (
    FAMILIES,
    DerivativeCheck,
    check_derivatives,
    points_near_minima,
    problems,
    small_problem,
)


class WrongGradSign(Example1):
    def _grad(self, x):
        return -super()._grad(x)


class WrongHessScale(Example1):
    def _hess(self, x):
        return 1.01 * super()._hess(x)


class MissingThirdTerm(DiagonalLinearNetwork):
    """Drops the ``(G M a)⊙b`` term of the contraction, a plausible slip."""

    def _third_contract(self, x, a, b):
        full = super()._third_contract(x, a, b)
        u, v = self.split(x)
        a_u, a_v = self.split(a)
        b_u, b_v = self.split(b)
        ha = self._Z.T @ (self._Z @ (v * a_u + u * a_v)) / self.n_samples
        return full - np.concatenate([ha * b_v, ha * b_u])


class WrongTrace(MatrixSensing):
    def _trace_hess(self, x):
        return super()._trace_hess(x) + 1e-3


class WrongGradTrace(MatrixSensing):
    def _grad_trace_hess(self, x):
        return 0.5 * super()._grad_trace_hess(x)


@pytest.mark.parametrize("family", FAMILIES, ids=[f.__name__ for f in FAMILIES])
@pytest.mark.parametrize("where", ["random point", "minimum"])
def test_every_family_passes(family, where):
    problem = small_problem(family, 3, 2)
    x = None if where == "random point" else problem.random_minimum(5)
    check = check_derivatives(problem, x, rng=1)
    assert isinstance(check, DerivativeCheck)
    assert check.passed, str(check)
    for order in check.orders:
        assert order.fd_error < 1e-8
        # Polynomial losses of degree ≤ k+1 have exact Taylor polynomials at order k.
        assert order.slope is None or order.slope == pytest.approx(order.expected_slope, abs=0.1)


def test_linear_regression_taylor_polynomial_is_exact_beyond_order_one():
    check = check_derivatives(LinearRegression.random(3, 5, rng=0))
    assert check.orders[0].slope == pytest.approx(2.0, abs=0.05)
    assert check.orders[1].slope is None and check.orders[2].slope is None


def test_a_wrong_gradient_sign_is_caught():
    check = check_derivatives(WrongGradSign(), [0.4, 1.7])
    grad = check.orders[0]
    assert not check.passed and not grad.passed
    assert grad.slope == pytest.approx(1.0, abs=0.1)  # R_1 = O(h) instead of O(h²)
    assert grad.fd_error > 0.1  # 2|g·v| / (|g·v| + |vᵀHv|)


def test_a_slightly_wrong_hessian_is_caught():
    check = check_derivatives(WrongHessScale(), [0.4, 1.7])
    assert check.orders[0].passed and not check.orders[1].passed
    assert check.orders[1].slope == pytest.approx(2.0, abs=0.1)
    assert check.orders[1].fd_error > 1e-3


def test_a_missing_third_derivative_term_is_caught():
    problem = MissingThirdTerm(*_design())
    check = check_derivatives(problem)
    assert check.orders[0].passed and check.orders[1].passed
    assert not check.orders[2].passed
    assert check.orders[2].slope == pytest.approx(3.0, abs=0.1)


def test_wrong_trace_and_trace_gradient_are_caught():
    A, y, r = _sensing()
    assert check_derivatives(WrongTrace(A, y, r)).trace_error > 1e-6
    check = check_derivatives(WrongGradTrace(A, y, r))
    assert not check.passed and check.grad_trace_error > 0.1


def test_report_is_a_readable_table():
    text = str(check_derivatives(Example1(), [0.5, 2.0]))
    assert text.startswith("derivative check of Example1(): passed")
    for word in ("gradient", "Hessian", "third derivative", "trace_hess", "grad_trace_hess"):
        assert word in text


def test_checker_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"x must have shape \(2,\)"):
        check_derivatives(Example1(), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="fd_tol must be positive"):
        check_derivatives(Example1(), fd_tol=0.0)
    with pytest.raises(ValueError, match="n_directions must be >= 1"):
        check_derivatives(Example1(), n_directions=0)


def test_small_problem_rejects_unknown_families():
    with pytest.raises(TypeError, match="family must be one of"):
        small_problem(dict, 0)


@settings(max_examples=20)
@given(problems())
def test_problem_strategy_draws_valid_small_instances(problem):
    assert problem.dim <= 12
    assert np.all(np.isfinite(problem.grad(np.ones(problem.dim))))


@settings(max_examples=20)
@given(st.data())
def test_points_near_minima_are_within_the_distance(data):
    problem = small_problem(data.draw(st.sampled_from(FAMILIES)), data.draw(st.integers(0, 100)), 1)
    x = data.draw(points_near_minima(problem, max_distance=1e-3))
    # x = x* + t·e with p(x*) = y, |t| ≤ 1e-3: p(x) − y = t·J e + O(t²), so |p(x) − y| ≲ 1e-3·‖J‖.
    residual = np.linalg.norm(problem.outputs(x) - problem.y)
    assert residual <= 2e-3 * (1 + np.linalg.norm(problem.output_jacobian(x), 2))


def _design():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((3, 5))
    return Z, Z @ rng.standard_normal(5)


def _sensing():
    problem = MatrixSensing.random(3, 2, 1, 4, rng=0)
    return problem.A, problem.y, problem.r


# ------------------------------------------------------------------------- the lemma checks (issue 13)
@pytest.mark.parametrize("family", FAMILIES, ids=[f.__name__ for f in FAMILIES])
def test_check_lemmas_passes_on_every_family(family):
    from flatref.testing import check_lemmas

    problem = small_problem(family, 0, 1)
    report = check_lemmas(problem, problem.random_minimum(1))
    assert report.passed, str(report)
    assert [c.name for c in report.checks if c.applicable][:2] == ["eq. (16)", "Lemma 1"]


def test_check_lemmas_catches_a_wrong_trace_gradient_and_a_wrong_hessian():
    from flatref.testing import check_lemmas

    class WrongTrace(Example1):
        def _grad_trace_hess(self, x):
            return 1.01 * super()._grad_trace_hess(x)

    class WrongHessian(Example1):
        def _hess(self, x):
            return 1.01 * super()._hess(x)

    failed = {c.name for c in check_lemmas(WrongTrace(), [2.0, 0.5]).checks if not c.passed}
    assert "eq. (16)" in failed
    failed = {c.name for c in check_lemmas(WrongHessian(), [2.0, 0.5]).checks if not c.passed}
    assert "eq. (31)" in failed
    with pytest.raises(ValueError, match="x_star must be a minimum"):
        check_lemmas(Example1(), [2.0, 1.0])


def test_the_strategies_take_a_factory_of_your_own():
    from hypothesis import given, settings

    def factory(seed, size):
        return LinearRegression.random(2 + size, 5 + size, rng=seed)

    @settings(max_examples=5, database=None, derandomize=True, deadline=None)
    @given(problems(families=(factory,), max_size=1))
    def built(problem):
        assert isinstance(problem, LinearRegression) and problem.dim in (5, 6)

    built()
    with pytest.raises(TypeError, match="the factory's result must be a flatref Problem"):
        small_problem(lambda seed, size: None, 0)
