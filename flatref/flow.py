"""The limit map of gradient flow (Definition 1) and its Jacobian.

``Φ(x) := lim_{t→∞} x(t)`` with ``x(0) = x`` and ``ẋ = −∇f(x)`` (Ahn, Jadbabaie & Sra,
2024, Definition 1). ``∂Φ(x) = lim_{t→∞} W(t)`` with ``Ẇ = −∇²f(x(t)) W``, ``W(0) = I``
(the variational equation). At a point ``x*`` of the minima set ``X*``, where ``X*`` is
locally a manifold and ``rank ∇²f(x*) = d − dim X*``, ``∂Φ(x*)`` is the orthogonal
projector onto the tangent space (the null space of ``∇²f(x*)``); for Setting 1 that
is ``I − Jᵀ(JJᵀ)⁺J`` with ``J`` the output Jacobian (eq. (31)); :mod:`flatref.geometry` computes it.

How :func:`limit_map` computes ``Φ`` (docs/theory.md §6):

1. integrate the flow until ``‖∇f(x)‖ ≤ gtol``: for large training losses by the exponential stage
   (ETDRK4 with the Gauss–Newton Hessian's part ``e^{−hL}`` exact, :func:`exponential_flow`), otherwise, and
   wherever that fails, with :func:`scipy.integrate.solve_ivp` (DOP853 by default) and a terminal event;
2. *finish* with the problem's projection onto ``X*``
   (:meth:`~flatref.problems.Problem.project_to_minima`: Gauss–Newton
   ``x ← x − J⁺(p(x) − y)`` in Setting 1, Newton steps on the top eigenspace of
   ``∇²f`` otherwise). It lands ``O(dist(x, X*)²)`` from the flow's limit, so it is
   accepted only when its step is below ``finish_radius`` (error ``≈ C·finish_radius²``,
   below ``1e-10`` on our problems); otherwise the flow goes on to ``refine · gtol``
   and tries again.
3. classify: a point where ``∇²f`` has an eigenvalue below
   ``−saddle_tol · max(1, λ_max)`` is a saddle. A projection that certifies a global
   minimum (``problem.projection_is_global``: ``p(x) = y`` in Setting 1) needs no eigenvalues.

The result's status is one of :class:`~flatref.status.Status`: ``converged``,
``saddle``, ``diverged``, ``max_time`` (flow time spent), ``budget`` (gradient
evaluations spent) or ``stalled`` (``‖∇f‖`` stopped falling and the finish was rejected).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import OdeSolver, solve_ivp

from ._validation import as_columns, as_int, as_positive, as_vector, bounded_norm, check_problem
from .errors import ConvergenceError, LimitMapError, NonFiniteError
from .geometry import project_tangent
from .problems import Problem, TrainingLoss
from .problems.base import DENSE_MAX_DIM
from .spectrum import extreme_eigenvalues
from .status import Status, describe

#: solve_ivp's methods; the implicit ones get the exact Jacobian ``−∇²f``.
_METHODS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")
_IMPLICIT = ("Radau", "BDF", "LSODA")

#: solve_ivp warns and clips below ``100 ε_mach``; flatref refuses such an ``rtol`` instead.
_MIN_RTOL = 100 * np.finfo(float).eps

#: Along a flow with ``‖∇f(x(t))‖ ∝ t^(−α)`` the path length ``∫‖ẋ‖dt`` is finite only for ``α > 1``.
#: Degenerate minima give ``α = (2k−1)/(2k−2)`` (``f = x^{2k}``: 1.5 for ``x⁴``, 1.056 for ``x²⁰``);
#: a flow running off to infinity gives ``α ≤ 1`` (``e^{−x}``: 1; ``1/x``: 2/3; ``e^{−x²}``: ``1 + 1/(2 log t)``,
#: 1.03 at ``t = 1e8``). Below this bound the flow has no minimum (docs/theory.md §6).
_FINITE_LENGTH = 1.05


def _rtol(rtol) -> float:
    rtol = as_positive(rtol, "rtol")
    if rtol < _MIN_RTOL:
        raise ValueError(f"rtol must be at least {_MIN_RTOL:.2g} (100 machine epsilons, solve_ivp's floor), got {rtol}")
    return rtol


def _stiff_method(method):
    """``method`` if it is one of solve_ivp's implicit methods, or ``None``."""
    if method is not None and method not in _IMPLICIT:
        raise ValueError(f"stiff_method must be one of {_IMPLICIT} or None, got {method!r}")
    return method


def _ivp_method(method):
    """``method`` if solve_ivp takes it (a name of :data:`_METHODS` or an ``OdeSolver`` subclass)."""
    if isinstance(method, str):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS} or an OdeSolver subclass, got {method!r}")
        return method
    if isinstance(method, type) and issubclass(method, OdeSolver):
        return method
    raise TypeError(f"method must be one of {_METHODS} or an OdeSolver subclass, got {type(method).__name__}")


@dataclass(frozen=True)
class LimitPoint:
    """The result of :func:`limit_map`.

    Attributes:
        x: the limit ``Φ(x0)`` (for a failed flow, the last point reached).
        status: a :class:`~flatref.status.Status` (``converged``, ``saddle``, ``diverged``,
            ``max_time``, ``budget`` or ``stalled``).
        message: what the status means, with details.
        grad_norm: ``‖∇f(x)‖`` at the returned point.
        flow_time: the flow time integrated.
        n_grad: gradient evaluations.
        n_hess: Hessian-type evaluations: one per finish attempt and per saddle check, the
            implicit solvers' Jacobians, and one per linear part ``L`` the exponential stage builds
            (an output Jacobian and its ``n × n`` Gram matrix or a QR factorization; two per rebuild).
        finish_step: the length of the finishing correction (0 without one).
        min_eigenvalue: the smallest eigenvalue of ``∇²f(x)`` where it was computed, else ``None``.
    """

    x: np.ndarray = field(repr=False)
    status: Status
    message: str = field(repr=False)
    grad_norm: float
    flow_time: float
    n_grad: int
    n_hess: int
    finish_step: float
    min_eigenvalue: float | None = None

    @property
    def success(self) -> bool:
        """True when the flow converged to a minimum."""
        return self.status.success


class _Blowup(Exception):
    """Raised inside the right-hand side when the gradient is not finite."""


class _Budget(Exception):
    """Raised inside the right-hand side when the gradient budget is spent."""


class _Stalled(Exception):
    """Raised inside the right-hand side when ``‖∇f‖`` has not halved for ``stall_evals`` evaluations."""


class _Memo:
    """``fun`` with a one-point memory, counting its evaluations: solve_ivp's event functions
    ask for the state its step has just evaluated."""

    def __init__(self, fun):
        self.fun, self.calls, self._key, self._value = fun, 0, None, None

    def __call__(self, state):
        key = state.tobytes()
        if key != self._key:
            self.calls += 1
            self._key, self._value = key, self.fun(state)
        return self._value


