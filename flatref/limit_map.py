"""The limit map of gradient flow (Definition 1), its Jacobian, and the tangent projector.

``Φ(x) := lim_{t→∞} x(t)`` with ``x(0) = x`` and ``ẋ = −∇f(x)`` (Ahn, Jadbabaie & Sra,
2024, Definition 1). ``∂Φ(x) = lim_{t→∞} W(t)`` with ``Ẇ = −∇²f(x(t)) W``, ``W(0) = I``
(the variational equation). At a point ``x*`` of the minima set ``X*``, where ``X*`` is
locally a manifold and ``rank ∇²f(x*) = d − dim X*``, ``∂Φ(x*)`` is the orthogonal
projector onto the tangent space (the null space of ``∇²f(x*)``); for Setting 1 that
is ``I − Jᵀ(JJᵀ)⁺J`` with ``J`` the output Jacobian (eq. (31)).

How :func:`limit_map` computes ``Φ`` (MATH.md §6):

1. integrate the flow with :func:`scipy.integrate.solve_ivp` (DOP853 by default)
   until the terminal event ``‖∇f(x)‖ ≤ gtol``;
2. *finish* with a Newton-type projection onto ``X*``: Gauss–Newton
   ``x ← x − J⁺(p(x) − y)`` for a :class:`~flatref.problems.TrainingLoss`, a Newton
   step restricted to the top ``codim X*`` eigenvectors of ``∇²f`` otherwise. Either
   lands ``O(dist(x, X*)²)`` from the flow's limit, so the finish is accepted only
   when its step is below ``finish_radius`` (error ``≈ C·finish_radius²``, below
   ``1e-10`` on our problems); otherwise the flow goes on to ``gtol / 100`` and tries again.
   A plain ``pinv(∇²f)`` Newton step is *not* used: off ``X*`` the tangent
   eigenvalues are ``O(dist)``, not zero, and inverting them throws the point away.
3. classify: a point where ``∇²f`` has an eigenvalue below
   ``−saddle_tol · max(1, λ_max)`` is a saddle. A Gauss–Newton finish that lands on
   ``p(x) = y`` has found a global minimum, and needs no eigenvalues.

``flatref.limit_map`` is also the name of the function exported by the package, which
shadows this module as an attribute: write ``from flatref.limit_map import LimitPoint``
(which works), not ``import flatref.limit_map as module``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from ._validation import as_array, as_int, as_positive, as_vector
from .errors import ConvergenceError, FlatrefError
from .problems import Problem, TrainingLoss

_IMPLICIT = ("Radau", "BDF", "LSODA")
#: Above this dimension, eigenvalues come from Lanczos on Hessian-vector products.
_DENSE_EIG_MAX_DIM = 1500
_LANCZOS_STEPS = 60


class LimitStatus(str, enum.Enum):
    """How the gradient flow ended."""

    CONVERGED = "converged"
    SADDLE = "saddle"
    DIVERGED = "diverged"
    MAX_TIME = "max_time"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)

    @property
    def message(self) -> str:
        return {
            "converged": "the flow reached a minimum",
            "saddle": "the flow ended at a stationary point with a negative Hessian eigenvalue",
            "diverged": "the iterates blew up or became non-finite",
            "max_time": "the flow did not reach a stationary point within its time or evaluation budget",
        }[self.value]


class LimitMapError(FlatrefError):
    """Raised where a value needs ``Φ(x)`` but the flow did not converge to a minimum."""

    def __init__(self, limit_point: "LimitPoint"):
        self.limit_point = limit_point
        super().__init__(f"the limit map is not defined here: {limit_point.status} ({limit_point.message})")


@dataclass(frozen=True)
class LimitPoint:
    """The result of :func:`limit_map`.

    Attributes:
        x: the limit ``Φ(x0)`` (for a failed flow, the last point reached).
        status: a :class:`LimitStatus`.
        message: what the status means, with details.
        grad_norm: ``‖∇f(x)‖`` at the returned point.
        flow_time: the flow time integrated.
        n_grad: gradient evaluations.
        n_hess: Hessian or output-Jacobian evaluations (finish, saddle check, implicit solver).
        finish_step: the length of the finishing correction (0 without one).
        min_eigenvalue: the smallest eigenvalue of ``∇²f(x)`` where it was computed, else ``None``.
    """

    x: np.ndarray = field(repr=False)
    status: LimitStatus
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
        return self.status is LimitStatus.CONVERGED


class _Blowup(Exception):
    """Raised inside the right-hand side when the gradient is not finite."""


class _GradientCache:
    """``∇f`` with a one-point memory: solve_ivp's event calls hit the point its step just evaluated."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.n_grad = 0
        self._key = None
        self._value = None

    def __call__(self, x):
        key = x.tobytes()
        if key != self._key:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as divergence below
                value = self.problem._grad(x)  # x comes from the integrator: already a float vector of length d
            self.n_grad += 1
            if not np.all(np.isfinite(value)):
                raise _Blowup
            self._key, self._value = key, value
        return self._value


