"""Table 1 in numbers: the iterations RS and SA need on flatref's problems, against Theorems 1 and 2.

Every run starts at a problem's sharp minimum and records two first-passage times:

- **flat**: the first step ``t`` at which ``x* = Φ(x_t)`` has ``‖∂Φ(x*) ∇tr̄(x*)‖ ≤ √ε``. Then
  ``x_t`` is ``(ε, √ε)``-flat (Definition 3, eq. (6)) once the gradient steps Theorem 2
  ends with have brought ``‖∇f‖`` below ``ε``; those steps leave ``Φ`` fixed to first order
  (Lemma 6). ``‖∇f(x_t)‖`` at that step is recorded too.
- **half**: the first step at which the raw trace gap ``tr ∇²f(x*) − min_{X*} tr ∇²f`` is at
  most half its value at the start.

Two parameter regimes, with ``η = 1/β`` and ``β = λ_max(∇²f)`` at the start:

- ``"theory"``: :func:`~flatref.theory.rs_schedule` (Theorem 1) for RS and
  :func:`~flatref.theory.sa_schedule` (Theorem 2, reconstructed) for SA at each ``ε``, with
  ``δ = 1`` and the constants in :data:`CONSTANTS`;
- ``"fixed"``: the same ``η′, ρ`` for both (:data:`FIXED`). There Lemma 4 against Lemma 2
  predicts that RS needs ``d`` times SA's iterations.

Exponents are fitted by least squares on logs over the cells' medians (see :func:`fit`).

**How ``Φ(x_t)`` is screened.** Where the problem knows ``Φ`` in closed form (Example 1)
it is used. Otherwise (Setting 1) the Gauss–Newton projection ``P(x_t)`` onto ``X*``
stands in for ``Φ(x_t)``: both are ``x_t − J⁺(p(x_t) − y) + O(dist²)``, so trace and metric
differ by ``O(dist(x_t, X*)²)``, and the projection costs a few ``n × n`` solves where a
flow costs hundreds of gradients (``tests/test_rates.py`` compares the two). The runs are
recorded at ``1/16`` of chunks that grow by ``1.25``, so a hit is exact to about 1.3% of ``t``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import stats

from ._validation import as_int, as_positive, as_vector, make_rng
from .algorithms import RS, SA, StepRule, run
from .flatness import flattest_trace, metric_at_minimum
from .limit_map import LimitMapError, limit_map
from .plots import COLORS, _pyplot, _write, top_eigenvalue_step
from .problems import DiagonalLinearNetwork, Example1, Problem, TrainingLoss
from .theory import rs_schedule, sa_schedule, table1_exponents

#: The free constants of the theorems' schedules (``δ = 1``), per problem and method. On the
#: network, RS and SA share ``η′ = 10ε``; RS's ``ρ = 2√ε`` and SA's ``ρ = 0.1`` agree with
#: the fixed regime's ``ρ`` at the largest ``ε`` of the grid.
CONSTANTS = {
    ("example1", "RS"): {"c_eta_prime": 2.0, "c_rho": 1.0},
    ("example1", "SA"): {"c_eta_prime": 2.0, "c_rho": 1.0},
    ("network", "RS"): {"c_eta_prime": 10.0, "c_rho": 2.0},
    ("network", "SA"): {"c_eta_prime": 10.0, "c_rho": 0.1},
}

#: ``(η′, ρ)`` of the fixed regime, the same for RS and SA (those of ``flatref figures``).
FIXED = {"example1": (0.05, 0.3), "network": (0.05, 0.1)}

_FIRST_CHUNK, _GROWTH, _RECORDS_PER_CHUNK = 64, 1.25, 16


# ------------------------------------------------------------ one run
@dataclass(frozen=True)
class Hits:
    """First-passage times of one run (module docstring); ``None``: not reached in ``steps``.

    Attributes:
        to_flat: ``{ε: t}``, the first recorded step whose limit has metric ``≤ √ε`` (0: the start).
        grad_norm_at_flat: ``{ε: ‖∇f(x_t)‖}`` at that step.
        x_at_flat: ``{ε: x_t}`` at that step. A few gradient steps from it reach ``‖∇f‖ ≤ ε``
            without moving ``Φ`` to first order (Theorem 2's finish).
        to_half: the first recorded step at which the trace gap is at most half the start's.
        steps: the steps run. A run stops once every event is reached, at ``max_steps``, or
            when it diverges.
        status: ``"reached"`` (every event), ``"capped"`` or ``"diverged"``.
        gap_start, gap_end: the trace gap at the limits of the first and the last iterate.
        metric_start, metric_end: the metric there.
    """

    to_flat: dict
    grad_norm_at_flat: dict = field(repr=False)
    x_at_flat: dict = field(repr=False)
    to_half: int | None
    steps: int
    status: str
    gap_start: float
    gap_end: float
    metric_start: float
    metric_end: float


def limit_point(problem: Problem, x) -> np.ndarray:
    """``Φ(x)`` in closed form if known, else the Gauss–Newton projection (Setting 1), else the flow."""
    try:
        return problem.exact_limit(x)
    except NotImplementedError:
        pass
    if isinstance(problem, TrainingLoss):
        return problem.gauss_newton_project(x)
    limit = limit_map(problem, x)
    if not limit.success:
        raise LimitMapError(limit)
    return limit.x


def first_hits(problem: Problem, method: StepRule, x0, eps, *, max_steps: int, rng=0) -> Hits:
    """Run ``method`` from ``x0`` until its limit is ``√ε``-stationary for every ``ε`` and the trace gap has halved.

    Args:
        problem: a loss whose flattest minimum is known (:meth:`~flatref.problems.Problem.flat_minima`).
        method: the step rule.
        x0: the start, usually a sharp minimum.
        eps: one ``ε > 0`` or several; the threshold of each is ``√ε``.
        max_steps: stop after this many steps.
        rng: a seed or generator; the run draws from it chunk by chunk.

    Raises:
        ValueError: if the problem does not know its flattest trace.
    """
    eps = tuple(sorted({as_positive(e, "eps") for e in np.atleast_1d(eps).tolist()}, reverse=True))
    max_steps = as_int(max_steps, "max_steps", minimum=1)
    flattest = flattest_trace(problem)
    if flattest is None:
        raise ValueError(f"{problem!r} does not know its flattest minimum, so the trace gap is undefined")
    rng = make_rng(rng)

    def screen(x):
        x_star = limit_point(problem, x)
        return float(problem.trace_hess(x_star)) - flattest, metric_at_minimum(problem, x_star)

    x = as_vector(x0, problem.dim, "x0")
    gap_start, metric_start = gap, metric = screen(x)
    to_flat, grad_norm_at_flat, x_at_flat, to_half = {}, {}, {}, None

    def record(t, x_t, gap, metric):
        nonlocal to_half
        for e in eps:
            if e not in to_flat and metric <= math.sqrt(e):
                to_flat[e] = t
                grad_norm_at_flat[e] = float(np.linalg.norm(problem.grad(x_t)))
                x_at_flat[e] = x_t.copy()
        if to_half is None and gap <= gap_start / 2:
            to_half = t

    def done():
        return to_half is not None and len(to_flat) == len(eps)

    record(0, x, gap, metric)
    t, chunk, status = 0, _FIRST_CHUNK, "capped"
    while t < max_steps and not done():
        n = min(chunk, max_steps - t)
        trajectory = run(problem, method, x, steps=n, rng=rng, record_every=max(1, n // _RECORDS_PER_CHUNK))
        for s, x_t in zip(trajectory.record_steps[1:], trajectory.xs[1:]):
            gap, metric = screen(x_t)
            record(t + int(s), x_t, gap, metric)
        t, x = t + trajectory.steps, trajectory.x_last
        if trajectory.status == "diverged":
            status = "diverged"
            break
        chunk = math.ceil(chunk * _GROWTH)
    return Hits(
        to_flat={e: to_flat.get(e) for e in eps},
        grad_norm_at_flat={e: grad_norm_at_flat.get(e) for e in eps},
        x_at_flat={e: x_at_flat.get(e) for e in eps},
        to_half=to_half,
        steps=t,
        status="reached" if done() else status,
        gap_start=gap_start,
        gap_end=gap,
        metric_start=metric_start,
        metric_end=metric,
    )


# ------------------------------------------------------------ the grid
@dataclass(frozen=True)
class Grid:
    """What :func:`measure` runs.

    Attributes:
        network_dims: the diagonal networks' ``d = 2D``, multiples of 8 (``n = d/8`` samples,
            2-sparse truth, instance seed 0).
        network_eps, example1_eps: the ``ε`` values.
        seeds: runs per cell (algorithm seeds ``0 … seeds − 1``).
        max_steps: the cap of every run.
    """

    network_dims: tuple[int, ...]
    network_eps: tuple[float, ...]
    example1_eps: tuple[float, ...]
    seeds: int
    max_steps: int

    def __post_init__(self):
        for d in self.network_dims:
            if as_int(d, "network_dims", minimum=16) % 8:
                raise ValueError(f"network_dims must be multiples of 8, got {d}")
        for name in ("network_eps", "example1_eps"):
            if not all(0 < as_positive(e, name) < 1 for e in getattr(self, name)):
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}")
        as_int(self.seeds, "seeds", minimum=1)
        as_int(self.max_steps, "max_steps", minimum=1)


#: The full grid (about 5 minutes on 2 cores): 5 network sizes, ε a factor √2 apart.
FULL = Grid(
    network_dims=(16, 32, 64, 128, 256),
    network_eps=tuple(0.01 * 2.0 ** (-k / 2) for k in range(4)),
    example1_eps=tuple(0.1 * 2.0**-k for k in range(5)),
    seeds=5,
    max_steps=250_000,
)

#: A grid for the tests (under a minute on 2 cores).
QUICK = Grid(network_dims=(16, 32, 64), network_eps=(0.01, 0.005), example1_eps=(0.1, 0.05, 0.025), seeds=2,
             max_steps=60_000)


@dataclass(frozen=True)
class Case:
    """One run: ``eps`` holds the one ``ε`` of the theory regime's schedule, or every threshold of the fixed regime."""

    problem: str
    dim: int
    regime: str
    method: str
    eps: tuple[float, ...]
    seed: int


