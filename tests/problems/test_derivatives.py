"""Every closed form of every family against independent routes.

Routes: complex-step derivatives of the order below (exact to rounding), central
finite differences (truncation ``O(h²)``), the full tensor the contraction should
equal, the generic defaults of ``Problem`` and the chain rule of ``TrainingLoss``.
"""

import itertools

import numpy as np
import pytest
from helpers import assert_close, assert_derivatives_exact, complex_step_jacobian, derivative_scale
from hypothesis import given
from hypothesis import strategies as st

from flatref.problems import Problem, TrainingLoss
from flatref.testing import FAMILIES, points, small_problem

FAMILY_IDS = [f.__name__ for f in FAMILIES]


@st.composite
def problem_and_point(draw, near_minimum=False):
    problem = small_problem(draw(st.sampled_from(FAMILIES)), draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2)))
    if near_minimum:
        return problem, problem.random_minimum(draw(st.integers(0, 2**32 - 1)))
    return problem, draw(points(problem))


def unit(rng, d):
    v = rng.standard_normal(d)
    return v / np.linalg.norm(v)


@given(problem_and_point(), st.integers(0, 2**32 - 1))
def test_each_order_is_the_complex_step_derivative_of_the_order_below(pp, seed):
    problem, x = pp
    rng = np.random.default_rng(seed)
    assert_derivatives_exact(problem, x, unit(rng, problem.dim), unit(rng, problem.dim))


@given(problem_and_point())
def test_closed_forms_match_central_finite_differences(pp):
    # h = 1e-5: truncation h²·|∇⁴f| ≈ 1e-10·scale, rounding ε·scale/h ≈ 2e-11·scale; tolerance 1e-7·scale.
    problem, x = pp
    h = 1e-5
    scale = derivative_scale(problem, x)
    eye = np.eye(problem.dim)
    fd_grad = [(problem.f(x + h * e) - problem.f(x - h * e)) / (2 * h) for e in eye]
    fd_hess = [(problem.grad(x + h * e) - problem.grad(x - h * e)) / (2 * h) for e in eye]
    fd_trace = [(problem.trace_hess(x + h * e) - problem.trace_hess(x - h * e)) / (2 * h) for e in eye]
    assert_close(problem.grad(x), fd_grad, scale, rtol=1e-7)
    assert_close(problem.hess(x), np.array(fd_hess).T, scale, rtol=1e-7)
    assert_close(problem.grad_trace_hess(x), fd_trace, scale, rtol=1e-7)


@given(problem_and_point())
def test_third_tensor_is_symmetric_and_third_contract_is_its_contraction(pp):
    problem, x = pp
    T = problem.third(x)
    scale = derivative_scale(problem, x)
    assert T.shape == (problem.dim,) * 3
    for perm in itertools.permutations(range(3)):
        assert_close(T.transpose(perm), T, scale, rtol=1e-14)
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((2, problem.dim))
    uv = np.linalg.norm(u) * np.linalg.norm(v)  # contractions scale with |u||v|
    assert_close(problem.third_contract(x, u, v), np.einsum("kij,i,j->k", T, u, v), scale * uv)


@given(problem_and_point())
def test_trace_and_its_gradient_equal_the_generic_defaults(pp):
    problem, x = pp
    scale = derivative_scale(problem, x)
    assert_close(problem.trace_hess(x), np.trace(problem.hess(x)), scale)
    # grad tr∇²f = Σ_i ∇³f[e_i, e_i]: the contraction with the identity, and the tensor's partial trace.
    assert_close(problem.grad_trace_hess(x), Problem._grad_trace_hess(problem, x), scale)
    assert_close(problem.grad_trace_hess(x), np.einsum("kii->k", problem.third(x)), scale)


@given(problem_and_point())
def test_generic_third_defaults_agree_with_the_closed_forms(pp):
    problem, x = pp
    scale = derivative_scale(problem, x)
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal((2, problem.dim))
    uv = np.linalg.norm(u) * np.linalg.norm(v)  # contractions scale with |u||v|
    assert_close(Problem._third(problem, x), problem.third(x), scale)
    assert_close(Problem._third_contract(problem, x, u, v), problem.third_contract(x, u, v), scale * uv)


