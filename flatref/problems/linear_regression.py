"""Overparameterized linear regression: ``f(w) = ‖Zw − y‖² / (2n)``, ``Z ∈ R^{n×D}``, ``D > n``.

Setting 1 with ``p_i(w) = z_iᵀw``. The Hessian ``ZᵀZ/n`` is constant, so every
minimum is equally flat (``∇ tr∇²f = 0``) and the family has no sharp minimum. The
flow moves ``w`` only within the row space of ``Z``, which gives the limit map in
closed form (docs/theory.md §5):

``Φ(w) = w − Z⁺(Zw − y)``,  ``∂Φ = I − Z⁺Z``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .._validation import as_array, as_int, frozen_copy, make_rng, require_finite
from .base import TrainingLoss


def check_design(Z, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate an overparameterized design ``Z`` (n × D, D > n) and labels ``y`` (n,).

    Examples:
        >>> import numpy as np
        >>> check_design(np.ones((2, 2)), np.ones(2))  # D = n leaves no manifold of interpolants
        Traceback (most recent call last):
        ...
        ValueError: Z must have more columns than rows (overparameterized: n_features > n_samples), got shape (2, 2)
    """
    Z = as_array(Z, "Z", ndim=2)
    y = as_array(y, "y", ndim=1)
    n, D = Z.shape
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match Z's {n} rows, got shape {y.shape}")
    if D <= n:
        raise ValueError(
            f"Z must have more columns than rows (overparameterized: n_features > n_samples), got shape {Z.shape}"
        )
    return Z, y


