"""tr̄(Φ(x_t)) and the metric along an SA run: seconds and gradient-equivalents per recorded point, before and after.

    python benchmarks/flatness_along.py [--cases dln1000,sensing1000,dln10000] [--steps 10000] [--quick]

Each case runs SA from next to the problem's sharp minimum (``recipes.near_sharp_minimum``: ``η = 1/λ_max``
there) for ``--steps`` steps with ``run``'s default recording, every iterate (``record_every = 1``: 10⁴ steps
give 10,001 points); the ``d = 10⁴`` case records every 10th (1,001 points). Then, per recorded point:

- ``before``: the code path flatness_along had before issue 12, run here as it was: ``limit_map`` from each
  point without its exponential stage (``exponential=False``, as then), the trace, and the metric through the
  SVD of the output Jacobian (``project_tangent``);
- ``cold``: ``flatness_along(..., warm=False)``, the same limits with the metric by the Gram solve;
- ``warm``: ``flatness_along(...)`` on a window of consecutive points (the first of which is cold);
- ``projection``: the Gauss-Newton projection of each point in place of Φ, the trace and the metric there: what a
  method without a flow would cost, and its error (it is *not* Φ: docs/theory.md §6.3). Shown for scale only.

``before`` and ``cold`` are timed on a sample of points spread over the warm window, one point at a time and
interleaved; the time of one ``problem.unchecked.grad`` is measured in between, and the gradient-equivalents
are seconds over it. Errors are those of ``warm`` (and of the projection) against ``cold`` at the sample points:
``|Δx*|∞ / (1 + |x*|∞)``, the trace's relative error and the metric's error over ``‖∇tr̄‖``. The problems'
flattest traces (a linear program, a semidefinite program) are computed once before any timing.
BLAS runs on one thread (``--blas-threads``): these products are small, and threads only add noise here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flatref import SA, flatness_along, grad_tr_bar, run
from flatref.experiments.recipes import near_sharp_minimum
from flatref.flatness import flattest_trace, metric_at_minimum
from flatref.flow import limit_map
from flatref.geometry import project_tangent
from flatref.problems import DiagonalLinearNetwork, MatrixSensing

#: name: (problem, SA's η′, ρ, record_every, warm window, sample size)
CASES = {
    "dln1000": (lambda: DiagonalLinearNetwork.random(100, 500, rng=0), 1e-3, 1e-2, 1, 300, 12),
    "sensing1000": (lambda: MatrixSensing.random(100, 10, 2, 400, rng=0), 1e-4, 1e-2, 1, 40, 4),
    "dln10000": (lambda: DiagonalLinearNetwork.random(1250, 5000, rng=0), 1e-3, 1e-2, 10, 12, 2),
}


def before(problem, x):
    """The pre-issue-12 flatness_along at one point: limit_map (solve_ivp alone), the trace, the metric through an
    SVD of J."""
    limit = limit_map(problem, x, exponential=False)
    trace = float(problem.trace_hess(limit.x))
    metric = float(np.linalg.norm(project_tangent(problem, limit.x, grad_tr_bar(problem, limit.x))))
    return limit.x, trace, metric


def projection(problem, x):
    """The Gauss-Newton projection of x (not Φ(x)), the trace and the metric there."""
    x_star = problem.project_to_minima(x)
    return x_star, float(problem.trace_hess(x_star)), metric_at_minimum(problem, x_star)


def seconds(fun, *args, **kwargs):
    start = time.perf_counter()
    out = fun(*args, **kwargs)
    return time.perf_counter() - start, out


def grad_seconds(problem, x, repeat=20):
    grad = problem.unchecked.grad
    return min(seconds(grad, x)[0] for _ in range(repeat))


def errors(problem, values, reference):
    """Max over points of (|Δx*|∞/(1 + |x*|∞), |Δtrace|/trace, |Δmetric|/‖∇tr̄‖) against the reference."""
    out = []
    for (x, trace, metric), (x_ref, trace_ref, metric_ref) in zip(values, reference):
        scale = np.linalg.norm(grad_tr_bar(problem, x_ref))
        out.append((np.max(np.abs(x - x_ref)) / (1 + np.max(np.abs(x_ref))), abs(trace / trace_ref - 1),
                    abs(metric - metric_ref) / scale))  # fmt: skip
    return np.max(out, axis=0)


def measure(name, steps, quick):
    factory, eta_prime, rho, record_every, window, sample = CASES[name]
    if quick:
        steps, window, sample = min(steps, 1000), max(window // 4, 4), max(sample // 2, 2)
    problem = factory()
    start, eta = near_sharp_minimum(problem)
    flattest_trace(problem)  # the linear or semidefinite program, once, outside every timing
    run_time, trajectory = seconds(lambda: run(problem, SA(eta, eta_prime, rho), start, steps=steps, rng=0,
                                               record_every=record_every))  # fmt: skip
    points = trajectory.xs
    first = len(points) // 2
    window_points = points[first : first + window]
    picks = np.linspace(1, len(window_points) - 1, sample).round().astype(int)
    t_grad = [grad_seconds(problem, points[first])]
    t_before, t_cold, t_projection, reference, projected = [], [], [], [], []
    for k in picks:
        x = window_points[k]
        t, value = seconds(before, problem, x)
        t_before.append(t)
        t, path = seconds(flatness_along, problem, x[None, :], warm=False)
        t_cold.append(t)
        reference.append((path.x_star[0], path.trace[0], path.metric[0]))
        t, value = seconds(projection, problem, x)
        t_projection.append(t)
        projected.append(value)
        t_grad.append(grad_seconds(problem, x))
    t_warm, path = seconds(flatness_along, problem, window_points)
    t_grad.append(grad_seconds(problem, points[first]))
    warm_first = path.limits[0].n_grad
    t_first = np.mean(t_cold)  # the window's first point is cold
    per_warm = (t_warm - t_first) / (len(window_points) - 1)
    warm_values = [(path.x_star[k], path.trace[k], path.metric[k]) for k in picks]
    grad_time = min(t_grad)
    return {
        "name": name, "d": problem.dim, "points": len(points), "run": run_time, "grad": grad_time,
        "before": np.mean(t_before), "cold": np.mean(t_cold), "warm": per_warm, "projection": np.mean(t_projection),
        "warm_grads": np.mean([limit.n_grad for limit in path.limits[1:]]), "first_grads": warm_first,
        "warm_error": errors(problem, warm_values, reference), "projection_error": errors(problem, projected, reference),
        "status": sorted(set(path.status)), "window": len(window_points), "sample": len(picks),
    }  # fmt: skip


def report(r):
    n, g = r["points"], r["grad"]
    print(f"\n{r['name']}: d = {r['d']}, {n} recorded points (SA run {r['run']:.1f} s), one gradient {g * 1e6:.0f} µs; "
          f"warm on {r['window']} consecutive points, the others on {r['sample']} of them")
    print(f"  {'route':<12}{'s / point':>11}{'grad-eq':>10}{'all points, s':>15}   error (x*, trace, metric)")
    for route in ("before", "cold", "warm", "projection"):
        seconds_per_point = r[route]
        total = seconds_per_point * n if route != "warm" else r["cold"] + seconds_per_point * (n - 1)
        error = {"warm": r["warm_error"], "projection": r["projection_error"]}.get(route)
        shown = "" if error is None else "   " + ", ".join(f"{e:.1e}" for e in error)
        print(f"  {route:<12}{seconds_per_point:>11.4f}{seconds_per_point / g:>10.0f}{total:>15.1f}{shown}")
    print(f"  warm: {r['warm_grads']:.0f} gradient evaluations per point (its first point, cold: {r['first_grads']}); "
          f"statuses {r['status']}; before / warm = {r['before'] / r['warm']:.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1000 steps, smaller windows and samples")
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.blas_threads):
        for name in args.cases.split(","):
            report(measure(name, args.steps, args.quick))


if __name__ == "__main__":
    main()
