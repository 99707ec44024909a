"""Sweeps on joblib: one grid on one process, on loky processes and on a local dask cluster, and a resumed rerun.

Prints the wall time of each way of running the same grid, its ratio to the serial run,
whether the rows are identical, and how many runs a second invocation with the cache
recomputes (zero: it only reads the JSON files). The dask cluster is a
``dask.distributed.LocalCluster`` on this machine; a real cluster is the same code with
``--dask ADDRESS`` on the command line.

    python benchmarks/sweeps.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from flatref.experiments.parallel import dask_backend, default_jobs
from flatref.experiments.sweeps import QUICK, Grid, measure


def timed(fun):
    start = time.perf_counter()
    result = fun()
    return result, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny grid (8 runs) instead of the quick grid (52)")
    args = parser.parse_args(argv)
    grid = Grid((16,), (0.01,), (0.1,), seeds=1, max_steps=1500) if args.quick else QUICK
    jobs = default_jobs()
    serial, t_serial = timed(lambda: measure(grid, jobs=1))
    loky, t_loky = timed(lambda: measure(grid, jobs=jobs))
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with tempfile.TemporaryDirectory() as cache, dask_backend(cluster.scheduler_address):
            dask, t_dask = timed(lambda: measure(grid, cache=cache))
            again, t_again = timed(lambda: measure(grid, cache=cache))
    n = len(serial.rows)
    print(f"grid: {serial.computed} runs, {n} rows; {jobs} workers")
    print(f"{'backend':<34}{'seconds':>9}{'/ serial':>10}  rows identical")
    for name, sweep, t in (("serial (jobs=1)", serial, t_serial), (f"loky (jobs={jobs})", loky, t_loky),
                           (f"dask LocalCluster ({jobs} workers)", dask, t_dask)):  # fmt: skip
        print(f"{name:<34}{t:>9.1f}{t / t_serial:>10.2f}  {sweep.rows == serial.rows}")
    print(f"second invocation with the cache: {again.computed} runs recomputed, {again.cached} read, "
          f"{t_again:.2f} s ({t_again / t_serial:.3f} of serial), rows identical: {again.rows == serial.rows}")


if __name__ == "__main__":
    main()
