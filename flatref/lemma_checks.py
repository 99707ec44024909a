"""The paper's lemmas as checks on any problem at a minimum (:func:`check_lemmas`, exported by :mod:`flatref.testing`).

Each check compares a closed form of the paper with an independent route on the user's problem:
an exact design average, the inequality itself, a flow, a finite sum over samples, the variational
equation, or the chain rule. Equation numbers are the paper's (docs/theory.md §3–§4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_nonnegative, as_positive, as_vector, check_problem, make_rng
from .errors import FlatrefError
from .flatness import grad_tr_bar, metric_at_minimum, tr_bar
from .flow import limit_jacobian, limit_map
from .geometry import proj_out, project_tangent, tangent_projector
from .problems import Problem, TrainingLoss
from .problems.base import DENSE_MAX_DIM, row_space
from .theory import lemma1_bound, lemma2_trace_change, sa_leading_perturbation

#: Above this dimension the checks that need ``d`` flows, ``d × d`` matrices or ``2d`` gradients are skipped.
MAX_DIM = 200


@dataclass(frozen=True)
class LemmaCheck:
    """One check: its relative error against its tolerance, or ``applicable = False`` with the reason."""

    name: str
    error: float | None
    tol: float | None
    passed: bool
    applicable: bool = True
    note: str = ""


@dataclass(frozen=True)
class LemmaReport:
    """What :func:`check_lemmas` found; ``passed`` when every applicable check passed."""

    problem: str
    checks: tuple

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.applicable)

    def __str__(self) -> str:
        lines = [f"Lemma checks for {self.problem}: {'passed' if self.passed else 'FAILED'}"]
        for c in self.checks:
            result = f"{c.error:.1e} ≤ {c.tol:.0e}" if c.applicable else "not applicable"
            verdict = ("ok" if c.passed else "FAIL") if c.applicable else "--"
            lines.append(f"  {c.name:<12}{result:>20}  {verdict:<4} {c.note}")
        return "\n".join(lines)


def check_lemmas(problem: Problem, x_star, *, rho: float = 1e-2, eta_prime: float = 1e-3, rng=0) -> LemmaReport:
    """Run the paper's checks at a minimum ``x_star`` of any problem.

    - **eq. (16)**: the mean of ``∇³f[u, u]`` over ``u ∈ {±e_i}`` is ``∇tr̄`` exactly (tolerance ``1e-9``).
    - **Lemma 1**: ``f(x − η∇f − η′v) ≤`` the bound (11) at a point ``1e-2`` from ``x*``, with ``v ⊥ ∇f``,
      ``β = 2λ_max(∇²f(x))`` and ``η = η′ = 1/β``.
    - **Lemma 2**: ``tr̄(Φ(x* − η′ v̄)) − tr̄(x*)`` against ``−(η′ρ²/2)‖∂Φ∇tr̄‖²``, ``v̄`` RS's mean perturbation
      over the design (relative ``0.05``: the neglected terms are ``O(η′)`` and ``O(ρ²)``).
    - **Lemma 4** (training losses): the tangent part of SA's mean perturbation over samples and signs
      is ``d`` times RS's, ``d/K`` with ``K`` outputs per sample (relative ``1e-3``; exact for quartic losses).
    - **Lemma 6**: ``∂Φ(x*)`` from the variational equation is the tangent projector (``1e-6``).
    - **eq. (31)** (training losses): ``∇²f(x*) = (1/n) Jᵀ diag(ℓ″) J`` (relative ``1e-10``).

    Args:
        problem: any :class:`~flatref.problems.Problem`.
        x_star: a minimum (``‖∇f(x*)‖`` at rounding level).
        rho, eta_prime: the perturbation radius and the kick size of the Lemma 2 and 4 checks.
        rng: the seed of Lemma 1's point and direction.

    A check whose flow or variational equation does not settle (a badly conditioned minimum) is reported
    not applicable, with the error that stopped it.

    Raises:
        ValueError: if ``x_star`` is not a minimum.

    Examples:
        >>> from flatref.problems import DiagonalLinearNetwork
        >>> problem = DiagonalLinearNetwork.random(3, 5, rng=0)
        >>> report = check_lemmas(problem, problem.random_minimum(0))
        >>> report.passed, [c.name for c in report.checks]
        (True, ['eq. (16)', 'Lemma 1', 'Lemma 2', 'Lemma 4', 'Lemma 6', 'eq. (31)'])
    """
    check_problem(problem)
    x_star = as_vector(x_star, problem.dim, "x_star")
    rho, eta_prime = as_positive(rho, "rho"), as_positive(eta_prime, "eta_prime")
    limit = limit_map(problem, x_star)
    if not limit.success or np.linalg.norm(limit.x - x_star) > 1e-6 * (1.0 + np.linalg.norm(x_star)):
        raise ValueError(f"x_star must be a minimum: the flow from it moved by {np.linalg.norm(limit.x - x_star):.3g}")
    rng = make_rng(rng)
    checks = (("eq. (16)", lambda: _eq16(problem, x_star)), ("Lemma 1", lambda: _lemma1(problem, x_star, rng)),
              ("Lemma 2", lambda: _lemma2(problem, x_star, rho, eta_prime)),
              ("Lemma 4", lambda: _lemma4(problem, x_star, rho)), ("Lemma 6", lambda: _lemma6(problem, x_star)),
              ("eq. (31)", lambda: _eq31(problem, x_star)))  # fmt: skip
    return LemmaReport(repr(problem), tuple(_guarded(name, check) for name, check in checks))


def _guarded(name, check) -> LemmaCheck:
    """Run one check; a flow or variational equation that does not settle makes it not applicable, with why."""
    try:
        return check()
    except FlatrefError as err:
        return _skipped(name, f"could not be computed: {type(err).__name__}: {err}")


def _relative(a, b, scale=0.0) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), scale, np.finfo(float).tiny))


def _design_mean(fun, d):
    """The mean over ``u ∈ {±e_i}``: ``E uuᵀ = I/d`` and no odd moments, like the uniform sphere."""
    return sum(fun(s * e) for e in np.eye(d) for s in (1.0, -1.0)) / (2 * d)


def _skipped(name, why) -> LemmaCheck:
    return LemmaCheck(name, None, None, True, applicable=False, note=why)


def _eq16(problem, x):
    if problem.dim > MAX_DIM:
        return _skipped("eq. (16)", f"d > {MAX_DIM}")
    parts = [problem.third_contract(x, e, e) for e in np.eye(problem.dim)]
    mean = _design_mean(lambda u: problem.third_contract(x, u, u), problem.dim)
    error = _relative(mean, grad_tr_bar(problem, x), sum(np.linalg.norm(p) for p in parts) / problem.dim)
    return LemmaCheck("eq. (16)", error, 1e-9, error <= 1e-9)


def _lemma1(problem, x_star, rng):
    x = x_star + 1e-2 * (1.0 + np.linalg.norm(x_star)) * _unit(rng, problem.dim)
    g = problem.grad(x)
    beta = 2.0 * max(float(np.linalg.eigvalsh(problem.hess(x))[-1]), 1e-12) if problem.dim <= DENSE_MAX_DIM else None
    if beta is None:
        return _skipped("Lemma 1", f"d > {DENSE_MAX_DIM}")
    v = proj_out(g, _unit(rng, problem.dim)) * max(np.linalg.norm(g), 1e-12)
    eta = 1.0 / beta
    lhs, bound = float(problem.f(x - eta * g - eta * v)), lemma1_bound(problem, x, eta, eta, v, beta)
    slack = bound - lhs
    return LemmaCheck("Lemma 1", max(0.0, -slack), 1e-12 * (1 + abs(bound)), slack >= -1e-12 * (1 + abs(bound)),
                      note=f"slack {slack:.2e}")  # fmt: skip


def _lemma2(problem, x_star, rho, eta_prime):
    if problem.dim > MAX_DIM:
        return _skipped("Lemma 2", f"d > {MAX_DIM}")
    if metric_at_minimum(problem, x_star) < 1e-6:
        return _skipped("Lemma 2", "x* is stationary for tr̄ along X*: the leading term is 0")
    moved = limit_map(problem, x_star - eta_prime * rs_design_mean(problem, x_star, rho), throw=True).x
    measured = tr_bar(problem, moved) - tr_bar(problem, x_star)
    predicted = lemma2_trace_change(problem, x_star, eta_prime, rho)
    error = abs(measured - predicted) / abs(predicted)
    return LemmaCheck("Lemma 2", error, 0.05, error <= 0.05)


def _lemma4(problem, x_star, rho):
    if not isinstance(problem, TrainingLoss):
        return _skipped("Lemma 4", "not a training loss")
    if problem.dim > MAX_DIM:
        return _skipped("Lemma 4", f"d > {MAX_DIM}")
    try:
        mean_sa = sa_design_mean(problem, x_star, rho)
    except ValueError as err:
        return _skipped("Lemma 4", str(err))
    k, mean_rs = problem.n_outputs, rs_design_mean(problem, x_star, rho)
    tangent_sa, tangent_rs = (project_tangent(problem, x_star, v) for v in (mean_sa, mean_rs))
    # against the size of the terms that cancel where x* is stationary for tr̄ (then both sides are 0), and
    # at least a millionth of the kick's normal part (a quadratic loss has no ∇³f: both sides are rounding)
    terms = rho**2 / 2 * sum(np.linalg.norm(problem.third_contract(x_star, e, e)) for e in np.eye(problem.dim))
    kick = np.linalg.norm(problem.grad(x_star + rho * np.eye(problem.dim)[0]))
    scale = max(np.linalg.norm(sa_leading_perturbation(problem, x_star, rho)), terms, 1e-6 * kick)
    error = _relative(tangent_sa, problem.dim / k * tangent_rs, scale)
    return LemmaCheck("Lemma 4", error, 1e-3, error <= 1e-3)


def rs_design_mean(problem: Problem, x, rho: float) -> np.ndarray:
    """``E v_RS`` at ``x`` over the design ``u ∈ {±e_i}``: ``(1/2d) Σ_{i,±} Proj⊥_{∇f(x)} ∇f(x ± ρe_i)``. The design
    has the sphere's ``E uuᵀ = I/d`` and no odd moments, so it gives eq. (10)'s leading terms exactly (Lemma 2).

    Examples:
        >>> from flatref.problems import Example1
        >>> from flatref.theory import rs_leading_perturbation
        >>> p, x_star = Example1(), np.array([2.0, 0.5])        # ∇f is cubic: no O(ρ⁴) remainder
        >>> mean = rs_design_mean(p, x_star, 1e-2)
        >>> mean.round(9).tolist(), bool(np.allclose(mean, rs_leading_perturbation(p, x_star, 1e-2), rtol=1e-9))
        ([0.0002, 5e-05], True)
    """
    x, rho = as_vector(x, check_problem(problem).dim, "x"), as_nonnegative(rho, "rho")
    g = problem.grad(x)
    return _design_mean(lambda u: proj_out(g, problem.grad(x + rho * u)), problem.dim)


def sa_design_mean(problem: TrainingLoss, x_star, rho: float) -> np.ndarray:
    """``E v_SA`` at ``x_star`` for batch 1, exactly: Algorithm 2's perturbation averaged over every sample ``i``,
    both signs ``σ`` and, for ``K`` outputs per sample, the directions ``±v_j`` of an orthonormal basis of
    ``row(J_i)``. That design has SA's ``E uuᵀ = Π_i/K`` and no odd moments (docs/theory.md §4.6), so it gives
    the expectation's leading terms exactly (Lemma 4).

    Raises:
        TypeError: if ``problem`` is not a training loss.
        ValueError: if some sample's output Jacobian has rank below ``K`` (SA's direction is then not this design).

    Examples:
        >>> from flatref.problems import DiagonalLinearNetwork
        >>> from flatref.theory import sa_leading_perturbation
        >>> p = DiagonalLinearNetwork.random(4, 8, sparsity=2, rng=0)
        >>> x_star = p.random_minimum(0)
        >>> tangent = project_tangent(p, x_star, sa_design_mean(p, x_star, 1e-2))   # Lemma 4's leading term
        >>> bool(np.allclose(tangent, sa_leading_perturbation(p, x_star, 1e-2), rtol=1e-6, atol=1e-14))
        True
    """
    if not isinstance(check_problem(problem), TrainingLoss):
        raise TypeError(f"problem must be a training loss (Setting 1), got {type(problem).__name__}")
    x_star, rho = as_vector(x_star, problem.dim, "x_star"), as_nonnegative(rho, "rho")
    g, k = problem.grad(x_star), problem.n_outputs
    mean = np.zeros(problem.dim)
    for i in range(problem.n_samples):
        basis = row_space(problem.output_jacobian(x_star, [i]).reshape(k, problem.dim), rtol=1e-10)
        if k > 1 and len(basis) < k:
            raise ValueError(f"sample {i}'s output Jacobian has rank {len(basis)} < K = {k}")
        for u in basis:
            mean += sum(proj_out(g, problem.sample_grad(x_star + rho * sign * u, [i])) for sign in (1.0, -1.0))
    return mean / (2 * k * problem.n_samples)


def _lemma6(problem, x_star):
    if problem.dim > MAX_DIM:
        return _skipped("Lemma 6", f"d > {MAX_DIM}")
    error = float(np.max(np.abs(limit_jacobian(problem, x_star) - tangent_projector(problem, x_star))))
    return LemmaCheck("Lemma 6", error, 1e-6, error <= 1e-6)


def _eq31(problem, x_star):
    if not isinstance(problem, TrainingLoss):
        return _skipped("eq. (31)", "not a training loss")
    if problem.dim > DENSE_MAX_DIM:
        return _skipped("eq. (31)", f"d > {DENSE_MAX_DIM}")
    J = problem.output_jacobian(x_star).reshape(-1, problem.dim)  # one row per output
    l2 = problem.loss.d2(problem.outputs(x_star), problem.y).reshape(-1)
    error = _relative(problem.hess(x_star), (J.T * l2) @ J / problem.n_samples)
    return LemmaCheck("eq. (31)", error, 1e-10, error <= 1e-10)


def _unit(rng, d):
    e = rng.standard_normal(d)
    return e / np.linalg.norm(e)
