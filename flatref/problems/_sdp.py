"""The flattest interpolant of symmetric matrix sensing, certified by a semidefinite program.

On ``X*`` (every ``s_i = ⟨A_i, UUᵀ⟩ − y_i = 0``) the trace is linear in ``M = UUᵀ``
(docs/theory.md §5): ``tr∇²f = ⟨C, M⟩`` with ``C = (4/m) Σ_i A_i²``. The factors of
``X*`` give exactly the matrices ``{M ⪰ 0 : rank M ≤ r, ⟨A_i, M⟩ = y_i}``; dropping the
rank constraint gives the semidefinite program

    ``min ⟨C, M⟩  subject to  ⟨A_i, M⟩ = y_i (i = 1..m),  M ⪰ 0``,

whose value is a lower bound on ``tr∇²f`` at every interpolating minimum. When its
solution has rank ``k ≤ r``, a factor ``U = [V_k Λ_k^{1/2}, 0]`` lies on ``X*`` and
attains the bound: it is a certified global flattest minimum of the factored problem.

The certificate does not trust the solver's own accuracy:

- **primal**: the top-``k`` eigenpairs of the solver's ``M`` (``k`` its numerical rank)
  give ``U``, which the Gauss–Newton projection polishes onto ``X*``; the trace and
  the residual ``‖𝒜(UUᵀ) − y‖ / (1 + ‖y‖)`` are measured there.
- **dual**: with the solver's multipliers ``ν``, ``Z = C − Σ_i ν_i A_i``. For every feasible
  ``M′``, ``⟨C, M′⟩ = νᵀy + ⟨Z, M′⟩``. If ``λ_min(Z) = −δ ≤ 0`` then ``⟨Z, M′⟩ ≥ −δ tr M′``
  and ``tr M′ ≤ ⟨C, M′⟩ / λ_min(C)``, so the optimum is at least
  ``lower = νᵀy − δ · trace / λ_min(C)`` (weak duality, with the dual's infeasibility paid for).
  The duality gap reported is ``trace − lower ≥ 0`` up to rounding.

SCS is the default solver: on instances whose only nearby interpolant is a low-rank
``M*`` (no strictly feasible ``M ≻ 0``, e.g. ``sensing-18`` with seed 0) Clarabel's
interior point stops about ``1e-5`` short of the optimum, SCS reaches ``1e-13``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .._validation import frozen_copy
from ..errors import CertificateError, ConvergenceError, MissingExtraError

#: Tolerances handed to each solver: far tighter than their defaults (``1e-4`` to ``1e-8``).
SOLVER_OPTIONS = {
    "SCS": {"eps_abs": 1e-12, "eps_rel": 1e-12, "max_iters": 100_000},
    "CLARABEL": {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10},
}

#: The polished point must fit the measurements to this (relative) residual; the Gauss–Newton
#: projection stops at ``‖∇f‖ ≤ 1e-13`` and leaves ``1e-16`` to ``1e-14`` on the instances tested.
FEASIBILITY_TOL = 1e-9


@dataclass(frozen=True)
class FlattestMinimum:
    """The SDP's certified flattest minimum of a :class:`~flatref.problems.MatrixSensing` problem.

    Attributes:
        x: the minimum in the problem's parametrization, ``U.ravel()`` with ``UUᵀ = M``.
        M: ``UUᵀ``.
        trace: ``tr∇²f(x)``, computed by the problem.
        lower_bound: a lower bound on ``tr∇²f`` over all interpolating minima, from the dual.
        duality_gap: ``trace − lower_bound``.
        primal_residual: ``‖(⟨A_i, M⟩ − y_i)_i‖ / (1 + ‖y‖)``.
        dual_infeasibility: ``max(0, −λ_min(C − Σ_i ν_i A_i))``, already paid for in ``lower_bound``.
        rank: the numerical rank ``k`` of the solver's ``M``: eigenvalues above ``rank_tol · λ_max``.
        rank_tol: that tolerance.
        solver, status: the cvxpy solver and the status it returned.
        sdp_value: the solver's optimal value, before polishing.
        recovery_error: ``‖M − M*‖_F / ‖M*‖_F``, or ``None`` without a ground truth.
    """

    x: np.ndarray = field(repr=False, compare=False)
    M: np.ndarray = field(repr=False, compare=False)
    trace: float
    lower_bound: float
    duality_gap: float
    primal_residual: float
    dual_infeasibility: float
    rank: int
    rank_tol: float
    solver: str
    status: str
    sdp_value: float
    recovery_error: float | None


def import_cvxpy():
    """cvxpy, or a :class:`~flatref.errors.MissingExtraError` naming the ``sdp`` extra."""
    try:
        import cvxpy
    except ImportError as err:
        raise MissingExtraError(
            "the flattest minimum of matrix sensing needs cvxpy: pip install 'flatref[sdp]'", name="cvxpy"
        ) from err
    return cvxpy


def trace_weight(A: np.ndarray) -> np.ndarray:
    """``C = (4/m) Σ_i A_i²``: ``tr∇²f = ⟨C, UUᵀ⟩`` on ``X*``."""
    m, n, _ = A.shape
    stacked = A.reshape(m * n, n)
    C = 4.0 * (stacked.T @ stacked) / m
    return (C + C.T) / 2


def solve_sdp(A: np.ndarray, y: np.ndarray, C: np.ndarray, solver: str):
    """``(M, ν, status, value)`` of ``min ⟨C, M⟩ s.t. ⟨A_i, M⟩ = y_i, M ⪰ 0``, with ``ν`` the multipliers
    of the equalities (sign: ``C − Σ_i ν_i A_i ⪰ 0`` at a dual solution)."""
    cp = import_cvxpy()
    if solver not in SOLVER_OPTIONS:
        raise ValueError(f"solver must be one of {sorted(SOLVER_OPTIONS)}, got {solver!r}")
    m, n, _ = A.shape
    M = cp.Variable((n, n), PSD=True)
    fit = A.reshape(m, n * n) @ cp.vec(M, order="C") == y
    program = cp.Problem(cp.Minimize(cp.sum(cp.multiply(C, M))), [fit])
    with warnings.catch_warnings():  # "solution may be inaccurate": the certificate below measures it
        warnings.simplefilter("ignore")
        try:
            program.solve(solver=solver, **SOLVER_OPTIONS[solver])
        except cp.error.SolverError as err:
            raise CertificateError(f"the semidefinite program failed in {solver}: {err}") from err
    if program.status not in ("optimal", "optimal_inaccurate") or M.value is None or fit.dual_value is None:
        raise CertificateError(
            f"the semidefinite program ended {program.status!r} in {solver}"
            + (": no PSD M fits the measurements, so no minimum interpolates" if "infeasible" in program.status else "")
        )
    return (M.value + M.value.T) / 2, -np.asarray(fit.dual_value, dtype=float), program.status, float(program.value)


def top_factor(M: np.ndarray, r: int, rank_tol: float) -> tuple[np.ndarray, int]:
    """``(U, k)``: ``U = [V_k Λ_k^{1/2}, 0] ∈ R^{n×r}`` from the top ``k`` eigenpairs of ``M``, ``k`` its
    numerical rank (eigenvalues above ``rank_tol · max(λ_max, 0)``); raises if ``k > r``."""
    lam, vecs = np.linalg.eigh(M)
    lam, vecs = lam[::-1], vecs[:, ::-1]
    k = int(np.sum(lam > rank_tol * max(lam[0], 0.0)))
    if k > r:
        shown = ", ".join(f"{v:.3g}" for v in lam[: k + 1])
        raise CertificateError(
            f"the semidefinite program's solution has rank {k} > r = {r} (eigenvalues {shown}, ...): no n×r "
            "factor attains its bound, so it certifies no flattest minimum of the factored problem"
        )
    U = np.zeros((M.shape[0], r))
    U[:, :k] = vecs[:, :k] * np.sqrt(lam[:k])
    return U, k


def dual_bound(A: np.ndarray, y: np.ndarray, C: np.ndarray, nu: np.ndarray, trace: float) -> tuple[float, float]:
    """``(lower, δ)``: the optimum is at least ``νᵀy − δ · trace / λ_min(C)``, ``δ = max(0, −λ_min(Z))``."""
    Z = C - np.tensordot(nu, A, axes=1)
    delta = max(0.0, -float(np.linalg.eigvalsh((Z + Z.T) / 2)[0]))
    if delta == 0.0:
        return float(nu @ y), 0.0
    sigma = float(np.linalg.eigvalsh(C)[0])
    return (float(nu @ y) - delta * trace / sigma if sigma > 0 else -np.inf), delta


def flattest_minimum(sensing, *, solver: str, rank_tol: float, gap_tol: float) -> FlattestMinimum:
    """The certified flattest minimum of the :class:`~flatref.problems.MatrixSensing` problem ``sensing``.

    Raises:
        MissingExtraError: without cvxpy.
        CertificateError: if the program is infeasible or fails, its solution has rank above
            ``r``, or the polished point misses the dual bound by more than ``gap_tol · max(1, trace)``
            or the measurements by more than :data:`FEASIBILITY_TOL`.
    """
    A, y = sensing.A, sensing.y
    C = trace_weight(A)
    M_sdp, nu, status, value = solve_sdp(A, y, C, solver)
    U, k = top_factor(M_sdp, sensing.r, rank_tol)
    try:
        x = sensing.project_to_minima(U.ravel())
    except ConvergenceError as err:
        raise CertificateError(f"the SDP's rank-{k} factor could not be projected onto X*: {err}") from err
    U = sensing.as_matrix(x)
    M = U @ U.T
    trace = float(sensing.trace_hess(x))
    lower, delta = dual_bound(A, y, C, nu, trace)
    residual = float(np.linalg.norm(np.tensordot(A, M, axes=2) - y) / (1.0 + np.linalg.norm(y)))
    if not (trace - lower <= gap_tol * max(1.0, abs(trace)) and residual <= FEASIBILITY_TOL):
        raise CertificateError(
            f"the SDP ({solver}, {status}) certifies no flattest minimum: tr∇²f = {trace:.12g} at its polished "
            f"rank-{k} factor, dual bound {lower:.12g} (gap {trace - lower:.3g}, allowed {gap_tol:g}·max(1, tr)), "
            f"residual {residual:.3g} (allowed {FEASIBILITY_TOL:g})"
        )
    truth = sensing.M_star
    error = None if truth is None else float(np.linalg.norm(M - truth) / np.linalg.norm(truth))
    return FlattestMinimum(
        x=frozen_copy(x), M=frozen_copy(M), trace=trace, lower_bound=lower, duality_gap=trace - lower,
        primal_residual=residual, dual_infeasibility=delta, rank=k, rank_tol=rank_tol, solver=solver,
        status=status, sdp_value=value, recovery_error=error,
    )  # fmt: skip
