"""Statistics of a sweep: cells (median and range over seeds), power-law fits and the RS/SA speed-up.

Exponents of ``steps ∝ εᵃ dᵇ`` are fitted by least squares on the logs of the cells'
medians (:func:`fit`), with Student-t 95 % intervals; a run that never reached an event
counts as ``∞``, so a median is finite only when more than half the seeds reached it.
A cell is one problem instance at one ``(d, ε)``. The ``ε`` exponent is fitted within
instances with an interval clustered by instance, the ``d`` exponent across the instances'
levels (:func:`panel_power_law`), so the spread between instances is in both intervals.
Cells of the metric event whose start lies
within :data:`NEAR` times the threshold ``√ε`` are set aside: their step counts measure the
last stretch of a passage, not its rate. :func:`fit` also refits with each size and each
instance left out (:attr:`Fit.left_out`), the check that no one of them drives an exponent.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..theory import table1_exponents
from .sweeps import Row

#: A metric-event cell whose start has ``metric ≤ NEAR · √ε`` is not fitted.
NEAR = 2.0

#: The events: the metric at ``Φ(x_t)`` at most ``√ε``, and the raw trace gap halved.
EVENTS = ("metric", "half")


def _example_row(seed, eps, steps, half=None, dim=16, regime="theory", method="RS", instance=0, metric_start=1.0):
    """A :class:`Row` for the examples below: a network run at ``ε`` with ``η′ = 10ε``, ``ρ = 2√ε``,
    first reaching the metric event at step ``steps`` and halving the trace gap at ``half``."""
    return Row("network", dim, instance, regime, method, eps, seed, 1.0, 10 * eps, 2 * eps**0.5, math.inf, steps,
               None, None, None, half, 0, 0, "reached", 1.0, 0.5, metric_start, 0.1)  # fmt: skip


@dataclass(frozen=True)
class Cell:
    """The runs of one problem instance, regime, method and ``ε`` for one event.

    ``median``, ``low`` and ``high`` are the median, minimum and maximum over seeds, with
    a run that never reached the event counted as ``inf`` (so a median is finite only when
    more than half the runs reached it). ``eps`` is ``None`` for halving in the fixed
    regime, where ``ε`` plays no part. ``start_ratio`` is the start's metric over ``√ε``
    (``None`` for halving).

    Examples:
        >>> row = _example_row                    # a network run with η′ = 10ε, ρ = 2√ε
        >>> (cell,) = cells([row(0, 0.01, 100), row(1, 0.01, None), row(2, 0.01, 300)], "metric")
        >>> cell.median, cell.low, cell.high, cell.start_ratio   # two of three seeds reached: a finite median
        (300.0, 100.0, inf, 10.0)
    """

    problem: str
    regime: str
    method: str
    event: str
    dim: int
    instance: int
    eps: float | None
    median: float
    low: float
    high: float
    eta_prime: float
    rho: float
    start_ratio: float | None

    @property
    def near(self) -> bool:
        """A metric-event cell whose start is within :data:`NEAR` times its threshold (and not already past it)."""
        return self.start_ratio is not None and 1.0 < self.start_ratio <= NEAR


def cells(rows: list[Row], event: str) -> list[Cell]:
    """Group ``rows`` into :class:`Cell` s for ``event`` (``"metric"`` or ``"half"``).

    Examples:
        >>> row = _example_row                    # a network run with η′ = 10ε, ρ = 2√ε
        >>> rows = [row(s, e, None, half=50 + s, regime="fixed") for e in (0.01, 0.005) for s in range(3)]
        >>> [(c.eps, c.median) for c in cells(rows, "metric")]  # never reached: one infinite cell per ε
        [(0.01, inf), (0.005, inf)]
        >>> [(c.eps, c.median) for c in cells(rows, "half")]    # halving at fixed η′, ρ: ε plays no part
        [(None, 51.0)]
    """
    if event not in EVENTS:
        raise ValueError(f"event must be one of {EVENTS}, got {event!r}")
    groups = defaultdict(dict)
    for row in rows:
        eps = None if event == "half" and row.regime == "fixed" else row.eps
        key = (row.problem, row.regime, row.method, event, row.dim, row.instance, eps)
        steps = row.steps_to_metric if event == "metric" else row.steps_to_half
        ratio = row.metric_start / math.sqrt(row.eps) if event == "metric" else None
        groups[key][row.seed] = (math.inf if steps is None else steps, row.eta_prime, row.rho, ratio)
    out = []
    for key, runs in groups.items():
        steps = np.array([run[0] for run in runs.values()], dtype=float)
        _, eta_prime, rho, ratio = next(iter(runs.values()))
        out.append(Cell(*key, float(np.median(steps)), float(steps.min()), float(steps.max()), eta_prime, rho, ratio))
    return out


@dataclass(frozen=True)
class Fit:
    """A power law ``steps ∝ εᵃ dᵇ`` fitted to the finite, positive cell medians of one group.

    Attributes:
        exponents: ``{"eps": (a, ±), "d": (b, ±)}`` with 95% confidence half-widths (``None``
            when the fit has no residual degrees of freedom); a variable that does not vary
            over the group's cells is left out.
        used, near, at_start, censored: the cells fitted; those set aside because their start
            is within :data:`NEAR` times the threshold; those whose median is 0 (the start
            already meets the event); those whose median is ``inf`` (not reached).
        leading_order: the ``ε`` exponent of ``1/(η′ρ²)`` over the same cells, the per-step
            rate of Lemmas 2 and 4 (``None`` where ``ε`` does not vary).
        table1: Table 1's ``(ε, d)`` exponents for the metric event under the theorems'
            parameters, else ``None``.
        left_out: ``{name: (change, what)}``: the largest change of each exponent when one
            size (``"d = 16"``) or one instance (``"instance 2"``) is left out and the rest refitted,
            and which one it was (``None`` where no such refit exists).

    Examples:
        >>> row = _example_row                    # a network run with η′ = 10ε, ρ = 2√ε
        >>> f = fits([row(0, e, round(e**-3)) for e in (0.1, 0.05, 0.025)])[0]   # steps = ε⁻³ exactly
        >>> f.event, round(f.exponents["eps"][0], 9), f.table1, round(f.leading_order, 9)   # 1/(η′ρ²) = 1/(40ε²)
        ('metric', -3.0, (-3.0, 0.0), -2.0)
    """

    problem: str
    regime: str
    method: str
    event: str
    exponents: dict
    used: int
    near: int
    at_start: int
    censored: int
    leading_order: float | None
    table1: tuple | None = field(default=None)
    left_out: dict = field(default_factory=dict)


def power_law(columns: dict, y) -> dict:
    """Least squares of ``log y`` on ``1`` and the logs of ``columns``: ``{name: (slope, 95% half-width)}``.

    The half-widths are Student-t intervals from the residual variance; ``None`` when there
    are no residual degrees of freedom.

    Examples:
        >>> fitted = power_law({"eps": [0.1, 0.05, 0.025]}, [100.0, 800.0, 6400.0])   # y = 0.1 ε⁻³
        >>> round(fitted["eps"][0], 12), fitted["eps"][1] < 1e-6
        (-3.0, True)
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


