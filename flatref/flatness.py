"""Flatness: the normalized trace, the stationarity metric, and Definitions 2–3.

- ``tr̄(x) := tr ∇²f(x) / d`` (eq. (1)) and ``∇tr̄(x)_k = (1/d) Σ_i ∂³f/∂x_k∂x_i∂x_i``.
- The stationarity metric ``‖∂Φ(x*) ∇tr̄(x*)‖`` at ``x* = Φ(x)``: the norm of the
  Riemannian gradient of ``tr̄`` on the minima set (``∂Φ(x*)`` is the tangent projector).
- ``x`` is an ``(ε, ε′)``-flat minimum (Definition 3, eq. (6)) when ``‖∇f(x)‖ ≤ ε`` and
  the metric is at most ``ε′``; a flat local minimum (Definition 2, eq. (5)) is a
  ``(0, 0)``-flat one.

Because ``tr̄`` divides by ``d``, a fixed ``ε′`` is weak in high dimension (MATH.md §6):
:class:`FlatnessReport` also gives the raw trace ``tr ∇²f(x*)`` and, where the problem
knows its flattest minimum, the gap to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import as_nonnegative, as_vector
from .limit_map import LimitMapError, LimitPoint, LimitStatus, limit_map, project_tangent
from .problems import Problem


def tr_bar(problem: Problem, x) -> float:
    """``tr̄(x) = tr ∇²f(x) / d`` (eq. (1))."""
    return problem.trace_hess(x) / problem.dim


def grad_tr_bar(problem: Problem, x) -> np.ndarray:
    """``∇tr̄(x) = ∇ tr∇²f(x) / d``, from the closed-form third derivatives."""
    return problem.grad_trace_hess(x) / problem.dim


def metric_at_minimum(problem: Problem, x_star) -> float:
    """``‖∂Φ(x*) ∇tr̄(x*)‖`` for a point ``x_star`` of the minima set (no flow is run)."""
    return float(np.linalg.norm(project_tangent(problem, x_star, grad_tr_bar(problem, x_star))))


def stationarity_metric(problem: Problem, x, **limit_options) -> float:
    """``‖∂Φ(x*) ∇tr̄(x*)‖`` with ``x* = Φ(x)`` (the quantity bounded by ``ε′`` in eq. (6)).

    Args:
        problem: the loss.
        x: any point whose flow converges to a minimum.
        **limit_options: passed to :func:`~flatref.limit_map.limit_map`.

    Raises:
        LimitMapError: if the flow from ``x`` does not converge to a minimum.
    """
    limit = limit_map(problem, x, **limit_options)
    if not limit.success:
        raise LimitMapError(limit)
    return metric_at_minimum(problem, limit.x)


@dataclass(frozen=True)
class FlatnessReport:
    """The flatness of a point ``x`` per Definition 3.

    Attributes:
        grad_norm: ``‖∇f(x)‖``.
        limit: the :class:`~flatref.limit_map.LimitPoint` of the flow from ``x``.
        x_star: ``Φ(x)`` when the flow converged to a minimum, else ``None``.
        metric: ``‖∂Φ(x*) ∇tr̄(x*)‖``, or ``None`` without a limit.
        tr_bar_star: ``tr̄(x*)``, or ``None``.
        trace_star: the raw trace ``tr ∇²f(x*)``, or ``None``.
        trace_gap: ``tr ∇²f(x*)`` minus the flattest trace the problem knows, or ``None``.
        eps, eps_prime: the tolerances of Definition 3.
        is_flat: ``‖∇f(x)‖ ≤ ε`` and ``metric ≤ ε′``, and the flow converged to a minimum.
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

    def __repr__(self) -> str:
        def fmt(value):
            return "None" if value is None else f"{value:.3g}"

        return (
            f"FlatnessReport(is_flat={self.is_flat}, status={self.limit.status}, grad_norm={fmt(self.grad_norm)}, "
            f"metric={fmt(self.metric)}, tr_bar_star={fmt(self.tr_bar_star)}, trace_star={fmt(self.trace_star)}, "
            f"trace_gap={fmt(self.trace_gap)}, eps={self.eps:g}, eps_prime={self.eps_prime:g})"
        )