def limit_map(
    problem: Problem,
    x,
    *,
    gtol: float = 1e-6,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    method: str = "DOP853",
    finish: bool = True,
    finish_radius: float = 1e-5,
    max_time: float = 1e8,
    max_grad_evals: int = 200_000,
    stall_evals: int = 5_000,
    blowup: float = 1e6,
    saddle_tol: float = 1e-5,
) -> LimitPoint:
    """The limit ``Φ(x)`` of the gradient flow ``ẋ = −∇f(x)`` started at ``x`` (Definition 1).

    Args:
        problem: the loss.
        x: the starting point.
        gtol: the flow stops at ``‖∇f‖ ≤ gtol``, and once more at ``gtol/100`` if the
            finish is not accepted. The integrated ``‖∇f‖`` cannot fall much below
            ``rtol · ‖x‖ · λ_max(∇²f)``, so without a finish ``gtol`` must stay above that.
        rtol, atol: solve_ivp's tolerances. Errors of the integrated path along the
            minima set are never corrected later, so they are tight; looser ones
            also let an explicit method stall on stiff problems, with ``‖∇f‖``
            held above ``gtol`` by its own step-size control (seen at ``rtol = 1e-8``).
        method: any solve_ivp method; implicit ones (``Radau``, ``BDF``, ``LSODA``)
            get the exact Jacobian ``−∇²f``.
        finish: apply the Newton-type finish described in the module docstring.
        finish_radius: accept a finish whose step is at most ``finish_radius`` (in the
            units of ``x``). Its error is ``≈ C · step²`` with ``C`` measured at 0.06
            (Example 1), 0.2 (diagonal network) and 1 (matrix sensing): about ``1e-10``.
        max_time: the largest flow time.
        max_grad_evals: the largest number of gradient evaluations.
        stall_evals: a flow stage stops early when ``‖∇f‖`` has not halved within this
            many evaluations (a ``gtol`` below what the integrator can reach, or the slow
            approach to a degenerate minimum); the finish is tried there. If the last
            stage stalls and the finish is rejected, the status is ``max_time``.
        blowup: the flow has diverged when ``‖x(t)‖ > blowup · (1 + ‖x(0)‖)``.
        saddle_tol: a Hessian eigenvalue below ``−saddle_tol · max(1, λ_max)`` makes a saddle.

    Returns:
        A :class:`LimitPoint`; a flow that fails says so in ``status``, never with NaN.
    """
    x0 = as_vector(x, problem.dim)
    gtol, rtol, atol, finish_radius, max_time, blowup, saddle_tol = (
        as_positive(value, name)
        for value, name in (
            (gtol, "gtol"),
            (rtol, "rtol"),
            (atol, "atol"),
            (finish_radius, "finish_radius"),
            (max_time, "max_time"),
            (blowup, "blowup"),
            (saddle_tol, "saddle_tol"),
        )
    )
    max_grad_evals = as_int(max_grad_evals, "max_grad_evals", minimum=1)
    stall_evals = as_int(stall_evals, "stall_evals", minimum=1)
    grad = _GradientCache(problem)
    max_norm = blowup * (1 + np.linalg.norm(x0))
    flow = _Flow(problem, grad, method, rtol, atol, max_time, max_grad_evals, stall_evals, max_norm)
    n_hess, step = 0, 0.0
    z, t = x0, 0.0
    for threshold in (gtol, gtol * 1e-2):
        z, t, status, detail = flow.run(z, t, threshold)
        n_hess += flow.n_jac
        if status is not None:
            return _result(grad, z, status, detail, t, n_hess, 0.0)
        if not finish:
            break
        finished, length, n = _finish(problem, z)
        n_hess += n
        if finished is not None and length <= finish_radius:
            z, step = finished, length
            if isinstance(problem, TrainingLoss):  # on p(x) = y: a global minimum, no eigenvalues needed
                return _result(grad, z, LimitStatus.CONVERGED, "Gauss-Newton finish", t, n_hess, step)
            break
    else:
        if flow.stalled:
            detail = f"the flow stalled at |grad f| = {np.linalg.norm(grad(z)):.3g} and the finish was rejected"
            return _result(grad, z, LimitStatus.MAX_TIME, detail, t, n_hess, 0.0)
    lam_min, lam_max = _extreme_eigenvalues(problem, z)
    n_hess += 1
    status = LimitStatus.SADDLE if lam_min < -saddle_tol * max(1.0, lam_max) else LimitStatus.CONVERGED
    detail = f"smallest Hessian eigenvalue {lam_min:.3g}" + (" (the flow stalled above gtol)" if flow.stalled else "")
    return _result(grad, z, status, detail, t, n_hess, step, lam_min)


