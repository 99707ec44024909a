"""Error against Hessian-vector products of Hutchinson and Hutch++ near the minima set of a network.

A diagonal linear network with ``d = 1000`` parameters and ``n = 50`` samples: at a minimum
``∇²f`` has rank ``n`` (eq. (31)), at distance ``1e-3`` from it rank ``d`` with a small tail.
Prints, for a ladder of budgets, the root-mean-square relative error of each estimator over
seeds (against the closed-form ``tr∇²f``), their ratio, and the mean reported standard error
relative to the trace (Hutch++'s covers its stochastic part only). Hutch++ needs ``3n``
products to capture the rank-``n`` part; beyond that its error falls to the tail's.

    python benchmarks/estimators.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flatref.estimators import hutchinson_trace, hutchpp_trace
from flatref.problems import DiagonalLinearNetwork


def errors(estimator, problem, x, trace, probes, seeds):
    """Root-mean-square relative error and mean relative reported error over the seeds."""
    runs = [estimator(problem, x, probes=probes, rng=seed) for seed in range(seeds)]
    rms = np.sqrt(np.mean([(r.value - trace) ** 2 for r in runs])) / trace
    return rms, np.mean([r.std_error for r in runs]) / trace


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and budgets")
    args = parser.parse_args(argv)
    problem = DiagonalLinearNetwork.random(50, 500, sparsity=5, rng=0)
    x_star = problem.random_minimum(1)
    e = np.random.default_rng(2).standard_normal(problem.dim)
    x = x_star + 1e-3 * e / np.linalg.norm(e)
    trace, n = float(problem.trace_hess(x)), problem.n_samples
    seeds = 5 if args.quick else 20
    budgets = [30, 150, 300] if args.quick else [30, 75, 150, 300, 600, 1200]
    print(f"{problem!r} at distance 1e-3 from X*: tr = {trace:.4g}, n = {n}, {seeds} seeds")
    print(f"{'products':>9}{'Hutchinson':>13}{'Hutch++':>11}{'ratio':>10}{'SE Hutch.':>12}{'SE H++':>10}{'time [s]':>10}")
    for probes in budgets:
        start = time.perf_counter()
        rms_plain, se_plain = errors(hutchinson_trace, problem, x, trace, probes, seeds)
        rms_plus, se_plus = errors(hutchpp_trace, problem, x, trace, probes, seeds)
        elapsed = time.perf_counter() - start
        print(f"{probes:>9}{rms_plain:>13.2e}{rms_plus:>11.2e}{rms_plain / rms_plus:>10.3g}"
              f"{se_plain:>12.2e}{se_plus:>10.2e}{elapsed:>10.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
