"""What one step of ``run`` costs against its floor, two unchecked gradient calls (issue 12's target 1).

An RS step needs ``∇f(x_t + ρu)`` and ``∇f(x_{t+1})``; an SA step (batch 1) needs ``∇f(x_{t+1})``, one
sample's output gradient and one sample gradient, less than two. Each run uses ``run``'s *default*
recording (every iterate, with ``f`` and ``‖∇f‖``), and with ``record_every=100``. The ratio is the time per step over the time of
two ``problem.unchecked.grad`` calls, both the best of several interleaved repeats in one process, so
a busy machine slows both alike. ``--blas-threads`` pins BLAS (default 1: the gradients here are
small matrix–vector products, which threads only slow down).

    python benchmarks/driver.py [--steps N] [--repeat R] [--blas-threads K]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flatref import RS, SA, run
from flatref.problems import DiagonalLinearNetwork, MatrixSensing


def problems():
    yield "DLN Z 10×50", DiagonalLinearNetwork.random(10, 50, rng=0)  # d = 100
    yield "DLN Z 100×500", DiagonalLinearNetwork.random(100, 500, rng=0)  # d = 1000
    yield "DLN Z 40×2000", DiagonalLinearNetwork.random(40, 2000, rng=0)  # d = 4000
    yield "DLN Z 1250×5000", DiagonalLinearNetwork.random(1250, 5000, rng=0)  # d = 10⁴
    yield "sensing n 100, r 10, m 400", MatrixSensing.random(100, 10, 2, 400, rng=0)  # d = 1000


def best(fun, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fun()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.blas_threads):
        print(f"{'problem':<28}{'d':>7}{'2 grads µs':>12}{'RS µs':>9}{'SA µs':>9}{'RS/2g':>8}{'SA/2g':>8}"
              f"{'RS/2g, rec 100':>16}{'SA/2g, rec 100':>16}")  # fmt: skip
        for name, problem in problems():
            x = problem.random_minimum(0)
            grad, steps = problem.unchecked.grad, args.steps
            two, rs, sa, rs100, sa100 = np.inf, np.inf, np.inf, np.inf, np.inf
            for _ in range(args.repeat):  # interleaved: each repeat times all five
                two = min(two, best(lambda: [grad(x) for _ in range(2 * steps)], 1) / steps)
                rs = min(rs, best(lambda: run(problem, RS(1e-3, 1e-3, 1e-2), x, steps=steps, rng=0), 1) / steps)
                sa = min(sa, best(lambda: run(problem, SA(1e-3, 1e-3, 1e-2), x, steps=steps, rng=0), 1) / steps)
                rs100 = min(rs100, best(lambda: run(problem, RS(1e-3, 1e-3, 1e-2), x, steps=steps, rng=0,
                                                    record_every=100), 1) / steps)  # fmt: skip
                sa100 = min(sa100, best(lambda: run(problem, SA(1e-3, 1e-3, 1e-2), x, steps=steps, rng=0,
                                                    record_every=100), 1) / steps)  # fmt: skip
            print(f"{name:<28}{problem.dim:>7}{two * 1e6:>12.1f}{rs * 1e6:>9.1f}{sa * 1e6:>9.1f}"
                  f"{rs / two:>8.2f}{sa / two:>8.2f}{rs100 / two:>16.2f}{sa100 / two:>16.2f}")  # fmt: skip
    pages = np.empty(2**21)  # 16 MB: what touching fresh memory costs here (every recorded iterate is fresh memory)
    start = time.perf_counter()
    pages[:] = 1.0
    print(f"first touch of fresh memory: {(time.perf_counter() - start) / (pages.nbytes / 4096) * 1e6:.2f} µs per 4 KB page")


if __name__ == "__main__":
    main()