@given(problem_and_point())
def test_chain_rule_defaults_equal_the_closed_form_overrides(pp):
    problem, x = pp
    scale = derivative_scale(problem, x)
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((2, problem.dim))
    uv = np.linalg.norm(u) * np.linalg.norm(v)  # contractions scale with |u||v|
    assert_close(TrainingLoss._f(problem, x), problem.f(x), scale)
    assert_close(TrainingLoss._grad(problem, x), problem.grad(x), scale)
    assert_close(TrainingLoss._hess(problem, x), problem.hess(x), scale)
    assert_close(TrainingLoss._third(problem, x), problem.third(x), scale)
    assert_close(TrainingLoss._third_contract(problem, x, u, v), problem.third_contract(x, u, v), scale * uv)
    batch = np.array([problem.n_samples - 1, 0])
    labels = problem.y[batch] + rng.standard_normal(problem.y[batch].shape)
    for args in [(batch,), (batch, labels.reshape(-1))]:  # the private form takes label rows
        assert_close(TrainingLoss._sample_grad(problem, x, *args), problem.unchecked.sample_grad(x, *args), scale)


@given(problem_and_point())
def test_value_and_grad_is_f_and_grad_in_one_pass(pp):
    # the shared residual must give the same numbers as the two separate closed forms and the chain rule's
    problem, x = pp
    scale = derivative_scale(problem, x)
    value, grad = problem.value_and_grad(x)
    assert_close(value, problem.f(x), scale)
    assert_close(grad, problem.grad(x), scale)
    generic_value, generic_grad = TrainingLoss._value_and_grad(problem, x)
    assert_close(generic_value, problem.f(x), scale)
    assert_close(generic_grad, problem.grad(x), scale)
    assert Problem._value_and_grad(problem, x)[0] == problem.f(x)


@given(problem_and_point())
def test_output_derivatives_are_exact(pp):
    problem, x = pp
    scale = derivative_scale(problem, x)
    assert_close(problem.output_jacobian(x), complex_step_jacobian(problem.outputs, x), scale)
    H = problem._output_hessians(x)
    assert_close(H, complex_step_jacobian(problem.output_jacobian, x), scale)
    assert_close(H, H.transpose(0, 2, 1), 0.0)


@given(problem_and_point(near_minimum=True))
def test_hessian_on_the_minima_set_is_the_gauss_newton_matrix(pp):
    """Eq. (31): on X*, ∇²f = (1/n) Σ ℓ″(y_i, y_i) ∇p_i ∇p_iᵀ."""
    problem, x = pp
    J = problem.output_jacobian(x)
    l2 = problem.loss.d2(problem.y, problem.y)
    scale = derivative_scale(problem, x)
    # The dropped term (1/n) Σ ℓ′_i ∇²p_i is O(residual) ≤ 1e-12·scale at our minima.
    assert_close(problem.hess(x), (J.T * l2) @ J / problem.n_samples, scale, rtol=1e-9)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@given(seed=st.integers(0, 2**32 - 1))
def test_sample_grad_is_the_mean_of_the_per_sample_gradients(family, seed):
    problem = small_problem(family, seed, 2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(problem.dim)
    n = problem.n_samples
    singles = []
    for i in range(n):
        def f_i(z, i=i):
            return problem.loss.value(problem.outputs(z)[i], problem.y[i])

        singles.append(complex_step_jacobian(f_i, x))
        assert_close(problem.sample_grad(x, [i]), singles[-1], derivative_scale(problem, x))
    scale = derivative_scale(problem, x)
    assert_close(problem.sample_grad(x, np.arange(n)), problem.grad(x), scale)
    batch = rng.integers(0, n, size=3)  # repeated indices count with multiplicity
    assert_close(problem.sample_grad(x, batch), np.mean([singles[i] for i in batch], axis=0), scale)


@given(problem_and_point(), st.integers(1, 3))
def test_hessian_vector_products_equal_the_dense_hessian(pp, k):
    problem, x = pp
    scale = derivative_scale(problem, x)
    V = np.random.default_rng(k).standard_normal((problem.dim, k))
    H = problem.hess(x)
    assert_close(problem.hess_vec(x, V), H @ V, scale * np.linalg.norm(V))
    assert_close(problem.hess_vec(x, V[:, 0]), H @ V[:, 0], scale * np.linalg.norm(V))
    assert problem.hess_vec(x, V[:, 0]).shape == (problem.dim,)
    assert_close(TrainingLoss._hess_vec(problem, x, V), H @ V, scale * np.linalg.norm(V))
