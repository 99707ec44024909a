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

Along a run (:func:`flatness_along`, docs/theory.md §6.9) each ``Φ(x_t)`` is warm-started: the flow from
``x_t`` is integrated by :func:`~flatref.flow.exponential_flow`, which takes the stiff linear part ``L ≈ ∇²f`` at the
previous limit exactly (:func:`~flatref.flow.linear_part`), and :func:`~flatref.flow.limit_map` finishes and certifies
from its end. The metric of a training loss is a least-squares solve with the ``n × d`` output Jacobian
(:func:`tangent_part`), never a ``d × d`` projector.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, lapack

from ._validation import as_array, as_int, as_nonnegative, as_positive, as_vector, check_problem, require_finite
from .errors import LimitMapError
from .flow import MAX_EXPONENTIAL_STEPS, LimitPoint, exponential_flow, limit_map, linear_part
from .geometry import project_tangent
from .problems import Problem, TrainingLoss
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

    ``∂Φ(x*) = P = I − Jᵀ(JJᵀ)⁻¹J`` for a training loss with output Jacobian ``J`` (``n × d``), so
    ``P g = g − Jᵀc`` with ``c`` the least-squares solution of ``Jᵀc ≈ g``: one Gram matrix ``JJᵀ`` and its
    Cholesky factor, ``O(n²d)``, never a ``d × d`` projector (:func:`tangent_part`). Elsewhere, and where
    ``J`` is too ill-conditioned for that, the problem's normal basis (docs/theory.md §6.2).

    Examples:
        >>> from flatref.problems import Example1
        >>> round(metric_at_minimum(Example1(), [1.0, 1.0]), 12)   # the flat minimum
        0.0
    """
    check_problem(problem)
    g = grad_tr_bar(problem, x_star)
    return _norm(tangent_part(problem, as_vector(x_star, problem.dim, "x_star"), g))


#: The Gram route of :func:`tangent_part` is taken when ``√(tr K · tr K⁻¹) ≤ 1e5`` (``K = JJᵀ``), a bound on
#: ``cond(J) = √(λ_max(K)/λ_min(K))``. Then every singular value of ``J`` is above the ``1e-6 σ_max`` cut of
#: :meth:`~flatref.problems.TrainingLoss.normal_basis`, so both routes project onto the same space, and the
#: corrected semi-normal equations are accurate to about ``ε_mach · cond(J) ≤ 2e-11`` of ``‖g‖``.
GRAM_MAX_COND = 1e5


def tangent_part(problem: Problem, x_star, g) -> np.ndarray:
    """``∂Φ(x*) g``: ``g`` minus its part in the normal space of ``X*`` at ``x_star``.

    For a training loss, ``g − Jᵀc`` where ``(JJᵀ)c = Jg`` (``J`` the ``n × d`` output Jacobian; ``n`` the
    rows), solved by Cholesky with one step of refinement (Björck's corrected semi-normal equations:
    ``c₂ = (JJᵀ)⁻¹J r`` for the residual ``r = g − Jᵀc``), ``O(n²d)``. Where the bound of :data:`GRAM_MAX_COND`
    fails, or for other problems, :func:`~flatref.geometry.project_tangent` (an SVD of ``J``, or the
    Hessian's eigenvectors).

    Examples:
        >>> from flatref.problems import Example1
        >>> tangent_part(Example1(), np.array([2.0, 0.5]), np.array([1.0, 0.0])).round(6).tolist()   # ⟂ (0.5, 2)
        [0.941176, -0.235294]
    """
    if isinstance(problem, TrainingLoss):
        projected = _gram_tangent_part(problem.unchecked.output_jacobian(x_star).reshape(-1, problem.dim), g)
        if projected is not None:
            return projected
    return project_tangent(problem, x_star, g)


def _gram_tangent_part(J, g):
    """``g − Jᵀ(JJᵀ)⁻¹Jg`` by Cholesky and one refinement step, or ``None`` where ``J`` may be ill-conditioned
    or a number overflows (then the SVD route decides)."""
    with np.errstate(all="ignore"):
        K = J @ J.T
        if not np.all(np.isfinite(K)):
            return None
        try:
            R = cholesky(K, lower=False, check_finite=False)
        except LinAlgError:
            return None
        R_inv, info = lapack.dtrtri(R, lower=0)
        if info != 0 or not np.trace(K) * np.sum(R_inv * R_inv) <= GRAM_MAX_COND**2:  # NaN fails too
            return None
        residual = g - J.T @ cho_solve((R, False), J @ g, check_finite=False)
        residual = residual - J.T @ cho_solve((R, False), J @ residual, check_finite=False)
    return residual if np.all(np.isfinite(residual)) else None


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
            flattest point from a sharpest one) where the metric is at most ``ε′`` and ``dim X* ≤ 200``;
            else ``None``.
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
        """What ``x*`` is for ``tr̄`` along ``X*`` (:attr:`TraceCurvature.kind`), or ``None`` without a curvature."""
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


#: The largest ``dim X*`` for which :func:`trace_curvature` runs by default (``2 dim X*`` projections).
MAX_CURVATURE_DIM = 200


def flatness_report(problem: Problem, x, eps: float, eps_prime: float, *, throw: bool = False,
                    curvature: bool = True, **limit_options) -> FlatnessReport:  # fmt: skip
    """Is ``x`` an ``(ε, ε′)``-flat minimum (Definition 3)? With the numbers that decide it.

    A point whose flow does not converge to a minimum (a saddle, divergence, time
    out) is never reported flat, and its limit-dependent fields are ``None``. ``is_flat`` is
    Definition 3 exactly as the paper states it, a first-order test; ``kind`` adds the second
    order (docs/theory.md §2.3): is ``x*`` a minimum, maximum or saddle of ``tr̄`` along ``X*``?

    Args:
        problem: the loss.
        x: the point.
        eps: the gradient tolerance ``ε ≥ 0``.
        eps_prime: the stationarity tolerance ``ε′ ≥ 0``.
        throw: raise :class:`~flatref.errors.LimitMapError` instead of reporting a failed flow.
        curvature: also compute :func:`trace_curvature` at ``x*`` where ``metric ≤ ε′`` (a stationary
            point of ``tr̄`` on ``X*``, where the curvature is intrinsic) and ``dim X* ≤ 200``; else
            ``curvature`` is ``None``.
        **limit_options: passed to :func:`~flatref.flow.limit_map`.

    Raises:
        ValueError: where a number at ``x`` or ``x*`` overflows float64 (never a ``converged`` report
            with an infinite or NaN metric or trace).

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
    grad_norm = _norm(problem.grad(x))
    require_finite(grad_norm, "x", "‖∇f(x)‖")
    limit = limit_map(problem, x, throw=throw, **limit_options)
    if not limit.success:
        return FlatnessReport(grad_norm, limit, None, None, None, None, None, eps, eps_prime, False)
    x_star = limit.x
    metric = metric_at_minimum(problem, x_star)
    trace_star = float(problem.trace_hess(x_star))
    require_finite((metric, trace_star), "x", "the metric and the trace at Φ(x)")
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
        curvature=_curvature_if_stationary(problem, x_star, curvature and metric <= eps_prime),
    )


