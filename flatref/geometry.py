"""The tangent geometry of the minima set ``X*``: ``Proj⊥`` and ``∂Φ`` at a minimum.

At a point ``x*`` of ``X*`` where ``X*`` is locally a manifold and
``rank ∇²f(x*) = d − dim X*``, ``∂Φ(x*)`` is the orthogonal projector onto the tangent
space ``T_{x*}X*`` (docs/theory.md §2): ``∂Φ(x*) = I − N Nᵀ`` with ``N`` an orthonormal
basis of the normal space. The problem supplies ``N``
(:meth:`~flatref.problems.Problem.normal_basis`); these functions never ask its type.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_array, as_columns, check_problem
from .problems import Problem


def proj_out(u, v):
    """``Proj⊥_u(v) = v − (⟨u, v⟩/‖u‖²) u`` (Definition 4, eq. (7)); ``v`` itself when ``u = 0``.

    Both vectors are scaled by their largest entries first, so no intermediate overflows.

    Raises:
        ValueError: if ``u`` and ``v`` are not finite vectors of one length.

    Examples:
        >>> import numpy as np
        >>> proj_out(np.array([1.0, 0.0]), np.array([3.0, 4.0])).tolist()
        [0.0, 4.0]
        >>> proj_out(np.zeros(2), np.array([3.0, 4.0])).tolist()
        [3.0, 4.0]
        >>> proj_out(np.array([1e300, 1e300]), np.array([1e300, 0.0])).tolist()   # ⟨u, v⟩ would overflow
        [5e+299, -5e+299]
    """
    u, v = as_array(u, "u"), as_array(v, "v")
    if u.ndim != 1 or u.shape != v.shape:
        raise ValueError(f"u and v must be vectors of one length, got shapes {u.shape} and {v.shape}")
    su, sv = np.max(np.abs(u), initial=0.0), np.max(np.abs(v), initial=0.0)
    if su == 0 or sv == 0:
        return v.copy()
    return sv * _proj_out(u / su, v / sv)


def _proj_out(u, v, uu=None):
    """:func:`proj_out` without checks or scaling (finite, moderate vectors), for the steps of RS and SA; ``uu`` is
    ``‖u‖²`` where the caller has it."""
    uu = u @ u if uu is None else uu
    return v if uu == 0 else v - ((u @ v) / uu) * u


def normal_basis(problem: Problem, x_star, *, rtol: float = 1e-6) -> np.ndarray:
    """An orthonormal basis ``N`` (``d × k``) of the normal space of ``X*`` at ``x_star``.

    The problem's own rule (:meth:`~flatref.problems.Problem.normal_basis`): the output
    Jacobian's row space in Setting 1, the Hessian's range otherwise; ``rtol`` is the rank cut.

    Examples:
        >>> from flatref.problems import LinearRegression
        >>> problem = LinearRegression.random(3, 5, rng=0)
        >>> normal_basis(problem, problem.random_minimum(0)).shape   # rank Z = n = 3
        (5, 3)
    """
    check_problem(problem)
    return problem.normal_basis(x_star, rtol=rtol)


def tangent_projector(problem: Problem, x_star, *, rtol: float = 1e-6) -> np.ndarray:
    """``∂Φ(x*) = I − N Nᵀ``, the orthogonal projector onto the tangent space of ``X*`` at ``x_star``.

    ``x_star`` should be a point of ``X*`` (for instance ``limit_map(problem, x).x``).

    Examples:
        >>> from flatref.problems import Example1
        >>> (2 * tangent_projector(Example1(), [1.0, 1.0])).round(12).tolist()
        [[1.0, -1.0], [-1.0, 1.0]]
    """
    check_problem(problem)
    N = problem.normal_basis(x_star, rtol=rtol)
    return np.eye(problem.dim) - N @ N.T


def project_tangent(problem: Problem, x_star, v, *, rtol: float = 1e-6) -> np.ndarray:
    """``∂Φ(x*) v = v − N(Nᵀv)`` without forming the ``d × d`` projector; ``v`` is ``(d,)`` or ``(d, k)``.

    Examples:
        >>> from flatref.problems import Example1
        >>> project_tangent(Example1(), [1.0, 1.0], [1.0, 1.0]).round(12).tolist()
        [0.0, 0.0]
    """
    check_problem(problem)
    N = problem.normal_basis(x_star, rtol=rtol)
    v = as_columns(v, problem.dim)
    return v - N @ (N.T @ v)