class _GradientCache(_Memo):
    """``∇f`` at the integrator's points (float vectors of length ``d``: no checks), with a memory;
    a non-finite gradient raises :class:`_Blowup` (under limit_map's errstate, overflow is divergence)."""

    def __init__(self, problem: Problem):
        super().__init__(self._finite_grad)
        self.grad = problem.unchecked.grad

    def _finite_grad(self, x):
        value = self.grad(x)
        if not np.all(np.isfinite(value)):
            raise _Blowup
        return value

    @property
    def n_grad(self) -> int:
        return self.calls


def limit_map(
    problem: Problem,
    x,
    *,
    gtol: float = 1e-6,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    method: str = "DOP853",
    stiff_method: str | None = "BDF",
    exponential: bool | None = None,
    finish: bool = True,
    finish_radius: float = 1e-5,
    finish_max_iter: int = 8,
    refine: float = 1e-2,
    max_time: float = 1e8,
    max_grad_evals: int = 200_000,
    stall_evals: int = 5_000,
    blowup: float = 1e6,
    saddle_tol: float = 1e-5,
    throw: bool = False,
) -> LimitPoint:
    """The limit ``Φ(x)`` of the gradient flow ``ẋ = −∇f(x)`` started at ``x`` (Definition 1).

    Args:
        problem: the loss.
        x: the starting point.
        gtol: the flow stops at ``‖∇f‖ ≤ gtol``, and once more at ``refine · gtol`` if the
            finish is not accepted. The integrated ``‖∇f‖`` cannot fall much below
            ``rtol · ‖x‖ · λ_max(∇²f)``, so without a finish ``gtol`` must stay above that.
        rtol, atol: solve_ivp's tolerances. Errors of the integrated path along the
            minima set are never corrected later, so they are tight; looser ones
            also let an explicit method stall on stiff problems, with ``‖∇f‖``
            held above ``gtol`` by its own step-size control (seen at ``rtol = 1e-8``).
        method: any solve_ivp method; implicit ones (``Radau``, ``BDF``, ``LSODA``)
            get the exact Jacobian ``−∇²f``.
        stiff_method: the implicit method a stage switches to, from its last accepted step,
            when an explicit ``method`` blows up, fails or stalls: the signs of a stiff flow,
            whose fastest normal rate forces tiny explicit steps (for ``d ≤ DENSE_MAX_DIM``,
            as the Jacobian is dense; ``None``: never switch). On 18 flows of a tanh network
            (``d = 6``) where DOP853 stalled, BDF took over and converged on 17 (the last runs
            out of time with every method), within ``5e-8`` of LSODA run from the start; LSODA
            as the fallback stalled once more, Radau twice.
        exponential: integrate each stage first by the exponential stage (docs/theory.md §6.1): ETDRK4 with
            ``e^{−hL}`` exact for ``L`` the Gauss–Newton Hessian one Gauss–Newton step from the current point,
            rebuilt every :data:`REBUILD_STEPS` steps, at tolerances ``EXPONENTIAL_TOL`` times ``rtol`` and ``atol``;
            where it fails, the stage runs by ``method`` as without it. ``None`` (the default): on for training
            losses with ``d ≥ EXPONENTIAL_MIN_DIM`` and at most ``EXPONENTIAL_MAX_OUTPUTS`` outputs in all.
            From ``dist = 1e-2`` on a diagonal network (``d = 4000``) it takes 57–68 gradients against 175–645,
            on matrix sensing (``d = 1000``) 157 against 2,246, within ``10⁻¹⁰`` of ``Φ`` (relative); from
            ``dist = 1``, 222–245 and 932 gradients, within ``7·10⁻¹⁰`` and ``6·10⁻⁹``
            (``benchmarks/limit_map.py --issue12``).
        finish: apply the projection finish described in the module docstring.
        finish_radius: accept a finish whose step is at most ``finish_radius`` (in the
            units of ``x``). Its error is ``≈ C · step²`` with ``C`` measured at 0.06
            (Example 1), 0.2 (diagonal network) and 1 (matrix sensing): about ``1e-10``.
        finish_max_iter: the projection's step limit. Gauss–Newton converges
            quadratically from within ``finish_radius``, so 8 steps suffice there; a
            projection that needs more started too far away to be accepted anyway.
        refine: the second flow stage stops at ``refine · gtol``: a hundredfold smaller
            gradient puts the point about a hundred times closer to ``X*`` (``‖∇f‖ ∝ dist``
            near a non-degenerate minimum), so the finish's ``O(dist²)`` error falls ``10⁴``-fold.
        max_time: the largest flow time. The flow's slowest normal rate is the smallest non-zero
            Hessian eigenvalue ``λ``, so reaching ``gtol`` takes a time of about ``log(1/gtol)/λ``:
            ``1e8`` allows ``λ`` down to ``~1e-7``, far below any of our problems, so the status
            ``max_time`` means a flow that does not settle (no minimum, or a degenerate one).
        max_grad_evals: the largest number of gradient evaluations (then status ``budget``):
            about a thousand times the few hundred a flow from ``dist = 1e-2`` takes on our
            problems (``benchmarks/limit_map.py``), so only a pathological flow reaches it.
        stall_evals: a flow stage stops early when ``‖∇f‖`` has not halved within this
            many evaluations (a ``gtol`` below what the integrator can reach, or the slow
            approach to a degenerate minimum); the finish is tried there. If the last
            stage stalls and the finish is rejected, the status is ``stalled``.
        blowup: the flow has diverged when ``‖x(t)‖ > blowup · (1 + ‖x(0)‖)``. A gradient flow
            decreases ``f``, so on a problem with bounded sublevel sets it stays near its start;
            a millionfold excursion means ``f`` is unbounded below along it.
        saddle_tol: a Hessian eigenvalue below ``−saddle_tol · max(1, λ_max)`` makes a saddle.
            At a minimum reached to ``gtol`` the smallest eigenvalue is ``O(gtol)`` of either
            sign (rounding and the distance to ``X*``); ``1e-5`` is ten times ``gtol``, and a
            saddle's negative curvature is of the order of ``λ_max``.
        throw: raise :class:`~flatref.errors.LimitMapError` instead of returning a failed limit.

    Returns:
        A :class:`LimitPoint`; a flow that fails says so in ``status``, never with NaN. A flow whose
        gradient becomes small without a minimum in reach (the projection is rejected and
        ``‖∇f‖`` decays no faster than ``1/t``, so the path has infinite length) ends ``no_minimum``.

    Examples:
        >>> from flatref.problems import Example1
        >>> limit = limit_map(Example1(), [2.0, 0.1])
        >>> limit.status, limit.x.round(6).tolist()          # x1² − x2² = 3.99 is conserved
        ('converged', [2.055869, 0.486412])
        >>> limit_map(Example1(), [1.0, -1.0]).status        # the flow ends at the saddle (0, 0)
        'saddle'
    """
    x0 = as_vector(x, check_problem(problem).dim)
    if exponential is None:
        exponential = _exponential_pays(problem)
    if not isinstance(exponential, bool):
        raise TypeError(f"exponential must be True, False or None, got {type(exponential).__name__}")
    flow = _Flow.checked(problem, method, stiff_method, rtol=rtol, atol=atol, max_time=max_time,
                         max_grad_evals=max_grad_evals, stall_evals=stall_evals,
                         max_norm=as_positive(blowup, "blowup") * (1.0 + bounded_norm(x0, "x")),
                         exponential=exponential)  # fmt: skip
    stages = (as_positive(gtol, "gtol"), gtol * as_positive(refine, "refine"))
    finish_radius = as_positive(finish_radius, "finish_radius")
    finish_max_iter = as_int(finish_max_iter, "finish_max_iter", minimum=1)
    saddle_tol = as_positive(saddle_tol, "saddle_tol")
    with np.errstate(all="ignore"):  # overflow is reported as divergence, not as a warning
        result = _limit(problem, flow, x0, stages, finish and (finish_radius, finish_max_iter), saddle_tol)
    if throw and not result.success:
        raise LimitMapError(result)
    return result


