"""Cost of the closed-form ``∇ tr∇²f`` relative to one gradient, per family and size.

Prints, for a ladder of sizes up to ``dim ≈ 10⁴``, the time of ``grad_trace_hess``
divided by the time of ``grad`` (both measured here, in the same run), and the peak
memory ``grad_trace_hess`` allocates (``tracemalloc``), in units of one ``d``-vector:
it stays a small multiple of the data, never ``d³``.

    python benchmarks/derivatives.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing


def seconds_per_call(fun, x, budget=0.2):
    """Best of 5 repetitions of a loop that lasts about ``budget / 5`` seconds."""
    fun(x)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget / 5:
        fun(x)
        calls += 1
    best = np.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fun(x)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def peak_vectors(fun, x):
    """Peak memory of one call, in units of ``x.nbytes``."""
    tracemalloc.start()
    fun(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / x.nbytes


def ladder(quick):
    yield "Example1", Example1()
    sizes = [100, 1000] if quick else [100, 1000, 10000]
    for D in sizes:
        yield "LinearRegression", LinearRegression.random(D // 10, D, rng=0)
    for D in [s // 2 for s in sizes]:
        yield "DiagonalLinearNetwork", DiagonalLinearNetwork.random(D // 5, D, sparsity=5, rng=0)
    for n, r, m in [(20, 5, 20), (100, 10, 40), (500, 20, 40)][: len(sizes)]:
        yield "MatrixSensing", MatrixSensing.random(n, r, 2, m, rng=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the largest size")
    args = parser.parse_args(argv)
    print(f"{'family':<22}{'dim':>7}{'n':>6}{'grad [us]':>12}{'grad_tr [us]':>14}{'ratio':>8}{'peak/d':>9}")
    for name, problem in ladder(args.quick):
        x = np.random.default_rng(1).standard_normal(problem.dim)
        t_grad = seconds_per_call(problem.grad, x)
        t_trace = seconds_per_call(problem.grad_trace_hess, x)
        peak = peak_vectors(problem.grad_trace_hess, x)
        print(
            f"{name:<22}{problem.dim:>7}{problem.n_samples:>6}{t_grad * 1e6:>12.1f}"
            f"{t_trace * 1e6:>14.1f}{t_trace / t_grad:>8.2f}{peak:>9.1f}"
        )


if __name__ == "__main__":
    main()
