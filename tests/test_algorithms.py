"""The driver and the step rules: exact steps, randomness, recording, divergence, bad input."""

import math

import numpy as np
import pytest
from helpers import PlainQuadratic
from hypothesis import given
from hypothesis import strategies as st

from flatref import GD, RS, SA, SAM, LabelNoiseSGD, proj_out, run
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression

EX1 = Example1()
DLN = DiagonalLinearNetwork.random(6, 10, sparsity=2, rng=0)
METHODS = [
    GD(0.05),
    RS(0.05, 0.05, 0.3),
    SA(0.05, 0.05, 0.3),
    SA(0.05, 0.05, 0.3, batch_size=3),
    SAM(0.05, 0.1),
    SAM(0.05, 0.1, batch_size=2),
    LabelNoiseSGD(0.05, 0.3, batch_size=2),
]
IDS = [repr(m).split("(")[0] + str(i) for i, m in enumerate(METHODS)]


@given(st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_proj_out_removes_the_component_along_u(seed, d):
    u, v = np.random.default_rng(seed).standard_normal((2, d))
    w = proj_out(u, v)
    assert abs(w @ u) <= 1e-12 * np.linalg.norm(u) * np.linalg.norm(v)
    np.testing.assert_allclose(v - w, ((u @ v) / (u @ u)) * u, atol=1e-12 * np.linalg.norm(v))
    np.testing.assert_array_equal(proj_out(np.zeros(d), v), v)  # Proj⊥_0 is the identity


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_same_seed_same_bits_and_other_seeds_differ(method):
    x0 = DLN.random_minimum(0) + 0.01
    a = run(DLN, method, x0, steps=40, rng=3)
    b = run(DLN, method, x0, steps=40, rng=np.random.default_rng(3))
    assert np.array_equal(a.xs, b.xs) and a.hat_index == b.hat_index
    deterministic = isinstance(method, GD) or (isinstance(method, SAM) and method.batch_size is None)
    if not deterministic:
        assert not np.array_equal(run(DLN, method, x0, steps=40, rng=4).xs, a.xs)


def test_steps_follow_the_update_rules():
    x = np.array([2.0, 0.7])
    g = EX1.grad(x)
    u = np.array([0.6, 0.8])
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(GD(0.1).step(EX1, x, g, (), rng).x, x - 0.1 * g)
    rs = RS(0.1, 0.2, 0.3).step(EX1, x, g, (u,), rng)
    v = proj_out(g, EX1.grad(x + 0.3 * u))
    np.testing.assert_array_equal(rs.x, x - 0.1 * g - 0.2 * v)
    assert rs.perturbed and rs.grad_evals == 1.0
    # SA with b = 1: direction ∇p_i/‖∇p_i‖, the same sample outside.
    sa = SA(0.1, 0.2, 0.3).step(EX1, x, g, (np.array([0]), -1.0), rng)
    d = np.array([x[1], x[0]]) / np.hypot(x[0], x[1])
    v = proj_out(g, EX1.sample_grad(x - 0.3 * d, [0]))
    np.testing.assert_allclose(sa.x, x - 0.1 * g - 0.2 * v, rtol=1e-15)
    sam = SAM(0.1, 0.3).step(EX1, x, g, (), rng)
    np.testing.assert_array_equal(sam.x, x - 0.1 * EX1.grad(x + 0.3 * g / np.linalg.norm(g)))


def test_the_gate_turns_perturbation_off_above_eps0():
    x = np.array([2.0, 0.7])  # |∇f| = 1.68
    g = EX1.grad(x)
    u = np.array([1.0, 0.0])
    rng = np.random.default_rng(0)
    for method in (RS(0.1, 0.2, 0.3, eps0=1.0), SA(0.1, 0.2, 0.3, eps0=1.0)):
        noise = (u,) if isinstance(method, RS) else (np.array([0]), 1.0)
        s = method.step(EX1, x, g, noise, rng)
        assert not s.perturbed and np.array_equal(s.x, x - 0.1 * g)
    assert RS(0.1, 0.2, 0.3, eps0=2.0).step(EX1, x, g, (u,), rng).perturbed


def test_sa_direction_is_defined_at_interpolation_and_at_zero_output_gradients():
    x_star = DLN.random_minimum(0)
    rng = np.random.default_rng(0)
    sa = SA(0.1, 0.1, 0.1)
    d = sa.direction(DLN, x_star, np.array([2]), rng)  # ∇f_2 = 0 here, ∇p_2 is not
    J = DLN.output_jacobian(x_star, [2])[0]
    np.testing.assert_allclose(d, J / np.linalg.norm(J), rtol=1e-14)
    # At u = v = 0 every ∇p_i vanishes: Remark 2 takes the direction at x + ξ.
    fallback = sa.direction(DLN, np.zeros(DLN.dim), np.array([0]), rng)
    assert np.linalg.norm(fallback) == pytest.approx(1.0)
    trajectory = run(DLN, sa, np.zeros(DLN.dim), steps=3)
    assert trajectory.status == "completed" and np.all(np.isfinite(trajectory.xs))


def test_sam_without_an_ascent_direction_takes_a_plain_step():
    # ∇f(1, 1) = 0 exactly. (At a numerical minimum ∇f is rounding, not 0, and SAM
    # normalizes it into some direction, as SAM in floating point does.)
    x = np.array([1.0, 1.0])
    s = SAM(0.1, 0.5).step(EX1, x, EX1.grad(x), (), np.random.default_rng(0))
    assert not s.perturbed and np.array_equal(s.x, x)


def test_label_noise_without_noise_is_sgd():
    x = DLN.random_minimum(1) + 0.1
    batch = np.array([1, 4])
    s = LabelNoiseSGD(0.1, 0.0, batch_size=2).step(DLN, x, DLN.grad(x), (batch, np.array([0.3, -1.0])), None)
    np.testing.assert_array_equal(s.x, x - 0.1 * DLN.sample_grad(x, batch))
    s = LabelNoiseSGD(0.1, 0.5, batch_size=2).step(DLN, x, DLN.grad(x), (batch, np.array([0.3, -1.0])), None)
    noisy = DLN.sample_grad(x, batch, DLN.y[batch] + 0.5 * np.array([0.3, -1.0]))
    np.testing.assert_array_equal(s.x, x - 0.1 * noisy)


def test_trajectory_records_what_it_says():
    x0 = EX1.sharp_minimum() + 0.01
    t = run(EX1, RS(0.05, 0.05, 0.3), x0, steps=25, rng=1, record_every=10)
    assert t.status == "completed" and t.steps == 25
    np.testing.assert_array_equal(t.record_steps, [0, 10, 20, 25])
    np.testing.assert_array_equal(t.xs[0], x0)
    np.testing.assert_array_equal(t.xs[-1], t.x_last)
    np.testing.assert_allclose(t.f, [EX1.f(x) for x in t.xs], rtol=1e-15)
    np.testing.assert_allclose(t.grad_norm, [np.linalg.norm(EX1.grad(x)) for x in t.xs], rtol=1e-15)
    assert t.perturbed.shape == (25,) and t.perturbed.all()
    assert t.grad_evals == 1 + 25 * 2  # ∇f(x_t) each step plus one perturbed gradient
    full = run(EX1, RS(0.05, 0.05, 0.3), x0, steps=25, rng=1)
    assert 1 <= full.hat_index <= 25
    np.testing.assert_array_equal(full.x_hat, full.xs[full.hat_index])
    np.testing.assert_array_equal(full.x_last, t.x_last)  # recording does not change the run


def test_x_hat_is_uniform_over_the_iterates():
    # τ ~ Unif{1..T}: over 4000 seeds each of T = 4 values appears 1000 ± 5·√(1000·3/4) times.
    counts = np.bincount([run(EX1, GD(0.01), [2.0, 0.5], steps=4, rng=s).hat_index for s in range(4000)])
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 1000) <= 5 * np.sqrt(750))