def _curvature_if_stationary(problem, x_star, wanted: bool):
    """:func:`trace_curvature` at ``x_star`` if ``wanted`` and ``dim X* ≤ MAX_CURVATURE_DIM``, else ``None``."""
    if not wanted or problem.dim - problem.normal_basis(x_star).shape[1] > MAX_CURVATURE_DIM:
        return None
    return trace_curvature(problem, x_star)


@dataclass(frozen=True)
class TraceCurvature:
    """The Hessian of ``tr̄`` along ``X*`` at a point ``x*`` (see :func:`trace_curvature`).

    Attributes:
        basis: an orthonormal basis ``T`` (``d × k``) of the tangent space of ``X*`` at ``x*``.
        hessian: the ``k × k`` Hessian of ``u ↦ tr̄(R(x* + Tu))`` at ``u = 0`` (per unit arclength²).
        eigenvalues: its eigenvalues, ascending.
        kind: ``minimum`` (all above ``tol``), ``maximum`` (all below ``−tol``), ``saddle`` (both signs
            beyond ``tol``), ``degenerate`` (otherwise: some eigenvalue within ``tol`` of 0, or ``k = 0``),
            or ``singular`` where ``X*`` is not a manifold at ``x*`` (the normal dimension at the
            retracted points differs from the one at ``x*``, as at a factorization ``UUᵀ`` with zero
            columns or a diagonal network with zero weights): there the difference quotients mean nothing.
            Symmetries give zero eigenvalues: on matrix sensing ``tr̄`` depends on ``UUᵀ`` only, so the
            ``r(r−1)/2`` rotations ``U → UO`` make every minimum ``degenerate``; read ``eigenvalues``.
        tol: the eigenvalue tolerance used for ``kind``.
        projections: the projections onto ``X*`` spent (``2k``).

    Examples:
        >>> from flatref.problems import Example1
        >>> c = trace_curvature(Example1(), [1.0, 1.0])
        >>> c.basis.shape, c.hessian.shape, c.projections, c.kind
        ((2, 1), (1, 1), 2, 'minimum')
    """

    basis: np.ndarray = field(repr=False)
    hessian: np.ndarray = field(repr=False)
    eigenvalues: np.ndarray
    kind: str
    tol: float
    projections: int


