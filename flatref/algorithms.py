"""Algorithms 1 and 2 of Ahn, Jadbabaie & Sra (2024) and the baselines, as step rules.

Each method is a frozen dataclass holding its parameters, with a step rule; the driver
(:func:`flatref.driver.run`) owns everything else: randomness, recording, callbacks,
divergence detection and the paper's uniformly drawn output ``x̂``. Adding a method
means adding one step rule.

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
from dataclasses import dataclass

import numpy as np

from ._validation import as_gate, as_int, as_nonnegative, as_positive
from .geometry import _proj_out
from .problems import Problem, TrainingLoss
from .problems.base import row_space


@dataclass(frozen=True)
class Step:
    """What a step rule returns: the new point, whether it was perturbed, and its extra gradient cost.

    ``grad_evals`` counts full-gradient equivalents beyond ``∇f(x_t)`` (a batch of ``b``
    per-sample gradients counts ``b/n``).

    Examples:
        >>> from flatref.problems import Example1
        >>> p, x = Example1(), np.array([2.0, 1.0])
        >>> s = GD(0.1).step(p, x, p.grad(x), (), None)       # ∇f(2, 1) = (2, 4)
        >>> s.x.round(12).tolist(), s.perturbed, s.grad_evals
        ([1.8, 0.6], False, 0.0)
    """

    x: np.ndarray
    perturbed: bool
    grad_evals: float


class StepRule(abc.ABC):
    """A method: its parameters, its random draws and its step.

    Adding a method means subclassing it with a :meth:`step` (and :meth:`draw` for its randomness).

    Examples:
        >>> from flatref import run
        >>> from flatref.problems import Example1
        >>> class Halved(StepRule):                       # gradient descent with η = 0.05, by hand
        ...     def step(self, problem, x, g, noise, rng):
        ...         return Step(x - 0.05 * g, False, 0.0)
        >>> a = run(Example1(), Halved(), [2.0, 0.6], steps=20).x_last
        >>> bool(np.array_equal(a, run(Example1(), GD(0.05), [2.0, 0.6], steps=20).x_last))
        True
        >>> StepRule()                                     # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: Can't instantiate abstract class StepRule ...
    """

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
    """Gradient descent, ``x_{t+1} = x_t − η ∇f(x_t)``; stable for ``η λ_max(∇²f) < 2``.

    Examples:
        >>> from flatref import run
        >>> from flatref.problems import Example1
        >>> run(Example1(), GD(0.1), [2.0, 1.0], steps=1).x_last.round(12).tolist()   # (2, 1) − 0.1 · (2, 4)
        [1.8, 0.6]
        >>> GD(0.0)
        Traceback (most recent call last):
        ...
        ValueError: eta must be positive and finite, got 0.0
    """

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

    Examples:
        >>> from flatref import run, tr_bar
        >>> from flatref.problems import Example1
        >>> p = Example1()
        >>> # ρ = 0: the perturbation is Proj⊥_{∇f(x)} ∇f(x) = 0, so RS is GD (perturbed at every step all the same)
        >>> rs = run(p, RS(0.05, 0.05, 0.0), [2.0, 0.6], steps=20)
        >>> bool(np.array_equal(rs.x_last, run(p, GD(0.05), [2.0, 0.6], steps=20).x_last)), bool(rs.perturbed.all())
        (True, True)
        >>> # the gate: ‖∇f(2, 0.7)‖ = 1.68 > ε0 = 1, so the first step is a plain gradient step
        >>> bool(run(p, RS(0.05, 0.05, 0.3, eps0=1.0), [2.0, 0.7], steps=1).perturbed[0])
        False
        >>> # from the sharp minimum (3, 1/3), tr̄ = 9 + 1/9, RS reaches the flat minima, where tr̄ = 1 + 1
        >>> round(float(tr_bar(p, run(p, RS(0.05, 0.05, 0.3), [3.0, 1 / 3], steps=2000, rng=0).x_last)), 2)
        2.0
        >>> RS(0.1, 0.1, -0.1)
        Traceback (most recent call last):
        ...
        ValueError: rho must be non-negative and finite, got -0.1
    """

    eta: float
    eta_prime: float
    rho: float
    eps0: float = math.inf

    def __post_init__(self):
        _positive(self, "eta", "eta_prime")
        object.__setattr__(self, "rho", as_nonnegative(self.rho, "rho"))
        object.__setattr__(self, "eps0", as_gate(self.eps0, "eps0"))

    def draw(self, problem, rng, count):
        u = rng.standard_normal((count, problem.dim))
        return (u / np.linalg.norm(u, axis=1, keepdims=True),)

    def step(self, problem, x, g, noise, rng):
        gg = g @ g
        if gg > self.eps0 * self.eps0:  # a product, not **: eps0² overflows to inf, never raises
            return Step(x - self.eta * g, False, 0.0)
        (u,) = noise
        h = problem.unchecked.grad(x + self.rho * u)
        return Step(_perturbed(x, g, gg, h, self.eta, self.eta_prime), True, 1.0)


