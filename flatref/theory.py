"""The paper's predictions as functions: leading-order terms, Lemma 1 and 2, schedules, Table 1.

Ahn, Jadbabaie & Sra (2024); equation numbers are the paper's (docs/theory.md restates the lost displays).
Constants that the theorems leave free are arguments.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ._validation import as_gate, as_int, as_nonnegative, as_positive, as_vector, check_problem
from .errors import NonFiniteError
from .flatness import grad_tr_bar
from .flow import limit_jacobian
from .geometry import proj_out, project_tangent
from .problems import Problem, TrainingLoss


#: The largest dimension the formulas take: ``d³`` is formed in float64, exact up to ``2⁵³``.
MAX_DIM = 2**53


def _in_range(function):
    """Run a prediction with float64 overflow silenced, and raise NonFiniteError if its value is not finite.

    The arguments are checked finite at the door; a prediction that still overflows (``ρ = 1e300``)
    has arguments beyond what float64 can represent for it.
    """

    @functools.wraps(function)
    def checked(*args, **kwargs):
        with np.errstate(all="ignore"):
            value = function(*args, **kwargs)
            finite = np.all(np.isfinite(value))
        if not finite:
            raise NonFiniteError(f"{function.__name__} overflows float64: its arguments are beyond its range")
        return value

    return checked


@_in_range
def rs_leading_perturbation(problem: Problem, x, rho: float) -> np.ndarray:
    """``E v_RS = (ρ²/2) Proj⊥_{∇f(x)} ∇tr̄(x) + O(ρ⁴)`` for Algorithm 1's perturbation (eqs. (10), (16)).

    ``E_u ∇³f(x)[u, u] = ∇tr̄(x)`` for ``u ~ Unif(S^{d−1})`` because ``E uuᵀ = I/d``; the odd
    moments vanish, so the remainder is ``O(ρ⁴)``.

    Examples:
        >>> from flatref.geometry import project_tangent
        >>> from flatref.problems import Example1
        >>> v = rs_leading_perturbation(Example1(), [1.0, 1.0], 0.1)   # ∇f = 0, ∇tr̄ = 2x: v = ρ² (1, 1)
        >>> v.round(12).tolist(), project_tangent(Example1(), [1.0, 1.0], v).round(12).tolist()  # normal to X*
        ([0.01, 0.01], [0.0, 0.0])
        >>> rs_leading_perturbation(Example1(), [3.0, 1 / 3], 0.1).round(6).tolist()   # (ρ²/2) · 2 · (3, 1/3)
        [0.03, 0.003333]
    """
    check_problem(problem)
    x = as_vector(x, problem.dim)
    rho = as_nonnegative(rho, "rho")
    return 0.5 * rho * rho * proj_out(problem.grad(x), grad_tr_bar(problem, x))


@_in_range
def sa_leading_perturbation(problem: Problem, x_star, rho: float) -> np.ndarray:
    """The tangent part of ``E v_SA`` at a minimum: ``(ρ²/2K) ∂Φ(x*) ∇tr∇²f(x*) + O(ρ⁴)`` (Lemma 4; docs/theory.md §4).

    It is ``d/K`` times the tangent part of :func:`rs_leading_perturbation` (batch size 1,
    the same sample inside and outside; ``K`` outputs per sample, 1 unless the problem is a
    training loss with vector outputs, each sample's output Jacobian of full rank ``K``).

    Examples:
        >>> import numpy as np
        >>> from flatref.geometry import project_tangent
        >>> from flatref.problems import DiagonalLinearNetwork, Example1
        >>> problem = DiagonalLinearNetwork.random(4, 8, sparsity=2, rng=0)
        >>> x_star = problem.random_minimum(0)
        >>> rs = project_tangent(problem, x_star, rs_leading_perturbation(problem, x_star, 0.1))
        >>> problem.dim, bool(np.allclose(sa_leading_perturbation(problem, x_star, 0.1), problem.dim * rs))
        (16, True)
        >>> v = sa_leading_perturbation(Example1(), [3.0, 1 / 3], 0.1)   # ‖v‖ = (ρ²/2) · d · metric, metric = 5.889681
        >>> round(float(np.linalg.norm(v)), 6)
        0.058897
    """
    check_problem(problem)
    rho = as_nonnegative(rho, "rho")
    k = _outputs_per_sample(problem)
    return (0.5 * rho * rho / k) * project_tangent(problem, x_star, problem.grad_trace_hess(x_star))


def _outputs_per_sample(problem: Problem) -> int:
    return problem.n_outputs if isinstance(problem, TrainingLoss) else 1


@_in_range
def lemma1_bound(problem: Problem, x, eta: float, eta_prime: float, v, beta: float) -> float:
    """Lemma 1 (eq. (11)): for ``η ≤ 1/β`` and ``v ⊥ ∇f(x)``,
    ``f(x − η∇f(x) − η′v) ≤ f(x) − (η/2)‖∇f(x)‖² + (β/2) η′² ‖v‖²``; returns the right-hand side.

    Examples:
        >>> import numpy as np
        >>> from flatref.problems import Example1
        >>> p, x = Example1(), np.array([2.0, 1.0])       # f = 1, ∇f = (2, 4), λ_max(∇²f) = 5 + √45 < 12
        >>> v = np.array([4.0, -2.0])                     # v ⊥ ∇f
        >>> bound = lemma1_bound(p, x, 0.05, 0.1, v, beta=12.0)   # 1 − 0.025·20 + 6·0.01·20
        >>> round(bound, 12), bool(p.f(x - 0.05 * p.grad(x) - 0.1 * v) <= bound)
        (1.7, True)
        >>> round(lemma1_bound(p, x, 0.05, 0.0, v, beta=12.0), 12), round(float(p.f(x - 0.05 * p.grad(x))), 12)
        (0.5, 0.2704)
    """
    check_problem(problem)
    x = as_vector(x, problem.dim)
    v = as_vector(v, problem.dim, "v")
    eta, eta_prime, beta = as_positive(eta, "eta"), as_nonnegative(eta_prime, "eta_prime"), as_positive(beta, "beta")
    g = problem.grad(x)
    return float(problem.f(x) - 0.5 * eta * (g @ g) + 0.5 * beta * eta_prime * eta_prime * (v @ v))


@_in_range
def lemma2_trace_change(problem: Problem, x, eta_prime: float, rho: float, **limit_options) -> float:
    """Lemma 2 to leading order (eq. (21)): ``E[tr̄(Φ(x_{t+1}))] − tr̄(Φ(x_t)) ≈ −(η′ρ²/2) ‖∂Φ(x_t) ∇tr̄(x_t)‖²``.

    The gradient part of the step does not move ``Φ`` to first order (Lemma 6), and the
    perturbation moves it by ``−η′ ∂Φ(x_t) E v``. ``∂Φ(x_t)∇tr̄(x_t)`` is computed
    matrix-free from the variational equation.

    Examples:
        >>> from flatref.problems import Example1
        >>> # at the sharp minimum (3, 1/3): −(η′ρ²/2) · metric², metric² = (160/9)² / (82/9) = 34.688347
        >>> round(lemma2_trace_change(Example1(), [3.0, 1 / 3], 0.1, 0.1), 6)
        -0.017344
        >>> abs(round(lemma2_trace_change(Example1(), [1.0, 1.0], 0.1, 0.1), 12))   # the flat minimum: no change
        0.0
    """
    check_problem(problem)
    eta_prime, rho = as_nonnegative(eta_prime, "eta_prime"), as_nonnegative(rho, "rho")
    direction = limit_jacobian(problem, x, grad_tr_bar(problem, x), **limit_options)
    return float(-0.5 * eta_prime * rho * rho * (direction @ direction))



@dataclass(frozen=True)
class Schedule:
    """Parameters for Algorithm 1 or 2 from its theorem's scalings, with the free constants applied.

    Examples:
        >>> Schedule(eta=0.5, eta_prime=0.01, rho=0.1, eps0=math.inf, steps=100).steps
        100
        >>> rs_schedule(1.0, 0.5, 1.0, c_steps=1e-9).steps    # at least one step
        1
    """

    eta: float
    eta_prime: float
    rho: float
    eps0: float
    steps: int


def rs_schedule(
    beta: float,
    eps: float,
    delta: float,
    *,
    eps0: float = math.inf,
    c_eta_prime: float = 1.0,
    c_rho: float = 1.0,
    c_steps: float = 1.0,
) -> Schedule:
    """Theorem 1's parameters: ``η = 1/β``, ``η′ = c·δε``, ``ρ = c·δ√ε``, ``T = c·ε⁻³δ⁻⁴``.

    The theorem asks for a polynomially small gate ``ε0`` whose exponent the paper's surviving text does
    not give, so ``eps0`` is an argument (``math.inf``: perturb at every step).

    Examples:
        >>> s = rs_schedule(4.0, 0.01, 0.5)     # η = 1/4, η′ = δε, ρ = δ√ε, T = ε⁻³δ⁻⁴ = 10⁶ · 16
        >>> s.eta, round(s.eta_prime, 12), round(s.rho, 12), s.steps, s.eps0
        (0.25, 0.005, 0.05, 16000000, inf)
    """
    eps = as_positive(eps, "eps")
    return _schedule("RS", beta, eps, delta, 1, math.sqrt(eps), eps0, c_eta_prime, c_rho, c_steps)


def sa_schedule(
    beta: float,
    eps: float,
    delta: float,
    dim: int,
    *,
    eps0: float = math.inf,
    c_eta_prime: float = 1.0,
    c_rho: float = 1.0,
    c_steps: float = 1.0,
) -> Schedule:
    """Parameters for Algorithm 2 consistent with Theorem 2: ``η = 1/β``, ``η′ = c·δε``,
    ``ρ = c·δ·min(1, √(d³ε))``, ``T = c·d⁻¹ε⁻²(1 ∨ 1/(d³ε))δ⁻⁴``.

    **Reconstructed, not quoted.** The paper states these parameters in its eq. (48),
    which was lost from the text (docs/theory.md §7). This choice is the one
    its accounting implies: SA's output must satisfy ``‖∇f‖ ≤ ε`` while each kick moves
    the gradient by ``O(η′ρ)``, so ``η′ ∝ ε``; Lemma 4's per-step decrease of ``tr̄(Φ)``
    is ``d·(η′ρ²/2)·ε`` while the metric exceeds ``√ε``, and Theorem 1's probabilistic
    argument costs one more ``δ⁻¹``, so ``T ∝ δ⁻¹/(d η′ρ² ε)``, which is Table 1's bound
    exactly when ``ρ² ∝ δ² min(1, d³ε)``.

    Examples:
        >>> s = sa_schedule(4.0, 0.01, 0.5, 10)   # d³ε = 10 ≥ 1: ρ = δ, T = d⁻¹ε⁻²δ⁻⁴ = 0.1 · 10⁴ · 16
        >>> s.eta, round(s.eta_prime, 12), round(s.rho, 12), s.steps
        (0.25, 0.005, 0.5, 16000)
        >>> s = sa_schedule(4.0, 0.01, 0.5, 2)    # d³ε = 0.08: ρ = δ√0.08, T = 10⁴ · 12.5 · 16 / 2
        >>> round(s.rho, 12) == round(0.5 * math.sqrt(0.08), 12), s.steps
        (True, 1000000)
    """
    eps, d = as_positive(eps, "eps"), as_int(dim, "dim", minimum=1, maximum=MAX_DIM)
    return _schedule("SA", beta, eps, delta, d, min(1.0, math.sqrt(float(d) ** 3 * eps)), eps0, c_eta_prime, c_rho,
                     c_steps)  # fmt: skip


def _schedule(method, beta, eps, delta, dim, rho_unit, eps0, c_eta_prime, c_rho, c_steps) -> Schedule:
    """``η = 1/β``, ``η′ = c·δε``, ``ρ = c·δ·rho_unit`` and ``T = c·`` Table 1's bound for ``method``."""
    beta, delta = as_positive(beta, "beta"), _as_probability(delta)
    steps = as_positive(c_steps, "c_steps") * table1_iterations(eps, delta, dim)[method]
    if not math.isfinite(steps):
        raise ValueError(f"c_steps = {c_steps:g} times Table 1's bound is beyond float64's range")
    return Schedule(
        eta=1.0 / beta,
        eta_prime=as_positive(c_eta_prime, "c_eta_prime") * delta * eps,
        rho=as_positive(c_rho, "c_rho") * delta * rho_unit,
        eps0=as_gate(eps0, "eps0"),
        steps=max(1, math.ceil(steps)),
    )


def table1_iterations(eps: float, delta: float, dim: int) -> dict[str, float]:
    """Table 1's iteration bounds without constants.

    RS: ``ε⁻³δ⁻⁴`` (Theorem 1); SA: ``d⁻¹ε⁻²(1 ∨ 1/(d³ε))δ⁻⁴`` (Theorem 2).

    Examples:
        >>> {k: round(v, 6) for k, v in table1_iterations(0.01, 1, 10).items()}   # d³ε = 10: SA = ε⁻²/d
        {'RS': 1000000.0, 'SA': 1000.0}
        >>> round(table1_iterations(0.01, 1, 2)["SA"], 6)                         # d³ε = 0.08: ε⁻²/(0.08 d)
        62500.0
        >>> round(table1_iterations(0.01, 0.5, 10)["RS"] / table1_iterations(0.01, 1, 10)["RS"], 12)   # δ⁻⁴
        16.0
    """
    eps, delta = np.float64(as_positive(eps, "eps")), np.float64(_as_probability(delta))
    d = np.float64(as_int(dim, "dim", minimum=1, maximum=MAX_DIM))
    with np.errstate(over="ignore"):
        bounds = {"RS": eps**-3 * delta**-4, "SA": eps**-2 * max(1.0, 1.0 / (d * d * d * eps)) * delta**-4 / d}
    if not all(np.isfinite(b) for b in bounds.values()):
        raise ValueError(f"eps = {eps:g} and delta = {delta:g} give an iteration bound beyond float64's range")
    return {method: float(bound) for method, bound in bounds.items()}


def _as_probability(delta) -> float:
    """The failure probability ``δ ∈ (0, 1]`` of Theorems 1 and 2."""
    delta = as_positive(delta, "delta")
    if delta > 1:
        raise ValueError(f"delta must be a probability in (0, 1], got {delta}")
    return delta


def table1_exponents(method: str, eps: float, dim: int) -> tuple[float, float]:
    """The exponents ``(a, b)`` of Table 1's bound ``∝ εᵃ dᵇ`` near ``(ε, d)``.

    RS: ``(−3, 0)``. SA: ``(−2, −1)`` where ``d³ε > 1`` and ``(−3, −4)`` where ``d³ε < 1``
    (the bound's two branches; at ``d³ε = 1`` the first is returned).

    Examples:
        >>> table1_exponents("RS", 0.01, 10)
        (-3.0, 0.0)
        >>> table1_exponents("SA", 0.01, 10), table1_exponents("SA", 0.01, 2)   # d³ε = 10 and 0.08
        ((-2.0, -1.0), (-3.0, -4.0))
        >>> table1_exponents("SA", 0.125, 2)                                    # d³ε = 1: the first branch
        (-2.0, -1.0)
    """
    eps = as_positive(eps, "eps")
    d = as_int(dim, "dim", minimum=1, maximum=MAX_DIM)
    if method == "RS":
        return (-3.0, 0.0)
    if method == "SA":
        return (-2.0, -1.0) if d**3 * eps >= 1 else (-3.0, -4.0)
    raise ValueError(f"method must be 'RS' or 'SA', got {method!r}")


@_in_range
def flow_time_per_step(method, problem: Problem) -> float:
    """The slow-flow time ``τ`` one step of ``method`` covers near ``X*`` (docs/theory.md §6.7).

    To leading order each method moves ``Φ(x_t)`` by ``−τ ∂Φ ∇tr̄`` per step in expectation, so
    ``t`` steps follow :func:`~flatref.slow_flow.limit_flow` to flow time ``tτ``. With
    ``d = problem.dim``, from ``∂²Φ(x*)[∇²f] = −½ ∂Φ ∇tr∇²f`` on ``X*`` and eq. (16):

    - RS (eq. (21)): ``τ = η′ρ²/2``;
    - SA with batch 1 (Lemma 4, (33)): ``τ = d η′ρ²/2``, and ``d η′ρ²/(2K)`` with ``K`` outputs per sample;
    - label-noise SGD, noise ``σ``, batch ``b``, loss ``ℓ = w(z − y)²/2``: the noise has covariance
      ``(w η²σ²/b) ∇²f`` per step, so ``τ = d w η²σ²/(4b)`` (Li, Wang & Arora 2022);
    - SAM with batch 1: ``τ = d ηρ²/2`` (Wen, Ma & Li 2022; scalar outputs only);
    - GD: ``0`` (``Φ`` is invariant under the flow, and a gradient step moves it only at ``O(η²‖∇f‖²)``).

    Raises:
        ValueError: for SA or SAM with a batch other than 1 (no closed form is derived), for SAM on
            vector outputs, and for a training-loss method on a problem that is not a training loss.

    Examples:
        >>> from flatref.algorithms import RS, SA
        >>> from flatref.problems import DiagonalLinearNetwork
        >>> problem = DiagonalLinearNetwork.random(4, 10, rng=0)   # d = 20
        >>> rs, sa = (flow_time_per_step(m, problem) for m in (RS(0.1, 0.02, 0.5), SA(0.1, 0.02, 0.5)))
        >>> round(rs, 12), round(sa, 12)                         # η′ρ²/2 and d η′ρ²/2
        (0.0025, 0.05)
    """
    from .algorithms import GD, RS, SA, SAM, LabelNoiseSGD, StepRule

    if not isinstance(method, StepRule):
        raise TypeError(f"method must be a flatref step rule, got {type(method).__name__}")
    method.check(check_problem(problem))
    d = problem.dim
    if isinstance(method, (SA, SAM)) and method.batch_size != 1:
        raise ValueError(f"the slow-flow time of {type(method).__name__} is derived for batch_size = 1, "
                         f"got {method.batch_size}")  # fmt: skip
    if isinstance(method, RS):
        return method.eta_prime * method.rho * method.rho / 2
    if isinstance(method, SA):
        return d * method.eta_prime * method.rho * method.rho / (2 * problem.n_outputs)
    if isinstance(method, SAM):
        if problem.n_outputs > 1:  # its ascent direction J_iᵀr_i/‖J_iᵀr_i‖ follows the residual, not a sphere
            raise ValueError(f"the slow-flow time of SAM is derived for one output per sample, got K = {problem.n_outputs}")
        return d * method.eta * method.rho * method.rho / 2
    if isinstance(method, LabelNoiseSGD):
        return d * problem.loss.weight * (method.eta * method.sigma) ** 2 / (4 * method.batch_size)
    if isinstance(method, GD):
        return 0.0
    raise ValueError(f"no slow-flow time is derived for {type(method).__name__}")
