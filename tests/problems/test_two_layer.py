"""TwoLayerNetwork: every closed form against independent routes.

Routes: the complex step of the order below (exact to rounding), the generic dense chain rule of
``TrainingLoss`` fed by the dense ``∇p``, ``∇²p``, ``∇³p`` (a twin that overrides nothing else),
the same model written in JAX (``JaxTrainingLoss``), the definitions ``tr∇²f = Σ_i e_iᵀ∇²f e_i``
and ``∇tr∇²f = Σ_i ∇³f[e_i, e_i]`` (eq. (16)), and eq. (31) on the minima. Agreement to 1e-12
relative is rounding: each route sums at most a few hundred terms of similar size.
"""

import numpy as np
import pytest

from flatref.problems import Problem, SquaredLoss, TrainingLoss, TwoLayerNetwork
from flatref.problems import two_layer
from flatref.testing import check_derivatives

N, M, H = 5, 4, 3
STEP = 1e-30  # complex step: Im F(x + i·h·v)/h = DF(x)[v] + O(h²), no cancellation


def make(K, *, weight=2.0, seed=0):
    """A small network with random data; ``K = None`` means labels of shape ``(n,)``."""
    rng = np.random.default_rng(seed)
    labels = rng.standard_normal(N) if K is None else rng.standard_normal((N, K))
    return TwoLayerNetwork(rng.standard_normal((N, M)), labels, H, loss=SquaredLoss(weight))


class GenericTwin(TwoLayerNetwork):
    """The same outputs, every derivative of ``f`` by the base classes' generic dense rules."""

    _f, _grad, _hess, _hess_vec = TrainingLoss._f, TrainingLoss._grad, TrainingLoss._hess, TrainingLoss._hess_vec
    _third, _third_contract, _sample_grad = TrainingLoss._third, TrainingLoss._third_contract, TrainingLoss._sample_grad
    _trace_hess, _grad_trace_hess = Problem._trace_hess, Problem._grad_trace_hess


def twin_of(net):
    return GenericTwin(net.inputs, net.y, net.hidden, loss=net.loss)