def _result(grad, z, status, detail, t, n_hess, step, lam_min=None) -> LimitPoint:
    grad_norm = float(np.linalg.norm(grad(z))) if status is not LimitStatus.DIVERGED else float("inf")
    return LimitPoint(
        x=z,
        status=status,
        message=f"{status.message}: {detail}" if detail else status.message,
        grad_norm=grad_norm,
        flow_time=float(t),
        n_grad=grad.n_grad,
        n_hess=n_hess,
        finish_step=float(step),
        min_eigenvalue=None if lam_min is None else float(lam_min),
    )


@dataclass
class _Flow:
    """Integrates ``ż = −∇f(z)`` from a state until ``‖∇f‖ ≤ threshold``, or a failure."""

    problem: Problem
    grad: _GradientCache
    method: str
    rtol: float
    atol: float
    max_time: float
    max_grad_evals: int
    stall_evals: int
    max_norm: float
    n_jac: int = 0
    stalled: bool = False

    def run(self, z, t0, threshold):
        """Returns ``(z, t, status, detail)``; ``status`` is ``None`` when the threshold was reached
        or the flow stalled (then ``self.stalled``)."""
        self.n_jac, self.stalled = 0, False
        self._last, self._last_t = z, t0
        self._best, self._best_at = np.inf, self.grad.n_grad
        self._lowest = (np.inf, z, t0)
        try:
            if np.linalg.norm(self.grad(z)) <= threshold:
                return z, t0, None, ""
            events = [self._converged(threshold), self._escaped()]
            options = {"jac": self._jac} if self.method in _IMPLICIT else {}
            sol = solve_ivp(
                self._rhs, (t0, self.max_time), z, method=self.method, rtol=self.rtol, atol=self.atol,
                events=events, **options,
            )  # fmt: skip
        except _Blowup:
            return self._last, self._last_t, LimitStatus.DIVERGED, "non-finite gradient"
        except _Budget:
            return self._last, self._last_t, LimitStatus.MAX_TIME, f"{self.max_grad_evals} gradient evaluations used"
        except _Stalled:
            self.stalled = True
            _, z, t = self._lowest
            return z, t, None, ""
        z, t = sol.y[:, -1], sol.t[-1]
        if sol.status == -1:
            return z, t, LimitStatus.DIVERGED, sol.message
        if sol.t_events[1].size:
            return z, t, LimitStatus.DIVERGED, f"|x| exceeded {self.max_norm:.3g}"
        if not sol.t_events[0].size:
            return z, t, LimitStatus.MAX_TIME, f"flow time {self.max_time:.3g} reached"
        return z, t, None, ""

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
        self.n_jac += 1
        return -self.problem.hess(z)

    def _converged(self, threshold):
        def event(t, z):
            return np.linalg.norm(self.grad(z)) - threshold

        event.terminal = True
        return event

    def _escaped(self):
        def event(t, z):
            return self.max_norm - np.linalg.norm(z)

        event.terminal = True
        return event


class _Budget(Exception):
    """Raised inside the right-hand side when the gradient budget is spent."""