def test_divergence_stops_the_run():
    problem = LinearRegression.random(3, 6, rng=0)
    t = run(problem, GD(100.0), np.ones(6), steps=500)
    assert t.status == "diverged" and "exceeds" in t.message
    assert t.steps < 500 and np.all(np.isfinite(t.xs)) and t.record_steps[-1] == t.steps
    assert t.perturbed.shape == (t.steps,)


def test_progress_is_a_callback_that_prints_to_stderr(capsys):
    from flatref.report.progress import RunProgress

    trajectory = run(EX1, GD(0.01), [2.0, 0.5], steps=20, callback=RunProgress(EX1, "GD", 20))
    err = capsys.readouterr().err
    assert "GD: step 20/20" in err and err.count("\n") == 10
    assert trajectory.status == "completed" and trajectory.success


def test_the_callback_sees_every_step_and_can_stop_the_run():
    seen = []

    def callback(t, x):
        seen.append((t, x.copy()))
        return t == 7

    trajectory = run(EX1, RS(0.05, 0.05, 0.3), [3.0, 0.34], steps=50, rng=0, callback=callback)
    assert [t for t, _ in seen] == list(range(1, 8))
    assert trajectory.status == "stopped" and trajectory.success and trajectory.steps == 7
    assert trajectory.record_steps[-1] == 7 and np.array_equal(trajectory.x_last, seen[-1][1])
    full = run(EX1, RS(0.05, 0.05, 0.3), [3.0, 0.34], steps=50, rng=0, record_every=1)
    assert np.array_equal(full.xs[7], trajectory.x_last)  # stopping does not change the steps before it
    with pytest.raises(TypeError, match="callback must be callable"):
        run(EX1, GD(0.01), [2.0, 0.5], steps=2, callback=3)