def panel_power_law(used: list[Cell], values=None) -> dict:
    """``steps ∝ εᵃ dᵇ`` over cells from several instances: ``{name: (exponent, 95% half-width)}``.

    The model is ``log steps = c_k + a log ε + noise`` for instance ``k``, with
    ``c_k = c + b log d_k + u_k``: each instance has its own level, and instances differ.

    - ``a`` is fitted within instances (each instance's means of ``log ε`` and ``log steps``
      removed). Its interval is clustered by instance (CR1 sandwich, Student t with ``G − 1``
      degrees of freedom over the ``G`` instances whose ``ε`` varies), so it covers slopes that
      differ from instance to instance; with one such instance, the residual interval.
    - ``b`` is fitted across instances: each instance's level ``mean(log steps − a log ε)``
      against ``log d`` (:func:`power_law`), so the spread between instances is its residual.

    A name is left out where its variable does not vary (no ``ε`` within any instance, one
    ``d``); ``values`` replaces the cells' medians (e.g. ``1/(η′ρ²)``).

    Examples:
        >>> row = _example_row                    # a network run with η′ = 10ε, ρ = 2√ε
        >>> rows = [row(0, e, round(k * 1e-2 * e**-2 * d), dim=d, instance=k)
        ...         for d in (16, 32, 64) for k in (1, 2, 3) for e in (0.1, 0.05, 0.025)]
        >>> fitted = panel_power_law(cells(rows, "metric"))   # instances differ by the factor k
        >>> round(fitted["eps"][0], 2), round(fitted["d"][0], 2), fitted["d"][1] > 0.1   # the spread widens b's
        (-2.0, 1.0, True)
    """
    keys = sorted({(c.dim, c.instance) for c in used})
    group = np.array([keys.index((c.dim, c.instance)) for c in used])
    y = np.log(np.array([c.median for c in used] if values is None else values, dtype=float))
    eps = [c.eps for c in used]
    out, a, log_eps = {}, 0.0, np.zeros_like(y)
    if None not in eps:
        log_eps = np.log(np.array(eps, dtype=float))
        x, z = _demeaned(log_eps, group), _demeaned(y, group)
        if x @ x > 1e-12 * len(x):
            a = float(x @ z / (x @ x))
            out["eps"] = (a, _within_half_width(x, z - a * x, group, len(keys)))
    level = np.array([np.mean(y[group == k] - a * log_eps[group == k]) for k in range(len(keys))])
    dims = [d for d, _ in keys]
    if len(set(dims)) > 1:
        out["d"] = power_law({"d": dims}, np.exp(level))["d"]
    return out


