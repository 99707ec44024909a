"""The slow flow on the minima (``limit_flow``) and the flow time of each method (``flow_time_per_step``)."""

import numpy as np
import pytest

from flatref import GD, RS, SA, SAM, LabelNoiseSGD, Status, limit_flow, limit_map, run, tangent_projector
from flatref.experiments.registry import network_of_dim
from flatref.problems import DiagonalLinearNetwork, Example1, MatrixSensing
from flatref.theory import flow_time_per_step

EX1 = Example1()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_example1_flows_to_its_flat_minimum(sign):
    flow = limit_flow(EX1, [3.0 * sign, sign / 3], t_end=50.0)
    assert flow.status is Status.CONVERGED and flow.success
    assert np.allclose(flow.xs[-1], [sign, sign], atol=1e-6)  # metric 1e-6 = 2√2·(distance along X*)·…
    assert flow.tr_bar[-1] == pytest.approx(2.0, abs=1e-11)  # tr̄ = x1² + x2², quadratic at its minimum
    assert np.allclose(flow.xs[:, 0] * flow.xs[:, 1], 1.0, atol=1e-13)  # every reported point is on X*


def test_the_trace_falls_at_the_rate_the_metric_squared_says():
    # d tr̄(x*(t))/dt = ∇tr̄ · ẋ* = −‖P∇tr̄‖²: the drop equals the integral of the metric squared
    problem = DiagonalLinearNetwork.random(5, 12, sparsity=2, rng=3)
    flow = limit_flow(problem, problem.sharp_minimum(), t_end=20.0)
    assert np.all(np.diff(flow.tr_bar) <= 1e-15)
    drop = flow.tr_bar[0] - flow.tr_bar[-1]
    integral = np.sum(np.diff(flow.times) * (flow.metric[1:] ** 2 + flow.metric[:-1] ** 2) / 2)
    # the trapezoid rule on DOP853's few large steps is accurate to about 1 %; a wrong factor would be 100 %
    assert drop > 0.1 * flow.tr_bar[0] and integral == pytest.approx(drop, rel=3e-2)


def test_the_diagonal_network_flows_to_the_weighted_basis_pursuit_minimum():
    problem = network_of_dim(40)
    flow = limit_flow(problem, problem.sharp_minimum(), t_end=1e5)
    (flat,) = problem.flat_minima()
    assert flow.status is Status.CONVERGED
    assert np.allclose(problem.weights(flow.xs[-1]), problem.weights(flat), atol=1e-7)
    assert flow.tr_bar[-1] == pytest.approx(problem.trace_hess(flat) / problem.dim, rel=1e-8)


