"""The tangent geometry of X* (``flatref.geometry``) and the problems' own geometry methods."""

import warnings

import numpy as np
import pytest
from helpers import Valley
from hypothesis import given
from hypothesis import strategies as st

from flatref import ConvergenceError, normal_basis, proj_out, project_tangent, tangent_projector
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression

EX1 = Example1()


@given(st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_proj_out_removes_the_component_along_u(seed, d):
    u, v = np.random.default_rng(seed).standard_normal((2, d))
    w = proj_out(u, v)
    assert abs(w @ u) <= 1e-12 * np.linalg.norm(u) * np.linalg.norm(v)
    np.testing.assert_allclose(v - w, ((u @ v) / (u @ u)) * u, atol=1e-12 * np.linalg.norm(v))
    np.testing.assert_array_equal(proj_out(np.zeros(d), v), v)  # Proj⊥_0 is the identity


@pytest.mark.parametrize("scale_u, scale_v", [(1e300, 1.0), (1.0, 1e300), (1e-300, 1e300), (1e300, 1e-300)])
def test_proj_out_is_scale_invariant_where_inner_products_would_overflow(scale_u, scale_v):
    # Proj⊥_{cu}(s v) = s Proj⊥_u(v): checked where ⟨u, v⟩ or ‖u‖² leaves float64's range
    u, v = np.array([3.0, -4.0, 1.0]), np.array([1.0, 2.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = proj_out(scale_u * u, scale_v * v)
    np.testing.assert_allclose(w / scale_v, proj_out(u, v), rtol=1e-14)


def test_proj_out_refuses_non_finite_vectors():
    with pytest.raises(ValueError, match="v contains non-finite"):
        proj_out(np.ones(2), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="u contains non-finite"):
        proj_out(np.array([np.inf, 1.0]), np.ones(2))


def test_setting1_projector_equals_the_hessian_null_space_projector():
    # The Setting-1 rule uses J; Definition 1 needs the null space of ∇²f: at x* ∈ X* they agree (eq. (31)).
    x_star = np.array([2.0, 0.5])
    lam, Q = np.linalg.eigh(EX1.hess(x_star))
    normal = Q[:, lam > 1e-6 * lam[-1]]
    P = tangent_projector(EX1, x_star)
    np.testing.assert_allclose(P, np.eye(2) - normal @ normal.T, atol=1e-12)
    v = np.array([0.3, -2.0])
    np.testing.assert_allclose(project_tangent(EX1, x_star, v), P @ v, atol=1e-14)


def test_normal_basis_is_orthonormal_and_spans_the_output_gradients():
    problem = DiagonalLinearNetwork.random(4, 9, sparsity=2, rng=2)
    x_star = problem.random_minimum(0)
    N = normal_basis(problem, x_star)
    J = problem.output_jacobian(x_star)
    assert N.shape == (problem.dim, problem.n_samples)
    np.testing.assert_allclose(N.T @ N, np.eye(problem.n_samples), atol=1e-13)
    np.testing.assert_allclose(J.T - N @ (N.T @ J.T), 0.0, atol=1e-12)


def test_the_generic_normal_basis_is_the_hessian_range():
    # On the unit circle ∇²f = 2xxᵀ: the normal space is spanned by x itself.
    x_star = np.array([0.6, 0.8])
    N = normal_basis(Valley(), x_star)
    assert N.shape == (2, 1)
    np.testing.assert_allclose(abs(N[:, 0]), x_star, atol=1e-14)
    np.testing.assert_allclose(tangent_projector(Valley(), x_star), np.eye(2) - np.outer(x_star, x_star), atol=1e-14)


def test_the_generic_projection_lands_on_the_minima_set_at_second_order_from_phi():
    # Φ(x) = x/|x| (the flow is radial); Newton on the normal space lands on |x| = 1 along x itself.
    for scale in (1.2, 1.01):  # outside the circle; inside, the tangent curvature |x|² − 1 is negative
        x = scale * np.array([0.6, 0.8])
        projected = Valley().project_to_minima(x)
        np.testing.assert_allclose(projected, x / np.linalg.norm(x), atol=1e-13)
    assert not Valley().projection_is_global  # a Newton projection certifies no global minimum


def test_the_generic_projection_refuses_negative_curvature_and_large_problems():
    with pytest.raises(ConvergenceError, match="no minimum near"):
        Valley().project_to_minima([0.1, 0.0])  # next to the local maximum at the origin
    with pytest.raises(ConvergenceError, match="max_dim"):
        Valley().project_to_minima([1.1, 0.0], max_dim=1)
    with pytest.raises(ValueError, match="rtol"):
        Valley().project_to_minima([1.1, 0.0], rtol=0.0)


def test_setting1_projection_is_gauss_newton_and_certifies_a_global_minimum():
    problem = LinearRegression.random(3, 6, rng=0)
    x = np.ones(6)
    np.testing.assert_allclose(problem.project_to_minima(x), problem.exact_limit(x), atol=1e-12)  # linear: Φ exactly
    assert problem.projection_is_global
    with pytest.raises(ConvergenceError, match="did not reach"):
        Example1().project_to_minima([1e-9, -1e-9], max_iter=1)


def test_project_tangent_takes_vectors_and_matrices_and_checks_their_shape():
    x_star = np.array([2.0, 0.5])
    V = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(project_tangent(EX1, x_star, V), tangent_projector(EX1, x_star), atol=1e-14)
    with pytest.raises(ValueError, match=r"v must have shape \(2,\) or \(2, k\)"):
        project_tangent(EX1, x_star, np.ones(3))