def _demeaned(v, group):
    """``v`` minus its mean over each group."""
    means = np.bincount(group, weights=v) / np.bincount(group)
    return v - means[group]


def _within_half_width(x, residual, group, n_groups):
    """The 95% half-width of the within slope: clustered by group where two or more groups vary in
    ``x``, else from the residuals (``None`` without residual degrees of freedom)."""
    varying = [k for k in range(n_groups) if np.any(x[group == k] != 0)]
    if len(varying) >= 2:
        scores = np.array([x[group == k] @ residual[group == k] for k in varying])
        variance = len(varying) / (len(varying) - 1) * (scores @ scores) / (x @ x) ** 2
        return float(stats.t.ppf(0.975, len(varying) - 1) * math.sqrt(variance))
    dof = len(x) - n_groups - 1
    if dof <= 0:
        return None
    return float(stats.t.ppf(0.975, dof) * math.sqrt(residual @ residual / dof / (x @ x)))


def _fitted(used: list[Cell]) -> dict:
    """:func:`panel_power_law` over ``used``; ``{}`` without cells (the table shows "—")."""
    return panel_power_law(used) if used else {}


def _left_out(used: list[Cell], exponents: dict) -> dict:
    """``{name: (largest |change|, what was left out)}`` over the refits without one size or one instance."""
    subsets = [(f"d = {d}", [c for c in used if c.dim != d]) for d in sorted({c.dim for c in used})]
    instances = sorted({c.instance for c in used})
    if len(instances) > 1:
        subsets += [(f"instance {k}", [c for c in used if c.instance != k]) for k in instances]
    refits = [(what, _fitted(rest)) for what, rest in subsets]
    out = {}
    for name, (value, _) in exponents.items():
        changes = [(abs(refit[name][0] - value), what) for what, refit in refits if name in refit]
        out[name] = max(changes) if changes else None
    return out


def fit(group: list[Cell]) -> Fit:
    """The :class:`Fit` of one group of cells (one problem, regime, method and event).

    Examples:
        >>> row = _example_row                    # a network run with η′ = 10ε, ρ = 2√ε
        >>> rows = [row(0, e, round(1e-3 * e**-3)) for e in (0.1, 0.05, 0.025)]   # 1, 8, 64 steps
        >>> rows += [row(0, 0.2, 0), row(0, 0.0125, None), row(0, 0.16, 9, metric_start=0.6)]
        >>> f = fit(cells(rows, "metric"))         # flat at the start; never flat; start at 1.5 √ε
        >>> (f.used, f.near, f.at_start, f.censored), round(f.exponents["eps"][0], 9)
        ((3, 1, 1, 1), -3.0)
    """
    first = group[0]
    at_start = [c for c in group if c.median == 0]
    near = [c for c in group if c.near and c.median > 0]
    censored = [c for c in group if c.median == math.inf and not c.near]
    used = [c for c in group if 0 < c.median < math.inf and not c.near]
    exponents = _fitted(used)
    leading = None
    if "eps" in exponents:
        leading = panel_power_law(used, [1.0 / (c.eta_prime * c.rho**2) for c in used])["eps"][0]
    table1 = None
    if first.regime == "theory" and first.event == "metric" and used:
        branches = {table1_exponents(first.method, c.eps, c.dim) for c in used}
        table1 = branches.pop() if len(branches) == 1 else None
    return Fit(first.problem, first.regime, first.method, first.event, exponents, len(used), len(near),
               len(at_start), len(censored), leading, table1, _left_out(used, exponents))  # fmt: skip