def test_a_failed_start_is_reported_not_raised():
    flow = limit_flow(EX1, [1.0, -1.0], t_end=1.0)  # Φ(1, −1) is the saddle (0, 0)
    assert flow.status is Status.SADDLE and not flow.success and len(flow.times) == 1


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="problem must be a flatref Problem"):
        limit_flow(None, [1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="t_end must be positive"):
        limit_flow(EX1, [1.0, 1.0], -1.0)
    with pytest.raises(ValueError, match="x must have shape"):
        limit_flow(EX1, [1.0, 1.0, 1.0], 1.0)


# ------------------------------------------------------------------------ the time scales
@pytest.mark.parametrize("problem", [Example1(), MatrixSensing.random(3, 2, 1, 4, rng=0)], ids=["example1", "sensing"])
def test_the_second_derivative_of_phi_along_the_hessian_is_minus_half_the_projected_trace_gradient(problem):
    # ∂²Φ(x*)[∇²f] = Σ_k λ_k ∂²Φ[q_k, q_k] over the normal eigenpairs; each term by central differences of Φ.
    # This identity turns a noise covariance c·∇²f per step into the drift −(c/4) P ∇tr∇²f (label noise).
    x_star = problem.random_minimum(0)
    lam, Q = np.linalg.eigh(problem.hess(x_star))
    h, total = 1e-3, np.zeros(problem.dim)
    for value, q in zip(lam, Q.T):
        if value > 1e-8 * lam[-1]:
            plus, minus = (limit_map(problem, x_star + s * h * q, gtol=1e-10).x for s in (1, -1))
            total += value * (plus + minus - 2 * x_star) / h**2
    expected = -0.5 * tangent_projector(problem, x_star) @ problem.grad_trace_hess(x_star)
    assert np.allclose(total, expected, rtol=0, atol=1e-4 * np.linalg.norm(expected))  # O(h²) differences: 2e-5


def test_flow_time_per_step_has_the_derived_scalings():
    problem = DiagonalLinearNetwork.random(4, 10, rng=0)  # d = 20
    d = problem.dim
    assert flow_time_per_step(RS(0.1, 0.02, 0.5), problem) == pytest.approx(0.02 * 0.25 / 2)
    assert flow_time_per_step(SA(0.1, 0.02, 0.5), problem) == pytest.approx(d * 0.02 * 0.25 / 2)
    assert flow_time_per_step(SAM(0.1, 0.5, batch_size=1), problem) == pytest.approx(d * 0.1 * 0.25 / 2)
    assert flow_time_per_step(LabelNoiseSGD(0.1, 0.5, batch_size=2), problem) == pytest.approx(d * 0.01 * 0.25 / 8)
    assert flow_time_per_step(GD(0.1), problem) == 0.0
    # Example 1's loss is (x1 x2 − 1)² = w(p − 1)²/2 with w = 2: label noise of size σ has covariance w·η²σ²·∇²f
    assert flow_time_per_step(LabelNoiseSGD(0.1, 0.5), EX1) == pytest.approx(2 * 2 * 0.01 * 0.25 / 4)
    with pytest.raises(ValueError, match="derived for batch_size = 1"):
        flow_time_per_step(SA(0.1, 0.02, 0.5, batch_size=2), problem)
    with pytest.raises(ValueError, match="derived for batch_size = 1"):
        flow_time_per_step(SAM(0.1, 0.5), problem)  # full batch: SAM then follows λ_max, not the trace
    with pytest.raises(TypeError, match="step rule"):
        flow_time_per_step("SA", problem)


def _gap(problem, method, x0, flow, seeds):
    """Mean of tr̄(Φ(x_t)) over seeds minus the flow's tr̄ at the rescaled time t·τ = flow.times[-1]."""
    steps = round(flow.times[-1] / flow_time_per_step(method, problem))
    ends = [run(problem, method, x0, steps=steps, rng=seed, record_every=steps).x_last for seed in range(seeds)]
    return np.mean([problem.trace_hess(limit_map(problem, x).x) / problem.dim for x in ends]) - flow.tr_bar[-1]


def test_the_methods_collapse_onto_the_slow_flow_with_a_gap_linear_in_their_step():
    # d = 40 network from its sharp minimum; the flow's tr̄ falls from 0.174 to 0.116 by τ = 4. Measured gaps
    # (20 seeds, standard errors 2e-4 to 3e-4): SA η′ = 0.02 / 0.005: −1.8e-3 / −5.4e-4; SAM (batch 1)
    # η = 0.05 / 0.02: −1.2e-2 / −4.9e-3; RS η′ = 0.04: +1.3e-4 ± 4e-4 (5 seeds, 2222 steps).
    problem = network_of_dim(40)
    x0 = problem.sharp_minimum()
    flow = limit_flow(problem, x0, t_end=4.0)
    drop = flow.tr_bar[0] - flow.tr_bar[-1]
    sa = [_gap(problem, SA(0.05, eta_prime, 0.3), x0, flow, seeds=20) for eta_prime in (0.02, 0.005)]
    sam = [_gap(problem, SAM(eta, 0.1, batch_size=1), x0, flow, seeds=10) for eta in (0.05, 0.02)]
    assert abs(sa[1]) < 0.02 * drop and 2 < sa[0] / sa[1] < 8  # on the flow, and the gap ∝ η′ (ratio 4)
    assert abs(sam[1]) < 0.15 * drop and 1.5 < sam[0] / sam[1] < 4  # the gap ∝ η (ratio 2.5)
    assert abs(_gap(problem, RS(0.05, 0.04, 0.3), x0, flow, seeds=5)) < 0.03 * drop


@pytest.mark.slow
def test_label_noise_sgd_collapses_onto_the_slow_flow():
    # measured: η = 0.05 / 0.02 (σ = 0.3, batch 1): gaps −7.1e-3 / −2.4e-3 against a drop of 5.8e-2 (10 seeds)
    problem = network_of_dim(40)
    x0 = problem.sharp_minimum()
    flow = limit_flow(problem, x0, t_end=4.0)
    gaps = [_gap(problem, LabelNoiseSGD(eta, 0.3), x0, flow, seeds=10) for eta in (0.05, 0.02)]
    assert abs(gaps[1]) < 0.08 * (flow.tr_bar[0] - flow.tr_bar[-1]) and 1.5 < gaps[0] / gaps[1] < 5


@pytest.mark.parametrize("seed", [0, 2])
def test_matrix_sensing_flows_to_the_certified_flattest_minimum(seed):
    # seed 0: the flattest minimum is the rank-1 truth; seed 2: a rank-4 interpolant flatter than the truth
    pytest.importorskip("cvxpy")
    problem = MatrixSensing.random(10, 4, 1, 18, rng=seed)
    flattest = problem.flattest_minimum()
    flow = limit_flow(problem, problem.sharp_minimum(), t_end=1e4)
    assert flow.status is Status.CONVERGED
    assert flow.tr_bar[-1] * problem.dim == pytest.approx(flattest.trace, rel=1e-9)  # measured: 1e-11
