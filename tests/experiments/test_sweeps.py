"""The grid of runs through joblib (``flatref.experiments.sweeps``): independence of the backend, the cache."""

import pytest

from flatref.experiments.sweeps import FULL, Grid, RunCache, cases, measure


def test_grids_are_checked():
    # issue 15: at least 3 instances per size, and ε over at least a factor 10 on the networks
    assert FULL.instances >= 3 and max(FULL.network_eps) / min(FULL.network_eps) >= 10 * (1 - 1e-12)
    assert FULL.seeds >= 2 and len(FULL.network_dims) >= 5 and max(FULL.network_dims) >= 200
    assert len(FULL.network_eps) >= 4 and len(FULL.example1_eps) >= 4
    assert len({c.instance for c in cases(FULL) if c.problem == "network"}) == FULL.instances
    with pytest.raises(ValueError, match="instances"):
        Grid((16,), (0.01,), (0.1,), seeds=1, max_steps=10, instances=0)
    with pytest.raises(ValueError, match="multiples of 8"):
        Grid((20,), (0.01,), (0.1,), seeds=1, max_steps=10)
    with pytest.raises(ValueError, match="network_eps"):
        Grid((16,), (1.5,), (0.1,), seeds=1, max_steps=10)
    with pytest.raises(ValueError, match="seeds"):
        Grid((16,), (0.01,), (0.1,), seeds=0, max_steps=10)


def test_rows_do_not_depend_on_the_number_of_processes():
    tiny = Grid((16,), (0.01,), (0.1,), seeds=1, max_steps=1500)
    serial = measure(tiny, jobs=1)
    assert len(serial.rows) == 8  # 2 problems × 2 methods × (1 theory ε + 1 fixed threshold)
    assert (serial.computed, serial.cached) == (8, 0)
    assert measure(tiny, jobs=2).rows == serial.rows


TINY = Grid((16,), (0.01,), (0.1,), seeds=1, max_steps=1500)


def test_a_second_invocation_recomputes_no_run(tmp_path):
    first = measure(TINY, jobs=1, cache=tmp_path)
    assert (first.computed, first.cached) == (8, 0) and len(list(tmp_path.glob("*.json"))) == 8
    second = measure(TINY, jobs=1, cache=RunCache(tmp_path))
    assert (second.computed, second.cached) == (0, 8)
    assert second.rows == first.rows  # JSON keeps every float exactly


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    finished = []

    def interrupt(index, case, rows, seconds):
        finished.append(case)
        if len(finished) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure(TINY, jobs=1, cache=tmp_path, on_done=interrupt)
    resumed = measure(TINY, jobs=1, cache=tmp_path)
    assert (resumed.computed, resumed.cached) == (5, 3)
    assert resumed.rows == measure(TINY, jobs=1).rows


def test_the_cache_key_is_the_full_configuration():
    a, b = cases(TINY)[:2]
    assert a.key() != b.key() and a.key() == cases(TINY)[0].key()
    longer = Grid((16,), (0.01,), (0.1,), seeds=1, max_steps=1501)
    assert cases(longer)[0].key() != a.key()  # the step cap is part of the key


def test_a_dask_cluster_gives_the_same_csv_bytes_as_loky(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    from flatref.experiments.parallel import dask_backend
    from flatref.report.files import write_csv
    from flatref.report.jobs import csv_rows
    from flatref.experiments.sweeps import COLUMNS

    loky = write_csv(tmp_path / "loky.csv", COLUMNS, csv_rows(measure(TINY, jobs=2).rows))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with dask_backend(cluster.scheduler_address) as client, distributed.get_task_stream(client) as stream:
            sweep = measure(TINY, cache=tmp_path / "cache")
    assert len(stream.data) >= 8  # the runs went through the cluster's workers
    on_dask = write_csv(tmp_path / "dask.csv", COLUMNS, csv_rows(sweep.rows))
    assert sweep.computed == 8
    assert on_dask.read_bytes() == loky.read_bytes()
    assert measure(TINY, cache=tmp_path / "cache").computed == 0  # the dask run filled the cache


def test_without_the_dask_extra_the_dask_path_names_the_extra():
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("dask is installed; CI runs this test in an environment without the extras")
    from flatref.experiments.parallel import dask_backend

    with pytest.raises(ImportError, match=r"flatref\[dask\]"):
        with dask_backend("tcp://127.0.0.1:8786"):
            pass


def test_changing_a_regime_s_parameters_changes_the_cache_key(monkeypatch):
    from flatref.experiments import sweeps

    fixed, theory = (next(c for c in cases(TINY) if c.regime == r) for r in ("fixed", "theory"))
    keys = fixed.key(), theory.key()
    monkeypatch.setitem(sweeps.FIXED, fixed.problem, (0.01, 0.05))
    assert fixed.key() != keys[0] and theory.key() == keys[1]
    monkeypatch.setitem(sweeps.CONSTANTS, (theory.problem, theory.method), {"c_eta_prime": 1.0, "c_rho": 1.0})
    assert theory.key() != keys[1]
