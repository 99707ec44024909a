"""Cost and accuracy of the limit map Φ, per family, distance to the minima set and solver.

For each family, a point ``x*`` of the minima set is moved a distance ``dist`` (1e-3,
1e-2, 0.3) along a random direction; ``Φ`` is computed by each solver choice and
compared with a reference (``exact_limit``: the closed forms of Example 1, linear regression
and the diagonal network; otherwise DOP853 at ``rtol = 1e-13`` run to ``‖∇f‖ ≤ 1e-11`` and finished, without the
exponential stage). Cost is reported in gradient evaluations, in seconds, and in
gradient-equivalents: the time of Φ divided by the time of one ``grad`` call measured in
the same run.

``--issue12``: issue 12's sizes (DLN d = 4000 with n = 40 and 400, matrix sensing d = 1000)
from distances 1e-2 and 1, before (``exponential=False``: DOP853 and the finish) and after
(the default: the exponential stage, docs/theory.md §6.1), with ``n_hess`` (Hessian-type
evaluations: one per linear part ``L`` built, each an output Jacobian and a QR factorization,
and one per finish attempt), the counted gradient-equivalents (gradients plus Hessian-vector
products; neither path uses Hessian-vector products), the time in gradients, and the error
absolute and relative to ``‖Φ‖``.

    python benchmarks/limit_map.py [--quick] [--issue12]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flatref.flow import limit_map
from flatref.problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing

#: The default runs the exponential stage for training losses with d >= 1000 (docs/theory.md §6.1); the other rows
#: are solve_ivp's methods alone (``exponential=False``).
_ALONE = {"exponential": False}
SOLVERS = {
    "default": {},
    "DOP853 + finish": _ALONE,
    "DOP853 rtol 1e-7 + finish": {"rtol": 1e-7, "atol": 1e-10, **_ALONE},
    "DOP853 gtol 1e-5 + finish": {"gtol": 1e-5, **_ALONE},
    "RK45 + finish": {"method": "RK45", **_ALONE},
    "Radau (exact Hessian) + finish": {"method": "Radau", **_ALONE},
    "DOP853, no finish, gtol 1e-8": {"finish": False, "gtol": 1e-8, **_ALONE},
}


def seconds(fun, *args, repeat=3):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        out = fun(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


ISSUE12_SOLVERS = {
    "before (exponential=False)": {"exponential": False},
    "after (default: exponential stage)": {},
}


def reference(problem, x0):
    try:
        return problem.exact_limit(x0)
    except NotImplementedError:
        return limit_map(problem, x0, rtol=1e-13, atol=1e-15, gtol=1e-11, finish_radius=1e-7, exponential=False).x


def families(quick, issue12=False):
    if issue12:  # the sizes of issue 12's target: DLN d = 4000 (n = 40 and 400), matrix sensing d = 1000
        yield DiagonalLinearNetwork.random(40, 2000, rng=0)
        yield DiagonalLinearNetwork.random(400, 2000, rng=0)
        yield MatrixSensing.random(100, 10, 2, 400, rng=0)
        return
    yield Example1()
    yield LinearRegression.random(50, 200, rng=0)
    yield DiagonalLinearNetwork.random(50, 500 if quick else 1000, sparsity=3, rng=0)
    yield MatrixSensing.random(20 if quick else 40, 5, 2, 30 if quick else 60, rng=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems, fewer solvers")
    parser.add_argument("--issue12", action="store_true", help="issue 12's sizes, the default solver only")
    args = parser.parse_args(argv)
    if args.issue12:
        return issue12()
    solvers = dict(list(SOLVERS.items())[:2]) if args.quick else SOLVERS
    print(f"{'problem':<48}{'dist':>7}  {'solver':<32}{'n_grad':>7}{'seconds':>10}{'grad-eq':>9}{'error':>10}  status")
    for problem in families(args.quick):
        rng = np.random.default_rng(0)
        x_star = problem.random_minimum(rng)
        t_grad = seconds(lambda: [problem.grad(x_star) for _ in range(100)], repeat=5)[0] / 100
        for dist in (1e-3, 1e-2, 0.3):
            e = rng.standard_normal(problem.dim)
            x0 = x_star + dist * e / np.linalg.norm(e)
            ref = reference(problem, x0)
            for name, options in solvers.items():
                if options.get("method") == "Radau" and problem.dim > 500:
                    continue
                t, lp = seconds(lambda: limit_map(problem, x0, **options))
                err = np.linalg.norm(lp.x - ref)
                print(
                    f"{problem!r:<48}{dist:>7.0e}  {name:<32}{lp.n_grad:>7}{t:>10.4f}"
                    f"{t / t_grad:>9.0f}{err:>10.1e}  {lp.status}"
                )


def issue12():
    """Before and after on issue 12's problems, from distances 1e-2 and 1, with counted and timed costs."""
    print(f"{'problem':<48}{'dist':>6}  {'path':<36}{'n_grad':>7}{'n_hess':>7}{'counted':>8}{'time/grad':>10}"
          f"{'error':>9}{'rel.':>9}  status")  # fmt: skip
    for problem in families(False, True):
        rng = np.random.default_rng(0)
        x_star = problem.random_minimum(rng)
        t_grad = seconds(lambda: [problem.unchecked.grad(x_star) for _ in range(100)], repeat=5)[0] / 100
        for dist in (1e-2, 1.0):
            e = rng.standard_normal(problem.dim)
            x0 = x_star + dist * e / np.linalg.norm(e)
            ref = reference(problem, x0)
            for name, options in ISSUE12_SOLVERS.items():
                t, lp = seconds(lambda: limit_map(problem, x0, **options))
                err = np.linalg.norm(lp.x - ref)
                print(f"{problem!r:<48}{dist:>6.0e}  {name:<36}{lp.n_grad:>7}{lp.n_hess:>7}{lp.n_grad:>8}"
                      f"{t / t_grad:>10.0f}{err:>9.1e}{err / np.linalg.norm(ref):>9.1e}  {lp.status}")  # fmt: skip


if __name__ == "__main__":
    main()
