"""limit_map's exponential stage (docs/theory.md §6.1) against exact limits and the solve_ivp path."""

import numpy as np
import pytest

from flatref import Status, limit_map
from flatref.flow import EXPONENTIAL_MAX_OUTPUTS, EXPONENTIAL_MIN_DIM, exponential_flow, linear_part
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing

EX1 = Example1()
TIGHT = {"rtol": 1e-13, "atol": 1e-15, "gtol": 1e-11, "finish_radius": 1e-7, "exponential": False}


def _start(problem, distance, seed=0):
    rng = np.random.default_rng(seed)
    x_star = problem.random_minimum(rng)
    e = rng.standard_normal(problem.dim)
    return x_star + distance * e / np.linalg.norm(e)


def test_the_default_is_the_exponential_stage_for_large_training_losses_only():
    problem = DiagonalLinearNetwork.random(20, EXPONENTIAL_MIN_DIM // 2, rng=0)
    x = _start(problem, 1e-2)
    default, explicit = limit_map(problem, x), limit_map(problem, x, exponential=True)
    assert np.array_equal(default.x, explicit.x) and default.n_grad == explicit.n_grad
    small = LinearRegression.random(5, 12, rng=0)
    x = small.random_minimum(0) + 0.1
    assert np.array_equal(limit_map(small, x).x, limit_map(small, x, exponential=False).x)
    # many outputs: each L would cost an nK × nK Gram matrix, so the default is solve_ivp's path (compared on a
    # short budget: the same iterates, step for step)
    wide = DiagonalLinearNetwork.random(EXPONENTIAL_MAX_OUTPUTS + 1, EXPONENTIAL_MIN_DIM, rng=0)
    x = _start(wide, 1e-2)
    default, explicit = (limit_map(wide, x, max_grad_evals=40, **option) for option in ({}, {"exponential": False}))
    assert default.status == explicit.status == "budget" and np.array_equal(default.x, explicit.x)


def test_the_diagonal_networks_closed_form_is_the_flows_limit():
    problem = DiagonalLinearNetwork.random(5, 12, rng=0)
    for distance in (1e-2, 1.0):
        x = _start(problem, distance)
        exact = problem.exact_limit(x)
        assert np.linalg.norm(limit_map(problem, x, **TIGHT).x - exact) <= 1e-13 * np.linalg.norm(exact)


@pytest.mark.parametrize("distance", [1e-2, 1.0])
def test_the_diagonal_network_limit_is_exact_and_conserves_balances(distance):
    problem = DiagonalLinearNetwork.random(20, 500, rng=0)  # d = 1000
    x = _start(problem, distance)
    lp = limit_map(problem, x)
    exact = problem.exact_limit(x)
    assert lp.status is Status.CONVERGED
    assert np.linalg.norm(lp.x - exact) <= 1e-9 * np.linalg.norm(exact)
    np.testing.assert_allclose(problem.conserved(lp.x), problem.conserved(x), rtol=0, atol=1e-9)  # u² − v² (§5)
    assert lp.n_grad <= (100 if distance < 0.1 else 1000)  # no Hessian-vector products: gradients are the count
    assert lp.n_grad < limit_map(problem, x, exponential=False).n_grad * (0.5 if distance < 0.1 else 1.0)


def test_matrix_sensing_and_linear_regression_match_their_references():
    sensing = MatrixSensing.random(20, 4, 2, 40, rng=0)
    x = _start(sensing, 1e-2)
    lp = limit_map(sensing, x, exponential=True)
    assert lp.status is Status.CONVERGED
    assert np.linalg.norm(lp.x - limit_map(sensing, x, **TIGHT).x) <= 1e-9 * np.linalg.norm(lp.x)
    regression = LinearRegression.random(30, 120, rng=0)  # Φ in closed form
    x = regression.random_minimum(1) + 0.3
    np.testing.assert_allclose(limit_map(regression, x, exponential=True).x, regression.exact_limit(x), atol=1e-10)


def test_example1_keeps_its_conserved_quantity_and_its_saddle():
    for x in ([2.0, 0.1], [0.5, 3.0], [1e6, 1.01e-6]):  # the last: normal rate 2e12, explicit methods blow up
        lp = limit_map(EX1, x, exponential=True)
        assert lp.status is Status.CONVERGED
        assert np.allclose(lp.x, EX1.exact_limit(x), rtol=1e-9, atol=1e-12)
    saddle = limit_map(EX1, [1.0, -1.0], exponential=True)
    assert saddle.status is Status.SADDLE and saddle.min_eigenvalue < 0


def test_failures_fall_back_to_solve_ivp_and_keep_their_statuses():
    problem = DiagonalLinearNetwork.random(20, 500, rng=0)
    x = _start(problem, 1.0)
    budget = limit_map(problem, x, max_grad_evals=30)
    assert budget.status is Status.BUDGET and budget.n_grad <= 30
    assert limit_map(problem, x, max_time=1.0).status is Status.MAX_TIME


def test_exponential_must_be_a_bool_or_none():
    with pytest.raises(TypeError, match="exponential"):
        limit_map(EX1, [2.0, 0.1], exponential="yes")


def test_exponential_flow_names_bad_arguments():
    linear = linear_part(EX1, [2.0, 0.5])
    for bad in (-1.0, 0.0, float("nan")):
        with pytest.raises(ValueError, match="first_step must be positive"):
            exponential_flow(EX1, [2.0, 0.6], linear, first_step=bad)
    with pytest.raises(TypeError, match="linear must be a LinearPart"):
        exponential_flow(EX1, [2.0, 0.6], None)
