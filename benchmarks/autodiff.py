"""What JAX's derivatives cost, in JAX gradients, and how the closed forms compare (flatref.autodiff).

    python benchmarks/autodiff.py            # d = 10³ and 10⁴
    python benchmarks/autodiff.py --quick    # d = 10³ only

For a diagonal network (a JAX twin of DiagonalLinearNetwork, so the closed form is there to compare)
and a tanh network (JAX only), each at d ≈ 10³ and 10⁴, it prints the time of a Hessian-vector
product, a third-derivative contraction, the exact ∇tr∇²f (d contractions in vmapped chunks) and
Hutchinson's estimate of it to 1 % relative standard error, each divided by the time of one JAX
gradient; and the closed-form ∇tr∇²f's time in the same unit. Times are medians of repeats after a
warm-up that compiles; the compile time is printed apart.
"""

import sys
import time

import numpy as np

from flatref.autodiff import JaxTrainingLoss
from flatref.estimators import hutchinson_grad_trace
from flatref.problems import DiagonalLinearNetwork


def seconds(fun, repeats=5):
    fun()  # warm-up (and compile)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fun()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def network_twin(dim):
    problem = DiagonalLinearNetwork.random(dim // 16, dim // 2, rng=0)
    Z, D = problem.Z, problem.n_features
    return problem, JaxTrainingLoss(lambda x: Z @ (x[:D] * x[D:]), problem.y, problem.dim)


def tanh_network(dim, n=50):
    import jax.numpy as jnp

    m = int(np.sqrt(dim))
    h = dim // (m + 1)
    rng = np.random.default_rng(0)
    Z, y = rng.standard_normal((n, m)) / np.sqrt(m), rng.standard_normal(n)

    def outputs(x):
        W, a = x[: h * m].reshape(h, m), x[h * m : h * m + h]
        return jnp.tanh(Z @ W.T) @ a / np.sqrt(h)

    return None, JaxTrainingLoss(outputs, y, h * m + h)


def probes_for_one_percent(problem, x):
    pilot = hutchinson_grad_trace(problem, x, probes=20, rng=0)
    spread = np.linalg.norm(pilot.std_error) * np.sqrt(20)  # per probe
    return max(20, int(np.ceil((spread / (0.01 * np.linalg.norm(pilot.value))) ** 2)))


def row(label, closed, problem):
    d = problem.dim
    x = np.random.default_rng(1).standard_normal(d) * 0.5
    u, v = np.random.default_rng(2).standard_normal((2, d))
    start = time.perf_counter()
    problem.grad_trace_hess(x)
    first = time.perf_counter() - start
    unit = seconds(lambda: problem.unchecked.grad(x), repeats=20)
    probes = probes_for_one_percent(problem, x)
    ratios = [
        seconds(lambda: problem.unchecked.hess_vec(x, u)) / unit,
        seconds(lambda: problem.unchecked.third_contract(x, u, v)) / unit,
        seconds(lambda: problem.unchecked.grad_trace_hess(x), repeats=2) / unit,
        probes * seconds(lambda: problem.unchecked.third_contract(x, u, v)) / unit,
    ]
    exact = f"{seconds(lambda: closed.unchecked.grad_trace_hess(x)) / unit:12.2f}" if closed else f"{'—':>12}"
    print(f"{label:<16}{d:>7}{unit * 1e6:>10.0f}{ratios[0]:>8.1f}{ratios[1]:>9.1f}{ratios[2]:>11.0f}"
          f"{probes:>8}{ratios[3]:>10.0f}{exact}{first:>10.1f}")  # fmt: skip


def main():
    dims = (1000,) if "--quick" in sys.argv else (1000, 10_000)
    print("costs in JAX gradients (one gradient's time in µs); exact ∇tr = d contractions in chunks of 256")
    print(f"{'problem':<16}{'d':>7}{'grad µs':>10}{'HVP':>8}{'∇³f[u,v]':>9}{'exact ∇tr':>11}{'probes':>8}"
          f"{'Hutch 1%':>10}{'closed ∇tr':>12}{'compile s':>10}")  # fmt: skip
    for dim in dims:
        closed, twin = network_twin(dim)
        row("diagonal net", closed, twin)
        row("tanh net", *tanh_network(dim))


if __name__ == "__main__":
    main()
