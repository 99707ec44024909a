"""Extreme Hessian eigenvalues (``flatref.spectrum``): dense, and ARPACK on Hessian-vector products.

Tolerances: ARPACK stops when a Ritz pair's residual is below ``tol · |θ|`` (``tol = 1e-10``, ``|θ| ≤ λ_max``),
and for a symmetric operator an eigenvalue is within the residual of a Ritz value. So ``1e-9 · λ_max``
is ten times the bound; the measured errors are ``1e-13`` and below (``benchmarks/spectrum.py``).
"""

import numpy as np
import pytest
from scipy.sparse.linalg import ArpackNoConvergence

import flatref.spectrum as spectrum
from flatref.errors import ConvergenceError
from flatref.problems import DiagonalLinearNetwork, Example1, MatrixSensing, Problem
from flatref.problems.base import DENSE_MAX_DIM
from flatref.spectrum import SPECTRUM_DENSE_MAX_DIM, extreme_eigenvalues, top_eigenvalue_step


class Quadratic(Problem):
    """``f = xᵀHx/2`` with ``H = Q diag(λ) Qᵀ`` and ``Q = (I − 2aaᵀ)(I − 2bbᵀ)`` for random unit ``a, b``:
    a Hessian whose eigenvectors are not coordinate axes, applied in ``O(d)`` per product."""

    def __init__(self, lam, seed=0):
        super().__init__(lam.size)
        self.lam = lam
        self.a, self.b = (u / np.linalg.norm(u) for u in np.random.default_rng(seed).standard_normal((2, lam.size)))

    def _q(self, v, transpose=False):  # Q v (or Qᵀ v): the two reflections, in order
        first, second = (self.a, self.b) if transpose else (self.b, self.a)
        for u in (first, second):
            v = v - 2 * np.outer(u, u @ v).reshape(v.shape)
        return v

    def _hess_vec(self, x, v):
        return self._q(self.lam.reshape((-1,) + (1,) * (v.ndim - 1)) * self._q(v, transpose=True))

    def _f(self, x):
        return x @ self._hess_vec(x, x) / 2

    def _grad(self, x):
        return self._hess_vec(x, x)

    def _hess(self, x):
        return self._hess_vec(x, np.eye(self.dim))

    def _third_contract(self, x, u, v):
        return np.zeros(self.dim)


def hidden_saddle(zeros=1900, seed=0):
    """One eigenvalue −0.3 next to a cluster of ``zeros`` zeros, and 50 in [0.5, 3], in a rotated basis."""
    lam = np.concatenate([[-0.3], np.zeros(zeros), np.random.default_rng(seed).uniform(0.5, 3.0, 50)])
    return Quadratic(lam, seed), lam


def test_arpack_finds_a_negative_eigenvalue_hidden_next_to_a_cluster_of_zeros():
    problem, lam = hidden_saddle()
    small = Quadratic(lam[::10])  # the construction itself, against dense eigvalsh
    np.testing.assert_allclose(np.linalg.eigvalsh(small.hess(np.zeros(small.dim))), np.sort(lam[::10]), atol=1e-14)
    assert problem.dim > DENSE_MAX_DIM  # ARPACK, with no dense fallback
    lam_min, lam_max = extreme_eigenvalues(problem, np.zeros(problem.dim))
    assert lam_min == pytest.approx(-0.3, abs=1e-9 * lam.max())
    assert lam_max == pytest.approx(lam.max(), abs=1e-9 * lam.max())
    # both lie inside the spectrum (up to rounding of the products, ~1e-15): the negative value is real
    assert lam_min >= -0.3 - 1e-13 and lam_max <= lam.max() + 1e-13


@pytest.mark.parametrize("offset", [0.0, 0.01])  # at a minimum (λ_min in a cluster of 360 zeros) and off it
def test_arpack_agrees_with_dense_eigvalsh_on_a_network(offset):
    problem = DiagonalLinearNetwork.random(20, 200, rng=0)  # d = 400 > SPECTRUM_DENSE_MAX_DIM
    x = problem.random_minimum(0) + offset
    dense = np.linalg.eigvalsh(problem.hess(x))
    lam_min, lam_max = extreme_eigenvalues(problem, x)
    assert problem.dim > SPECTRUM_DENSE_MAX_DIM
    assert lam_min == pytest.approx(dense[0], abs=1e-9 * dense[-1])
    assert lam_max == pytest.approx(dense[-1], abs=1e-9 * dense[-1])
    assert lam_min >= dense[0] - 1e-13 and lam_max <= dense[-1] + 1e-13  # inside the spectrum
    forced = extreme_eigenvalues(problem, x, dense_max_dim=problem.dim)  # the dense route on request
    np.testing.assert_array_equal(forced, dense[[0, -1]])


def test_arpack_agrees_with_dense_eigvalsh_on_matrix_sensing_at_a_minimum():
    problem = MatrixSensing.random(30, 10, 2, 60, rng=0)  # d = 300
    x = problem.random_minimum(0)
    dense = np.linalg.eigvalsh(problem.hess(x))
    lam_min, lam_max = extreme_eigenvalues(problem, x)
    assert lam_min == pytest.approx(dense[0], abs=1e-9 * dense[-1])
    assert lam_max == pytest.approx(dense[-1], abs=1e-9 * dense[-1])


