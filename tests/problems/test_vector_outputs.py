"""Setting 1 with K outputs per sample (docs/theory.md §4.6).

A model with ``K`` outputs per sample is, row by row, a scalar model with ``nK`` samples: the
loss sums over the ``nK`` rows and divides by ``n``, so every derivative is ``K`` times the scalar
twin's. That twin is the independent route for the chain rule; SA's direction is checked by its
second moment, and Lemma 4's factor ``d/K`` by ``check_lemmas``'s exact design.
"""

import numpy as np
import pytest

from flatref import GD, SA, SAM, LabelNoiseSGD, run
from flatref.algorithms import _row_space_direction
from flatref.problems import TrainingLoss
from flatref.testing import check_derivatives, check_lemmas
from flatref.theory import flow_time_per_step


class QuadraticOutputs(TrainingLoss):
    """``p_r(x) = a_rᵀx + xᵀS_r x/2`` for each row ``r``; labels ``(n, K)`` or, for the twin, the ``nK`` rows."""

    quadratic_outputs = True

    def __init__(self, a, S, y):
        super().__init__(a.shape[1], y)
        self.a, self.S = a, S

    def _select(self, idx):
        return slice(None) if isinstance(idx, slice) else self._rows(np.asarray(idx))

    def _outputs(self, x, idx=slice(None)):
        rows = self._select(idx)
        return self.a[rows] @ x + 0.5 * np.einsum("rab,a,b->r", self.S[rows], x, x)

    def _output_jacobian(self, x, idx=slice(None)):
        rows = self._select(idx)
        return self.a[rows] + self.S[rows] @ x

    def _output_hessians(self, x, idx=slice(None)):
        return self.S[self._select(idx)]


N, K, D = 3, 2, 8


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((N * K, D))
    S = rng.standard_normal((N * K, D, D))
    S = (S + S.transpose(0, 2, 1)) / 2
    y = rng.standard_normal((N, K))
    return QuadraticOutputs(a, S, y), QuadraticOutputs(a, S, y.ravel())


@pytest.fixture(scope="module")
def minimum(pair):
    vector, _ = pair
    return vector.project_to_minima(np.random.default_rng(0).standard_normal(D) * 0.1)


def test_shapes_and_labels(pair):
    vector, scalar = pair
    x = np.linspace(-1, 1, D)
    assert (vector.n_samples, vector.n_outputs, scalar.n_samples, scalar.n_outputs) == (N, K, N * K, 1)
    assert vector.y.shape == (N, K) and not vector.y.flags.writeable
    assert vector.outputs(x).shape == (N, K) and vector.outputs(x, [2, 0]).shape == (2, K)
    assert vector.output_jacobian(x, [1]).shape == (1, K, D)
    np.testing.assert_array_equal(vector.outputs(x, [2]).ravel(), scalar.outputs(x, [4, 5]))  # row iK + k
    np.testing.assert_array_equal(vector.output_jacobian(x).reshape(-1, D), scalar.output_jacobian(x))
    with pytest.raises(ValueError, match=r"labels must have shape \(1, 2\)"):
        vector.sample_grad(x, [0], labels=[1.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        QuadraticOutputs(np.ones((2, 3)), np.ones((2, 3, 3)), np.ones((1, 1, 2)))


def test_every_derivative_is_k_times_the_row_twins(pair):
    # f = (1/n) Σ_rows ℓ = K · (1/(nK)) Σ_rows ℓ; rounding only (relative 1e-12)
    vector, scalar = pair
    rng = np.random.default_rng(1)
    x, u, v = rng.standard_normal((3, D))
    for name, args in [("f", ()), ("grad", ()), ("hess", ()), ("hess_vec", (u,)), ("third_contract", (u, v)),
                       ("trace_hess", ()), ("grad_trace_hess", ())]:  # fmt: skip
        np.testing.assert_allclose(getattr(vector, name)(x, *args), K * getattr(scalar, name)(x, *args),
                                   rtol=1e-12, atol=1e-12, err_msg=name)  # fmt: skip


def test_a_sample_gradient_sums_the_sample_s_outputs(pair):
    vector, scalar = pair
    x = np.linspace(-1, 1, D)
    np.testing.assert_allclose(vector.sample_grad(x, [1]), K * scalar.sample_grad(x, [2, 3]), rtol=1e-12)
    parts = [vector.sample_grad(x, [i]) for i in range(N)]
    np.testing.assert_allclose(np.mean(parts, axis=0), vector.grad(x), rtol=1e-12)
    noisy = vector.y[[1]] + 0.5
    np.testing.assert_allclose(vector.sample_grad(x, [1], labels=noisy),
                               K * scalar.sample_grad(x, [2, 3], labels=noisy.ravel()), rtol=1e-12)  # fmt: skip


def test_derivatives_pass_the_independent_checks(pair):
    vector, _ = pair
    assert check_derivatives(vector, np.linspace(-0.5, 0.5, D)).passed


def test_sa_direction_is_uniform_on_the_sample_s_row_space(pair):
    # E uuᵀ = Π_i / K for u uniform on the unit sphere of row(J_i); entries of uuᵀ lie in [−1, 1],
    # so the mean of 20,000 draws is within 5/√20000 = 0.035 of it, well beyond any chance miss
    vector, _ = pair
    x = np.linspace(-1, 1, D)
    J = vector.output_jacobian(x, [1])[0]
    rng = np.random.default_rng(0)
    u = np.array([SA(0.1, 0.1, 0.1).direction(vector, x, np.array([1]), rng) for _ in range(20000)])
    projector = J.T @ np.linalg.solve(J @ J.T, J)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(u @ projector, u, atol=1e-12)  # in the row space
    assert np.max(np.abs(u.T @ u / len(u) - projector / K)) < 0.035
    assert np.all(_row_space_direction(np.zeros((K, D)), rng) == 0)  # no row space: Remark 2's fallback takes over


def test_lemma_4_factor_is_d_over_k(pair, minimum):
    vector, _ = pair
    report = check_lemmas(vector, minimum)
    lemma4 = next(c for c in report.checks if c.name == "Lemma 4")
    assert lemma4.passed and lemma4.error < 1e-3, report
    assert report.passed, report


def test_flow_times_and_label_noise_on_vector_outputs(pair, minimum):
    vector, _ = pair
    assert flow_time_per_step(SA(0.1, 0.02, 0.5), vector) == pytest.approx(D * 0.02 * 0.25 / (2 * K), rel=1e-15)
    assert flow_time_per_step(LabelNoiseSGD(0.1, 0.3), vector) == pytest.approx(D * (0.1 * 0.3) ** 2 / 4, rel=1e-12)
    with pytest.raises(ValueError, match="one output per sample"):
        flow_time_per_step(SAM(0.1, 0.1, batch_size=1), vector)
    noise = LabelNoiseSGD(0.05, 0.3, batch_size=2).draw(vector, np.random.default_rng(0), 5)
    assert noise[1].shape == (5, 2 * K)  # one label noise per output
    quiet = run(vector, LabelNoiseSGD(0.01, 0.0, batch_size=N), minimum + 0.01, steps=20).x_last
    np.testing.assert_allclose(quiet, run(vector, GD(0.01), minimum + 0.01, steps=20).x_last, rtol=1e-12)
    assert run(vector, SA(0.01, 0.01, 0.1), minimum, steps=50, rng=0).status == "completed"
