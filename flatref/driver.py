"""The driver: :func:`run` takes any step rule (:mod:`flatref.algorithms`) for ``T`` steps.

It owns what every method shares: the random draws (in blocks, from one generator),
recording, the callback, divergence detection and the paper's output ``x̂ = x_τ`` with
``τ ~ Unif{1, …, T}``. It prints nothing: progress is a callback (for instance
:class:`flatref.report.progress.RunProgress`), as pymanopt passes a printer in.
"""

from __future__ import annotations

import math
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
        self.record_every = record_every
        self.max_norm, self.max_norm_sq = max_norm, max_norm * max_norm  # inf when max_norm > 1.3e154
        self.hat_index = int(rng.integers(1, steps + 1))
        self.fallback_rng = rng.spawn(1)[0]
        value, self.g = problem.value_and_grad(x)  # checked once: f(x0) or ∇f(x0) beyond float64 raises
        self.x, self.record = x, _Recorder(x, value, self.g @ self.g, steps // record_every + 2)
        self.grad, self.value_and_grad = problem.unchecked.grad, problem.unchecked.value_and_grad
        self.perturbed = np.zeros(steps, dtype=bool)
        self.evals, self.x_hat, self.noises = 1.0, None, ()

    def run(self, callback) -> Trajectory:
        """The steps under ``errstate(all="ignore")`` (overflow is reported as divergence); the callback under
        the caller's own floating-point error state."""
        status, detail, taken = Status.COMPLETED, f"{self.steps} steps", self.steps
        caller = np.geterr()
        with np.errstate(all="ignore"):
            for t in range(self.steps):
                if not self.step(t):
                    detail = f"iterate {t + 1} is not finite or exceeds |x| = {self.max_norm:.3g}"
                    status, taken = Status.DIVERGED, t
                    break
                if callback is not None and _call(callback, t + 1, self.x, caller):
                    status, detail, taken = Status.STOPPED, f"after step {t + 1} of {self.steps}", t + 1
                    break
        return self.result(status, detail, taken)

    def step(self, t) -> bool:
        """Step ``t → t + 1``; False (and no move) if the new iterate, its gradient or its value is not finite.

        One squared norm checks each vector: it is NaN or inf when an entry is (or when the norm leaves
        float64's range, beyond the supported ``‖x‖ < 1.3e154``). A recorded step takes ``f`` with the
        gradient (:meth:`~flatref.problems.Problem.value_and_grad`); the others take the gradient only.
        """
        if t % _BLOCK == 0:
            self.noises = list(zip(*self.method.draw(self.problem, self.rng, min(_BLOCK, self.steps - t))))
        noise = self.noises[t % _BLOCK] if self.noises else ()
        recorded = (t + 1) % self.record_every == 0 or t + 1 == self.steps
        s = self.method.step(self.problem, self.x, self.g, noise, self.fallback_rng)
        xx = s.x @ s.x
        if not (math.isfinite(xx) and xx <= self.max_norm_sq):
            return False
        value, g = self.value_and_grad(s.x) if recorded else (0.0, self.grad(s.x))
        gg = g @ g
        if not (math.isfinite(gg) and math.isfinite(value)):
            return False
        self.x, self.g, self.perturbed[t] = s.x, g, s.perturbed
        self.evals += 1.0 + s.grad_evals
        if t + 1 == self.hat_index:
            self.x_hat = self.x.copy()
        if recorded:
            self.record.add(t + 1, self.x, value, gg)
        return True

    def result(self, status, detail, taken) -> Trajectory:
        if self.record.steps[-1] != taken:  # stopped or diverged between records: the last iterate is finite
            self.record.add(taken, self.x, self.problem.unchecked.f(self.x), self.g @ self.g)  # ∇f(x) is known
        return Trajectory(
            method=self.method, status=status, message=describe(status, detail), steps=taken,
            record_steps=np.array(self.record.steps), xs=self.record.iterates(), f=np.array(self.record.f),
            grad_norm=np.sqrt(self.record.grad_sq), perturbed=self.perturbed[:taken], x_last=self.x,
            x_hat=self.x_hat, hat_index=self.hat_index, grad_evals=self.evals,
        )  # fmt: skip


def _call(callback, t, x, caller_errstate):
    with np.errstate(**caller_errstate):
        return callback(t, x)


#: Records up to this many bytes of iterates are allocated at once; longer runs grow their array by doubling.
_RECORD_BYTES = 2**28


class _Recorder:
    """The recorded steps, iterates, values and ``‖∇f‖²``.

    The iterates are copied into one array as they come, allocated once for all ``count`` records
    (by doubling beyond :data:`_RECORD_BYTES`): each step's own array is then freed and its memory
    reused, fresh memory is touched once per record, and no copy of the run is made at the end.
    """

    def __init__(self, x, value, grad_sq, count):
        self.steps, self.f, self.grad_sq = [], [], []
        self.count = count
        self.xs = np.empty((count if count * x.size * 8 <= _RECORD_BYTES else 64, x.size))
        self.add(0, x, value, grad_sq)

    def add(self, t, x, value, grad_sq) -> None:
        k = len(self.steps)
        if k == len(self.xs):
            grown = np.empty((min(2 * k, self.count), x.size))
            grown[:k] = self.xs
            self.xs = grown
        self.xs[k] = x
        self.steps.append(t)
        self.f.append(float(value))
        self.grad_sq.append(float(grad_sq))

    def iterates(self) -> np.ndarray:
        return self.xs[: len(self.steps)]
