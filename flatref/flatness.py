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

from ._validation import as_array, as_nonnegative, as_vector, check_problem
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
                    **limit_options) -> FlatnessReport:  # fmt: skip
    """Is ``x`` an ``(ε, ε′)``-flat minimum (Definition 3)? With the numbers that decide it.

    A point whose flow does not converge to a minimum (a saddle, divergence, time
    out) is never reported flat, and its limit-dependent fields are ``None``.

    Args:
        problem: the loss.
        x: the point.
        eps: the gradient tolerance ``ε ≥ 0``.
        eps_prime: the stationarity tolerance ``ε′ ≥ 0``.
        throw: raise :class:`~flatref.errors.LimitMapError` instead of reporting a failed flow.
        **limit_options: passed to :func:`~flatref.flow.limit_map`.

    Examples:
        >>> from flatref.problems import Example1
        >>> flatness_report(Example1(), [1.0, 1.0], eps=1e-3, eps_prime=1e-3).is_flat
        True
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
