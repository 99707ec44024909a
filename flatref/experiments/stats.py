"""Statistics of a sweep: cells (median and range over seeds), power-law fits and the RS/SA speed-up.

Exponents of ``steps ∝ εᵃ dᵇ`` are fitted by least squares on the logs of the cells'
medians (:func:`fit`), with Student-t 95 % intervals; a run that never reached an event
counts as ``∞``, so a median is finite only when more than half the seeds reached it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..theory import table1_exponents
from .sweeps import Row


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


def cells(rows: list[Row], event: str) -> list[Cell]:
    """Group ``rows`` into :class:`Cell` s for ``event`` (``"flat"`` or ``"half"``)."""
    if event not in ("flat", "half"):
        raise ValueError(f"event must be 'flat' or 'half', got {event!r}")
    groups = defaultdict(dict)
    for row in rows:
        eps = None if event == "half" and row.regime == "fixed" else row.eps
        key = (row.problem, row.regime, row.method, event, row.dim, eps)
        steps = row.steps_to_flat if event == "flat" else row.steps_to_half
        groups[key][row.seed] = (math.inf if steps is None else steps, row.eta_prime, row.rho)
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


def fits(rows: list[Row]) -> list[Fit]:
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


def speedup(rows: list[Row], problem: str = "network") -> Speedup:
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