def test_throw_raises_on_divergence_and_otherwise_reports_it():
    from flatref import StatusError

    diverged = run(EX1, GD(10.0), [3.0, 0.34], steps=50)
    assert diverged.status == "diverged" and not diverged.success
    assert diverged.message.startswith("the iterates blew up")
    with pytest.raises(StatusError, match="diverged") as info:
        run(EX1, GD(10.0), [3.0, 0.34], steps=50, throw=True)
    assert info.value.result.steps == diverged.steps


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="method must be a step rule"):
        run(EX1, "RS", [1.0, 1.0], steps=1)
    for make, name in [
        (lambda: GD(0.0), "eta"),
        (lambda: RS(0.1, -1.0, 0.1), "eta_prime"),
        (lambda: RS(0.1, 0.1, -0.1), "rho"),
        (lambda: RS(0.1, 0.1, 0.1, eps0=0.0), "eps0"),
        (lambda: SA(0.1, 0.1, 0.1, batch_size=0), "batch_size"),
        (lambda: LabelNoiseSGD(0.1, -1.0), "sigma"),
    ]:
        with pytest.raises(ValueError, match=name):
            make()
    with pytest.raises(ValueError, match=r"batch_size must be between 1 and n_samples = 6"):
        run(DLN, SA(0.1, 0.1, 0.1, batch_size=7), np.ones(DLN.dim), steps=1)
    with pytest.raises(ValueError, match="batch_size must be between"):
        run(EX1, SAM(0.1, 0.1, batch_size=2), [1.0, 1.0], steps=1)

    with pytest.raises(TypeError, match="SA needs a TrainingLoss"):
        run(PlainQuadratic(1), SA(0.1, 0.1, 0.1), [1.0], steps=1)
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\)"):
        run(EX1, GD(0.1), [1.0], steps=1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        run(EX1, GD(0.1), [1.0, 1.0], steps=0)
    assert RS(0.1, 0.1, 0.0, eps0=math.inf).eps0 == math.inf  # ρ = 0 and ε0 = ∞ are allowed


def test_overflow_inside_a_step_is_reported_as_divergence_not_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning would fail here
        # ρ = 1e110: the gradient at x + ρu is cubic in ρ and overflows inside the step.
        t = run(DLN, RS(0.1, 0.1, 1e110), DLN.random_minimum(0), steps=5)
    assert t.status == "diverged" and t.steps == 0 and "not finite" in t.message