def _limit(problem, flow, z, stages, finish, saddle_tol) -> LimitPoint:
    """Flow stage by stage, finishing after each one (``finish``: ``False`` or ``(radius, max_iter)``)."""
    t, step, ends = 0.0, 0.0, []
    for threshold in stages:
        z, t, status, detail = flow.run(z, t, threshold)
        if status is not None:
            return flow.result(z, status, detail, t, 0.0)
        ends.append(z)
        if not finish:
            break
        finished, length = _finish(problem, z, *finish)
        flow.n_hess += 1
        if finished is not None:
            z, step = finished, length
            if problem.projection_is_global:
                return flow.result(z, Status.CONVERGED, "the projection reached p(x) = y", t, step)
            break
    else:
        if flow.stalled:
            detail = f"|grad f| = {np.linalg.norm(flow.grad(z)):.3g} and the finish was rejected"
            return flow.result(z, Status.STALLED, detail, t, 0.0)
    return _classify(problem, flow, z, t, step, saddle_tol, ends)


def _finish(problem, z, radius, max_iter):
    """The problem's projection of ``z`` onto ``X*`` and its length, or ``(None, inf)`` if rejected."""
    try:
        finished = problem.project_to_minima(z, max_iter=max_iter)
    except (ConvergenceError, NonFiniteError):
        return None, np.inf
    length = float(np.linalg.norm(finished - z))
    return (finished, length) if length <= radius else (None, np.inf)


def _classify(problem, flow, z, t, step, saddle_tol, ends) -> LimitPoint:
    """``saddle`` by the smallest Hessian eigenvalue at the end point; else ``converged``, or ``no_minimum``
    where no finish was accepted and the gradient's decay exponent at the end of every stage says
    the path has infinite length (one point can mislead where the Hessian is itself ``O(‖∇f‖)``)."""
    flow.n_hess += 1
    try:
        lam_min, lam_max = extreme_eigenvalues(problem, z)
    except ConvergenceError as err:  # ARPACK did not converge, twice, above the dense route's size
        return flow.result(z, Status.UNCLASSIFIED, str(err), t, step)
    if lam_min < -saddle_tol * max(1.0, lam_max):
        return flow.result(z, Status.SADDLE, f"smallest Hessian eigenvalue {lam_min:.3g}", t, step, lam_min)
    if step == 0.0:
        alphas = [decay_exponent(problem, end) for end in ends]
        flow.n_hess += 2 * len(ends)
        if max(alphas) <= _FINITE_LENGTH:
            return flow.result(z, Status.NO_MINIMUM, f"|grad f| ∝ t^-{alphas[-1]:.3g} here", t, step, lam_min)
    detail = f"smallest Hessian eigenvalue {lam_min:.3g}" + (" (the flow stalled above gtol)" if flow.stalled else "")
    return flow.result(z, Status.CONVERGED, detail, t, step, lam_min)


def decay_exponent(problem: Problem, x) -> float:
    """The exponent ``α`` of the gradient's decay ``‖∇f(x(t))‖ ∝ t^(−α)`` that the flattening of ``f`` implies.

    With ``g = ∇f``, ``H = ∇²f`` and the decay rate ``r = gᵀHg / gᵀg = −d log‖g‖/dt``, a power law
    has ``r = α/t``, so ``α = r² / (−ṙ)``. Along ``ẋ = −g`` (``ġ = −Hg``, ``Ḣ = −∇³f[g]``),
    ``ṙ = −2(‖Hg‖²/gᵀg − r²) − ∇³f[g, g]·g / gᵀg``. The first term is the variance of ``H``'s
    eigenvalues weighted by ``g``: fast modes dying out, a transient of any flow with several rates.
    The second is the curvature itself fading along the flow, the mark of a flow with no minimum
    ahead; so ``α := r² / (∇³f[g, g]·g / gᵀg)``, ``inf`` where that is not positive. In one
    dimension the first term vanishes and ``α`` is exact for power laws (docs/theory.md §6.1).
    Costs one Hessian-vector product and one third-derivative contraction.

    Examples:
        >>> from flatref.problems import Example1
        >>> round(decay_exponent(Example1(), [1.0, 1.001]))   # near a non-degenerate minimum: α ∝ 1/distance
        668
    """
    x = as_vector(x, check_problem(problem).dim)
    with np.errstate(all="ignore"):
        g = problem.unchecked.grad(x)
        p = g @ g
        r = (g @ problem.unchecked.hess_vec(x, g)) / p
        fading = (problem.unchecked.third_contract(x, g, g) @ g) / p
    if not (np.isfinite(r) and np.isfinite(fading) and fading > 0):
        return np.inf
    return float(r * r / fading)