class _Stalled(Exception):
    """Raised inside the right-hand side when ``‖∇f‖`` has not halved for ``stall_evals`` evaluations."""


def _finish(problem: Problem, z):
    """A Newton-type projection of ``z`` onto ``X*``: ``(point or None, step length, Hessian-type evaluations)``."""
    if isinstance(problem, TrainingLoss):
        try:
            finished = problem.gauss_newton_project(z, max_iter=8)
        except ConvergenceError:
            return None, np.inf, 8
        return finished, float(np.linalg.norm(finished - z)), 1
    if problem.dim > _DENSE_EIG_MAX_DIM:
        return None, np.inf, 0
    lam, Q = np.linalg.eigh(problem.hess(z))
    top = lam > 1e-6 * max(lam[-1], 0.0)
    if lam[0] < -1e-6 * max(lam[-1], 0.0) or not top.any():  # clear negative curvature: no minimum near
        return None, np.inf, 1
    Qt = Q[:, top]
    step = Qt @ ((Qt.T @ problem.grad(z)) / lam[top])
    return z - step, float(np.linalg.norm(step)), 1


def _extreme_eigenvalues(problem: Problem, z):
    """``(λ_min, λ_max)`` of ``∇²f(z)``: exact for small ``d``, Lanczos Ritz values otherwise.

    Above ``_DENSE_EIG_MAX_DIM`` they are the extreme Ritz values of
    ``_LANCZOS_STEPS`` Lanczos steps on :meth:`Problem.hess_vec` (full
    reorthogonalization, fixed start vector, so the answer is deterministic). A Ritz
    value is never below ``λ_min``, so a saddle found this way is certain; a negative
    eigenvalue hidden close to the cluster of zeros may be missed. (ARPACK's ``eigsh``
    does not converge on that cluster of ``dim X*`` near-zero eigenvalues.)
    """
    if problem.dim <= _DENSE_EIG_MAX_DIM:
        lam = np.linalg.eigvalsh(problem.hess(z))
        return float(lam[0]), float(lam[-1])
    ritz = _lanczos_ritz_values(lambda v: problem._hess_vec(z, v), problem.dim, _LANCZOS_STEPS)
    return float(ritz[0]), float(ritz[-1])


def _lanczos_ritz_values(matvec, d, steps):
    """Ritz values of at most ``steps`` Lanczos iterations with full reorthogonalization.

    Gram–Schmidt runs twice per step ("twice is enough"), and the iteration stops when
    the new direction is below ``1e-8`` of ``‖H q_j‖``: the Krylov space is then
    invariant (it holds at most one vector per distinct eigenvalue), and normalizing
    the rounding left over would break the basis.
    """
    Q = np.zeros((d, steps))
    q = np.random.default_rng(0).standard_normal(d)
    Q[:, 0] = q / np.linalg.norm(q)
    alpha, beta = np.zeros(steps), np.zeros(steps)
    for j in range(steps):
        w = matvec(Q[:, j])
        size = np.linalg.norm(w)
        alpha[j] = Q[:, j] @ w
        for _ in range(2):
            w = w - Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        if j + 1 == steps or beta[j] <= 1e-8 * max(size, np.finfo(float).tiny):
            break
        Q[:, j + 1] = w / beta[j]
    k = j + 1
    T = np.diag(alpha[:k]) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    return np.linalg.eigvalsh(T)


# ------------------------------------------------------------- tangent space
def normal_basis(problem: Problem, x_star, *, rtol: float = 1e-6) -> np.ndarray:
    """An orthonormal basis ``N`` (``d × k``) of the normal space of ``X*`` at ``x_star``.

    Rank rule: for a :class:`~flatref.problems.TrainingLoss`, the right singular vectors of
    the output Jacobian ``J`` (rows ``∇p_iᵀ``) with singular value above
    ``rtol · σ_max``; otherwise the eigenvectors of ``∇²f`` with eigenvalue above
    ``rtol · λ_max``. On our problems the kept values are ``O(1)`` and the dropped ones
    are rounding (``≲ 1e-12``) at points of ``X*``, so ``1e-6`` is far from both.
    """
    x_star = as_vector(x_star, problem.dim, "x_star")
    rtol = as_positive(rtol, "rtol")
    if isinstance(problem, TrainingLoss):
        _, s, Vt = np.linalg.svd(problem.output_jacobian(x_star), full_matrices=False)
        return Vt[s > rtol * s[0]].T if s.size and s[0] > 0 else np.zeros((problem.dim, 0))
    lam, Q = np.linalg.eigh(problem.hess(x_star))
    return Q[:, lam > rtol * max(lam[-1], 0.0)] if lam[-1] > 0 else np.zeros((problem.dim, 0))


