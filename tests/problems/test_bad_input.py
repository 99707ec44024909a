"""Bad input raises a ValueError/TypeError naming the argument; input arrays are never mutated."""

import numpy as np
import pytest

from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing
from flatref.testing import FAMILIES, small_problem

FAMILY_IDS = [f.__name__ for f in FAMILIES]


@pytest.fixture(params=FAMILIES, ids=FAMILY_IDS)
def problem(request):
    return small_problem(request.param, 0, 1)


@pytest.mark.parametrize("method", ["f", "grad", "hess", "third", "trace_hess", "grad_trace_hess", "outputs"])
def test_points_of_the_wrong_shape_or_with_non_finite_values_are_refused(problem, method):
    fun = getattr(problem, method)
    d = problem.dim
    with pytest.raises(ValueError, match=rf"x must have shape \({d},\), got shape \({d + 1},\)"):
        fun(np.zeros(d + 1))
    with pytest.raises(ValueError, match=r"x must have shape"):
        fun(np.zeros((d, 1)))
    for bad in (np.nan, np.inf):
        x = np.ones(d)
        x[0] = bad
        with pytest.raises(ValueError, match="x contains non-finite values"):
            fun(x)
    with pytest.raises(TypeError, match="x must be a numeric array"):
        fun(["a"] * d)


def test_third_contract_checks_its_directions(problem):
    d = problem.dim
    with pytest.raises(ValueError, match="u must have shape"):
        problem.third_contract(np.ones(d), np.ones(d + 2), np.ones(d))
    with pytest.raises(ValueError, match="v contains non-finite"):
        problem.third_contract(np.ones(d), np.ones(d), np.full(d, np.nan))


def test_hessian_vector_products_check_their_vectors(problem):
    d = problem.dim
    with pytest.raises(ValueError, match=rf"v must have shape \({d},\) or \({d}, k\)"):
        problem.hess_vec(np.ones(d), np.ones(d + 1))
    with pytest.raises(ValueError, match="v must have shape"):
        problem.hess_vec(np.ones(d), np.ones((d, 2, 2)))


def test_sample_indices_are_checked(problem):
    x = np.ones(problem.dim)
    with pytest.raises(ValueError, match=r"idx must lie in \[0, "):
        problem.sample_grad(x, [problem.n_samples])
    with pytest.raises(ValueError, match="idx must lie"):
        problem.sample_grad(x, [-1])
    with pytest.raises(TypeError, match="idx must be a non-empty"):
        problem.sample_grad(x, [])
    with pytest.raises(TypeError, match="idx must be a non-empty"):
        problem.sample_grad(x, [0.5])
    np.testing.assert_array_equal(problem.sample_grad(x, 0), problem.sample_grad(x, [0]))


def test_integer_and_list_points_are_accepted(problem):
    x = [1] * problem.dim
    np.testing.assert_array_equal(problem.grad(x), problem.grad(np.ones(problem.dim)))


@pytest.mark.parametrize("cls", [LinearRegression, DiagonalLinearNetwork], ids=lambda c: c.__name__)
def test_regression_designs_are_checked(cls):
    Z, y = np.ones((2, 3)), np.ones(2)
    with pytest.raises(ValueError, match="Z must be 2-dimensional"):
        cls(np.ones(3), y)
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        cls(Z, np.ones(3))
    with pytest.raises(ValueError, match="overparameterized"):
        cls(np.ones((3, 3)), np.ones(3))
    with pytest.raises(ValueError, match="Z contains non-finite"):
        cls(np.full((2, 3), np.nan), y)
    with pytest.raises(ValueError, match="y contains non-finite"):
        cls(Z, np.array([1.0, np.inf]))
    with pytest.raises(TypeError, match="Z must be real"):
        cls(Z + 1j, y)


def test_random_factories_check_their_sizes():
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        LinearRegression.random(0, 3)
    with pytest.raises(ValueError, match="overparameterized"):
        LinearRegression.random(4, 3)
    with pytest.raises(TypeError, match="dim must be an integer"):
        LinearRegression.random(2, 3.0)
    with pytest.raises(ValueError, match="sparsity must be <= n_features"):
        DiagonalLinearNetwork.random(2, 3, sparsity=4)
    with pytest.raises(ValueError, match="r must be at least true_rank"):
        MatrixSensing.random(4, 1, 2, 5)
    with pytest.raises(ValueError, match="true_rank must be <= n"):
        MatrixSensing.random(2, 3, 3, 5)
    with pytest.raises(TypeError, match="rng must be None, an int seed or a numpy Generator"):
        LinearRegression.random(2, 3, rng="seed")


def test_diagonal_network_ground_truth_shape():
    with pytest.raises(ValueError, match=r"ground_truth must have shape \(3,\)"):
        DiagonalLinearNetwork(np.ones((2, 3)), np.ones(2), ground_truth=np.ones(2))


