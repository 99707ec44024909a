"""Named setups (``flatref.experiments.registry``) and the recipes of the demo and the figures."""

import numpy as np
import pytest

from flatref import GD, SA, flatness_report
from flatref.experiments.recipes import escape, figure_runs, near_sharp_minimum, standard_methods
from flatref.experiments.registry import CHECKS, RUN_CHOICES, SETUPS, make, network_of_dim
from flatref.problems import DiagonalLinearNetwork, Example1


def test_every_named_setup_builds_and_the_names_used_elsewhere_exist():
    for name in SETUPS:
        problem = make(name, seed=1)
        assert problem.dim >= 2 and SETUPS[name].description
    assert set(RUN_CHOICES) <= set(SETUPS) and set(CHECKS) <= set(SETUPS)
    assert make("network", 3).y.tolist() == DiagonalLinearNetwork.random(10, 20, sparsity=2, rng=3).y.tolist()


def test_bad_names_and_sizes_are_named():
    with pytest.raises(ValueError, match="name must be one of"):
        make("mlp")
    with pytest.raises(ValueError, match="multiple of 8"):
        network_of_dim(20)
    assert (network_of_dim(64).n_samples, network_of_dim(64).dim) == (8, 64)


def test_the_near_sharp_start_is_close_and_its_step_is_one_over_lambda_max():
    problem = make("network")
    start, eta = near_sharp_minimum(problem)
    sharp = problem.sharp_minimum()
    assert 0 < np.linalg.norm(start - sharp) < 1e-2
    assert eta == pytest.approx(1 / np.linalg.eigvalsh(problem.hess(sharp))[-1], rel=1e-12)


def test_escape_takes_sa_to_the_flat_minimum_and_leaves_gd_where_it_was():
    problem = Example1()
    x0 = problem.sharp_minimum()
    flat = flatness_report(problem, escape(problem, SA(0.05, 0.05, 0.3), x0, 1000, rng=0), 0.02, 0.02**0.5)
    assert flat.is_flat and flat.tr_bar_star == pytest.approx(2.0, abs=1e-3)
    assert np.allclose(escape(problem, GD(0.05), x0, 200, rng=0), x0)


def test_figure_runs_do_not_depend_on_the_number_of_workers():
    methods = {name: m for name, m in standard_methods(0.05).items() if name in ("RS", "SA")}
    one = figure_runs("example1", methods, (3.0, 0.34), steps=60, record_every=20, jobs=1)
    two = figure_runs("example1", methods, (3.0, 0.34), steps=60, record_every=20, jobs=2)
    assert list(one) == ["RS", "SA"]
    for name in one:
        assert np.array_equal(one[name].trajectory.xs, two[name].trajectory.xs)
        assert np.array_equal(one[name].path.tr_bar, two[name].path.tr_bar)
        assert one[name].last_limit.success