@dataclass
class _Flow:
    """Integrates ``ż = −∇f(z)`` from a state until ``‖∇f‖ ≤ threshold``, or a failure."""

    problem: Problem
    grad: _GradientCache
    method: str
    stiff_method: str | None
    rtol: float
    atol: float
    max_time: float
    max_grad_evals: int
    stall_evals: int
    max_norm: float
    n_hess: int = 0
    stalled: bool = False
    note: str = ""
    exponential: bool = False
    next_step: float | None = None
    _stepper: object = None
    _since_build: int = 0

    @classmethod
    def checked(cls, problem, method, stiff_method, *, rtol, atol, max_time, max_grad_evals, stall_evals, max_norm,
                exponential=False):  # fmt: skip
        """A flow with its options checked (each ``ValueError``/``TypeError`` names the argument)."""
        return cls(
            problem, _GradientCache(problem), _ivp_method(method), _stiff_method(stiff_method), _rtol(rtol),
            as_positive(atol, "atol"), as_positive(max_time, "max_time"),
            as_int(max_grad_evals, "max_grad_evals", minimum=1), as_int(stall_evals, "stall_evals", minimum=1),
            max_norm, exponential=exponential,
        )  # fmt: skip

    def result(self, z, status, detail, t, step, lam_min=None) -> LimitPoint:
        grad_norm = float(np.linalg.norm(self.grad(z))) if status is not Status.DIVERGED else float("inf")
        return LimitPoint(
            x=z, status=status, message=describe(status, detail + self.note), grad_norm=grad_norm, flow_time=float(t),
            n_grad=self.grad.n_grad, n_hess=self.n_hess, finish_step=float(step),
            min_eigenvalue=None if lam_min is None else float(lam_min),
        )  # fmt: skip

    def run(self, z, t0, threshold):
        """Returns ``(z, t, status, detail)``; ``status`` is ``None`` when the threshold was reached
        or the flow stalled (then ``self.stalled``). An explicit method that blows up, fails or
        stalls hands the stage to ``stiff_method`` from its last accepted step. With ``exponential``, the stage is
        first run by :meth:`_exponential_stage`; only where that fails does solve_ivp run it, from ``z``."""
        if self.exponential:
            done = self._exponential_stage(z, t0, threshold)
            if done is not None:
                return done
        result = self._stage(z, t0, threshold, self.method)
        stalled, failed = self.stalled, result[2] is Status.DIVERGED and not self.escaped
        if not ((stalled or failed) and self._can_switch()):
            return result
        retry = self._stage(*self._accepted, threshold, self.stiff_method)
        if retry[2] is not None or (self.stalled and not stalled):
            self.stalled = stalled
            return result  # the implicit method did no better: a true blow-up, or a flow that stalls either way
        self.note = f" ({self.method} {'stalled' if stalled else 'failed'} at flow time {self._accepted[1]:.3g}; " \
                    f"continued with {self.stiff_method})"  # fmt: skip
        self.method = self.stiff_method
        return retry

    def _exponential_stage(self, z, t0, threshold):
        """The stage by ETDRK4 with ``L`` the Gauss–Newton Hessian near the current point (:meth:`_stepper_at`), rebuilt
        every :data:`REBUILD_STEPS` steps, the count running on from the previous stage (docs/theory.md §6.1):
        ``(z, t, None, "")`` at ``‖∇f‖ ≤ threshold``, or ``None`` where it fails (no ``L``, a non-finite value, a
        limit, more than :data:`MAX_STAGE_STEPS` steps)."""
        self.stalled, self.escaped, t, steps = False, False, t0, 0
        try:
            while np.linalg.norm(self.grad(z)) > threshold:
                left = (self.max_time - t, self.max_grad_evals - self.grad.n_grad)
                if steps >= MAX_STAGE_STEPS or left[0] <= 0 or left[1] < 12:
                    return None
                if self._stepper is None or self._since_build >= REBUILD_STEPS:
                    self._stepper, self._since_build = self._stepper_at(z), 0
                    if self._stepper is None:
                        return None
                budget = REBUILD_STEPS - self._since_build
                end = self._stepper.run(z, self.next_step, threshold, budget, *left, self.max_norm)
                z, t, steps, self.next_step = end.x, t + end.time, steps + end.steps, end.next_step
                self._since_build += end.steps
                if not (end.success or end.reason == f"{budget} steps"):  # else: time, gradients, a blow-up
                    return None
        except _Blowup:
            return None
        return z, t, None, ""

    def _stepper_at(self, z):
        """ETDRK4 with ``L`` built at ``c = z − L_z⁺∇f(z)`` (one Gauss–Newton step) where ``‖c − z‖`` exceeds
        :data:`CENTRE_STEP` ``· (1 + ‖z‖)``, else at ``z``; ``None`` where :func:`linear_part` has none."""
        linear = linear_part(self.problem, z)
        self.n_hess += 1
        if linear is None:
            return None
        centre = z - linear.basis @ ((linear.basis.T @ self.grad(z)) / linear.eigenvalues)
        if np.linalg.norm(centre - z) > CENTRE_STEP * (1.0 + np.linalg.norm(z)):
            linear = linear_part(self.problem, centre)
            self.n_hess += 1
            if linear is None:
                return None
        return _ETDRK4(self.problem, linear, centre, EXPONENTIAL_TOL * self.rtol, EXPONENTIAL_TOL * self.atol,
                       grad=self.grad)  # fmt: skip

    def _can_switch(self) -> bool:
        return (self.stiff_method is not None and self.method not in _IMPLICIT
                and self.problem.dim <= DENSE_MAX_DIM)  # fmt: skip

    def _stage(self, z, t0, threshold, method):
        self.stalled, self.escaped = False, False
        self._last, self._last_t, self._accepted = z, t0, (z, t0)
        self._best, self._best_at = np.inf, self.grad.n_grad
        self._lowest = (np.inf, z, t0)
        try:
            if np.linalg.norm(self.grad(z)) <= threshold:
                return z, t0, None, ""
            sol = self._integrate(z, t0, threshold, method)
        except _Blowup:
            return self._last, self._last_t, Status.DIVERGED, "non-finite gradient"
        except _Budget:
            return self._last, self._last_t, Status.BUDGET, f"{self.max_grad_evals} gradient evaluations used"
        except _Stalled:
            self.stalled = True
            _, z, t = self._lowest
            return z, t, None, ""
        except ValueError:  # solve_ivp's event location (brentq) when the dense output disagrees with the step
            return self._event_failed(threshold)
        z, t = sol.y[:, -1], sol.t[-1]
        if sol.status == -1:
            return z, t, Status.DIVERGED, sol.message
        if sol.t_events[1].size:
            self.escaped = True
            return z, t, Status.DIVERGED, f"|x| exceeded {self.max_norm:.3g}"
        if not sol.t_events[0].size:
            return z, t, Status.MAX_TIME, f"flow time {self.max_time:.3g} reached"
        return z, t, None, ""

    def _event_failed(self, threshold):
        """The step that crossed an event ended at the last accepted point: the threshold is reached there,
        or else the flow is reported stalled at it."""
        z, t = self._accepted
        self.stalled = bool(np.linalg.norm(self.grad(z)) > threshold)
        return z, t, None, ""

    def _integrate(self, z, t0, threshold, method):
        events = [self._converged(threshold), self._escaped()]
        options = {"jac": self._jac} if method in _IMPLICIT else {}
        return solve_ivp(self._rhs, (t0, self.max_time), z, method=method, rtol=self.rtol, atol=self.atol,
                         events=events, **options)  # fmt: skip

    def _rhs(self, t, z):
        if self.grad.n_grad >= self.max_grad_evals:
            raise _Budget
        g = self.grad(z)
        norm = np.linalg.norm(g)
        self._last, self._last_t = z, t
        if norm < self._lowest[0]:
            self._lowest = (norm, z, t)  # where a stalled stage ends
        if norm <= 0.5 * self._best:
            self._best, self._best_at = norm, self.grad.n_grad
        elif self.grad.n_grad - self._best_at > self.stall_evals:
            raise _Stalled
        return -g

    def _jac(self, t, z):
        self.n_hess += 1
        return -self.problem.unchecked.hess(z)

    def _converged(self, threshold):
        def event(t, z):
            return np.linalg.norm(self.grad(z)) - threshold

        event.terminal = True
        return event

    def _escaped(self):
        def event(t, z):  # solve_ivp evaluates events at every accepted step: remember the last one
            self._accepted = (z.copy(), t)
            return self.max_norm - np.linalg.norm(z)

        event.terminal = True
        return event