def test_matrix_sensing_checks_symmetry_shapes_and_rank():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((3, 4, 4))
    A = G + G.transpose(0, 2, 1)
    y = rng.standard_normal(3)
    with pytest.raises(ValueError, match="A must hold symmetric matrices"):
        MatrixSensing(G, y, 2)
    with pytest.raises(ValueError, match=r"A must have shape \(m, n, n\)"):
        MatrixSensing(np.ones((3, 4, 5)), y, 2)
    with pytest.raises(ValueError, match="A must be 3-dimensional"):
        MatrixSensing(np.ones((4, 4)), y, 2)
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        MatrixSensing(A, np.ones(4), 2)
    with pytest.raises(ValueError, match="r must be >= 1"):
        MatrixSensing(A, y, 0)
    with pytest.raises(TypeError, match="r must be an integer"):
        MatrixSensing(A, y, 1.5)
    M = np.diag([1.0, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"r must be at least the rank of M_star \(2\)"):
        MatrixSensing(A, y, 1, M_star=M)
    with pytest.raises(ValueError, match="M_star must be symmetric"):
        MatrixSensing(A, y, 2, M_star=np.triu(np.ones((4, 4))))
    with pytest.raises(ValueError, match="sharp_minimum needs r > rank"):
        MatrixSensing(A, y, 2, M_star=M).sharp_minimum()
    with pytest.raises(ValueError, match="recovery_error needs M_star"):
        MatrixSensing(A, y, 2).recovery_error(np.ones(8))
    # Rounding-level asymmetry is accepted and removed.
    nearly = A.copy()
    nearly[0, 0, 1] += 1e-15
    assert np.array_equal(MatrixSensing(nearly, y, 2).A, MatrixSensing(nearly, y, 2).A.transpose(0, 2, 1))


def test_inputs_are_never_mutated_and_problems_keep_their_own_copies():
    rng = np.random.default_rng(0)
    Z, y = rng.standard_normal((3, 5)), rng.standard_normal(3)
    Z0, y0 = Z.copy(), y.copy()
    problem = DiagonalLinearNetwork(Z, y)
    x = rng.standard_normal(problem.dim)
    x0 = x.copy()
    for method in ("f", "grad", "hess", "third", "trace_hess", "grad_trace_hess"):
        getattr(problem, method)(x)
    problem.third_contract(x, x, x)
    problem.sample_grad(x, [0, 1])
    problem.project_to_minima(x)
    for a, a0 in ((Z, Z0), (y, y0), (x, x0)):
        np.testing.assert_array_equal(a, a0)
    f_before = problem.f(x)
    Z[:] = 0.0  # the caller's array changes; the problem's copy does not
    assert problem.f(x) == f_before
    with pytest.raises(ValueError, match="read-only"):
        problem.y[0] = 1.0


def test_returned_constants_are_fresh_arrays():
    problem = LinearRegression.random(2, 4, rng=0)
    H = problem.hess(np.zeros(4))
    H[:] = 0.0
    assert np.any(problem.hess(np.zeros(4)) != 0.0)


def test_example1_takes_no_arguments_and_has_one_sample():
    problem = Example1()
    assert (problem.dim, problem.n_samples) == (2, 1)
    assert repr(problem) == "Example1()"


# ------------------------------------------------- the range of float64 (issue 11)
# (setup.cfg turns every warning into an error: these also assert that none escapes)
@pytest.mark.parametrize("method, finite", [("f", True), ("grad", True), ("hess", False), ("third", True),
                                            ("trace_hess", False), ("grad_trace_hess", True)])  # fmt: skip
def test_a_derivative_that_overflows_raises_a_named_error_not_inf(method, finite):
    from flatref.errors import NonFiniteError

    x = [2.0**600, 2.0**-600]  # a minimum of Example 1 (x1 x2 = 1) where ∇²f holds x1² = 2^1200; ∇³f only 4 x1
    if finite:
        assert np.all(np.isfinite(getattr(Example1(), method)(x)))
        return
    with pytest.raises(NonFiniteError, match=rf"Example1\.{method} is not finite at this x"):
        getattr(Example1(), method)(x)


def test_every_family_raises_the_named_error_beyond_its_range(problem):
    from flatref.errors import NonFiniteError

    with pytest.raises(NonFiniteError, match="beyond the range of float64"):
        problem.f(np.full(problem.dim, 1e160))  # f grows at least like |x|²: 1e320 is beyond float64


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: LinearRegression(np.eye(2, 4) * 1e300, [1.0, 1.0]), "Z"),
        (lambda: DiagonalLinearNetwork(np.eye(2, 4) * 1e300, [1.0, 1.0]), "Z"),
        (lambda: MatrixSensing(np.ones((2, 2, 2)) * 1e300, [1.0, 1.0], 1), "A"),
        (lambda: MatrixSensing(np.ones((2, 2, 2)), [1e308, 1e308], 1), "y"),
    ],
)
def test_data_whose_cached_constants_overflow_is_refused_at_construction(build, name):
    with pytest.raises(ValueError, match=rf"^{name} is beyond flatref's range"):
        build()
