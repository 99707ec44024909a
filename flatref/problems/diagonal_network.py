"""Overparameterized linear regression as a diagonal linear network.

``f(u, v) = ‖Z(u⊙v) − y‖² / (2n)`` with ``x = concat(u, v) ∈ R^{2D}`` and
``w = u⊙v``. Write ``r = Zw − y``, ``g = Zᵀr/n``, ``G = ZᵀZ/n``, ``c_k = Σ_i z_ik²``
and ``M = [diag v, diag u]`` (the Jacobian of ``w``). Closed forms:

- ``∇f = (v⊙g, u⊙g)``;
- ``∇²f = Mᵀ G M + [[0, diag g], [diag g, 0]]``, applied to vectors in ``O(nD)``;
- ``∇³f[a, b] = Mᵀ G w″[a, b] + (G M b)⊙(a_v, a_u) + (G M a)⊙(b_v, b_u)``
  with ``w″[a, b] = a_u⊙b_v + a_v⊙b_u`` (the second derivative of ``w``);
- ``tr∇²f = (1/n) Σ_k c_k (u_k² + v_k²)`` at every point, since ``tr∇²p_i = 0``;
  hence ``∇ tr∇²f = (2/n)(c⊙u, c⊙v)``, which costs ``O(D)``.

The flow conserves ``u_k² − v_k²``. On the minima set
``tr∇²f ≥ (2/n) Σ_k c_k |w_k|`` with equality iff ``|u| = |v|``, so the flattest
interpolant is balanced and minimizes the weighted ℓ1 norm ``Σ_k c_k |w_k|``
subject to ``Zw = y`` (docs/theory.md §5): sparse recovery.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from .._validation import as_array, as_int, as_positive, frozen_copy, make_rng, require_finite
from ..errors import ConvergenceError
from .base import TrainingLoss
from .linear_regression import check_design


def _factor(w, balance):
    """``(u, v)`` with ``u⊙v = w`` and ``|u|/|v| = balance²``: ``u = balance·sign(w)√|w|``, ``v = √|w|/balance``."""
    root = np.sqrt(np.abs(w))
    return np.concatenate([balance * np.sign(w) * root, root / balance])


def _transport(u, v, b):
    """``(u cosh b − v sinh b, v cosh b − u sinh b)``, as ``u ± v`` scaled by ``e^{∓b}`` (no overflow for ``|b| < 709``)."""
    plus, minus = (u + v) * np.exp(-b), (u - v) * np.exp(b)
    return np.concatenate([plus + minus, plus - minus]) / 2


def _backtrack(dual, m, step, state):
    """``m + t·step`` and its ``dual`` values for the first ``t = 1, 1/2, …`` (at most 60) at which ``F`` decreases by
    Armijo's rule ``F(m + t·step) ≤ F(m) + t·∇F·step/4`` or ``‖∇F‖`` halves (near the minimizer ``F``'s decrease is
    below its rounding, and ``‖∇F‖`` still shows progress); ``(None, None)`` if none does."""
    value, grad = state[0], state[1]
    slope, norm, t = grad @ step, np.linalg.norm(grad), 1.0
    for _ in range(60):
        trial = dual(m + t * step)
        if trial[0] <= value + t * slope / 4 or np.linalg.norm(trial[1]) <= norm / 2:
            return m + t * step, trial
        t /= 2
    return None, None


class DiagonalLinearNetwork(TrainingLoss):
    """``f(u, v) = ‖Z(u⊙v) − y‖² / (2n)`` with ``dim = 2D`` and ``D > n``.

    Args:
        Z: design matrix, shape ``(n, D)`` with ``D > n``.
        y: labels, shape ``(n,)``.
        ground_truth: optional ``w*`` with ``Zw* = y`` (kept for recovery experiments).

    Examples:
        >>> import numpy as np
        >>> p = DiagonalLinearNetwork([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]], [1.0, 2.0])
        >>> x = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])  # u = 1, v = (1, 1, 0): w = u⊙v = (1, 1, 0), Zw = (1, 2)
        >>> float(p.f(x)), float(p.trace_hess(x))  # tr = (1/n) Σ_k c_k (u_k² + v_k²), c = (1, 4, 1)
        (0.0, 5.5)
    """

    quadratic_outputs = True

    def __init__(self, Z, y, *, ground_truth=None):
        Z, y = check_design(Z, y)
        n, D = Z.shape
        super().__init__(2 * D, y)
        self._Z = frozen_copy(Z)
        with np.errstate(all="ignore"):
            self._c = frozen_copy(np.sum(Z * Z, axis=0))
        require_finite(self._c, "Z", "the column norms Σ_i z_ij²")
        self._flattest = {}  # the weighted-l1 solution, computed on first request
        self.ground_truth = None
        if ground_truth is not None:
            w = as_array(ground_truth, "ground_truth", ndim=1)
            if w.shape != (D,):
                raise ValueError(f"ground_truth must have shape ({D},), got shape {w.shape}")
            self.ground_truth = frozen_copy(w)

    def __repr__(self) -> str:
        return f"DiagonalLinearNetwork(n_samples={self.n_samples}, n_features={self.n_features})"

    @classmethod
    def random(cls, n_samples: int, n_features: int, *, sparsity: int = 3, rng=0) -> "DiagonalLinearNetwork":
        """Gaussian ``Z`` (entries ``N(0, 1)``) and ``y = Zw*`` for a ``sparsity``-sparse ``w* ∈ {0, ±1}^D``.

        Examples:
            >>> import numpy as np
            >>> p = DiagonalLinearNetwork.random(3, 6, sparsity=2, rng=0)
            >>> w = p.ground_truth  # two entries ±1, the rest 0, and the labels are fitted exactly
            >>> int(np.count_nonzero(w)), sorted(set(np.abs(w).tolist())), bool(np.allclose(p.Z @ w, p.y))
            (2, [0.0, 1.0], True)
        """
        n_samples = as_int(n_samples, "n_samples", minimum=1)
        n_features = as_int(n_features, "n_features", minimum=1)
        sparsity = as_int(sparsity, "sparsity", minimum=1)
        if sparsity > n_features:
            raise ValueError(f"sparsity must be <= n_features = {n_features}, got {sparsity}")
        rng = make_rng(rng)
        Z = rng.standard_normal((n_samples, n_features))
        w_star = np.zeros(n_features)
        support = rng.choice(n_features, size=sparsity, replace=False)
        w_star[support] = rng.choice([-1.0, 1.0], size=sparsity)
        return cls(Z, Z @ w_star, ground_truth=w_star)

    @property
    def n_features(self) -> int:
        """The width ``D`` (``dim = 2D``).

        Examples:
            >>> p = DiagonalLinearNetwork.random(2, 5, rng=0)
            >>> p.n_features, p.dim  # x = concat(u, v), u, v ∈ R^D
            (5, 10)
        """
        return self._Z.shape[1]

    @property
    def Z(self) -> np.ndarray:
        """The design matrix (read-only).

        Examples:
            >>> import numpy as np
            >>> p = DiagonalLinearNetwork.random(2, 4, rng=0)
            >>> x = np.concatenate([np.ones(4), np.linspace(0.0, 1.0, 4)])  # u = 1, so w = v
            >>> p.Z.shape, bool(np.isclose(p.f(x), np.sum((p.Z @ x[4:] - p.y) ** 2) / 4))  # ‖Zw − y‖²/(2n)
            ((2, 4), True)
        """
        return self._Z

    def split(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Views ``(u, v)`` of ``x = concat(u, v)``.

        Examples:
            >>> import numpy as np
            >>> u, v = DiagonalLinearNetwork.random(2, 3, rng=0).split(np.arange(6.0))  # first half u, second half v
            >>> u.tolist(), v.tolist()
            ([0.0, 1.0, 2.0], [3.0, 4.0, 5.0])
        """
        return self._split(self._point(x))

    def _split(self, x):
        D = self.n_features
        return x[:D], x[D:]

    def weights(self, x) -> np.ndarray:
        """The linear predictor ``w = u⊙v``.

        Examples:
            >>> import numpy as np
            >>> p = DiagonalLinearNetwork.random(2, 3, rng=0)
            >>> p.weights(np.arange(6.0)).tolist(), bool(np.allclose(p.outputs(np.arange(6.0)), p.Z @ [0.0, 4.0, 10.0]))
            ([0.0, 4.0, 10.0], True)
        """
        u, v = self._split(self._point(x))
        return u * v

    # -------------------------------------------------------------- Setting 1
    def _outputs(self, x, idx=slice(None)):
        u, v = self._split(x)
        return self._Z[idx] @ (u * v)

    def _output_jacobian(self, x, idx=slice(None)):
        u, v = self._split(x)
        Zb = self._Z[idx] if isinstance(idx, slice) else self._Z.take(idx, axis=0)  # take: a batch's rows, fast
        return np.concatenate([Zb * v, Zb * u], axis=1)

    def _sample_grad(self, x, idx, labels=None):
        # (1/b) Σ_{i∈B} r_i ∇p_i with ∇p_i = (z_i⊙v, z_i⊙u): one product with Z_B and one with Z_Bᵀ
        u, v = self._split(x)
        Zb = self._Z.take(idx, axis=0)
        r = Zb @ (u * v) - (self._y.take(idx) if labels is None else labels)
        g = np.dot(r, Zb) / len(idx)  # Z_Bᵀr/b: numpy's dot, not matmul, is the fast call for a row or a few
        return np.concatenate([v * g, u * g])

    def _output_hessians(self, x, idx=slice(None)):
        Zb = self._Z[idx]
        D = self.n_features
        k = np.arange(D)
        H = np.zeros((Zb.shape[0], 2 * D, 2 * D))
        H[:, k, D + k] = Zb
        H[:, D + k, k] = Zb
        return H

    # ----------------------------------------------------------- closed forms
    def _g(self, x):
        u, v = self._split(x)
        return self._Z.T @ (self._Z @ (u * v) - self._y) / self.n_samples

    def _f(self, x):
        u, v = self._split(x)
        r = self._Z @ (u * v) - self._y
        return (r @ r) / (2 * self.n_samples)

    def _grad(self, x):
        u, v = self._split(x)
        g = self._g(x)
        return np.concatenate([v * g, u * g])

    def _value_and_grad(self, x):
        u, v = self._split(x)
        r = self._Z @ (u * v) - self._y
        g = self._Z.T @ r / self.n_samples
        return (r @ r) / (2 * self.n_samples), np.concatenate([v * g, u * g])

    def _hess(self, x):
        u, v = self._split(x)
        M = np.hstack([np.diag(v), np.diag(u)])
        G = self._Z.T @ self._Z / self.n_samples
        H = M.T @ G @ M
        D = self.n_features
        k = np.arange(D)
        g = self._g(x)
        H[k, D + k] += g
        H[D + k, k] += g
        return H

    def _hess_vec(self, x, V):
        # ∇²f V = Mᵀ G (M V) + (g⊙V_v, g⊙V_u), column by column, O(nD) per column.
        u, v = self._split(x)
        V_u, V_v = self._split(V)
        g = self._g(x)
        if V.ndim == 2:
            u, v, g = u[:, None], v[:, None], g[:, None]
        h = self._Z.T @ (self._Z @ (v * V_u + u * V_v)) / self.n_samples
        return np.concatenate([v * h + g * V_v, u * h + g * V_u])

    def _third(self, x):
        # T = T0 + (two index permutations of T0), T0[a, b, :] = Σ_k (∂²w_k/∂a∂b) (G M)[k, :]:
        # ∂²w_k/∂u_k∂v_k = 1 is the only non-zero second derivative of w.
        u, v = self._split(x)
        D = self.n_features
        GM = (self._Z.T @ self._Z / self.n_samples) @ np.hstack([np.diag(v), np.diag(u)])
        T0 = np.zeros((2 * D,) * 3, dtype=GM.dtype)
        k = np.arange(D)
        T0[k, D + k] = GM
        T0[D + k, k] = GM
        return T0 + T0.transpose(0, 2, 1) + T0.transpose(2, 0, 1)

    def _third_contract(self, x, a, b):
        u, v = self._split(x)
        a_u, a_v = self._split(a)
        b_u, b_v = self._split(b)
        cols = np.stack([a_u * b_v + a_v * b_u, v * a_u + u * a_v, v * b_u + u * b_v], axis=1)
        h, ha, hb = (self._Z.T @ (self._Z @ cols) / self.n_samples).T  # G w″[a,b], G M a, G M b
        return np.concatenate([v * h + hb * a_v + ha * b_v, u * h + hb * a_u + ha * b_u])

    def _trace_hess(self, x):
        u, v = self._split(x)
        return self._c @ (u * u + v * v) / self.n_samples

    def _grad_trace_hess(self, x):
        u, v = self._split(x)
        return (2.0 / self.n_samples) * np.concatenate([self._c * u, self._c * v])

    # ------------------------------------------------------- known exactly
    def _interpolant(self, z) -> np.ndarray:
        """The interpolant ``w`` closest to ``z``: ``z − Z⁺(Zz − y)``."""
        return z - np.linalg.lstsq(self._Z, self._Z @ z - self._y, rcond=None)[0]

    def random_minimum(self, rng=None) -> np.ndarray:
        """A random interpolant ``w`` factored with random balances ``|u_k|/|v_k| = exp(N(0, 0.5²))``.

        Examples:
            >>> import numpy as np
            >>> p = DiagonalLinearNetwork.random(2, 4, rng=0)
            >>> x = p.random_minimum(rng=1)
            >>> bool(np.allclose(p.Z @ p.weights(x), p.y)), bool(np.allclose(p.grad(x), 0.0))  # Zw = y: f = 0, ∇f = 0
            (True, True)
        """
        rng = make_rng(rng)
        w = self._interpolant(rng.standard_normal(self.n_features))
        return _factor(w, np.exp(0.5 * rng.standard_normal(self.n_features)))

    def sharp_minimum(self, balance: float = 2.0) -> np.ndarray:
        """The dense minimum-norm interpolant ``w = Z⁺y`` factored unbalanced, ``|u| = balance²·|v|``.

        Its trace is ``(balance² + balance⁻²)/2`` times that of the balanced factorization,
        which is itself above the flattest value unless ``Z⁺y`` happens to be the
        weighted-ℓ1 minimizer.

        Examples:
            >>> p = DiagonalLinearNetwork.random(2, 4, rng=0)
            >>> x2, x1 = p.sharp_minimum(2.0), p.sharp_minimum(1.0)  # same w, u_k² + v_k² = |w_k| (b² + b⁻²)
            >>> round(float(p.f(x2)), 12), round(float(p.trace_hess(x2) / p.trace_hess(x1)), 9), (4 + 1 / 4) / 2
            (0.0, 2.125, 2.125)
        """
        balance = as_positive(balance, "balance")
        return _factor(self._interpolant(np.zeros(self.n_features)), balance)

    def flat_minima(self, *, support_tol: float = 1e-9) -> tuple[np.ndarray, ...]:
        """The flattest minimum: ``|u| = |v|`` and ``w = argmin Σ_k c_k|w_k|`` subject to ``Zw = y``.

        Solved as a linear program (HiGHS) in ``w = w⁺ − w⁻``, then polished by solving
        ``Z_S w_S = y`` exactly on the support ``S``. Unique up to the sign flips
        ``(u_k, v_k) → (−u_k, −v_k)``, which change neither ``w`` nor the trace.

        Args:
            support_tol: ``S = {k : |w_k| > support_tol · max(1, max|w|)}``. The program's
                solution is a vertex, whose off-support entries are zero up to the solver's
                rounding (``≲ 1e-12``) and whose support entries are ``O(|w|)``; ``1e-9`` lies
                far from both.

        Raises:
            ConvergenceError: if the linear program fails.

        Examples:
            >>> import numpy as np
            >>> p = DiagonalLinearNetwork.random(2, 4, sparsity=1, rng=0)
            >>> (x,), c = p.flat_minima(), np.sum(p.Z**2, axis=0)
            >>> (u, v), w = p.split(x), p.weights(x)  # balanced, so tr∇²f = (2/n) Σ_k c_k |w_k| with n = 2
            >>> bool(np.allclose(abs(u), abs(v))), float(p.f(x)) < 1e-20, bool(np.isclose(p.trace_hess(x), c @ abs(w)))
            (True, True, True)
        """
        support_tol = as_positive(support_tol, "support_tol")
        if support_tol not in self._flattest:  # one linear program per tolerance asked for
            self._flattest[support_tol] = frozen_copy(self._solve_flattest(support_tol))
        return (self._flattest[support_tol].copy(),)

    def _solve_flattest(self, support_tol: float) -> np.ndarray:
        n, D = self._Z.shape
        res = linprog(
            np.concatenate([self._c, self._c]),
            A_eq=np.hstack([self._Z, -self._Z]),
            b_eq=self._y,
            bounds=(0, None),
            method="highs",
        )
        if res.status != 0:
            raise ConvergenceError(f"weighted-l1 linear program failed: {res.message}")
        w = res.x[:D] - res.x[D:]
        support = np.abs(w) > support_tol * max(1.0, np.max(np.abs(w)))
        w = np.zeros(D)
        w[support] = np.linalg.lstsq(self._Z[:, support], self._y, rcond=None)[0]
        return _factor(w, 1.0)

    def exact_limit(self, x, *, max_iter: int = 100) -> np.ndarray:
        """``Φ(x)`` in closed form up to an ``n``-dimensional convex minimization (docs/theory.md §5).

        Along the flow ``u̇ = −v⊙g``, ``v̇ = −u⊙g`` with ``g = Zᵀr/n``: linear in ``(u, v)``, so ``u ± v`` scale by
        ``e^{∓b}`` with ``b = Zᵀm`` and ``m = ∫ r/n dt ∈ R^n``. Hence
        ``Φ(x) = (u cosh b − v sinh b, v cosh b − u sinh b)``, where ``m`` minimizes the strictly convex
        ``F(m) = Σ_k (α_k e^{−2b_k} + γ_k e^{2b_k})/2 + yᵀm`` with ``α = (u + v)²/4``, ``γ = (u − v)²/4``:
        ``∇F = y − Zw(b)`` vanishes exactly at the interpolant the flow ends at, and ``∇²F = Z diag(u² + v²) Zᵀ``
        (at the moving point). Newton's method with backtracking on ``F``, ``O(n²D)`` per iteration.

        Raises:
            ConvergenceError: if ``F`` has no minimizer within ``max_iter`` Newton steps (the flow then does not
                end at an interpolant, e.g. when the pairs with ``u_k = v_k = 0`` are needed to fit ``y``).

        Examples:
            >>> import numpy as np
            >>> p = DiagonalLinearNetwork.random(3, 8, rng=0)
            >>> x = p.random_minimum(rng=1) + 0.1
            >>> phi = p.exact_limit(x)   # an interpolant with the same balances u² − v² as x
            >>> bool(np.allclose(p.Z @ p.weights(phi), p.y, atol=1e-13))
            True
            >>> bool(np.allclose(p.conserved(phi), p.conserved(x), atol=1e-13))
            True
        """
        return _transport(*self._limit_exponents(x, max_iter))

    def exact_limit_jacobian(self, x, *, max_iter: int = 100) -> np.ndarray:
        """``∂Φ(x) = P T(b)``: the transport ``T(b) = [[diag cosh b, −diag sinh b], [−diag sinh b, diag cosh b]]`` of
        :meth:`exact_limit`, then ``P = I − J⁺J``, the tangent projector at ``Φ(x)`` (``J`` the output Jacobian).

        With ``b = Zᵀm`` and ``(u, v)`` at the limit, ``∂(u, v)/∂b = −(v, u)``; differentiating ``Zw = y`` gives
        ``Z diag(u² + v²) Zᵀ dm = J T dx`` with ``J = Z[diag v, diag u]``, so
        ``dΦ = T dx − J⁺J T dx``. On ``X*`` (``b = 0``) this is ``P``, as it must be.

        Examples:
            >>> import numpy as np
            >>> p = DiagonalLinearNetwork.random(2, 4, rng=0)
            >>> x = p.random_minimum(rng=1) + 0.1
            >>> A = p.exact_limit_jacobian(x)   # kills ∇f(x) (Φ is constant along the flow), and P A = A
            >>> P = p.exact_limit_jacobian(p.exact_limit(x))
            >>> bool(np.allclose(A @ p.grad(x), 0.0, atol=1e-12)), bool(np.allclose(P @ A, A))
            (True, True)
        """
        u, v, b = self._limit_exponents(x, max_iter)
        cosh, sinh = np.cosh(b), np.sinh(b)
        transport = np.block([[np.diag(cosh), np.diag(-sinh)], [np.diag(-sinh), np.diag(cosh)]])
        N = self.normal_basis(_transport(u, v, b))  # P = I − NNᵀ, with the rank rule of the tangent projector
        return transport - N @ (N.T @ transport)

    def _limit_exponents(self, x, max_iter):
        """``(u, v, b)``: ``x``'s halves and ``b = Zᵀm`` at the minimizer ``m`` of :meth:`exact_limit`'s ``F``."""
        u, v = self._split(self._point(x))
        max_iter = as_int(max_iter, "max_iter", minimum=1)
        alpha, gamma, Z, y = (u + v) ** 2 / 4, (u - v) ** 2 / 4, self._Z, self._y

        def dual(m):  # F(m), ∇F(m) = y − Zw and the weights u² + v² of ∇²F = Z diag(u² + v²) Zᵀ
            b = Z.T @ m
            low, high = alpha * np.exp(-2 * b), gamma * np.exp(2 * b)
            return (np.sum(low + high) / 2 + y @ m, y - Z @ (low - high), 2 * (low + high))

        m, previous = np.zeros(len(y)), np.inf
        with np.errstate(all="ignore"):  # an overflowing trial point has F = inf or NaN, which the search rejects
            state = dual(m)
            for _ in range(max_iter):
                try:
                    step = -np.linalg.solve((Z * state[2]) @ Z.T, state[1])
                except np.linalg.LinAlgError:
                    break
                size = float(np.max(np.abs(Z.T @ step)))  # the change of b: relative, in the weights e^{±2b}
                if size <= 1e-13:  # Newton converges quadratically: the error after this step is far below
                    return u, v, Z.T @ (m + step)
                if not np.isfinite(size):
                    break
                if size <= 1e-8 and size > previous / 2:  # no longer halving: the step is rounding
                    return u, v, Z.T @ m
                m, state = _backtrack(dual, m, step, state)
                if m is None:
                    break
                previous = size
        raise ConvergenceError(f"the flow of {self!r} from this point has no interpolating limit: Newton's "
                               f"method on the conservation laws' dual did not converge in {max_iter} steps")

    def conserved(self, x) -> np.ndarray:
        """``u⊙u − v⊙v``: ``d/dt (u_k² − v_k²) = −2u_k v_k g_k + 2v_k u_k g_k = 0``.

        Examples:
            >>> p = DiagonalLinearNetwork.random(2, 3, rng=0)
            >>> x = x0 = [1.0, 0.5, -1.0, 0.2, 1.0, 2.0]
            >>> for _ in range(5):  # small gradient steps change u² − v² by O(η²) only
            ...     x = x - 1e-4 * p.grad(x)
            >>> p.conserved(x0).round(6).tolist(), p.conserved(x).round(6).tolist()
            ([0.96, -0.75, -3.0], [0.96, -0.75, -3.0])
        """
        u, v = self._split(self._point(x))
        return u * u - v * v
