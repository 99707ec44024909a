"""Algorithms 1 and 2 of Ahn, Jadbabaie & Sra (2024) and the baselines, run by one driver.

Each method is a frozen dataclass holding its parameters, with a step rule; :func:`run`
owns everything else: randomness, recording, progress, divergence detection and the
paper's uniformly drawn output ``x̂``. Adding a method means adding one step rule.

Notation: ``g_t = ∇f(x_t)``; ``Proj⊥_u(v) = v − (⟨u, v⟩/‖u‖²) u``, the identity for
``u = 0`` (Definition 4, eq. (7)); ``∇f_B`` is the mean gradient over a batch ``B`` of
samples (Setting 1).

- :class:`RS`, Algorithm 1 (eqs. (8)–(9)): if ``‖g_t‖ ≤ ε0``, draw ``u ~ Unif(S^{d−1})``
  and step ``x − η g_t − η′ Proj⊥_{g_t} ∇f(x_t + ρ u)``; else ``x − η g_t``.
- :class:`SA`, Algorithm 2 (eqs. (25)–(26)): the same with the perturbation
  ``Proj⊥_{g_t} ∇f_B(x_t + ρ σ u_B)``, ``σ ~ Unif{±1}``, one batch ``B`` inside and out.
- :class:`GD`: ``x − η g_t``.
- :class:`SAM` (Foret et al., 2021): ``x − η ∇f_B(x + ρ ∇f_B(x)/‖∇f_B(x)‖)``.
- :class:`LabelNoiseSGD` (Damian et al., 2021): ``x − η ∇f_B(x; y_B + σ ξ)``, ``ξ ~ N(0, I)`` fresh each step.
"""

from __future__ import annotations

import abc
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from ._validation import as_int, as_nonnegative, as_positive, as_vector, make_rng
from .problems import Problem, TrainingLoss

#: Random draws are made for this many steps at a time.
_BLOCK = 256


def proj_out(u, v):
    """``Proj⊥_u(v) = v − (⟨u, v⟩/‖u‖²) u`` (Definition 4, eq. (7)); ``v`` itself when ``u = 0``."""
    uu = u @ u
    return v if uu == 0 else v - ((u @ v) / uu) * u


@dataclass(frozen=True)
class Step:
    """What a step rule returns: the new point, whether it was perturbed, and its extra gradient cost.

    ``grad_evals`` counts full-gradient equivalents beyond ``∇f(x_t)`` (a batch of ``b``
    per-sample gradients counts ``b/n``).
    """

    x: np.ndarray
    perturbed: bool
    grad_evals: float


class StepRule(abc.ABC):
    """A method: its parameters, its random draws and its step."""

    def check(self, problem: Problem) -> None:
        """Raise a ``TypeError``/``ValueError`` if the method cannot run on ``problem``."""

    def draw(self, problem: Problem, rng: np.random.Generator, count: int) -> tuple:
        """The randomness of ``count`` consecutive steps: arrays with a leading axis of length ``count``."""
        return ()

    @abc.abstractmethod
    def step(self, problem: Problem, x, g, noise: tuple, rng: np.random.Generator) -> Step:
        """One step from ``x`` with ``g = ∇f(x)``; ``noise`` is this step's slice of :meth:`draw`.

        ``rng`` is for rare extra draws only (SA's Remark-2 fallback).
        """


def _positive(obj, *names):
    for name in names:
        object.__setattr__(obj, name, as_positive(getattr(obj, name), name))


def _batch(obj, problem: Problem, name="batch_size"):
    if not isinstance(problem, TrainingLoss):
        raise TypeError(f"{type(obj).__name__} needs a TrainingLoss (Setting 1), got {type(problem).__name__}")
    b = getattr(obj, name)
    if b is not None and b > problem.n_samples:
        raise ValueError(f"{name} must be between 1 and n_samples = {problem.n_samples}, got {b}")


def _draw_batches(problem: TrainingLoss, rng, count, b):
    """``count`` batches of ``b`` distinct sample indices, uniform (the ``b`` smallest of random keys)."""
    if b == 1:
        return rng.integers(0, problem.n_samples, size=(count, 1))
    return np.argpartition(rng.random((count, problem.n_samples)), b - 1, axis=1)[:, :b]


