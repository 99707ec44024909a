"""The paper's lemmas as executable claims (docs/theory.md §3, §4)."""

import math

import numpy as np
import pytest
from helpers import LogCosh, assert_close, derivative_scale, sine_model
from hypothesis import given, settings
from hypothesis import strategies as st

from flatref import grad_tr_bar, limit_map, proj_out, project_tangent, tr_bar
from flatref.lemma_checks import rs_design_mean, sa_design_mean
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing
from flatref.testing import FAMILIES, points, small_problem
from flatref.theory import (
    lemma1_bound,
    lemma2_trace_change,
    rs_leading_perturbation,
    rs_schedule,
    sa_leading_perturbation,
    sa_schedule,
    table1_exponents,
    table1_iterations,
)

seeds = st.integers(0, 2**32 - 1)


@st.composite
def problem_and_point(draw):
    problem = small_problem(draw(st.sampled_from(FAMILIES)), draw(seeds), draw(st.integers(0, 2)))
    return problem, draw(points(problem, scale=1.5))


def design_mean(fun, d):
    """The mean of ``fun(g)`` over ``g ∈ {±e_i}``: it has ``E ggᵀ = I/d`` and no odd moments, like ``Unif(S^{d−1})``."""
    eye = np.eye(d)
    return sum(fun(s * e) for e in eye for s in (1.0, -1.0)) / (2 * d)


# ------------------------------------------------------------------- eq. (16)
@given(problem_and_point())
def test_eq16_the_design_average_of_the_third_derivative_is_grad_tr_bar(pp):
    problem, x = pp
    mean = design_mean(lambda u: problem.third_contract(x, u, u), problem.dim)
    assert_close(mean, grad_tr_bar(problem, x), derivative_scale(problem, x))


