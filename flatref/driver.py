"""The driver: :func:`run` takes any step rule (:mod:`flatref.algorithms`) for ``T`` steps.

It owns what every method shares: the random draws (in blocks, from one generator),
recording, the callback, divergence detection and the paper's output ``x̂ = x_τ`` with
``τ ~ Unif{1, …, T}``. It prints nothing: progress is a callback (for instance
:class:`flatref.report.progress.RunProgress`), as pymanopt passes a printer in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._validation import as_int, as_positive, as_vector, bounded_norm, check_problem, make_rng
from .algorithms import METHODS, StepRule
from .errors import StatusError
from .problems import Problem
from .status import Status, describe

#: The most steps a run takes: far beyond any run that finishes (a step costs microseconds at
#: least), and small enough that every per-step array and random index fits numpy's int64.
MAX_STEPS = 10**9

#: Random draws are made for this many steps at a time: one call per block keeps the per-step
#: overhead small. It fixes how the stream is consumed, so changing it changes every run's bits.
_BLOCK = 256


@dataclass(frozen=True)
class Trajectory:
    """The result of :func:`run`.

    Attributes:
        method: the step rule with its parameters.
        status: ``completed``, ``stopped`` (the callback asked) or ``diverged`` (an iterate blew up).
        message: what happened.
        steps: the number of steps taken.
        record_steps: the step indices ``t`` at which iterates were recorded (0 and the last included).
        xs: the recorded iterates, shape ``(len(record_steps), d)``.
        f: ``f(x_t)`` at the recorded steps.
        grad_norm: ``‖∇f(x_t)‖`` at the recorded steps.
        perturbed: for each step, whether it was a perturbed step.
        x_last: the last iterate.
        x_hat: ``x_τ`` with ``τ ~ Unif{1, …, T}`` (the paper's output), or ``None`` if the run stopped before ``τ``.
        hat_index: ``τ``.
        grad_evals: gradient evaluations in full-gradient equivalents.
    """

    method: StepRule
    status: Status
    message: str = field(repr=False)
    steps: int
    record_steps: np.ndarray = field(repr=False)
    xs: np.ndarray = field(repr=False)
    f: np.ndarray = field(repr=False)
    grad_norm: np.ndarray = field(repr=False)
    perturbed: np.ndarray = field(repr=False)
    x_last: np.ndarray = field(repr=False)
    x_hat: np.ndarray | None = field(repr=False)
    hat_index: int
    grad_evals: float

    @property
    def success(self) -> bool:
        """True unless the run diverged (a run stopped by its callback ended as asked)."""
        return self.status.success


def run(
    problem: Problem,
    method: StepRule,
    x0,
    *,
    steps: int,
    rng=0,
    record_every: int = 1,
    callback: Callable[[int, np.ndarray], bool | None] | None = None,
    blowup: float = 1e6,
    throw: bool = False,
) -> Trajectory:
    """Run ``method`` on ``problem`` from ``x0`` for ``steps`` steps.

    Args:
        problem: the loss.
        method: a step rule, e.g. ``RS(eta=0.1, eta_prime=0.05, rho=0.1)``.
        x0: the starting point.
        steps: the number of steps ``T``, at most :data:`MAX_STEPS`.
        rng: ``None``, a seed or a ``numpy.random.Generator``; the same seed gives the same bits.
        record_every: record every ``k``-th iterate (the first and last always); each
            record costs one evaluation of ``f``.
        callback: ``callback(t, x_t)`` after each step ``t = 1, 2, …`` with the new iterate
            (do not modify it); a true return value stops the run (status ``stopped``).
        blowup: the run has diverged when ``‖x_t‖ > blowup · (1 + ‖x_0‖)`` or an iterate is not finite.
        throw: raise :class:`~flatref.errors.StatusError` if the run diverges, instead of
            returning a trajectory whose status says so.

    Returns:
        A :class:`Trajectory`.

    Examples:
        >>> from flatref.algorithms import GD
        >>> from flatref.problems import Example1
        >>> trajectory = run(Example1(), GD(0.05), [2.0, 0.6], steps=200)
        >>> trajectory.status, round(float(trajectory.f[-1]), 12)
        ('completed', 0.0)
        >>> stopped = run(Example1(), GD(0.05), [2.0, 0.6], steps=200, callback=lambda t, x: t == 5)
        >>> stopped.status, stopped.steps
        ('stopped', 5)
    """
    _check_method(method, problem)
    x = as_vector(x0, problem.dim, "x0").copy()
    steps = as_int(steps, "steps", minimum=1, maximum=MAX_STEPS)
    record_every = as_int(record_every, "record_every", minimum=1)
    max_norm = as_positive(blowup, "blowup") * (1.0 + bounded_norm(x, "x0"))
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    loop = _Loop(problem, method, x, steps, record_every, max_norm, make_rng(rng))
    trajectory = loop.run(callback)
    if throw and not trajectory.success:
        raise StatusError(trajectory)
    return trajectory


def _check_method(method, problem) -> None:
    if not isinstance(method, StepRule):
        names = ", ".join(m.__name__ for m in METHODS)
        raise TypeError(f"method must be a step rule ({names}), got {method!r}")
    method.check(check_problem(problem))


class _Loop:
    """The state of one run: the iterate, its gradient, the records and the draws."""

    def __init__(self, problem, method, x, steps, record_every, max_norm, rng):
        self.problem, self.method, self.steps, self.rng = problem, method, steps, rng
        self.record_every, self.max_norm = record_every, max_norm
        self.hat_index = int(rng.integers(1, steps + 1))
        self.fallback_rng = rng.spawn(1)[0]
        self.x, self.g = x, problem.grad(x)
        self.record = _Recorder(problem.f, x, self.g)  # checked once: f(x0) beyond float64 raises
        self.record.f_of = problem.unchecked.f
        self.perturbed = np.zeros(steps, dtype=bool)
        self.evals, self.x_hat = 1.0, None

    def run(self, callback) -> Trajectory:
        status, detail, taken = Status.COMPLETED, f"{self.steps} steps", self.steps
        for t in range(self.steps):
            if not self.step(t):
                detail = f"iterate {t + 1} is not finite or exceeds |x| = {self.max_norm:.3g}"
                status, taken = Status.DIVERGED, t
                break
            if callback is not None and callback(t + 1, self.x):
                status, detail, taken = Status.STOPPED, f"after step {t + 1} of {self.steps}", t + 1
                break
        return self.result(status, detail, taken)

    def step(self, t) -> bool:
        """Step ``t → t + 1``; False (and no move) if the new iterate, its gradient or its record is not finite."""
        if t % _BLOCK == 0:
            self.block = self.method.draw(self.problem, self.rng, min(_BLOCK, self.steps - t))
        noise = tuple(a[t % _BLOCK] for a in self.block)
        recorded = (t + 1) % self.record_every == 0 or t + 1 == self.steps
        with np.errstate(all="ignore"):  # overflow is reported as divergence
            s = self.method.step(self.problem, self.x, self.g, noise, self.fallback_rng)
            if not (np.all(np.isfinite(s.x)) and np.linalg.norm(s.x) <= self.max_norm):
                return False
            g = self.problem.unchecked.grad(s.x)
            if not (np.all(np.isfinite(g)) and (not recorded or self.record.accepts(s.x, g))):
                return False
        self.x, self.g, self.perturbed[t] = s.x, g, s.perturbed
        self.evals += 1.0 + s.grad_evals
        if t + 1 == self.hat_index:
            self.x_hat = self.x.copy()
        if recorded:
            self.record.commit(t + 1)
        return True

    def result(self, status, detail, taken) -> Trajectory:
        if self.record.steps[-1] != taken:
            self.record.accepts(self.x, self.g)
            self.record.commit(taken)
        return Trajectory(
            method=self.method, status=status, message=describe(status, detail), steps=taken,
            record_steps=np.array(self.record.steps), xs=np.array(self.record.xs), f=np.array(self.record.f),
            grad_norm=np.array(self.record.grad_norm), perturbed=self.perturbed[:taken], x_last=self.x,
            x_hat=self.x_hat, hat_index=self.hat_index, grad_evals=self.evals,
        )  # fmt: skip


class _Recorder:
    """The recorded steps, iterates, values and gradient norms; a record is checked, then committed."""

    def __init__(self, f, x, g):
        self.f_of = f
        self.steps, self.xs, self.f, self.grad_norm = [], [], [], []
        self.accepts(x, g)
        self.commit(0)

    def accepts(self, x, g) -> bool:
        """Evaluate the record at ``x``; False if ``f(x)`` or ``‖g‖`` is not finite."""
        self.pending = (x.copy(), float(self.f_of(x)), float(np.linalg.norm(g)))
        return np.isfinite(self.pending[1]) and np.isfinite(self.pending[2])

    def commit(self, t) -> None:
        x, f, grad_norm = self.pending
        self.steps.append(t)
        self.xs.append(x)
        self.f.append(f)
        self.grad_norm.append(grad_norm)