@dataclass(frozen=True)
class SA(StepRule):
    """Algorithm 2, sharpness-aware perturbation (eqs. (25)–(26)).

    ``x_{t+1} = x_t − η g_t − η′ Proj⊥_{g_t} ∇f_B(x_t + ρ σ_t u_B)`` when ``‖g_t‖ ≤ ε0``, with a
    uniform batch ``B`` of ``b`` distinct samples (the paper's ``i`` for ``b = 1``) used both
    inside and outside, and ``σ_t ~ Unif{±1}``. The direction ``u_B``:

    - ``b = 1``: ``∇p_i(x)/‖∇p_i(x)‖``. Since ``∇f_i = ℓ′ ∇p_i``, ``σ∇f_i/‖∇f_i‖`` has the same
      distribution as ``σ∇p_i/‖∇p_i‖``, so this is an exact reformulation of eq. (26),
      and it stays defined at interpolation, where ``∇f_i = 0`` (docs/theory.md §4).
      With ``K`` outputs per sample ``∇f_i = J_iᵀ ℓ′_i`` ranges over the row space of the
      sample's output Jacobian ``J_i`` (``K × d``) as the residual turns, and ``u`` is uniform
      on that space's unit sphere: ``u = Vᵀξ/‖ξ‖`` with ``V`` an orthonormal basis of the row
      space and ``ξ ~ N(0, I)`` drawn from the step's ``rng``. Then ``E uuᵀ`` is the projector
      onto the row space over its rank, and Lemma 4's factor ``d`` becomes ``d/K``.
    - ``b > 1``: ``∇f_B(x)/‖∇f_B(x)‖``, as in the paper's experiments.
    - If that vector is zero (Remark 2): it is taken at ``x + ξ`` instead, with
      ``ξ = xi · (1 + ‖x‖) · e`` and ``e`` a random unit vector.

    At a minimum the tangent part of the expected perturbation is ``d`` times that of
    :class:`RS` (Lemma 4; docs/theory.md §4).

    Args:
        eta, eta_prime, rho, eps0: as for :class:`RS`.
        batch_size: ``b``, between 1 and ``n_samples``.
        xi: the relative size of Remark 2's displacement.

    Examples:
        >>> from flatref import run, tr_bar
        >>> from flatref.problems import Example1
        >>> p = Example1()
        >>> trajectory = run(p, SA(0.05, 0.05, 0.3), [3.0, 1 / 3], steps=2000, rng=0)
        >>> round(float(tr_bar(p, trajectory.x_last)), 6)   # from tr̄ = 9 + 1/9 to the flat minima's 1 + 1
        2.0
        >>> trajectory.grad_evals                            # 1 + 2000 · (1 + 2b/n), b = n = 1
        6001.0
        >>> SA(0.1, 0.1, 0.1, batch_size=0)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be >= 1, got 0
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
        object.__setattr__(self, "eps0", as_gate(self.eps0, "eps0"))
        object.__setattr__(self, "batch_size", as_int(self.batch_size, "batch_size", minimum=1))

    def check(self, problem):
        _batch(self, problem)

    def draw(self, problem, rng, count):
        return _draw_batches(problem, rng, count, self.batch_size), rng.choice([-1.0, 1.0], size=count)

    def direction(self, problem: TrainingLoss, x, batch, rng) -> np.ndarray:
        """The unit direction ``u_B`` (see the class docstring), with Remark 2's fallback.

        Examples:
            >>> from flatref.problems import Example1
            >>> sa, p = SA(0.1, 0.1, 0.1), Example1()
            >>> sa.direction(p, np.array([2.0, 1.0]), [0], None).round(6).tolist()   # ∇p = (x2, x1) = (1, 2), over √5
            [0.447214, 0.894427]
            >>> u = sa.direction(p, np.zeros(2), [0], np.random.default_rng(0))     # ∇p(0) = 0: Remark 2's fallback
            >>> round(float(np.linalg.norm(u)), 12)
            1.0
        """
        for shift in (0.0, 1.0):
            z = x if shift == 0.0 else x + self.xi * (1 + np.linalg.norm(x)) * _unit(rng, problem.dim)
            if self.batch_size == 1 and problem.n_outputs > 1:
                u = _row_space_direction(problem.unchecked.output_jacobian(z, batch), rng)
            elif self.batch_size == 1:
                u = problem.unchecked.output_jacobian(z, batch)[0]
            else:
                u = problem.unchecked.sample_grad(z, batch)
            norm = math.sqrt(u @ u)  # np.linalg.norm's value for a vector, without its checks
            if norm > 0:
                return u / norm
        raise ValueError("SA's direction vanishes at x and at x + ξ (Remark 2): increase xi")

    def step(self, problem, x, g, noise, rng):
        gg = g @ g
        if gg > self.eps0 * self.eps0:  # a product, not **: eps0² overflows to inf, never raises
            return Step(x - self.eta * g, False, 0.0)
        batch, sigma = noise
        u = self.direction(problem, x, batch, rng)
        h = problem.unchecked.sample_grad(x + self.rho * sigma * u, batch)
        return Step(_perturbed(x, g, gg, h, self.eta, self.eta_prime), True, 2 * self.batch_size / problem.n_samples)


@dataclass(frozen=True)
class SAM(StepRule):
    """Sharpness-aware minimization (Foret et al., 2021): ``x − η ∇f_B(x + ρ ∇f_B(x)/‖∇f_B(x)‖)``.

    ``batch_size=None`` is full-batch SAM (``B`` = all samples, ``∇f_B = ∇f``), which
    drives down the largest Hessian eigenvalue; with small batches it drives down the
    trace (Wen et al., 2022). Where ``∇f_B(x) = 0`` there is no ascent direction and
    the step is ``x − η ∇f_B(x)``.

    Examples:
        >>> from flatref import run
        >>> from flatref.problems import Example1
        >>> p = Example1()
        >>> s = SAM(0.1, 0.5).step(p, np.array([1.0, 1.0]), p.grad([1.0, 1.0]), (), None)   # ∇f(1, 1) = 0
        >>> s.x.tolist(), s.perturbed
        ([1.0, 1.0], False)
        >>> x = np.array([2.0, 1.0])                          # one step: x − η ∇f(x + ρ ∇f(x)/‖∇f(x)‖)
        >>> expected = x - 0.1 * p.grad(x + 0.5 * p.grad(x) / np.linalg.norm(p.grad(x)))
        >>> bool(np.array_equal(run(p, SAM(0.1, 0.5), x, steps=1).x_last, expected))
        True
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
            ascent, gradient, cost = g, problem.unchecked.grad, 1.0
        else:
            (batch,) = noise
            sample_grad = problem.unchecked.sample_grad
            ascent = sample_grad(x, batch)
            gradient, cost = (lambda z: sample_grad(z, batch)), 2 * self.batch_size / problem.n_samples
        norm = np.linalg.norm(ascent)
        if norm == 0:
            return Step(x - self.eta * ascent, False, cost)
        return Step(x - self.eta * gradient(x + self.rho * ascent / norm), True, cost)