def trace_curvature(problem: Problem, x_star, *, step: float = 1e-5, rtol: float = 1e-6,
                    max_dim: int = MAX_CURVATURE_DIM) -> TraceCurvature:  # fmt: skip
    """The curvature of ``tr̄`` along the minima set at ``x_star`` (docs/theory.md §2.3, §6.8).

    Definition 3 is first order: its metric vanishes at every stationary point of ``tr̄`` on ``X*``,
    the sharpest as well as the flattest. This is the second order. With ``T`` an orthonormal basis
    of the tangent space (the complement of ``problem.normal_basis(x*)``) and ``R`` the problem's
    projection onto ``X*`` (:meth:`~flatref.problems.Problem.project_to_minima`, a retraction whose
    Jacobian at ``x*`` is the tangent projector), the result is the Hessian of ``u ↦ tr̄(R(x* + Tu))``
    at ``u = 0``. Column ``j`` is a central difference of the Riemannian gradient
    ``G(y) = P(y)∇tr̄(y)`` at ``y± = R(x* ± δ T e_j)``: ``H e_j ≈ Tᵀ(G(y+) − G(y−))/(2δ)``, then
    ``H ← (H + Hᵀ)/2``. The curvature terms of ``R`` are ``O(|u|²)`` and even in ``u``, so they cancel
    in central differences. At a critical point of ``tr̄`` on ``X*`` (metric 0) the Hessian is
    intrinsic: the same for every retraction, and the same as the second derivative of ``tr̄`` along
    any curve in ``X*`` with unit speed. Elsewhere it depends on ``R``.

    Step and tolerance: ``δ = step · L``, with ``L = ‖x*‖`` (1 at the origin) the length scale of
    ``x*``. The truncation error is ``O((δ/L)²)`` relative; the rounding error is ``O(ε_mach/δ)``,
    because the projections are Newton iterations that converge to rounding. With ``step = 1e-5``
    both are at most about ``1e-9`` of the curvature on flatref's problems. An eigenvalue counts as
    zero when it is within ``tol = rtol · s`` of 0, where ``s`` is the larger of ``max|λ|`` and the
    curvature scale ``max(‖∇tr̄(x*)‖/L, |tr̄(x*)|/L²)``. So the kind does not change when ``f`` or
    ``x`` is rescaled, and ``rtol = 1e-6`` is about 1000 times the difference error.

    Args:
        problem: the loss.
        x_star: a point of ``X*``.
        step: the relative difference step (``δ`` above).
        rtol: the relative eigenvalue tolerance for ``kind``.
        max_dim: refuse when ``k = dim X*`` exceeds it. The cost is ``2k`` projections and ``2k``
            normal bases, so ``k`` in the thousands would take minutes.

    Returns:
        A :class:`TraceCurvature`.

    Raises:
        TypeError: when ``problem`` is not a flatref Problem or ``x_star`` is not a real vector.
        ValueError: when ``x_star`` has the wrong shape or is not finite, ``step``, ``rtol`` or
            ``max_dim`` are invalid, when ``dim X* > max_dim``, or when the Hessian overflows float64.
        ConvergenceError: propagated unchanged when a projection onto ``X*`` fails (``x_star`` too
            far from ``X*``, or the projection is refused at negative curvature).

    Examples:
        >>> from flatref.problems import Example1
        >>> c = trace_curvature(Example1(), [1.0, 1.0])   # tr̄ = 2cosh(2s) on (e^s, e^−s): 8/|γ′|² = 4
        >>> c.kind, round(float(c.eigenvalues[0]), 6)
        ('minimum', 4.0)
    """
    check_problem(problem)
    x_star = as_vector(x_star, problem.dim, "x_star")
    step, rtol = as_positive(step, "step"), as_positive(rtol, "rtol")
    max_dim = as_int(max_dim, "max_dim", minimum=1)
    N = problem.normal_basis(x_star)
    k = problem.dim - N.shape[1]
    if k > max_dim:
        raise ValueError(f"the minima set has dimension {k} > max_dim = {max_dim} (2k projections would be needed)")
    T = np.linalg.svd(N, full_matrices=True)[0][:, N.shape[1]:] if N.size else np.eye(problem.dim)
    H, singular = _hessian_by_differences(problem, x_star, T, N.shape[1], step * _length(x_star))
    require_finite(H, "x_star", "the tangent Hessian of tr̄")
    eigenvalues = np.linalg.eigvalsh(H)
    tol = rtol * max(float(np.max(np.abs(eigenvalues), initial=0.0)), _curvature_scale(problem, x_star))
    return TraceCurvature(T, H, eigenvalues, "singular" if singular else _kind(eigenvalues, tol), tol, 2 * k)


