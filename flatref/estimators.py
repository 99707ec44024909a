"""Matrix-free stochastic estimators of ``tr ∇²f(x)`` and ``∇ tr∇²f(x)``.

Every family in flatref has a closed-form ``trace_hess`` and ``grad_trace_hess``; these
estimators need only Hessian-vector products (``hess_vec``) or third-derivative
contractions (``third_contract``), so they apply to any :class:`~flatref.problems.Problem`
and serve as the reference for models without closed forms.

- **Hutchinson (1989).** For a random probe ``g`` with ``E ggᵀ = I`` (Rademacher signs or a
  standard Gaussian), ``E[gᵀHg] = tr(H E ggᵀ) = tr H``. The mean of ``m`` probes has variance
  ``V/m`` with ``V = 2(‖H‖_F² − Σ_i H_ii²)`` for Rademacher probes and ``V = 2‖H‖_F²`` for
  Gaussian ones.
- **Hutch++ (Meyer, Musco, Musco & Woodruff 2021).** Spend a third of the budget on a sketch
  ``S``, take ``Q = orth(HS)``, compute ``tr(QᵀHQ)`` exactly with another third, and estimate the
  rest, ``tr((I − QQᵀ)H(I − QQᵀ))``, by Hutchinson with the last third. Where ``H`` has rank at
  most ``k = probes // 3``, as ``∇²f`` at a minimum of a training loss with ``n ≤ k`` samples
  (rank ≤ ``n``, eq. (31), docs/theory.md §4.1), ``Q`` spans its range and the estimate is exact
  to rounding.
- **The trace gradient, eq. (16).** By the symmetry of ``∇³f``,
  ``E_g ∇³f(x)[g, g] = Σ_i ∇³f(x)[e_i, e_i] = ∇ tr∇²f(x)`` for any probe with ``E ggᵀ = I``
  (docs/theory.md §3.2). The paper's ``∇tr̄`` is this divided by ``d``. Component ``k`` has
  variance ``2(‖T_k‖_F² − Σ_i T_k,ii²)`` (Rademacher) or ``2‖T_k‖_F²`` (Gaussian) per probe, with
  ``T_k = ∇³f(x)[e_k, ·, ·]``.

Every estimator returns a :class:`TraceEstimate` with its standard error and the number of
products it spent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_int, as_vector, check_problem, frozen_copy, make_rng
from .errors import NonFiniteError
from .problems import Problem

#: The probe distributions: both have ``E g = 0`` and ``E ggᵀ = I``.
DISTRIBUTIONS = ("rademacher", "gaussian")

#: Hessian-vector products are taken in blocks of at most this many entries (``d × columns``),
#: 32 MB of float64 per block; the families' intermediates are a small multiple of it.
BLOCK_ENTRIES = 2**22


@dataclass(frozen=True)
class TraceEstimate:
    """A stochastic estimate with its standard error and its cost.

    Attributes:
        value: the estimate: a float for a trace, an array of shape ``(d,)`` for ``∇ tr∇²f``.
        std_error: the estimated standard error of ``value``, of the same shape. For Hutchinson
            it is ``std(samples, ddof=1) / √m`` over the ``m`` probes; for Hutch++ that of its
            stochastic (residual) part only, since the low-rank part ``tr(QᵀHQ)`` is exact given
            the sketch and the residual estimate is unbiased given it. ``nan`` when only one
            stochastic sample was drawn (no spread to estimate).
        n_products: Hessian-vector products (trace) or third-derivative contractions (gradient) spent.
        distribution: ``"rademacher"`` or ``"gaussian"``.

    Examples:
        >>> from flatref.problems import LinearRegression
        >>> est = hutchinson_trace(LinearRegression.random(3, 6, rng=0), [0.0] * 6, probes=50, rng=0)
        >>> est.n_products, est.distribution, type(est.value).__name__, type(est.std_error).__name__
        (50, 'rademacher', 'float', 'float')
    """

    value: float | np.ndarray
    std_error: float | np.ndarray
    n_products: int
    distribution: str


def hutchinson_trace(problem: Problem, x, *, probes: int, rng=None, distribution: str = "rademacher"):
    """Hutchinson's estimate of ``tr ∇²f(x)``: the mean of ``gᵀ∇²f(x)g`` over ``probes`` probes.

    Unbiased because ``E ggᵀ = I``; the variance of one probe is ``2(‖H‖_F² − Σ_i H_ii²)``
    (Rademacher) or ``2‖H‖_F²`` (Gaussian), ``H = ∇²f(x)`` (Hutchinson 1989). The products are
    taken in blocks of ``d × k`` (``hess_vec``), matrix-free.

    Args:
        problem: the loss.
        x: the point, shape ``(d,)``.
        probes: the number of probes ``m ≥ 1`` (= Hessian-vector products).
        rng: ``None``, an int seed, a ``SeedSequence`` or a ``Generator`` (the same seed gives the same bits).
        distribution: ``"rademacher"`` (independent signs) or ``"gaussian"``.

    Returns:
        A :class:`TraceEstimate` with ``value`` a float and ``std_error = std(samples, ddof=1)/√m``.

    Raises:
        NonFiniteError: where the products overflow float64 at ``x``.

    Examples:
        >>> from flatref.problems import LinearRegression
        >>> p = LinearRegression.random(5, 40, rng=0)       # ∇²f = ZᵀZ/n, trace ‖Z‖_F²/n
        >>> x = [0.0] * 40
        >>> est = hutchinson_trace(p, x, probes=4000, rng=0)
        >>> abs(est.value - float(p.trace_hess(x))) < 5 * est.std_error, est.n_products
        (True, 4000)
    """
    problem, x, probes, rng, distribution = _checked(problem, x, probes, rng, distribution, minimum=1)
    samples = _trace_samples(problem.unchecked.hess_vec, x, rng, distribution, probes)
    value, std_error = _mean_and_error(samples)
    return TraceEstimate(float(value), float(std_error), probes, distribution)


def hutchpp_trace(problem: Problem, x, *, probes: int, rng=None, distribution: str = "rademacher"):
    """The Hutch++ estimate of ``tr ∇²f(x)`` (Meyer, Musco, Musco & Woodruff 2021, Algorithm 1).

    With ``H = ∇²f(x)`` and ``k = probes // 3``:

    1. draw a sketch ``S`` (``d × k``) and take ``Q = orth(HS)`` (``k`` products);
    2. compute ``tr(QᵀHQ)`` exactly (``min(k, d)`` products);
    3. add Hutchinson's estimate of ``tr(PHP)``, ``P = I − QQᵀ``, from the remaining
       ``m = probes − 2k ≥ k`` probes ``g``, as the mean of ``(Pg)ᵀH(Pg)``.

    Since ``tr H = tr(QᵀHQ) + tr(PHP)`` for every orthonormal ``Q``, the estimate is unbiased
    given the sketch. Its variance is that of Hutchinson on ``PHP``, which removes the top of
    the spectrum: ``O(1/m²)`` relative error for PSD ``H`` instead of ``O(1/m)``. Where
    ``rank H ≤ k`` (``∇²f`` at a minimum of a training loss with ``n ≤ k`` samples has rank
    ``≤ n``, eq. (31)) ``PHP = 0`` and the estimate is exact to rounding.

    Args:
        problem: the loss.
        x: the point, shape ``(d,)``.
        probes: the budget of Hessian-vector products, at least 3.
        rng: ``None``, an int seed, a ``SeedSequence`` or a ``Generator``.
        distribution: the law of the sketch and of the probes: ``"rademacher"`` or ``"gaussian"``.

    Returns:
        A :class:`TraceEstimate`; ``std_error`` is ``std(samples, ddof=1)/√m`` of step 3 alone
        (step 2 contributes none), ``n_products = k + min(k, d) + m``.

    Raises:
        NonFiniteError: where the products overflow float64 at ``x``.

    Examples:
        >>> import numpy as np
        >>> from flatref.problems import LinearRegression
        >>> p = LinearRegression.random(5, 40, rng=0)       # ∇²f = ZᵀZ/5 has rank 5
        >>> est = hutchpp_trace(p, np.zeros(40), probes=15, rng=0)
        >>> bool(np.isclose(est.value, p.trace_hess(np.zeros(40)), rtol=1e-12, atol=0)), est.n_products
        (True, 15)
    """
    problem, x, probes, rng, distribution = _checked(problem, x, probes, rng, distribution, minimum=3)
    hess_vec = problem.unchecked.hess_vec
    k = probes // 3
    Q = np.linalg.qr(_blocked_products(hess_vec, x, rng, distribution, k))[0]
    with np.errstate(all="ignore"):
        exact = np.einsum("ij,ij->", Q, _apply(hess_vec, x, Q))
    m = probes - 2 * k
    samples = _trace_samples(hess_vec, x, rng, distribution, m, deflate=Q)
    value, std_error = _mean_and_error(samples)
    with np.errstate(all="ignore"):
        value = _finite(exact + value, "the Hutch++ estimate")
    return TraceEstimate(value, float(std_error), k + Q.shape[1] + m, distribution)


def hutchinson_grad_trace(problem: Problem, x, *, probes: int, rng=None, distribution: str = "rademacher"):
    """Hutchinson's estimate of ``∇ tr∇²f(x)``: the mean of ``∇³f(x)[g, g]`` over ``probes`` probes (eq. (16)).

    ``E_g ∇³f(x)[g, g]_k = Σ_ij T[k, i, j] E g_i g_j = Σ_i T[k, i, i] = (∇ tr∇²f(x))_k`` for
    ``E ggᵀ = I`` (docs/theory.md §3.2). This is the raw gradient of the trace: divide by ``d``
    for the paper's ``∇tr̄`` (eq. (1)). One ``third_contract`` per probe; the variance of one probe
    in component ``k`` is ``2(‖T_k‖_F² − Σ_i T_k,ii²)`` (Rademacher) or ``2‖T_k‖_F²`` (Gaussian),
    ``T_k = T[k, :, :]``.

    Args:
        problem: the loss.
        x: the point, shape ``(d,)``.
        probes: the number of probes ``m ≥ 1`` (= contractions).
        rng: ``None``, an int seed, a ``SeedSequence`` or a ``Generator``.
        distribution: ``"rademacher"`` or ``"gaussian"``.

    Returns:
        A :class:`TraceEstimate` whose ``value`` and ``std_error`` are arrays of shape ``(d,)``
        (read-only), the error componentwise ``std(samples, ddof=1)/√m``.

    Raises:
        NonFiniteError: where the contractions overflow float64 at ``x``.

    Examples:
        >>> import numpy as np
        >>> from flatref.problems import Example1
        >>> est = hutchinson_grad_trace(Example1(), [3.0, 1.0], probes=4000, rng=0)
        >>> exact = np.array([12.0, 4.0])                    # ∇ tr∇²f = ∇ 2(x1² + x2²) = 4x
        >>> bool(np.all(abs(est.value - exact) < 5 * est.std_error)), est.value.shape, est.n_products
        (True, (2,), 4000)
    """
    problem, x, probes, rng, distribution = _checked(problem, x, probes, rng, distribution, minimum=1)
    samples = _grad_samples(problem.unchecked.third_contract, x, _draw(rng, distribution, probes, problem.dim))
    value, std_error = _mean_and_error(samples)
    return TraceEstimate(frozen_copy(value), frozen_copy(std_error), probes, distribution)


# ----------------------------------------------------------------------- internals
def _checked(problem, x, probes, rng, distribution, *, minimum):
    """The arguments checked once: the problem, a real point, the budget, the generator, the law."""
    check_problem(problem)
    x = as_vector(x, problem.dim, "x")
    probes = as_int(probes, "probes", minimum=minimum)
    if not isinstance(distribution, str) or distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {list(DISTRIBUTIONS)}, got {distribution!r}")
    return problem, x, probes, make_rng(rng), distribution


def _draw(rng, distribution, count, dim):
    """``count`` probes as the rows of a ``(count, dim)`` array (row by row: the bits do not depend on blocking)."""
    if distribution == "rademacher":
        return rng.integers(0, 2, size=(count, dim)).astype(np.float64) * 2.0 - 1.0
    return rng.standard_normal((count, dim))


def _blocks(count, dim):
    """The column counts of the blocks that make up ``count`` products in dimension ``dim``."""
    size = max(1, BLOCK_ENTRIES // dim)
    return [min(size, count - start) for start in range(0, count, size)]


def _apply(hess_vec, x, V):
    """``H V`` for the columns of ``V``, block by block, checked finite."""
    out = np.empty_like(V)
    start = 0
    for size in _blocks(V.shape[1], V.shape[0]):
        with np.errstate(all="ignore"):
            out[:, start : start + size] = hess_vec(x, V[:, start : start + size])
        start += size
    _finite(out, "a Hessian-vector product")
    return out


def _blocked_products(hess_vec, x, rng, distribution, count):
    """``H S`` for ``count`` fresh probes ``S`` (the Hutch++ sketch), shape ``(d, count)``."""
    return _apply(hess_vec, x, _draw(rng, distribution, count, x.size).T)


def _trace_samples(hess_vec, x, rng, distribution, count, *, deflate=None):
    """``gᵀHg`` for ``count`` fresh probes ``g``, each replaced by ``(I − QQᵀ)g`` when ``deflate = Q``."""
    samples = np.empty(count)
    start = 0
    for size in _blocks(count, x.size):
        G = _draw(rng, distribution, size, x.size).T
        if deflate is not None:
            G = G - deflate @ (deflate.T @ G)
        samples[start : start + size] = _quadratic_forms(hess_vec, x, G)
        start += size
    return samples


def _quadratic_forms(hess_vec, x, G):
    """``g_jᵀ H g_j`` for the columns ``g_j`` of ``G`` (not checked finite: the caller checks the samples)."""
    HG = _apply(hess_vec, x, G)
    with np.errstate(all="ignore"):
        return np.einsum("ij,ij->j", G, HG)


def _grad_samples(third_contract, x, probes):
    """``∇³f(x)[g, g]`` for the rows ``g`` of ``probes``, shape ``(m, d)``, checked finite."""
    with np.errstate(all="ignore"):
        samples = np.array([third_contract(x, g, g) for g in probes], dtype=np.float64)
    _finite(samples, "a third-derivative contraction")
    return samples.reshape(len(probes), x.size)


def _mean_and_error(samples):
    """The mean over axis 0 and its standard error ``std(ddof=1)/√m`` (``nan`` for one sample), checked finite.

    The samples are scaled by their largest magnitude first, so that the squares in the
    variance do not overflow where the samples and their spread are representable.
    """
    m = samples.shape[0]
    _finite(samples, "a sample")
    scale = np.max(np.abs(samples), axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    mean = scale * (samples / scale).mean(axis=0)
    if m == 1:
        return mean, np.full_like(mean, np.nan)
    return mean, scale * (samples / scale).std(axis=0, ddof=1) / np.sqrt(m)


def _finite(value, what):
    """``value`` (a float if scalar), or :class:`~flatref.errors.NonFiniteError` where it is not finite."""
    if not np.all(np.isfinite(value)):
        raise NonFiniteError(f"{what} is not finite at this x: beyond the range of float64 for this problem")
    return float(value) if np.ndim(value) == 0 else value