@dataclass(frozen=True)
class LabelNoiseSGD(StepRule):
    """SGD with label noise (Damian et al., 2021): ``x − η ∇f_B(x; y_B + σ ξ)``, ``ξ ~ N(0, I_b)`` each step
    (``N(0, I_{bK})``, one per output, with ``K`` outputs per sample).

    Examples:
        >>> from flatref import run
        >>> from flatref.problems import Example1
        >>> p = Example1()                                    # one sample: with σ = 0 it is gradient descent
        >>> a = run(p, LabelNoiseSGD(0.05, 0.0), [2.0, 0.6], steps=20).x_last
        >>> bool(np.array_equal(a, run(p, GD(0.05), [2.0, 0.6], steps=20).x_last))
        True
        >>> LabelNoiseSGD(0.1, -1.0)
        Traceback (most recent call last):
        ...
        ValueError: sigma must be non-negative and finite, got -1.0
    """

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
        return batches, rng.standard_normal((count, self.batch_size * problem.n_outputs))

    def step(self, problem, x, g, noise, rng):
        batch, xi = noise
        labels = problem.unchecked.labels(batch) + self.sigma * xi  # one noise per output row
        step = problem.unchecked.sample_grad(x, batch, labels)
        return Step(x - self.eta * step, True, self.batch_size / problem.n_samples)


def _perturbed(x, g, gg, h, eta, eta_prime):
    """The perturbed step ``x − η g − η′ Proj⊥_g h`` (eqs. (8)–(9), (25)–(26)) for ``gg = ‖g‖²``, computed in this
    order: at a minimum ``g`` is rounding and ``Proj⊥_g`` removes ``h``'s part along a rounding direction, so any
    other order of the same arithmetic changes the iterates from the first such step (on Example 1, SA moved
    ``0.057`` at step 845 where this order moves ``10⁻⁸``)."""
    return x - eta * g - eta_prime * _proj_out(g, h, gg)


def _row_space_direction(J, rng, *, rtol: float = 1e-10) -> np.ndarray:
    """A uniform random vector of the unit sphere of ``J``'s row space (zero if ``J = 0``)."""
    basis = row_space(J, rtol=rtol)
    return rng.standard_normal(len(basis)) @ basis


def _unit(rng, d):
    e = rng.standard_normal(d)
    return e / np.linalg.norm(e)


#: Every step rule, for messages and registries.
METHODS = (RS, SA, GD, SAM, LabelNoiseSGD)
