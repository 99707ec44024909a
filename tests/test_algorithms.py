"""The step rules (``flatref.algorithms``): exact steps, the gate, SA's direction, bad input."""

import math

import numpy as np
import pytest
from helpers import PlainQuadratic

from flatref import GD, RS, SA, SAM, LabelNoiseSGD, proj_out, run
from flatref.problems import DiagonalLinearNetwork, Example1

EX1 = Example1()
DLN = DiagonalLinearNetwork.random(6, 10, sparsity=2, rng=0)


def test_steps_follow_the_update_rules():
    x = np.array([2.0, 0.7])
    g = EX1.grad(x)
    u = np.array([0.6, 0.8])
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(GD(0.1).step(EX1, x, g, (), rng).x, x - 0.1 * g)
    rs = RS(0.1, 0.2, 0.3).step(EX1, x, g, (u,), rng)
    v = proj_out(g, EX1.grad(x + 0.3 * u))  # the public one scales its inputs: equal up to one rounding
    np.testing.assert_allclose(rs.x, x - 0.1 * g - 0.2 * v, rtol=1e-15)
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


