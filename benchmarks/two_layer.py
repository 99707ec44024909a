"""Cost of each TwoLayerNetwork derivative, in units of one gradient, at the digits size.

    python benchmarks/two_layer.py [--n 256 --m 64 --hidden 128 --k 10] [--blas-threads 1]

At ``n = 256`` samples, ``m = 64`` inputs, ``h = 128`` hidden units and ``K = 10`` outputs
(``d = 9,610``) it prints the time of one ``_grad`` call and, for the gradient, a
Hessian-vector product, a third-derivative contraction, ``tr∇²f``, ``∇tr∇²f``, ``value_and_grad``
and a batch-1 sample gradient, the time divided by that of ``_grad``. Each is the private
(unchecked) method, the one inner loops call; the public, checked gradient is shown once for
comparison. Each ratio is the best of 7 loops of about 40 ms over the best of 7 loops of
``_grad``, the two interleaved.

BLAS runs on one thread by default (``--blas-threads 0`` keeps the library's default, which
needs threadpoolctl to change): at these sizes a product such as ``A W1ᵀ`` (256 × 64 × 128) takes
about 0.1 ms on one thread, while OpenBLAS's threads on a busy 2-core machine have made it
10–100 times slower.

The last column counts the minor page faults per call: NumPy's temporaries of ``n × h`` floats
(256 KB here) come from ``malloc``, which hands freed memory back to the system at the end of
each call, so every call faults its working set in again. Where faults are expensive (they cost
about 2 µs each in the sandbox these numbers come from) they dominate the third contraction;
``MALLOC_TRIM_THRESHOLD_=2000000000 MALLOC_MMAP_THRESHOLD_=1000000000`` in the environment
keeps the memory and shows the arithmetic alone.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time

import numpy as np

from flatref.problems import TwoLayerNetwork


def seconds_per_call(fun, budget=0.04):
    """Seconds per call over a loop of about ``budget`` seconds."""
    fun()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        fun()
        calls += 1
    start = time.perf_counter()
    for _ in range(calls):
        fun()
    return (time.perf_counter() - start) / calls


def ratio(fun, base, rounds=7):
    """Time of ``fun`` over time of ``base`` (each the best of ``rounds`` loops, the two interleaved,
    so that a busy machine slows both alike), and the time of ``base``."""
    times = np.array([(seconds_per_call(fun), seconds_per_call(base)) for _ in range(rounds)])
    return times[:, 0].min() / times[:, 1].min(), times[:, 1].min()


def faults_per_call(fun, calls=20):
    """Minor page faults per call (after one warm-up call)."""
    fun()
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fun()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / calls


def blas_threads(n):
    """A context limiting BLAS to ``n`` threads (``n = 0``: leave it alone)."""
    if n == 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--blas-threads", type=int, default=1, help="0: the BLAS library's default")
    args = parser.parse_args(argv)
    with blas_threads(args.blas_threads):
        table(args)


def table(args):
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((args.n, args.m))
    labels = np.eye(args.k)[rng.integers(0, args.k, args.n)]  # one-hot classes
    net = TwoLayerNetwork(inputs, labels, args.hidden)
    x = net.initial_point(rng=1)
    u, v = rng.standard_normal((2, net.dim))
    one = np.array([3])

    def grad():
        return net._grad(x)

    rows = [
        ("_grad", grad),
        ("grad (public, checked)", lambda: net.grad(x)),
        ("hess_vec", lambda: net._hess_vec(x, u)),
        ("third_contract", lambda: net._third_contract(x, u, v)),
        ("trace_hess", lambda: net._trace_hess(x)),
        ("grad_trace_hess", lambda: net._grad_trace_hess(x)),
        ("value_and_grad", lambda: net._value_and_grad(x)),
        ("sample_grad (batch 1)", lambda: net._sample_grad(x, one)),
    ]
    threads = args.blas_threads or "default"
    print(f"TwoLayerNetwork n = {args.n}, m = {args.m}, h = {args.hidden}, K = {args.k}: d = {net.dim:,}"
          f" (BLAS threads: {threads})")
    print(f"{'derivative':<24}{'time / _grad':>14}{'page faults':>13}{'_grad (ms)':>12}")
    for name, fun in rows:
        r, base = ratio(fun, grad)
        print(f"{name:<24}{r:>14.2f}{faults_per_call(fun):>13.0f}{base * 1e3:>12.2f}")


if __name__ == "__main__":
    main()
