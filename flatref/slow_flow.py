"""The slow flow on the minima: the projected gradient flow of ``tr̄`` along ``X*`` (docs/theory.md §6.7).

``ẋ* = −∂Φ(x*) ∇tr̄(x*)`` on ``X*``, with ``∂Φ(x*) = P`` the tangent projector. It is the
``η′ → 0`` limit that RS, SA, label-noise SGD and batch-1 SAM follow near the minima, each at its
own speed (:func:`flatref.theory.flow_time_per_step`): per step they move ``Φ(x_t)`` by
``−τ P∇tr̄`` in expectation, to leading order, with ``τ`` set by the method's parameters.

:func:`limit_flow` integrates it with DOP853 at tight tolerances and retracts every reported point onto
``X*`` with the problem's projection (:meth:`~flatref.problems.Problem.project_to_minima`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scipy.integrate import solve_ivp

from ._validation import as_int, as_positive, check_problem
from .errors import ConvergenceError, NonFiniteError
from .flatness import grad_tr_bar
from .flow import limit_map
from .geometry import project_tangent
from .problems import Problem
from .status import Status, describe



@dataclass(frozen=True)
class SlowFlow:
    """The result of :func:`limit_flow`.

    Attributes:
        times: the flow times of the recorded points (0 first).
        xs: the points ``x*(t)`` on ``X*``, one per row.
        tr_bar: ``tr̄(x*(t))``.
        metric: ``‖P∇tr̄(x*(t))‖``, the speed of the flow (the stationarity metric of Definition 3).
        status: ``converged`` (the metric fell below ``metric_tol``: a flat minimum), ``completed``
            (``t_end`` reached), ``budget`` (``max_evals`` used), ``stalled`` (the integrator or a
            projection failed) or the failed status of the flow to ``Φ(x)``.
        message: what happened.
        n_steps: the integrator's accepted steps.
    """

    times: np.ndarray = field(repr=False)
    xs: np.ndarray = field(repr=False)
    tr_bar: np.ndarray = field(repr=False)
    metric: np.ndarray = field(repr=False)
    status: Status
    message: str = field(repr=False)
    n_steps: int

    @property
    def success(self) -> bool:
        """True when the flow reached ``t_end`` or a flat minimum."""
        return self.status.success


def limit_flow(problem: Problem, x, t_end: float, *, rtol: float = 1e-10, atol: float = 1e-12,
               metric_tol: float = 1e-6, max_evals: int = 200_000, **limit_options) -> SlowFlow:  # fmt: skip
    """Integrate ``ẋ* = −∂Φ(x*) ∇tr̄(x*)`` on ``X*`` from ``Φ(x)`` up to flow time ``t_end``.

    The field ``−P∇tr̄`` is extended off ``X*`` by the same formula (the problem's tangent
    projection at the point), integrated with DOP853 at tight tolerances, and every recorded
    point is retracted onto ``X*`` by :meth:`~flatref.problems.Problem.project_to_minima`: the
    integrator drifts off ``X*`` by at most its tolerance per unit time, and the retraction
    removes that drift from what is reported.

    Args:
        problem: the loss.
        x: the start; the flow starts at ``Φ(x)`` (:func:`~flatref.flow.limit_map`).
        t_end: the flow time to reach.
        rtol, atol: solve_ivp's tolerances. Near a flat minimum the flow hovers within about
            ``atol + rtol·‖x*‖`` of it, so they are tight.
        metric_tol: stop at a flat minimum, where ``‖P∇tr̄‖ ≤ metric_tol``. Singular points of ``X*``
            (the diagonal network's flattest minimum has coordinates with ``u_k = v_k = 0``) hold the
            metric near ``1e-7``, so the default is ``1e-6``.
        max_evals: at most this many evaluations of the field (then status ``budget``).
        **limit_options: passed to :func:`~flatref.flow.limit_map` for ``Φ(x)``.

    Returns:
        A :class:`SlowFlow`, with a point per accepted step of the integrator.

    Examples:
        >>> from flatref.problems import Example1
        >>> flow = limit_flow(Example1(), [3.0, 1 / 3], t_end=10.0)   # tr̄ = x1² + x2² on x1 x2 = 1
        >>> flow.status, flow.xs[-1].round(6).tolist(), round(float(flow.tr_bar[-1]), 9)
        ('converged', [1.0, 1.0], 2.0)
    """
    check_problem(problem)
    t_end, rtol, atol, metric_tol = (as_positive(v, n) for v, n in ((t_end, "t_end"), (rtol, "rtol"), (atol, "atol"),
                                                                   (metric_tol, "metric_tol")))  # fmt: skip
    field_ = _Field(problem, as_int(max_evals, "max_evals", minimum=1), metric_tol)
    start = limit_map(problem, x, **limit_options)
    if not start.success:
        return _result(problem, [0.0], [start.x], start.status, f"the flow to Φ(x) failed: {start.message}",
                       retract=False)  # fmt: skip
    try:
        with np.errstate(all="ignore"):
            sol = solve_ivp(lambda t, z: field_(z), (0.0, t_end), start.x, method="DOP853", rtol=rtol, atol=atol,
                            events=[field_.flat])  # fmt: skip
    except _Budget:
        return _result(problem, *field_.accepted, Status.BUDGET, f"{field_.max_evals} evaluations of the field used")
    except (ConvergenceError, NonFiniteError) as err:
        return _result(problem, *field_.accepted, Status.STALLED, f"the field failed: {err}")
    except ValueError as err:  # solve_ivp's event location (brentq) when its dense output disagrees with a step
        return _result(problem, *field_.accepted, Status.STALLED, f"the integrator failed: {err}")
    if sol.t_events[0].size:
        t = sol.t_events[0][0]
        return _result(problem, sol.t, sol.y.T, Status.CONVERGED, f"‖P∇tr̄‖ ≤ {metric_tol:g} at flow time {t:.4g}")
    if sol.status != 0:
        return _result(problem, sol.t, sol.y.T, Status.STALLED, sol.message)
    return _result(problem, sol.t, sol.y.T, Status.COMPLETED, f"flow time {t_end:g} reached")


def speed(problem: Problem, x_star) -> np.ndarray:
    """The slow flow's velocity ``−P∇tr̄(x*)`` at a point of ``X*`` (its norm is the stationarity metric).

    Examples:
        >>> from flatref.problems import Example1
        >>> speed(Example1(), [3.0, 1 / 3]).round(6).tolist()    # −P(2x), P the projector onto (3, −1/3)/‖·‖
        [-5.853659, 0.650407]
    """
    return -project_tangent(problem, x_star, grad_tr_bar(problem, x_star))


class _Budget(Exception):
    """The field's evaluation budget is spent."""


class _Field:
    """``z ↦ −P(z)∇tr̄(z)`` without input checks, counting its evaluations against a budget, with the
    terminal event ``‖P∇tr̄‖ = metric_tol``, which also remembers the accepted steps (solve_ivp calls
    events at each accepted step, and at earlier times only while it locates an event)."""

    def __init__(self, problem, max_evals, metric_tol):
        self.problem, self.max_evals, self.metric_tol, self.calls = problem, max_evals, metric_tol, 0
        self.accepted = ([], [])

    def __call__(self, z):
        if self.calls >= self.max_evals:
            raise _Budget
        self.calls += 1
        N = self.problem.normal_basis(z)
        g = self.problem.unchecked.grad_trace_hess(z) / self.problem.dim
        return -(g - N @ (N.T @ g))

    def flat(self, t, z):
        times, points = self.accepted
        if not times or t > times[-1]:
            times.append(t)
            points.append(z.copy())
        return np.linalg.norm(self(z)) - self.metric_tol

    flat.terminal = True


def _result(problem, times, points, status, detail, *, retract=True) -> SlowFlow:
    """Retract each point onto ``X*`` (unless the flow to ``Φ`` failed) and read ``tr̄`` and the metric there."""
    xs = np.array([problem.project_to_minima(z) if retract else z for z in points])
    tr_bar = np.array([problem.unchecked.trace_hess(z) / problem.dim for z in xs])
    metric = np.array([np.linalg.norm(speed(problem, z)) for z in xs])
    return SlowFlow(np.asarray(times, dtype=float), xs, tr_bar, metric, status, describe(status, detail), len(xs) - 1)