# ------------------------------------------------------------- the exponential flow near X*
#: ``limit_map(exponential=None)`` runs the exponential stage for training losses of at least this dimension ...
EXPONENTIAL_MIN_DIM = 1000
#: ... and at most this many outputs ``nK`` in all. Each ``L`` costs an ``nK × nK`` Gram matrix, ``O((nK)²d)``, about
#: ``nK`` gradients: on the digits network (``nK = 2560``, ``d = 9610``) the stage made ``escape --quick`` take over
#: 8 minutes instead of 80 s; at ``nK = 400`` it still saves time from ``1e-2`` (docs/theory.md §6.1).
EXPONENTIAL_MAX_OUTPUTS = 500

#: limit_map's exponential stage rebuilds ``L`` near its current point ``z`` after this many steps ...
REBUILD_STEPS = 8
#: ... at ``c = z − L_z⁺∇f(z)`` where that Gauss–Newton step is longer than this times ``1 + ‖z‖`` (``∇²f`` near
#: ``X*`` differs from ``L_z`` by ``O(‖c − z‖)`` and from ``L_c`` by ``O(‖c − z‖²)``), else at ``z`` ...
CENTRE_STEP = 1e-4
#: ... and gives the stage to solve_ivp after this many steps in all.
MAX_STAGE_STEPS = 400
#: The exponential stage's tolerances are ``EXPONENTIAL_TOL`` times limit_map's ``rtol`` and ``atol``: its step is
#: Richardson-extrapolated, an order above the estimate its controller uses (docs/theory.md §6.1).
EXPONENTIAL_TOL = 5.0

#: The steps :func:`exponential_flow` may take with a freshly built ``L`` (then the point is computed cold);
#: with an older ``L``, twice the steps the first flow with it took (at least 20), before it is rebuilt.
MAX_EXPONENTIAL_STEPS = 200


def _exponential_pays(problem: Problem) -> bool:
    """Whether ``limit_map``'s default runs the exponential stage: a training loss with
    ``d ≥`` :data:`EXPONENTIAL_MIN_DIM` and ``n·K ≤`` :data:`EXPONENTIAL_MAX_OUTPUTS`."""
    return (isinstance(problem, TrainingLoss) and problem.dim >= EXPONENTIAL_MIN_DIM
            and problem.n_samples * problem.n_outputs <= EXPONENTIAL_MAX_OUTPUTS)  # fmt: skip


@dataclass(frozen=True)
class LinearPart:
    """A symmetric ``L = V diag(λ) Vᵀ ≈ ∇²f`` near a minimum (see :func:`linear_part`).

    Attributes:
        anchor: the point of ``X*`` where it was built.
        basis: ``V``, ``d × r`` with orthonormal columns (to rounding), column-major: ``Vᵀ`` is row-major, and
            OpenBLAS multiplies ``k × r`` rows by it three times faster than by a column-major ``Vᵀ``.
        eigenvalues: ``λ``, length ``r``.
    """

    anchor: np.ndarray = field(repr=False)
    basis: np.ndarray = field(repr=False)
    eigenvalues: np.ndarray


def linear_part(problem: Problem, anchor) -> LinearPart | None:
    """``L = ∇²f(anchor)`` on its range, as ``V diag(λ) Vᵀ`` with orthonormal ``V``; ``None`` where not available.

    For a training loss at a minimum ``∇²f = (1/n) Jᵀ diag(ℓ″) J = BBᵀ`` with ``B = Jᵀ diag(√(ℓ″/n))``
    (eq. (31)): the eigenvectors ``W`` of the small Gram matrix ``BᵀB = WΛWᵀ`` give ``V = BWΛ^{−1/2}`` where
    ``λ_max/λ_min ≤ GRAM_MAX_SPREAD`` (orthonormal to ``ε_mach λ_max/λ_min``), else a thin QR factorization
    ``B = QR`` and the eigenvectors ``W`` of ``RRᵀ`` give ``V = QW`` (``O(n²d)`` either way, no ``d × d`` matrix).
    Otherwise, for ``d ≤ DENSE_MAX_DIM``, the eigenvectors of the dense Hessian with eigenvalues above
    ``1e-12 λ_max``. ``None`` for other problems, or where ``ℓ″ ≤ 0`` or a value is not finite. ``V`` is
    orthonormal to rounding, so ``e^{−hL} = I + V(e^{−hλ} − 1)Vᵀ`` is the exponential of exactly this ``L``.

    Examples:
        >>> from flatref.problems import Example1
        >>> part = linear_part(Example1(), [1.0, 1.0])   # ∇²f = 2 (1, 1)(1, 1)ᵀ: λ = 4 along (1, 1)/√2
        >>> part.eigenvalues.round(12).tolist(), abs(part.basis).round(6).ravel().tolist()
        ([4.0], [0.707107, 0.707107])
    """
    check_problem(problem)
    anchor = as_vector(anchor, problem.dim, "anchor")
    with np.errstate(all="ignore"):
        if isinstance(problem, TrainingLoss):
            basis, lam = _gauss_newton_part(problem, anchor)
        elif problem.dim <= DENSE_MAX_DIM:
            lam, basis = np.linalg.eigh(problem.unchecked.hess(anchor))
        else:
            return None
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(basis))) or lam.size == 0 or lam[-1] <= 0:
        return None
    keep = lam > 1e-12 * lam[-1]
    return LinearPart(anchor, np.asfortranarray(basis[:, keep]), lam[keep])


#: :func:`linear_part` takes ``V = BWΛ^{−1/2}`` from the Gram matrix ``BᵀB = WΛWᵀ`` when ``λ_max/λ_min`` is at most
#: this (then ``‖VᵀV − I‖ ≈ ε_mach λ_max/λ_min ≤ 2e-12``), else from a thin QR factorization of ``B``.
GRAM_MAX_SPREAD = 1e4


def _gauss_newton_part(problem, anchor):
    """``(V, λ)`` of ``(1/n) Jᵀ diag(ℓ″) J = BBᵀ`` at ``anchor``, ascending; ``λ`` empty where some ``ℓ″ ≤ 0``. By the
    ``n × n`` Gram matrix ``BᵀB`` where its eigenvalues spread less than :data:`GRAM_MAX_SPREAD` (two ``O(n²d)``
    products, a sixth of a QR factorization's time at ``d = 4000``, ``n = 400``), else by QR."""
    fast = problem.unchecked
    curvature = problem.loss.d2(fast.outputs(anchor), problem.y.reshape(-1)) / problem.n_samples
    if not np.all(curvature > 0):
        return np.zeros((problem.dim, 0)), np.zeros(0)
    B = fast.output_jacobian(anchor).reshape(-1, problem.dim).T * np.sqrt(curvature)
    lam, W = np.linalg.eigh(B.T @ B)
    if lam.size and lam[0] > 0 and lam[-1] <= GRAM_MAX_SPREAD * lam[0]:
        return B @ (W / np.sqrt(lam)), lam
    Q, R = np.linalg.qr(B)
    lam, W = np.linalg.eigh(R @ R.T)
    return Q @ W, lam


