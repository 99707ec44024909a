"""The generic defaults of Problem and the chain rule of TrainingLoss, on user-style problems.

The families all have quadratic outputs and the squared loss, so ``∇³p_i`` and
``ℓ‴`` never enter there. The problems here are not polynomial: a model
``p_i(x) = sin(a_iᵀx)`` under the log-cosh loss exercises every term of the chain
rule, and two plain problems exercise the two directions between ``_third`` and
``_third_contract``.
"""

import numpy as np
import pytest
from helpers import (
    LogCosh,
    PlainQuadratic,
    SineModel,
    assert_close,
    assert_derivatives_exact,
    derivative_scale,
    sine_model,
)
from hypothesis import given
from hypothesis import strategies as st

from flatref.problems import Problem, SquaredLoss, TrainingLoss
from flatref.testing import check_derivatives


class ExpSum(Problem):
    """``f(x) = Σ_k exp(b_k x_k) + (Σ x)³/6``; gives ``_third`` only."""

    def __init__(self, b):
        super().__init__(b.size)
        self.b = b

    def _f(self, x):
        s = np.sum(x)
        return np.sum(np.exp(self.b * x)) + s**3 / 6

    def _grad(self, x):
        return self.b * np.exp(self.b * x) + np.sum(x) ** 2 / 2

    def _hess(self, x):
        return np.diag(self.b**2 * np.exp(self.b * x)) + np.sum(x)

    def _third(self, x):
        d = self.dim
        T = np.ones((d, d, d), dtype=x.dtype)
        T[np.arange(d), np.arange(d), np.arange(d)] += self.b**3 * np.exp(self.b * x)
        return T


class ExpSumContract(ExpSum):
    """The same function, giving ``_third_contract`` instead of ``_third``."""

    _third = Problem._third

    def _third_contract(self, x, u, v):
        return self.b**3 * np.exp(self.b * x) * u * v + np.sum(u) * np.sum(v)


@given(st.integers(0, 2**32 - 1), st.sampled_from([None, SquaredLoss(2.0), LogCosh()]))
def test_chain_rule_is_exact_for_non_polynomial_models_and_losses(seed, loss):
    problem = sine_model(seed, loss=loss)
    rng = np.random.default_rng(seed)
    assert_derivatives_exact(problem, *rng.standard_normal((3, problem.dim)))


@pytest.mark.parametrize("cls", [ExpSum, ExpSumContract])
@given(seed=st.integers(0, 2**32 - 1))
def test_generic_third_order_defaults_are_exact(cls, seed):
    rng = np.random.default_rng(seed)
    problem = cls(rng.uniform(-1, 1, size=4))
    x, u, v = rng.uniform(-1, 1, size=(3, 4))
    assert_derivatives_exact(problem, x, u, v)
    assert_close(problem.trace_hess(x), np.trace(problem.hess(x)), derivative_scale(problem, x))


def test_user_problems_pass_the_derivative_checker():
    assert check_derivatives(sine_model(0, loss=LogCosh()), rng=1).passed
    assert check_derivatives(ExpSumContract(np.array([0.5, -0.3, 1.0])), rng=1).passed


def test_a_problem_without_third_derivatives_says_so():
    with pytest.raises(NotImplementedError, match="_third or _third_contract"):
        PlainQuadratic().third([1.0, 2.0])
    with pytest.raises(NotImplementedError, match="_third or _third_contract"):
        PlainQuadratic().grad_trace_hess([1.0, 2.0])


def test_non_quadratic_outputs_need_output_thirds():
    class Incomplete(SineModel):
        _output_thirds = TrainingLoss._output_thirds

    problem = Incomplete(np.eye(2, 3), np.zeros(2))
    assert np.isfinite(problem.hess(np.ones(3))).all()
    with pytest.raises(NotImplementedError, match="quadratic_outputs"):
        problem.third_contract(np.ones(3), np.ones(3), np.ones(3))


def test_known_facts_default_to_a_clear_not_implemented_error():
    for method, args in [
        ("random_minimum", ()),
        ("sharp_minimum", ()),
        ("flat_minima", ()),
        ("conserved", ([1.0, 2.0],)),
        ("exact_limit", ([1.0, 2.0],)),
        ("exact_limit_jacobian", ([1.0, 2.0],)),
    ]:
        with pytest.raises(NotImplementedError, match=f"PlainQuadratic does not provide {method}"):
            getattr(PlainQuadratic(), method)(*args)


def test_squared_loss_derivatives():
    loss = SquaredLoss(3.0)
    z, y = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    np.testing.assert_array_equal(loss.value(z, y), 1.5 * (z - y) ** 2)
    np.testing.assert_array_equal(loss.d1(z, y), 3.0 * (z - y))
    np.testing.assert_array_equal(loss.d2(z, y), [3.0, 3.0])
    np.testing.assert_array_equal(loss.d3(z, y), [0.0, 0.0])
    with pytest.raises(ValueError, match="weight"):
        SquaredLoss(-1.0)


def test_min_norm_solution_falls_back_to_lstsq_where_the_gram_solve_fails():
    from flatref.problems.base import min_norm_solution

    rng = np.random.default_rng(0)
    J, r = rng.standard_normal((5, 12)), rng.standard_normal(5)
    np.testing.assert_allclose(min_norm_solution(J, r), np.linalg.pinv(J) @ r, rtol=0, atol=1e-12)
    J[4] = J[3]  # rank 4: JJᵀ singular (or its solve inaccurate), so lstsq's minimum-norm least-squares solution
    r[4] = r[3]
    np.testing.assert_allclose(min_norm_solution(J, r), np.linalg.pinv(J) @ r, rtol=0, atol=1e-12)