@dataclass(frozen=True)
class GD(StepRule):
    """Gradient descent, ``x_{t+1} = x_t − η ∇f(x_t)``; stable for ``η λ_max(∇²f) < 2``."""

    eta: float

    def __post_init__(self):
        _positive(self, "eta")

    def step(self, problem, x, g, noise, rng):
        return Step(x - self.eta * g, False, 0.0)


@dataclass(frozen=True)
class RS(StepRule):
    """Algorithm 1, randomly smoothed perturbation (eqs. (8)–(9)).

    ``x_{t+1} = x_t − η g_t − η′ Proj⊥_{g_t} ∇f(x_t + ρ u_t)``, ``u_t ~ Unif(S^{d−1})``, when
    ``‖g_t‖ ≤ ε0``; a plain gradient step otherwise. In expectation the perturbation is
    ``(ρ²/2) Proj⊥_{g_t} ∇tr̄(x_t) + O(ρ⁴)`` (eq. (10)), which lowers ``tr̄`` along the
    minima set (Lemma 2). Theorem 1 takes ``η = 1/β``, ``η′ ∝ δε``, ``ρ ∝ δ√ε``.

    Args:
        eta: the gradient step ``η > 0``.
        eta_prime: the perturbation step ``η′ > 0``.
        rho: the smoothing radius ``ρ ≥ 0``.
        eps0: the gate ``ε0 > 0``; ``math.inf`` perturbs every step.
    """

    eta: float
    eta_prime: float
    rho: float
    eps0: float = math.inf

    def __post_init__(self):
        _positive(self, "eta", "eta_prime")
        object.__setattr__(self, "rho", as_nonnegative(self.rho, "rho"))
        object.__setattr__(self, "eps0", _gate(self.eps0))

    def draw(self, problem, rng, count):
        u = rng.standard_normal((count, problem.dim))
        return (u / np.linalg.norm(u, axis=1, keepdims=True),)

    def step(self, problem, x, g, noise, rng):
        if g @ g > self.eps0**2:
            return Step(x - self.eta * g, False, 0.0)
        (u,) = noise
        v = proj_out(g, problem._grad(x + self.rho * u))
        return Step(x - self.eta * g - self.eta_prime * v, True, 1.0)


@dataclass(frozen=True)
class SA(StepRule):
    """Algorithm 2, sharpness-aware perturbation (eqs. (25)–(26)).

    ``x_{t+1} = x_t − η g_t − η′ Proj⊥_{g_t} ∇f_B(x_t + ρ σ_t u_B)`` when ``‖g_t‖ ≤ ε0``, with a
    uniform batch ``B`` of ``b`` distinct samples (the paper's ``i`` for ``b = 1``) used both
    inside and outside, and ``σ_t ~ Unif{±1}``. The direction ``u_B``:

    - ``b = 1``: ``∇p_i(x)/‖∇p_i(x)‖``. Since ``∇f_i = ℓ′ ∇p_i``, ``σ∇f_i/‖∇f_i‖`` has the same
      distribution as ``σ∇p_i/‖∇p_i‖``, so this is an exact reformulation of eq. (26),
      and it stays defined at interpolation, where ``∇f_i = 0`` (MATH.md §6).
    - ``b > 1``: ``∇f_B(x)/‖∇f_B(x)‖``, as in the paper's experiments.
    - If that vector is zero (Remark 2): it is taken at ``x + ξ`` instead, with
      ``ξ = xi · (1 + ‖x‖) · e`` and ``e`` a random unit vector.

    At a minimum the tangent part of the expected perturbation is ``d`` times that of
    :class:`RS` (Lemma 4; MATH.md §4).

    Args:
        eta, eta_prime, rho, eps0: as for :class:`RS`.
        batch_size: ``b``, between 1 and ``n_samples``.
        xi: the relative size of Remark 2's displacement.
    """

    eta: float
    eta_prime: float
    rho: float
    eps0: float = math.inf
    batch_size: int = 1
    xi: float = 1e-8

    def __post_init__(self):
        _positive(self, "eta", "eta_prime", "xi")
        object.__setattr__(self, "rho", as_nonnegative(self.rho, "rho"))
        object.__setattr__(self, "eps0", _gate(self.eps0))
        object.__setattr__(self, "batch_size", as_int(self.batch_size, "batch_size", minimum=1))

    def check(self, problem):
        _batch(self, problem)

    def draw(self, problem, rng, count):
        return _draw_batches(problem, rng, count, self.batch_size), rng.choice([-1.0, 1.0], size=count)

    def direction(self, problem: TrainingLoss, x, batch, rng) -> np.ndarray:
        """The unit direction ``u_B`` (see the class docstring), with Remark 2's fallback."""
        for shift in (0.0, 1.0):
            z = x if shift == 0.0 else x + self.xi * (1 + np.linalg.norm(x)) * _unit(rng, problem.dim)
            if self.batch_size == 1:
                u = problem._output_jacobian(z, batch)[0]
            else:
                u = problem._sample_grad(z, batch)
            norm = np.linalg.norm(u)
            if norm > 0:
                return u / norm
        raise ValueError("SA's direction vanishes at x and at x + ξ (Remark 2): increase xi")

    def step(self, problem, x, g, noise, rng):
        if g @ g > self.eps0**2:
            return Step(x - self.eta * g, False, 0.0)
        batch, sigma = noise
        u = self.direction(problem, x, batch, rng)
        v = proj_out(g, problem._sample_grad(x + self.rho * sigma * u, batch))
        return Step(x - self.eta * g - self.eta_prime * v, True, 2 * self.batch_size / problem.n_samples)