def cases(grid: Grid) -> list[Case]:
    """Every run of ``grid``: each problem size, regime, method and seed (and ``ε`` in the theory regime)."""
    sizes = [("example1", 2, grid.example1_eps)] + [("network", d, grid.network_eps) for d in grid.network_dims]
    out = []
    for problem, dim, eps in sizes:
        for method in ("RS", "SA"):
            for seed in range(grid.seeds):
                out += [Case(problem, dim, "theory", method, (e,), seed) for e in eps]
                out.append(Case(problem, dim, "fixed", method, tuple(eps), seed))
    return out


@lru_cache(maxsize=None)
def problem_of(name: str, dim: int) -> Problem:
    """Example 1, or the diagonal network with ``n = d/8`` samples, ``D = d/2`` and a 2-sparse truth."""
    if name == "example1":
        return Example1()
    return DiagonalLinearNetwork.random(dim // 8, dim // 2, sparsity=2, rng=0)


def method_of(case: Case, problem: Problem, x0) -> StepRule:
    """The case's step rule: ``η = 1/λ_max(∇²f(x0))``, and ``η′, ρ`` from its regime."""
    eta = top_eigenvalue_step(problem, x0)
    if case.regime == "fixed":
        eta_prime, rho = FIXED[case.problem]
    else:
        (eps,) = case.eps
        constants = CONSTANTS[case.problem, case.method]
        if case.method == "RS":
            schedule = rs_schedule(1.0 / eta, eps, 1.0, **constants)
        else:
            schedule = sa_schedule(1.0 / eta, eps, 1.0, problem.dim, **constants)
        eta_prime, rho = schedule.eta_prime, schedule.rho
    return {"RS": RS, "SA": SA}[case.method](eta, eta_prime, rho)


#: The columns of ``rates.csv``, one row per run and threshold ``ε``.
COLUMNS = (
    "problem", "dim", "regime", "method", "eps", "seed", "eta", "eta_prime", "rho", "steps_to_flat",
    "grad_norm_at_flat", "steps_to_half", "steps_run", "max_steps", "status", "gap_start", "gap_end",
    "metric_start", "metric_end",
)  # fmt: skip


def measure_case(case: Case, max_steps: int) -> list[dict]:
    """Run one case; one row (:data:`COLUMNS`) per threshold ``ε``."""
    problem = problem_of(case.problem, case.dim)
    x0 = problem.sharp_minimum()
    method = method_of(case, problem, x0)
    hits = first_hits(problem, method, x0, case.eps, max_steps=max_steps, rng=case.seed)
    return [
        {
            "problem": case.problem, "dim": case.dim, "regime": case.regime, "method": case.method, "eps": e,
            "seed": case.seed, "eta": method.eta, "eta_prime": method.eta_prime, "rho": method.rho,
            "steps_to_flat": hits.to_flat[e], "grad_norm_at_flat": hits.grad_norm_at_flat[e],
            "steps_to_half": hits.to_half, "steps_run": hits.steps, "max_steps": max_steps, "status": hits.status,
            "gap_start": hits.gap_start, "gap_end": hits.gap_end, "metric_start": hits.metric_start,
            "metric_end": hits.metric_end,
        }  # fmt: skip
        for e in case.eps
    ]


def _cost(case: Case):
    """Sort key, most expensive first: RS, large ``d``, small ``ε``."""
    return (case.method == "RS", case.dim, -min(case.eps))


def measure(grid: Grid = FULL, *, jobs: int | None = None, progress: bool = False) -> list[dict]:
    """Every run of ``grid`` (:func:`measure_case`), on ``jobs`` processes (default: the CPUs).

    Each run has its own seed, so the rows do not depend on ``jobs`` or on scheduling.
    """
    jobs = _default_jobs() if jobs is None else as_int(jobs, "jobs", minimum=1)
    todo = sorted(cases(grid), key=_cost, reverse=True)
    results, start = {}, time.perf_counter()

    def done(case, rows):
        results[case] = rows
        if progress:
            print(
                f"  [{len(results)}/{len(todo)}] {case.problem} d={case.dim} {case.regime} {case.method} "
                f"eps={','.join(f'{e:.3g}' for e in case.eps)} seed={case.seed} "
                f"({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    if jobs == 1:
        for case in todo:
            done(case, measure_case(case, grid.max_steps))
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(measure_case, case, grid.max_steps): case for case in todo}
            for future in as_completed(futures):
                done(futures[future], future.result())
    return [row for case in cases(grid) for row in results[case]]


def _default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ------------------------------------------------------------ cells and fits
@dataclass(frozen=True)
class Cell:
    """The runs of one problem size, regime, method and ``ε`` for one event.

    ``median``, ``low`` and ``high`` are the median, minimum and maximum over seeds, with
    a run that never reached the event counted as ``inf`` (so a median is finite only when
    more than half the runs reached it). ``eps`` is ``None`` for halving in the fixed
    regime, where ``ε`` plays no part.
    """

    problem: str
    regime: str
    method: str
    event: str
    dim: int
    eps: float | None
    median: float
    low: float
    high: float
    eta_prime: float
    rho: float


def cells(rows: list[dict], event: str) -> list[Cell]:
    """Group ``rows`` into :class:`Cell` s for ``event`` (``"flat"`` or ``"half"``)."""
    if event not in ("flat", "half"):
        raise ValueError(f"event must be 'flat' or 'half', got {event!r}")
    groups = defaultdict(dict)
    for row in rows:
        eps = None if event == "half" and row["regime"] == "fixed" else row["eps"]
        key = (row["problem"], row["regime"], row["method"], event, row["dim"], eps)
        steps = row["steps_to_flat" if event == "flat" else "steps_to_half"]
        groups[key][row["seed"]] = (math.inf if steps is None else steps, row["eta_prime"], row["rho"])
    out = []
    for key, runs in groups.items():
        steps = np.array([s for s, _, _ in runs.values()], dtype=float)
        _, eta_prime, rho = next(iter(runs.values()))
        out.append(Cell(*key, float(np.median(steps)), float(steps.min()), float(steps.max()), eta_prime, rho))
    return out


@dataclass(frozen=True)
class Fit:
    """A power law ``steps ∝ εᵃ dᵇ`` fitted to the finite, positive cell medians of one group.

    Attributes:
        exponents: ``{"eps": (a, ±), "d": (b, ±)}`` with 95% confidence half-widths (``None``
            when the fit has no residual degrees of freedom); a variable that does not vary
            over the group's cells is left out.
        used, at_start, censored: the cells fitted; those whose median is 0 (the start
            already meets the event); those whose median is ``inf`` (not reached).
        leading_order: the ``ε`` exponent of ``1/(η′ρ²)`` over the same cells, the per-step
            rate of Lemmas 2 and 4 (``None`` where ``ε`` does not vary).
        table1: Table 1's ``(ε, d)`` exponents for the flat event under the theorems'
            parameters, else ``None``.
    """

    problem: str
    regime: str
    method: str
    event: str
    exponents: dict
    used: int
    at_start: int
    censored: int
    leading_order: float | None
    table1: tuple | None = field(default=None)


def power_law(columns: dict, y) -> dict:
    """Least squares of ``log y`` on ``1`` and the logs of ``columns``: ``{name: (slope, 95% half-width)}``.

    The half-widths are Student-t intervals from the residual variance; ``None`` when there
    are no residual degrees of freedom.
    """
    y = np.log(np.asarray(y, dtype=float))
    X = np.column_stack([np.ones_like(y)] + [np.log(np.asarray(c, dtype=float)) for c in columns.values()])
    if len(y) < X.shape[1]:
        raise ValueError(f"a power law in {list(columns)} needs at least {X.shape[1]} points, got {len(y)}")
    coef, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    if rank < X.shape[1]:
        raise ValueError(f"the design in {list(columns)} is rank deficient")
    dof = len(y) - X.shape[1]
    if dof == 0:
        return {name: (float(c), None) for name, c in zip(columns, coef[1:])}
    residual = y - X @ coef
    cov = (residual @ residual / dof) * np.linalg.inv(X.T @ X)
    half = stats.t.ppf(0.975, dof) * np.sqrt(np.diag(cov))
    return {name: (float(c), float(h)) for name, c, h in zip(columns, coef[1:], half[1:])}


def fit(group: list[Cell]) -> Fit:
    """The :class:`Fit` of one group of cells (one problem, regime, method and event)."""
    first = group[0]
    used = [c for c in group if 0 < c.median < math.inf]
    columns = {}
    for name, values in (("eps", [c.eps for c in used]), ("d", [c.dim for c in used])):
        if None not in values and len(set(values)) > 1:
            columns[name] = values
    try:
        exponents = power_law(columns, [c.median for c in used])
    except ValueError:  # too few cells, or ε and d collinear over them: the table shows "—"
        exponents = {}
    leading = None
    if exponents and "eps" in columns:
        leading = power_law(columns, [1.0 / (c.eta_prime * c.rho**2) for c in used])["eps"][0]
    table1 = None
    if first.regime == "theory" and first.event == "flat" and used:
        branches = {table1_exponents(first.method, c.eps, c.dim) for c in used}
        table1 = branches.pop() if len(branches) == 1 else None
    return Fit(
        problem=first.problem,
        regime=first.regime,
        method=first.method,
        event=first.event,
        exponents=exponents,
        used=len(used),
        at_start=sum(c.median == 0 for c in group),
        censored=sum(c.median == math.inf for c in group),
        leading_order=leading,
        table1=table1,
    )


def fits(rows: list[dict]) -> list[Fit]:
    """One :class:`Fit` per problem, regime, method and event."""
    groups = defaultdict(list)
    for event in ("flat", "half"):
        for cell in cells(rows, event):
            groups[cell.problem, cell.regime, cell.method, event].append(cell)
    return [fit(groups[key]) for key in sorted(groups)]


@dataclass(frozen=True)
class Speedup:
    """RS's median steps to halve the trace gap over SA's, per ``d``, at equal ``η′, ρ`` (fixed regime).

    Lemma 4 against Lemma 2 predicts ``ratio ≈ d``; ``exponent`` is the fitted ``b`` in ``ratio ∝ dᵇ``.
    """

    dims: tuple[int, ...]
    rs: tuple[float, ...]
    sa: tuple[float, ...]
    ratio: tuple[float, ...]
    exponent: tuple[float, float | None]


def speedup(rows: list[dict], problem: str = "network") -> Speedup:
    """The :class:`Speedup` of RS over SA on ``problem`` (sizes where both medians are finite)."""
    medians = {
        (c.method, c.dim): c.median
        for c in cells(rows, "half")
        if c.problem == problem and c.regime == "fixed" and 0 < c.median < math.inf
    }
    dims = tuple(sorted(d for method, d in medians if method == "RS" and ("SA", d) in medians))
    if len(dims) < 3:
        raise ValueError(f"the speed-up on {problem} needs at least 3 sizes where RS and SA both halve, got {dims}")
    rs = tuple(medians["RS", d] for d in dims)
    sa = tuple(medians["SA", d] for d in dims)
    ratio = tuple(r / s for r, s in zip(rs, sa))
    return Speedup(dims, rs, sa, ratio, power_law({"d": dims}, ratio)["d"])


# ------------------------------------------------------------ output
def _signed(x: float) -> str:
    """``x`` to two decimals with its sign, and no ``−0.00``."""
    return f"{round(x, 2) + 0.0:+.2f}"


def _exponent(value) -> str:
    if value is None:
        return "—"
    estimate, half = value
    return _signed(estimate) if half is None else f"{_signed(estimate)} ± {half:.2f}"


_PARAMETERS = {"theory": "theorems' schedules", "fixed": "equal fixed η′, ρ"}
_EVENTS = {"flat": "(ε, √ε)-flat", "half": "trace gap halved"}


def markdown(grid: Grid, rows: list[dict], fitted: list[Fit], ratio: Speedup) -> str:
    """The fitted exponents next to Table 1's, and the RS/SA speed-up per ``d``, as markdown."""
    lines = [
        "# Table 1 in numbers",
        "",
        "Regenerate with `python -m flatref rates` (module `flatref.rates`). Steps from the sharp minimum until the",
        "event, median over seeds; exponents of `steps ∝ ε^a d^b` by least squares on logs over the cells' medians,",
        "with 95% confidence half-widths. *Leading order*: the ε exponent of `1/(η′ρ²)`, the per-step rate of",
        "Lemmas 2 and 4. Cells: fitted / already met at the start / not reached in "
        f"{grid.max_steps:,} steps by most seeds.",
        "",
        "| problem | parameters | method | steps until | cells | ε exponent | leading order | Table 1 "
        "| d exponent | Table 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in fitted:
        if not f.exponents:
            continue  # nothing varies over the cells (halving at fixed η′, ρ on Example 1): see the CSV
        table_eps, table_d = ("—", "—") if f.table1 is None else (f"{f.table1[0]:g}", f"{f.table1[1] + 0.0:g}")
        if "d" not in f.exponents:
            table_d = "—"
        leading = "—" if f.leading_order is None else _signed(f.leading_order)
        lines.append(
            f"| {f.problem} | {_PARAMETERS[f.regime]} | {f.method} | {_EVENTS[f.event]} "
            f"| {f.used} / {f.at_start} / {f.censored} | {_exponent(f.exponents.get('eps'))} | {leading} "
            f"| {table_eps} | {_exponent(f.exponents.get('d'))} | {table_d} |"
        )
    lines += [
        "",
        "## RS against SA at equal η′, ρ (network, steps until the trace gap halves)",
        "",
        f"Lemma 4 against Lemma 2 predicts a ratio of `d`; fitted: ratio ∝ d^({_exponent(ratio.exponent)}).",
        "",
        "| d | RS | SA | RS / SA | (RS / SA) / d |",
        "|---|---|---|---|---|",
    ]
    for d, rs, sa, r in zip(ratio.dims, ratio.rs, ratio.sa, ratio.ratio):
        lines.append(f"| {d} | {rs:,.0f} | {sa:,.0f} | {r:.1f} | {r / d:.2f} |")
    lines += ["", *_per_size(rows)]
    seeds = grid.seeds
    lines += [
        "",
        f"Grid: Example 1 at ε ∈ {_list(grid.example1_eps)}; diagonal networks (n = d/8, 2-sparse truth) at",
        f"d ∈ {_list(grid.network_dims)} and ε ∈ {_list(grid.network_eps)}; {seeds} seeds per cell; "
        f"{len(rows)} rows in `rates.csv`.",
        f"Constants (δ = 1): {_constants()}; fixed regime (η′, ρ): {FIXED}.",
        "",
    ]
    return "\n".join(lines)


def _per_size(rows: list[dict]) -> list[str]:
    """The ε exponent of the flat event fitted at each network size alone (no ``d`` term);
    "—" where fewer than 3 cells were reached after the start (no confidence interval)."""
    columns = [(regime, method) for regime in ("theory", "fixed") for method in ("RS", "SA")]
    groups = defaultdict(list)
    for cell in cells(rows, "flat"):
        if cell.problem == "network":
            groups[cell.dim, cell.regime, cell.method].append(cell)
    lines = [
        "## The flat event's ε exponent at each network size",
        "",
        "Fitted at one `d` at a time (\"—\": fewer than 3 cells reached after the start).",
        "",
        "| d | " + " | ".join(f"{method}, {_PARAMETERS[regime]}" for regime, method in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for d in sorted({d for d, _, _ in groups}):
        fitted = [fit(groups[d, regime, method]).exponents.get("eps") for regime, method in columns]
        fitted = [e if e is not None and e[1] is not None else None for e in fitted]
        lines.append(f"| {d} | " + " | ".join(_exponent(e) for e in fitted) + " |")
    return lines


def _list(values) -> str:
    return "{" + ", ".join(f"{v:.3g}" for v in values) + "}"


def _constants() -> str:
    return "; ".join(
        f"{problem} {method}: c_η′ = {c['c_eta_prime']:g}, c_ρ = {c['c_rho']:g}"
        for (problem, method), c in CONSTANTS.items()
    )


def figure(plt, grid: Grid, rows: list[dict], ratio: Speedup):
    """Four log–log panels: Example 1 and the network under the theorems' schedules (steps to
    flat against ``ε``, Table 1's slopes dotted), the network at equal ``η′, ρ`` (steps to halve
    the trace gap against ``d``), and RS/SA against ``d`` with the prediction ``ratio = d``."""
    flat, half = cells(rows, "flat"), cells(rows, "half")
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), constrained_layout=True)
    (ax_ex1, ax_net), (ax_d, ax_ratio) = axes

    def select(group, problem, regime, method, **extra):
        return [
            c for c in group if (c.problem, c.regime, c.method) == (problem, regime, method)
            and all(getattr(c, k) == v for k, v in extra.items())
        ]  # fmt: skip

    def plot(ax, chosen, color, label, x="eps", **style):
        """Medians against ``x`` (a cell attribute) with min–max bars, over the cells reached after
        the start; returns ``(x, median)``, or ``None`` if there are none."""
        chosen = sorted((c for c in chosen if 0 < c.median < math.inf), key=lambda c: getattr(c, x))
        if not chosen:
            return None
        x = np.array([getattr(c, x) for c in chosen], dtype=float)
        median = np.array([c.median for c in chosen])
        low, high = median - [c.low for c in chosen], np.array([c.high for c in chosen]) - median
        yerr = [low, np.where(np.isfinite(high), high, 0.0)]
        ax.errorbar(x, median, yerr=yerr, color=color, label=label, capsize=2, **style)
        return x, median

    def guide(ax, xy, method, dim, eps_grid, color):
        """Table 1's ε slope for ``method`` at ``dim``, dotted over ``eps_grid`` through the
        largest-ε point of ``xy``."""
        if xy is None:
            return
        x0, y0 = xy[0][-1], xy[1][-1]
        slope = table1_exponents(method, x0, dim)[0]
        x = np.array([min(eps_grid), max(eps_grid)])
        ax.plot(x, y0 * (x / x0) ** slope, ":", color=color, lw=1, label=f"{method}: Table 1, ε^{slope:g}")

    for method in ("RS", "SA"):
        color = COLORS[method]
        xy = plot(ax_ex1, select(flat, "example1", "theory", method), color, f"{method}: flat", marker="o")
        guide(ax_ex1, xy, method, 2, grid.example1_eps, color)
        halved = select(half, "example1", "theory", method)
        plot(ax_ex1, halved, color, f"{method}: gap halved", marker="s", ls="--", alpha=0.6)
        for k, d in enumerate(grid.network_dims):
            alpha = 0.35 + 0.65 * (k + 1) / len(grid.network_dims)
            chosen = select(flat, "network", "theory", method, dim=d)
            xy = plot(ax_net, chosen, color, f"{method}, d = {d}", marker="o", alpha=alpha)
            if d == grid.network_dims[0]:
                guide(ax_net, xy, method, d, grid.network_eps, color)
        plot(ax_d, select(half, "network", "fixed", method), color, method, x="dim", marker="o")

    ax_ex1.set_title("(a) Example 1 (d = 2), theorems' schedules")
    ax_net.set_title("(b) diagonal network, theorems' schedules: steps to flat")
    ax_d.set_title(f"(c) network, equal η′, ρ = {FIXED['network']}: steps to halve the trace gap")
    for ax in (ax_ex1, ax_net):
        ax.set(xscale="log", yscale="log", xlabel="ε", ylabel="steps (median; bars: min–max over seeds)")
        ax.invert_xaxis()
        ax.legend(fontsize=7, ncol=2)
    ax_d.set(xscale="log", yscale="log", xlabel="d", ylabel="steps (median; bars: min–max over seeds)")
    ax_d.legend(fontsize=8)

    dims = np.array(ratio.dims, dtype=float)
    ax_ratio.plot(dims, ratio.ratio, "o-", color="black", label="measured RS / SA")
    ax_ratio.plot(dims, dims, ":", color="grey", label="Lemma 4 vs Lemma 2: ratio = d")
    ax_ratio.set(xscale="log", yscale="log", xlabel="d", ylabel="RS steps / SA steps (trace gap halved)")
    ax_ratio.set_title(f"(d) speed-up of SA over RS: ratio ∝ d^({_exponent(ratio.exponent)})")
    ax_ratio.legend(fontsize=8)
    return fig


@dataclass(frozen=True)
class Rates:
    """What :func:`rates` measured and wrote."""

    grid: Grid
    rows: list = field(repr=False)
    fits: list = field(repr=False)
    speedup: Speedup
    table: str = field(repr=False)
    paths: tuple


def rates(out_dir="figures", *, quick: bool = False, jobs: int | None = None, progress: bool = False) -> Rates:
    """Measure the grid (:data:`FULL`, or :data:`QUICK`), fit, and write ``rates.csv`` (every run),
    ``rates.md`` (the fitted exponents next to Table 1's) and ``rates.png`` into ``out_dir``."""
    grid = QUICK if quick else FULL
    rows = measure(grid, jobs=jobs, progress=progress)
    fitted, ratio = fits(rows), speedup(rows)
    table = markdown(grid, rows, fitted, ratio)
    out_dir = Path(out_dir)
    plt = _pyplot()
    png = _write(plt, figure(plt, grid, rows, ratio), out_dir, "rates", COLUMNS,
                 [[_csv_value(row[c]) for c in COLUMNS] for row in rows])  # fmt: skip
    md = out_dir / "rates.md"
    md.write_text(table, encoding="utf-8")
    return Rates(grid, rows, fitted, ratio, table, (out_dir / "rates.csv", md, png))


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
