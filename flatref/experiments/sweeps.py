"""Table 1 in numbers: the grid of first-passage runs, run through joblib with a resumable cache.

Two parameter regimes, with ``η = 1/β`` and ``β = λ_max(∇²f)`` at the start:

- ``"theory"``: :func:`~flatref.theory.rs_schedule` (Theorem 1) for RS and
  :func:`~flatref.theory.sa_schedule` (Theorem 2, reconstructed) for SA at each ``ε``, with
  the probability ``δ =`` :data:`DELTA`, the gate ``ε0 =`` :data:`GATE` ``· ε`` (both methods
  perturb only where ``‖∇f(x_t)‖ ≤ ε0``) and the constants in :data:`CONSTANTS`;
- ``"fixed"``: the same ``η′, ρ`` for both (:data:`FIXED`), with no gate. There Lemma 4
  against Lemma 2 predicts that RS needs ``d`` times SA's iterations.

Each network size is measured on :attr:`Grid.instances` random instances (instance seeds
``0, 1, …``), so the fits see the spread between instances as well as between seeds.

:func:`measure` runs every :class:`Case` of a :class:`Grid` through
:func:`~flatref.experiments.parallel.parallel_map` (loky processes, or a dask cluster)
and keeps each finished case in a :class:`RunCache`, keyed by the case's full
configuration, so an interrupted sweep restarts where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .. import __version__
from .._validation import as_int, as_positive
from ..algorithms import RS, SA, StepRule
from ..problems import Problem
from ..spectrum import top_eigenvalue_step
from ..theory import rs_schedule, sa_schedule
from .parallel import parallel_map
from .passages import first_hits, screening_steps
from .registry import make, network_of_dim

#: Theorems 1 and 2 hold with probability ``1 − O(δ)``; the schedules take ``δ ∈ (0, 1]``.
DELTA = 0.5

#: The gate of Algorithms 1 and 2 is ``ε0 = GATE · ε``: polynomially small in ``ε``, as the
#: theorems ask, and no larger than Definition 3's bound on ``‖∇f‖``.
GATE = 1.0

#: The free constants of the theorems' schedules (with ``δ =`` :data:`DELTA`), per problem and
#: method: ``η′ = c_η′·δε``, RS's ``ρ = c_ρ·δ√ε``, SA's ``ρ = c_ρ·δ·min(1, √(d³ε))``. On the
#: network, RS and SA share ``η′ = 10ε``; RS has ``ρ = 2√ε`` and SA ``ρ = 0.1`` (``d³ε ≥ 1`` on the grid).
CONSTANTS = {
    ("example1", "RS"): {"c_eta_prime": 4.0, "c_rho": 2.0},
    ("example1", "SA"): {"c_eta_prime": 4.0, "c_rho": 2.0},
    ("network", "RS"): {"c_eta_prime": 20.0, "c_rho": 4.0},
    ("network", "SA"): {"c_eta_prime": 20.0, "c_rho": 0.2},
}

#: ``(η′, ρ)`` of the fixed regime, the same for RS and SA (those of the figures).
FIXED = {"example1": (0.05, 0.3), "network": (0.05, 0.1)}


@dataclass(frozen=True)
class Grid:
    """What :func:`measure` runs.

    Attributes:
        network_dims: the diagonal networks' ``d = 2D``, multiples of 8
            (:func:`~flatref.experiments.registry.network_of_dim`).
        network_eps, example1_eps: the ``ε`` values.
        seeds: runs per cell (algorithm seeds ``0 … seeds − 1``).
        max_steps: the cap of every run.
        instances: random networks per size (instance seeds ``0 … instances − 1``); Example 1 has one.

    Examples:
        >>> grid = Grid((16,), (0.01,), (0.1,), seeds=1, max_steps=1500, instances=2)
        >>> len(cases(grid))               # (Example 1 + 2 networks) × (1 ε + fixed) × 2 methods
        12
        >>> Grid((20,), (0.01,), (0.1,), seeds=1, max_steps=1500)
        Traceback (most recent call last):
        ...
        ValueError: network_dims must be multiples of 8, got 20
    """

    network_dims: tuple[int, ...]
    network_eps: tuple[float, ...]
    example1_eps: tuple[float, ...]
    seeds: int
    max_steps: int
    instances: int = 1

    def __post_init__(self):
        for d in self.network_dims:
            if as_int(d, "network_dims", minimum=16) % 8:
                raise ValueError(f"network_dims must be multiples of 8, got {d}")
        for name in ("network_eps", "example1_eps"):
            if not all(0 < as_positive(e, name) < 1 for e in getattr(self, name)):
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}")
        as_int(self.seeds, "seeds", minimum=1)
        as_int(self.max_steps, "max_steps", minimum=1)
        as_int(self.instances, "instances", minimum=1)


#: The full grid: 7 network sizes with 3 instances each, ε over a factor 10 (``10^(−1/4)`` apart).
FULL = Grid(
    network_dims=(16, 24, 32, 48, 64, 128, 256),
    network_eps=tuple(0.02 * 10.0 ** (-k / 4) for k in range(5)),
    example1_eps=tuple(0.1 * 2.0**-k for k in range(5)),
    seeds=2,
    max_steps=1_500_000,
    instances=3,
)

#: A grid for the tests (under a minute on 2 cores).
QUICK = Grid(network_dims=(16, 32, 64), network_eps=(0.01, 0.005), example1_eps=(0.1, 0.05, 0.025), seeds=2,
             max_steps=60_000)  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One run: ``eps`` holds the one ``ε`` of the theory regime's schedule, or every threshold of
    the fixed regime; ``instance`` is the problem's instance seed; ``max_steps`` caps the run.

    Examples:
        >>> cases(Grid((16,), (0.01, 0.005), (0.1,), seeds=1, max_steps=1500))[-1]   # doctest: +NORMALIZE_WHITESPACE
        Case(problem='network', dim=16, regime='fixed', method='SA', eps=(0.01, 0.005), seed=0, max_steps=1500,
             instance=0)
    """

    problem: str
    dim: int
    regime: str
    method: str
    eps: tuple[float, ...]
    seed: int
    max_steps: int
    instance: int = 0

    def key(self) -> str:
        """A digest of the full configuration: the cache's file name.

        It covers the case's fields (the instance among them), the parameters its regime takes
        from :data:`CONSTANTS`, :data:`DELTA` and :data:`GATE`, or from :data:`FIXED`, the
        screening schedule of :func:`~flatref.experiments.passages.screening_steps` and flatref's
        version, so changing any of them recomputes the run instead of reading a stale one.

        Examples:
            >>> case = Case("example1", 2, "fixed", "SA", (0.1,), 0, 1500)
            >>> key = case.key()
            >>> len(key), key == Case("example1", 2, "fixed", "SA", (0.1,), 0, 1500).key()   # deterministic
            (32, True)
            >>> key == Case("example1", 2, "fixed", "SA", (0.1,), 1, 1500).key()             # the seed counts
            False
        """
        config = {
            "case": dataclasses.asdict(self),
            "parameters": FIXED[self.problem] if self.regime == "fixed" else
            {**CONSTANTS[self.problem, self.method], "delta": DELTA, "gate": GATE},
            "screening": screening_steps.__kwdefaults__,
            "version": __version__,
        }
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:32]