def _hessian_by_differences(problem, x_star, T, normal_dim, delta):
    """``Tᵀ(G(R(x* + δt)) − G(R(x* − δt)))/(2δ)`` for each column ``t`` of ``T``, symmetrized.

    Also returns whether the normal dimension changed at some retracted point (``X*`` not a manifold).
    """
    columns, singular = [], False
    for t in T.T:
        (g_plus, n_plus), (g_minus, n_minus) = (
            _riemannian_gradient(problem, problem.project_to_minima(x_star + s * delta * t)) for s in (1.0, -1.0)
        )
        singular |= n_plus != normal_dim or n_minus != normal_dim
        columns.append(T.T @ (g_plus - g_minus) / (2 * delta))
    H = np.array(columns).T.reshape(T.shape[1], T.shape[1])
    return (H + H.T) / 2, singular


def _riemannian_gradient(problem, y):
    """``P(y)∇tr̄(y)`` and the normal dimension at ``y``."""
    N = problem.normal_basis(y)
    g = grad_tr_bar(problem, y)
    return g - N @ (N.T @ g), N.shape[1]


def _length(x_star) -> float:
    """The length scale ``L`` of ``x*``: ``‖x*‖``, or 1 at the origin."""
    return _norm(x_star) or 1.0


def _curvature_scale(problem, x_star) -> float:
    """``max(‖∇tr̄(x*)‖/L, |tr̄(x*)|/L²)``: the size a curvature of ``tr̄`` has at ``x*``."""
    length = _length(x_star)
    return max(_norm(grad_tr_bar(problem, x_star)) / length, abs(tr_bar(problem, x_star)) / length**2)


def _kind(eigenvalues, tol) -> str:
    if eigenvalues.size and np.all(eigenvalues > tol):
        return "minimum"
    if eigenvalues.size and np.all(eigenvalues < -tol):
        return "maximum"
    return "saddle" if np.any(eigenvalues > tol) and np.any(eigenvalues < -tol) else "degenerate"


