"""Flatness: the normalized trace, the stationarity metric, and Definitions 2–3.

- ``tr̄(x) := tr ∇²f(x) / d`` (eq. (1)) and ``∇tr̄(x)_k = (1/d) Σ_i ∂³f/∂x_k∂x_i∂x_i``.
- The stationarity metric ``‖∂Φ(x*) ∇tr̄(x*)‖`` at ``x* = Φ(x)``: the norm of the
  Riemannian gradient of ``tr̄`` on the minima set (``∂Φ(x*)`` is the tangent projector).
- ``x`` is an ``(ε, ε′)``-flat minimum (Definition 3, eq. (6)) when ``‖∇f(x)‖ ≤ ε`` and
  the metric is at most ``ε′``; a flat local minimum (Definition 2, eq. (5)) is a
  ``(0, 0)``-flat one.

Because ``tr̄`` divides by ``d``, a fixed ``ε′`` is weak in high dimension (docs/theory.md §6):
:class:`FlatnessReport` also gives the raw trace ``tr ∇²f(x*)`` and, where the problem
knows its flattest minimum, the gap to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import as_array, as_int, as_nonnegative, as_positive, as_vector, check_problem
from .flow import LimitPoint, limit_map
from .geometry import project_tangent
from .problems import Problem
from .status import Status


def tr_bar(problem: Problem, x) -> float:
    """``tr̄(x) = tr ∇²f(x) / d`` (eq. (1)).

    Examples:
        >>> from flatref.problems import Example1
        >>> float(tr_bar(Example1(), [3.0, 1 / 3]))       # x1² + x2² on Example 1
        9.11111111111111
    """
    check_problem(problem)
    return problem.trace_hess(x) / problem.dim


def grad_tr_bar(problem: Problem, x) -> np.ndarray:
    """``∇tr̄(x) = ∇ tr∇²f(x) / d``, from the closed-form third derivatives.

    Examples:
        >>> from flatref.problems import Example1
        >>> grad_tr_bar(Example1(), [3.0, 1.0]).tolist()   # ∇(x1² + x2²) = 2x
        [6.0, 2.0]
    """
    check_problem(problem)
    return problem.grad_trace_hess(x) / problem.dim


def metric_at_minimum(problem: Problem, x_star) -> float:
    """``‖∂Φ(x*) ∇tr̄(x*)‖`` for a point ``x_star`` of the minima set (no flow is run).

    Examples:
        >>> from flatref.problems import Example1
        >>> round(metric_at_minimum(Example1(), [1.0, 1.0]), 12)   # the flat minimum
        0.0
    """
    check_problem(problem)
    return float(np.linalg.norm(project_tangent(problem, x_star, grad_tr_bar(problem, x_star))))


def stationarity_metric(problem: Problem, x, **limit_options) -> float:
    """``‖∂Φ(x*) ∇tr̄(x*)‖`` with ``x* = Φ(x)`` (the quantity bounded by ``ε′`` in eq. (6)).

    Args:
        problem: the loss.
        x: any point whose flow converges to a minimum.
        **limit_options: passed to :func:`~flatref.flow.limit_map`.

    Raises:
        LimitMapError: if the flow from ``x`` does not converge to a minimum.

    Examples:
        >>> from flatref.problems import Example1
        >>> round(stationarity_metric(Example1(), [3.0, 1 / 3]), 6)   # |2·9 − 2/9| / √(9 + 1/9)
        5.889681
    """
    return metric_at_minimum(problem, limit_map(problem, x, throw=True, **limit_options).x)


@dataclass(frozen=True)
class FlatnessReport:
    """The flatness of a point ``x`` per Definition 3.

    Attributes:
        grad_norm: ``‖∇f(x)‖``.
        limit: the :class:`~flatref.flow.LimitPoint` of the flow from ``x``.
        x_star: ``Φ(x)`` when the flow converged to a minimum, else ``None``.
        metric: ``‖∂Φ(x*) ∇tr̄(x*)‖``, or ``None`` without a limit.
        tr_bar_star: ``tr̄(x*)``, or ``None``.
        trace_star: the raw trace ``tr ∇²f(x*)``, or ``None``.
        trace_gap: ``tr ∇²f(x*)`` minus the flattest trace the problem knows, or ``None``.
        eps, eps_prime: the tolerances of Definition 3.
        is_flat: ``‖∇f(x)‖ ≤ ε`` and ``metric ≤ ε′``, and the flow converged to a minimum (Definition 3
            as the paper states it: first order, so it holds at a maximum of ``tr̄`` along ``X*`` too).
        curvature: the :class:`TraceCurvature` of ``tr̄`` along ``X*`` at ``x*`` (second order: it tells a
            flattest point from a sharpest one) where the metric is at most ``ε′``; else ``None``.
    """

    grad_norm: float
    limit: LimitPoint = field(repr=False)
    x_star: np.ndarray | None = field(repr=False)
    metric: float | None
    tr_bar_star: float | None
    trace_star: float | None
    trace_gap: float | None
    eps: float
    eps_prime: float
    is_flat: bool
    curvature: "TraceCurvature | None" = None

    @property
    def kind(self) -> str | None:
        """``minimum``, ``maximum``, ``saddle``, ``degenerate`` or ``singular``: what ``x*`` is for ``tr̄`` along ``X*``."""
        return None if self.curvature is None else self.curvature.kind

    def __repr__(self) -> str:
        def fmt(value):
            return "None" if value is None else f"{value:.3g}"

        return (
            f"FlatnessReport(is_flat={self.is_flat}, status={self.limit.status}, grad_norm={fmt(self.grad_norm)}, "
            f"metric={fmt(self.metric)}, tr_bar_star={fmt(self.tr_bar_star)}, trace_star={fmt(self.trace_star)}, "
            f"trace_gap={fmt(self.trace_gap)}, kind={self.kind}, eps={self.eps:g}, eps_prime={self.eps_prime:g})"
        )


def flattest_trace(problem: Problem) -> float | None:
    """The smallest ``tr ∇²f`` over the flat minima the problem knows in closed form, or ``None``.

    Examples:
        >>> from flatref.problems import Example1, LinearRegression
        >>> float(flattest_trace(Example1())), flattest_trace(LinearRegression.random(2, 3))
        (4.0, None)
    """
    check_problem(problem)
    try:
        minima = problem.flat_minima()
    except NotImplementedError:
        return None
    return min(float(problem.trace_hess(m)) for m in minima)


def flatness_report(problem: Problem, x, eps: float, eps_prime: float, *, throw: bool = False,
                    curvature: bool = True, **limit_options) -> FlatnessReport:  # fmt: skip
    """Is ``x`` an ``(ε, ε′)``-flat minimum (Definition 3)? With the numbers that decide it.

    A point whose flow does not converge to a minimum (a saddle, divergence, time
    out) is never reported flat, and its limit-dependent fields are ``None``.

    Args:
        problem: the loss.
        x: the point.
        eps: the gradient tolerance ``ε ≥ 0``.
        eps_prime: the stationarity tolerance ``ε′ ≥ 0``.
        throw: raise :class:`~flatref.errors.LimitMapError` instead of reporting a failed flow.
        curvature: also compute :func:`trace_curvature` at ``x*`` where ``metric ≤ ε′`` and ``dim X* ≤ 200``.
        **limit_options: passed to :func:`~flatref.flow.limit_map`.

    Examples:
        >>> from flatref.problems import Example1
        >>> report = flatness_report(Example1(), [1.0, 1.0], eps=1e-3, eps_prime=1e-3)
        >>> report.is_flat, report.kind
        (True, 'minimum')
        >>> flatness_report(Example1(), [3.0, 1 / 3], eps=1e-3, eps_prime=1e-3).is_flat   # sharp
        False
    """
    check_problem(problem)
    x = as_vector(x, problem.dim)
    eps, eps_prime = as_nonnegative(eps, "eps"), as_nonnegative(eps_prime, "eps_prime")
    grad_norm = float(np.linalg.norm(problem.grad(x)))
    limit = limit_map(problem, x, throw=throw, **limit_options)
    if not limit.success:
        return FlatnessReport(grad_norm, limit, None, None, None, None, None, eps, eps_prime, False)
    x_star = limit.x
    metric = metric_at_minimum(problem, x_star)
    trace_star = float(problem.trace_hess(x_star))
    flattest = flattest_trace(problem)
    return FlatnessReport(
        grad_norm=grad_norm,
        limit=limit,
        x_star=x_star,
        metric=metric,
        tr_bar_star=trace_star / problem.dim,
        trace_star=trace_star,
        trace_gap=None if flattest is None else trace_star - flattest,
        eps=eps,
        eps_prime=eps_prime,
        is_flat=grad_norm <= eps and metric <= eps_prime,
        curvature=(trace_curvature(problem, x_star) if curvature and metric <= eps_prime
                   and _tangent_dim(problem, x_star) <= 200 else None),  # fmt: skip
    )


@dataclass(frozen=True)
class TraceCurvature:
    """The Hessian of ``tr̄`` along ``X*`` at a point ``x*`` (see :func:`trace_curvature`).

    Attributes:
        basis: an orthonormal basis ``T`` (``d × k``) of the tangent space of ``X*`` at ``x*``.
        hessian: the ``k × k`` Hessian of ``u ↦ tr̄(R(x* + Tu))`` at ``u = 0``.
        eigenvalues: its eigenvalues, ascending.
        kind: ``minimum`` (all above ``tol``), ``maximum`` (all below ``−tol``), ``saddle`` (both signs
            beyond ``tol``), ``degenerate`` (otherwise), or ``singular`` where ``X*`` is not a manifold at
            ``x*`` (the normal dimension at the retracted points differs from the one at ``x*``, as at a
            factorization ``UUᵀ`` with zero columns): there the difference quotients mean nothing.
            Symmetries give zero eigenvalues: on matrix sensing ``tr̄`` depends on ``UUᵀ`` only, so the
            ``r(r−1)/2`` rotations ``U → UO`` make every minimum ``degenerate``; read ``eigenvalues``.
        tol: the eigenvalue tolerance used for ``kind``.
        projections: the projections onto ``X*`` spent (``2k``).
    """

    basis: np.ndarray = field(repr=False)
    hessian: np.ndarray = field(repr=False)
    eigenvalues: np.ndarray
    kind: str
    tol: float
    projections: int


def trace_curvature(problem: Problem, x_star, *, step: float = 1e-4, rtol: float = 1e-6,
                    max_dim: int = 200) -> TraceCurvature:  # fmt: skip
    """The curvature of ``tr̄`` along the minima set at ``x_star`` (docs/theory.md §2.3).

    Column ``j`` of the tangent Hessian is a central difference of the Riemannian gradient
    ``G(y) = P(y)∇tr̄(y)`` at the retracted points ``y± = R(x* ± δ T e_j)`` (``R`` the problem's
    projection onto ``X*``, whose Jacobian at ``x*`` is the tangent projector):
    ``H e_j ≈ Tᵀ(G(y+) − G(y−))/(2δ)``. The curvature terms of the retraction are even in ``δ`` and
    cancel; at a critical point of ``tr̄`` on ``X*`` (metric 0) the result is intrinsic, the same
    for any retraction. ``δ = step·(1 + ‖x*‖)``: truncation ``O(δ²)`` and rounding (with the
    projections' ``1e-13``) ``O(1e-13/δ)`` are both about ``1e-9``, far below ``rtol``.

    Args:
        problem: the loss.
        x_star: a point of ``X*``.
        step: the relative difference step ``δ``.
        rtol: eigenvalues within ``rtol · max(1, max|λ|)`` of zero make the point ``degenerate``.
        max_dim: refuse when ``dim X* = k`` exceeds it (``2k`` projections).

    Raises:
        ValueError: when ``dim X* > max_dim``.
        ConvergenceError: when a projection onto ``X*`` fails.

    Examples:
        >>> from flatref.problems import Example1
        >>> c = trace_curvature(Example1(), [1.0, 1.0])   # tr̄ = 2cosh(2s) on (e^s, e^−s): 8/|γ′|² = 4
        >>> c.kind, round(float(c.eigenvalues[0]), 6)
        ('minimum', 4.0)
    """
    check_problem(problem)
    x_star = as_vector(x_star, problem.dim, "x_star")
    step, rtol = as_positive(step, "step"), as_positive(rtol, "rtol")
    N = problem.normal_basis(x_star)
    k = problem.dim - N.shape[1]
    if k > as_int(max_dim, "max_dim", minimum=1):
        raise ValueError(f"the minima set has dimension {k} > max_dim = {max_dim} (2k projections would be needed)")
    T = np.linalg.svd(N, full_matrices=True)[0][:, N.shape[1]:] if N.size else np.eye(problem.dim)
    delta = step * (1.0 + np.linalg.norm(x_star))
    columns, singular = [], False
    for t in T.T:
        (g_plus, n_plus), (g_minus, n_minus) = (
            _riemannian_gradient(problem, problem.project_to_minima(x_star + s * delta * t)) for s in (1.0, -1.0)
        )
        singular |= n_plus != N.shape[1] or n_minus != N.shape[1]
        columns.append(T.T @ (g_plus - g_minus) / (2 * delta))
    H = np.array(columns).T.reshape(k, k)
    H = (H + H.T) / 2
    eigenvalues = np.linalg.eigvalsh(H)
    tol = rtol * max(1.0, float(np.max(np.abs(eigenvalues), initial=0.0)))
    return TraceCurvature(T, H, eigenvalues, "singular" if singular else _kind(eigenvalues, tol), tol, 2 * k)


def _riemannian_gradient(problem, y):
    """``P(y)∇tr̄(y)`` and the normal dimension at ``y``."""
    N = problem.normal_basis(y)
    g = grad_tr_bar(problem, y)
    return g - N @ (N.T @ g), N.shape[1]


def _kind(eigenvalues, tol) -> str:
    if eigenvalues.size and np.all(eigenvalues > tol):
        return "minimum"
    if eigenvalues.size and np.all(eigenvalues < -tol):
        return "maximum"
    return "saddle" if np.any(eigenvalues > tol) and np.any(eigenvalues < -tol) else "degenerate"


def _tangent_dim(problem, x_star) -> int:
    return problem.dim - problem.normal_basis(x_star).shape[1]



@dataclass(frozen=True)
class FlatnessPath:
    """Flatness at the limits of recorded iterates (see :func:`flatness_along`).

    Attributes:
        steps: the step index of each point.
        tr_bar: ``tr̄(Φ(x_t))``.
        trace: ``tr ∇²f(Φ(x_t))``.
        trace_gap: ``trace`` minus the flattest trace the problem knows, or ``None``.
        metric: ``‖∂Φ(Φ(x_t)) ∇tr̄(Φ(x_t))‖``.
        status: the :class:`~flatref.status.Status` of each flow. Values at a flow that
            stopped short of a minimum (e.g. ``stalled`` on the slow approach to a degenerate
            minimum) are those of the last point it reached; at a ``diverged`` flow they are NaN.
        x_star: the limits ``Φ(x_t)``, one per row.
    """

    steps: np.ndarray
    tr_bar: np.ndarray
    trace: np.ndarray
    trace_gap: np.ndarray | None
    metric: np.ndarray
    status: tuple
    x_star: np.ndarray = field(repr=False)

    @property
    def success(self) -> bool:
        """True when every flow converged to a minimum."""
        return all(s.success for s in self.status)


def flatness_along(problem: Problem, trajectory, *, throw: bool = False, **limit_options) -> FlatnessPath:
    """``tr̄(Φ(x_t))``, the raw trace at ``Φ(x_t)`` and the metric along a run.

    Args:
        problem: the loss.
        trajectory: a :class:`~flatref.driver.Trajectory` (its recorded iterates), or
            an array of points, one per row.
        throw: raise :class:`~flatref.errors.LimitMapError` at the first flow that does not
            converge, instead of reporting it in ``status``.
        **limit_options: passed to :func:`~flatref.flow.limit_map`.

    Each ``Φ(x_t)`` is a flow from ``x_t`` itself; along these runs the iterates stay
    near the minima set, so the flows are short. Matrix-free throughout: the metric
    needs one SVD of the ``n × d`` output Jacobian (Setting 1), never a ``d³`` tensor.

    Examples:
        >>> from flatref.problems import Example1
        >>> path = flatness_along(Example1(), [[3.0, 1 / 3], [1.0, 1.0]])
        >>> path.tr_bar.round(6).tolist(), path.success
        ([9.111111, 2.0], True)
    """
    check_problem(problem)
    points = as_array(getattr(trajectory, "xs", trajectory), "trajectory")
    steps = getattr(trajectory, "record_steps", None)
    if points.ndim != 2 or points.shape[1] != problem.dim:
        raise ValueError(f"trajectory must hold points of length {problem.dim} in rows, got shape {points.shape}")
    limits = [limit_map(problem, x, throw=throw, **limit_options) for x in points]
    values = np.array([_flatness_at(problem, limit) for limit in limits]).reshape(-1, 2)
    flattest = flattest_trace(problem)
    return FlatnessPath(
        steps=np.arange(len(points)) if steps is None else np.asarray(steps),
        tr_bar=values[:, 0] / problem.dim,
        trace=values[:, 0],
        trace_gap=None if flattest is None else values[:, 0] - flattest,
        metric=values[:, 1],
        status=tuple(limit.status for limit in limits),
        x_star=np.array([limit.x for limit in limits]),
    )


def _flatness_at(problem: Problem, limit: LimitPoint) -> tuple[float, float]:
    """``(tr ∇²f, metric)`` at the end of a flow; NaN for both where it diverged."""
    if limit.status is Status.DIVERGED:
        return np.nan, np.nan
    return float(problem.trace_hess(limit.x)), metric_at_minimum(problem, limit.x)