def tangent_projector(problem: Problem, x_star, *, rtol: float = 1e-6) -> np.ndarray:
    """``∂Φ(x*) = I − N Nᵀ``, the orthogonal projector onto the tangent space of ``X*`` at ``x_star``.

    ``x_star`` should be a point of ``X*`` (for instance ``limit_map(problem, x).x``);
    ``N`` and the rank rule are those of :func:`normal_basis`.
    """
    N = normal_basis(problem, x_star, rtol=rtol)
    return np.eye(problem.dim) - N @ N.T


def project_tangent(problem: Problem, x_star, v, *, rtol: float = 1e-6) -> np.ndarray:
    """``∂Φ(x*) v = v − N(Nᵀv)`` without forming the ``d × d`` projector."""
    N = normal_basis(problem, x_star, rtol=rtol)
    v = as_array(v, "v")
    return v - N @ (N.T @ v)


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
    ``‖∇f(x)‖ ≤ gtol`` and ``‖∇²f(x) W‖ ≤ gtol ‖W‖``, then returns ``P W`` with ``P`` the
    tangent projector at the end point: ``∂Φ(x) = ∂Φ(x_T) W(T)`` exactly, and
    ``∂Φ(x_T) = P + O(dist(x_T, X*))``. Products use :meth:`Problem.hess_vec`, so
    ``v`` of shape ``(d,)`` or ``(d, k)`` never needs a ``d × d`` matrix.

    Raises:
        LimitMapError: if the flow does not converge to a minimum (checked first with
            :func:`limit_map`: towards a saddle ``W`` grows without bound).
        ConvergenceError: if ``W`` has not settled after ``max_evals`` right-hand sides
            (near a degenerate minimum, where some normal rates are almost zero).
    """
    x0 = as_vector(x, problem.dim)
    W0 = np.eye(problem.dim) if v is None else as_array(v, "v")
    if W0.shape[:1] != (problem.dim,) or W0.ndim > 2:
        raise ValueError(f"v must have shape ({problem.dim},) or ({problem.dim}, k), got shape {W0.shape}")
    gtol, rtol, atol, max_time = (
        as_positive(a, n) for a, n in ((gtol, "gtol"), (rtol, "rtol"), (atol, "atol"), (max_time, "max_time"))
    )
    max_evals = as_int(max_evals, "max_evals", minimum=1)
    limit = limit_map(problem, x0, method=method, max_time=max_time)
    if not limit.success:
        raise LimitMapError(limit)
    d, shape = problem.dim, W0.shape
    cache, evals = {}, [0]

    def derivatives(state):
        """``(∇f(x), ∇²f(x) W)`` for ``state = (x, W)``, remembered for the event at the same state."""
        key = state.tobytes()
        if key not in cache:
            evals[0] += 1
            if evals[0] > max_evals:
                raise ConvergenceError(f"the variational equation did not settle within {max_evals} evaluations")
            z, W = state[:d], state[d:].reshape(d, -1)
            cache.clear()
            cache[key] = (problem._grad(z), problem._hess_vec(z, W))
        return cache[key]

    def rhs(t, state):
        g, HW = derivatives(state)
        return -np.concatenate([g, HW.ravel()])

    def settled(t, state):
        g, HW = derivatives(state)
        W_norm = np.linalg.norm(state[d:])
        return max(np.linalg.norm(g), np.linalg.norm(HW) / max(W_norm, 1.0)) - gtol

    settled.terminal = True
    sol = solve_ivp(rhs, (0.0, max_time), np.concatenate([x0, W0.ravel()]), method=method, rtol=rtol, atol=atol,
                    events=[settled])  # fmt: skip
    if sol.status != 1:
        raise LimitMapError(limit)
    z, W = sol.y[:d, -1], sol.y[d:, -1].reshape(d, -1)
    N = normal_basis(problem, z)
    return (W - N @ (N.T @ W)).reshape(shape)