@dataclass(frozen=True)
class ExponentialFlow:
    """The end of :func:`exponential_flow`.

    Attributes:
        x: the last point reached (``‖∇f(x)‖ ≤ gtol`` when ``success``).
        success: whether ``‖∇f‖ ≤ gtol`` was reached within the limits.
        reason: why the flow stopped.
        time: the flow time integrated.
        steps: accepted steps.
        n_grad: gradient evaluations: one at the start, ten per attempted step and one more per accepted step.
        first_step: the first accepted step size (a good first step for a neighbouring flow).
        next_step: the step size the controller would try next (to continue the same flow).
    """

    x: np.ndarray = field(repr=False)
    success: bool
    reason: str
    time: float
    steps: int
    n_grad: int
    first_step: float | None
    next_step: float | None = None


def exponential_flow(problem: Problem, x, linear: LinearPart, *, anchor=None, gtol: float = 1e-6,
                     rtol: float = 1e-9, atol: float = 1e-12, first_step: float | None = None,
                     max_steps: int = MAX_EXPONENTIAL_STEPS, max_time: float = 1e8, max_grad_evals: int = 200_000,
                     blowup: float = 1e6) -> ExponentialFlow:  # fmt: skip
    """The gradient flow ``ẋ = −∇f(x)`` from ``x`` until ``‖∇f‖ ≤ gtol``, with the linear part taken exactly.

    With ``c`` the anchor (a point of ``X*``, by default ``linear.anchor``) and ``u = x − c``, the flow is
    ``u̇ = −Lu − N(u)`` with ``N(u) = ∇f(c + u) − Lu``; this is exact for any symmetric ``L``. Near ``X*`` the
    stiffness is in ``L`` (the normal rates ``λ``), and ``N`` is small (``O(‖u‖²)`` when ``L = ∇²f(c)``) with a
    small Jacobian. Each step is Cox and Matthews' exponential Runge–Kutta method of order 4 (ETDRK4,
    J. Comput. Phys. 176, 2002) with ``e^{−hL}`` and ``φ_k(−hL)`` applied through ``V`` (``O(rd)`` per product):

    ``a = e^{−hL/2}u + (h/2)φ₁(−hL/2)F(u)``, ``b = e^{−hL/2}u + (h/2)φ₁(−hL/2)F(a)``,
    ``c = e^{−hL/2}a + (h/2)φ₁(−hL/2)(2F(b) − F(u))``,
    ``u⁺ = e^{−hL}u + h[(φ₁ − 3φ₂ + 4φ₃)F(u) + (2φ₂ − 4φ₃)(F(a) + F(b)) + (4φ₃ − φ₂)F(c)]``,

    with ``F = −N`` and ``φ_k`` at ``−hL``. The error is estimated by step doubling: one step of ``h`` and two
    of ``h/2``, whose difference over 15 estimates the error of the two half steps (order 4); it is held below
    ``atol + rtol·|x|`` in root mean square as by :func:`scipy.integrate.solve_ivp`, and the state kept is the
    Richardson extrapolation, the two half steps plus that estimate (docs/theory.md §6.1). The first step is
    ``first_step``, by default ``0.5/λ_max``. Keep it of that order: a first step far longer than ``1/λ_max`` can
    pass the estimate with a larger error, because forcing that decays within ``h/2`` is missed alike by the step
    of ``h`` and the two of ``h/2``: on the ``d = 1000`` diagonal network, warm flows begun with the controller's
    last proposed step ended ``2.7·10⁻⁸`` from ``Φ`` (relative), against ``1.9·10⁻¹¹`` from ``0.5/λ_max``. The
    limits are those of :func:`~flatref.flow.limit_map`: flow time, gradient evaluations,
    ``‖x‖ > blowup · (1 + ‖x(0)‖)``, and ``max_steps``.

    Examples:
        >>> from flatref.problems import Example1
        >>> problem = Example1()
        >>> flow = exponential_flow(problem, [2.0, 0.6], linear_part(problem, [2.0, 0.5]))
        >>> flow.success, bool(np.linalg.norm(problem.grad(flow.x)) <= 1e-6)
        (True, True)
        >>> x = problem.project_to_minima(flow.x)          # x1² − x2² = 3.64 is conserved along the flow
        >>> round(float(x[0] ** 2 - x[1] ** 2), 8), bool(np.allclose(x, problem.exact_limit([2.0, 0.6]), atol=1e-10))
        (3.64, True)
    """
    check_problem(problem)
    x = as_vector(x, problem.dim)
    if not isinstance(linear, LinearPart):
        raise TypeError(f"linear must be a LinearPart (see linear_part), got {type(linear).__name__}")
    first_step = None if first_step is None else as_positive(first_step, "first_step")
    centre = linear.anchor if anchor is None else as_vector(anchor, problem.dim, "anchor")
    stepper = _ETDRK4(problem, linear, centre, as_positive(rtol, "rtol"), as_positive(atol, "atol"))
    limits = (as_positive(gtol, "gtol"), as_int(max_steps, "max_steps", minimum=1), as_positive(max_time, "max_time"),
              as_int(max_grad_evals, "max_grad_evals", minimum=1),
              as_positive(blowup, "blowup") * (1.0 + float(np.linalg.norm(x))))  # fmt: skip
    with np.errstate(all="ignore"):
        return stepper.run(x, first_step, *limits)


def _phi(z):
    """``(e^z, φ₁(z), φ₂(z), φ₃(z))`` elementwise for ``z ≤ 0`` (an array of any shape): ``φ_k(z) =
    (φ_{k−1}(z) − 1/(k−1)!)/z`` for ``|z| ≥ 1`` (little cancellation there), the Taylor series ``Σ_j z^j/(j + k)!``
    (20 terms, error below ``1e-18``) for ``|z| < 1``, from the powers ``z^j`` as rows of one array."""
    z = np.asarray(z, dtype=float)
    small = np.abs(z) < 1.0
    out = [np.exp(z)]
    zs = np.where(small, 1.0, z)
    powers = np.empty((20, z.size))
    powers[0], powers[1] = 1.0, np.where(small, z, 0.0).ravel()
    for j in range(2, 20):
        np.multiply(powers[j - 1], powers[1], out=powers[j])
    series = _SERIES.T @ powers  # φ₁, φ₂, φ₃ near 0
    for k in range(1, 4):
        out.append(np.where(small, series[k - 1].reshape(z.shape), (out[-1] - 1.0 / _FACTORIALS[k - 1]) / zs))
    return out


