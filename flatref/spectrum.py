"""Extreme eigenvalues of the Hessian: dense for small ``d``, ARPACK on Hessian-vector products above.

Above :data:`SPECTRUM_DENSE_MAX_DIM`, :func:`scipy.sparse.linalg.eigsh` (ARPACK's implicitly
restarted Lanczos) runs on a :class:`~scipy.sparse.linalg.LinearOperator` whose product is
``problem.unchecked.hess_vec(x, v)``; the ``d × d`` Hessian is never formed.

- ``λ_max``: the largest algebraic eigenvalue of ``H = ∇²f(x)`` (``which="LA"``).
- ``λ_min``: the largest eigenvalue of the shifted operator ``B = σI − H`` with ``σ = λ_max``, so
  ``λ_min = σ − λ_max(B)``. ARPACK accepts a Ritz pair when its residual is below ``tol · |θ|``; at a
  minimum ``λ_min(H)`` sits in a cluster of ``dim X*`` eigenvalues within rounding of 0, where that test
  asks for a residual of ``tol · 10⁻¹²`` and never passes (``which="SA"`` on ``H`` itself exhausts its
  iterations there). On ``B`` the same eigenvalue is ``≈ σ``, and the test is relative to ``λ_max``.
- The reported ``λ_min`` is the Rayleigh quotient ``yᵀHy/yᵀy`` of the returned Ritz vector ``y`` (one more
  product), which is never below the true ``λ_min``. So a negative value is real negative curvature: the
  saddle check of :func:`~flatref.flow.limit_map` can never call a minimum a saddle. Likewise the
  reported ``λ_max`` is a Ritz value, never above the true one.
- ARPACK's start vector is drawn from ``rng`` (0 by default): the same seed gives the same bits.
- When ARPACK does not converge (:class:`~scipy.sparse.linalg.ArpackNoConvergence`), the call is
  repeated once with a Lanczos basis four times as large and ten times the restarts; if that fails
  too, the dense route is taken where ``d ≤ DENSE_MAX_DIM``, and otherwise
  :class:`~flatref.errors.ConvergenceError` is raised. No partial answer is ever returned.

``benchmarks/spectrum.py`` measures each route (time and Hessian-vector products; docs/theory.md §6.10). The
Lanczos iteration with a fixed number of steps that this module used before had no convergence test; ARPACK
takes 31–51 products for ``λ_max`` alone and 63–163 for both ends (against its 60) and checks its residuals.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from ._validation import as_int, as_positive, as_vector, check_problem, make_rng
from .errors import ConvergenceError
from .problems import Problem
from .problems.base import DENSE_MAX_DIM

#: The largest ``d`` for which :func:`extreme_eigenvalues` uses the dense ``eigvalsh(∇²f)``. Measured with
#: ``benchmarks/spectrum.py --crossover`` on one core: on the diagonal network (a Hessian-vector product costs about one
#: gradient, ``O(nD)``) dense and ARPACK cost the same near ``d = 200``–``300`` (1.4 ms against 1.2 ms at 200,
#: 7 ms against 1.7 ms at 400, 86 ms against 4 ms at 1000). On matrix sensing a product costs ``O(mn²r)`` and
#: the dense Hessian stays cheaper up to ``d = 1500`` (0.07 s against 0.46 s at ``d = 1000``); pass
#: ``dense_max_dim`` to choose. 256 also keeps the largest network of ``flatref rates`` on the dense route.
SPECTRUM_DENSE_MAX_DIM = 256

#: ARPACK's restarts per attempt. A converging run here takes 2 to 8 (each about ``ncv`` products); 300 bounds
#: the cost of one that does not converge at about ``300 · ncv`` products per attempt.
MAX_RESTARTS = 300


def extreme_eigenvalues(problem: Problem, x, *, dense_max_dim: int = SPECTRUM_DENSE_MAX_DIM,
                        lanczos_steps: int | None = None, breakdown: float | None = None, tol: float = 1e-10,
                        rng=0) -> tuple[float, float]:  # fmt: skip
    """``(λ_min, λ_max)`` of ``∇²f(x)``: dense up to ``dense_max_dim``, ARPACK on Hessian-vector products above.

    Above ``dense_max_dim``, ``λ_max`` is ARPACK's largest Ritz value of ``H = ∇²f(x)`` and ``λ_min`` the
    Rayleigh quotient ``yᵀHy`` of the top Ritz vector ``y`` of ``λ_max I − H`` (module docstring). Both lie
    inside the spectrum: ``λ_min ≤ reported λ_min`` and ``reported λ_max ≤ λ_max``; with the default ``tol``
    each is within about ``1e-10 · λ_max`` of the truth (``tests/test_spectrum.py`` compares with ``eigvalsh``).

    Args:
        problem: the loss.
        x: the point.
        dense_max_dim: the largest ``d`` for the dense ``O(d³)`` ``eigvalsh`` (:data:`SPECTRUM_DENSE_MAX_DIM`).
        lanczos_steps: the size of the Lanczos basis ARPACK keeps between restarts (its ``ncv``), at least 3;
            ``None`` for ARPACK's default, ``min(d, 20)``.
        breakdown: ignored (ARPACK detects invariant subspaces itself); accepted so that older calls still run,
            with a ``DeprecationWarning``.
        tol: ARPACK's relative residual tolerance.
        rng: the seed (or Generator) of ARPACK's start vector.

    Raises:
        ConvergenceError: when ARPACK does not converge, even with a larger basis, and ``d > DENSE_MAX_DIM``.

    Examples:
        >>> from flatref.problems import DiagonalLinearNetwork, Example1
        >>> lam_min, lam_max = extreme_eigenvalues(Example1(), [1.0, 1.0])   # ∇²f = 2[[1, 1], [1, 1]]
        >>> round(lam_min, 12), round(lam_max, 12)
        (0.0, 4.0)
        >>> net = DiagonalLinearNetwork.random(20, 200, rng=0)               # d = 400 > 256: ARPACK
        >>> x = net.random_minimum(0)
        >>> dense = np.linalg.eigvalsh(net.hess(x))
        >>> lam_min, lam_max = extreme_eigenvalues(net, x)
        >>> bool(abs(lam_min - dense[0]) < 1e-9 * dense[-1]), bool(abs(lam_max - dense[-1]) < 1e-9 * dense[-1])
        (True, True)
    """
    check_problem(problem)
    x = as_vector(x, problem.dim)
    solver = _Arpack.checked(problem, x, dense_max_dim, lanczos_steps, breakdown, tol, rng)
    if solver is None:
        lam = _dense(problem, x)
        return float(lam[0]), float(lam[-1])
    lam_max = solver.top()
    return solver.bottom(lam_max), lam_max


def top_eigenvalue_step(problem: Problem, x, **options) -> float:
    """``η = 1/λ_max(∇²f(x))``: the largest step at which gradient descent is monotone near ``x``.

    Only ``λ_max`` is computed (ARPACK's ``which="LA"`` above ``dense_max_dim``); ``options`` are those of
    :func:`extreme_eigenvalues`.

    Examples:
        >>> from flatref.problems import Example1
        >>> round(top_eigenvalue_step(Example1(), [1.0, 1.0]), 12)
        0.25
    """
    check_problem(problem)
    x = as_vector(x, problem.dim)
    solver = _Arpack.checked(problem, x, **_options(options))
    return 1.0 / (float(_dense(problem, x)[-1]) if solver is None else solver.top())


def _options(options):
    """The keywords of :func:`extreme_eigenvalues`, with their defaults; an unknown one raises ``TypeError``."""
    known = {"dense_max_dim": SPECTRUM_DENSE_MAX_DIM, "lanczos_steps": None, "breakdown": None, "tol": 1e-10,
             "rng": 0}  # fmt: skip
    unknown = set(options) - set(known)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}; expected some of {sorted(known)}")
    return known | options


def _dense(problem, x):
    return np.linalg.eigvalsh(problem.unchecked.hess(x))


class _Arpack:
    """ARPACK's Lanczos on ``v ↦ ∇²f(x) v``, with one retry on a larger basis and the dense fallback."""

    def __init__(self, problem, x, ncv, tol, rng):
        self.problem, self.x, self.ncv, self.tol = problem, x, ncv, tol
        self.v0 = make_rng(rng).standard_normal(problem.dim)
        hess_vec, d = problem.unchecked.hess_vec, problem.dim
        self.hessian = LinearOperator((d, d), matvec=lambda v: hess_vec(x, v), matmat=lambda V: hess_vec(x, V),
                                      dtype=float)  # fmt: skip

    @classmethod
    def checked(cls, problem, x, dense_max_dim, lanczos_steps, breakdown, tol, rng):
        """The solver, or ``None`` where the dense route applies; every option is checked and named."""
        dense_max_dim = as_int(dense_max_dim, "dense_max_dim", minimum=1)
        ncv = None if lanczos_steps is None else as_int(lanczos_steps, "lanczos_steps", minimum=3)
        if breakdown is not None:
            as_positive(breakdown, "breakdown")
            warnings.warn("breakdown is ignored: ARPACK detects invariant subspaces itself", DeprecationWarning,
                          stacklevel=3)  # fmt: skip
        tol = as_positive(tol, "tol")
        make_rng(rng)  # named errors for a bad seed, on either route
        if problem.dim <= max(dense_max_dim, 2):  # ARPACK needs d ≥ 3 for one eigenvalue
            return None
        return cls(problem, x, None if ncv is None else min(ncv, problem.dim), tol, rng)

    def top(self) -> float:
        """The largest Ritz value of ``H`` (never above ``λ_max``)."""
        pair = self._largest(self.hessian, "λ_max")
        return float(_dense(self.problem, self.x)[-1] if pair is None else pair[0])

    def bottom(self, sigma: float) -> float:
        """``yᵀHy/yᵀy`` for the top Ritz vector ``y`` of ``σI − H`` (never below ``λ_min``)."""
        hess_vec, x, d = self.problem.unchecked.hess_vec, self.x, self.problem.dim
        shifted = LinearOperator((d, d), matvec=lambda v: sigma * v - hess_vec(x, v), dtype=float)
        pair = self._largest(shifted, "λ_min")
        if pair is None:
            return float(_dense(self.problem, x)[0])
        y = pair[1]
        return float((y @ hess_vec(x, y)) / (y @ y))

    def _largest(self, operator, what):
        """ARPACK's top Ritz pair of ``operator``, once more with a four times larger basis if it does not
        converge; then ``None`` (the caller's dense route) where ``d ≤ DENSE_MAX_DIM``, else an error."""
        d = self.problem.dim
        ncv = self.ncv if self.ncv is not None else min(d, 20)
        for basis in (ncv, min(d, 4 * ncv)):
            try:
                theta, Y = eigsh(operator, k=1, which="LA", v0=self.v0, ncv=basis, tol=self.tol, maxiter=MAX_RESTARTS)
                return theta[0], Y[:, 0]
            except ArpackNoConvergence:
                continue
        if d <= DENSE_MAX_DIM:
            return None
        raise ConvergenceError(f"ARPACK did not converge to {what} of the Hessian (d = {d}, tol = {self.tol:g}), "
                               f"even with a Lanczos basis of {min(d, 4 * ncv)}")  # fmt: skip
