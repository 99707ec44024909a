"""Extreme Hessian eigenvalues (``flatref.spectrum``): dense, and Lanczos on Hessian-vector products."""

import numpy as np
import pytest

from flatref.problems import DiagonalLinearNetwork, Example1
from flatref.spectrum import extreme_eigenvalues, lanczos_ritz_values, top_eigenvalue_step


def test_lanczos_ritz_values_bracket_the_spectrum_and_find_negative_curvature():
    rng = np.random.default_rng(0)
    # A Hessian-like spectrum: one negative eigenvalue, a large cluster at zero, a few positive.
    lam = np.concatenate([[-0.3], np.zeros(1900), rng.uniform(0.5, 3.0, 50)])
    Q, _ = np.linalg.qr(rng.standard_normal((lam.size, lam.size)))
    H = (Q * lam) @ Q.T
    ritz = lanczos_ritz_values(lambda v: H @ v, lam.size, 60)
    assert ritz[0] >= lam.min() - 1e-12 and ritz[-1] <= lam.max() + 1e-12  # Ritz values lie inside
    assert ritz[0] == pytest.approx(-0.3, abs=1e-6) and ritz[-1] == pytest.approx(lam.max(), rel=1e-6)


def test_lanczos_stops_at_an_invariant_subspace_with_the_exact_spectrum():
    H = np.diag([-1.0, 0.0, 0.0, 0.0, 3.0])  # three distinct eigenvalues: the Krylov space has dimension 3
    np.testing.assert_allclose(lanczos_ritz_values(lambda v: H @ v, 5, 10), [-1.0, 0.0, 3.0], atol=1e-12)
    with pytest.raises(ValueError, match="breakdown"):
        lanczos_ritz_values(lambda v: H @ v, 5, 10, breakdown=0.0)


def test_dense_and_lanczos_routes_agree_on_a_network():
    problem = DiagonalLinearNetwork.random(6, 30, sparsity=2, rng=0)  # d = 60
    x = problem.random_minimum(0) + 0.01
    dense = extreme_eigenvalues(problem, x)
    full = extreme_eigenvalues(problem, x, dense_max_dim=10, lanczos_steps=60)
    np.testing.assert_allclose(full, dense, rtol=1e-8, atol=1e-10)  # a full Krylov space: exact
    short = extreme_eigenvalues(problem, x, dense_max_dim=10, lanczos_steps=15)  # a quarter of d
    assert dense[0] - 1e-12 <= short[0] and short[1] <= dense[1] + 1e-12  # Ritz values lie inside the spectrum
    assert short[1] == pytest.approx(dense[1], rel=1e-6)  # and the top one converges first


def test_top_eigenvalue_step_is_the_reciprocal_of_lambda_max():
    # Example 1 at (3, 1/3): ∇²f = 2[[1/9, 1], [1, 9]], whose largest eigenvalue is 9 + 1/9 + √((9 − 1/9)² + 4).
    lam_max = 9 + 1 / 9 + np.sqrt((9 - 1 / 9) ** 2 + 4)
    assert top_eigenvalue_step(Example1(), [3.0, 1 / 3]) == pytest.approx(1 / lam_max, rel=1e-14)