_FACTORIALS = np.cumprod(np.concatenate([[1.0], np.arange(1.0, 25.0)]))
#: ``1/(j + k)!`` for ``j < 20`` (rows) and ``k = 1, 2, 3`` (columns).
_SERIES = 1.0 / _FACTORIALS[np.arange(20)[:, None] + np.arange(1, 4)]


class _ETDRK4:
    """The steps of :func:`exponential_flow`. Every vector ``v`` is carried with its coordinates ``ṽ = Vᵀv``;
    ``ψ(−hL)v = ψ(0)v + V((ψ(−hλ) − ψ(0))ṽ)``, so each stage costs one gradient, one ``Vᵀg`` and one ``V·``.
    Vectors are rows of ``k × d`` (and ``k × r``) arrays: the step of ``h`` and the first step of ``h/2`` from the
    same point are taken together (``k = 2``), their products with ``V`` and ``Vᵀ`` as one matrix product each."""

    def __init__(self, problem, linear, centre, rtol, atol, grad=None):
        self.grad, self.centre, self.rtol, self.atol = grad or problem.unchecked.grad, centre, rtol, atol
        self.V, self.lam = linear.basis, linear.eigenvalues
        self.Vt = np.ascontiguousarray(self.V.T)  # no copy for linear_part's column-major V
        self.n_grad = 0

    def _coefficients(self, h):
        """``(s, c)``: the column ``s = (h, h/2)`` and the functions of ``−sλ`` for a step of each size, a row per step,
        by one :func:`_phi` at ``h``, ``h/2`` and ``h/4``: ``c = (e^{−sλ}, e^{−sλ/2} − 1, (s/2)φ₁(−sλ/2), sf₁, sf₂,
        sf₃)`` with ``f₁ = φ₁ − 3φ₂ + 4φ₃``, ``f₂ = 2φ₂ − 4φ₃``, ``f₃ = 4φ₃ − φ₂`` at ``−sλ`` (``1/6``, ``1/3``,
        ``1/6`` at ``λ = 0``)."""
        sizes = np.array([[h], [h / 2], [h / 4]])
        e, p1, p2, p3 = _phi(-sizes * self.lam)
        q = sizes[1:] * p1[1:]
        s, p1, p2, p3 = sizes[:2], p1[:2], p2[:2], p3[:2]
        return s, (e[:2], e[1:] - 1, q, s * (p1 - 3 * p2 + 4 * p3), s * (2 * p2 - 4 * p3), s * (4 * p3 - p2))

    def _evaluate(self, u, u_modal):
        """``(g, ĝ, F̃)`` for each row ``u``: ``g = ∇f(c + u)``, ``ĝ = Vᵀg`` and the coordinates ``F̃ = λũ − ĝ`` of
        ``F = −N``."""
        g = np.array([self.grad(x) for x in self.centre + u])
        self.n_grad += len(g)
        g_modal = g @ self.V
        return g, g_modal, self.lam * u_modal - g_modal

    def run(self, x, h, gtol, max_steps, max_time, max_grad_evals, max_norm) -> ExponentialFlow:
        """The flow from ``x`` within the limits; ``n_grad`` (and its budget ``max_grad_evals``) counts this run."""
        self.n_grad = 0
        u = (x - self.centre)[None, :]
        state, t, steps, first = (u, u @ self.V), 0.0, 0, None
        values = self._evaluate(*state)
        h = h if h is not None else 0.5 / max(float(self.lam[-1]), 1e-300) if self.lam.size else 1.0
        while True:
            size = float(np.linalg.norm(values[0]))
            reason = self._stop(size, gtol, steps, max_steps, t, max_time, max_grad_evals, state[0], max_norm)
            if reason is not None:
                return ExponentialFlow(self.centre + state[0][0], reason == "converged", reason, t, steps, self.n_grad,
                                       first, h)  # fmt: skip
            h = min(h, max_time - t)  # never past the time limit
            trial, error = self._step(state, values, h)
            if not np.isfinite(error):
                return ExponentialFlow(self.centre + state[0][0], False, "non-finite value", t, steps, self.n_grad,
                                       first, h)  # fmt: skip
            if error <= 1.0:
                t, steps, first, state = t + h, steps + 1, first or h, trial
                values = self._evaluate(*state)
            h *= min(5.0, max(0.2, 0.9 * error**-0.2)) if error > 0 else 5.0

    def _stop(self, size, gtol, steps, max_steps, t, max_time, max_grad_evals, u, max_norm):
        if not np.isfinite(size):
            return "non-finite gradient"
        if size <= gtol:
            return "converged"
        if steps >= max_steps:
            return f"{max_steps} steps"
        if t >= max_time:
            return "max_time"
        if self.n_grad + 11 > max_grad_evals:  # a step: ten gradients, and one where it is accepted
            return "max_grad_evals"
        if np.linalg.norm(self.centre + u) > max_norm:
            return "blowup"
        return None

    def _step(self, state, values, h):
        """Step doubling: one ETDRK4 step of ``h`` and two of ``h/2`` from ``state = (u, ũ)`` (``values`` at ``u``).
        Their difference over 15 estimates the error of the two half steps (order 4: ``O(h⁵)`` per step); the
        state returned is the Richardson extrapolation, the two half steps plus that estimate."""
        sizes, coefficients = self._coefficients(h)
        full, half = zip(*((v[:1], v[1:]) for v in self._etdrk4(state, values, sizes, coefficients)))
        both = self._etdrk4(half, self._evaluate(*half), sizes[1:], [c[1:] for c in coefficients])
        estimate = [(b - f) / 15 for b, f in zip(both, full)]
        u, new = state[0], both[0] + estimate[0]
        scale = self.atol + self.rtol * np.maximum(np.abs(self.centre + u), np.abs(self.centre + new))
        return (new, both[1] + estimate[1]), float(np.sqrt(np.mean((estimate[0] / scale) ** 2)))

    def _etdrk4(self, state, values, h, coefficients):
        """ETDRK4 steps from ``state = (u, ũ)`` with ``values`` at ``u``, one per row of the column ``h`` (a single
        ``u`` broadcasts): the new ``(u⁺, ũ⁺)``. ``coefficients`` are those of :meth:`_coefficients`, a row per step."""
        (u, ut), (gu, ghu, Fu), Vt = state, values, self.Vt
        e, e2m, q, f1, f2, f3 = coefficients  # e2m = e^{−hλ/2} − 1; q's tangent value is h/2
        half = h / 2
        s = e2m * ut + q * Fu
        a_t = ut + s
        a = u - half * gu + (s + half * ghu) @ Vt
        ga, gha, Fa = self._evaluate(a, a_t)
        s = e2m * ut + q * Fa
        b_t = ut + s
        b = u - half * ga + (s + half * gha) @ Vt
        gb, ghb, Fb = self._evaluate(b, b_t)
        s = e2m * a_t + q * (2 * Fb - Fu)
        c_t = a_t + s
        c = a - half * (2 * gb - gu) + (s + half * (2 * ghb - ghu)) @ Vt
        gc, ghc, Fc = self._evaluate(c, c_t)
        new_t = e * ut + f1 * Fu + f2 * (Fa + Fb) + f3 * Fc
        new = u - (h / 6) * (gu + gc + 2 * (ga + gb)) + (new_t - ut + (h / 6) * (ghu + ghc + 2 * (gha + ghb))) @ Vt
        return new, new_t