def cases(grid: Grid) -> list[Case]:
    """Every run of ``grid``: each problem instance, regime, method and seed (and ``ε`` in the theory regime).

    Examples:
        >>> len(cases(QUICK))       # (3 + 1) + 3 × (2 + 1) cases per method and seed
        52
    """
    sizes = [("example1", 2, grid.example1_eps, 0)]
    sizes += [("network", d, grid.network_eps, k) for d in grid.network_dims for k in range(grid.instances)]
    out = []
    for problem, dim, eps, instance in sizes:
        for method in ("RS", "SA"):
            for seed in range(grid.seeds):
                out += [Case(problem, dim, "theory", method, (e,), seed, grid.max_steps, instance) for e in eps]
                out.append(Case(problem, dim, "fixed", method, tuple(eps), seed, grid.max_steps, instance))
    return out


@lru_cache(maxsize=None)
def problem_of(name: str, dim: int, instance: int = 0) -> Problem:
    """Example 1, or :func:`~flatref.experiments.registry.network_of_dim` with instance seed ``instance``.

    Examples:
        >>> problem_of("network", 16) is problem_of("network", 16)     # built once per process
        True
        >>> problem_of("network", 16).dim, problem_of("example1", 2).dim
        (16, 2)
    """
    return make("example1") if name == "example1" else network_of_dim(dim, instance)


