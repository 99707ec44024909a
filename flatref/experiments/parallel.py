"""Many independent runs through joblib: local processes by default, a dask cluster on request.

:func:`parallel_map` hands its tasks to :class:`joblib.Parallel` with the backend in
force, so the same code runs

- on loky worker processes (joblib's default) with ``jobs`` workers;
- in this process with ``jobs=1`` (no pickling; what the tests and debuggers want);
- on a dask cluster, with no change to the code, inside
  ``joblib.parallel_config(backend="dask")`` once a ``dask.distributed.Client`` is
  connected (the command line's ``--dask ADDRESS`` does both; see :func:`dask_backend`).

Every task carries its own seed, so the results do not depend on the backend, the
number of workers or the order in which tasks finish.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterable

from .._validation import as_int


def default_jobs() -> int:
    """The CPUs this process may use.

    Examples:
        >>> jobs = default_jobs()
        >>> isinstance(jobs, int) and 1 <= jobs <= (os.cpu_count() or 1)
        True
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_map(fun: Callable, tasks: Iterable, *, jobs: int | None = None,
                 on_done: Callable | None = None) -> list:  # fmt: skip
    """``[fun(task) for task in tasks]``, computed through joblib.

    Args:
        fun: a picklable function of one task (a module-level function).
        tasks: the tasks (picklable).
        jobs: workers (default: the CPUs; under a dask backend, the cluster decides).
        on_done: ``on_done(index, task, result, seconds)`` as each task finishes, in
            completion order (for progress and for caches).

    Returns:
        The results in the order of ``tasks``.

    Examples:
        >>> parallel_map(abs, [-2, 3, -5], jobs=1)
        [2, 3, 5]
    """
    import joblib

    tasks = list(tasks)
    jobs = default_jobs() if jobs is None else as_int(jobs, "jobs", minimum=1)
    results, start = [None] * len(tasks), time.perf_counter()
    calls = (joblib.delayed(_indexed)(fun, k, task) for k, task in enumerate(tasks))
    for k, result in joblib.Parallel(n_jobs=jobs, return_as="generator_unordered")(calls):
        results[k] = result
        if on_done is not None:
            on_done(k, tasks[k], result, time.perf_counter() - start)
    return results


def _indexed(fun, k, task):
    return k, fun(task)


@contextlib.contextmanager
def dask_backend(address: str):
    """Run every :func:`parallel_map` inside this block on the dask scheduler at ``address``.

    Needs the ``dask`` extra (``pip install 'flatref[dask]'``): ``dask.distributed``
    connects a client, and joblib's dask backend sends each task to the cluster's workers.

    Examples:
        >>> with dask_backend("tcp://127.0.0.1:8786"):      # doctest: +SKIP
        ...     rows = measure(QUICK)
    """
    try:
        from dask.distributed import Client
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("running on a dask cluster needs the dask extra: pip install 'flatref[dask]'") from err
    import joblib

    with Client(address) as client, joblib.parallel_config(backend="dask"):
        yield client
