"""The limit map of gradient flow (Definition 1) and its Jacobian.

``Φ(x) := lim_{t→∞} x(t)`` with ``x(0) = x`` and ``ẋ = −∇f(x)`` (Ahn, Jadbabaie & Sra,
2024, Definition 1). ``∂Φ(x) = lim_{t→∞} W(t)`` with ``Ẇ = −∇²f(x(t)) W``, ``W(0) = I``
(the variational equation). At a point ``x*`` of the minima set ``X*``, where ``X*`` is
locally a manifold and ``rank ∇²f(x*) = d − dim X*``, ``∂Φ(x*)`` is the orthogonal
projector onto the tangent space (the null space of ``∇²f(x*)``); for Setting 1 that
is ``I − Jᵀ(JJᵀ)⁺J`` with ``J`` the output Jacobian (eq. (31)); :mod:`flatref.geometry` computes it.

How :func:`limit_map` computes ``Φ`` (docs/theory.md §6):

1. integrate the flow with :func:`scipy.integrate.solve_ivp` (DOP853 by default)
   until the terminal event ``‖∇f(x)‖ ≤ gtol``;
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
from .problems import Problem
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
        n_hess: Hessian-type evaluations: one per finish attempt and per saddle check, and
            the implicit solvers' Jacobians.
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
    flow = _Flow.checked(problem, method, stiff_method, rtol=rtol, atol=atol, max_time=max_time,
                         max_grad_evals=max_grad_evals, stall_evals=stall_evals,
                         max_norm=as_positive(blowup, "blowup") * (1.0 + bounded_norm(x0, "x")))  # fmt: skip
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

    @classmethod
    def checked(cls, problem, method, stiff_method, *, rtol, atol, max_time, max_grad_evals, stall_evals, max_norm):
        """A flow with its options checked (each ``ValueError``/``TypeError`` names the argument)."""
        return cls(
            problem, _GradientCache(problem), _ivp_method(method), _stiff_method(stiff_method), _rtol(rtol),
            as_positive(atol, "atol"), as_positive(max_time, "max_time"),
            as_int(max_grad_evals, "max_grad_evals", minimum=1), as_int(stall_evals, "stall_evals", minimum=1),
            max_norm,
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
        stalls hands the stage to ``stiff_method`` from its last accepted step."""
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
            ``max_time`` (near a degenerate minimum, where some normal rates are almost zero).

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
    variational = _Variational(problem, as_int(max_evals, "max_evals", minimum=1), gtol)
    state = np.concatenate([x0, W0.ravel()])
    with np.errstate(all="ignore"):  # a norm that overflows is inf: not settled
        unsettled = variational.settled(0.0, state) > 0
    if unsettled:  # an event needs a sign change: a settled start is done already
        with np.errstate(all="ignore"):
            try:
                sol = solve_ivp(variational.rhs, (0.0, max_time), state, method=method, rtol=rtol, atol=atol,
                                events=[variational.settled])  # fmt: skip
            except ValueError as err:  # solve_ivp's event location (brentq)
                raise ConvergenceError(f"the variational equation's integrator failed: {err}") from err
        if sol.status != 1:
            raise ConvergenceError(f"the variational equation did not settle by flow time {max_time:g} ({sol.message})")
        state = sol.y[:, -1]
    d = problem.dim
    return project_tangent(problem, state[:d], state[d:].reshape(d, -1)).reshape(W0.shape)


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