# ------------------------------------------------------------- ∂Φ off X*
def limit_jacobian(
    problem: Problem,
    x,
    v=None,
    *,
    gtol: float = 1e-9,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    method: str = "DOP853",
    max_time: float = 1e8,
    max_evals: int = 50_000,
) -> np.ndarray:
    """``∂Φ(x)`` (or the product ``∂Φ(x) v``) from the variational equation along the flow.

    Integrates ``ẋ = −∇f(x)``, ``Ẇ = −∇²f(x) W`` with ``W(0) = I`` (or ``v``) until
    ``‖∇f(x)‖ ≤ gtol`` and ``‖∇²f(x) W‖ ≤ gtol · max(1, ‖W‖)``, then returns ``P W`` with ``P`` the
    tangent projector at the end point: ``∂Φ(x) = ∂Φ(x_T) W(T)`` exactly, and
    ``∂Φ(x_T) = P + O(dist(x_T, X*))``. Products use :meth:`Problem.hess_vec`, so
    ``v`` of shape ``(d,)`` or ``(d, k)`` never needs a ``d × d`` matrix.

    Args:
        problem: the loss.
        x: the point.
        v: ``None`` for the whole Jacobian, or the vector(s) to multiply.
        gtol: the settling threshold. The result's error is ``O(dist(x_T, X*)) = O(gtol/λ)``
            with ``λ`` the smallest non-zero Hessian eigenvalue: ``1e-9`` keeps it near ``1e-8``
            on our problems, the accuracy the lemma tests ask of ``∂Φ``.
        rtol, atol: solve_ivp's tolerances, tighter than :func:`limit_map`'s since ``W`` is
            compared with finite differences of ``Φ`` at the ``1e-7`` level.
        method: any solve_ivp method.
        max_time: as for :func:`limit_map`.
        max_evals: the right-hand sides allowed: a hundred times what a flow from ``dist = 0.05``
            takes on our problems, so only a flow towards a degenerate minimum reaches it.

    Raises:
        LimitMapError: if the flow does not converge to a minimum (checked first with
            :func:`limit_map`: towards a saddle ``W`` grows without bound).
        ConvergenceError: if ``W`` has not settled after ``max_evals`` right-hand sides or by
            ``max_time``, by ``method`` and then by :data:`VARIATIONAL_FALLBACK` (near a degenerate
            minimum, where some normal rates are almost zero).

    Examples:
        >>> from flatref.problems import LinearRegression
        >>> problem = LinearRegression.random(2, 4, rng=0)
        >>> x = problem.random_minimum(0) + 0.1
        >>> bool(np.allclose(limit_jacobian(problem, x), problem.exact_limit_jacobian(x), atol=1e-7))
        True
    """
    check_problem(problem)
    x0 = as_vector(x, problem.dim)
    W0 = np.eye(problem.dim) if v is None else as_columns(v, problem.dim)
    method = _ivp_method(method)
    gtol, atol, max_time = (as_positive(a, n) for a, n in ((gtol, "gtol"), (atol, "atol"), (max_time, "max_time")))
    rtol = _rtol(rtol)
    limit_map(problem, x0, method=method, max_time=max_time, throw=True)  # towards a saddle W grows without bound
    max_evals = as_int(max_evals, "max_evals", minimum=1)
    state = np.concatenate([x0, W0.ravel()])
    with np.errstate(all="ignore"):  # a norm that overflows is inf: not settled
        unsettled = _Variational(problem, max_evals, gtol).settled(0.0, state) > 0
    if unsettled:  # an event needs a sign change: a settled start is done already
        errors = []
        for solver in dict.fromkeys((method, VARIATIONAL_FALLBACK)):  # the fallback once, after the method
            try:
                state = _settle(_Variational(problem, max_evals, gtol), state, solver, rtol, atol, max_time)
                break
            except ConvergenceError as err:
                errors.append(err)
        else:
            raise errors[0]  # the fallback failing too says nothing new
    d = problem.dim
    return project_tangent(problem, state[:d], state[d:].reshape(d, -1)).reshape(W0.shape)


#: ``limit_jacobian``'s second try where its ``method`` does not settle. An explicit method can hover at its
#: stability limit on the stiff modes, with an error there of about ``λ_max · rtol · ‖x‖`` in ``‖∇f‖``: above
#: ``gtol`` on a linear regression with ``λ_max = 8``, ``‖x‖ = 4`` (DOP853 took 1.5 million evaluations to
#: settle, where the flow settles by ``t = 200``). An implicit method has no such limit (its Jacobian by
#: differences: a fallback only).
VARIATIONAL_FALLBACK = "Radau"


def _settle(variational, state, method, rtol, atol, max_time):
    """The state of the variational equation where it settles, by ``method``; ``ConvergenceError`` if it does not."""
    with np.errstate(all="ignore"):
        try:
            sol = solve_ivp(variational.rhs, (0.0, max_time), state, method=method, rtol=rtol, atol=atol,
                            events=[variational.settled])  # fmt: skip
        except ValueError as err:  # solve_ivp's event location (brentq)
            raise ConvergenceError(f"the variational equation's integrator failed: {err}") from err
    if sol.status != 1:
        raise ConvergenceError(f"the variational equation did not settle by flow time {max_time:g} ({sol.message})")
    return sol.y[:, -1]


class _Variational:
    """The state ``(x, W)`` of the variational equation, with ``(∇f(x), ∇²f(x) W)`` remembered
    for the event at the state the step just evaluated."""

    def __init__(self, problem: Problem, max_evals: int, gtol: float):
        self.problem, self.max_evals, self.gtol = problem, max_evals, gtol
        self.derivatives = _Memo(self._evaluate)

    def _evaluate(self, state):
        if self.derivatives.calls > self.max_evals:
            raise ConvergenceError(f"the variational equation did not settle within {self.max_evals} evaluations")
        d = self.problem.dim
        z, W = state[:d], state[d:].reshape(d, -1)
        return self.problem.unchecked.grad(z), self.problem.unchecked.hess_vec(z, W)

    def rhs(self, t, state):
        g, HW = self.derivatives(state)
        return -np.concatenate([g, HW.ravel()])

    def settled(self, t, state):
        g, HW = self.derivatives(state)
        W_norm = np.linalg.norm(state[self.problem.dim :])
        return max(np.linalg.norm(g), np.linalg.norm(HW) / max(W_norm, 1.0)) - self.gtol

    settled.terminal = True
