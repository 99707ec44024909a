"""Extreme Hessian eigenvalues by each route: time, Hessian-vector products and error against dense ``eigvalsh``.

    python benchmarks/spectrum.py [--repeat 3] [--blas-threads 1]

Cases: a diagonal network at a minimum (``d = 4000``, ``n = 200``: ``λ_min`` in a cluster of 3800 zeros),
matrix sensing at a minimum (``d = 1000``, ``m = 400``: a product costs about a gradient, 2–4 ms), and a
quadratic with one eigenvalue ``−0.3`` next to 1900 zeros and 50 in ``[0.5, 3]`` (``d = 1951``, the test of
``tests/test_spectrum.py``). Routes:

- ``dense``: ``eigvalsh(∇²f)``, the reference (the Hessian formed, ``O(d³)``);
- ``lanczos-60`` (before): the hand-written Lanczos with full reorthogonalization, 60 steps, both ends from
  one Krylov space, no convergence test (copied here from the old ``flatref/spectrum.py``);
- ``flatref`` (after): :func:`flatref.spectrum.top_eigenvalue_step` for ``λ_max`` and
  :func:`~flatref.spectrum.extreme_eigenvalues` for both (ARPACK on ``H``, then on ``λ_max I − H``);
- ``eigsh SA``: ARPACK's ``which="SA"`` on ``H`` itself, the route the old module found not to converge;
- ``lobpcg``: block size 1, ``tol = 1e-9``.

Times are the best of ``--repeat`` interleaved runs in one process; ``λ_min`` is given with the cost of both
ends where a route cannot compute it alone. ``--crossover`` then times both ends by ``eigvalsh`` of the dense
Hessian and by ARPACK (``extreme_eigenvalues`` with ``dense_max_dim`` forcing each route) on networks and sensing
problems from ``d = 50`` to 1500: where they cross sets :data:`flatref.spectrum.SPECTRUM_DENSE_MAX_DIM`.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh, lobpcg

from flatref.problems import DiagonalLinearNetwork, MatrixSensing, Problem
from flatref.spectrum import extreme_eigenvalues, top_eigenvalue_step


class Dense(Problem):
    """``f = xᵀHx/2`` with a given dense ``H``."""

    def __init__(self, H):
        super().__init__(H.shape[0])
        self.H = H

    def _f(self, x):
        return x @ self.H @ x / 2

    def _grad(self, x):
        return self.H @ x

    def _hess(self, x):
        return self.H

    def _third_contract(self, x, u, v):
        return np.zeros(self.dim)


def cases():
    net = DiagonalLinearNetwork.random(200, 2000, rng=0)
    yield "network d=4000 at a minimum", net, net.random_minimum(0)
    sensing = MatrixSensing.random(100, 10, 2, 400, rng=0)
    yield "sensing d=1000 at a minimum", sensing, sensing.random_minimum(0)
    rng = np.random.default_rng(0)
    lam = np.concatenate([[-0.3], np.zeros(1900), rng.uniform(0.5, 3.0, 50)])
    Q, _ = np.linalg.qr(rng.standard_normal((lam.size, lam.size)))
    problem = Dense((Q * lam) @ Q.T)
    yield "−0.3 next to 1900 zeros, d=1951", problem, np.zeros(problem.dim)


class Counted:
    """``problem.unchecked.hess_vec`` with a count of the vectors it multiplies."""

    def __init__(self, problem):
        self.problem, self.hess_vec, self.count = problem, problem.unchecked.hess_vec, 0
        problem.unchecked.hess_vec = self

    def __call__(self, x, v):
        self.count += 1 if v.ndim == 1 else v.shape[1]
        return self.hess_vec(x, v)


def old_lanczos(matvec, d, steps, *, breakdown=1e-8, rng=0):
    """The hand-written Lanczos that flatref used before (full reorthogonalization, twice; fixed steps)."""
    Q = np.zeros((d, steps))
    q = np.random.default_rng(rng).standard_normal(d)
    Q[:, 0] = q / np.linalg.norm(q)
    alpha, beta = np.zeros(steps), np.zeros(steps)
    for j in range(steps):
        w = matvec(Q[:, j])
        size = np.linalg.norm(w)
        alpha[j] = Q[:, j] @ w
        for _ in range(2):
            w = w - Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        if j + 1 == steps or beta[j] <= breakdown * max(size, np.finfo(float).tiny):
            break
        Q[:, j + 1] = w / beta[j]
    k = j + 1
    T = np.diag(alpha[:k]) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    return np.linalg.eigvalsh(T)


def routes(problem, x, counted):
    d, hv = problem.dim, lambda v: counted(x, v)
    operator = LinearOperator((d, d), matvec=hv, matmat=hv, dtype=float)
    start = np.random.default_rng(0).standard_normal((d, 1))

    def lanczos():
        ritz = old_lanczos(hv, d, 60)
        return ritz[0], ritz[-1]

    def eigsh_sa():
        try:
            return eigsh(operator, k=1, which="SA", v0=start[:, 0], tol=1e-10, maxiter=300)[0][0], np.nan
        except ArpackNoConvergence:
            return np.nan, np.nan

    return {
        "lanczos-60 (before)": (lanczos, lanczos),
        "flatref (ARPACK)": (lambda: (np.nan, 1 / top_eigenvalue_step(problem, x)),
                             lambda: extreme_eigenvalues(problem, x)),
        "eigsh SA on H": (None, eigsh_sa),
        "lobpcg": (lambda: (np.nan, lobpcg(operator, start, largest=True, tol=1e-9, maxiter=500)[0][0]),
                   lambda: (lobpcg(operator, start, largest=False, tol=1e-9, maxiter=500)[0][0], np.nan)),
    }  # fmt: skip


def measure(fun, counted, repeat):
    best, out, products = np.inf, None, 0
    for _ in range(repeat):
        counted.count = 0
        start = time.perf_counter()
        out = fun()
        best = min(best, time.perf_counter() - start)
        products = counted.count
    return best, out, products


def crossover(repeat):
    print(f"\n{'d':>6}{'network dense':>15}{'ARPACK':>9}{'sensing dense':>15}{'ARPACK':>9}   (seconds, both ends)")
    for d in (50, 100, 200, 300, 400, 600, 1000, 1500):
        r = max(2, d // 100)
        network = DiagonalLinearNetwork.random(max(2, d // 10), d // 2, rng=0)
        sensing = MatrixSensing.random(d // r, r, 1, max(2, d // 3), rng=0)
        cells = []
        for problem in (network, sensing):
            x = problem.random_minimum(0)
            for dense_max_dim in (problem.dim, 1):
                cells.append(min(measure(lambda: extreme_eigenvalues(problem, x, dense_max_dim=dense_max_dim),
                                         Counted(problem), 1)[0] for _ in range(repeat)))  # fmt: skip
        print(f"{d:>6}{cells[0]:>15.4f}{cells[1]:>9.4f}{cells[2]:>15.4f}{cells[3]:>9.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--crossover", action="store_true", help="also time dense against ARPACK across d")
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")  # lobpcg warns when it stops at maxiter; the error column shows it
    with threadpool_limits(args.blas_threads):
        for name, problem, x in cases():
            counted = Counted(problem)
            seconds, lam, _ = measure(lambda: np.linalg.eigvalsh(problem.hess(x)), counted, 1)
            print(f"\n{name}: dense eigvalsh {seconds:.3f} s, λ_min = {lam[0]:.3g}, λ_max = {lam[-1]:.6g}")
            print(f"  {'route':<22}{'λ_max s':>9}{'HVPs':>6}{'error':>10}   {'λ_min s':>9}{'HVPs':>6}{'error':>10}")
            for route, (top, both) in routes(problem, x, counted).items():
                cells = []
                for fun, index in ((top, 1), (both, 0)):
                    if fun is None:
                        cells.append(f"{'—':>9}{'':>6}{'':>10}")
                        continue
                    seconds, out, products = measure(fun, counted, args.repeat)
                    error = out[index] - lam[-1 if index else 0]
                    cells.append(f"{seconds:>9.4f}{products:>6}{error:>10.1e}")
                print(f"  {route:<22}{cells[0]}   {cells[1]}")
            print("  (lanczos-60 gives both ends from one run; flatref's λ_min column is the cost of both ends;"
                  " a NaN error: no convergence)")
        if args.crossover:
            crossover(args.repeat)


if __name__ == "__main__":
    main()