class LinearRegression(TrainingLoss):
    """``f(w) = ‖Zw − y‖² / (2n)`` with ``dim = D > n = n_samples``.

    Args:
        Z: design matrix, shape ``(n, D)`` with ``D > n``.
        y: labels, shape ``(n,)``.

    Examples:
        >>> import numpy as np
        >>> p = LinearRegression([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]], [1.0, 2.0])
        >>> float(p.f([1.0, 1.0, 1.0])), float(p.trace_hess(np.zeros(3)))  # ‖(1, 0)‖²/(2·2); ‖Z‖_F²/n = 6/2
        (0.25, 3.0)
    """

    quadratic_outputs = True

    def __init__(self, Z, y):
        Z, y = check_design(Z, y)
        super().__init__(Z.shape[1], y)
        self._Z = frozen_copy(Z)
        with np.errstate(all="ignore"):
            self._trace = np.sum(Z * Z) / self.n_samples
        require_finite(self._trace, "Z", "the trace ‖Z‖_F²/n")

    @classmethod
    def random(cls, n_samples: int, dim: int, rng=0) -> "LinearRegression":
        """Gaussian ``Z`` (entries ``N(0, 1)``) and labels ``y ~ N(0, I)``.

        Examples:
            >>> import numpy as np
            >>> p = LinearRegression.random(2, 4, rng=0)
            >>> p.Z.shape, p.dim, bool(np.array_equal(p.Z, LinearRegression.random(2, 4, rng=0).Z))  # seeded
            ((2, 4), 4, True)
        """
        n_samples = as_int(n_samples, "n_samples", minimum=1)
        dim = as_int(dim, "dim", minimum=1)
        rng = make_rng(rng)
        return cls(rng.standard_normal((n_samples, dim)), rng.standard_normal(n_samples))

    @property
    def Z(self) -> np.ndarray:
        """The design matrix (read-only).

        Examples:
            >>> import numpy as np
            >>> p = LinearRegression.random(2, 4, rng=0)
            >>> bool(np.allclose(p.hess(np.zeros(4)), p.Z.T @ p.Z / 2)), p.Z.flags.writeable  # ∇²f = ZᵀZ/n
            (True, False)
        """
        return self._Z

    @cached_property
    def _Z_pinv(self) -> np.ndarray:
        return np.linalg.pinv(self._Z)

    # -------------------------------------------------------------- Setting 1
    def _outputs(self, x, idx=slice(None)):
        return self._Z[idx] @ x

    def _output_jacobian(self, x, idx=slice(None)):
        return np.array(self._Z[idx])

    def _output_hessians(self, x, idx=slice(None)):
        return np.zeros((len(self._y[idx]), self.dim, self.dim))

    # ----------------------------------------------------------- closed forms
    def _f(self, x):
        r = self._Z @ x - self._y
        return (r @ r) / (2 * self.n_samples)

    def _grad(self, x):
        return self._Z.T @ (self._Z @ x - self._y) / self.n_samples

    def _value_and_grad(self, x):
        r = self._Z @ x - self._y
        return (r @ r) / (2 * self.n_samples), self._Z.T @ r / self.n_samples

    def _hess(self, x):
        return self._Z.T @ self._Z / self.n_samples

    def _hess_vec(self, x, v):
        return self._Z.T @ (self._Z @ v) / self.n_samples

    def _third(self, x):
        return np.zeros((self.dim,) * 3)

    def _third_contract(self, x, u, v):
        return np.zeros(self.dim, dtype=np.result_type(x, u, v))

    def _trace_hess(self, x):
        return self._trace

    def _grad_trace_hess(self, x):
        return np.zeros(self.dim, dtype=x.dtype)

    # ------------------------------------------------------- known exactly
    def random_minimum(self, rng=None) -> np.ndarray:
        """``Φ(z)`` for ``z ~ N(0, I)``: the interpolant ``Z⁺y`` plus a random null-space part.

        Examples:
            >>> import numpy as np
            >>> p = LinearRegression.random(2, 4, rng=0)
            >>> w = p.random_minimum(rng=1)
            >>> bool(np.allclose(p.Z @ w, p.y)), bool(np.allclose(p.grad(w), 0.0))  # an interpolant, a critical point
            (True, True)
        """
        return self.exact_limit(make_rng(rng).standard_normal(self.dim))

    def conserved(self, x) -> np.ndarray:
        """The null-space component ``(I − Z⁺Z) w``, which the flow never changes.

        Examples:
            >>> import numpy as np
            >>> p, w = LinearRegression.random(2, 4, rng=0), np.ones(4)
            >>> w_next = w - 0.1 * p.grad(w)  # ∇f = Zᵀ(Zw − y)/n lies in the row space of Z
            >>> bool(np.allclose(p.conserved(w_next), p.conserved(w))), bool(np.allclose(p.Z @ p.conserved(w), 0.0))
            (True, True)
        """
        x = self._point(x)
        return x - self._Z_pinv @ (self._Z @ x)

    def exact_limit(self, x) -> np.ndarray:
        """``Φ(w) = w − Z⁺(Zw − y)``: the least-squares solution with ``w``'s null-space part.

        Examples:
            >>> import numpy as np
            >>> p, w = LinearRegression.random(2, 4, rng=0), np.ones(4)
            >>> phi = p.exact_limit(w)  # on X* (Zw = y), with the same null-space part as w
            >>> bool(np.allclose(p.Z @ phi, p.y)), bool(np.allclose(p.conserved(phi), p.conserved(w)))
            (True, True)
        """
        x = self._point(x)
        return x - self._Z_pinv @ (self._Z @ x - self._y)

    def exact_limit_jacobian(self, x) -> np.ndarray:
        """``∂Φ = I − Z⁺Z``, the projector onto the null space of ``Z`` (the same at every ``w``).

        Examples:
            >>> import numpy as np
            >>> p = LinearRegression.random(2, 5, rng=0)
            >>> P = p.exact_limit_jacobian(np.zeros(5))  # symmetric, idempotent, rank D − n = 3, kills the rows of Z
            >>> bool(np.allclose(P @ P, P) and np.allclose(P, P.T)), round(float(np.trace(P)), 9)
            (True, 3.0)
            >>> bool(np.allclose(p.Z @ P, 0.0))
            True
        """
        self._point(x)
        return np.eye(self.dim) - self._Z_pinv @ self._Z
