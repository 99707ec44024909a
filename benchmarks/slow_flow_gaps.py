"""SA's gap to the slow flow against η′ on three families, and the effect of halving ρ (docs/theory.md §6.7).

For each setup, SA (batch 1) runs from the sharp minimum for the steps its clock needs to cover
flow time ``T`` (``τ = dη′ρ²/2``: :func:`~flatref.theory.flow_time_per_step`), and ``tr̄`` is read
at ``Φ`` of the last iterate; the gap is its mean over seeds minus the flow's ``tr̄`` at ``T``.
Printed: the gap with its standard error and ``C = gap/η′`` for each ``η′``, the fitted slope of
``log|gap|`` against ``log η′``, and the gap at ``ρ/2`` next to the seed spread.

    python benchmarks/slow_flow_gaps.py [--seeds N] [--setups example1 network sensing-18]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flatref import SA, limit_flow, limit_map, run
from flatref.experiments.parallel import parallel_map
from flatref.experiments.registry import make
from flatref.spectrum import top_eigenvalue_step
from flatref.theory import flow_time_per_step

#: setup: (flow time T, ρ, the η′ grid). η = λ_max⁻¹/2 at the sharp minimum.
SETUPS = {
    "example1": (1.0, 0.3, (0.04, 0.02, 0.01, 0.005)),
    "network": (4.0, 0.3, (0.04, 0.02, 0.01, 0.005)),
    "sensing-18": (1.0, 0.1, (0.02, 0.01, 0.005, 0.0025)),
}


def trace_at_limit(task) -> float:
    setup, eta_prime, rho, seed = task
    problem = make(setup)
    x0 = problem.sharp_minimum()
    method = SA(0.5 * top_eigenvalue_step(problem, x0), eta_prime, rho)
    steps = round(SETUPS[setup][0] / flow_time_per_step(method, problem))
    x_last = run(problem, method, x0, steps=steps, rng=seed, record_every=steps).x_last
    return float(problem.trace_hess(limit_map(problem, x_last, throw=True).x) / problem.dim)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    args = parser.parse_args(argv)
    for setup in args.setups:
        start = time.perf_counter()
        flow_time, rho, grid = SETUPS[setup]
        problem = make(setup)
        flow = limit_flow(problem, problem.sharp_minimum(), t_end=flow_time)
        tasks = [(setup, e, r, s) for e, r in [(e, rho) for e in grid] + [(grid[1], rho / 2)] for s in range(args.seeds)]
        values = np.array(parallel_map(trace_at_limit, tasks)).reshape(len(grid) + 1, args.seeds) - flow.tr_bar[-1]
        gap, spread = values.mean(axis=1), values.std(axis=1, ddof=1)
        error = spread / np.sqrt(args.seeds)
        slope = np.polyfit(np.log(grid), np.log(np.abs(gap[:-1])), 1)[0]
        print(f"{setup}: the flow's tr̄ falls {flow.tr_bar[0]:.4g} -> {flow.tr_bar[-1]:.4g} by T = {flow_time:g} "
              f"({flow.status}); SA at ρ = {rho:g}, {args.seeds} seeds")  # fmt: skip
        for e, g, se in zip(grid, gap, error):
            print(f"  η′ = {e:<7g} gap {g:+.3e} ± {se:.1e}   C = gap/η′ = {g / e:+.3g}")
        print(f"  slope of log|gap| against log η′: {slope:.2f}")
        print(f"  ρ/2 at η′ = {grid[1]:g}: gap {gap[-1]:+.3e} ± {error[-1]:.1e}; change {gap[-1] - gap[1]:+.2e} "
              f"against a seed spread of {spread[1]:.1e}   ({time.perf_counter() - start:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
