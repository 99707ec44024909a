"""Tools for checking problems, yours included: a derivative checker and hypothesis strategies.

:func:`check_derivatives` tests each derivative of a :class:`~flatref.problems.Problem`
two independent ways, along random unit directions ``v``:

1. **Taylor remainders** of ``f`` (as pymanopt's ``check_gradient``): with
   ``t_k(h) = (h^k/k!) ∇^k f(x)[v, …, v]``, the remainder
   ``R_k(h) = |f(x + hv) − f(x) − t_1 − … − t_k|`` is ``O(h^{k+1})`` when the first
   ``k`` derivatives are right, and only ``O(h^k)`` when the ``k``-th is wrong. The
   checker fits the log–log slope of ``R_k`` over the smallest steps at which it
   stands clear of the rounding floor: 2 for the gradient, 3 for the Hessian, 4 for
   the third derivative. A remainder that never leaves the rounding floor means the
   Taylor polynomial is exact (e.g. a quadratic ``f``), which also passes.
2. **Central differences of the order below** (relative errors):
   ``∇f·v`` against ``(f(x+hv) − f(x−hv))/2h``, ``∇²f v`` against differences of
   ``∇f``, ``∇³f[v, w]`` against differences of ``∇²f w``, and ``∇ tr∇²f · v``
   against differences of ``tr∇²f``; also ``tr∇²f`` against ``trace(∇²f)``.
   With ``h = ε_mach^{1/3} ≈ 6e-6`` the difference has error ``O(h²) + O(ε/h)``,
   about ``1e-10`` relative on well-scaled problems, so the default tolerance
   ``1e-6`` is far above the noise and far below any real mistake.

:func:`check_lemmas` runs the paper's lemmas as checks at a minimum of any problem
(:mod:`flatref.lemma_checks`). The strategies (:func:`problems`, :func:`points`,
:func:`points_near_minima`) take the built-in families or a factory of your own; they need
hypothesis, which is imported only when they are called.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_int, as_positive, as_vector, bounded_norm, check_problem, make_rng
from .errors import NonFiniteError
from .lemma_checks import LemmaCheck, LemmaReport, check_lemmas  # noqa: F401  (the lemma checks live there)
from .problems import DiagonalLinearNetwork, Example1, LinearRegression, MatrixSensing, Problem

_EPS = np.finfo(float).eps
_NAMES = {1: "gradient", 2: "Hessian", 3: "third derivative"}


@dataclass(frozen=True)
class OrderCheck:
    """The check of one derivative order.

    Attributes:
        order: 1 (gradient), 2 (Hessian) or 3 (third derivative).
        expected_slope: ``order + 1``, the Taylor-remainder slope of a correct derivative.
        slope: the smallest fitted slope over the directions, or ``None`` where the
            remainder stayed at the rounding floor (the Taylor polynomial is exact).
        fd_error: the largest relative error against central differences of the order below.
        passed: ``slope`` is ``None`` or above ``expected_slope − slope_tol``, and
            ``fd_error ≤ fd_tol``.

    Examples:
        >>> from flatref.problems import Example1
        >>> grad = check_derivatives(Example1(), [0.5, 2.0]).orders[0]  # R_1(h) = O(h²) for a correct gradient
        >>> grad.order, grad.expected_slope, round(grad.slope), grad.fd_error < 1e-8, bool(grad.passed)
        (1, 2, 2, True, True)
    """

    order: int
    expected_slope: int
    slope: float | None
    fd_error: float
    passed: bool

    @property
    def name(self) -> str:
        """``"gradient"``, ``"Hessian"`` or ``"third derivative"``.

        Examples:
            >>> [o.name for o in check_derivatives(Example1(), [0.5, 2.0]).orders]
            ['gradient', 'Hessian', 'third derivative']
        """
        return _NAMES[self.order]


@dataclass(frozen=True)
class DerivativeCheck:
    """The result of :func:`check_derivatives`; ``str()`` gives a table.

    Examples:
        >>> check = check_derivatives(Example1(), [0.5, 2.0])  # closed-form tr∇²f = 2(x1² + x2²) vs trace(∇²f)
        >>> check.passed, [o.expected_slope for o in check.orders], check.trace_error < 1e-12
        (True, [2, 3, 4], True)
        >>> str(check).splitlines()[0]
        'derivative check of Example1(): passed'
    """

    problem: str
    orders: tuple[OrderCheck, ...]
    trace_error: float
    grad_trace_error: float
    fd_tol: float
    passed: bool

    def __str__(self) -> str:
        lines = [f"derivative check of {self.problem}: {'passed' if self.passed else 'FAILED'}"]
        lines.append(f"  {'derivative':<17}{'Taylor slope':>14}{'expected':>10}{'FD rel. error':>15}")
        for o in self.orders:
            slope = "exact" if o.slope is None else f"{o.slope:.2f}"
            lines.append(f"  {o.name:<17}{slope:>14}{o.expected_slope:>10}{o.fd_error:>15.1e}")
        lines.append(f"  {'trace_hess':<17}{'vs trace(hess)':>24}{self.trace_error:>15.1e}")
        lines.append(f"  {'grad_trace_hess':<17}{'vs FD of trace':>24}{self.grad_trace_error:>15.1e}")
        return "\n".join(lines)


def _fit_slope(hs, remainders, noise, *, clearance=100.0, points=6):
    """Slope of log R against log h over the ``points`` smallest steps where R is clear of the rounding noise.

    "Clear" is ``R > clearance · noise``: there rounding moves ``log R`` by at most 1 %, so
    the fitted slope is off by far less than the ``slope_tol`` of a wrong derivative (1).
    Six points (at least three) span a factor of 32 to 4 in ``h``: enough for a stable fit,
    and few enough to stay at the smallest steps, where the next Taylor term is negligible.
    """
    clear = remainders > clearance * noise
    if np.count_nonzero(clear) < 3:
        return None
    h, r = hs[clear][-points:], remainders[clear][-points:]
    return float(np.polyfit(np.log(h), np.log(r), 1)[0])


def _rel(err, *scales):
    """``|err| / Σ|scales|``: relative error against the magnitudes the computation involves."""
    scale = sum(np.linalg.norm(s) for s in scales)
    return float(np.linalg.norm(err) / max(scale, np.finfo(float).tiny))


def _taylor_slopes(problem, x, v, f0, g, H, hs):
    """Fitted slopes of the remainders ``R_1, R_2, R_3`` of ``f`` along ``v`` (``None``: exact)."""
    Hv, Tvv = H @ v, problem.third_contract(x, v, v)
    coeffs = np.array([g @ v, v @ Hv / 2, Tvv @ v / 6])
    f_h = np.array([problem.f(x + h * v) for h in hs])
    powers = hs[:, None] ** np.arange(1, 4)
    terms = coeffs * powers
    remainders = np.abs(f_h[:, None] - f0 - np.cumsum(terms, axis=1))
    # Rounding noise of each remainder: the floor of f near x (the first-order remainder
    # at a tiny step, where truncation is negligible), rounding in f and in the sum, and
    # h^k times the rounding of each coefficient, which is eps times the size of the
    # terms that cancel in it (what the next order changes across |x|) -- this matters
    # at minima, where the computed gradient is rounding error, not zero.
    floor = max(abs(problem.f(x + 1e-12 * v) - f0 - 1e-12 * coeffs[0]), _EPS * abs(f0), _EPS**2)
    reach = 1.0 + np.linalg.norm(x)
    Hv_size, Tvv_size = np.linalg.norm(Hv) * reach, np.linalg.norm(Tvv) * reach
    coeff_noise = _EPS * np.array([abs(coeffs[0]) + Hv_size, abs(coeffs[1]) + Tvv_size, Tvv_size])
    noise = floor + _EPS * (np.abs(f_h) + abs(f0) + np.abs(terms).sum(axis=1))
    noise = noise[:, None] + np.cumsum(coeff_noise * powers, axis=1)
    return [_fit_slope(hs, remainders[:, k], noise[:, k]) for k in range(3)]


def _difference_errors(problem, x, v, w, h, g, H, tr, g_tr) -> list[float]:
    """Relative central-difference errors of ``∇f·v``, ``∇²f v``, ``∇³f[v, w]`` and ``∇tr∇²f·v`` at ``x``."""

    def central(fun):
        return (fun(x + h * v) - fun(x - h * v)) / (2 * h)

    Tvv, Tvw = problem.third_contract(x, v, v), problem.third_contract(x, v, w)
    return [
        _rel(central(problem.f) - g @ v, g @ v, v @ H @ v),
        _rel(central(problem.grad) - H @ v, H @ v, Tvv),
        _rel(central(lambda z: problem.hess(z) @ w) - Tvw, Tvw, H @ w),
        _rel(central(problem.trace_hess) - g_tr @ v, g_tr @ v, tr),
    ]


def check_derivatives(
    problem: Problem,
    x=None,
    *,
    rng=0,
    n_directions: int = 2,
    h_max: float = 1.0,
    fd_tol: float = 1e-6,
    slope_tol: float = 0.5,
) -> DerivativeCheck:
    """Check ``grad``, ``hess``, ``third_contract``, ``trace_hess`` and ``grad_trace_hess``.

    Relative errors are taken against the magnitudes each difference involves: the
    derivative itself plus the next order along the direction (for the gradient,
    ``|∇f·v| + |vᵀ∇²f v|``), so that they stay meaningful at minima, where ``∇f = 0``.

    Args:
        problem: any :class:`~flatref.problems.Problem` (``hess`` is called, so keep ``dim`` moderate).
        x: the point; by default a standard normal draw from ``rng``.
        rng: seed or generator for ``x`` and the directions.
        n_directions: random unit directions per check.
        h_max: the largest Taylor step; steps go down from it by factors of 2.
        fd_tol: tolerance on every relative central-difference error.
        slope_tol: a fitted slope passes when above ``expected − slope_tol``
            (a wrong derivative gives exactly one less).

    Returns:
        A :class:`DerivativeCheck`.

    Examples:
        >>> from flatref.problems import Example1
        >>> check_derivatives(Example1(), [0.5, 2.0]).passed
        True
        >>> class Off(Example1):  # a gradient 1% too large
        ...     def _grad(self, x): return 1.01 * super()._grad(x)
        >>> grad = check_derivatives(Off(), [0.4, 1.7]).orders[0]
        >>> bool(grad.passed), round(grad.slope)  # R_1(h) = O(h) instead of O(h²)
        (False, 1)
    """
    check_problem(problem)
    rng = make_rng(rng)
    x = rng.standard_normal(problem.dim) if x is None else as_vector(x, problem.dim)
    n_directions = as_int(n_directions, "n_directions", minimum=1)
    h_max, fd_tol, slope_tol = (
        as_positive(value, name) for value, name in ((h_max, "h_max"), (fd_tol, "fd_tol"), (slope_tol, "slope_tol"))
    )

    h = _EPS ** (1 / 3) * max(1.0, bounded_norm(x, "x"))
    with np.errstate(all="ignore"):  # overflow inside the differences is reported below, not warned
        f0, g, H = problem.f(x), problem.grad(x), problem.hess(x)
        tr, g_tr = problem.trace_hess(x), problem.grad_trace_hess(x)
        slopes, fd, grad_trace_error = [], np.zeros(3), 0.0
        for _ in range(n_directions):
            v, w = (d / np.linalg.norm(d) for d in rng.standard_normal((2, problem.dim)))
            slopes.append(_taylor_slopes(problem, x, v, f0, g, H, h_max * 0.5 ** np.arange(40)))
            errors = _difference_errors(problem, x, v, w, h, g, H, tr, g_tr)
            fd, grad_trace_error = np.maximum(fd, errors[:3]), max(grad_trace_error, errors[3])
        orders = []
        for k in (1, 2, 3):
            measured = [s[k - 1] for s in slopes if s[k - 1] is not None]
            slope = min(measured) if measured else None
            ok = (slope is None or slope > k + 1 - slope_tol) and fd[k - 1] <= fd_tol
            orders.append(OrderCheck(k, k + 1, slope, float(fd[k - 1]), ok))
        trace_error = _rel(tr - np.trace(H), tr)
    if not np.all(np.isfinite([*fd, trace_error, grad_trace_error])):
        raise NonFiniteError("check_derivatives overflows float64 at this x: the differences are beyond its range")
    passed = all(o.passed for o in orders) and trace_error <= fd_tol and grad_trace_error <= fd_tol
    return DerivativeCheck(repr(problem), tuple(orders), trace_error, grad_trace_error, fd_tol, passed)


# --------------------------------------------------------------------- strategies
FAMILIES = (Example1, LinearRegression, DiagonalLinearNetwork, MatrixSensing)


def small_problem(family, seed: int, size: int = 0):
    """A small random instance of ``family``; ``size`` (0, 1, 2, …) grows it a little.

    ``family`` is one of :data:`FAMILIES` or a factory of your own, ``factory(seed, size) -> Problem``.

    Examples:
        >>> [small_problem(family, seed=0, size=1).dim for family in FAMILIES]  # 2; D = n + 2 = 4; 2D; n·r = 3·2
        [2, 4, 8, 6]
        >>> small_problem(LinearRegression, seed=0).n_samples < small_problem(LinearRegression, seed=0).dim
        True
    """
    seed, size = as_int(seed, "seed", minimum=0), as_int(size, "size", minimum=0)
    if family is Example1:
        return Example1()
    n = 1 + size
    if family is LinearRegression:
        return LinearRegression.random(n, n + 2, rng=seed)
    if family is DiagonalLinearNetwork:
        return DiagonalLinearNetwork.random(n, n + 2, sparsity=1, rng=seed)
    if family is MatrixSensing:
        return MatrixSensing.random(2 + size, 2, 1, n + 1, rng=seed)
    if callable(family) and family not in FAMILIES and not isinstance(family, type):
        return check_problem(family(seed, size), "the factory's result")
    raise TypeError(f"family must be one of {[f.__name__ for f in FAMILIES]} or a factory(seed, size), got {family!r}")


def problems(families=FAMILIES, max_size: int = 2):
    """Hypothesis strategy: small random instances of the given families (or factories, see :func:`small_problem`).

    Examples:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, database=None, derandomize=True, deadline=None)
        ... @given(problems(max_size=0))
        ... def trace_is_trace(p): assert np.isclose(p.trace_hess(np.ones(p.dim)), np.trace(p.hess(np.ones(p.dim))))
        >>> trace_is_trace()
    """
    from hypothesis import strategies as st

    return st.builds(
        small_problem,
        st.sampled_from(families),
        st.integers(0, 2**32 - 1),
        st.integers(0, max_size),
    )


def points(problem: Problem, scale: float = 2.0):
    """Hypothesis strategy: points of the box ``[−scale, scale]^d``.

    Examples:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=20, database=None, derandomize=True)
        ... @given(points(Example1(), scale=1.0))
        ... def in_box(x): assert x.shape == (2,) and np.all(abs(x) <= 1.0) and Example1().f(x) >= 0.0
        >>> in_box()
    """
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    return arrays(np.float64, problem.dim, elements=st.floats(-scale, scale, allow_nan=False, allow_infinity=False))


def points_near_minima(problem: Problem, max_distance: float = 1e-2, minimum=None):
    """Hypothesis strategy: ``x* + t·e`` near the minima set.

    ``x* = minimum(rng)`` (default ``problem.random_minimum``: pass your own where the problem does
    not know its minima), ``e`` is a random unit vector and ``0 ≤ t ≤ max_distance``.

    Examples:
        >>> from hypothesis import given, settings
        >>> p = LinearRegression.random(2, 4, rng=0)  # X* is affine: dist(x, X*) = ‖x − Φ(x)‖
        >>> @settings(max_examples=20, database=None, derandomize=True)
        ... @given(points_near_minima(p, max_distance=1e-2))
        ... def near(x): assert np.linalg.norm(x - p.exact_limit(x)) <= 1e-2 + 1e-12
        >>> near()
    """
    from hypothesis import strategies as st

    def build(seed, t):
        rng = make_rng(seed)
        x_star = (problem.random_minimum if minimum is None else minimum)(rng)
        e = rng.standard_normal(problem.dim)
        return x_star + t * e / np.linalg.norm(e)

    return st.builds(build, st.integers(0, 2**32 - 1), st.floats(0.0, max_distance))