def _norm(v) -> float:
    """``‖v‖`` scaled by ``max|v_i|`` first, so it is finite for every finite ``v`` whose norm is."""
    v = np.asarray(v)
    scale = float(np.max(np.abs(v), initial=0.0))
    return scale * float(np.linalg.norm(v / scale)) if 0.0 < scale < np.inf else scale


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
        limits: the :class:`~flatref.flow.LimitPoint` of each flow (its gradient count, message, ...).
    """

    steps: np.ndarray
    tr_bar: np.ndarray
    trace: np.ndarray
    trace_gap: np.ndarray | None
    metric: np.ndarray
    status: tuple
    x_star: np.ndarray = field(repr=False)
    limits: tuple = field(default=(), repr=False)

    @property
    def success(self) -> bool:
        """True when every flow converged to a minimum."""
        return all(s.success for s in self.status)


def flatness_along(problem: Problem, trajectory, *, throw: bool = False, warm: bool = True,
                   **limit_options) -> FlatnessPath:  # fmt: skip
    """``tr̄(Φ(x_t))``, the raw trace at ``Φ(x_t)`` and the metric along a run.

    Args:
        problem: the loss.
        trajectory: a :class:`~flatref.driver.Trajectory` (its recorded iterates), or
            an array of points, one per row.
        throw: raise :class:`~flatref.errors.LimitMapError` at the first flow that does not
            converge, instead of reporting it in ``status``.
        warm: start each flow's stiff part from the previous limit (below); ``False`` runs
            :func:`~flatref.flow.limit_map` from every point as it is.
        **limit_options: passed to :func:`~flatref.flow.limit_map`.

    **Warm start** (docs/theory.md §6.9). Consecutive iterates are close, so ``Φ(x_{t+1})`` is close to
    ``Φ(x_t)``, and the Hessian along the flow from ``x_{t+1}`` is close to ``L = ∇²f`` at ``Φ(x_t)``. The
    flow from ``x_{t+1}`` is integrated by an exponential Runge–Kutta method that takes ``e^{−hL}`` exactly
    (:func:`~flatref.flow.exponential_flow`), with steps limited by accuracy instead of by stiffness, until
    ``‖∇f‖ ≤ gtol``; from that point of the same flow line :func:`~flatref.flow.limit_map` finishes and
    certifies exactly as from a cold start (the projection's step at most ``finish_radius``, the saddle
    check, every status). A point whose warm flow fails (too many steps, a limit of ``limit_map`` reached, a
    non-finite value) or ends without success is computed cold, so every failure reported is one of the
    cold path, with its status. ``L`` is built once from the output Jacobian (``O(n²d)``) and rebuilt at the
    current limit when the flow needs too many steps; its quality affects only the cost, never the result.
    The metric is :func:`metric_at_minimum` (an ``n × n`` Cholesky solve for training losses).

    Examples:
        >>> from flatref.problems import Example1
        >>> path = flatness_along(Example1(), [[3.0, 1 / 3], [1.0, 1.0]])
        >>> path.tr_bar.round(6).tolist(), path.success
        ([9.111111, 2.0], True)
        >>> cold = flatness_along(Example1(), [[3.0, 0.34], [3.01, 0.34]], warm=False)
        >>> warm = flatness_along(Example1(), [[3.0, 0.34], [3.01, 0.34]])
        >>> bool(np.allclose(warm.x_star, cold.x_star, rtol=0, atol=1e-9))
        True
    """
    check_problem(problem)
    points = as_array(getattr(trajectory, "xs", trajectory), "trajectory")
    steps = getattr(trajectory, "record_steps", None)
    if points.ndim != 2 or points.shape[1] != problem.dim:
        raise ValueError(f"trajectory must hold points of length {problem.dim} in rows, got shape {points.shape}")
    if not isinstance(warm, bool):
        raise TypeError(f"warm must be True or False, got {type(warm).__name__}")
    limit = _WarmLimits(problem, throw, limit_options) if warm else _cold(problem, throw, limit_options)
    limits = [limit(x) for x in points]
    values = np.array([_flatness_at(problem, limit) for limit in limits]).reshape(-1, 2)
    flattest = flattest_trace(problem)
    return FlatnessPath(
        steps=np.arange(len(points)) if steps is None else np.asarray(steps),
        tr_bar=values[:, 0] / problem.dim,
        trace=values[:, 0],
        trace_gap=None if flattest is None else values[:, 0] - flattest,
        metric=values[:, 1],
        status=tuple(limit.status for limit in limits),
        x_star=np.array([limit.x for limit in limits]).reshape(len(points), problem.dim),
        limits=tuple(limits),
    )


def _flatness_at(problem: Problem, limit: LimitPoint) -> tuple[float, float]:
    """``(tr ∇²f, metric)`` at the end of a flow; NaN for both where it diverged."""
    if limit.status is Status.DIVERGED:
        return np.nan, np.nan
    return float(problem.trace_hess(limit.x)), metric_at_minimum(problem, limit.x)


def _cold(problem, throw, options):
    """``x ↦ limit_map(problem, x)`` with the caller's options."""
    return lambda x: limit_map(problem, x, throw=throw, **options)