def test_eq16_holds_for_the_sphere_by_monte_carlo():
    # N = 40 000 uniform unit vectors; each component of the mean is within 5 standard errors
    # (two-sided probability 6e-7 per component; the seed is fixed).
    problem = small_problem(MatrixSensing, 0, 1)
    x = np.random.default_rng(1).standard_normal(problem.dim)
    u = np.random.default_rng(2).standard_normal((40_000, problem.dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    samples = np.einsum("kij,ni,nj->nk", problem.third(x), u, u)
    error = np.abs(samples.mean(axis=0) - grad_tr_bar(problem, x))
    assert np.all(error <= 5 * samples.std(axis=0) / np.sqrt(len(u)))


# ------------------------------------------------------------------- eq. (10)
@given(problem_and_point())
def test_eq10_is_exact_for_the_quartic_families(pp):
    # f is a polynomial of degree ≤ 4, so ∇f(x+ρu) + ∇f(x−ρu) = 2∇f(x) + ρ²∇³f[u,u] exactly.
    problem, x = pp
    rho = 0.3
    expected = rs_leading_perturbation(problem, x, rho)
    scale = derivative_scale(problem, x) * (1 + rho) ** 3
    assert_close(rs_design_mean(problem, x, rho), expected, scale)


@pytest.mark.parametrize("loss", [None, LogCosh()], ids=["squared", "logcosh"])
def test_eq10_remainder_is_fourth_order_for_a_non_polynomial_problem(loss):
    problem = sine_model(3, loss=loss)
    x = np.random.default_rng(0).standard_normal(problem.dim)
    rhos = 0.2 * 0.5 ** np.arange(5)
    remainders = [
        np.linalg.norm(rs_design_mean(problem, x, r) - rs_leading_perturbation(problem, x, r)) for r in rhos
    ]
    slope = np.polyfit(np.log(rhos), np.log(remainders), 1)[0]
    assert slope == pytest.approx(4.0, abs=0.15)


# ------------------------------------------------------------------ Lemma 1
@settings(max_examples=40)
@given(seeds, st.floats(0.05, 1.0), st.floats(0.0, 2.0))
def test_lemma1_descent_inequality(seed, eta_fraction, eta_prime):
    rng = np.random.default_rng(seed)
    problem = LinearRegression.random(4, 9, rng=seed % 100)  # β = λ_max(ZᵀZ/n), exact
    beta = np.linalg.eigvalsh(problem.hess(np.zeros(9)))[-1]
    x = rng.standard_normal(9)
    g = problem.grad(x)
    v = proj_out(g, rng.standard_normal(9))  # v ⊥ ∇f(x)
    eta = eta_fraction / beta
    lhs = problem.f(x - eta * g - eta_prime * v)
    assert lhs <= lemma1_bound(problem, x, eta, eta_prime, v, beta) + 1e-12 * (1 + problem.f(x))


def test_lemma1_fails_when_v_is_not_orthogonal():
    # The orthogonality matters: v = −∇f/‖∇f‖·c (uphill) breaks the bound for large η′.
    problem = LinearRegression.random(4, 9, rng=0)
    beta = np.linalg.eigvalsh(problem.hess(np.zeros(9)))[-1]
    x = np.ones(9)
    g = problem.grad(x)
    v = -g
    assert problem.f(x - 0.5 / beta * g - 1.0 * v) > lemma1_bound(problem, x, 0.5 / beta, 1.0, v, beta)


# ------------------------------------------------------------------ Lemma 4
@pytest.mark.parametrize(
    "problem",
    [DiagonalLinearNetwork.random(4, 8, sparsity=2, rng=0), MatrixSensing.random(4, 2, 1, 5, rng=0)],
    ids=["DiagonalLinearNetwork", "MatrixSensing"],
)
def test_lemma4_sa_moves_d_times_faster_along_the_minima_set(problem):
    # At x* ∈ X*: E_{i,σ} v_SA over all samples and both signs (an exact finite sum),
    # and E v_RS over the {±e_i} design; both exact for these quartic losses.
    x_star = problem.random_minimum(0)
    rho = 0.1
    tangent_sa = project_tangent(problem, x_star, sa_design_mean(problem, x_star, rho))
    tangent_rs = project_tangent(problem, x_star, rs_design_mean(problem, x_star, rho))
    assert np.linalg.norm(tangent_rs) > 1e-6  # the comparison is not 0 = 0
    np.testing.assert_allclose(tangent_sa, problem.dim * tangent_rs, atol=1e-8 * np.linalg.norm(tangent_sa))
    np.testing.assert_allclose(tangent_sa, sa_leading_perturbation(problem, x_star, rho), atol=1e-10)


# ------------------------------------------------------------------ Lemma 2
@pytest.mark.parametrize(
    "problem, x_t",
    [
        (Example1(), np.array([2.0, 0.5])),
        (DiagonalLinearNetwork.random(3, 5, sparsity=1, rng=1), None),
    ],
    ids=["Example1", "DiagonalLinearNetwork"],
)
def test_lemma2_expected_change_of_the_trace_at_the_limit(problem, x_t):
    # One RS step from a minimum with η′ = 1e-3, ρ = 1e-2; the expectation over the {±e_i}
    # design matches E over the sphere to the order tested. Lemma 2 to leading order:
    # E Δ tr̄(Φ) = −(η′ρ²/2)|∂Φ ∇tr̄|²; the neglected terms are O(η′²ρ²) and O(η′ρ⁴).
    if x_t is None:
        x_t = problem.random_minimum(2)
    eta, eta_prime, rho = 0.01, 1e-3, 1e-2
    g = problem.grad(x_t)

    def limit_tr_bar(x):
        limit = limit_map(problem, x)
        assert limit.success, limit.message
        return tr_bar(problem, limit.x)

    start = limit_tr_bar(x_t)

    def change(u):
        return limit_tr_bar(x_t - eta * g - eta_prime * proj_out(g, problem.grad(x_t + rho * u))) - start

    measured = design_mean(change, problem.dim)
    predicted = lemma2_trace_change(problem, x_t, eta_prime, rho)
    assert predicted < 0
    assert measured == pytest.approx(predicted, rel=0.05)


def test_a_gradient_step_moves_the_limit_only_to_second_order():
    # Lemma 6: ∂Φ∇f = 0, so tr̄(Φ(x − η∇f(x))) − tr̄(Φ(x)) = O(η²): fitted slope 2.
    problem = Example1()
    x = np.array([2.2, 0.3])
    base = tr_bar(problem, problem.exact_limit(x))
    etas = 0.02 * 0.5 ** np.arange(5)
    changes = [abs(tr_bar(problem, problem.exact_limit(x - eta * problem.grad(x))) - base) for eta in etas]
    assert np.polyfit(np.log(etas), np.log(changes), 1)[0] == pytest.approx(2.0, abs=0.1)


# -------------------------------------------------------- schedules, Table 1
def test_rs_schedule_has_theorem1_scalings():
    s = rs_schedule(beta=4.0, eps=1e-2, delta=0.5, c_eta_prime=2.0, c_rho=3.0, c_steps=1e-3)
    assert (s.eta, s.eta_prime, s.rho) == pytest.approx((0.25, 2 * 0.5 * 1e-2, 3 * 0.5 * 0.1))
    assert s.steps == math.ceil(1e-3 * 1e6 * 16) and s.eps0 == math.inf
    s2 = rs_schedule(beta=4.0, eps=1e-2 / 4, delta=0.5, c_steps=1e-3)
    assert s2.eta_prime / s.eta_prime == pytest.approx(0.25 / 2) and s2.rho / (s.rho / 3) == pytest.approx(0.5)


def test_table1_bounds_and_their_ratio():
    t = table1_iterations(1e-2, 0.5, 100)
    assert t["RS"] == pytest.approx(1e6 * 16)
    assert t["SA"] == pytest.approx(1e4 * 16 / 100)  # d³ε = 1e4 ≥ 1
    small_d = table1_iterations(1e-2, 0.5, 2)  # d³ε = 0.08 < 1: the 1/(d³ε) branch
    assert small_d["SA"] == pytest.approx(1e4 / 0.08 * 16 / 2)
    with pytest.raises(ValueError, match="eps must be positive"):
        table1_iterations(0.0, 0.5, 3)


def lemma4_rate(eps, dim, delta):
    """Lemma 4's per-step decrease as the paper's text states it: ``d · min{1, εd³} · δ³ε²``."""
    return dim * min(1.0, eps * dim**3) * delta**3 * eps**2


@pytest.mark.parametrize("shape, eps", [((1, 2, 1), 0.01), ((1, 2, 1), 0.001), ((2, 8, 2), 0.01), ((2, 8, 2), 0.001)],
                         ids=["d=4, d³ε<1", "d=4, d³ε≪1", "d=16", "d=16, small ε"])  # fmt: skip
def test_sa_schedule_gives_lemma4s_decrease_and_table1s_steps(shape, eps):
    """Against two statements of the paper, not against the formula the schedule was built from.

    - Lemma 4: with ``sa_schedule``'s ``η′, ρ``, SA's expected first-order decrease of ``tr̄(Φ)`` per step,
      ``η′ ⟨∂Φ E v_SA, ∇tr̄⟩`` at a point whose metric is ``√ε`` (computed from the kick itself,
      averaged exactly over ``i`` and ``σ``), is a fixed multiple of ``d·min{1, εd³}·δ³ε²``, on both
      branches and for every ``ε`` and ``δ``;
    - the proof's count: ``T`` times that rate is ``δ⁻¹`` (an ``O(1)`` drop of ``tr̄``, times ``δ⁻¹``).
    """
    n_samples, n_features, sparsity = shape
    problem = DiagonalLinearNetwork.random(n_samples, n_features, sparsity=sparsity, rng=1)
    x_star, d = problem.sharp_minimum(), problem.dim
    tangent_grad = project_tangent(problem, x_star, grad_tr_bar(problem, x_star))
    metric_squared = float(tangent_grad @ tangent_grad)
    assert metric_squared > 1e-6  # the start is not stationary: the decrease is not 0 = 0
    multiples = []
    for delta in (0.25, 0.5, 1.0):
        s = sa_schedule(beta=4.0, eps=eps, delta=delta, dim=d, c_steps=1.0)
        rho_small = 1e-3  # E v_SA is exactly quadratic in ρ for this quartic loss; scale back to the schedule's ρ
        kick = sa_design_mean(problem, x_star, rho_small) * (s.rho / rho_small) ** 2
        decrease = s.eta_prime * float(project_tangent(problem, x_star, kick) @ tangent_grad) * eps / metric_squared
        rate = lemma4_rate(eps, d, delta)
        multiples.append(decrease / rate)  # the decrease at metric √ε, in units of Lemma 4's rate
        assert 1 / delta * (1 - 1e-12) <= s.steps * rate <= 1 / delta + rate  # T = ⌈1/(δ·rate)⌉ steps
        assert s.eta_prime * s.rho <= eps  # each kick moves ∇f by O(η′ρ): the output keeps ‖∇f‖ = O(ε)
    assert multiples == pytest.approx([0.5] * 3, rel=1e-6)  # (ρ²/2)·d·‖∂Φ∇tr̄‖² with the constants 1


def test_sa_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="dim"):
        sa_schedule(beta=1.0, eps=0.1, delta=0.5, dim=0)
    with pytest.raises(ValueError, match="c_rho"):
        sa_schedule(beta=1.0, eps=0.1, delta=0.5, dim=3, c_rho=-1.0)


@pytest.mark.parametrize("method", ["RS", "SA"])
@pytest.mark.parametrize("eps, dim", [(1e-2, 100), (1e-2, 2), (1e-4, 8)])
def test_table1_exponents_are_the_log_slopes_of_the_bounds(method, eps, dim):
    def log_bound(log_eps, log_d):
        return math.log(table1_iterations(math.exp(log_eps), 0.5, round(math.exp(log_d)))[method])

    h = 1e-3
    slope_eps = (log_bound(math.log(eps) + h, math.log(dim)) - log_bound(math.log(eps) - h, math.log(dim))) / (2 * h)
    # d is an integer: difference over d ± 1 exactly (the bound is a power law in d on each branch).
    slope_d = (log_bound(math.log(eps), math.log(dim + 1)) - log_bound(math.log(eps), math.log(dim))) / math.log(
        (dim + 1) / dim
    )
    assert table1_exponents(method, eps, dim) == pytest.approx((slope_eps, slope_d), abs=1e-6)
    with pytest.raises(ValueError, match="method"):
        table1_exponents("GD", eps, dim)


def test_predictions_beyond_float64_raise_named_errors():
    from flatref.errors import NonFiniteError

    with pytest.raises(NonFiniteError, match="rs_leading_perturbation overflows float64"):
        rs_leading_perturbation(Example1(), [1.0, 2.0], 1e300)  # ρ² = 1e600
    with pytest.raises(NonFiniteError, match="lemma1_bound overflows"):
        lemma1_bound(Example1(), [1.0, 2.0], 0.1, 1e300, [2.0, -1.0], beta=1.0)
    with pytest.raises(ValueError, match="eps = 1e-300 and delta = 1 give an iteration bound beyond"):
        table1_iterations(1e-300, 1, 1)
    with pytest.raises(ValueError, match="beyond float64's range"):
        rs_schedule(1, 1e-60, 1e-40)
    with pytest.raises(ValueError, match=r"delta must be a probability in \(0, 1\]"):
        table1_iterations(0.1, 2.0, 3)
    with pytest.raises(ValueError, match="dim must be <="):
        table1_iterations(0.1, 1.0, 10**400)


@pytest.mark.parametrize("eps0, error", [(float("nan"), ValueError), (-1, ValueError), (0, ValueError),
                                         ("x", TypeError), (None, TypeError)])  # fmt: skip
def test_schedules_check_the_gate(eps0, error):
    with pytest.raises(error, match="eps0"):
        rs_schedule(1.0, 0.1, 0.5, eps0=eps0)
    with pytest.raises(error, match="eps0"):
        sa_schedule(1.0, 0.1, 0.5, 3, eps0=eps0)
    assert rs_schedule(1.0, 0.1, 0.5, eps0=math.inf).eps0 == math.inf