def rel(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def point(net, seed=1):
    return np.random.default_rng(seed).standard_normal((3, net.dim))


KS = [None, 1, 3]
K_IDS = ["labels(n,)", "K=1", "K=3"]


# ------------------------------------------------------------------------------ first and second order
@pytest.mark.parametrize("K", KS, ids=K_IDS)
def test_check_derivatives_passes_at_random_points(K):
    net = make(K)
    for seed in (1, 2, 3):
        x = np.random.default_rng(seed).standard_normal(net.dim)
        check = check_derivatives(net, x)
        assert check.passed, str(check)


@pytest.mark.parametrize("K", KS, ids=K_IDS)
def test_the_gradient_and_hvp_are_complex_steps_of_the_order_below(K):
    net = make(K)
    x, u, v = point(net)
    assert rel(net.f(x + 1j * STEP * v).imag / STEP, net.grad(x) @ v) < 1e-12
    assert rel(net.grad(x + 1j * STEP * v).imag / STEP, net.hess_vec(x, v)) < 1e-12
    assert rel(net.hess(x) @ u, net.hess_vec(x, u)) < 1e-12


@pytest.mark.parametrize("K", KS, ids=K_IDS)
def test_first_and_second_order_agree_with_the_generic_chain_rule(K):
    # the twin builds ∇f = (1/n) Jᵀℓ′ and ∇²f = (1/n)[Jᵀ diag(ℓ″) J + Σ ℓ′ ∇²p] from the dense J, ∇²p
    net = make(K)
    twin = twin_of(net)
    x, u, v = point(net)
    V = np.stack([u, v, u - v], axis=1)
    assert rel(net.f(x), twin.f(x)) < 1e-12
    assert rel(net.grad(x), twin.grad(x)) < 1e-12
    assert rel(net.hess_vec(x, V), twin.hess_vec(x, V)) < 1e-12
    assert rel(net.hess(x), twin.hess(x)) < 1e-12
    value, grad = net.value_and_grad(x)
    assert value == net.f(x) and np.array_equal(grad, net.grad(x))


@pytest.mark.parametrize("K", KS, ids=K_IDS)
def test_sample_gradients_agree_with_the_jacobian_route(K):
    net = make(K)
    twin = twin_of(net)
    x = point(net)[0]
    for idx in ([2], [0, 3, 3], np.arange(N)):
        assert rel(net.sample_grad(x, idx), twin.sample_grad(x, idx)) < 1e-12
    noisy = net.y[[1, 4]] + 0.3
    assert rel(net.sample_grad(x, [1, 4], labels=noisy), twin.sample_grad(x, [1, 4], labels=noisy)) < 1e-12
    assert rel(np.mean([net.sample_grad(x, [i]) for i in range(N)], axis=0), net.grad(x)) < 1e-12


def test_hvp_in_column_chunks_equals_one_column_at_a_time(monkeypatch):
    net = make(3)
    x = point(net)[0]
    V = np.random.default_rng(5).standard_normal((net.dim, 7))
    whole = net.hess_vec(x, V)
    monkeypatch.setattr(two_layer, "_CHUNK_ENTRIES", 2 * (N * H + 1))  # two columns per chunk
    chunked = net.hess_vec(x, V)
    assert rel(chunked, whole) < 1e-14
    assert rel(chunked, np.stack([net.hess_vec(x, c) for c in V.T], axis=1)) < 1e-14


def test_outputs_jacobian_and_predict_have_the_documented_shapes():
    net, scalar = make(3), make(None)
    x = point(net)[0]
    assert net.outputs(x).shape == (N, 3) and net.output_jacobian(x, [1, 2]).shape == (2, 3, net.dim)
    assert scalar.outputs(point(scalar)[0]).shape == (N,)
    assert scalar.predict(point(scalar)[0], np.ones((2, M))).shape == (2, 1)  # predict is always (N, K)
    np.testing.assert_array_equal(net.predict(x, net.inputs), net.outputs(x))
    W1, b1, W2, b2 = net.unpack(x)
    expected = np.tanh(net.inputs @ W1.T + b1) @ W2.T + b2
    assert rel(net.outputs(x), expected) < 1e-15
    np.testing.assert_array_equal(net.pack(W1, b1, W2, b2), x)
    J = net.output_jacobian(x, [3])[0]  # rows ∇p_3kᵀ: the complex step of the outputs
    v = point(net)[1]
    assert rel(J @ v, net.outputs(x + 1j * STEP * v, [3])[0].imag / STEP) < 1e-12


def test_initial_point_follows_its_seed_and_scales():
    net = make(3)
    x = net.initial_point(rng=3, scale=0.5)
    np.testing.assert_array_equal(x, net.initial_point(rng=np.random.default_rng(3), scale=0.5))
    W1, b1, W2, b2 = net.unpack(x)
    rng = np.random.default_rng(3)
    np.testing.assert_allclose(W1, rng.standard_normal((H, M)) * 0.5 / np.sqrt(M), rtol=1e-15)
    np.testing.assert_allclose(W2, rng.standard_normal((3, H)) * 0.5 / np.sqrt(H), rtol=1e-15)
    assert not b1.any() and not b2.any()


# ---------------------------------------------------------------------------------------- third order
@pytest.mark.parametrize("K", KS, ids=K_IDS)
def test_third_order_and_trace_gradient_are_complex_steps_of_the_order_below(K):
    net = make(K)
    x, u, v = point(net)
    assert rel(net.hess_vec(x + 1j * STEP * v, u).imag / STEP, net.third_contract(x, u, v)) < 1e-12
    assert rel(net.trace_hess(x + 1j * STEP * v).imag / STEP, net.grad_trace_hess(x) @ v) < 1e-12
    assert rel(net.third_contract(x, u, v), net.third_contract(x, v, u)) < 1e-12  # ∇³f is symmetric


@pytest.mark.parametrize("K", KS, ids=K_IDS)
def test_third_order_agrees_with_the_generic_chain_rule(K):
    net = make(K)
    twin = twin_of(net)
    x, u, v = point(net)
    assert rel(net.third_contract(x, u, v), twin.third_contract(x, u, v)) < 1e-12
    assert rel(net.trace_hess(x), twin.trace_hess(x)) < 1e-12
    assert rel(net.grad_trace_hess(x), twin.grad_trace_hess(x)) < 1e-12
    T = net.third(x)  # the dense tensor from ∇p, ∇²p, ∇³p; contracted, the closed form
    assert rel(np.einsum("kij,i,j->k", T, u, v), net.third_contract(x, u, v)) < 1e-12
    assert rel(T, T.transpose(1, 2, 0)) < 1e-12 and rel(T, T.transpose(0, 2, 1)) < 1e-12


@pytest.mark.parametrize("K", KS, ids=K_IDS)
def test_trace_and_its_gradient_are_sums_over_the_basis(K):
    net = make(K)
    x = point(net)[0]
    eye = np.eye(net.dim)
    assert rel(net.trace_hess(x), np.trace(net.hess_vec(x, eye))) < 1e-12  # Σ_i e_iᵀ∇²f e_i
    assert rel(net.grad_trace_hess(x), sum(net.third_contract(x, e, e) for e in eye)) < 1e-12  # eq. (16)


def test_on_the_minima_the_hessian_is_the_gauss_newton_matrix():
    # eq. (31) with vector outputs: ∇²f = (w/n) JᵀJ on X*; n·K = 15 < d = 27, so X* is a manifold
    net0 = make(3)
    teacher = net0.initial_point(rng=4)
    net = TwoLayerNetwork(net0.inputs, net0.predict(teacher, net0.inputs), H, loss=SquaredLoss(2.0))
    start = teacher + 0.05 * np.random.default_rng(6).standard_normal(net.dim)
    x_star = net.project_to_minima(start)
    assert net.f(x_star) < 1e-25
    J = net.output_jacobian(x_star).reshape(-1, net.dim)
    assert rel(net.hess(x_star), 2.0 / N * J.T @ J) < 1e-10
    assert net.normal_basis(x_star).shape == (net.dim, N * 3)
    assert rel(net.trace_hess(x_star), 2.0 / N * np.sum(J * J)) < 1e-10


def test_dense_output_tensors_refuse_large_sizes():
    big = TwoLayerNetwork(np.ones((2, 100)), np.zeros(2), 20)  # d = 20·101 + 21 = 2041
    x = np.zeros(big.dim)
    with pytest.raises(ValueError, match=r"_output_hessians .*d = 2041"):
        big._output_hessians(x, np.array([0]))
    medium = TwoLayerNetwork(np.ones((1, 60)), np.zeros(1), 6)  # d = 6·61 + 7 = 373, and 373³ > 5·10⁷
    with pytest.raises(ValueError, match=r"_output_thirds .*5.19e\+07 entries \(d = 373\)"):
        medium._output_thirds(np.zeros(medium.dim), np.array([0]))


# -------------------------------------------------------------------------------------------- JAX
@pytest.mark.parametrize("K", KS, ids=K_IDS)
def test_every_derivative_agrees_with_the_jax_twin(K):
    pytest.importorskip("jax")
    import jax.numpy as jnp

    from flatref.autodiff import JaxTrainingLoss

    net = make(K)
    A, h, m, k = np.asarray(net.inputs), H, M, net.n_outputs

    def outputs(x):
        W1, b1 = x[: h * m].reshape(h, m), x[h * m : h * m + h]
        W2, b2 = x[h * m + h : h * m + h + k * h].reshape(k, h), x[h * m + h + k * h :]
        p = jnp.tanh(A @ W1.T + b1) @ W2.T + b2
        return p if K is not None else p[:, 0]

    twin = JaxTrainingLoss(outputs, net.y, net.dim, loss=net.loss)
    x, u, v = point(net)
    V = np.stack([u, v], axis=1)
    for name, args in [("f", ()), ("grad", ()), ("hess_vec", (V,)), ("third_contract", (u, v)),
                       ("trace_hess", ()), ("grad_trace_hess", ()), ("sample_grad", ([0, 2, 2],))]:  # fmt: skip
        assert rel(getattr(net, name)(x, *args), getattr(twin, name)(x, *args)) < 1e-12, name


# -------------------------------------------------------------------------------------- bad input
def test_bad_constructor_arguments_are_named():
    A, y = np.ones((3, 2)), np.zeros((3, 2))
    with pytest.raises(ValueError, match="inputs must be 2-dimensional"):
        TwoLayerNetwork(np.ones(3), y, 2)
    with pytest.raises(ValueError, match="inputs must have at least one sample"):
        TwoLayerNetwork(np.ones((3, 0)), y, 2)
    with pytest.raises(ValueError, match="inputs contains non-finite"):
        TwoLayerNetwork([[1.0, np.nan]] * 3, y, 2)
    with pytest.raises(TypeError, match="inputs must be a numeric array"):
        TwoLayerNetwork([["a", "b"]] * 3, y, 2)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\) or \(3, K\)"):
        TwoLayerNetwork(A, np.zeros(4), 2)
    with pytest.raises(ValueError, match=r"labels must have shape"):
        TwoLayerNetwork(A, np.zeros((3, 2, 1)), 2)
    with pytest.raises(ValueError, match=r"labels must have shape"):
        TwoLayerNetwork(A, np.zeros((3, 0)), 2)
    with pytest.raises(ValueError, match="labels contains non-finite"):
        TwoLayerNetwork(A, [0.0, np.inf, 0.0], 2)
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        TwoLayerNetwork(A, y, 0)
    with pytest.raises(TypeError, match="hidden must be an integer"):
        TwoLayerNetwork(A, y, 2.0)
    with pytest.raises(TypeError, match="loss must be a SquaredLoss"):
        TwoLayerNetwork(A, y, 2, loss="squared")
    with pytest.raises(ValueError, match="inputs is beyond flatref's range"):
        TwoLayerNetwork(np.full((3, 2), 1e200), y, 2)


