"""Extreme eigenvalues of the Hessian: dense for small ``d``, Lanczos on Hessian-vector products otherwise.

The saddle check of the limit map needs ``λ_min(∇²f)`` next to a cluster of ``dim X*``
near-zero eigenvalues; ARPACK's ``eigsh`` does not converge on that cluster, so large
problems use a fixed number of Lanczos steps with full reorthogonalization. A Ritz
value is never below ``λ_min``, so a saddle found this way is certain.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_int, as_positive, as_vector, check_problem
from .problems import Problem
from .problems.base import DENSE_MAX_DIM


def extreme_eigenvalues(problem: Problem, x, *, dense_max_dim: int = DENSE_MAX_DIM, lanczos_steps: int = 60,
                        breakdown: float = 1e-8) -> tuple[float, float]:  # fmt: skip
    """``(λ_min, λ_max)`` of ``∇²f(x)``: exact up to ``dense_max_dim``, Lanczos Ritz values above.

    Args:
        problem: the loss.
        x: the point.
        dense_max_dim: the largest ``d`` for the dense ``O(d³)`` ``eigvalsh``
            (:data:`~flatref.problems.base.DENSE_MAX_DIM`).
        lanczos_steps: Lanczos steps above it (each one Hessian-vector product). Extreme Ritz
            values converge first: 60 steps resolve a negative eigenvalue of ``−0.3`` next to
            a cluster of 1900 zeros to ``1e-6`` (``tests/test_spectrum.py``); a negative
            eigenvalue hidden close to the zero cluster may be missed.
        breakdown: see :func:`lanczos_ritz_values`.

    Examples:
        >>> from flatref.problems import Example1
        >>> lam_min, lam_max = extreme_eigenvalues(Example1(), [1.0, 1.0])
        >>> round(lam_min, 12), round(lam_max, 12)
        (0.0, 4.0)
    """
    check_problem(problem)
    x = as_vector(x, problem.dim)
    if problem.dim <= as_int(dense_max_dim, "dense_max_dim", minimum=1):
        lam = np.linalg.eigvalsh(problem.unchecked.hess(x))
        return float(lam[0]), float(lam[-1])
    hess_vec = problem.unchecked.hess_vec
    ritz = lanczos_ritz_values(lambda v: hess_vec(x, v), problem.dim, lanczos_steps, breakdown=breakdown)
    return float(ritz[0]), float(ritz[-1])


def top_eigenvalue_step(problem: Problem, x) -> float:
    """``η = 1/λ_max(∇²f(x))``: the largest step at which gradient descent is monotone near ``x``.

    Examples:
        >>> from flatref.problems import Example1
        >>> round(top_eigenvalue_step(Example1(), [1.0, 1.0]), 12)
        0.25
    """
    return 1.0 / extreme_eigenvalues(problem, x)[1]


def lanczos_ritz_values(matvec, d: int, steps: int, *, breakdown: float = 1e-8, rng=0) -> np.ndarray:
    """Ritz values of at most ``steps`` Lanczos iterations with full reorthogonalization.

    Gram–Schmidt runs twice per step ("twice is enough"), and the iteration stops when
    the new direction is below ``breakdown · ‖H q_j‖``: the Krylov space is then
    invariant (it holds at most one vector per distinct eigenvalue), and normalizing
    the rounding left over would break the basis. ``1e-8`` is far above that rounding
    (``~1e-16``) and far below any direction the space still lacks. The start vector is
    drawn from ``rng`` (fixed by default, so the answer is deterministic).

    Examples:
        >>> import numpy as np
        >>> H = np.diag([-1.0, 0.0, 0.0, 3.0])
        >>> lanczos_ritz_values(lambda v: H @ v, 4, 10).round(12).tolist()
        [-1.0, 0.0, 3.0]
    """
    steps = as_int(steps, "steps", minimum=1)
    breakdown = as_positive(breakdown, "breakdown")
    Q = np.zeros((d, steps))
    q = np.random.default_rng(rng).standard_normal(d)
    Q[:, 0] = q / np.linalg.norm(q)
    alpha, beta = np.zeros(steps), np.zeros(steps)
    for j in range(steps):
        w = matvec(Q[:, j])
        size = np.linalg.norm(w)
        alpha[j] = Q[:, j] @ w
        for _ in range(2):
            w = w - Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        if j + 1 == steps or beta[j] <= breakdown * max(size, np.finfo(float).tiny):
            break
        Q[:, j + 1] = w / beta[j]
    k = j + 1
    T = np.diag(alpha[:k]) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    return np.linalg.eigvalsh(T)
