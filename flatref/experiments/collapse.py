"""The methods against the slow flow on the minima (docs/theory.md §6.7): the runs of ``limit_flow.png``.

Each method runs from near the sharp minimum for as many steps as its clock needs to cover the
flow time ``T`` of its setup (:func:`~flatref.theory.flow_time_per_step`), and is read at ``Φ`` of
its recorded iterates; the flow is :func:`~flatref.slow_flow.limit_flow` from the same start.
Beside them, SA's gap to the flow at fixed ``ρ`` as ``η′`` shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..algorithms import RS, SA, SAM, LabelNoiseSGD
from ..driver import run
from ..flow import limit_map
from ..slow_flow import SlowFlow, limit_flow
from .._validation import as_int
from ..theory import flow_time_per_step
from .parallel import parallel_map
from .recipes import FigureRun, RunData, compute_run, near_sharp_minimum
from .registry import make

#: The setups of the figure and the flow time each is followed to (where the flow has done most of its work).
FLOW_TIMES = {"example1": 1.0, "network": 20.0, "sensing-18": 1.0}

#: The steps of the full figure, and the setups of a quicker one (see :func:`collapse_runs`).
FULL_STEPS = 2000
QUICK_SETUPS = ("example1", "network")

#: The records per run, and the gap panel's setup: SA at ``ρ = 0.3`` on ``network`` to flow time 4, 10 seeds.
RECORDS = 20
GAP_ETA_PRIMES = (0.04, 0.02, 0.01, 0.005)
GAP_SEEDS = 10
GAP_TIME = 4.0


@dataclass(frozen=True)
class Collapse:
    """One setup: the slow flow, and each method's runs with its flow time per step ``{label: (τ, RunData)}``."""

    setup: str
    flow: SlowFlow = field(repr=False)
    runs: dict = field(repr=False)


@dataclass(frozen=True)
class GapCurve:
    """SA's mean ``tr̄(Φ(x_t))`` minus the flow's at ``t·τ = GAP_TIME``, with standard errors, against ``η′``."""

    eta_prime: tuple
    gap: np.ndarray
    std_error: np.ndarray
    drop: float


def clocked_methods(problem, eta: float, flow_time: float, steps: int) -> dict:
    """RS, SA (batch 1), label-noise SGD and batch-1 SAM, each with the steps that cover ``flow_time``.

    SA takes ``steps`` steps at ``ρ = 0.1`` (so ``η′ = 2T/(steps·d·ρ²)``); RS uses the same ``η′``
    and ``ρ`` (hence ``d`` times the steps); label noise and SAM run at ``η/8`` for sixteen times
    ``steps``, with ``σ`` and ``ρ`` chosen to match: ``τ = dwη²σ²/4`` and ``τ = dηρ²/2``. Their gap to
    the flow is linear in their ``η`` (at ``η/2`` it was 16 % of the flow's drop on ``network``).

    Examples:
        >>> from flatref.problems import Example1
        >>> {k: n for k, (m, n) in clocked_methods(Example1(), 0.05, 1.0, 2000).items()}
        {'RS': 4000, 'SA': 2000, 'LabelNoiseSGD': 32000, 'SAM (b=1)': 32000}
    """
    d, rho, slow, eta_slow = problem.dim, 0.1, 16 * steps, eta / 8
    eta_prime = 2 * flow_time / (steps * d * rho**2)
    tau = flow_time / slow
    methods = {
        "RS": RS(eta, eta_prime, rho),
        "SA": SA(eta, eta_prime, rho),
        "LabelNoiseSGD": LabelNoiseSGD(eta_slow, float(np.sqrt(4 * tau / (d * problem.loss.weight * eta_slow**2)))),
        "SAM (b=1)": SAM(eta_slow, float(np.sqrt(2 * tau / (d * eta_slow))), batch_size=1),
    }
    return {label: (m, round(flow_time / flow_time_per_step(m, problem))) for label, m in methods.items()}