def test_bad_method_arguments_are_named():
    net = make(3)
    W1, b1, W2, b2 = net.unpack(np.zeros(net.dim))
    with pytest.raises(ValueError, match=r"W1 must have shape \(3, 4\), got shape \(4, 3\)"):
        net.pack(W1.T, b1, W2, b2)
    with pytest.raises(ValueError, match=r"b2 must have shape \(3,\)"):
        net.pack(W1, b1, W2, b2[:2])
    with pytest.raises(ValueError, match="W2 contains non-finite"):
        net.pack(W1, b1, W2 + np.nan, b2)
    with pytest.raises(ValueError, match=r"x must have shape \(27,\)"):
        net.unpack(np.zeros(26))
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, 4\)"):
        net.predict(np.zeros(net.dim), np.ones((2, 3)))
    with pytest.raises(ValueError, match="inputs must be 2-dimensional"):
        net.predict(np.zeros(net.dim), np.ones(4))
    with pytest.raises(ValueError, match=r"x must have shape"):
        net.value_and_grad(np.zeros(28))
    with pytest.raises(ValueError, match="scale must be positive"):
        net.initial_point(scale=0.0)
    with pytest.raises(ValueError, match="rng must be a non-negative seed"):
        net.initial_point(rng=-1)
    with pytest.raises(ValueError, match=r"labels must have shape \(1, 3\)"):
        net.sample_grad(np.zeros(net.dim), [0], labels=[1.0, 2.0])


def test_the_fast_projection_is_the_generic_gauss_newton_where_jjt_is_invertible():
    rng = np.random.default_rng(0)
    problem = TwoLayerNetwork(rng.standard_normal((12, 5)), np.eye(3)[rng.integers(0, 3, 12)], hidden=16)
    x = problem.initial_point(rng=1)
    fast = problem.project_to_minima(x)
    generic = TrainingLoss.project_to_minima(problem, x)
    assert np.abs(problem.outputs(fast) - problem.y).max() < 1e-12
    assert np.linalg.norm(fast - generic) < 1e-8 * np.linalg.norm(fast - x)  # measured 3e-10 (μ, rounding)