def flattest_trace(problem: Problem) -> float | None:
    """The smallest ``tr ∇²f`` over the flat minima the problem knows in closed form, or ``None``."""
    try:
        minima = problem.flat_minima()
    except NotImplementedError:
        return None
    return min(float(problem.trace_hess(m)) for m in minima)


def flatness_report(problem: Problem, x, eps: float, eps_prime: float, **limit_options) -> FlatnessReport:
    """Is ``x`` an ``(ε, ε′)``-flat minimum (Definition 3)? With the numbers that decide it.

    A point whose flow does not converge to a minimum (a saddle, divergence, time
    out) is never reported flat, and its limit-dependent fields are ``None``.

    Args:
        problem: the loss.
        x: the point.
        eps: the gradient tolerance ``ε ≥ 0``.
        eps_prime: the stationarity tolerance ``ε′ ≥ 0``.
        **limit_options: passed to :func:`~flatref.limit_map.limit_map`.
    """
    x = as_vector(x, problem.dim)
    eps, eps_prime = as_nonnegative(eps, "eps"), as_nonnegative(eps_prime, "eps_prime")
    grad_norm = float(np.linalg.norm(problem.grad(x)))
    limit = limit_map(problem, x, **limit_options)
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
    )



@dataclass(frozen=True)
class FlatnessPath:
    """Flatness at the limits of recorded iterates (see :func:`flatness_along`).

    Attributes:
        steps: the step index of each point.
        tr_bar: ``tr̄(Φ(x_t))``.
        trace: ``tr ∇²f(Φ(x_t))``.
        trace_gap: ``trace`` minus the flattest trace the problem knows, or ``None``.
        metric: ``‖∂Φ(Φ(x_t)) ∇tr̄(Φ(x_t))‖``.
        status: the :class:`~flatref.limit_map.LimitStatus` of each flow. Values at a flow
            that did not converge (e.g. a ``max_time`` stall on the slow approach to a
            degenerate minimum) are those of the last point it reached.
        x_star: the limits ``Φ(x_t)``, one per row.
    """

    steps: np.ndarray
    tr_bar: np.ndarray
    trace: np.ndarray
    trace_gap: np.ndarray | None
    metric: np.ndarray
    status: tuple
    x_star: np.ndarray = field(repr=False)


def flatness_along(problem: Problem, trajectory, **limit_options) -> FlatnessPath:
    """``tr̄(Φ(x_t))``, the raw trace at ``Φ(x_t)`` and the metric along a run.

    Args:
        problem: the loss.
        trajectory: a :class:`~flatref.algorithms.Trajectory` (its recorded iterates), or
            an array of points, one per row.
        **limit_options: passed to :func:`~flatref.limit_map.limit_map`.

    Each ``Φ(x_t)`` is a flow from ``x_t`` itself; along these runs the iterates stay
    near the minima set, so the flows are short. Matrix-free throughout: the metric
    needs one SVD of the ``n × d`` output Jacobian (Setting 1), never a ``d³`` tensor.

    Raises:
        LimitMapError: if the flow from a recorded point diverges.
    """
    points = getattr(trajectory, "xs", trajectory)
    steps = getattr(trajectory, "record_steps", None)
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != problem.dim:
        raise ValueError(f"trajectory must hold points of length {problem.dim} in rows, got shape {points.shape}")
    limits, status = [], []
    for x in points:
        limit = limit_map(problem, x, **limit_options)
        if limit.status is LimitStatus.DIVERGED:
            raise LimitMapError(limit)
        limits.append(limit.x)
        status.append(limit.status)
    trace = np.array([problem.trace_hess(x_star) for x_star in limits])
    flattest = flattest_trace(problem)
    return FlatnessPath(
        steps=np.arange(len(points)) if steps is None else np.asarray(steps),
        tr_bar=trace / problem.dim,
        trace=trace,
        trace_gap=None if flattest is None else trace - flattest,
        metric=np.array([metric_at_minimum(problem, x_star) for x_star in limits]),
        status=tuple(status),
        x_star=np.array(limits),
    )
