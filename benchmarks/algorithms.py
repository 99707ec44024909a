"""Cost of one RS and one SA step relative to two gradient evaluations.

An RS step evaluates ``∇f`` at ``x_t`` and at ``x_t + ρu``: two gradients. An SA step
(batch 1) evaluates ``∇f(x_t)``, one output gradient ``∇p_i`` and one per-sample
gradient: a little more than one gradient. The ratio (time per step) / (time of two
``grad`` calls), measured in the same run, shows the overhead of the driver, the random
draws and the projection. Runs record only their first and last iterate here (each
record costs one evaluation of ``f``).

    python benchmarks/algorithms.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flatref import RS, SA, run
from flatref.problems import DiagonalLinearNetwork, MatrixSensing


def per_call(fun, repeat=5):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fun()
        best = min(best, time.perf_counter() - start)
    return best


def ladder(quick):
    for dim in [100, 1000] if quick else [100, 1000, 10000]:
        yield DiagonalLinearNetwork.random(dim // 10, dim // 2, sparsity=3, rng=0)
    for n, r, m in [(10, 10, 20), (50, 20, 40)] if quick else [(10, 10, 20), (50, 20, 40), (200, 50, 40)]:
        yield MatrixSensing.random(n, r, 2, m, rng=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the largest sizes")
    args = parser.parse_args(argv)
    print(f"{'problem':<52}{'dim':>7}{'2 grads [us]':>14}{'RS step':>10}{'SA step':>10}{'RS/2g':>8}{'SA/2g':>8}")
    for problem in ladder(args.quick):
        x = problem.random_minimum(0)
        steps = 200
        two_grads = per_call(lambda: [problem.grad(x) for _ in range(2 * steps)]) / steps
        rs = per_call(lambda: run(problem, RS(1e-3, 1e-3, 1e-2), x, steps=steps, rng=0, record_every=steps)) / steps
        sa = per_call(lambda: run(problem, SA(1e-3, 1e-3, 1e-2), x, steps=steps, rng=0, record_every=steps)) / steps
        print(
            f"{problem!r:<52}{problem.dim:>7}{two_grads * 1e6:>14.1f}{rs * 1e6:>10.1f}{sa * 1e6:>10.1f}"
            f"{rs / two_grads:>8.2f}{sa / two_grads:>8.2f}"
        )


if __name__ == "__main__":
    main()