def method_of(case: Case, problem: Problem, x0) -> StepRule:
    """The case's step rule: ``η = 1/λ_max(∇²f(x0))``, and ``η′, ρ`` (and the gate ``ε0``) from its regime.

    Examples:
        >>> p = problem_of("example1", 2)                 # λ_max(∇²f(3, 1/3)) = 2(9 + 1/9) = 164/9
        >>> m = method_of(Case("example1", 2, "fixed", "SA", (0.1,), 0, 1500), p, p.sharp_minimum())
        >>> type(m).__name__, round(m.eta * 164 / 9, 12), (m.eta_prime, m.rho) == FIXED["example1"], m.eps0
        ('SA', 1.0, True, inf)
        >>> m = method_of(Case("example1", 2, "theory", "RS", (0.1,), 0, 1500), p, p.sharp_minimum())
        >>> round(m.eta_prime, 12), round(m.rho**2, 12), m.eps0   # c_η′ = 4, c_ρ = 2, δ = 1/2: η′ = 2ε, ρ = √ε
        (0.2, 0.1, 0.1)
    """
    eta, rule = top_eigenvalue_step(problem, x0), {"RS": RS, "SA": SA}[case.method]
    if case.regime == "fixed":
        return rule(eta, *FIXED[case.problem])
    (eps,) = case.eps
    options = {"eps0": GATE * eps, **CONSTANTS[case.problem, case.method]}
    if case.method == "RS":
        schedule = rs_schedule(1.0 / eta, eps, DELTA, **options)
    else:
        schedule = sa_schedule(1.0 / eta, eps, DELTA, problem.dim, **options)
    return rule(eta, schedule.eta_prime, schedule.rho, eps0=schedule.eps0)


@dataclass(frozen=True)
class Row:
    """One row of ``rates.csv``: one run and one threshold ``ε`` (``None``: not reached).

    ``steps_to_metric`` counts the steps until the metric at ``Φ(x_t)`` is ``≤ √ε``;
    ``grad_norm_at_metric`` is ``‖∇f(x_t)‖`` there. ``finish_steps`` gradient steps from that
    iterate bring ``‖∇f‖`` to ``ε`` (Theorem 2's finish), and ``definition3`` says whether the
    finished point is ``(ε, √ε)``-flat (Definition 3).

    Examples:
        >>> len(COLUMNS), COLUMNS[:3], COLUMNS[11:16]
        (24, ('problem', 'dim', 'instance'), ('steps_to_metric', 'grad_norm_at_metric', 'finish_steps', \
'definition3', 'steps_to_half'))
    """

    problem: str
    dim: int
    instance: int
    regime: str
    method: str
    eps: float
    seed: int
    eta: float
    eta_prime: float
    rho: float
    eps0: float
    steps_to_metric: int | None
    grad_norm_at_metric: float | None
    finish_steps: int | None
    definition3: bool | None
    steps_to_half: int | None
    steps_run: int
    max_steps: int
    status: str
    gap_start: float
    gap_end: float
    metric_start: float
    metric_end: float
    delta: float | None = None


#: The columns of ``rates.csv``.
COLUMNS = tuple(f.name for f in dataclasses.fields(Row))


def measure_case(case: Case) -> list[Row]:
    """Run one case from its problem's sharp minimum; one :class:`Row` per threshold ``ε``.

    Examples:
        >>> (row,) = measure_case(Case("example1", 2, "fixed", "SA", (0.1,), 0, 1500))
        >>> row.status, round(row.gap_start, 6), round(row.metric_start, 6)   # 2(9 + 1/9) − 4; |18 − 2/9| / √(9 + 1/9)
        ('reached', 14.222222, 5.889681)
        >>> 0 < row.steps_to_half <= row.steps_to_metric == row.steps_run <= 1500   # stops once both events are reached
        True
        >>> row.definition3, row.finish_steps >= 0        # Theorem 2's finish, then Definition 3
        (True, True)
    """
    problem = problem_of(case.problem, case.dim, case.instance)
    x0 = problem.sharp_minimum()
    method = method_of(case, problem, x0)
    hits = first_hits(problem, method, x0, case.eps, max_steps=case.max_steps, rng=case.seed)
    delta = DELTA if case.regime == "theory" else None
    rows = []
    for e in case.eps:
        finish = hits.finish.get(e)
        rows.append(Row(
            case.problem, case.dim, case.instance, case.regime, case.method, e, case.seed, method.eta,
            method.eta_prime, method.rho, method.eps0, hits.to_metric[e], hits.grad_norm_at_metric[e],
            None if finish is None else finish.steps, None if finish is None else finish.definition3, hits.to_half,
            hits.steps, case.max_steps, str(hits.status), hits.gap_start, hits.gap_end, hits.metric_start,
            hits.metric_end, delta))  # fmt: skip
    return rows