def fits(rows: list[Row]) -> list[Fit]:
    """One :class:`Fit` per problem, regime, method and event.

    Examples:
        >>> row = _example_row                    # a network run with η′ = 10ε, ρ = 2√ε
        >>> rows = [row(0, e, round(e**-3), half=round(e**-2), method=m) for m in ("RS", "SA") for e in (0.1, 0.05)]
        >>> [(f.method, f.event, round(f.exponents["eps"][0], 9)) for f in fits(rows)]
        [('RS', 'metric', -3.0), ('RS', 'half', -2.0), ('SA', 'metric', -3.0), ('SA', 'half', -2.0)]
    """
    groups = defaultdict(list)
    for event in EVENTS:
        for cell in cells(rows, event):
            groups[cell.problem, cell.regime, cell.method, event].append(cell)
    return [fit(groups[key]) for key in sorted(groups, key=lambda k: (*k[:3], EVENTS.index(k[3])))]


def per_size_fits(rows: list[Row], problem: str = "network") -> dict:
    """The metric event fitted at one size at a time (its instances pooled, no ``d`` term):
    ``{(d, regime, method): Fit}``.

    Examples:
        >>> row = _example_row                    # a network run with η′ = 10ε, ρ = 2√ε
        >>> rows = [row(0, e, round(e**-2 * d), dim=d) for d in (16, 32) for e in (0.1, 0.05, 0.025)]
        >>> {key: round(f.exponents["eps"][0], 6) for key, f in per_size_fits(rows).items()}
        {(16, 'theory', 'RS'): -2.0, (32, 'theory', 'RS'): -2.0}
    """
    groups = defaultdict(list)
    for cell in cells(rows, "metric"):
        if cell.problem == problem:
            groups[cell.dim, cell.regime, cell.method].append(cell)
    return {key: fit(groups[key]) for key in sorted(groups)}


@dataclass(frozen=True)
class Speedup:
    """RS's median steps to halve the trace gap over SA's, per ``d``, at equal ``η′, ρ`` (fixed regime).

    ``rs`` and ``sa`` are medians over every run at that ``d`` (instances and seeds), ``ratio``
    their quotient. Lemma 4 against Lemma 2 predicts ``ratio ≈ d``; ``exponent`` is ``b`` in
    ``ratio ∝ dᵇ``, fitted to each instance's ratio so that the instances' spread enters its interval.

    Examples:
        >>> s = Speedup(dims=(16, 32), rs=(1600.0, 3200.0), sa=(100.0, 100.0), ratio=(16.0, 32.0), exponent=(1.0, None))
        >>> [r / d for r, d in zip(s.ratio, s.dims)]       # (RS / SA) / d: 1 where Lemma 4 holds exactly
        [1.0, 1.0]
    """

    dims: tuple[int, ...]
    rs: tuple[float, ...]
    sa: tuple[float, ...]
    ratio: tuple[float, ...]
    exponent: tuple[float, float | None]


def speedup(rows: list[Row], problem: str = "network") -> Speedup:
    """The :class:`Speedup` of RS over SA on ``problem`` (instances where both medians are finite).

    Examples:
        >>> row = _example_row                    # a network run with η′ = 10ε, ρ = 2√ε
        >>> rows = [row(0, 0.01, None, half=100 * d if m == "RS" else 100, dim=d, regime="fixed", method=m)
        ...         for m in ("RS", "SA") for d in (16, 32, 64)]      # RS needs d times SA's steps
        >>> s = speedup(rows)
        >>> s.dims, s.ratio, round(s.exponent[0], 9)
        ((16, 32, 64), (16.0, 32.0, 64.0), 1.0)
        >>> speedup(rows[:2] + rows[3:5])
        Traceback (most recent call last):
        ...
        ValueError: the speed-up on network needs at least 3 sizes where RS and SA both halve, got (16, 32)
    """
    chosen = [r for r in rows if r.problem == problem and r.regime == "fixed"]
    medians = {
        (c.method, c.dim, c.instance): c.median for c in cells(chosen, "half") if 0 < c.median < math.inf
    }
    pairs = sorted((d, k) for method, d, k in medians if method == "RS" and ("SA", d, k) in medians)
    dims = tuple(sorted({d for d, _ in pairs}))
    if len(dims) < 3:
        raise ValueError(f"the speed-up on {problem} needs at least 3 sizes where RS and SA both halve, got {dims}")

    def pooled(method, d):
        """The median over every run at ``d``: one per instance and seed (a run has a row per threshold)."""
        runs = {(r.instance, r.seed): r.steps_to_half for r in chosen if (r.method, r.dim) == (method, d)}
        return float(np.median([math.inf if s is None else s for s in runs.values()]))

    rs, sa = tuple(pooled("RS", d) for d in dims), tuple(pooled("SA", d) for d in dims)
    exponent = power_law({"d": [d for d, _ in pairs]}, [medians["RS", d, k] / medians["SA", d, k] for d, k in pairs])
    return Speedup(dims, rs, sa, tuple(r / s for r, s in zip(rs, sa)), exponent["d"])