@dataclass(frozen=True)
class SAM(StepRule):
    """Sharpness-aware minimization (Foret et al., 2021): ``x − η ∇f_B(x + ρ ∇f_B(x)/‖∇f_B(x)‖)``.

    ``batch_size=None`` is full-batch SAM (``B`` = all samples, ``∇f_B = ∇f``), which
    drives down the largest Hessian eigenvalue; with small batches it drives down the
    trace (Wen et al., 2022). Where ``∇f_B(x) = 0`` there is no ascent direction and
    the step is ``x − η ∇f_B(x)``.
    """

    eta: float
    rho: float
    batch_size: int | None = None

    def __post_init__(self):
        _positive(self, "eta")
        object.__setattr__(self, "rho", as_nonnegative(self.rho, "rho"))
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", as_int(self.batch_size, "batch_size", minimum=1))

    def check(self, problem):
        if self.batch_size is not None:
            _batch(self, problem)

    def draw(self, problem, rng, count):
        return () if self.batch_size is None else (_draw_batches(problem, rng, count, self.batch_size),)

    def step(self, problem, x, g, noise, rng):
        if self.batch_size is None:
            ascent, gradient, cost = g, problem._grad, 1.0
        else:
            (batch,) = noise
            ascent = problem._sample_grad(x, batch)
            gradient, cost = (lambda z: problem._sample_grad(z, batch)), 2 * self.batch_size / problem.n_samples
        norm = np.linalg.norm(ascent)
        if norm == 0:
            return Step(x - self.eta * ascent, False, cost)
        return Step(x - self.eta * gradient(x + self.rho * ascent / norm), True, cost)


@dataclass(frozen=True)
class LabelNoiseSGD(StepRule):
    """SGD with label noise (Damian et al., 2021): ``x − η ∇f_B(x; y_B + σ ξ)``, ``ξ ~ N(0, I_b)`` each step."""

    eta: float
    sigma: float
    batch_size: int = 1

    def __post_init__(self):
        _positive(self, "eta")
        object.__setattr__(self, "sigma", as_nonnegative(self.sigma, "sigma"))
        object.__setattr__(self, "batch_size", as_int(self.batch_size, "batch_size", minimum=1))

    def check(self, problem):
        _batch(self, problem)

    def draw(self, problem, rng, count):
        batches = _draw_batches(problem, rng, count, self.batch_size)
        return batches, rng.standard_normal((count, self.batch_size))

    def step(self, problem, x, g, noise, rng):
        batch, xi = noise
        labels = problem.y[batch] + self.sigma * xi
        return Step(x - self.eta * problem._sample_grad(x, batch, labels), True, self.batch_size / problem.n_samples)


def _gate(eps0) -> float:
    if eps0 == math.inf:
        return math.inf
    return as_positive(eps0, "eps0")


