"""The driver (``flatref.driver.run``): randomness, recording, callbacks, divergence and ``throw``."""

import numpy as np
import pytest

from flatref import GD, RS, SA, SAM, LabelNoiseSGD, StatusError, run
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


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_same_seed_same_bits_and_other_seeds_differ(method):
    x0 = DLN.random_minimum(0) + 0.01
    a = run(DLN, method, x0, steps=40, rng=3)
    b = run(DLN, method, x0, steps=40, rng=np.random.default_rng(3))
    assert np.array_equal(a.xs, b.xs) and a.hat_index == b.hat_index
    deterministic = isinstance(method, GD) or (isinstance(method, SAM) and method.batch_size is None)
    if not deterministic:
        assert not np.array_equal(run(DLN, method, x0, steps=40, rng=4).xs, a.xs)


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
    diverged = run(EX1, GD(10.0), [3.0, 0.34], steps=50)
    assert diverged.status == "diverged" and not diverged.success
    assert diverged.message.startswith("the iterates blew up")
    with pytest.raises(StatusError, match="diverged") as info:
        run(EX1, GD(10.0), [3.0, 0.34], steps=50, throw=True)
    assert info.value.result.steps == diverged.steps


def test_overflow_inside_a_step_is_reported_as_divergence_not_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning would fail here
        # ρ = 1e110: the gradient at x + ρu is cubic in ρ and overflows inside the step.
        t = run(DLN, RS(0.1, 0.1, 1e110), DLN.random_minimum(0), steps=5)
    assert t.status == "diverged" and t.steps == 0 and "not finite" in t.message


def test_the_callback_runs_under_the_callers_floating_point_error_state():
    # the steps ignore floating-point errors (overflow is divergence), the user's callback does not
    def callback(t, x):
        return np.float64(1e308) * 10.0

    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        run(EX1, GD(0.01), [2.0, 0.5], steps=2, callback=callback)
    with np.errstate(over="ignore"):
        assert run(EX1, GD(0.01), [2.0, 0.5], steps=2, callback=callback).status == "stopped"  # inf is true


def test_a_seed_sequence_gives_the_same_bits_every_time_and_is_not_mutated():
    seeds = np.random.SeedSequence(1234)
    first = run(EX1, SA(0.1, 0.1, 0.1), [2.0, 0.6], steps=5, rng=seeds)
    second = run(EX1, SA(0.1, 0.1, 0.1), [2.0, 0.6], steps=5, rng=seeds)
    assert np.array_equal(first.xs, second.xs) and seeds.n_children_spawned == 0
    with pytest.raises(ValueError, match="rng must be a non-negative seed"):
        run(EX1, GD(0.1), [2.0, 0.6], steps=1, rng=-1)
    with pytest.raises(TypeError, match="rng must be"):
        run(EX1, GD(0.1), [2.0, 0.6], steps=1, rng="0")


def test_the_supported_range_is_checked_at_the_door():
    from flatref.driver import MAX_STEPS
    from flatref.errors import NonFiniteError

    with pytest.raises(ValueError, match="x0 is beyond flatref's range: its norm must be below 1.3e154"):
        run(LinearRegression.random(3, 5), GD(0.01), np.full(5, 1e300), steps=2)
    with pytest.raises(NonFiniteError, match=r"DiagonalLinearNetwork\.value_and_grad is not finite"):
        run(DLN, GD(0.01), np.full(DLN.dim, 1e80), steps=2)  # a quartic: f(x0) ≈ 1e320, ∇f(x0) ≈ 1e240 still finite
    with pytest.raises(ValueError, match=f"steps must be <= {MAX_STEPS}"):
        run(EX1, GD(0.1), [2.0, 0.6], steps=10**20)


def test_a_run_whose_values_overflow_diverges_without_a_warning():
    # η = 1e300: the first step overflows; the gate ε0 = 1e300 squares to inf without an OverflowError
    for method in (RS(1e300, 0.1, 0.1), RS(0.1, 0.1, 0.1, eps0=1e300)):
        trajectory = run(EX1, method, [2.0, 0.6], steps=5)
        assert np.all(np.isfinite(trajectory.f)) and np.all(np.isfinite(trajectory.xs))
        assert trajectory.status == ("diverged" if method.eta > 1 else "completed")
    # f overflows at an iterate whose gradient is still finite: the step is refused, the record stays finite
    trajectory = run(LinearRegression.random(3, 5, rng=0), GD(1e150), np.ones(5), steps=3, blowup=1e300)
    assert trajectory.status == "diverged" and np.all(np.isfinite(trajectory.f))