class RunCache:
    """Finished cases on disk, one JSON file per case named by :meth:`Case.key`.

    The client writes each case as its result arrives, so the workers (local or on a
    dask cluster) need no shared file system; an interrupted sweep keeps what finished.
    Floats round-trip exactly through JSON (``repr`` is shortest-exact).

    Examples:
        >>> import tempfile
        >>> case = Case("example1", 2, "fixed", "SA", (0.1,), 0, 1500)
        >>> rows = measure_case(case)
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     RunCache(directory).put(case, rows)
        ...     RunCache(directory).get(case) == rows            # a new cache on the same folder, exact floats
        True
    """

    def __init__(self, directory):
        self.directory = Path(directory)

    def _path(self, case: Case) -> Path:
        return self.directory / f"{case.key()}.json"

    def get(self, case: Case) -> list[Row] | None:
        """The rows stored for ``case``, or ``None`` if it has not finished.

        Examples:
            >>> import tempfile
            >>> case = Case("example1", 2, "fixed", "SA", (0.1,), 0, 1500)
            >>> with tempfile.TemporaryDirectory() as directory:
            ...     cache = RunCache(directory)
            ...     before = cache.get(case)
            ...     cache.put(case, measure_case(case))
            ...     before, cache.get(case)[0].status, cache.get(dataclasses.replace(case, seed=1))
            (None, 'reached', None)
        """
        path = self._path(case)
        if not path.exists():
            return None
        return [Row(**row) for row in json.loads(path.read_text(encoding="utf-8"))["rows"]]

    def put(self, case: Case, rows: list[Row]) -> None:
        """Store ``rows`` as ``<case.key()>.json`` (folders made as needed), atomically.

        Examples:
            >>> import tempfile
            >>> case = Case("example1", 2, "fixed", "SA", (0.1,), 0, 1500)
            >>> with tempfile.TemporaryDirectory() as directory:
            ...     RunCache(Path(directory) / "runs").put(case, measure_case(case))
            ...     [p.name == f"{case.key()}.json" for p in (Path(directory) / "runs").iterdir()]   # no .tmp left
            [True]
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {"case": dataclasses.asdict(case), "rows": [dataclasses.asdict(r) for r in rows]}
        tmp = self._path(case).with_suffix(".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, self._path(case))  # atomic: a killed sweep never leaves half a file


@dataclass(frozen=True)
class Sweep:
    """What :func:`measure` returns: the rows in grid order, and how many cases ran or came from the cache.

    Examples:
        >>> Sweep(rows=[], computed=2, cached=6)          # the rows are left out of the repr
        Sweep(computed=2, cached=6)
    """

    rows: list = field(repr=False)
    computed: int
    cached: int


def _cost(case: Case):
    """Sort key, most expensive first: RS, large ``d``, small ``ε`` (keeps the workers busy to the end)."""
    return (case.method == "RS", case.dim, -min(case.eps))


def measure(grid: Grid = FULL, *, jobs: int | None = None, cache=None, on_done=None) -> Sweep:
    """Every run of ``grid`` (:func:`measure_case`), through joblib, skipping cases in ``cache``.

    Args:
        grid: the grid.
        jobs: workers (default: the CPUs); see :func:`~flatref.experiments.parallel.parallel_map`.
        cache: a :class:`RunCache` or a directory for one, or ``None`` (no cache).
        on_done: ``on_done(index, case, rows, seconds)`` as each computed case finishes.

    Each case has its own seed, so the rows do not depend on ``jobs``, the backend or the
    scheduling.

    Examples:
        >>> import tempfile
        >>> grid = Grid((16,), (0.01,), (0.1,), seeds=1, max_steps=200)
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     first = measure(grid, jobs=1, cache=directory)
        ...     again = measure(grid, jobs=1, cache=directory)          # resumed: every case from the cache
        >>> (first.computed, first.cached), (again.computed, again.cached), again.rows == first.rows
        ((8, 0), (0, 8), True)
        >>> [(r.problem, r.regime, r.method) for r in first.rows][:2]    # grid order, as :func:`cases`
        [('example1', 'theory', 'RS'), ('example1', 'fixed', 'RS')]
    """
    cache = RunCache(cache) if cache is not None and not isinstance(cache, RunCache) else cache
    all_cases = cases(grid)
    done = {case: cache.get(case) for case in all_cases} if cache is not None else {}
    todo = sorted((c for c in all_cases if done.get(c) is None), key=_cost, reverse=True)

    def finished(k, case, rows, seconds):
        if cache is not None:
            cache.put(case, rows)
        if on_done is not None:
            on_done(k, case, rows, seconds)

    done.update(zip(todo, parallel_map(measure_case, todo, jobs=jobs, on_done=finished)))
    return Sweep([row for case in all_cases for row in done[case]], computed=len(todo),
                 cached=len(all_cases) - len(todo))  # fmt: skip