def collapse_runs(steps: int, *, setups=None, gap_seeds: int | None = None, jobs: int | None = None,
                  on_done=None) -> tuple[list[Collapse], GapCurve]:  # fmt: skip
    """The flow and the clocked runs of each of ``setups`` (keys of :data:`FLOW_TIMES`; SA takes ``steps``
    steps), and the gap curve from ``gap_seeds`` seeds per ``η′``.

    ``setups=None`` and ``gap_seeds=None`` take every setup and :data:`GAP_SEEDS` seeds when
    ``steps ≥ FULL_STEPS``; below (the ``--quick`` figures) they leave ``sensing-18`` out, whose ``Φ``
    of each early iterate is a stiff flow of up to 60,000 gradients, and use 3 seeds.

    Examples:
        >>> collapses, gap = collapse_runs(steps=100, setups=("example1",), gap_seeds=2, jobs=1)
        >>> (example1,) = collapses
        >>> sorted(example1.runs), example1.flow.status, len(gap.gap)
        (['LabelNoiseSGD', 'RS', 'SA', 'SAM (b=1)'], 'completed', 4)
        >>> tau, sa = example1.runs["SA"]               # SA's 100 steps cover flow time T = 1: τ = 0.01
        >>> round(tau, 12), round(float(abs(sa.path.tr_bar[-1] - example1.flow.tr_bar[-1])), 1)
        (0.01, 0.0)
    """
    full = steps >= FULL_STEPS
    setups = (tuple(FLOW_TIMES) if full else QUICK_SETUPS) if setups is None else setups
    gap_seeds = (GAP_SEEDS if full else 3) if gap_seeds is None else gap_seeds
    unknown = set(setups) - set(FLOW_TIMES)
    if unknown:
        raise ValueError(f"setups must be among {sorted(FLOW_TIMES)}, got {sorted(unknown)}")
    tasks, flows, taus = [], {}, {}
    for setup in setups:
        flow_time = FLOW_TIMES[setup]
        problem = make(setup)
        start, eta = near_sharp_minimum(problem)
        flows[setup] = limit_flow(problem, start, t_end=flow_time)
        for label, (method, n) in clocked_methods(problem, eta, flow_time, steps).items():
            taus[setup, label] = flow_time / n
            tasks.append(FigureRun(setup, label, method, tuple(start), n, 0, max(1, n // RECORDS)))
    results = parallel_map(compute_run, tasks, jobs=jobs, on_done=on_done)
    collapses = [
        Collapse(setup, flows[setup], {t.label: (taus[setup, t.label], r) for t, r in zip(tasks, results)
                                       if t.setup == setup})  # fmt: skip
        for setup in setups
    ]
    return collapses, gap_curve(seeds=gap_seeds, jobs=jobs)


def gap_curve(*, seeds: int = GAP_SEEDS, jobs: int | None = None) -> GapCurve:
    """SA's gap to the flow on ``network`` at flow time :data:`GAP_TIME` for each η′ in :data:`GAP_ETA_PRIMES`,
    averaged over ``seeds`` runs (at least 2, for the standard errors)."""
    problem = make("network")
    start = problem.sharp_minimum()
    flow = limit_flow(problem, start, t_end=GAP_TIME)
    seeds = as_int(seeds, "seeds", minimum=2)
    tasks = [(eta_prime, seed) for eta_prime in GAP_ETA_PRIMES for seed in range(seeds)]
    values = np.array(parallel_map(_gap_run, tasks, jobs=jobs)).reshape(len(GAP_ETA_PRIMES), seeds)
    return GapCurve(GAP_ETA_PRIMES, values.mean(axis=1) - flow.tr_bar[-1],
                    values.std(axis=1, ddof=1) / np.sqrt(seeds), float(flow.tr_bar[0] - flow.tr_bar[-1]))  # fmt: skip


def _gap_run(task) -> float:
    eta_prime, seed = task
    problem = make("network")
    method = SA(0.05, eta_prime, 0.3)
    steps = round(GAP_TIME / flow_time_per_step(method, problem))
    x_last = run(problem, method, problem.sharp_minimum(), steps=steps, rng=seed, record_every=steps).x_last
    return float(problem.trace_hess(limit_map(problem, x_last, throw=True).x) / problem.dim)