#: limit_map's keyword arguments and their defaults: the warm flow obeys the same tolerances and limits.
_LIMIT_DEFAULTS = {name: p.default for name, p in inspect.signature(limit_map).parameters.items()
                   if p.kind is inspect.Parameter.KEYWORD_ONLY}  # fmt: skip


class _WarmLimits:
    """``Φ(x)`` for consecutive points: each flow's stiff part from the last converged limit (the anchor)."""

    def __init__(self, problem, throw, options):
        unknown = set(options) - set(_LIMIT_DEFAULTS)
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)} for limit_map")
        self.problem, self.throw, self.options = problem, throw, options
        self.settings = _LIMIT_DEFAULTS | options
        self.anchor, self.linear, self.first_step, self.steps_at_build = None, None, None, 0

    def __call__(self, x) -> LimitPoint:
        limit = self._warm(x) if self.anchor is not None else None
        if limit is None or not limit.success:
            limit = limit_map(self.problem, x, throw=False, **self.options)
        if limit.success:
            self.anchor = limit.x
        elif self.throw:
            raise LimitMapError(limit)
        return limit

    def _warm(self, x):
        """The warm limit, or ``None`` where the exponential flow fails, also with ``L`` rebuilt at the anchor."""
        if self.linear is not None:
            flow = self._flow(x, 2 * max(self.steps_at_build, 10), self.first_step)
            if flow.success:
                return self._finish(flow)
        self.linear = linear_part(self.problem, self.anchor)
        if self.linear is None:
            return None
        flow = self._flow(x, MAX_EXPONENTIAL_STEPS, None)
        if not flow.success:
            return None
        self.steps_at_build = flow.steps
        return self._finish(flow)

    def _flow(self, x, max_steps, first_step):
        keys = ("gtol", "rtol", "atol", "max_time", "max_grad_evals", "blowup")
        return exponential_flow(self.problem, x, self.linear, anchor=self.anchor, first_step=first_step,
                                max_steps=max_steps, **{key: self.settings[key] for key in keys})  # fmt: skip

    def _finish(self, flow):
        """``limit_map`` from the flow's end, with what the flow spent taken from its budgets and added to its
        counts (the exponential flow stops before either budget runs out). Where its finish is rejected, ``limit_map``'s
        own exponential stage (for large training losses) carries the flow on: at ``d = 10⁴`` one such point took 124
        gradients and 3 s, against 5,713 gradients and 14 s by DOP853."""
        self.first_step = flow.first_step
        left = {"max_time": self.settings["max_time"] - flow.time,
                "max_grad_evals": self.settings["max_grad_evals"] - flow.n_grad}  # fmt: skip
        if not (left["max_time"] > 0 and left["max_grad_evals"] >= 1):
            return None
        limit = limit_map(self.problem, flow.x, throw=False, **(self.options | left))
        return replace(limit, n_grad=limit.n_grad + flow.n_grad, flow_time=limit.flow_time + flow.time,
                       message=f"{limit.message} (warm start: {flow.steps} exponential steps to |grad f| <= gtol)")
