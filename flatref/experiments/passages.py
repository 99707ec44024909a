"""First-passage times of one run: the measurement behind Table 1 in numbers.

A run starts at a problem's sharp minimum and records two first-passage times:

- **metric ≤ √ε**: the first step ``t`` at which ``x* = Φ(x_t)`` has ``‖∂Φ(x*) ∇tr̄(x*)‖ ≤ √ε``.
  This is the second condition of Definition 3 (eq. (6)) only. The first, ``‖∇f(x_t)‖ ≤ ε``,
  is reported beside it, and Theorem 2's finish is applied before Definition 3 is read
  (:func:`gradient_finish`): gradient steps from ``x_t`` until ``‖∇f‖ ≤ ε``, which leave ``Φ``
  fixed to first order (Lemma 6); the finished point is then checked against both conditions.
- **half**: the first step at which the raw trace gap ``tr ∇²f(x*) − min_{X*} tr ∇²f`` is at
  most half its value at the start.

**How ``Φ(x_t)`` is screened** (:func:`screen_limit`). Where the problem knows ``Φ`` in
closed form (Example 1, the diagonal networks) it is used. Otherwise the problem's projection onto ``X*``
(Gauss–Newton in Setting 1) stands in for ``Φ(x_t)``: both are
``x_t − J⁺(p(x_t) − y) + O(dist²)``, so trace and metric differ by ``O(dist(x_t, X*)²)``,
and the projection costs a few ``n × n`` solves where a flow costs hundreds of gradients
(``tests/experiments/test_passages.py`` compares the two).

**When.** Screening every step would cost more than the run, so the run is screened on
a schedule (:func:`screening_steps`): chunks that grow by ``growth``, each screened at
``1/records`` of its length, so a hit is exact to about ``(growth − 1)/records`` of ``t``
(1.6 % with the defaults). The driver's callback screens and stops the run once every
event is reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validation import as_int, as_positive, as_vector, check_problem
from ..algorithms import StepRule
from ..driver import run
from ..errors import ConvergenceError, LimitMapError, StatusError
from ..flatness import flattest_trace, metric_at_minimum
from ..flow import limit_map
from ..problems import Problem
from ..status import Status, describe


@dataclass(frozen=True)
class Hits:
    """First-passage times of one run; ``None``: not reached.

    Attributes:
        to_metric: ``{ε: t}``, the first screened step whose limit has metric ``≤ √ε`` (0: the start).
        grad_norm_at_metric: ``{ε: ‖∇f(x_t)‖}`` at that step: Definition 3's first condition
            holds there when it is ``≤ ε``.
        x_at_metric: ``{ε: x_t}`` at that step.
        finish: ``{ε: Finish}``, Theorem 2's gradient steps from ``x_t`` (:func:`gradient_finish`),
            for the ``ε`` reached.
        to_half: the first screened step at which the trace gap is at most half the start's.
        steps: the steps run: the run stops once every event is reached, at ``max_steps``, or
            when it diverges.
        status: ``reached`` (every event), ``capped`` or ``diverged`` (a :class:`~flatref.status.Status`).
        gap_start, gap_end: the trace gap at the limits of the first and the last screened iterate.
        metric_start, metric_end: the metric there.

    Examples:
        >>> from flatref import SA
        >>> from flatref.problems import Example1
        >>> hits = first_hits(Example1(), SA(0.05, 0.05, 0.3), [3.0, 1 / 3], (0.1, 0.05), max_steps=2000)
        >>> round(hits.gap_start, 6), round(hits.metric_start, 6)   # 2(9 + 1/9) − 2(1 + 1); |18 − 2/9| / √(9 + 1/9)
        (14.222222, 5.889681)
        >>> hits.to_metric[0.1] <= hits.to_metric[0.05] == hits.steps, hits.metric_end <= 0.05**0.5  # smaller ε: later
        (True, True)
    """

    to_metric: dict
    grad_norm_at_metric: dict = field(repr=False)
    x_at_metric: dict = field(repr=False)
    finish: dict = field(repr=False)
    to_half: int | None
    steps: int
    status: Status
    gap_start: float
    gap_end: float
    metric_start: float
    metric_end: float

    @property
    def success(self) -> bool:
        """True when every event was reached (status ``reached``).

        Examples:
            >>> from flatref import GD
            >>> from flatref.problems import Example1
            >>> hits = first_hits(Example1(), GD(0.05), [3.0, 1 / 3], 0.1, max_steps=100)   # ∇f = 0: GD stays sharp
            >>> hits.status, hits.success, hits.to_metric
            ('capped', False, {0.1: None})
            >>> first_hits(Example1(), GD(0.05), [1.0, 1.0], 0.1, max_steps=100).success    # flat from the start
            True
        """
        return self.status.success

    @property
    def message(self) -> str:
        """The status's message, with the steps run.

        Examples:
            >>> from flatref import GD
            >>> from flatref.problems import Example1
            >>> first_hits(Example1(), GD(0.05), [3.0, 1 / 3], 0.1, max_steps=100).message
            'the step cap was reached before every event: after 100 steps'
        """
        return describe(self.status, f"after {self.steps} steps")


@dataclass(frozen=True)
class Finish:
    """Theorem 2's finish from one iterate: gradient steps ``x ← x − η∇f(x)`` until ``‖∇f(x)‖ ≤ ε``.

    Attributes:
        steps: the gradient steps taken; ``None`` if ``‖∇f‖`` was still above ``ε`` after the cap.
        grad_norm: ``‖∇f‖`` at the finished point.
        metric: the stationarity metric at (the screen of) ``Φ`` of the finished point.
        definition3: whether the finished point is ``(ε, √ε)``-flat (Definition 3, eq. (6)):
            ``‖∇f‖ ≤ ε`` and ``metric ≤ √ε``.

    Examples:
        >>> from flatref.problems import Example1
        >>> finish = gradient_finish(Example1(), [1.001, 1.0], 1e-3, 0.1)   # Φ ≈ (a, 1/a), a = 1.0005
        >>> # the metric there is 2|a² − a⁻²|/√(a² + a⁻²) ≈ 0.0028
        >>> finish.steps, finish.grad_norm <= 1e-3, finish.metric < 0.003, finish.definition3
        (3, True, True, True)
    """

    steps: int | None
    grad_norm: float
    metric: float
    definition3: bool


def gradient_finish(problem: Problem, x, eps: float, eta: float, *, max_steps: int = 10_000) -> Finish:
    """Gradient descent from ``x`` with step ``eta`` until ``‖∇f‖ ≤ eps``, then Definition 3 at the result.

    Theorem 2 ends this way: the kicks keep ``‖∇f(x_t)‖`` of order ``η′ρ·β`` (above ``ε`` for
    SA), and gradient steps remove it while moving ``Φ`` only at second order (Lemma 6).

    Args:
        problem: the loss.
        x: the iterate at the counted step.
        eps: Definition 3's ``ε``; the metric's threshold is ``√ε``.
        eta: the step, ``1/β`` in the theorems.
        max_steps: the cap on the gradient steps.

    Examples:
        >>> from flatref.problems import Example1
        >>> gradient_finish(Example1(), [1.0, 1.0], 1e-3, 0.1).steps    # already stationary
        0
    """
    check_problem(problem)
    x = as_vector(x, problem.dim, "x").copy()
    eps, eta = as_positive(eps, "eps"), as_positive(eta, "eta")
    max_steps = as_int(max_steps, "max_steps", minimum=0)
    grad = problem.unchecked.grad
    g, steps = grad(x), 0
    while g @ g > eps * eps and steps < max_steps and np.isfinite(g).all():
        x -= eta * g
        g, steps = grad(x), steps + 1
    grad_norm = float(np.linalg.norm(g))
    metric = metric_at_minimum(problem, screen_limit(problem, x)) if np.isfinite(grad_norm) else math.inf
    reached = grad_norm <= eps
    return Finish(steps if reached else None, grad_norm, metric, bool(reached and metric <= math.sqrt(eps)))


def screen_limit(problem: Problem, x) -> np.ndarray:
    """``Φ(x)`` in closed form if the problem knows it, else its projection onto ``X*``, else the flow.

    Raises:
        LimitMapError: where the closed form or the projection fails and the flow does not reach a minimum either.

    Examples:
        >>> from flatref.problems import Example1
        >>> screen_limit(Example1(), [2.0, 0.5]).tolist()        # exact: already on X*
        [2.0, 0.5]
    """
    try:
        return problem.exact_limit(x)
    except NotImplementedError:
        pass
    except ConvergenceError:  # no interpolating limit in closed form: the flow says where it ends
        return limit_map(problem, x, throw=True).x
    try:
        return problem.project_to_minima(x)
    except ConvergenceError:
        return limit_map(problem, x, throw=True).x


def screening_steps(max_steps: int, *, first: int = 64, growth: float = 1.25, records: int = 16) -> list[int]:
    """The steps at which a run is screened: chunks of ``first, ⌈first·growth⌉, …`` steps, each
    screened every ``max(1, chunk // records)`` steps and at its end.

    Args:
        max_steps: the last step.
        first: the first chunk's length.
        growth: each chunk is ``growth`` times the last (``≥ 1``), so a long run costs
            ``O(records · log(max_steps))`` screens.
        records: screens per chunk: a hit is late by at most ``1/records`` of a chunk, that is
            about ``(growth − 1)/records`` of ``t`` (1.6 % with the defaults).

    Examples:
        >>> screening_steps(200, first=64, records=4)[:6]
        [16, 32, 48, 64, 84, 104]
    """
    max_steps, first = as_int(max_steps, "max_steps", minimum=1), as_int(first, "first", minimum=1)
    records = as_int(records, "records", minimum=1)
    if not as_positive(growth, "growth") >= 1:
        raise ValueError(f"growth must be at least 1, got {growth}")
    out, t, chunk = [], 0, first
    while t < max_steps:
        n = min(chunk, max_steps - t)
        every = max(1, n // records)
        out += [t + s for s in range(every, n + 1, every)]
        if out[-1] != t + n:
            out.append(t + n)
        t, chunk = t + n, math.ceil(chunk * growth)
    return out


#: A first-passage run stopped by its callback reached every event; one that took every step was capped.
_PASSAGE_STATUS = {Status.STOPPED: Status.REACHED, Status.COMPLETED: Status.CAPPED}


class _Screen:
    """The callback of a first-passage run: screens ``Φ(x_t)`` on the schedule, records hits,
    and stops the run once every event is reached, or where ``Φ(x_t)`` is not a minimum
    (``failure`` then holds the flow's status)."""

    def __init__(self, problem, eps, flattest, x0, schedule):
        self.problem, self.eps, self.flattest, self.schedule = problem, eps, flattest, set(schedule)
        self.failure = None
        self.to_metric, self.grad_norm_at_metric, self.x_at_metric, self.to_half = {}, {}, {}, None
        self.gap_start, self.metric_start = self.gap, self.metric = self.measure(x0)
        self.record(0, x0)

    def measure(self, x):
        x_star = screen_limit(self.problem, x)
        return float(self.problem.trace_hess(x_star)) - self.flattest, metric_at_minimum(self.problem, x_star)

    def record(self, t, x):
        reached = [e for e in self.eps if e not in self.to_metric and self.metric <= math.sqrt(e)]
        grad_norm = float(np.linalg.norm(self.problem.grad(x))) if reached else None  # once for every ε reached
        for e in reached:
            self.to_metric[e], self.x_at_metric[e], self.grad_norm_at_metric[e] = t, x.copy(), grad_norm
        if self.to_half is None and self.gap <= self.gap_start / 2:
            self.to_half = t

    def done(self) -> bool:
        return self.to_half is not None and len(self.to_metric) == len(self.eps)

    def __call__(self, t, x) -> bool:
        if t in self.schedule:
            try:
                self.gap, self.metric = self.measure(x)
            except LimitMapError as err:
                self.failure = err.result.status
                return True
            self.record(t, x)
        return self.done()


def first_hits(problem: Problem, method: StepRule, x0, eps, *, max_steps: int, rng=0, throw: bool = False,
               **schedule) -> Hits:  # fmt: skip
    """Run ``method`` from ``x0`` until its limit is ``√ε``-stationary for every ``ε`` and the trace gap has halved.

    Args:
        problem: a loss whose flattest minimum is known (:meth:`~flatref.problems.Problem.flat_minima`).
        method: the step rule.
        x0: the start, usually a sharp minimum.
        eps: one ``ε > 0`` or several; the threshold of each is ``√ε``.
        max_steps: stop after this many steps.
        rng: a seed or generator for the run.
        throw: raise :class:`~flatref.errors.StatusError` if the run is capped or diverges, or
            ``Φ(x_t)`` stops being a minimum, instead of returning hits whose status says so
            (the failed flow's status, e.g. ``diverged``; the run stops there).
        **schedule: ``first``, ``growth`` and ``records`` of :func:`screening_steps`.

    Raises:
        ValueError: if the problem does not know its flattest trace.
        LimitMapError: if ``Φ(x0)`` is not a minimum (there is no trace gap to start from).

    Examples:
        >>> from flatref import SA
        >>> from flatref.problems import Example1
        >>> hits = first_hits(Example1(), SA(0.05, 0.05, 0.3), [3.0, 1 / 3], 0.1, max_steps=2000)
        >>> hits.status, 0 < hits.to_metric[0.1] <= hits.steps <= 2000
        ('reached', True)
    """
    check_problem(problem)
    eps = tuple(sorted({as_positive(e, "eps") for e in np.atleast_1d(eps).tolist()}, reverse=True))
    max_steps = as_int(max_steps, "max_steps", minimum=1)
    flattest = flattest_trace(problem)
    if flattest is None:
        raise ValueError(f"{problem!r} does not know its flattest minimum, so the trace gap is undefined")
    x0 = as_vector(x0, problem.dim, "x0")
    screen = _Screen(problem, eps, flattest, x0, screening_steps(max_steps, **schedule))
    steps, status = 0, Status.REACHED
    if not screen.done():
        trajectory = run(problem, method, x0, steps=max_steps, rng=rng, record_every=max_steps, callback=screen)
        steps, status = trajectory.steps, _PASSAGE_STATUS.get(trajectory.status, trajectory.status)
        status = screen.failure or status
    hits = Hits(
        to_metric={e: screen.to_metric.get(e) for e in eps},
        grad_norm_at_metric={e: screen.grad_norm_at_metric.get(e) for e in eps},
        x_at_metric={e: screen.x_at_metric.get(e) for e in eps},
        finish={e: gradient_finish(problem, x, e, method.eta) for e, x in screen.x_at_metric.items()},
        to_half=screen.to_half,
        steps=steps,
        status=status,
        gap_start=screen.gap_start,
        gap_end=screen.gap,
        metric_start=screen.metric_start,
        metric_end=screen.metric,
    )
    if throw and not hits.success:
        raise StatusError(hits)
    return hits
