"""flatref.autodiff: JAX versions of the four families agree with the closed forms, and every flatref function
runs on a JAX model. Skipped without JAX (CI's core environment)."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flatref import (  # noqa: E402
    GD,
    RS,
    SA,
    SAM,
    LabelNoiseSGD,
    flatness_along,
    flatness_report,
    limit_jacobian,
    limit_map,
    run,
    tangent_projector,
)
from flatref.autodiff import JaxProblem, JaxTrainingLoss  # noqa: E402
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing  # noqa: E402
from flatref.testing import check_derivatives, check_lemmas, points, points_near_minima  # noqa: E402


def jax_twin(problem):
    """The same loss written in JAX as a JaxTrainingLoss, from the family's data (kept as NumPy float64 arrays:
    a jnp array made here, outside flatref's float64 context, would be float32)."""
    if isinstance(problem, Example1):
        return JaxTrainingLoss(lambda x: jnp.array([x[0] * x[1]]), problem.y, 2, loss=problem.loss)
    if isinstance(problem, LinearRegression):
        Z = problem.Z
        return JaxTrainingLoss(lambda x: Z @ x, problem.y, problem.dim)
    if isinstance(problem, DiagonalLinearNetwork):
        Z, D = problem.Z, problem.n_features
        return JaxTrainingLoss(lambda x: Z @ (x[:D] * x[D:]), problem.y, problem.dim)
    A, n, r = np.asarray(problem._A), problem.n, problem.r  # noqa: SLF001 (the test reads the data it copies)

    def outputs(x):
        U = x.reshape(n, r)
        return jnp.einsum("mij,ij->m", A, U @ U.T)

    return JaxTrainingLoss(outputs, problem.y, problem.dim)


FAMILIES = [Example1(), LinearRegression.random(3, 6, rng=0), DiagonalLinearNetwork.random(3, 5, rng=0),
            MatrixSensing.random(4, 2, 1, 5, rng=0)]  # fmt: skip
TWINS = [jax_twin(p) for p in FAMILIES]
IDS = [type(p).__name__ for p in FAMILIES]


def _relative(a, b):
    scale = max(float(np.max(np.abs(b))), 1.0)
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale


def _agree(problem, twin, x, u, v):
    V = np.stack([u, v], axis=1)
    pairs = [(twin.f(x), problem.f(x)), (twin.grad(x), problem.grad(x)), (twin.hess_vec(x, V), problem.hess_vec(x, V)),
             (twin.third_contract(x, u, v), problem.third_contract(x, u, v)),
             (twin.trace_hess(x), problem.trace_hess(x)), (twin.grad_trace_hess(x), problem.grad_trace_hess(x))]  # fmt: skip
    return max(_relative(a, b) for a, b in pairs)


@pytest.mark.parametrize("index", range(4), ids=IDS)
@settings(max_examples=15)
@given(data=st.data())
def test_the_jax_twins_agree_with_the_closed_forms(index, data):
    problem, twin = FAMILIES[index], TWINS[index]
    x = data.draw(st.one_of(points(problem), points_near_minima(problem)))
    u, v = (np.asarray(data.draw(points(problem, scale=1.0))) for _ in range(2))
    assert _agree(problem, twin, x, u, v) <= 1e-12  # relative to max(1, |closed form|): rounding only


@pytest.mark.parametrize("index", range(4), ids=IDS)
def test_the_jax_twins_run_the_same_bits_and_have_the_same_limits(index):
    problem, twin = FAMILIES[index], TWINS[index]
    x0 = problem.random_minimum(0) + 0.05
    for method in (GD(0.02), RS(0.02, 0.02, 0.1), SA(0.02, 0.02, 0.1), SAM(0.02, 0.05, batch_size=1),
                   LabelNoiseSGD(0.02, 0.1)):  # fmt: skip
        a, b = run(twin, method, x0, steps=20, rng=0), run(problem, method, x0, steps=20, rng=0)
        assert a.status == b.status == "completed" and np.allclose(a.x_last, b.x_last, rtol=0, atol=1e-12)
    assert np.allclose(limit_map(twin, x0).x, limit_map(problem, x0).x, atol=1e-10)


# ------------------------------------------------------------ a model without a closed form: a tanh network
RNG = np.random.default_rng(13)  # σ(J) at the teacher from 0.91 to 4.2: a well-conditioned flow
Z_NET, TEACHER = RNG.standard_normal((4, 3)), RNG.standard_normal(12)
HIDDEN = 3


def tanh_outputs(x, tanh=jnp.tanh):  # p_i = Σ_j a_j tanh(w_jᵀ z_i), x = (W (3×3), a (3)): d = 12 > n = 4
    W, a = x[:9].reshape(HIDDEN, 3), x[9:]
    return tanh(Z_NET @ W.T) @ a


NET = JaxTrainingLoss(tanh_outputs, tanh_outputs(TEACHER, np.tanh), 12)  # labels from a teacher: X* ∋ TEACHER


def test_a_jax_network_passes_the_derivative_and_lemma_checks():
    assert check_derivatives(NET, RNG.standard_normal(12)).passed
    x_star = NET.project_to_minima(TEACHER + 0.1)  # Gauss–Newton onto p(x) = y
    report = check_lemmas(NET, x_star)
    assert report.passed, str(report)


def test_every_flatref_function_runs_on_a_jax_network():
    x = NET.project_to_minima(TEACHER - 0.1) + 1e-3
    limit = limit_map(NET, x)
    assert limit.success
    assert np.allclose(limit_jacobian(NET, limit.x), tangent_projector(NET, limit.x), atol=1e-6)
    assert flatness_report(NET, x, eps=1e-2, eps_prime=1e-2).limit.success
    trajectory = run(NET, SA(0.05, 0.02, 0.1), x, steps=200, rng=0, record_every=100)
    path = flatness_along(NET, trajectory)
    assert trajectory.status == "completed" and path.success and path.tr_bar[-1] < path.tr_bar[0]


def test_float64_inside_and_nothing_changed_outside():
    assert NET.grad(np.ones(12)).dtype == np.float64
    assert not jax.config.jax_enable_x64 and jnp.ones(2).dtype == jnp.float32  # the user's JAX is untouched


def test_bad_models_are_refused_with_named_errors():
    with pytest.raises(TypeError, match="f must be a callable"):
        JaxProblem(None, 2)
    with pytest.raises(ValueError, match="f must return a scalar"):
        JaxProblem(lambda x: x, 2)
    with pytest.raises(ValueError, match=r"outputs must return shape \(4,\)"):
        JaxTrainingLoss(lambda x: x[:2], np.zeros(4), 12)
    with pytest.raises(TypeError, match="x must be real"):
        NET.f(np.ones(12) + 1j)


def test_without_jax_the_error_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(ImportError, match=r"pip install 'flatref\[jax\]'"):
        JaxProblem(lambda x: x @ x, 2)


def test_the_readme_s_own_model_section_runs_and_prints_what_it_says(capsys):
    from pathlib import Path
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```py\n(.*?)```", readme, flags=re.DOTALL)  # the JAX block (```python blocks need no JAX)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "True True" and out[1] == "[2.46 2.08 1.76]"
