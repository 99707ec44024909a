"""The recipes of the demo and the figures: which methods, from where, with which parameters.

Every figure's runs are one :func:`~flatref.experiments.parallel.parallel_map` over
:class:`FigureRun` tasks, each a run of one method followed by the limit map along it
(:func:`figure_runs`); the report layer draws the result. Settings that the figures'
captions quote live here, once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_problem
from ..algorithms import GD, RS, SA, SAM, LabelNoiseSGD, StepRule
from ..driver import Trajectory, run
from ..errors import CertificateError, MissingExtraError
from ..flatness import FlatnessPath, FlatnessReport, flatness_along, flatness_report
from ..flow import LimitPoint, limit_map
from ..problems import Problem
from ..spectrum import top_eigenvalue_step
from .parallel import parallel_map
from .registry import make

#: Example 1's runs start just off the sharp minimum (3, 1/3): there ∇f = 0 exactly,
#: which leaves SAM without an ascent direction (and GD without a move either way).
EXAMPLE1_START = (3.0, 0.34)


def near_sharp_minimum(problem: Problem, *, noise: float = 1e-3, rng=0) -> tuple[np.ndarray, float]:
    """The problem's sharp minimum plus ``noise`` Gaussian noise, and ``η = 1/λ_max`` at the sharp minimum.

    At the sharp minimum itself ``∇f = 0`` up to rounding, which leaves SAM no ascent
    direction; ``1e-3`` moves off it by far less than any run travels.

    Examples:
        >>> start, eta = near_sharp_minimum(make("example1"))   # λ_max(∇²f(3, 1/3)) = 2(9 + 1/9) = 164/9
        >>> round(eta, 12) == round(9 / 164, 12), bool(np.linalg.norm(start - [3.0, 1 / 3]) < 1e-2)
        (True, True)
    """
    sharp = problem.sharp_minimum()
    return sharp + noise * np.random.default_rng(rng).standard_normal(problem.dim), top_eigenvalue_step(problem, sharp)


def standard_methods(eta: float, *, stochastic_sam: bool = False) -> dict[str, StepRule]:
    """GD, RS, SA (``η′ = 0.05``, ``ρ = 0.1``), SAM (``η/2``, ``ρ = 0.05``; also batch 1 if asked)
    and label-noise SGD (``η/2``, ``σ = 0.1``).

    Examples:
        >>> list(standard_methods(0.1, stochastic_sam=True))
        ['GD', 'RS', 'SA', 'SAM', 'SAM (b=1)', 'LabelNoiseSGD']
    """
    methods = {"GD": GD(eta), "RS": RS(eta, 0.05, 0.1), "SA": SA(eta, 0.05, 0.1), "SAM": SAM(0.5 * eta, 0.05)}
    if stochastic_sam:
        methods["SAM (b=1)"] = SAM(0.5 * eta, 0.05, batch_size=1)
    methods["LabelNoiseSGD"] = LabelNoiseSGD(0.5 * eta, 0.1)
    return methods


#: The gradient steps that end :func:`escape`: they shrink ‖∇f‖ by ``(1 − ηλ)^100`` along each
#: normal direction, far below the demo's ``ε``, while ``Φ`` moves only to second order.
FINISH_STEPS = 100


def escape(problem: Problem, method: StepRule, x0, steps: int, rng: int, *, settle: float = 3.0,
           finish_steps: int = FINISH_STEPS) -> np.ndarray:  # fmt: skip
    """``steps`` steps of ``method``, ``steps`` more with ``ρ/settle``, then ``finish_steps`` gradient steps.

    The second leg, at a third of the radius, settles RS's noise along the minima set;
    the gradient steps bring the iterate onto it and keep ``Φ`` to first order (Lemma 6).

    Examples:
        >>> from flatref.algorithms import GD, SA
        >>> p = make("example1")
        >>> escape(p, SA(0.05, 0.05, 0.3), [3.0, 1 / 3], 500, 0).round(3).tolist()   # the flat minimum (1, 1)
        [1.0, 1.0]
        >>> x = escape(p, GD(0.05), EXAMPLE1_START, 500, 0)       # GD only descends to the sharp minimum nearby
        >>> round(float(x[0] * x[1]), 9), round(float(x[0]), 2)
        (1.0, 3.0)
    """
    first = run(problem, method, x0, steps=steps, rng=rng)
    if hasattr(method, "rho"):
        settled = dataclasses.replace(method, rho=method.rho / settle)
        second = run(problem, settled, first.x_last, steps=steps, rng=rng + 1)
    else:
        second = run(problem, method, first.x_last, steps=steps)
    return run(problem, GD(method.eta), second.x_last, steps=finish_steps).x_last


def demo_cases():
    """``(label, problem, start, methods, steps, ε)``: the sharp minima of Example 1 and of a network.

    Examples:
        >>> [(label, steps, eps) for label, _, _, _, steps, eps in demo_cases()]
        [('Example 1', 2000, 0.02), ('diagonal network, d = 40', 3000, 0.001)]
        >>> all(round(float(problem.f(x0)), 12) == 0 for _, problem, x0, *_ in demo_cases())   # each start is a minimum
        True
    """
    ex1 = make("example1")
    yield "Example 1", ex1, ex1.sharp_minimum(), [GD(0.05), RS(0.05, 0.05, 0.3), SA(0.05, 0.05, 0.3)], 2000, 0.02
    net = make("network")
    x0 = net.sharp_minimum()
    eta = top_eigenvalue_step(net, x0)
    yield "diagonal network, d = 40", net, x0, [GD(eta), RS(eta, 0.05, 0.1), SA(eta, 0.05, 0.1)], 3000, 1e-3


@dataclass(frozen=True)
class Escape:
    """One demo run: the case's label, the method's name, the steps taken, ``ε``, and the
    :class:`~flatref.flatness.FlatnessReport` at the start and at the end (Definition 3 with ``ε′ = √ε``)."""

    label: str
    method: str
    steps: int
    eps: float
    start: FlatnessReport = field(repr=False)
    end: FlatnessReport = field(repr=False)


def demo_escapes() -> list[Escape]:
    """:func:`escape` for every method of every :func:`demo_cases` case (seed = the method's position).

    Examples:
        >>> escapes = demo_escapes()                                          # doctest: +SKIP
        >>> [(e.method, e.end.is_flat) for e in escapes if e.label == "Example 1"]  # doctest: +SKIP
        [('GD', False), ('RS', True), ('SA', True)]
    """
    out = []
    for label, problem, x0, methods, steps, eps in demo_cases():
        start = flatness_report(problem, x0, eps, eps**0.5)
        for k, method in enumerate(methods):
            end = flatness_report(problem, escape(problem, method, x0, steps, rng=k), eps, eps**0.5)
            out.append(Escape(label, type(method).__name__, 2 * steps + FINISH_STEPS, eps, start, end))
    return out


# ------------------------------------------------------------ the figures' runs
@dataclass(frozen=True)
class FigureRun:
    """One run of a figure: the setup's name, the method's label and rule, the start and the run's options.

    Examples:
        >>> FigureRun("example1", "GD", GD(0.05), EXAMPLE1_START, 100, 0, 50)   # the start is left out of the repr
        FigureRun(setup='example1', label='GD', method=GD(eta=0.05), steps=100, rng=0, record_every=50)
    """

    setup: str
    label: str
    method: StepRule
    start: tuple = field(repr=False)
    steps: int
    rng: int
    record_every: int


@dataclass(frozen=True)
class RunData:
    """What a figure needs of one run: the trajectory, flatness along it, and ``Φ`` of its last iterate.

    Examples:
        >>> data = compute_run(FigureRun("example1", "SA", SA(0.05, 0.05, 0.3), EXAMPLE1_START, 200, 0, 100))
        >>> bool(np.array_equal(data.path.steps, data.trajectory.record_steps)), data.last_limit.status
        (True, 'converged')
    """

    trajectory: Trajectory
    path: FlatnessPath
    last_limit: LimitPoint


def compute_run(task: FigureRun) -> RunData:
    """Run ``task`` and compute flatness at the limit of every recorded iterate (the slow part).

    Examples:
        >>> data = compute_run(FigureRun("example1", "SA", SA(0.05, 0.05, 0.3), EXAMPLE1_START, 200, 0, 50))
        >>> data.trajectory.record_steps.tolist(), data.path.tr_bar.round(2).tolist()   # tr̄(Φ(x_t)): 9 + 1/9 → 2
        ([0, 50, 100, 150, 200], [9.11, 4.11, 2.47, 2.08, 2.01])
        >>> bool(np.all(np.diff(data.path.trace_gap) < 0))           # SA lowers the trace along X* (Lemma 4)
        True
    """
    problem = make(task.setup)
    trajectory = run(problem, task.method, np.array(task.start), steps=task.steps, rng=task.rng,
                     record_every=task.record_every)  # fmt: skip
    return RunData(trajectory, flatness_along(problem, trajectory), limit_map(problem, trajectory.x_last))


def figure_runs(setup: str, methods: dict, start, *, steps: int, record_every: int, rng: int = 0,
                jobs: int | None = None, on_done=None) -> dict[str, RunData]:  # fmt: skip
    """:func:`compute_run` for every method from ``start``, through joblib; ``{label: RunData}``.

    Examples:
        >>> runs = figure_runs("example1", {"GD": GD(0.05), "SA": SA(0.05, 0.05, 0.3)}, EXAMPLE1_START, steps=200,
        ...                    record_every=100, jobs=1)
        >>> {label: data.path.tr_bar.round(2).tolist() for label, data in runs.items()}   # GD stays sharp
        {'GD': [9.11, 9.11, 9.11], 'SA': [9.11, 2.47, 2.01]}
    """
    start = tuple(float(v) for v in start)
    tasks = [FigureRun(setup, label, m, start, steps, rng, record_every) for label, m in methods.items()]
    return dict(zip(methods, parallel_map(compute_run, tasks, jobs=jobs, on_done=on_done)))


def example1_runs(steps: int, **options) -> dict[str, RunData]:
    """GD, RS, SA, SAM and label-noise SGD from next to Example 1's sharp minimum, ``(3, 0.34)``.

    Step size ``η = 0.05 < 1/λ_max(∇²f(3, 1/3)) = 1/18.2`` for all; RS and SA use
    ``η′ = 0.05``, ``ρ = 0.3``; SAM ``ρ = 0.3``; label noise ``σ = 0.5``. Recorded every 10 steps.

    Examples:
        >>> runs = example1_runs(steps=100, jobs=1)
        >>> list(runs), {len(data.trajectory.record_steps) for data in runs.values()}   # steps 0, 10, …, 100
        (['GD', 'RS', 'SA', 'SAM', 'LabelNoiseSGD'], {11})
    """
    methods = {
        "GD": GD(0.05),
        "RS": RS(0.05, 0.05, 0.3),
        "SA": SA(0.05, 0.05, 0.3),
        "SAM": SAM(0.05, 0.3),
        "LabelNoiseSGD": LabelNoiseSGD(0.05, 0.5),
    }
    return figure_runs("example1", methods, EXAMPLE1_START, steps=steps, record_every=10, **options)


def network_runs(steps: int, **options) -> dict[str, RunData]:
    """All methods (SAM also at batch 1) on the ``network`` setup (d = 40), from near its sharp minimum.

    Start: the sharp minimum (the dense min-norm interpolant with ``|u| = 4|v|``) plus ``1e-3``
    noise; ``η = 1/λ_max`` there; the methods of :func:`standard_methods`. Recorded every 150 steps.

    Examples:
        >>> runs = network_runs(steps=1, jobs=1)
        >>> list(runs)
        ['GD', 'RS', 'SA', 'SAM', 'SAM (b=1)', 'LabelNoiseSGD']
        >>> runs["GD"].trajectory.method.eta == near_sharp_minimum(make("network"))[1]   # η = 1/λ_max at the start
        True
    """
    start, eta = near_sharp_minimum(make("network"))
    methods = standard_methods(eta, stochastic_sam=True)
    return figure_runs("network", methods, start, steps=steps, record_every=150, **options)


def batch_runs(steps: int, **options) -> dict[str, RunData]:
    """The paper's Figure 3 at CPU scale: RS against SA, and SA at batch sizes 1, 4, 16 and full.

    The ``network-128`` setup; start: the sharp minimum plus ``1e-3`` noise; ``η = 1/λ_max``
    there, ``η′ = 0.05``, ``ρ = 0.1`` for all. Recorded every 100 steps.

    Examples:
        >>> # about 4 s even for one step (the flows at d = 128), so not run as a test
        >>> list(batch_runs(steps=1, jobs=1))        # doctest: +SKIP
        ['RS', 'SA, b = 1', 'SA, b = 4', 'SA, b = 16', 'SA, full batch']
    """
    problem = make("network-128")
    start, eta = near_sharp_minimum(problem)
    methods = {"RS": RS(eta, 0.05, 0.1)}
    for b in (1, 4, 16, problem.n_samples):
        methods[f"SA, b = {b}" if b < problem.n_samples else "SA, full batch"] = SA(eta, 0.05, 0.1, batch_size=b)
    return figure_runs("network-128", methods, start, steps=steps, record_every=100, **options)


def sensing_runs(steps: int, **options) -> dict[str, RunData]:
    """GD, RS, SA, SAM and label noise on the ``sensing-18`` setup (below the ``m ≈ 2nk = 20`` at
    which ``M*`` becomes the only PSD interpolant, so sharper interpolants exist).

    Start: the sharp interpolant with large extra columns plus ``1e-3`` noise; ``η = 1/λ_max``
    there; the methods of :func:`standard_methods`. Recorded every 150 steps.

    Examples:
        >>> runs = sensing_runs(steps=1, jobs=1)
        >>> list(runs), all(data.last_limit.success for data in runs.values())
        (['GD', 'RS', 'SA', 'SAM', 'LabelNoiseSGD'], True)
    """
    start, eta = near_sharp_minimum(make("sensing-18"))
    return figure_runs("sensing-18", standard_methods(eta), start, steps=steps, record_every=150, **options)


#: A flattest minimum this close to ``M*`` (relative Frobenius error) is the truth: the SDP returns
#: ``M*`` to about ``1e-13`` on ``sensing-18`` (seed 0), while other instances' flattest minima stand ``O(0.1)`` off.
SAME_MINIMUM = 1e-8


def sensing_reference(problem: Problem) -> dict[str, float]:
    """The sensing figure's reference lines ``{label: tr∇²f}``: the certified flattest minimum and the truth.

    The flattest minimum comes from the semidefinite program of
    :meth:`~flatref.problems.MatrixSensing.flattest_minimum` (the ``sdp`` extra). One line when
    it is the truth ``UUᵀ = M*`` (to :data:`SAME_MINIMUM`), two when it is not, and only the
    truth's, labelled so, when the flattest minimum is unknown (no cvxpy, or no certificate).

    Examples:
        >>> lines = sensing_reference(make("sensing-18"))   # seed 0: the flattest minimum is the truth
        >>> len(lines), [round(trace, 2) for trace in lines.values()]
        (1, [40.37])
    """
    check_problem(problem)
    truth = float(problem.trace_hess(problem.truth_factor().ravel()))
    try:
        best = problem.flattest_minimum()
    except (MissingExtraError, CertificateError) as err:
        reason = "no cvxpy" if isinstance(err, MissingExtraError) else "no SDP certificate"
        return {rf"at the truth $UU^\top = M^*$ (flattest unknown: {reason})": truth}
    if best.recovery_error < SAME_MINIMUM:
        return {r"flattest (SDP) = the truth $UU^\top = M^*$": best.trace}
    return {"flattest (SDP)": best.trace, r"at the truth $UU^\top = M^*$": truth}