def test_a_minimum_is_never_reported_as_negative_curvature():
    # The limit map calls a point a saddle when λ_min < −1e-5 max(1, λ_max); the reported λ_min is a Rayleigh
    # quotient, never below the true one (here ≥ −3e-14), so it cannot cross that threshold at a minimum.
    problem = DiagonalLinearNetwork.random(20, 200, rng=0)
    for seed in range(5):
        lam_min, lam_max = extreme_eigenvalues(problem, problem.random_minimum(seed), rng=seed)
        assert lam_min > -1e-9 * lam_max


def test_the_same_seed_gives_the_same_bits():
    problem = DiagonalLinearNetwork.random(20, 200, rng=0)
    x = problem.random_minimum(0) + 0.01
    assert extreme_eigenvalues(problem, x, rng=3) == extreme_eigenvalues(problem, x, rng=3)
    assert top_eigenvalue_step(problem, x, rng=3) == top_eigenvalue_step(problem, x, rng=3)
    other = extreme_eigenvalues(problem, x, rng=4)  # another start vector: equal to the tolerance, not the bits
    np.testing.assert_allclose(other, extreme_eigenvalues(problem, x, rng=3), rtol=0, atol=1e-9 * other[1])


def test_arpack_that_does_not_converge_falls_back_to_dense_or_raises(monkeypatch):
    calls = []

    def no_convergence(*args, **kwargs):
        calls.append(kwargs["ncv"])
        raise ArpackNoConvergence("no convergence", np.zeros(0), np.zeros((0, 0)))

    monkeypatch.setattr(spectrum, "eigsh", no_convergence)
    net = DiagonalLinearNetwork.random(20, 200, rng=0)  # d = 400 ≤ DENSE_MAX_DIM: the dense answer
    x = net.random_minimum(0) + 0.01
    dense = np.linalg.eigvalsh(net.hess(x))
    assert extreme_eigenvalues(net, x) == (dense[0], dense[-1])
    assert calls[:2] == [20, 80]  # each eigenvalue tried twice, the second time with a 4× larger basis
    problem, _ = hidden_saddle()  # d = 1951 > DENSE_MAX_DIM: no silent answer
    with pytest.raises(ConvergenceError, match="ARPACK did not converge to λ_max"):
        extreme_eigenvalues(problem, np.zeros(problem.dim))
    with pytest.raises(ConvergenceError, match="ARPACK did not converge"):
        top_eigenvalue_step(problem, np.zeros(problem.dim))


def test_a_real_non_convergence_at_a_cluster_is_retried_with_a_larger_basis(monkeypatch):
    # tol = 1e-15 asks for residuals of 1e-15 λ_max next to the cluster of 290 zeros: a basis of 5 runs out of
    # restarts (measured), the retry with a basis of 20 converges.
    outcomes, real_eigsh = [], spectrum.eigsh

    def spy(*args, **kwargs):
        try:
            result = real_eigsh(*args, **kwargs)
        except ArpackNoConvergence:
            outcomes.append(("failed", kwargs["ncv"]))
            raise
        outcomes.append(("converged", kwargs["ncv"]))
        return result

    monkeypatch.setattr(spectrum, "eigsh", spy)
    problem = DiagonalLinearNetwork.random(10, 150, rng=0)  # d = 300
    x = problem.random_minimum(0)
    dense = np.linalg.eigvalsh(problem.hess(x))
    lam_min, lam_max = extreme_eigenvalues(problem, x, tol=1e-15, lanczos_steps=5)
    assert ("failed", 5) in outcomes and outcomes[-1] == ("converged", 20)
    assert lam_min == pytest.approx(dense[0], abs=1e-12 * dense[-1])
    assert lam_max == pytest.approx(dense[-1], rel=1e-12)


def test_top_eigenvalue_step_is_the_reciprocal_of_lambda_max():
    # Example 1 at (3, 1/3): ∇²f = 2[[1/9, 1], [1, 9]], whose largest eigenvalue is 9 + 1/9 + √((9 − 1/9)² + 4).
    lam_max = 9 + 1 / 9 + np.sqrt((9 - 1 / 9) ** 2 + 4)
    assert top_eigenvalue_step(Example1(), [3.0, 1 / 3]) == pytest.approx(1 / lam_max, rel=1e-14)
    net = DiagonalLinearNetwork.random(20, 200, rng=0)
    x = net.random_minimum(0)
    assert top_eigenvalue_step(net, x) == pytest.approx(1 / np.linalg.eigvalsh(net.hess(x))[-1], rel=1e-12)


def test_bad_options_are_named():
    problem, x = Example1(), [1.0, 1.0]
    with pytest.raises(ValueError, match="dense_max_dim must be >= 1"):
        extreme_eigenvalues(problem, x, dense_max_dim=0)
    with pytest.raises(ValueError, match="lanczos_steps must be >= 3"):
        extreme_eigenvalues(problem, x, lanczos_steps=2)
    with pytest.raises(ValueError, match="tol must be positive"):
        extreme_eigenvalues(problem, x, tol=0.0)
    with pytest.raises(ValueError, match="rng must be a non-negative seed"):
        top_eigenvalue_step(problem, x, rng=-1)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['steps'\]"):
        top_eigenvalue_step(problem, x, steps=3)
    with pytest.raises(ValueError, match=r"x must have shape \(2,\)"):
        extreme_eigenvalues(problem, [1.0])
    with pytest.warns(DeprecationWarning, match="breakdown is ignored"):
        assert extreme_eigenvalues(problem, x, breakdown=1e-8) == extreme_eigenvalues(problem, x)