def _unit(rng, d):
    e = rng.standard_normal(d)
    return e / np.linalg.norm(e)


# ----------------------------------------------------------------------- driver
@dataclass(frozen=True)
class Trajectory:
    """The result of :func:`run`.

    Attributes:
        method: the step rule with its parameters.
        status: ``"completed"``, or ``"diverged"`` when an iterate blew up.
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
    status: str
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


_METHODS = (RS, SA, GD, SAM, LabelNoiseSGD)


def run(
    problem: Problem,
    method: StepRule,
    x0,
    *,
    steps: int,
    rng=0,
    record_every: int = 1,
    progress: bool = False,
    blowup: float = 1e6,
) -> Trajectory:
    """Run ``method`` on ``problem`` from ``x0`` for ``steps`` steps.

    Args:
        problem: the loss.
        method: a step rule, e.g. ``RS(eta=0.1, eta_prime=0.05, rho=0.1)``.
        x0: the starting point.
        steps: the number of steps ``T``.
        rng: ``None``, a seed or a ``numpy.random.Generator``; the same seed gives the same bits.
        record_every: record every ``k``-th iterate (the first and last always); each
            record costs one evaluation of ``f``.
        progress: print progress to stderr about every tenth of the run.
        blowup: the run has diverged when ``‖x_t‖ > blowup · (1 + ‖x_0‖)`` or an iterate is not finite.

    Returns:
        A :class:`Trajectory`.
    """
    if not isinstance(method, StepRule):
        names = ", ".join(m.__name__ for m in _METHODS)
        raise TypeError(f"method must be a step rule ({names}), got {method!r}")
    method.check(problem)
    x = as_vector(x0, problem.dim, "x0").copy()
    steps = as_int(steps, "steps", minimum=1)
    record_every = as_int(record_every, "record_every", minimum=1)
    max_norm = as_positive(blowup, "blowup") * (1 + np.linalg.norm(x))
    rng = make_rng(rng)
    hat_index = int(rng.integers(1, steps + 1))
    fallback_rng = rng.spawn(1)[0]

    g = problem.grad(x)
    record = _Recorder(problem, x, g)
    perturbed = np.zeros(steps, dtype=bool)
    evals, x_hat, status, message = 1.0, None, "completed", f"{steps} steps"
    for t in range(steps):
        if t % _BLOCK == 0:
            block = method.draw(problem, rng, min(_BLOCK, steps - t))
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as divergence below
            s = method.step(problem, x, g, tuple(a[t % _BLOCK] for a in block), fallback_rng)
        if not (np.all(np.isfinite(s.x)) and np.linalg.norm(s.x) <= max_norm):
            status, message = "diverged", f"iterate {t + 1} is not finite or exceeds |x| = {max_norm:.3g}"
            break
        x, perturbed[t] = s.x, s.perturbed
        g = problem._grad(x)
        evals += 1.0 + s.grad_evals
        if t + 1 == hat_index:
            x_hat = x.copy()
        if (t + 1) % record_every == 0 or t + 1 == steps:
            record(t + 1, x, g)
        if progress and (t + 1) % max(1, steps // 10) == 0:
            print(f"{type(method).__name__}: step {t + 1}/{steps}, f = {problem._f(x):.3e}", file=sys.stderr)
    taken = t + 1 if status == "completed" else t
    if record.steps[-1] != taken:
        record(taken, x, g)
    return Trajectory(
        method=method,
        status=status,
        message=message,
        steps=taken,
        record_steps=np.array(record.steps),
        xs=np.array(record.xs),
        f=np.array(record.f),
        grad_norm=np.array(record.grad_norm),
        perturbed=perturbed[:taken],
        x_last=x,
        x_hat=x_hat,
        hat_index=hat_index,
        grad_evals=evals,
    )


class _Recorder:
    def __init__(self, problem, x, g):
        self.problem = problem
        self.steps, self.xs, self.f, self.grad_norm = [], [], [], []
        self(0, x, g)

    def __call__(self, t, x, g):
        self.steps.append(t)
        self.xs.append(x.copy())
        self.f.append(float(self.problem._f(x)))
        self.grad_norm.append(float(np.linalg.norm(g)))
